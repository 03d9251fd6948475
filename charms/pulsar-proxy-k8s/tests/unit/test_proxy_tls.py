"""The proxy's TLS: pure renderers (both directions) and the reconcile with the real
tls-certificates library on both sides (the rig's self-signed CA stand-in answers the CSR)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import ops
import pytest
from charms.pulsar_k8s.v0.pulsar_client import REQUESTED_SECRETS
from charms.pulsar_k8s.v0.tls import TlsState
from hypothesis import given
from hypothesis import strategies as st
from ops import testing
from proxy_clients import proxy_endpoints
from proxy_config import ProxyConfig
from proxy_render import (
    PRIVATE_PATHS,
    PROXY_CONF_PATH,
    ProxyInputs,
    ProxySecrets,
    proxy_files,
    proxy_properties,
)
from proxy_tls import (
    BROKER_CA_PATH,
    NO_TLS,
    TLS_PATHS,
    ProxyTls,
    open_ports,
    proxy_serving_tls_properties,
)
from test_proxy_charm import (
    ADDRESS,
    BROKERS,
    KEY,
    OFFER_DATA,
    TOKEN,
    container,
    proxy_relation,
    proxy_secret,
    state,
)
from test_proxy_clients import answers, broker_client_secret, client_relation

ROOT = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(ROOT / "tests" / "cluster" / "tls_provider_charm" / "src"))
from rig_tls_provider_charm import RigTlsProviderCharm  # noqa: E402  # pyright: ignore

APP, MODEL = "pulsar-proxy-k8s", "pulsar"
SERVICE = f"{APP}.{MODEL}.svc.cluster.local"
BROKER_CA = "-----BEGIN CERTIFICATE-----\n" + "Q0FD" * 16 + "\n-----END CERTIFICATE-----\n"
BROKER_TLS = {
    "broker-service-url-tls": f"pulsar+ssl://{BROKERS}:6651",
    "web-service-url-tls": f"https://{BROKERS}:8443",
    "tls-ca": BROKER_CA,
}


def _inputs(
    config: ProxyConfig | None = None, *, brokers_tls: bool = False, tls: ProxyTls = NO_TLS
) -> ProxyInputs:
    return ProxyInputs(
        config or ProxyConfig(),
        ADDRESS,
        "pulsar",
        OFFER_DATA["broker-service-url"],
        OFFER_DATA["web-service-url"],
        OFFER_DATA["metadata-store"],
        broker_service_url_tls=BROKER_TLS["broker-service-url-tls"] if brokers_tls else "",
        web_service_url_tls=BROKER_TLS["web-service-url-tls"] if brokers_tls else "",
        broker_tls_ca=BROKER_CA if brokers_tls else "",
        tls=tls,
    )


SECRETS = ProxySecrets(TOKEN, KEY, "relation-4", "pw")


# -- pure renderers ---------------------------------------------------------------------------


def test_without_tls_proxy_conf_has_no_tls_key():
    properties = proxy_properties(_inputs())
    assert not [k for k in properties if "Tls" in k or "TLS" in k]
    assert properties["servicePort"] == "6650"
    assert BROKER_CA_PATH not in proxy_files(_inputs(), SECRETS)
    assert proxy_serving_tls_properties(ProxyTls.of(TlsState(related=True), False)) == {}


@given(st.booleans(), st.booleans(), st.booleans())
def test_tls_in_each_direction_is_independent(brokers_tls: bool, serving: bool, plaintext: bool):
    tls = ProxyTls(enabled=True, plaintext=plaintext) if serving else NO_TLS
    properties = proxy_properties(_inputs(brokers_tls=brokers_tls, tls=tls))
    # Towards the brokers: every connection over TLS, CA-checked, host names verified.
    assert (properties.get("tlsEnabledWithBroker") == "true") is brokers_tls
    if brokers_tls:
        assert properties["brokerServiceURLTLS"] == f"pulsar+ssl://{BROKERS}:6651"
        assert properties["brokerWebServiceURLTLS"] == f"https://{BROKERS}:8443"
        assert properties["functionWorkerWebServiceURLTLS"] == f"https://{BROKERS}:8443"
        assert properties["brokerClientTrustCertsFilePath"] == BROKER_CA_PATH
        assert properties["tlsHostnameVerificationEnabled"] == "true"
    # Towards the clients: the TLS listeners; 6650 closes unless plain text stays enabled.
    assert (properties.get("servicePortTls") == "6651") is serving
    assert (properties.get("webServicePortTls") == "8443") is serving
    if serving:
        assert properties["tlsCertificateFilePath"] == TLS_PATHS.certificate
        assert properties["tlsKeyFilePath"] == TLS_PATHS.private_key
        assert properties["tlsTrustCertsFilePath"] == TLS_PATHS.ca
        assert properties["tlsCertRefreshCheckDurationSec"] == "60"
    assert properties["servicePort"] == ("6650" if plaintext or not serving else "")
    # 8080 closes with 6650 (the charm's probes and Prometheus then use 8443: proxy_probes)
    assert properties["webServicePort"] == ("8080" if plaintext or not serving else "")
    files = proxy_files(_inputs(brokers_tls=brokers_tls, tls=tls), SECRETS)
    assert (files.get(BROKER_CA_PATH) == BROKER_CA) is brokers_tls
    ports = open_ports(tls, 6650, 8080)
    assert (6650 in ports) is (plaintext or not serving)
    assert ({6651, 8443} <= set(ports)) is serving
    assert (8080 in ports) is (plaintext or not serving)


def test_the_key_file_is_private_and_the_cas_are_separate_files():
    assert TLS_PATHS.private_key in PRIVATE_PATHS
    assert BROKER_CA_PATH not in (TLS_PATHS.ca, TLS_PATHS.certificate)


def test_client_endpoints_are_the_tls_ones_with_the_ca():
    plain = proxy_endpoints(APP, MODEL)
    assert plain.broker_service_url == f"pulsar://{SERVICE}:6650" and not plain.tls_ca
    tls = proxy_endpoints(APP, MODEL, BROKER_CA)
    assert tls.broker_service_url == f"pulsar+ssl://{SERVICE}:6651"
    assert tls.web_service_url == f"https://{SERVICE}:8443"
    assert tls.websocket_url == f"wss://{SERVICE}:8443/ws/v2"
    assert tls.tls_ca == BROKER_CA


# -- the reconcile ----------------------------------------------------------------------------


def _conf(out: testing.State, ctx: testing.Context) -> str:
    fs = out.get_container("pulsar").get_filesystem(ctx)
    return (fs / PROXY_CONF_PATH.lstrip("/")).read_text()


def test_brokers_tls_restarts_the_proxy_onto_tls_then_nothing_changes(ctx, tmp_path, calls):
    cont = container(tmp_path, running=True)
    secret = proxy_secret()
    relation = proxy_relation(secret, **BROKER_TLS)
    out = ctx.run(ctx.on.relation_changed(relation), state(cont, relation=relation, secret=secret))
    assert "restart_proxy" in calls.names()
    conf = _conf(out, ctx)
    assert "tlsEnabledWithBroker=true" in conf
    assert f"brokerServiceURLTLS=pulsar+ssl\\://{BROKERS}\\:6651" in conf or (
        f"brokerServiceURLTLS=pulsar+ssl://{BROKERS}:6651" in conf
    )
    fs = out.get_container("pulsar").get_filesystem(ctx)
    assert (fs / BROKER_CA_PATH.lstrip("/")).read_text() == BROKER_CA
    # Restarted: the next reconcile records the live view only; the one after writes nothing.
    calls.log.clear()
    again = ctx.run(ctx.on.update_status(), out)
    assert "restart_proxy" not in calls.names()
    calls.log.clear()
    ctx.run(ctx.on.update_status(), again)
    assert calls.log == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({**BROKER_TLS, "tls-ca": "not a certificate"}, "tls-ca"),
        ({"broker-service-url-tls": BROKER_TLS["broker-service-url-tls"]}, "tls-ca"),
        ({**BROKER_TLS, "web-service-url-tls": "http://x:8443"}, "web-service-url-tls"),
    ],
)
def test_a_bad_brokers_tls_offer_waits_naming_the_field_and_changes_nothing(
    ctx, tmp_path, calls, overrides, field
):
    cont = container(tmp_path, running=True)
    secret = proxy_secret()
    relation = proxy_relation(secret, **overrides)
    out = ctx.run(ctx.on.relation_changed(relation), state(cont, relation=relation, secret=secret))
    assert out.unit_status.name == "waiting"
    assert out.unit_status.message.startswith(f"pulsar-proxy relation: {field} ")
    assert calls.log == []


def _certificates(**kwargs: object) -> testing.Relation:
    return testing.Relation("certificates", remote_app_name="tls", **kwargs)  # type: ignore[arg-type]


def _with(st_: testing.State, relation: testing.Relation, **kwargs: object) -> testing.State:
    relations = [r for r in st_.relations if r.endpoint != "certificates"] + [relation]
    return dataclasses.replace(st_, relations=relations, **kwargs)  # type: ignore[arg-type]


def test_requests_a_certificate_and_waits_for_it_without_touching_the_proxy(ctx, tmp_path, calls):
    before = state(container(tmp_path, running=True))
    relation = _certificates()
    out = ctx.run(ctx.on.relation_created(relation), _with(before, relation))
    assert out.unit_status == ops.WaitingStatus(
        "waiting for a certificate on the certificates relation"
    )
    assert calls.log == []
    (request,) = json.loads(
        out.get_relation(relation.id).local_unit_data["certificate_signing_requests"]
    )
    assert "PRIVATE KEY" not in json.dumps(request)


def _answered(ctx, tmp_path, calls, config: dict | None = None):
    """The proxy's CSR answered by the rig's CA stand-in: (state with the answer, ca PEM)."""
    before = state(container(tmp_path, running=True), config=config)
    relation = _certificates()
    requested = ctx.run(ctx.on.relation_created(relation), _with(before, relation))
    csr_data = dict(requested.get_relation(relation.id).local_unit_data)
    provider = testing.Context(RigTlsProviderCharm)
    request = testing.Relation(
        "certificates", remote_app_name=APP, remote_units_data={0: csr_data}
    )
    answered = provider.run(
        provider.on.relation_changed(request, remote_unit=0),
        testing.State(leader=True, relations=[request]),
    )
    provider_data = dict(answered.get_relation(request.id).local_app_data)
    relation = dataclasses.replace(
        relation, local_unit_data=csr_data, remote_app_data=provider_data
    )
    calls.log.clear()
    return _with(requested, relation), json.loads(provider_data["certificates"])[0]["ca"]


def test_the_certificate_turns_tls_on_through_the_restart_lock(ctx, tmp_path, calls):
    st_, ca = _answered(ctx, tmp_path, calls)
    out = ctx.run(ctx.on.config_changed(), st_)
    assert "restart_proxy" in calls.names()
    conf = _conf(out, ctx)
    assert "servicePortTls=6651" in conf and "webServicePortTls=8443" in conf
    assert "servicePort=\n" in conf  # plain text closed by default
    fs = out.get_container("pulsar").get_filesystem(ctx)
    key = fs / TLS_PATHS.private_key.lstrip("/")
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert (fs / TLS_PATHS.ca.lstrip("/")).read_text().strip() == ca.strip()
    assert {p.port for p in out.opened_ports} == {6651, 8443}
    assert "webServicePort=\n" in conf
    # Converged: the next reconcile records the live view only; the one after writes nothing.
    calls.log.clear()
    again = ctx.run(ctx.on.update_status(), out)
    assert "restart_proxy" not in calls.names()
    calls.log.clear()
    again = ctx.run(ctx.on.update_status(), again)
    assert calls.log == []
    assert again.unit_status == ops.ActiveStatus("proxy ready (cluster pulsar, TLS)")


def test_a_renewed_certificate_is_pushed_without_a_restart(ctx, tmp_path, calls):
    """The PEM files are no restart input: the proxy re-reads them."""
    st_, _ = _answered(ctx, tmp_path, calls)
    out = ctx.run(ctx.on.config_changed(), st_)
    out = ctx.run(ctx.on.update_status(), out)
    # What a renewal looks like on disk: the pushed certificate differs from the answer.
    certificate = tmp_path / "conf" / "tls" / "certificate.pem"
    issued = certificate.read_text()
    certificate.write_text("an older certificate\n")
    calls.log.clear()
    out = ctx.run(ctx.on.update_status(), out)
    assert certificate.read_text() == issued
    assert "push" in calls.names() and "restart_proxy" not in calls.names()
    assert out.unit_status == ops.ActiveStatus("proxy ready (cluster pulsar, TLS)")


def test_plaintext_enabled_keeps_6650(ctx, tmp_path, calls):
    st_, _ = _answered(ctx, tmp_path, calls, config={"tls-plaintext-enabled": True})
    out = ctx.run(ctx.on.config_changed(), st_)
    conf = _conf(out, ctx)
    assert "servicePortTls=6651" in conf and "servicePort=6650\n" in conf
    assert {p.port for p in out.opened_ports} == {6650, 6651, 8080, 8443}


def test_client_relations_get_the_proxys_tls_urls_and_ca(ctx, tmp_path, calls):
    """Served through the TLS proxy: the client gets its pulsar+ssl/https/wss URLs and CA."""
    st_, ca = _answered(ctx, tmp_path, calls)
    client = client_relation(
        {"namespace": "shop/orders", "requested-secrets": json.dumps(list(REQUESTED_SECRETS))}
    )
    token_secret = broker_client_secret()
    relations = []
    for relation in st_.relations:
        if getattr(relation, "endpoint", "") == "pulsar-proxy":
            assert isinstance(relation, testing.Relation)
            answer = answers(client, token_secret)
            data = {**relation.remote_app_data, "client-answers": answer}
            relation = dataclasses.replace(relation, remote_app_data=data)
        relations.append(relation)
    st_ = dataclasses.replace(
        st_, relations=[*relations, client], secrets={*st_.secrets, token_secret}
    )
    out = ctx.run(ctx.on.relation_changed(client), st_)
    data = out.get_relation(client.id).local_app_data
    assert data["broker-service-url"] == f"pulsar+ssl://{SERVICE}:6651"
    assert data["web-service-url"] == f"https://{SERVICE}:8443"
    assert data["websocket-url"] == f"wss://{SERVICE}:8443/ws/v2"
    tls = out.get_secret(id=data["secret-tls"]).latest_content
    assert tls["tls"] == "enabled" and tls["tls-ca"].strip() == ca.strip()
    assert "PRIVATE KEY" not in json.dumps(dict(data))


def test_removing_the_relation_returns_to_plain_text(ctx, tmp_path, calls):
    st_, _ = _answered(ctx, tmp_path, calls)
    on = ctx.run(ctx.on.config_changed(), st_)
    (relation,) = [r for r in on.relations if r.endpoint == "certificates"]
    gone = dataclasses.replace(on, relations=[r for r in on.relations if r is not relation])
    out = ctx.run(
        ctx.on.relation_broken(relation),
        dataclasses.replace(gone, relations=[*gone.relations, relation]),
    )
    conf = _conf(out, ctx)
    assert "servicePortTls" not in conf and "servicePort=6650\n" in conf
    assert {p.port for p in out.opened_ports} == {6650, 8080}


@pytest.mark.parametrize(
    "certificates",
    ["not json", "[]", '[{"ca": "x", "certificate": "x", "certificate_signing_request": "x"}]'],
)
def test_a_malformed_answer_never_fails_the_hook_and_turns_nothing_on(
    ctx, tmp_path, calls, certificates
):
    st_, _ = _answered(ctx, tmp_path, calls)
    (relation,) = [r for r in st_.relations if r.endpoint == "certificates"]
    assert isinstance(relation, testing.Relation)
    broken = dataclasses.replace(relation, remote_app_data={"certificates": certificates})
    out = ctx.run(ctx.on.relation_changed(broken), _with(st_, broken))
    assert out.unit_status.name == "waiting", out.unit_status
    assert "certificate" in out.unit_status.message
    assert calls.log == []


@pytest.mark.parametrize("value", ["10.0.0.1", "bad name", "x\ny"])
def test_invalid_extra_sans_block_naming_the_option(ctx, tmp_path, calls, value):
    before = state(container(tmp_path, running=True), config={"tls-extra-sans": value})
    relation = _certificates()
    out = ctx.run(ctx.on.relation_created(relation), _with(before, relation))
    assert out.unit_status == ops.BlockedStatus(
        "tls-extra-sans: comma-separated DNS names (no IP addresses)"
    )
    assert calls.log == []


def test_extra_sans_are_in_the_request(ctx, tmp_path):
    from cryptography import x509

    before = state(container(tmp_path), config={"tls-extra-sans": "proxy.example.com"})
    relation = _certificates()
    out = ctx.run(ctx.on.relation_created(relation), _with(before, relation))
    (request,) = json.loads(
        out.get_relation(relation.id).local_unit_data["certificate_signing_requests"]
    )
    csr = x509.load_pem_x509_csr(request["certificate_signing_request"].encode())
    names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"proxy.example.com", SERVICE, ADDRESS} <= set(names.get_values_for_type(x509.DNSName))
