"""Bookie TLS (issue 9): the renderers, and the reconcile with the real tls-certificates
library on both sides (the rig's self-signed CA stand-in answers the CSR)."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import timedelta
from pathlib import Path

import ops
import pytest
import test_bookkeeper_charm
from bookkeeper_peer_state import parse
from bookkeeper_render import BookieInputs, bookkeeper_properties, metadata_service_uri
from bookkeeper_tls import (
    CERT_REFRESH_SECONDS,
    TLS_PATHS,
    TLS_PRIVATE_PATHS,
    bookie_tls_properties,
    tls_files,
)
from bookkeeper_workload import BookieWorkload
from charmlibs.interfaces.tls_certificates import (
    Certificate,
    CertificateRequestAttributes,
    PrivateKey,
)
from charms.bookkeeper_k8s.v0.bookkeeper import (
    BookKeeperInfo,
    BookKeeperRequirer,
    usable_tls_ca,
)
from charms.pulsar_k8s.v0.tls import (
    TLS_CAS_KEY,
    TRUSTED_CAS_KEY,
    TlsMaterial,
    TlsState,
    bundle_fingerprints,
    ca_fingerprint,
    parse_peer_trust,
)
from hypothesis import given
from hypothesis import strategies as st
from ops import testing
from test_bookkeeper_charm import ADDRESS, APP, container, peers, state
from test_bookkeeper_render import configs, endpoints, label

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "tests" / "cluster" / "tls_provider_charm" / "src"))
from rig_tls_provider_charm import RigTlsProviderCharm  # noqa: E402  # pyright: ignore

# the workload spy of the charm tests (a fixture)
calls = test_bookkeeper_charm.calls

CA = "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n"
MATERIAL = TlsMaterial(
    certificate="-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n",
    ca=CA,
    private_key="-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n",
)


def settings(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


# ---- renderers ----------------------------------------------------------------------------


@given(config=configs, zk=endpoints, chroot=label)
def test_tls_adds_only_the_tls_keys_and_changes_nothing_else(config, zk, chroot):
    uri = metadata_service_uri(zk, f"/{chroot}")
    plain = bookkeeper_properties(BookieInputs(ADDRESS, uri, config))
    tls = bookkeeper_properties(BookieInputs(ADDRESS, uri, config, tls=True))
    assert not any(key.startswith("tls") for key in plain)
    assert {k: v for k, v in tls.items() if not k.startswith("tls")} == plain
    assert {k: v for k, v in tls.items() if k.startswith("tls")} == bookie_tls_properties(True)
    # the brokers may keep the v2 wire protocol: START_TLS works with it in BookKeeper 4.17
    assert tls["useV2WireProtocol"] == "true"


def test_tls_keys_are_pem_stores_without_client_certificates_and_reload():
    conf = bookie_tls_properties(True)
    assert conf["tlsProviderFactoryClass"] == "org.apache.bookkeeper.tls.TLSContextFactory"
    assert (conf["tlsKeyStoreType"], conf["tlsTrustStoreType"]) == ("PEM", "PEM")
    assert conf["tlsKeyStore"] == TLS_PATHS.private_key
    assert conf["tlsCertificatePath"] == TLS_PATHS.certificate
    assert conf["tlsTrustStore"] == TLS_PATHS.ca
    assert conf["tlsClientAuthentication"] == "false"
    assert conf["tlsCertFilesRefreshDurationSeconds"] == str(CERT_REFRESH_SECONDS)
    assert bookie_tls_properties(False) == {}


def test_files_are_the_pem_material_and_the_key_is_private():
    files = tls_files(TlsState(related=True, material=MATERIAL))
    assert files == {
        TLS_PATHS.certificate: MATERIAL.certificate,
        TLS_PATHS.private_key: MATERIAL.private_key,
        TLS_PATHS.ca: CA,
    }
    assert tls_files(TlsState(related=True)) == {}
    workload = BookieWorkload.__new__(BookieWorkload)
    BookieWorkload.__init__(workload, container=None, address=ADDRESS)  # type: ignore[arg-type]
    assert workload._private_paths >= TLS_PRIVATE_PATHS


def test_peer_tls_reports_read_only_true_or_false():
    units = {
        f"{APP}/1": {"bookie-tls": "true"},
        f"{APP}/2": {"bookie-tls": "false"},
        f"{APP}/3": {"bookie-tls": "yes\nplease"},
        f"{APP}/4": {},
    }
    assert parse({}, units).bookie_tls == {f"{APP}/1": True, f"{APP}/2": False}


@given(ca=st.text(max_size=200))
def test_a_requirer_trusts_only_pem_certificates(ca):
    usable = usable_tls_ca(BookKeeperInfo("u", (), (), tls=True, tls_ca=ca))
    if usable is not None:
        assert usable.startswith("-----BEGIN CERTIFICATE-----\n")
        assert usable.endswith("-----END CERTIFICATE-----\n")
    assert usable_tls_ca(BookKeeperInfo("u", (), (), tls=False, tls_ca=ca)) == ""
    assert usable_tls_ca(BookKeeperInfo("u", (), (), tls=True, tls_ca=CA)) == CA


# ---- the reconcile ------------------------------------------------------------------------


def certificates() -> testing.Relation:
    return testing.Relation("certificates", remote_app_name="tls")


def brokers() -> testing.Relation:
    return testing.Relation("bookkeeper", remote_app_name="pulsar-k8s")


def _replace(st_: testing.State, relation: testing.RelationBase) -> testing.State:
    others = [r for r in st_.relations if r.id != relation.id]
    return dataclasses.replace(st_, relations=[*others, relation])


def answered(ctx: testing.Context, st_: testing.State) -> tuple[testing.State, str]:
    """Run relation-created, then put the rig CA's answer to the unit's CSR into the state."""
    relation = next(r for r in st_.relations if r.endpoint == "certificates")
    requested = ctx.run(ctx.on.relation_created(relation), st_)
    csr_data = dict(requested.get_relation(relation.id).local_unit_data)
    provider = testing.Context(RigTlsProviderCharm)
    request = testing.Relation(
        "certificates", remote_app_name=APP, remote_units_data={0: csr_data}
    )
    out = provider.run(
        provider.on.relation_changed(request, remote_unit=0),
        testing.State(leader=True, relations=[request]),
    )
    answer = dict(out.get_relation(request.id).local_app_data)
    assert isinstance(relation, testing.Relation)
    updated = dataclasses.replace(relation, local_unit_data=csr_data, remote_app_data=answer)
    return _replace(requested, updated), json.loads(answer["certificates"])[0]["ca"]


def conf_of(tmp_path: Path) -> dict[str, str]:
    return settings((tmp_path / "conf" / "bookkeeper.conf").read_text())


def tls_peers(others: dict[int, str]) -> testing.PeerRelation:
    """Peers 1 and 2 writable, reporting ``bookie-tls`` as given."""
    return testing.PeerRelation(
        "cluster",
        local_app_data={"bookkeeper-initialised": "true"},
        peers_data={
            n: {"bookie-state": "writable", **({"bookie-tls": tls} if tls else {})}
            for n, tls in others.items()
        },
    )


def test_waits_for_its_certificate_without_touching_the_bookie(ctx, storage, tmp_path, calls):
    relation = certificates()
    cont = container(storage, tmp_path, running=True)
    out = ctx.run(ctx.on.relation_created(relation), state(cont, extra=(relation,)))
    assert out.unit_status == ops.WaitingStatus(
        "waiting for a certificate on the certificates relation"
    )
    assert calls.log == []
    assert "certificate_signing_requests" in out.get_relation(relation.id).local_unit_data
    # the private key is in a unit-owned secret, never in a databag
    keys = [s for s in out.secrets if "private-key" in (s.label or "")]
    assert len(keys) == 1 and keys[0].owner == "unit"


def test_a_fresh_bookie_with_its_certificate_starts_serving_tls(ctx, storage, tmp_path, calls):
    cont = container(storage, tmp_path)
    st_, ca = answered(ctx, state(cont, peer=peers(), extra=(certificates(), brokers())))
    ctx.run(ctx.on.config_changed(), st_)
    conf = conf_of(tmp_path)
    assert conf["tlsProviderFactoryClass"] == "org.apache.bookkeeper.tls.TLSContextFactory"
    assert (tmp_path / "conf" / "tls" / "ca.pem").read_text().strip() == ca.strip()
    key = tmp_path / "conf" / "tls" / "private-key.pem"
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert oct(key.stat().st_mode & 0o777) == oct(0o600)
    assert calls.names().count("start_bookie") == 1
    assert "restart_bookie" not in calls.names()


def test_tls_on_a_running_bookie_restarts_once_through_the_lock_and_publishes(
    ctx, storage, tmp_path, calls
):
    cont = container(storage, tmp_path, running=True)
    bk = brokers()
    plain = ctx.run(
        ctx.on.update_status(), state(cont, peer=tls_peers({1: "true", 2: "true"}), extra=(bk,))
    )
    assert "tls" not in plain.get_relation(bk.id).local_app_data
    st_, ca = answered(ctx, _replace(plain, certificates()))
    calls.log.clear()
    restarted = ctx.run(ctx.on.config_changed(), st_)
    # one restart through the lock (a free lock: the leader takes it), the PEM files first
    assert calls.names().count("restart_bookie") == 1
    pushed = [args[0] for name, args in calls.log if name == "push"]
    assert TLS_PATHS.certificate in pushed[0]
    assert conf_of(tmp_path)["tlsTrustStore"] == TLS_PATHS.ca
    assert restarted.unit_status == ops.WaitingStatus("bookie restarted; waiting for it to answer")
    # it answers again: the lock is released and, every bookie serving TLS, the leader says so
    out = ctx.run(ctx.on.update_status(), restarted)
    peer = next(r for r in out.relations if r.endpoint == "cluster")
    assert out.get_relation(peer.id).local_unit_data["bookie-tls"] == "true"
    data = out.get_relation(bk.id).local_app_data
    assert data["tls"] == "enabled" and data["tls-ca"].strip() == ca.strip()
    assert calls.names().count("restart_bookie") == 1
    assert isinstance(out.unit_status, ops.ActiveStatus), out.unit_status

    # converged: nothing is written, nothing restarts
    calls.log.clear()
    again = ctx.run(ctx.on.update_status(), out)
    assert calls.log == []
    assert again.get_relation(bk.id).local_app_data == data


@pytest.mark.parametrize("peer_tls", ["false", ""])
def test_tls_is_published_only_once_every_started_bookie_serves_it(
    ctx, storage, tmp_path, peer_tls
):
    cont = container(storage, tmp_path)
    bk = brokers()
    st_, _ = answered(
        ctx, state(cont, peer=tls_peers({1: "true", 2: peer_tls}), extra=(bk, certificates()))
    )
    out = ctx.run(ctx.on.config_changed(), st_)
    out = ctx.run(ctx.on.update_status(), out)
    data = out.get_relation(bk.id).local_app_data
    # a peer still plain text withholds it; one that never reported has not started (and
    # starts only with its certificate)
    assert ("tls" in data) == (peer_tls == "")


def test_removing_certificates_returns_to_plain_text_with_one_restart(
    ctx, storage, tmp_path, calls
):
    cont = container(storage, tmp_path)
    bk = brokers()
    st_, _ = answered(
        ctx, state(cont, peer=tls_peers({1: "true", 2: "true"}), extra=(bk, certificates()))
    )
    on = ctx.run(ctx.on.update_status(), ctx.run(ctx.on.config_changed(), st_))
    assert on.get_relation(bk.id).local_app_data["tls"] == "enabled"
    relation = next(r for r in on.relations if r.endpoint == "certificates")
    gone = dataclasses.replace(on, relations=[r for r in on.relations if r.id != relation.id])
    calls.log.clear()
    out = ctx.run(
        ctx.on.relation_broken(relation),
        dataclasses.replace(gone, relations=[*gone.relations, relation]),
    )
    # one restart (the lock is free) in the relation-broken hook itself
    assert calls.names().count("restart_bookie") == 1
    out = dataclasses.replace(out, relations=[r for r in out.relations if r.id != relation.id])
    out = ctx.run(ctx.on.update_status(), out)
    out = ctx.run(ctx.on.update_status(), out)
    out = ctx.run(ctx.on.update_status(), out)
    assert calls.names().count("restart_bookie") == 1
    assert not any(key.startswith("tls") for key in conf_of(tmp_path))
    assert "tls" not in out.get_relation(bk.id).local_app_data
    assert "tls-ca" not in out.get_relation(bk.id).local_app_data
    peer = next(r for r in out.relations if r.endpoint == "cluster")
    assert out.get_relation(peer.id).local_unit_data["bookie-tls"] == "false"
    assert isinstance(out.unit_status, ops.ActiveStatus), out.unit_status


def test_the_requirer_reads_tls_and_the_ca(ctx, storage, tmp_path):
    class Requirer(ops.CharmBase):
        pass

    data = {
        "metadata-service-uri": "zk+hierarchical://h:2181/pulsar/ledgers",
        "bookies": "[]",
        "ready-bookies": "[]",
        "tls": "enabled",
        "tls-ca": CA,
    }
    requirer = testing.Context(
        Requirer,
        meta={"name": "pulsar-k8s", "requires": {"bookkeeper": {"interface": "bookkeeper"}}},
    )
    relation = testing.Relation("bookkeeper", remote_app_data=data)
    with requirer(requirer.on.update_status(), testing.State(relations=[relation])) as manager:
        info = BookKeeperRequirer(manager.charm).info()
        assert info is not None and info.tls and info.tls_ca == CA
    plain = testing.Relation("bookkeeper", remote_app_data={**data, "tls": ""})
    with requirer(requirer.on.update_status(), testing.State(relations=[plain])) as manager:
        info = BookKeeperRequirer(manager.charm).info()
        assert info is not None and not info.tls and info.tls_ca == ""


# ---- CA rotation: the relation publishes every bookie's CAs ---------------------------------


def _other_ca() -> str:
    """Another CA (PEM): the one a bookie still presents during a rotation."""
    key = PrivateKey.generate()
    attributes = CertificateRequestAttributes(common_name="other-ca", is_ca=True)
    return str(Certificate.generate_self_signed_ca(attributes, key, timedelta(days=1))) + "\n"


def test_the_relation_publishes_the_bundle_of_every_bookies_cas(ctx, storage, tmp_path, calls):
    other = _other_ca()
    cont = container(storage, tmp_path, running=True)
    bk = brokers()
    peer = tls_peers({1: "true", 2: "true"})
    peers_data = {
        # bookie 1 is still on another CA (a rotation under way); bookie 2 sends junk
        1: {**peer.peers_data[1], TLS_CAS_KEY: json.dumps([other]), TRUSTED_CAS_KEY: "[]"},
        2: {**peer.peers_data[2], TLS_CAS_KEY: '["not a certificate", 7]', TRUSTED_CAS_KEY: "x"},
    }
    peer = dataclasses.replace(peer, peers_data=peers_data)
    st_, ca = answered(ctx, state(cont, peer=peer, extra=(bk, certificates())))
    out = ctx.run(ctx.on.config_changed(), st_)
    out = ctx.run(ctx.on.update_status(), out)
    data = out.get_relation(bk.id).local_app_data
    assert data["tls"] == "enabled"
    assert bundle_fingerprints(data["tls-ca"]) == {ca_fingerprint(ca), ca_fingerprint(other)}
    # the bookie's own trust file is the same bundle; it asks for its own CA alone
    assert (tmp_path / "conf" / "tls" / "ca.pem").read_text() == data["tls-ca"]
    own = parse_peer_trust(out.get_relation(peer.id).local_unit_data)
    assert [ca_fingerprint(c) for c in own.cas] == [ca_fingerprint(ca)]
    # brokers accept the bundle as their BookKeeper trust
    info = BookKeeperInfo("u", (), (), tls=True, tls_ca=data["tls-ca"])
    assert usable_tls_ca(info) == data["tls-ca"]
    # bookie 1 moves to this CA: the other CA leaves the bundle
    moved = {**peers_data, 1: {**peers_data[1], TLS_CAS_KEY: json.dumps([ca])}}
    relation = dataclasses.replace(out.get_relation(peer.id), peers_data=moved)
    after = ctx.run(ctx.on.relation_changed(relation, remote_unit=1), _replace(out, relation))
    data = after.get_relation(bk.id).local_app_data
    assert bundle_fingerprints(data["tls-ca"]) == {ca_fingerprint(ca)}
