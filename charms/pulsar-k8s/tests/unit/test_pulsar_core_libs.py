"""The shared charm core (charms.pulsar_k8s.v0.*): behaviour every charm relies on."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import ops
import pulsar_tokens
import pytest
from charms.bookkeeper_k8s.v0.bookkeeper import BookKeeperInfo
from charms.pulsar_k8s.v0.databags import write_if_different
from charms.pulsar_k8s.v0.log_hygiene import REDACTED, quiet_credential_loggers, redact
from charms.pulsar_k8s.v0.rendering import UnsafeValue, jaas_section, render_properties
from charms.pulsar_k8s.v0.validation import (
    InvalidField,
    is_credential,
    parse_host_port,
    parse_metadata_service_uri,
)
from hypothesis import given
from hypothesis import strategies as st
from ops import testing
from pulsar_charm import INTERNAL_SECRET_ID_KEY, INTERNAL_SECRET_LABEL, PulsarBrokerCharm
from pulsar_charm import _checked_bookkeeper as checked_bookkeeper

CHARM_ROOT = Path(__file__).resolve().parents[2]
SIGNING_KEY = "c2lnbmluZy1rZXktZm9yLXRoZS11bml0LXRlc3RzLTAxMjM0NTY3"
BOOKIE = "bookkeeper-k8s-{}.bookkeeper-k8s-endpoints.m.svc.cluster.local:3181"
OFFLINE = testing.Container("pulsar", can_connect=False)


@given(st.text(max_size=30))
def test_a_credential_never_holds_what_breaks_jaas_or_properties(value):
    if is_credential(value):
        assert not set(value) & set("\"\\$' \n\r\t\x00")
        assert jaas_section("Client", {"password": value}).count("\n") == 4
    else:
        with pytest.raises(UnsafeValue) as refused:
            jaas_section("Client", {"password": value})
        # the refusal names the option, never echoes the value (it may be a real password)
        assert str(refused.value) == "JAAS Client.password: value not allowed in a JAAS file"


@given(st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=5))
def test_properties_keep_one_line_per_key(properties):
    text = render_properties(properties, "header")
    assert len(text.splitlines()) == 1 + len(properties)
    assert text.isascii()


def test_write_if_different_writes_and_deletes_only_on_change():
    databag = {"a": "1", "b": "2"}
    assert not write_if_different(databag, {"a": "1"})
    assert write_if_different(databag, {"a": "3", "b": None, "c": None})
    assert databag == {"a": "3"}


@pytest.mark.parametrize(
    "value",
    ["zk+hierarchical://h:2181/l\nx=1", "file:///x", "zk+hierarchical://h:99999/l", "zk://h/l"],
)
def test_metadata_service_uri_refusal_names_relation_and_field(value):
    with pytest.raises(InvalidField, match=r"^bookkeeper relation: metadata-service-uri "):
        parse_metadata_service_uri("bookkeeper", "metadata-service-uri", value)


@pytest.mark.parametrize("value", ["h:0", "h:65536", "h", ":2181", "h\n:2181", "${x}:2181"])
def test_host_port_refuses_what_is_not_one(value):
    with pytest.raises(InvalidField):
        parse_host_port("zookeeper", "endpoints", value)


def test_duplicate_ready_bookies_count_once_and_only_listed_ones():
    info = BookKeeperInfo(
        "zk+hierarchical://zk-0:2181/pulsar/ledgers",
        (BOOKIE.format(0), BOOKIE.format(1)),
        (BOOKIE.format(0), BOOKIE.format(0), BOOKIE.format(0), BOOKIE.format(2)),
    )
    checked = checked_bookkeeper(info)
    assert checked is not None and checked.ready_bookies == (BOOKIE.format(0),)


def test_redact_replaces_every_known_secret():
    text = redact("auth=super:s3cret-pw token eyJabc.def", ["s3cret-pw", "eyJabc.def", ""])
    assert "s3cret-pw" not in text and "eyJabc" not in text and text.count(REDACTED) == 2


def test_library_loggers_that_print_credentials_drop_debug():
    logging.getLogger("kazoo").setLevel(logging.NOTSET)
    quiet_credential_loggers()
    assert not logging.getLogger("kazoo").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("kazoo.client").isEnabledFor(logging.DEBUG)


def _internal_secret() -> testing.Secret:
    return testing.Secret(
        tracked_content={
            "signing-key": SIGNING_KEY,
            "admin-token": pulsar_tokens.mint_token(SIGNING_KEY, "admin"),
            "broker-token": pulsar_tokens.mint_token(SIGNING_KEY, "pulsar-broker"),
        },
        owner="app",
        label=INTERNAL_SECRET_LABEL,
    )


def test_dangling_secret_id_is_replaced_by_the_labelled_secret_never_a_second_one():
    ctx = testing.Context(PulsarBrokerCharm, charm_root=CHARM_ROOT)
    secret = _internal_secret()
    peer = testing.PeerRelation(
        "cluster", local_app_data={INTERNAL_SECRET_ID_KEY: "secret:d0esn0texist0000000"}
    )
    state = testing.State(leader=True, relations=[peer], secrets=[secret], containers=[OFFLINE])
    with ctx(ctx.on.update_status(), state) as manager:
        charm = manager.charm
        assert isinstance(charm, PulsarBrokerCharm)
        assert charm._ensure_auth() is not None
        out = manager.run()
    labelled = [s for s in out.secrets if s.label == INTERNAL_SECRET_LABEL]
    assert len(labelled) == 1
    assert out.get_relation(peer.id).local_app_data[INTERNAL_SECRET_ID_KEY] == secret.id


def test_non_leader_reads_the_secret_by_the_recorded_id():
    ctx = testing.Context(PulsarBrokerCharm, charm_root=CHARM_ROOT)
    secret = _internal_secret()
    peer = testing.PeerRelation("cluster", local_app_data={INTERNAL_SECRET_ID_KEY: secret.id})
    state = testing.State(leader=False, relations=[peer], secrets=[secret], containers=[OFFLINE])
    with ctx(ctx.on.update_status(), state) as manager:
        charm = manager.charm
        assert isinstance(charm, PulsarBrokerCharm)
        auth = charm.auth_material()
    assert auth is not None and auth.signing_key == SIGNING_KEY


def test_storage_chown_failing_is_waiting_not_a_hook_error(tmp_path):
    ctx = testing.Context(PulsarBrokerCharm, charm_root=CHARM_ROOT)
    zk_secret = testing.Secret(tracked_content={"username": "relation-3", "password": "pw-123"})
    zookeeper = testing.Relation(
        "zookeeper",
        remote_app_data={
            "database": "/pulsar",
            "endpoints": "zk-0.zk-endpoints.m.svc.cluster.local:2181",
            "secret-user": zk_secret.id,
        },
    )
    bookkeeper = testing.Relation(
        "bookkeeper",
        remote_app_data={
            "metadata-service-uri": "zk+hierarchical://zk-0:2181/pulsar/ledgers",
            "bookies": json.dumps([BOOKIE.format(0), BOOKIE.format(1)]),
            "ready-bookies": json.dumps([BOOKIE.format(0), BOOKIE.format(1)]),
        },
    )
    internal = _internal_secret()
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={
            INTERNAL_SECRET_ID_KEY: internal.id,
            "cluster-metadata-initialised": "true",
            "cluster-metadata-cluster-name": "pulsar",
        },
    )
    container = testing.Container(
        "pulsar",
        can_connect=True,
        mounts={"data": testing.Mount(location="/pulsar/data", source=tmp_path)},
        execs={testing.Exec(["chown"], return_code=1, stderr="Operation not permitted")},
    )
    storage = testing.Storage("data")
    state = testing.State(
        leader=True,
        relations=[zookeeper, bookkeeper, peer],
        secrets=[zk_secret, internal],
        containers=[container],
        storages=[storage],
    )
    out = ctx.run(ctx.on.storage_attached(storage), state)
    assert out.unit_status == ops.WaitingStatus(
        "waiting for the pulsar container (Pebble) (retrying)"
    )


class _ChangeRecordingPebble:
    """Only what ``Workload.start``/``replan`` call, recording the timeout they ask for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object, float]] = []

    def start_services(self, services, timeout=30.0, delay=0.1):
        self.calls.append(("start", list(services), timeout))
        return "1"

    def replan_services(self, timeout=30.0, delay=0.1):
        self.calls.append(("replan", None, timeout))
        return "2"


class _ContainerWithPebble:
    def __init__(self, pebble) -> None:
        self.pebble = pebble
        self.waited: list[str] = []

    def start(self, *services: str) -> None:
        self.waited.append(f"start {' '.join(services)}")

    def replan(self) -> None:
        self.waited.append("replan")


def test_a_first_start_does_not_wait_for_pebble_and_a_waited_one_does():
    from charms.pulsar_k8s.v0.workload import Workload

    client = _ChangeRecordingPebble()
    container = _ContainerWithPebble(client)
    workload = Workload(container)  # type: ignore[arg-type]

    workload.start("broker", wait=False)
    workload.replan(wait=False)
    # submitted with timeout 0: Pebble returns the change at once, no hook waits its second
    assert client.calls == [("start", ["broker"], 0), ("replan", None, 0)]
    assert container.waited == []

    workload.start("broker")
    workload.replan()
    assert container.waited == ["start broker", "replan"]
    assert len(client.calls) == 2


@given(enabled=st.booleans(), plaintext=st.booleans())
def test_serving_tls_properties_are_shared_and_only_close_the_named_plain_port(enabled, plaintext):
    from charms.pulsar_k8s.v0.tls import PULSAR_TLS_PATHS, ServingTls, serving_tls_properties

    properties = serving_tls_properties(
        ServingTls(enabled, plaintext),
        tls_port_key="someTlsPort",
        tls_port=6651,
        plain_port_key="somePlainPort",
        web_tls_port=8443,
    )
    if not enabled:
        assert properties == {}
        return
    assert properties["someTlsPort"] == "6651" and properties["webServicePortTls"] == "8443"
    assert properties["tlsKeyFilePath"] == PULSAR_TLS_PATHS.private_key
    assert properties["tlsAllowInsecureConnection"] == "false"
    # closing plain text is an empty port (the listener disabled), never another key
    assert ("somePlainPort" in properties) is (not plaintext)
    assert properties.get("somePlainPort", "") == ""
