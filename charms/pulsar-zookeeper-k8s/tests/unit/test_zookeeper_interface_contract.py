"""The `zookeeper` contract against what Charmhub's charms really send and publish.

Kafka 3's exact request and Charmhub ZooKeeper's exact answer are fixtures
(``tests/interface-fixtures/zookeeper``, sources in its README); both directions are validated
against the v0 schemas with ``additionalProperties: false`` (see ``zookeeper_contract_schemas``).
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import ops
import pytest
from charms.pulsar_zookeeper_k8s.v0.zookeeper import (
    DEFAULT_REQUESTED_SECRETS,
    SECRET_GROUP_OF,
    ClientRequest,
    ZooKeeperRequirer,
    chroots_overlap,
    parse_request,
    read_answer,
    render_answer,
)
from hypothesis import given
from hypothesis import strategies as st
from ops import testing
from zookeeper_clients import EXCLUSIVE, SHARED, assign_chroots
from zookeeper_contract_schemas import decoded, fixture, strict_schema

KAFKA = fixture("kafka3-request.json")
CHARMHUB = fixture("charmhub-zookeeper-provider.json")
ENDPOINTS = [f"zk-{n}.zk-endpoints:2181" for n in range(3)]
# The keys data_interfaces keeps for itself in the provider databag (a copy of the request).
LIBRARY_INTERNAL = {"data"}


def kafka_request(relation_id: int = 7) -> ClientRequest:
    request = parse_request(relation_id, KAFKA["application"], KAFKA["app"])
    assert request is not None
    return request


# ---- the requirer side ------------------------------------------------------------------


def test_kafka3_request_is_read_as_charmhub_zookeeper_reads_it():
    request = kafka_request()
    assert request.error is None
    assert request.chroot == "/kafka-k8s"
    assert request.acl == "cdrwa"  # Kafka sends no extra-user-roles: every permission
    assert request.requested_secrets == {"username", "password", "tls", "tls-ca", "uris"}
    assert request.echo_chroot  # it sent the legacy key, so it gets it back


def test_kafka3_request_is_strictly_valid_but_for_its_legacy_chroot():
    strict = strict_schema("requirer")
    with pytest.raises(jsonschema.ValidationError, match="'chroot' was unexpected"):
        jsonschema.validate({"app": decoded(KAFKA["app"])}, strict)
    legacy_dropped = {k: v for k, v in KAFKA["app"].items() if k != "chroot"}
    jsonschema.validate({"app": decoded(legacy_dropped)}, strict)


def test_our_request_is_strictly_valid_and_asks_what_kafka_asks():
    class Requirer(ops.CharmBase):
        def __init__(self, framework: ops.Framework):
            super().__init__(framework)
            self.zookeeper = ZooKeeperRequirer(self, chroot="/pulsar")
            framework.observe(self.on.zookeeper_relation_created, self._request)

        def _request(self, _: ops.EventBase) -> None:
            self.zookeeper.request()

    ctx = testing.Context(
        Requirer, meta={"name": "requirer", "requires": {"zookeeper": {"interface": "zookeeper"}}}
    )
    relation = testing.Relation("zookeeper")
    out = ctx.run(
        ctx.on.relation_created(relation), testing.State(leader=True, relations={relation})
    )
    sent = dict(out.get_relation(relation.id).local_app_data)
    jsonschema.validate({"app": decoded(sent)}, strict_schema("requirer"))
    kafka_asks = json.loads(KAFKA["app"]["requested-secrets"])
    assert json.loads(sent["requested-secrets"]) == kafka_asks == list(DEFAULT_REQUESTED_SECRETS)


@pytest.mark.parametrize(
    ("data", "chroot", "acl"),
    [
        ({"database": "pulsar"}, "/pulsar", "cdrwa"),  # no leading "/": Charmhub accepts it
        ({"chroot": "legacy", "chroot-acl": "rw"}, "/legacy", "rw"),  # legacy keys honoured
        ({"database": "/new", "chroot": "/old", "extra-user-roles": "cr"}, "/new", "cr"),
    ],
)
def test_chroot_and_acl_keys_new_and_legacy(data, chroot, acl):
    request = parse_request(3, "app", data)
    assert request is not None and request.error is None
    assert (request.chroot, request.acl, request.echo_chroot) == (chroot, acl, "chroot" in data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"database": "/zookeeper"}, "database '/zookeeper'"),
        ({"database": "/a/../b"}, "database '/a/../b'"),
        ({"database": "/p", "extra-user-roles": "rwx"}, "extra-user-roles 'rwx'"),
        ({"database": "/p", "requested-secrets": "username"}, "requested-secrets"),
    ],
)
def test_bad_requests_carry_a_reason(data, reason):
    request = parse_request(3, "app", data)
    assert request is not None and request.error is not None
    assert request.error.startswith(reason)


def test_no_request_until_a_chroot_is_asked():
    assert parse_request(3, "app", {"requested-secrets": "[]"}) is None


# ---- the provider side ------------------------------------------------------------------


def test_our_answer_to_kafka3_has_the_shape_charmhub_zookeeper_gives_it():
    answer = render_answer(kafka_request(), endpoints=ENDPOINTS, password="pw")
    charmhub_plain = set(CHARMHUB["app"]) - LIBRARY_INTERNAL - {"secret-user", "secret-tls"}
    assert set(answer.databag) == charmhub_plain == {"database", "endpoints", "chroot"}
    assert set(answer.user_secret) == set(CHARMHUB["secrets"]["secret-user"])
    assert answer.tls_secret == CHARMHUB["secrets"]["secret-tls"] == {"tls": "disabled"}
    assert answer.user_secret["username"] == "relation-7"
    assert answer.user_secret["uris"] == ",".join(ENDPOINTS) + "/kafka-k8s"


def test_charmhub_answer_is_strictly_valid_but_for_library_and_legacy_keys():
    strict = strict_schema("provider")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"app": CHARMHUB["app"]}, strict)
    contract = {k: v for k, v in CHARMHUB["app"].items() if k not in LIBRARY_INTERNAL | {"chroot"}}
    jsonschema.validate({"app": contract}, strict)


def test_our_requirer_reads_charmhub_zookeeper_answer():
    connection = read_answer(
        "/kafka-k8s",
        CHARMHUB["app"],
        CHARMHUB["secrets"]["secret-user"],
        CHARMHUB["secrets"]["secret-tls"],
    )
    assert connection is not None
    assert connection.username == "relation-7"
    assert connection.hosts == CHARMHUB["app"]["endpoints"]
    assert connection.uris == CHARMHUB["secrets"]["secret-user"]["uris"]
    assert connection.tls is False
    # an answer for another chroot is not ours
    assert read_answer("/pulsar", CHARMHUB["app"], CHARMHUB["secrets"]["secret-user"], {}) is None


def test_unrequested_fields_are_plain_but_the_password_never_is():
    request = parse_request(4, "old-app", {"database": "/old"})  # asks for no secret at all
    assert request is not None
    answer = render_answer(request, endpoints=ENDPOINTS, password="pw")
    assert answer.databag == {
        "database": "/old",
        "endpoints": ",".join(ENDPOINTS),
        "uris": ",".join(ENDPOINTS) + "/old",
        "tls": "disabled",
    }
    assert answer.user_secret == {"username": "relation-4", "password": "pw"}
    assert answer.tls_secret == {}


chroots = (
    st.lists(st.from_regex(r"[a-z0-9_.-]{1,6}", fullmatch=True), min_size=1, max_size=3)
    .map(lambda parts: "/" + "/".join(p for p in parts))
    .filter(lambda c: not any(p in (".", "..") for p in c.split("/")))
)
requested_subsets = st.sets(st.sampled_from(sorted(SECRET_GROUP_OF)))


@given(
    chroot=chroots,
    requested=requested_subsets,
    tls=st.booleans(),
    tls_ca=st.sampled_from(["", "-----BEGIN CERTIFICATE-----x"]),
    echo=st.booleans(),
)
def test_every_field_travels_once_where_the_request_says_and_reads_back(
    chroot, requested, tls, tls_ca, echo
):
    request = ClientRequest(
        5, "app", chroot, "cdrwa", requested_secrets=frozenset(requested), echo_chroot=echo
    )
    answer = render_answer(request, endpoints=ENDPOINTS, password="pw", tls=tls, tls_ca=tls_ca)
    assert "password" not in answer.databag and "username" not in answer.databag
    for name, group in SECRET_GROUP_OF.items():
        places = [
            answer.databag,
            answer.user_secret if group == "secret-user" else answer.tls_secret,
        ]
        holders = [place for place in places if name in place]
        if name == "tls-ca" and not tls_ca:
            assert not holders
            continue
        assert len(holders) == 1, name
        in_secret = holders[0] is not answer.databag
        assert in_secret == (name in requested or name in ("username", "password"))
    assert ("chroot" in answer.databag) == echo
    # strictly schema-valid, once the legacy echo is set aside
    provider_bag: dict[str, Any] = {k: v for k, v in answer.databag.items() if k != "chroot"}
    provider_bag["secret-user"] = "secret://model/user"
    if answer.tls_secret:
        provider_bag["secret-tls"] = "secret://model/tls"
    if not ({"uris", "tls", "tls-ca"} & set(answer.databag)):
        jsonschema.validate({"app": provider_bag}, strict_schema("provider"))
    connection = read_answer(
        chroot.lstrip("/"), answer.databag, answer.user_secret, answer.tls_secret
    )
    assert connection is not None
    assert (connection.chroot, connection.password, connection.tls) == (chroot, "pw", tls)
    assert connection.uris == ",".join(ENDPOINTS) + chroot
    assert connection.tls_ca == tls_ca


# ---- which requests are served (acl-policy) ---------------------------------------------


@given(st.lists(chroots, min_size=1, max_size=6))
def test_exclusive_policy_serves_no_overlapping_chroots_and_the_oldest_wins(asked):
    requests = [ClientRequest(i, f"app{i}", c, "cdrwa") for i, c in enumerate(asked)]
    assigned = assign_chroots(reversed(requests), EXCLUSIVE)
    assert [r.relation_id for r in assigned] == list(range(len(asked)))
    served = [r for r in assigned if r.error is None]
    for i, a in enumerate(served):
        assert not any(chroots_overlap(a.chroot, b.chroot) for b in served[i + 1 :])
    for refused in (r for r in assigned if r.error is not None):
        older = [s for s in served if s.relation_id < refused.relation_id]
        assert any(chroots_overlap(s.chroot, refused.chroot) for s in older)
        assert "acl-policy=exclusive" in (refused.error or "")
    assert assigned[0].error is None
    assert all(r.error is None for r in assign_chroots(requests, SHARED))


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [("/a", "/a", True), ("/a", "/a/b", True), ("/a/b", "/a", True), ("/a", "/ab", False)],
)
def test_chroots_overlap(a, b, overlap):
    assert chroots_overlap(a, b) is overlap


@pytest.mark.parametrize("chroot", ["/pulsar\n", "/pulsar\n/x", "/pul\nsar"])
def test_a_chroot_with_a_line_break_is_refused(chroot):
    from charms.pulsar_zookeeper_k8s.v0.zookeeper import validate_chroot

    assert validate_chroot(chroot) is not None
    assert validate_chroot("/pulsar") is None
