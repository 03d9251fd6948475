"""A new CA for the proxy's own certificate: trust bundles first, then the switch (issue 9).

The proxy runs the core ``ReloadingTrust`` on its ``cluster`` peer relation, as the brokers do:
on a CA change it publishes the old and the new CA to its client relations and keeps presenting
its old certificate; it presents the new one once its own trust file held both CAs for
``SETTLE_S`` (the clients had the bundle that long) and every peer proxy trusts the new CA;
the old CA leaves ``SETTLE_S`` after the switch. Every step is woken by the ``tls-reload``
Pebble check, never update-status, and nothing restarts the proxy. A renewal under the same CA
is presented at once. The real tls-certificates library runs on both sides (the rig's CA).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time as time_module
from pathlib import Path
from typing import Any

import pytest
from charms.pulsar_k8s.v0.pulsar_client import REQUESTED_SECRETS
from charms.pulsar_k8s.v0.tls import (
    PRESENTED_CA_PATH,
    RELOAD_CHECK,
    RELOAD_VIEW_PATH,
    SETTLE_S,
    TLS_CAS_KEY,
    TRUSTED_CAS_KEY,
    PeerTrust,
    TlsMaterial,
    TlsState,
    bundle_fingerprints,
    ca_fingerprint,
    parse_peer_trust,
    peer_trust_data,
    split_certificates,
    trust_bundle,
)
from hypothesis import given
from hypothesis import strategies as st
from ops import pebble, testing
from proxy_tls import TLS_PATHS, published_tls_state
from test_proxy_charm import container, proxy_relation, proxy_secret, state
from test_proxy_clients import answers, broker_client_secret, client_relation

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "tests" / "cluster" / "tls_provider_charm" / "src"))
from rig_tls_provider_charm import RigTlsProviderCharm  # noqa: E402  # pyright: ignore

APP = "pulsar-proxy-k8s"


class Provider:
    """The rig's CA application, kept across calls (a new CA name makes a new CA)."""

    def __init__(self) -> None:
        self.ctx = testing.Context(RigTlsProviderCharm)
        self.state = testing.State(leader=True)

    def sign(self, csr_data: dict[str, str], **config: object) -> dict[str, str]:
        request = testing.Relation(
            "certificates", remote_app_name=APP, remote_units_data={0: csr_data}
        )
        st_ = dataclasses.replace(
            self.state,
            relations=[request],
            config={**self.state.config, **config},  # type: ignore[dict-item]
        )
        self.state = self.ctx.run(self.ctx.on.relation_changed(request, remote_unit=0), st_)
        data = dict(self.state.get_relation(request.id).local_app_data)
        self.state = dataclasses.replace(self.state, relations=[])
        return data


def _ca_of(answer: dict[str, str]) -> str:
    return json.loads(answer["certificates"])[0]["ca"]


def _fp(ca: str) -> str:
    return ca_fingerprint(ca)


def _relation(st_: testing.State, endpoint: str) -> Any:
    return next(r for r in st_.relations if r.endpoint == endpoint)


def _replace_relation(st_: testing.State, relation) -> testing.State:
    others = [r for r in st_.relations if r.id != relation.id]
    return dataclasses.replace(st_, relations=[*others, relation])


def _with_peer(st_: testing.State, trust: PeerTrust) -> testing.State:
    peer = _relation(st_, "cluster")
    return _replace_relation(
        st_, dataclasses.replace(peer, peers_data={1: peer_trust_data(trust)})
    )


def _peer_changed(ctx, st_: testing.State, trust: PeerTrust) -> testing.State:
    """The peer proxy publishes ``trust``: its relation-changed wakes this unit."""
    new = _with_peer(st_, trust)
    return ctx.run(ctx.on.relation_changed(_relation(new, "cluster"), remote_unit=1), new)


def _own(st_: testing.State) -> PeerTrust:
    return parse_peer_trust(_relation(st_, "cluster").local_unit_data)


def _file(ctx, st_: testing.State, path: str) -> str:
    fs = st_.get_container("pulsar").get_filesystem(ctx)
    return (fs / path.lstrip("/")).read_text()


def _client_ca(st_: testing.State, client: testing.Relation) -> str:
    data = st_.get_relation(client.id).local_app_data
    return st_.get_secret(id=data["secret-tls"]).latest_content["tls-ca"]  # type: ignore[index]


def _settle(monkeypatch: pytest.MonkeyPatch, ctx, st_: testing.State) -> testing.State:
    """SETTLE_S pass: the tls-reload check fails and wakes the charm (no update-status)."""
    now = time_module.time() + SETTLE_S
    monkeypatch.setattr("charms.pulsar_k8s.v0.tls.time.time", lambda: now)
    check = testing.CheckInfo(
        RELOAD_CHECK, status=pebble.CheckStatus.DOWN, failures=1, threshold=1
    )
    cont = dataclasses.replace(st_.get_container("pulsar"), check_infos={check})
    return ctx.run(
        ctx.on.pebble_check_failed(cont, check), dataclasses.replace(st_, containers={cont})
    )


def _serving_proxy(ctx, tmp_path: Path, calls, provider: Provider, peer: PeerTrust):
    """A running TLS proxy (CA from ``provider``), a peer proxy and a served client."""
    client = client_relation(
        {"namespace": "shop/orders", "requested-secrets": json.dumps(list(REQUESTED_SECRETS))}
    )
    token_secret = broker_client_secret()
    offer_secret = proxy_secret()
    brokers = proxy_relation(offer_secret, **{"client-answers": answers(client, token_secret)})
    certificates = testing.Relation("certificates", remote_app_name="tls")
    base = state(container(tmp_path, running=True), relation=brokers, secret=offer_secret)
    base = dataclasses.replace(
        base,
        relations=[
            testing.PeerRelation("cluster", peers_data={1: peer_trust_data(peer)}),
            brokers,
            client,
            certificates,
        ],
        secrets={*base.secrets, token_secret},
    )
    requested = ctx.run(ctx.on.relation_created(certificates), base)
    csr = dict(requested.get_relation(certificates.id).local_unit_data)
    answered = dataclasses.replace(
        _relation(requested, "certificates"),
        local_unit_data=csr,
        remote_app_data=provider.sign(csr),
    )
    on = ctx.run(ctx.on.relation_changed(answered), _replace_relation(requested, answered))
    on = ctx.run(ctx.on.update_status(), on)  # restarted onto TLS: the view recorded
    calls.log.clear()
    return on, client, csr


def _new_answer(on: testing.State, answer: dict[str, str]) -> testing.Relation:
    return dataclasses.replace(_relation(on, "certificates"), remote_app_data=answer)


def test_a_new_ca_is_published_first_presented_after_the_settle_then_the_old_one_leaves(
    ctx, tmp_path, calls, monkeypatch
):
    provider = Provider()
    on, client, csr = _serving_proxy(ctx, tmp_path, calls, provider, PeerTrust())
    ca1 = _ca_of(dict(_relation(on, "certificates").remote_app_data))
    fp1 = _fp(ca1)
    cert1 = _file(ctx, on, TLS_PATHS.certificate)
    assert on.unit_status.name == "active", on.unit_status
    assert _file(ctx, on, TLS_PATHS.ca) == trust_bundle([ca1])
    assert _file(ctx, on, PRESENTED_CA_PATH) == trust_bundle([ca1])
    assert bundle_fingerprints(_client_ca(on, client)) == {fp1}
    assert RELOAD_CHECK in on.get_container("pulsar").plan.checks
    # the first files settle; the peer proxy serves CA 1 and trusts it
    on = _settle(monkeypatch, ctx, on)
    one_trusted = PeerTrust(tuple(split_certificates(ca1)), frozenset({fp1}))
    assert _own(on) == one_trusted
    on = ctx.run(ctx.on.update_status(), _with_peer(on, one_trusted))
    calls.log.clear()

    # 1. the provider signs with a new CA: clients get both CAs, the old certificate stays
    second = provider.sign(csr, **{"ca-common-name": "rig-ca-2"})
    ca2 = _ca_of(second)
    fp2 = _fp(ca2)
    relation = _new_answer(on, second)
    step1 = ctx.run(ctx.on.relation_changed(relation), _replace_relation(on, relation))
    assert _file(ctx, step1, TLS_PATHS.certificate) == cert1
    assert bundle_fingerprints(_file(ctx, step1, TLS_PATHS.ca)) == {fp1, fp2}
    assert bundle_fingerprints(_client_ca(step1, client)) == {fp1, fp2}
    assert {_fp(ca) for ca in _own(step1).cas} == {fp1, fp2} and _own(step1).trusted == {fp1}
    assert _file(ctx, step1, RELOAD_VIEW_PATH).split()[0] == "fresh"
    # another event before the settle changes nothing
    step1 = ctx.run(ctx.on.update_status(), step1)
    assert _file(ctx, step1, TLS_PATHS.certificate) == cert1

    # 2. its own files settled; the peer does not trust CA 2 yet: still the old certificate
    step2 = _settle(monkeypatch, ctx, step1)
    assert _own(step2).trusted == {fp1, fp2}
    assert _file(ctx, step2, TLS_PATHS.certificate) == cert1

    # 3. the peer trusts both: present the new certificate; clients still get both CAs
    both = tuple(split_certificates(trust_bundle([ca1, ca2])))
    step3 = _peer_changed(ctx, step2, PeerTrust(both, frozenset({fp1, fp2})))
    assert _file(ctx, step3, TLS_PATHS.certificate) != cert1
    assert _file(ctx, step3, PRESENTED_CA_PATH) == trust_bundle([ca2])
    assert bundle_fingerprints(_client_ca(step3, client)) == {fp1, fp2}

    # 4. re-read: this unit needs CA 2 alone; once the peer does too, CA 1 leaves everywhere
    step4 = _settle(monkeypatch, ctx, step3)
    assert _own(step4).cas == tuple(split_certificates(ca2))
    assert bundle_fingerprints(_client_ca(step4, client)) == {fp1, fp2}  # the peer's CA 1
    two_alone = PeerTrust(tuple(split_certificates(ca2)), frozenset({fp1, fp2}))
    step4 = _peer_changed(ctx, step4, two_alone)
    assert _file(ctx, step4, TLS_PATHS.ca) == trust_bundle([ca2])
    assert bundle_fingerprints(_client_ca(step4, client)) == {fp2}
    step5 = _settle(monkeypatch, ctx, step4)
    assert _own(step5) == PeerTrust(tuple(split_certificates(ca2)), frozenset({fp2}))
    assert step5.unit_status.name == "active", step5.unit_status
    # the whole rotation restarted nothing: the proxy re-reads its PEM files
    assert "restart_proxy" not in calls.names() and "stop_proxy" not in calls.names()
    # converged: the next reconcile writes nothing
    calls.log.clear()
    again = ctx.run(ctx.on.update_status(), step5)
    assert calls.log == [] and _own(again) == _own(step5)


def test_a_renewal_under_the_same_ca_is_presented_at_once(ctx, tmp_path, calls, monkeypatch):
    provider = Provider()
    on, client, csr = _serving_proxy(ctx, tmp_path, calls, provider, PeerTrust())
    on = _settle(monkeypatch, ctx, on)
    cert1 = _file(ctx, on, TLS_PATHS.certificate)
    ca = _ca_of(dict(_relation(on, "certificates").remote_app_data))
    renewed = provider.sign(csr, **{"certificate-validity-hours": 48})
    assert _ca_of(renewed) == ca
    relation = _new_answer(on, renewed)
    calls.log.clear()
    out = ctx.run(ctx.on.relation_changed(relation), _replace_relation(on, relation))
    # no settle: the new certificate is in the file in the same hook, nothing restarts
    assert _file(ctx, out, TLS_PATHS.certificate) not in ("", cert1)
    assert _file(ctx, out, TLS_PATHS.ca) == trust_bundle([ca])
    assert _own(out).cas == tuple(split_certificates(ca))
    assert bundle_fingerprints(_client_ca(out, client)) == {_fp(ca)}
    assert "restart_proxy" not in calls.names()
    assert out.unit_status.name == "active", out.unit_status


def test_removing_the_certificates_relation_withdraws_the_published_cas(ctx, tmp_path, calls):
    provider = Provider()
    on, _, _ = _serving_proxy(ctx, tmp_path, calls, provider, PeerTrust())
    assert _own(on).cas
    gone = ctx.run(ctx.on.relation_broken(_relation(on, "certificates")), on)
    unit_data = _relation(gone, "cluster").local_unit_data
    assert TLS_CAS_KEY not in unit_data and TRUSTED_CAS_KEY not in unit_data


def test_without_the_brokers_offer_clients_keep_every_published_ca(ctx, tmp_path, calls):
    """A reconcile that stops before the files converge still relays both CAs."""
    provider = Provider()
    on, client, csr = _serving_proxy(ctx, tmp_path, calls, provider, PeerTrust())
    ca1 = _ca_of(dict(_relation(on, "certificates").remote_app_data))
    answer2 = provider.sign(csr, **{"ca-common-name": "rig-ca-2"})
    ca2 = _ca_of(answer2)
    # the peer proxy still presents CA 1; the brokers' offer lost its secret
    peer = PeerTrust(tuple(split_certificates(ca1)), frozenset({_fp(ca1)}))
    st_ = _with_peer(on, peer)
    relation = _new_answer(st_, answer2)
    brokers = _relation(st_, "pulsar-proxy")
    data = {k: v for k, v in brokers.remote_app_data.items() if k != "secret-proxy"}
    st_ = _replace_relation(
        _replace_relation(st_, relation), dataclasses.replace(brokers, remote_app_data=data)
    )
    out = ctx.run(ctx.on.relation_changed(relation), st_)
    assert out.unit_status.name == "waiting", out.unit_status
    assert {_fp(ca1), _fp(ca2)} <= bundle_fingerprints(_client_ca(out, client))


_CAS = [
    "-----BEGIN CERTIFICATE-----\n" + letter * 64 + "\n-----END CERTIFICATE-----\n"
    for letter in "QRST"
]


@given(
    st.sampled_from(_CAS),
    st.lists(st.lists(st.sampled_from(_CAS), max_size=3), max_size=3),
)
def test_the_published_ca_covers_the_provider_and_every_unit(provider_ca, published):
    material = TlsMaterial(certificate="leaf\n", ca=provider_ca, private_key="k")
    trusts = [PeerTrust(tuple(cas)) for cas in published]
    out = published_tls_state(TlsState(related=True, material=material), trusts)
    assert out.material is not None
    wanted = {_fp(provider_ca), *(_fp(ca) for cas in published for ca in cas)}
    assert bundle_fingerprints(out.material.ca) == wanted
    assert out.material.certificate == "leaf\n" and out.material.private_key == "k"
    # without TLS, nothing is published
    assert published_tls_state(TlsState(related=True), trusts) == TlsState(related=True)
