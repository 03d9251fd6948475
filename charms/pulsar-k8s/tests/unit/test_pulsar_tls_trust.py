"""CA rotation through trust bundles (core ``tls``, LIBPATCH 3): the pure parts.

The PEM bundle helpers (one parser for every charm), the published trust, and
``plan_reload``: one unit's certificate, trust file and published trust. A simulation walks a
rotation over three units in every order of hooks and of certificate arrivals, with a server
model that re-reads its files at most ``SETTLE_S`` after a push, and checks that no server
ever presents a certificate another server, or a client holding the published bundle, does not
trust.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from charmlibs.interfaces.tls_certificates import (
    Certificate,
    CertificateRequestAttributes,
    PrivateKey,
)
from charms.pulsar_k8s.v0.tls import (
    FRESH,
    PRESENTED_CA_PATH,
    RELOAD_CHECK,
    RELOAD_VIEW_PATH,
    SETTLE_S,
    SETTLED,
    TLS_CAS_KEY,
    TRUSTED_CAS_KEY,
    PeerTrust,
    RunningFiles,
    TlsMaterial,
    bundle_fingerprints,
    ca_fingerprint,
    files_settled,
    parse_peer_trust,
    peer_trust_data,
    plan_reload,
    reload_layer,
    split_certificates,
    trust_bundle,
)
from charms.pulsar_k8s.v0.view_check import record_content
from hypothesis import given
from hypothesis import strategies as st
from ops import pebble, testing
from pulsar_tls import TLS_PATHS
from test_pulsar_charm import SECRET, bk_relation, expected_files, peers, state, zk_relation
from test_pulsar_clients import admin, root  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "tests" / "cluster" / "tls_provider_charm" / "src"))
from rig_tls_provider_charm import RigTlsProviderCharm  # noqa: E402  # pyright: ignore


def _new_ca(name: str) -> str:
    key = PrivateKey.generate()
    attributes = CertificateRequestAttributes(common_name=name, is_ca=True)
    return str(Certificate.generate_self_signed_ca(attributes, key, timedelta(days=1))) + "\n"


CAS = [_new_ca(f"ca-{n}") for n in range(3)]
CA1, CA2, CA3 = CAS
FP1, FP2, FP3 = (ca_fingerprint(ca) for ca in CAS)


def material(ca: str, serial: str = "a") -> TlsMaterial:
    """A unit's certificate from ``ca`` (the leaf is opaque to the plan: a label)."""
    return TlsMaterial(
        certificate=f"leaf-{serial}-{ca_fingerprint(ca)[:8]}\n", ca=ca, private_key="k"
    )


def running(m: TlsMaterial, trust: str) -> RunningFiles:
    return RunningFiles(m.certificate, m.private_key, m.ca, trust)


# ---- the bundle helpers --------------------------------------------------------------------

garbage = st.sampled_from(
    [
        "",
        "not pem",
        "-----BEGIN CERTIFICATE-----\n!!notbase64!!\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\nQUJD",
        "-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----\n",
    ]
)


@given(st.lists(st.sampled_from(CAS) | garbage | st.text(max_size=80), max_size=8), st.randoms())
def test_the_bundle_holds_each_valid_ca_once_whatever_the_order(items, random):
    shuffled = list(items)
    random.shuffle(shuffled)
    bundle = trust_bundle(items)
    assert bundle == trust_bundle(shuffled) == trust_bundle([*items, *items])
    assert bundle_fingerprints(bundle) == {ca_fingerprint(ca) for ca in items if ca in CAS}
    assert bundle == "".join(split_certificates(bundle))


def test_split_keeps_certificates_of_any_line_layout_and_drops_the_rest():
    body = "".join(CA1.splitlines()[1:-1])
    crlf = "-----BEGIN CERTIFICATE-----\r\n" + body + "\r\n-----END CERTIFICATE-----\r\n"
    assert split_certificates(f"junk\n{crlf}\nmore junk\n{CA2}") == [CA1, CA2]


@given(st.dictionaries(st.sampled_from([TLS_CAS_KEY, TRUSTED_CAS_KEY, "x"]), st.text()))
def test_published_trust_from_anything_never_raises(data):
    trust = parse_peer_trust(data)
    assert all(split_certificates(ca) == [ca] for ca in trust.cas)


def test_published_trust_reads_back_and_ignores_malformed_entries():
    data = peer_trust_data(PeerTrust((CA1, CA2), frozenset({FP1})))
    assert parse_peer_trust(data) == PeerTrust((CA1, CA2), frozenset({FP1}))
    mixed = {
        TLS_CAS_KEY: json.dumps([CA1, "junk", 3, CA1 + CA2]),
        TRUSTED_CAS_KEY: json.dumps([FP2, "nothex", None]),
    }
    assert parse_peer_trust(mixed) == PeerTrust((CA1, CA2), frozenset({FP2}))
    assert parse_peer_trust({TLS_CAS_KEY: "{", TRUSTED_CAS_KEY: "7"}) == PeerTrust()
    # no TLS: both keys removed
    assert peer_trust_data(PeerTrust()) == {TLS_CAS_KEY: "", TRUSTED_CAS_KEY: ""}


def test_the_files_settle_after_the_refresh_period_plus_a_margin():
    assert files_settled(None, 0) and files_settled("garbage", 0)
    assert files_settled(record_content(SETTLED, 100), 100)
    assert not files_settled(record_content(FRESH, 100), 100 + SETTLE_S - 1)
    assert files_settled(record_content(FRESH, 100), 100 + SETTLE_S)
    assert files_settled("fresh notanumber", 0)


def test_the_reload_check_compares_the_recorded_view():
    (check,) = reload_layer()["checks"].items()
    assert check[0] == RELOAD_CHECK
    assert RELOAD_VIEW_PATH in check[1]["exec"]["command"]
    assert check[1]["threshold"] == 1 and "level" not in check[1]


# ---- one unit's plan -----------------------------------------------------------------------


def test_a_first_certificate_is_presented_at_once_with_its_ca_alone():
    new = material(CA1)
    plan = plan_reload(new, RunningFiles(), True, PeerTrust(), [])
    assert plan.material.certificate == new.certificate and plan.presented_ca == CA1
    assert plan.material.ca == CA1 and plan.published.cas == (CA1,)
    # nothing in the container yet: it trusts nothing for sure
    assert plan.published.trusted == frozenset()


def test_a_renewal_under_the_same_ca_is_presented_at_once():
    old, new = material(CA1, "a"), material(CA1, "b")
    peer = PeerTrust((CA1,), frozenset({FP1}))
    plan = plan_reload(new, running(old, CA1), True, PeerTrust((CA1,), frozenset({FP1})), [peer])
    assert plan.material.certificate == new.certificate
    assert plan.material.ca == CA1 and plan.published == PeerTrust((CA1,), frozenset({FP1}))


def test_a_new_ca_is_trusted_first_and_presented_once_every_unit_trusts_it():
    old, new = material(CA1), material(CA2)
    settled_old = PeerTrust((CA1,), frozenset({FP1}))
    # 1. the new certificate: keep presenting the old one, trust both, publish both
    plan = plan_reload(new, running(old, CA1), True, settled_old, [settled_old])
    assert plan.material.certificate == old.certificate and plan.presented_ca == CA1
    assert bundle_fingerprints(plan.material.ca) == {FP1, FP2}
    assert set(plan.published.cas) == {CA1, CA2} and plan.published.trusted == {FP1}
    own = plan.published
    both = trust_bundle([CA1, CA2])
    # 2. its own files settled, the peer not yet: still the old certificate
    plan = plan_reload(new, running(old, both), True, own, [settled_old])
    assert plan.material.certificate == old.certificate
    assert plan.published.trusted == {FP1, FP2}
    own = plan.published
    # 3. the peer trusts both: present the new certificate, keep asking for the old CA
    peer = PeerTrust((CA1,), frozenset({FP1, FP2}))
    plan = plan_reload(new, running(old, both), True, own, [peer])
    assert plan.material.certificate == new.certificate and plan.presented_ca == CA2
    assert set(plan.published.cas) == {CA1, CA2}
    own = plan.published
    # 4. pushed, not re-read yet (fresh): the old CA stays
    files = RunningFiles(new.certificate, new.private_key, CA2, both)
    plan = plan_reload(new, files, False, own, [peer])
    assert set(plan.published.cas) == {CA1, CA2}
    # 5. re-read (settled): this unit needs only the new CA; the peer still presents the old
    plan = plan_reload(new, files, True, own, [peer])
    assert plan.published.cas == (CA2,)
    assert bundle_fingerprints(plan.material.ca) == {FP1, FP2}
    # 6. the peer on the new CA alone: the old CA leaves the bundle
    peer = PeerTrust((CA2,), frozenset({FP1, FP2}))
    plan = plan_reload(new, files, True, plan.published, [peer])
    assert plan.material.ca == CA2 and plan.published.cas == (CA2,)
    assert plan.published.trusted == {FP2}


def test_a_peer_without_tls_or_unknown_trust_is_handled_safely():
    old, new = material(CA1), material(CA2)
    both = trust_bundle([CA1, CA2])
    own = PeerTrust((CA1, CA2), frozenset({FP1, FP2}))
    # a peer that publishes no CA runs no TLS: nobody to wait for
    plan = plan_reload(new, running(old, both), True, own, [PeerTrust()])
    assert plan.material.certificate == new.certificate
    # a peer with CAs but no trust published (unknown): wait
    plan = plan_reload(new, running(old, both), True, own, [PeerTrust((CA1,), None)])
    assert plan.material.certificate == old.certificate


def test_an_old_container_without_the_presented_ca_file_reads_its_ca_file():
    # files of an older revision: ca.pem held the CA of the certificate alone
    old, new = material(CA1), material(CA2)
    files = RunningFiles(old.certificate, old.private_key, CA1, CA1)
    plan = plan_reload(new, files, True, PeerTrust(), [])
    assert plan.material.certificate == old.certificate
    assert bundle_fingerprints(plan.material.ca) == {FP1, FP2}


# ---- a rotation over three units, every order ----------------------------------------------


@dataclass
class Unit:
    """One unit: its provider certificate, its container files and what its server reads."""

    newest: TlsMaterial
    files: RunningFiles
    # the files before the last push, which the server may still use until SETTLE_S after it
    previous: RunningFiles | None = None
    pushed_at: float = -1e9
    published: PeerTrust = field(default_factory=PeerTrust)

    def possible(self, now: float) -> list[RunningFiles]:
        if self.previous is not None and now - self.pushed_at < SETTLE_S:
            return [self.files, self.previous]
        return [self.files]


def _reconcile(units: list[Unit], n: int, now: float) -> bool:
    unit = units[n]
    peers = [u.published for i, u in enumerate(units) if i != n]
    plan = plan_reload(
        unit.newest, unit.files, now - unit.pushed_at >= SETTLE_S, unit.published, peers
    )
    files = RunningFiles(
        plan.material.certificate, plan.material.private_key, plan.presented_ca, plan.material.ca
    )
    changed = plan.published != unit.published
    if files != unit.files:
        unit.previous, unit.files, unit.pushed_at = unit.files, files, now
        changed = True
    unit.published = plan.published
    return changed


def _check_trust(units: list[Unit], now: float, clients: list[str]) -> None:
    """No server presents a CA another server or a client does not trust (in any state)."""
    for a, b in itertools.permutations(units, 2):
        for presented in {f.presented_ca for f in a.possible(now)}:
            for trust in b.possible(now):
                assert ca_fingerprint(presented) in bundle_fingerprints(trust.trust), now
    for a in units:
        for presented in {f.presented_ca for f in a.possible(now)}:
            for bundle in clients:
                assert ca_fingerprint(presented) in bundle_fingerprints(bundle), now


def _walk(hook_order: tuple[int, ...], arrivals: tuple[int, ...]) -> tuple[int, float]:
    """Rotate three settled units from CA1 to CA2; ``arrivals[n]``: the pass unit n's new
    certificate comes. Returns (passes, time) until every unit is on CA2 alone."""
    settled = PeerTrust((CA1,), frozenset({FP1}))
    units = [
        Unit(material(CA1, str(n)), running(material(CA1, str(n)), CA1), published=settled)
        for n in range(3)
    ]
    now, client_bundles = 0.0, [CA1]
    for step in range(60):
        for n in range(3):
            if arrivals[n] == step:
                units[n].newest = material(CA2, str(n))
        changed = True
        while changed:
            changed = False
            for n in hook_order:
                changed |= _reconcile(units, n, now)
                # the client relation publishes the bundle; clients hold it after SETTLE_S,
                # so until then they may still hold the previous one
                published = trust_bundle(ca for u in units for ca in u.published.cas)
                if published != client_bundles[-1]:
                    client_bundles.append(published)
                _check_trust(units, now, client_bundles)
        if all(u.files.trust == CA2 and u.files.presented_ca == CA2 for u in units) and all(
            u.published.cas == (CA2,) for u in units
        ):
            return step, now
        # nothing left to do in this pass: time passes, the reload checks fire
        now += SETTLE_S
        client_bundles = client_bundles[-1:]
    raise AssertionError("the rotation did not finish")


@pytest.mark.parametrize("hook_order", list(itertools.permutations(range(3))))
@pytest.mark.parametrize("arrivals", [(0, 0, 0), (0, 1, 2), (2, 0, 1), (0, 0, 3)])
def test_a_rotation_over_three_units_never_presents_an_untrusted_ca(hook_order, arrivals):
    steps, elapsed = _walk(hook_order, arrivals)
    # trust both, switch, drop the old CA: three settle periods after the last arrival
    assert steps <= max(arrivals) + 3, steps
    assert elapsed <= (max(arrivals) + 3) * SETTLE_S


# ---- the broker charm: a CA rotation with a peer, step by step (ops.testing) ----------------


def _file(base: Path, path: str) -> str:
    return (base / Path(path).relative_to("/pulsar")).read_text()


def _sign(csr_data: dict[str, str], common_name: str) -> dict[str, str]:
    """The rig's CA stand-in answers the CSR (a fresh provider: a new CA for each call)."""
    provider = testing.Context(RigTlsProviderCharm)
    request = testing.Relation(
        "certificates", remote_app_name="pulsar-k8s", remote_units_data={0: csr_data}
    )
    out = provider.run(
        provider.on.relation_changed(request, remote_unit=0),
        testing.State(leader=True, relations=[request], config={"ca-common-name": common_name}),
    )
    return dict(out.get_relation(request.id).local_app_data)


def _ca_of(answer: dict[str, str]) -> str:
    return json.loads(answer["certificates"])[0]["ca"]


def _relation(st_: testing.State, endpoint: str):
    return next(r for r in st_.relations if r.endpoint == endpoint)


def _with_peer(st_: testing.State, data: dict[str, str]) -> testing.State:
    peer = _relation(st_, "cluster")
    others = [r for r in st_.relations if r is not peer]
    return dataclasses.replace(
        st_, relations=[*others, dataclasses.replace(peer, peers_data={1: data})]
    )


def _settle(monkeypatch: pytest.MonkeyPatch, st_: testing.State, ctx) -> testing.State:
    """Time passes (SETTLE_S): the reload check fails and wakes the charm."""
    import time as time_module

    now = time_module.time() + SETTLE_S
    monkeypatch.setattr("charms.pulsar_k8s.v0.tls.time.time", lambda: now)
    check = testing.CheckInfo(
        RELOAD_CHECK, status=pebble.CheckStatus.DOWN, failures=1, threshold=1
    )
    container = dataclasses.replace(st_.get_container("pulsar"), check_infos={check})
    return ctx.run(
        ctx.on.pebble_check_failed(container, check),
        dataclasses.replace(st_, containers={container}),
    )


def _own(st_: testing.State) -> PeerTrust:
    return parse_peer_trust(_relation(st_, "cluster").local_unit_data)


def test_a_ca_rotation_with_a_peer_broker_trusts_both_switches_then_drops(
    ctx,
    root,  # noqa: F811
    admin,  # noqa: F811
    monkeypatch,
):
    peer_on = {TLS_CAS_KEY: "", TRUSTED_CAS_KEY: ""}
    relations = [zk_relation(SECRET), bk_relation(), peers(peer_units={1: peer_on})]
    certificates = testing.Relation("certificates", remote_app_name="tls")
    proxy = testing.Relation("pulsar-proxy", remote_app_name="pulsar-proxy-k8s")
    before = state(
        root,
        running=True,
        files=expected_files(),
        relations=[*relations, certificates, proxy],
        secrets=[SECRET],
        config={"tls-plaintext-enabled": True},
    )
    requested = ctx.run(ctx.on.relation_created(certificates), before)
    csr = dict(requested.get_relation(certificates.id).local_unit_data)
    first = _sign(csr, "ca-one")
    ca1 = _ca_of(first)
    answered = dataclasses.replace(
        _relation(requested, "certificates"), local_unit_data=csr, remote_app_data=first
    )
    on = ctx.run(
        ctx.on.relation_changed(answered),
        dataclasses.replace(
            requested,
            relations=[r for r in requested.relations if r.id != answered.id] + [answered],
        ),
    )
    on = ctx.run(ctx.on.update_status(), on)
    assert on.unit_status.name == "active", on.unit_status
    cert1 = _file(root, TLS_PATHS.certificate)
    assert _file(root, TLS_PATHS.ca) == trust_bundle([ca1])
    assert _file(root, PRESENTED_CA_PATH) == trust_bundle([ca1])
    assert _own(on).cas == tuple(split_certificates(ca1))
    assert _file(root, RELOAD_VIEW_PATH).split()[0] == FRESH
    assert RELOAD_CHECK in on.get_container("pulsar").plan.checks
    fp1 = ca_fingerprint(ca1)
    # the first files settle: the unit trusts CA 1; the peer runs CA 1 too
    on = _settle(monkeypatch, on, ctx)
    assert _own(on) == PeerTrust(tuple(split_certificates(ca1)), frozenset({fp1}))
    on = _with_peer(
        on, peer_trust_data(PeerTrust(tuple(split_certificates(ca1)), frozenset({fp1})))
    )
    on = ctx.run(ctx.on.update_status(), on)
    assert _file(root, RELOAD_VIEW_PATH).split()[0] == SETTLED

    # 1. the provider signs with a new CA: trust both, keep presenting the old certificate
    second = _sign(csr, "ca-two")
    ca2 = _ca_of(second)
    fp2 = ca_fingerprint(ca2)
    cert_rel = dataclasses.replace(_relation(on, "certificates"), remote_app_data=second)
    st_ = dataclasses.replace(
        on, relations=[r for r in on.relations if r.id != cert_rel.id] + [cert_rel]
    )
    step1 = ctx.run(ctx.on.relation_changed(cert_rel), st_)
    assert _file(root, TLS_PATHS.certificate) == cert1
    assert bundle_fingerprints(_file(root, TLS_PATHS.ca)) == {fp1, fp2}
    assert _own(step1).trusted == {fp1}
    assert {ca_fingerprint(ca) for ca in _own(step1).cas} == {fp1, fp2}
    offer = step1.get_relation(proxy.id).local_app_data
    assert bundle_fingerprints(offer["tls-ca"]) == {fp1, fp2}
    assert step1.unit_status.name == "active"

    # 2. its files settle; the peer does not trust CA 2 yet: still the old certificate
    step2 = _settle(monkeypatch, step1, ctx)
    assert _own(step2).trusted == {fp1, fp2}
    assert _file(root, TLS_PATHS.certificate) == cert1

    # 3. the peer trusts both: present the new certificate, still asking for both CAs
    both = tuple(split_certificates(trust_bundle([ca1, ca2])))
    step3 = ctx.run(
        ctx.on.update_status(),
        _with_peer(step2, peer_trust_data(PeerTrust(both, frozenset({fp1, fp2})))),
    )
    assert _file(root, TLS_PATHS.certificate) != cert1
    assert _file(root, PRESENTED_CA_PATH) == trust_bundle([ca2])
    assert {ca_fingerprint(ca) for ca in _own(step3).cas} == {fp1, fp2}

    # 4. re-read: this unit asks for CA 2 alone; the peer switched too: CA 1 leaves
    step4 = _settle(monkeypatch, step3, ctx)
    assert _own(step4).cas == tuple(split_certificates(ca2))
    step4 = ctx.run(
        ctx.on.update_status(),
        _with_peer(
            step4,
            peer_trust_data(PeerTrust(tuple(split_certificates(ca2)), frozenset({fp1, fp2}))),
        ),
    )
    assert _file(root, TLS_PATHS.ca) == trust_bundle([ca2])
    assert bundle_fingerprints(step4.get_relation(proxy.id).local_app_data["tls-ca"]) == {fp2}
    step5 = _settle(monkeypatch, step4, ctx)
    assert _own(step5) == PeerTrust(tuple(split_certificates(ca2)), frozenset({fp2}))
    assert step5.unit_status.name == "active"
    # converged: nothing more is written
    calls_before = _file(root, RELOAD_VIEW_PATH)
    again = ctx.run(ctx.on.update_status(), step5)
    assert _file(root, RELOAD_VIEW_PATH) == calls_before
    assert _own(again) == _own(step5)

    # the certificates relation removed: the unit publishes no CA any more
    cert_rel = _relation(again, "certificates")
    gone = ctx.run(ctx.on.relation_broken(cert_rel), again)
    unit_data = _relation(gone, "cluster").local_unit_data
    assert TLS_CAS_KEY not in unit_data and TRUSTED_CAS_KEY not in unit_data
