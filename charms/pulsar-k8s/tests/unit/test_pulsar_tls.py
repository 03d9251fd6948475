"""TLS through the certificates relation: the core ``tls`` library, the broker's renderers, and
the reconcile with the real tls-certificates library on both sides (the rig's self-signed CA
stand-in answers the CSR the charm wrote), checked against the tls_certificates v1 schemas."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import timedelta
from pathlib import Path

import jsonschema
import ops
import pytest
from charmlibs.interfaces.tls_certificates import (
    Certificate,
    CertificateRequestAttributes,
    PrivateKey,
    ProviderCertificate,
)
from charms.pulsar_k8s.v0.pulsar_client import Endpoints
from charms.pulsar_k8s.v0.tls import (
    TlsState,
    certificate_request,
    material_from,
    parse_extra_sans,
    tls_sans,
)
from charms.pulsar_k8s.v0.validation import InvalidField
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st
from ops import testing
from pulsar_config import PulsarConfig
from pulsar_render import BROKER_CONF_PATH, PRIVATE_PATHS, BrokerInputs, render_broker_conf
from pulsar_tls import (
    NO_TLS,
    TLS_PATHS,
    BrokerTls,
    broker_tls_properties,
    client_tls_endpoints,
    functions_worker_tls_settings,
    internal_broker_url,
)
from test_pulsar_charm import (
    BK_URI,
    UNIT_ADDRESS,
    ZK_HOSTS,
    expected_files,
    full_state,
)

ROOT = Path(__file__).resolve().parents[4]
SCHEMAS = ROOT / "tests" / "interface-schemas" / "tls_certificates" / "v1"
sys.path.insert(0, str(ROOT / "tests" / "cluster" / "tls_provider_charm" / "src"))
from rig_tls_provider_charm import RigTlsProviderCharm  # noqa: E402  # pyright: ignore

APP, MODEL = "pulsar-k8s", "pulsar"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "pulsar"
    path.mkdir()
    return path


SERVICE = f"{APP}.{MODEL}.svc.cluster.local"


# -- the core library -------------------------------------------------------------------------


def test_sans_cover_the_pod_name_and_the_service_once():
    sans = tls_sans(f"{APP}/3", APP, MODEL, extra=(SERVICE, "pulsar.example.com"))
    assert sans[0] == f"{APP}-3.{APP}-endpoints.{MODEL}.svc.cluster.local"
    assert SERVICE in sans and "pulsar.example.com" in sans
    assert len(sans) == len(set(sans))


@given(st.from_regex(r"[a-z][a-z0-9-]{0,60}", fullmatch=True), st.integers(0, 999))
def test_common_name_fits_x509_whatever_the_app_name(app: str, number: int):
    request = certificate_request(f"{app}/{number}", tls_sans(f"{app}/{number}", app, "m"))
    assert len(request.common_name) <= 64
    assert request.is_valid()


def _ca() -> tuple[Certificate, PrivateKey]:
    key = PrivateKey.generate()
    attributes = CertificateRequestAttributes(common_name="test-ca", is_ca=True)
    return Certificate.generate_self_signed_ca(attributes, key, timedelta(days=1)), key


def _issued(key: PrivateKey, **overrides: object) -> ProviderCertificate:
    ca, ca_key = _ca()
    csr = certificate_request(f"{APP}/0", tls_sans(f"{APP}/0", APP, MODEL)).generate_csr(key)
    cert = Certificate.generate(csr=csr, ca=ca, ca_private_key=ca_key, validity=timedelta(hours=1))
    fields: dict[str, object] = {
        "relation_id": 1,
        "certificate": cert,
        "certificate_signing_request": csr,
        "ca": ca,
        "chain": [cert, ca],
    }
    return ProviderCertificate(**(fields | overrides))  # type: ignore[arg-type]


def test_material_is_the_leaf_the_ca_and_a_pkcs8_key_never_shown_in_repr():
    key = PrivateKey.generate()
    issued = _issued(key)
    material = material_from(issued, key)
    assert material.certificate.strip() == str(issued.certificate).strip()  # root not repeated
    assert material.ca.strip() == str(issued.ca).strip()
    assert material.private_key.startswith("-----BEGIN PRIVATE KEY-----")
    assert "PRIVATE" not in repr(material)
    assert f"{APP}-0.{APP}-endpoints.{MODEL}.svc.cluster.local" in material.sans
    files = material.files(TLS_PATHS)
    assert set(files) == {TLS_PATHS.certificate, TLS_PATHS.private_key, TLS_PATHS.ca}
    assert TLS_PATHS.private_key in PRIVATE_PATHS  # pushed 0600


def test_a_certificate_for_another_key_or_revoked_is_refused_naming_the_relation():
    key = PrivateKey.generate()
    with pytest.raises(InvalidField, match=r"^certificates relation: certificate does not match"):
        material_from(_issued(PrivateKey.generate()), key)
    with pytest.raises(InvalidField, match=r"^certificates relation: certificate is revoked"):
        material_from(_issued(key, revoked=True), key)


# -- the broker's renderers -------------------------------------------------------------------


def test_without_tls_the_broker_conf_is_unchanged():
    inputs = BrokerInputs(PulsarConfig(), UNIT_ADDRESS, ZK_HOSTS, BK_URI)
    assert render_broker_conf(inputs) == render_broker_conf(
        dataclasses.replace(inputs, tls=NO_TLS)
    )
    assert "Tls" not in render_broker_conf(inputs)
    assert broker_tls_properties(BrokerTls.of(TlsState(related=True), False)) == {}


@given(st.booleans())
def test_tls_listeners_trust_and_the_plain_port(plaintext: bool):
    properties = broker_tls_properties(BrokerTls(enabled=True, plaintext=plaintext))
    assert properties["brokerServicePortTls"] == "6651"
    assert properties["webServicePortTls"] == "8443"
    assert properties["tlsCertificateFilePath"] == TLS_PATHS.certificate
    assert properties["tlsKeyFilePath"] == TLS_PATHS.private_key
    assert properties["tlsTrustCertsFilePath"] == TLS_PATHS.ca
    assert properties["brokerClientTlsEnabled"] == "true"
    assert properties["brokerClientTrustCertsFilePath"] == TLS_PATHS.ca
    assert properties["tlsAllowInsecureConnection"] == "false"
    # Closed plain text: an empty port disables the listener; open: Pulsar's 6650 stays.
    assert ("brokerServicePort" in properties) is (not plaintext)
    assert properties.get("brokerServicePort", "") == ""
    url = internal_broker_url(UNIT_ADDRESS, BrokerTls(True, plaintext), 6650)
    assert url.startswith("pulsar://" if plaintext else "pulsar+ssl://")
    worker = functions_worker_tls_settings(BrokerTls(True, plaintext))
    assert bool(worker) is (not plaintext)


def test_client_urls_name_the_service_on_the_tls_ports():
    urls = client_tls_endpoints(APP, MODEL)
    assert urls.broker_service_url == f"pulsar+ssl://{SERVICE}:6651"
    assert urls.web_service_url == f"https://{SERVICE}:8443"
    assert urls.websocket_url == f"wss://{SERVICE}:8443/ws/v2"
    assert Endpoints(urls.broker_service_url, "", "").hosts == f"{SERVICE}:6651"


# -- the reconcile, with the real library on both sides ---------------------------------------


def _schema(side: str) -> dict:
    return json.loads((SCHEMAS / f"{side}.json").read_text())


def _validate_databag(side: str, model: str, field: str, item: str, databag: dict) -> None:
    """Validate a databag against a v1 model; its JSON-string field's items too."""
    schema = _schema(side)
    defs = schema["$defs"]
    jsonschema.validate(databag, {"$defs": defs, "$ref": f"#/$defs/{model}"})
    item_schema = defs[item]
    nullable = {
        name
        for name, spec in item_schema["properties"].items()
        if {"type": "null"} in spec.get("anyOf", [])
    }
    for entry in json.loads(databag[field]):
        # The library leaves out a nullable field that is unset (e.g. ``revoked``), where the
        # generated v1 schema lists it as required with null allowed: absent reads as null.
        entry = {name: None for name in nullable} | entry
        jsonschema.validate(entry, {"$defs": defs, "$ref": f"#/$defs/{item}"})


def _certificates(**kwargs: object) -> testing.Relation:
    return testing.Relation("certificates", remote_app_name="tls", **kwargs)  # type: ignore[arg-type]


def _with(state: testing.State, relation: testing.Relation, **kwargs: object) -> testing.State:
    relations = [r for r in state.relations if r.endpoint != "certificates"] + [relation]
    return dataclasses.replace(state, relations=relations, **kwargs)  # type: ignore[arg-type]


def test_requests_a_certificate_and_waits_for_it_without_touching_the_broker(ctx, root, calls):
    before = full_state(root, running=True, files=expected_files())
    relation = _certificates()
    out = ctx.run(ctx.on.relation_created(relation), _with(before, relation))
    assert out.unit_status == ops.WaitingStatus(
        "waiting for a certificate on the certificates relation"
    )
    assert calls.names() == []
    unit_data = out.get_relation(relation.id).local_unit_data
    _validate_databag(
        "requirer",
        "RequirerData",
        "certificate_signing_requests",
        "CertificateSigningRequest",
        dict(unit_data),
    )
    # The private key is in a unit-owned secret, and nowhere in the databags.
    keys = [s for s in out.secrets if "private-key" in (s.label or "")]
    assert len(keys) == 1 and keys[0].owner == "unit"
    assert "PRIVATE KEY" not in json.dumps(dict(unit_data))


def _certificates_of(state: testing.State) -> testing.Relation:
    (relation,) = [r for r in state.relations if r.endpoint == "certificates"]
    assert isinstance(relation, testing.Relation)
    return relation


def _answered(ctx, root, calls):
    """The charm's CSR answered by the rig's CA stand-in; returns (state with the answer, ca)."""
    before = full_state(root, running=True, files=expected_files())
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
    _validate_databag(
        "provider", "ProviderApplicationData", "certificates", "Certificate", provider_data
    )
    relation = dataclasses.replace(
        relation, local_unit_data=csr_data, remote_app_data=provider_data
    )
    state = _with(requested, relation)
    calls.log.clear()
    return state, json.loads(provider_data["certificates"])[0]["ca"]


def test_the_certificate_turns_tls_on_through_the_restart_lock(ctx, root, calls):
    state, ca = _answered(ctx, root, calls)
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status == ops.ActiveStatus("broker ready (cluster pulsar)"), out.unit_status
    assert "stop_draining" in calls.names() and "start_broker" in calls.names()
    conf = (root / Path(BROKER_CONF_PATH).relative_to("/pulsar")).read_text()
    assert "brokerServicePortTls=6651" in conf and "brokerServicePort=\n" in conf
    pem = root / Path(TLS_PATHS.private_key).relative_to("/pulsar")
    assert pem.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert (root / Path(TLS_PATHS.ca).relative_to("/pulsar")).read_text().strip() == ca.strip()
    # plain text closed: 6650 and 8080 alike (test_pulsar_probes: the charm uses 8443 then)
    assert {p.port for p in out.opened_ports} == {6651, 8443}

    # Converged: the next reconcile writes nothing.
    calls.log.clear()
    again = ctx.run(ctx.on.update_status(), out)
    assert calls.names() == []
    assert again.unit_status == out.unit_status


def test_plaintext_enabled_keeps_6650(ctx, root, calls):
    state, _ = _answered(ctx, root, calls)
    state = dataclasses.replace(state, config={"tls-plaintext-enabled": True})
    out = ctx.run(ctx.on.config_changed(), state)
    conf = (root / Path(BROKER_CONF_PATH).relative_to("/pulsar")).read_text()
    assert "brokerServicePortTls=6651" in conf and "brokerServicePort=6650\n" in conf
    assert {p.port for p in out.opened_ports} == {6650, 6651, 8080, 8443}


def test_removing_the_relation_returns_to_plain_text(ctx, root, calls):
    state, _ = _answered(ctx, root, calls)
    on = ctx.run(ctx.on.config_changed(), state)
    (relation,) = [r for r in on.relations if r.endpoint == "certificates"]
    gone = dataclasses.replace(on, relations=[r for r in on.relations if r is not relation])
    out = ctx.run(
        ctx.on.relation_broken(relation),
        dataclasses.replace(gone, relations=[*gone.relations, relation]),
    )
    conf = (root / Path(BROKER_CONF_PATH).relative_to("/pulsar")).read_text()
    assert "Tls" not in conf
    assert {p.port for p in out.opened_ports} == {6650, 8080}


@pytest.mark.parametrize(
    "certificates",
    [
        "not json",
        "[]",
        '[{"certificate": "x"}]',
        '[{"ca": "x", "certificate": "x", "certificate_signing_request": "x", "chain": []}]',
    ],
)
def test_a_malformed_answer_never_fails_the_hook_and_turns_nothing_on(
    ctx, root, calls, certificates
):
    state, _ = _answered(ctx, root, calls)
    relation = _certificates_of(state)
    broken = dataclasses.replace(relation, remote_app_data={"certificates": certificates})
    out = ctx.run(ctx.on.relation_changed(broken), _with(state, broken))
    assert out.unit_status.name == "waiting", out.unit_status
    assert "certificate" in out.unit_status.message
    assert calls.names() == []


def test_a_certificate_signed_for_another_csr_is_not_used(ctx, root, calls):
    state, _ = _answered(ctx, root, calls)
    relation = _certificates_of(state)
    answer = json.loads(relation.remote_app_data["certificates"])
    other = _issued(PrivateKey.generate())
    answer[0]["certificate"] = str(other.certificate)
    broken = dataclasses.replace(relation, remote_app_data={"certificates": json.dumps(answer)})
    out = ctx.run(ctx.on.relation_changed(broken), _with(state, broken))
    assert out.unit_status.name == "waiting", out.unit_status
    assert calls.names() == []


def test_extra_sans_from_config_are_in_the_request(ctx, root):
    before = full_state(
        root,
        running=True,
        files=expected_files(),
        config={"tls-extra-sans": " pulsar.example.com, ,lb.example.com"},
    )
    relation = _certificates()
    out = ctx.run(ctx.on.relation_created(relation), _with(before, relation))
    (request,) = json.loads(
        out.get_relation(relation.id).local_unit_data["certificate_signing_requests"]
    )
    csr = x509.load_pem_x509_csr(request["certificate_signing_request"].encode())
    names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"pulsar.example.com", "lb.example.com", SERVICE} <= set(
        names.get_values_for_type(x509.DNSName)
    )


@pytest.mark.parametrize("value", ["10.0.0.1", "bad name", "a..b", "x\ny", "ok.example.com,-x"])
def test_invalid_extra_sans_block_naming_the_option(ctx, root, calls, value):
    before = full_state(
        root, running=True, files=expected_files(), config={"tls-extra-sans": value}
    )
    relation = _certificates()
    out = ctx.run(ctx.on.relation_created(relation), _with(before, relation))
    assert out.unit_status == ops.BlockedStatus(
        "tls-extra-sans: comma-separated DNS names (no IP addresses)"
    )
    assert calls.names() == []


@given(st.text(max_size=80))
def test_parse_extra_sans_never_raises_and_keeps_only_host_names(text: str):
    names = parse_extra_sans(text)
    assert names is None or all(n and "," not in n and n.strip() == n for n in names)
