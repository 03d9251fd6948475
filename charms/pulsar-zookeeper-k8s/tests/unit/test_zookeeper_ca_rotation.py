"""CA rotation (and renewal) without losing the quorum: the trust bundle, the decision when a
member presents its new certificate, and the reconcile through each phase."""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path

import pytest
from charms.pulsar_k8s.v0.tls import TlsMaterial
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st
from ops import testing
from test_zookeeper_clients import address, base_state, peer_unit, running
from test_zookeeper_tls import (
    APP,
    KAFKA,
    RigTlsProviderCharm,  # pyright: ignore[reportAttributeAccessIssue]
    certificates,
)
from zookeeper_peer_state import parse
from zookeeper_render import CONF_PATH, STATE_PATH
from zookeeper_tls import (
    TLS_PATHS,
    bundle_fingerprints,
    ca_fingerprint,
    needed_cas,
    plan_member_tls,
    present_new_certificate,
    split_certificates,
    tls_files,
    trust_bundle,
)


def make_ca(name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


CAS = [make_ca(f"ca-{n}") for n in range(4)]
CA1, CA2 = CAS[0], CAS[1]


def fp(pem: str) -> str:
    return ca_fingerprint(pem)


def reformat(pem: str, width: int, crlf: bool) -> str:
    """The same certificate written differently (line width, line ends, blank lines)."""
    body = "".join(pem.strip().splitlines()[1:-1])
    lines = [body[i : i + width] for i in range(0, len(body), width)]
    sep = "\r\n" if crlf else "\n"
    return sep.join(["", "-----BEGIN CERTIFICATE-----", *lines, "-----END CERTIFICATE-----", ""])


# ---- the bundle ------------------------------------------------------------------------------

written = st.builds(reformat, st.sampled_from(CAS), st.sampled_from([64, 76, 1000]), st.booleans())


@given(st.lists(written, max_size=8), st.randoms())
def test_the_bundle_holds_each_ca_once_whatever_the_order_or_the_writing(cas, rnd):
    bundle = trust_bundle(cas)
    shuffled = list(cas)
    rnd.shuffle(shuffled)
    assert trust_bundle(shuffled) == bundle
    assert trust_bundle([bundle]) == bundle  # a bundle of a bundle: the same file
    assert bundle_fingerprints(bundle) == {fp(ca) for ca in cas}
    assert len(split_certificates(bundle)) == len({fp(ca) for ca in cas})
    # what ZooKeeper's PEM loader and the clients' check read: certificate blocks only
    assert all(
        block.startswith("-----BEGIN CERTIFICATE-----\n") for block in split_certificates(bundle)
    )


@given(st.text(max_size=200))
def test_anything_but_certificates_never_enters_a_bundle(garbage):
    bundle = trust_bundle([garbage, CA1])
    assert bundle_fingerprints(bundle) == {fp(CA1)}
    assert bundle == trust_bundle([CA1])


def test_the_trust_file_is_the_bundle_and_the_key_store_the_presented_certificate():
    material = TlsMaterial(certificate="LEAF\n", ca=CA1, private_key="KEY\n")
    files = tls_files(material, trust_bundle([CA1, CA2]))
    assert bundle_fingerprints(files[TLS_PATHS.ca]) == {fp(CA1), fp(CA2)}
    assert files[TLS_PATHS.certificate] == "LEAF\n"
    assert tls_files(material)[TLS_PATHS.ca] == CA1


# ---- when a member presents its new certificate ----------------------------------------------

trusts = st.one_of(st.none(), st.frozensets(st.sampled_from([fp(ca) for ca in CAS])))


@given(st.sampled_from(CAS), st.lists(trusts, max_size=4))
def test_a_renewal_or_a_first_certificate_is_presented_at_once(ca, others):
    assert present_new_certificate(ca, ca, others)
    assert present_new_certificate(ca, "", others)


@given(st.lists(trusts, max_size=4))
def test_a_new_ca_is_presented_only_once_every_other_member_trusts_it(others):
    expected = all(t is not None and fp(CA2) in t for t in others)
    assert present_new_certificate(CA2, CA1, others) == expected


def test_needed_cas_are_the_newest_and_the_presented():
    assert needed_cas(CA1, CA1) == split_certificates(CA1)
    assert needed_cas(CA2, CA1) == [*split_certificates(CA2), *split_certificates(CA1)]
    assert needed_cas("", "") == []


# ---- the whole rotation, restart by restart (any order the lock grants) -----------------------


@dataclasses.dataclass
class Member:
    newest: str
    presented: str
    trust: frozenset[str]
    restarts: int = 0


def desired(members: list[Member], index: int) -> tuple[str, frozenset[str]]:
    """What the charm would restart this member with, from what the others publish."""
    me = members[index]
    others = [m for i, m in enumerate(members) if i != index]
    plan = plan_member_tls(
        me.newest,
        me.presented,
        [m.trust for m in others],
        [ca for m in others for ca in needed_cas(m.newest, m.presented)],
    )
    return (me.newest if plan.present_new else me.presented), bundle_fingerprints(plan.trust)


def assert_everyone_trusts_everyone(members: list[Member]) -> None:
    client_bundle = bundle_fingerprints(
        trust_bundle([ca for m in members for ca in needed_cas(m.newest, m.presented)])
    )
    for a in members:
        assert fp(a.presented) in client_bundle
        for b in members:
            assert fp(a.presented) in b.trust, "a member presents a CA a peer does not trust"


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=5), st.data())
def test_a_ca_rotation_in_any_order_never_presents_an_untrusted_certificate(size, data):
    members = [Member(CA1, CA1, frozenset({fp(CA1)})) for _ in range(size)]
    for _ in range(10 * size):
        actions = [("certificate", i) for i, m in enumerate(members) if m.newest != CA2]
        actions += [
            ("restart", i)
            for i, m in enumerate(members)
            if desired(members, i) != (m.presented, m.trust)
        ]
        if not actions:
            break
        kind, index = data.draw(st.sampled_from(actions))
        member = members[index]
        if kind == "certificate":
            member.newest = CA2  # the provider answers this member with the new CA
            continue
        # the rolling-restart lock: one member restarts at a time, with what it wants now
        member.presented, member.trust = desired(members, index)
        member.restarts += 1
        assert_everyone_trusts_everyone(members)
    assert all(m.presented == CA2 and m.trust == {fp(CA2)} for m in members)
    assert all(m.restarts <= 3 for m in members)


# ---- the peer data ---------------------------------------------------------------------------


def test_peers_publish_the_cas_they_need_and_the_ones_they_trust():
    unit = {
        "address": address(1),
        "tls-cas": json.dumps([CA1, "not a certificate", 7, reformat(CA2, 76, True)]),
        "trusted-cas": json.dumps([fp(CA1), "XYZ", fp(CA2)]),
    }
    peer = parse({}, {f"{APP}/1": unit}).peers[2]
    assert {fp(ca) for ca in peer.cas} == {fp(CA1), fp(CA2)}
    assert peer.trusted == {fp(CA1), fp(CA2)}
    bad = parse({}, {f"{APP}/1": {**unit, "tls-cas": "{", "trusted-cas": "nope"}}).peers[2]
    assert (bad.cas, bad.trusted) == ((), None)
    assert parse({}, {f"{APP}/1": {"address": address(1)}}).peers[2].trusted is None


# ---- the reconcile, phase by phase -----------------------------------------------------------


class Provider:
    """The rig's CA charm, its CA kept between answers (a new name: a new CA)."""

    def __init__(self) -> None:
        self.ctx = testing.Context(RigTlsProviderCharm)
        self.secrets: frozenset = frozenset()

    def answer(self, csr_data: dict[str, str], ca_name: str, hours: int = 24) -> dict[str, str]:
        request = testing.Relation(
            "certificates", remote_app_name=APP, remote_units_data={0: csr_data}
        )
        state = testing.State(
            leader=True,
            relations=[request],
            secrets=set(self.secrets),
            config={"ca-common-name": ca_name, "certificate-validity-hours": hours},
        )
        out = self.ctx.run(self.ctx.on.relation_changed(request, remote_unit=0), state)
        self.secrets = frozenset(out.secrets)
        return dict(out.get_relation(request.id).local_app_data)


def peer_tls(n: int, cas: list[str], trusted: list[str]) -> dict[str, str]:
    return {
        **peer_unit(n, []),
        "certificate": "true",
        "quorum-tls": "tls",
        "secure-port": "true",
        "tls-cas": json.dumps(cas),
        "trusted-cas": json.dumps([fp(ca) for ca in trusted]),
    }


def replace_relation(state: testing.State, relation) -> testing.State:
    others = {r for r in state.relations if r.id != relation.id}
    return dataclasses.replace(state, relations={*others, relation})


def with_peers(state: testing.State, cas: list[str], trusted: list[str]) -> testing.State:
    peer = next(r for r in state.relations if r.endpoint == "cluster")
    updated = dataclasses.replace(peer, peers_data={n: peer_tls(n, cas, trusted) for n in (1, 2)})
    return replace_relation(state, updated)


def certify(ctx, state: testing.State, provider: Provider, ca_name: str, **kw) -> testing.State:
    """The provider answers the unit's CSR (signed by ``ca_name``); certificate_available."""
    relation = next(r for r in state.relations if r.endpoint == "certificates")
    if "certificate_signing_requests" not in relation.local_unit_data:
        state = ctx.run(ctx.on.relation_created(relation), state)
        relation = state.get_relation(relation.id)
    answer = provider.answer(dict(relation.local_unit_data), ca_name, **kw)
    updated = dataclasses.replace(relation, remote_app_data=answer)
    return running(
        ctx.run(ctx.on.relation_changed(updated, remote_unit=0), replace_relation(state, updated))
    )


def converge(ctx, state: testing.State, runs: int = 4) -> testing.State:
    """Run the reconcile until it settles, granting the lock as the leader would."""
    for _ in range(runs):
        state = running(ctx.run(ctx.on.update_status(), state))
        peer = next(r for r in state.relations if r.endpoint == "cluster")
        request = peer.local_unit_data.get("restart-request")
        if request and peer.local_app_data.get("restart-granted") != f"{APP}/0":
            granted = dataclasses.replace(
                peer, local_app_data={**peer.local_app_data, "restart-granted": f"{APP}/0"}
            )
            state = replace_relation(state, granted)
    return state


def conf_file(tmp_path: Path, path: str) -> str:
    return (tmp_path / path.removeprefix("/pulsar/")).read_text()


def presented_issuer(tmp_path: Path) -> str:
    leaf = x509.load_pem_x509_certificate(conf_file(tmp_path, TLS_PATHS.certificate).encode())
    (name,) = leaf.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return f"CN={name.value}"


def trusted_files(tmp_path: Path) -> set[str]:
    return set(bundle_fingerprints(conf_file(tmp_path, TLS_PATHS.ca)))


def unit_data(state: testing.State) -> dict[str, str]:
    peer = next(r for r in state.relations if r.endpoint == "cluster")
    return dict(peer.local_unit_data)


def provider_ca(state: testing.State) -> str:
    relation = next(r for r in state.relations if r.endpoint == "certificates")
    assert isinstance(relation, testing.Relation)
    return json.loads(relation.remote_app_data["certificates"])[0]["ca"]


def three_members(tmp_path: Path) -> testing.State:
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={
            "members": json.dumps({str(n + 1): address(n) for n in range(3)}),
            "quorum-tls-stage": "tls",
        },
    )
    return base_state(tmp_path, {peer, certificates()}, planned_units=3)


@pytest.fixture
def rotated(ctx, tmp_path, ensemble, pebble_calls):
    """A member on CA rig-ca (peers too), then the provider rotates to rig-ca-2."""
    provider = Provider()
    state = certify(ctx, three_members(tmp_path), provider, "rig-ca")
    ca1 = provider_ca(state)
    state = converge(ctx, with_peers(state, [ca1], [ca1]))
    assert presented_issuer(tmp_path) == "CN=rig-ca"
    assert trusted_files(tmp_path) == {fp(ca1)}
    restarts = pebble_calls.restarts
    state = certify(ctx, state, provider, "rig-ca-2")
    return state, ca1, provider_ca(state), restarts


def test_rotation_phase_1_trust_both_and_keep_presenting_the_old_certificate(
    ctx, tmp_path, rotated, pebble_calls
):
    state, ca1, ca2, restarts = rotated
    state = converge(ctx, state)
    assert pebble_calls.restarts == restarts + 1
    assert trusted_files(tmp_path) == {fp(ca1), fp(ca2)}
    assert presented_issuer(tmp_path) == "CN=rig-ca", "presented before the peers trust it"
    data = unit_data(state)
    assert {fp(ca) for ca in json.loads(data["tls-cas"])} == {fp(ca1), fp(ca2)}
    assert set(json.loads(data["trusted-cas"])) == {fp(ca1), fp(ca2)}
    # the key store holds the old certificate the server still presents
    keystore = conf_file(tmp_path, "/pulsar/conf/tls/keystore.pem")
    assert conf_file(tmp_path, TLS_PATHS.certificate).strip() in keystore


def test_rotation_phase_2_every_peer_trusts_the_new_ca_then_the_member_presents_it(
    ctx, tmp_path, rotated, pebble_calls
):
    state, ca1, ca2, restarts = rotated
    state = converge(ctx, state)
    # the peers restarted with both CAs (still presenting the old one)
    state = converge(ctx, with_peers(state, [ca1, ca2], [ca1, ca2]))
    assert pebble_calls.restarts == restarts + 2
    assert presented_issuer(tmp_path) == "CN=rig-ca-2"
    # the peers still present the old CA: it stays trusted
    assert trusted_files(tmp_path) == {fp(ca1), fp(ca2)}
    assert [fp(ca) for ca in json.loads(unit_data(state)["tls-cas"])] == [fp(ca2)]


def test_rotation_phase_3_once_no_member_presents_the_old_ca_it_leaves_the_bundle(
    ctx, tmp_path, rotated, pebble_calls
):
    state, ca1, ca2, restarts = rotated
    state = converge(ctx, state)
    state = converge(ctx, with_peers(state, [ca1, ca2], [ca1, ca2]))
    state = converge(ctx, with_peers(state, [ca2], [ca1, ca2]))
    assert pebble_calls.restarts == restarts + 3
    assert trusted_files(tmp_path) == {fp(ca2)}
    assert presented_issuer(tmp_path) == "CN=rig-ca-2"
    assert json.loads(unit_data(state)["trusted-cas"]) == [fp(ca2)]
    # settled: a reconcile that changes nothing writes nothing
    pushes, restarts = list(pebble_calls.pushes), pebble_calls.restarts
    again = converge(ctx, state, runs=2)
    assert (pebble_calls.pushes, pebble_calls.restarts) == (pushes, restarts)
    assert unit_data(again) == unit_data(state)


def test_a_renewal_under_the_same_ca_is_one_restart(ctx, tmp_path, ensemble, pebble_calls):
    provider = Provider()
    state = certify(ctx, three_members(tmp_path), provider, "rig-ca")
    ca = provider_ca(state)
    state = converge(ctx, with_peers(state, [ca], [ca]))
    before = conf_file(tmp_path, TLS_PATHS.certificate)
    restarts = pebble_calls.restarts
    state = converge(ctx, certify(ctx, state, provider, "rig-ca", hours=48))
    assert conf_file(tmp_path, TLS_PATHS.certificate) != before
    assert pebble_calls.restarts == restarts + 1
    assert trusted_files(tmp_path) == {fp(ca)}
    assert [fp(c) for c in json.loads(unit_data(state)["tls-cas"])] == [fp(ca)]


def test_clients_get_the_bundle_of_every_ca_in_use(ctx, tmp_path, ensemble, pebble_calls):
    kafka = testing.Relation(
        "zookeeper", remote_app_name=KAFKA["application"], remote_app_data=KAFKA["app"]
    )
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={"members": json.dumps({"1": address(0)})},
        # a unit not in the ensemble yet, already given a certificate from another CA
        peers_data={1: {"address": address(1), "tls-cas": json.dumps([CA2])}},
    )
    state = base_state(tmp_path, {peer, certificates(), kafka}, planned_units=1)
    state = certify(ctx, state, Provider(), "rig-ca")
    ca = provider_ca(state)
    state = converge(ctx, state)
    app_data = dict(state.get_relation(kafka.id).local_app_data)
    tls_secret = next(s for s in state.secrets if s.id == app_data["secret-tls"])
    published = (tls_secret.latest_content or {})["tls-ca"]
    assert bundle_fingerprints(published) == {fp(ca), fp(CA2)}
    assert trusted_files(tmp_path) == {fp(ca), fp(CA2)}
    assert "secureClientPort" in conf_file(tmp_path, CONF_PATH)


def test_a_server_started_by_the_previous_revision_keeps_its_certificate_too(
    ctx, tmp_path, ensemble, pebble_calls
):
    provider = Provider()
    state = certify(ctx, three_members(tmp_path), provider, "rig-ca")
    ca1 = provider_ca(state)
    state = converge(ctx, with_peers(state, [ca1], [ca1]))
    # what the previous revision recorded: no presented CA, no trusted CAs
    state_file = tmp_path / STATE_PATH.removeprefix("/pulsar/")
    recorded = json.loads(state_file.read_text())
    del recorded["presented-ca"], recorded["trusted-cas"]
    state_file.write_text(json.dumps(recorded))
    state = converge(ctx, certify(ctx, state, provider, "rig-ca-2"))
    assert presented_issuer(tmp_path) == "CN=rig-ca"
    assert trusted_files(tmp_path) == {fp(ca1), fp(provider_ca(state))}


def test_a_member_that_does_not_answer_still_asks_for_the_ca_it_presents(
    ctx, tmp_path, rotated, ensemble, pebble_calls
):
    state, ca1, ca2, _ = rotated
    state = converge(ctx, state)
    ensemble.is_ok = False  # restarting, or frozen: ruok unanswered
    state = running(ctx.run(ctx.on.update_status(), state))
    data = unit_data(state)
    assert data["started"] == "false" and "trusted-cas" not in data
    assert {fp(ca) for ca in json.loads(data["tls-cas"])} == {fp(ca1), fp(ca2)}


def test_clients_accept_the_two_ca_bundle_as_their_trust_store():
    from charms.pulsar_zookeeper_k8s.v0.zookeeper import ZooKeeperConnection, usable_tls_ca

    bundle = trust_bundle([CA1, CA2])
    connection = ZooKeeperConnection(("zk:2182",), "/c", "u", "p", "zk:2182/c", True, bundle)
    usable = usable_tls_ca(connection)
    assert usable is not None and bundle_fingerprints(usable) == {fp(CA1), fp(CA2)}
