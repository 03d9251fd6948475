"""ZooKeeper TLS: the renderers, the quorum TLS stages, and the reconcile with the real
tls-certificates library on both sides (the rig's self-signed CA stand-in answers the CSR);
the `zookeeper` relation's TLS answer checked against the contract with Kafka 3's request."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import jsonschema
import ops
import pytest
from charms.pulsar_k8s.v0.tls import TlsMaterial, TlsState
from charms.pulsar_k8s.v0.validation import InvalidField
from hypothesis import given
from hypothesis import strategies as st
from ops import testing
from test_zookeeper_clients import address, base_state, running
from zookeeper_config import ZooKeeperConfig
from zookeeper_contract_schemas import fixture, strict_schema
from zookeeper_peer_state import parse
from zookeeper_render import CONF_PATH, render_static_config
from zookeeper_tls import (
    KEYSTORE_PATH,
    OFF,
    QUORUM_SETTINGS,
    STAGES,
    TLS,
    TLS_PATHS,
    TLS_PRIVATE_PATHS,
    TLS_UNIFIED,
    UNIFY,
    effective_stage,
    plan_stage,
    tls_files,
    tls_properties,
)
from zookeeper_workload import ZooKeeperWorkload

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "tests" / "cluster" / "tls_provider_charm" / "src"))
from rig_tls_provider_charm import RigTlsProviderCharm  # noqa: E402  # pyright: ignore

APP = "pulsar-zookeeper-k8s"
KAFKA = fixture("kafka3-request.json")
MATERIAL = TlsMaterial(
    certificate="-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n",
    ca="-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n",
    private_key="-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n",
)
ON = TlsState(related=True, material=MATERIAL)


def settings(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


# ---- renderers ----------------------------------------------------------------------------


def test_without_tls_the_static_config_is_plain_text_only():
    conf = settings(render_static_config(ZooKeeperConfig(), address(0)))
    assert (conf["sslQuorum"], conf["portUnification"]) == ("false", "false")
    assert not any(key.startswith(("ssl.", "secureClient", "serverCnxn")) for key in conf)


def test_a_certificate_opens_the_secure_client_port_with_pem_stores():
    conf = settings(
        render_static_config(ZooKeeperConfig(), address(0), tls_properties(ON, address(0), OFF))
    )
    assert conf["secureClientPort"] == "2182"
    assert conf["secureClientPortAddress"] == address(0)
    assert conf["serverCnxnFactory"] == "org.apache.zookeeper.server.NettyServerCnxnFactory"
    for prefix in ("ssl.", "ssl.quorum."):
        assert conf[f"{prefix}keyStore.location"] == KEYSTORE_PATH
        assert conf[f"{prefix}trustStore.location"] == TLS_PATHS.ca
        assert conf[f"{prefix}keyStore.type"] == conf[f"{prefix}trustStore.type"] == "PEM"
    assert conf["ssl.clientAuth"] == "none"  # clients log in with SASL
    assert conf["ssl.quorum.hostnameVerification"] == "true"
    # the quorum stays plain text until the leader's stage says otherwise
    assert (conf["sslQuorum"], conf["portUnification"]) == ("false", "false")


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_renders_its_quorum_settings(stage):
    conf = dict(tls_properties(ON, address(0), stage))
    expected = QUORUM_SETTINGS[stage]
    assert conf["sslQuorum"] == str(expected.ssl_quorum).lower()
    assert conf["portUnification"] == str(expected.port_unification).lower()


def test_a_unit_without_a_certificate_never_opens_tls_quorum_connections():
    for stage in STAGES:
        effective = effective_stage(stage, TlsState())
        assert not QUORUM_SETTINGS[effective].ssl_quorum
        if stage != OFF:
            # it still accepts the TLS members' connections
            assert QUORUM_SETTINGS[effective].port_unification


def test_key_store_is_the_key_then_the_chain_and_pushed_private():
    files = tls_files(ON.material)
    assert files[KEYSTORE_PATH] == MATERIAL.private_key + MATERIAL.certificate
    assert files[TLS_PATHS.ca] == MATERIAL.ca
    assert {TLS_PATHS.private_key, KEYSTORE_PATH} == TLS_PRIVATE_PATHS
    assert tls_files(None) == {}


def test_the_workload_pushes_keys_0600(tmp_path):
    workload = ZooKeeperWorkload.__new__(ZooKeeperWorkload)
    ZooKeeperWorkload.__init__(workload, container=None)  # type: ignore[arg-type]
    assert workload._private_paths >= TLS_PRIVATE_PATHS


# ---- stages -------------------------------------------------------------------------------


@given(
    current=st.sampled_from(STAGES),
    target_tls=st.booleans(),
    applied=st.lists(st.sampled_from([*STAGES, None]), min_size=1, max_size=5),
)
def test_a_running_ensemble_moves_one_stage_once_every_member_runs_the_current(
    current, target_tls, applied
):
    stage = plan_stage(current, target_tls, applied, any_started=True)
    step = STAGES.index(stage) - STAGES.index(current)
    assert step in (0, 1 if target_tls else -1)
    if step:
        assert all(a == current for a in applied)
    elif all(a == current for a in applied):
        assert current == (TLS if target_tls else OFF)


def test_the_walk_to_tls_and_back_goes_through_unified_ports():
    walk, stage = [OFF], OFF
    while stage != TLS:
        stage = plan_stage(stage, True, [stage, stage, stage], any_started=True)
        walk.append(stage)
    assert walk == [OFF, UNIFY, TLS_UNIFIED, TLS]
    while stage != OFF:
        stage = plan_stage(stage, False, [stage] * 3, any_started=True)
        walk.append(stage)
    assert walk[4:] == [TLS_UNIFIED, UNIFY, OFF]


def test_before_any_member_started_the_target_is_taken_at_once():
    assert plan_stage(OFF, True, [None, None], any_started=False) == TLS


def test_once_no_member_has_a_certificate_plain_text_is_taken_at_once():
    assert plan_stage(TLS, False, [TLS, TLS], any_started=True, any_certificate=False) == OFF
    # while some member still has one, the walk back goes step by step
    assert plan_stage(TLS, False, [TLS, TLS], any_started=True) == TLS_UNIFIED


def test_a_bad_stage_in_the_app_databag_is_refused_naming_it():
    with pytest.raises(InvalidField, match="quorum-tls-stage"):
        parse({"quorum-tls-stage": "on\nsslQuorum=false"}, {})
    unit = {"address": address(1), "quorum-tls": "bogus", "secure-port": "true"}
    peer = parse({}, {f"{APP}/1": unit}).peers[2]
    assert (peer.quorum_tls, peer.secure_port) == (None, True)


# ---- the reconcile ------------------------------------------------------------------------


def certificates(**kwargs: object) -> testing.Relation:
    return testing.Relation("certificates", remote_app_name="tls", **kwargs)  # type: ignore[arg-type]


def single(tmp_path: Path, *relations: testing.Relation, app_data=None) -> testing.State:
    peer = testing.PeerRelation(
        "cluster",
        local_app_data={"members": json.dumps({"1": address(0)}), **(app_data or {})},
    )
    return base_state(tmp_path, {peer, *relations}, planned_units=1)


def answered(ctx, state: testing.State) -> testing.State:
    """Run relation-created, then put the rig CA's answer to the unit's CSR into the state."""
    relation = next(r for r in state.relations if r.endpoint == "certificates")
    requested = ctx.run(ctx.on.relation_created(relation), state)
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
    updated = dataclasses.replace(relation, local_unit_data=csr_data, remote_app_data=answer)
    others = [r for r in requested.relations if r.id != relation.id]
    return dataclasses.replace(requested, relations={*others, updated})


def conf_of(tmp_path: Path) -> dict[str, str]:
    return settings((tmp_path / CONF_PATH.removeprefix("/pulsar/")).read_text())


def test_waits_for_its_certificate_without_starting_anything(
    ctx, tmp_path, ensemble, pebble_calls
):
    relation = certificates()
    out = ctx.run(ctx.on.relation_created(relation), single(tmp_path, relation))
    assert out.unit_status == ops.WaitingStatus(
        "waiting for a certificate on the certificates relation"
    )
    assert pebble_calls.starts == 0 and pebble_calls.pushes == []
    assert "certificate_signing_requests" in out.get_relation(relation.id).local_unit_data


def test_a_fresh_ensemble_with_certificates_starts_with_quorum_tls_at_once(
    ctx, tmp_path, ensemble, pebble_calls
):
    state = answered(ctx, single(tmp_path, certificates()))
    out = running(ctx.run(ctx.on.config_changed(), state))
    conf = conf_of(tmp_path)
    assert conf["secureClientPort"] == "2182"
    assert (conf["sslQuorum"], conf["portUnification"]) == ("true", "false")
    assert pebble_calls.starts == 1 and pebble_calls.restarts == 0
    peer = next(r for r in out.relations if r.endpoint == "cluster")
    assert out.get_relation(peer.id).local_unit_data["quorum-tls"] == TLS


def test_the_certificate_serves_2182_and_the_leader_walks_the_quorum_to_tls(
    ctx, tmp_path, ensemble, pebble_calls
):
    # a running member (started published) gets the certificates relation
    plain = running(ctx.run(ctx.on.config_changed(), single(tmp_path)))
    plain = running(ctx.run(ctx.on.update_status(), plain))
    relation = certificates()
    with_relation = dataclasses.replace(plain, relations={*plain.relations, relation})
    state = answered(ctx, with_relation)
    out = running(ctx.run(ctx.on.config_changed(), state))
    conf = conf_of(tmp_path)
    assert conf["secureClientPort"] == "2182"
    assert conf["sslQuorum"] == "false" and conf["portUnification"] == "true"
    keystore = (tmp_path / KEYSTORE_PATH.removeprefix("/pulsar/")).read_text()
    assert keystore.startswith("-----BEGIN PRIVATE KEY-----") and "CERTIFICATE" in keystore
    assert {p.port for p in out.opened_ports} == {2181, 2182}
    peer = next(r for r in out.relations if r.endpoint == "cluster")
    assert out.get_relation(peer.id).local_unit_data["secure-port"] == "true"

    # the single member walks the stages: each one a restart (here: the lock is free)
    stages = [out.get_relation(peer.id).local_app_data.get("quorum-tls-stage")]
    for _ in range(8):
        out = running(ctx.run(ctx.on.update_status(), out))
        stages.append(out.get_relation(peer.id).local_app_data.get("quorum-tls-stage"))
        # the lock of a one-unit application: grant what it asks
        data = out.get_relation(peer.id)
        if data.local_unit_data.get("restart-request"):
            assert isinstance(data, testing.PeerRelation)
            granted = dataclasses.replace(
                data, local_app_data={**data.local_app_data, "restart-granted": f"{APP}/0"}
            )
            out = dataclasses.replace(
                out, relations={*(r for r in out.relations if r.id != peer.id), granted}
            )
    assert [s for i, s in enumerate(stages) if s != stages[i - 1] or i == 0] == [
        UNIFY,
        TLS_UNIFIED,
        TLS,
    ]
    conf = conf_of(tmp_path)
    assert (conf["sslQuorum"], conf["portUnification"]) == ("true", "false")
    assert out.get_relation(peer.id).local_unit_data["quorum-tls"] == TLS
    assert isinstance(out.unit_status, ops.ActiveStatus), out.unit_status

    # converged: nothing is written again
    pushes, restarts = list(pebble_calls.pushes), pebble_calls.restarts
    again = running(ctx.run(ctx.on.update_status(), out))
    assert (pebble_calls.pushes, pebble_calls.restarts) == (pushes, restarts)
    assert again.unit_status == out.unit_status


def test_kafka_gets_tls_the_ca_and_2182_endpoints_in_the_secrets_it_asked_for(
    ctx, tmp_path, ensemble, pebble_calls
):
    tls_relation = certificates()
    kafka = testing.Relation(
        "zookeeper", remote_app_name=KAFKA["application"], remote_app_data=KAFKA["app"]
    )
    state = answered(ctx, single(tmp_path, tls_relation, kafka))
    out = running(ctx.run(ctx.on.config_changed(), state))
    for _ in range(3):  # the member publishes its secure port and users; the leader answers
        out = running(ctx.run(ctx.on.update_status(), out))
    app_data = dict(out.get_relation(kafka.id).local_app_data)
    assert app_data["endpoints"] == f"{address(0)}:2182"
    assert "tls" not in app_data and "tls-ca" not in app_data  # Kafka asked them as secrets
    tls_secret = next(s for s in out.secrets if s.id == app_data["secret-tls"])
    content = tls_secret.latest_content or {}
    assert content["tls"] == "enabled"
    assert content["tls-ca"].startswith("-----BEGIN CERTIFICATE-----")
    user_secret = next(s for s in out.secrets if s.id == app_data["secret-user"])
    assert (user_secret.latest_content or {})["uris"] == f"{address(0)}:2182/kafka-k8s"
    contract = {k: v for k, v in app_data.items() if k != "chroot"}  # Kafka's legacy echo
    jsonschema.validate({"app": contract}, strict_schema("provider"))


def test_the_super_user_session_goes_over_tls_once_the_ensemble_serves_2182(
    ctx, tmp_path, ensemble, pebble_calls
):
    # The session adds the super user's digest credential in the clear: once the ensemble
    # serves 2182, it must go there, over TLS, trusting the same CAs as the clients.
    tls_relation = certificates()
    state = answered(ctx, single(tmp_path, tls_relation))
    out = running(ctx.run(ctx.on.config_changed(), state))
    for _ in range(3):
        out = running(ctx.run(ctx.on.update_status(), out))
    # the only session so far closed 2181 (tls-plaintext-enabled=false), over TLS already
    assert ("move-client-addresses", "closed") in ensemble.calls
    assert all(ensemble.tls_cas)
    ensemble.tls_cas.clear()
    kafka = testing.Relation(
        "zookeeper", remote_app_name=KAFKA["application"], remote_app_data=KAFKA["app"]
    )
    out = dataclasses.replace(out, relations={*out.relations, kafka})
    for _ in range(2):
        out = running(ctx.run(ctx.on.relation_changed(out.get_relation(kafka.id)), out))
    app_data = dict(out.get_relation(kafka.id).local_app_data)
    assert app_data["endpoints"] == f"{address(0)}:2182"
    published = next(s for s in out.secrets if s.id == app_data["secret-tls"]).latest_content
    assert ensemble.tls_cas, "no session granted the new client's chroot"
    assert set(ensemble.tls_cas) == {(published or {})["tls-ca"]}


def test_removing_the_certificates_relation_closes_2182(ctx, tmp_path, ensemble, pebble_calls):
    relation = certificates()
    state = answered(ctx, single(tmp_path, relation))
    on = running(ctx.run(ctx.on.config_changed(), state))
    assert conf_of(tmp_path)["secureClientPort"] == "2182"
    restarts = pebble_calls.restarts
    gone = dataclasses.replace(on, relations={r for r in on.relations if r.id != relation.id})
    out = ctx.run(
        ctx.on.relation_broken(relation),
        dataclasses.replace(gone, relations={*gone.relations, relation}),
    )
    # the running server restarts through the lock (a one-unit leader grants itself)
    assert pebble_calls.restarts == restarts + 1
    assert not any(key.startswith(("ssl.", "secureClient")) for key in conf_of(tmp_path))
    assert {p.port for p in out.opened_ports} == {2181}
