"""Plain text closed (``tls-plaintext-enabled=false`` with a certificate): no HTTP 8080.

The renderers (broker.conf, client.conf, functions_worker.yml, the layer's checks, the view
scripts), the charm's own HTTPS calls and probes run for real against a local HTTPS server
with a throwaway CA (curl and bash, as in the image), the scrape job, and the reconcile with
the real tls-certificates library on both sides.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import shlex
import ssl
import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import ops
import pulsar_admin
import pytest
from charmlibs.interfaces.tls_certificates import (
    Certificate,
    CertificateRequestAttributes,
    PrivateKey,
)
from charms.pulsar_k8s.v0.observability import MetricsEndpoint, scrape_jobs
from charms.pulsar_k8s.v0.tls import with_previous_ca
from hypothesis import given
from hypothesis import strategies as st
from ops import testing
from pulsar_charm import metrics_endpoint
from pulsar_cluster_record import CLUSTER_TLS_URL_KEY, cluster_tls_urls, updated_record
from pulsar_cluster_record import converge as converge_record
from pulsar_config import PulsarConfig
from pulsar_probes import (
    PLAIN_WEB,
    PROBE_CA_PATH,
    WebAccess,
    plain_web_open,
    web_access,
)
from pulsar_render import (
    BROKER_CONF_PATH,
    BROKER_TOKEN_PATH,
    CLIENT_CONF_PATH,
    BrokerInputs,
    functions_worker_settings,
    pebble_layer,
    ready_check_command,
    render_broker_conf,
    render_client_conf,
)
from pulsar_tls import BrokerTls
from pulsar_view import DOWN, READY, functions_view_layer, state_script, view_layer
from test_pulsar_charm import BK_URI, UNIT_ADDRESS, ZK_HOSTS
from test_pulsar_tls import _answered

TLS_ONLY = BrokerTls(enabled=True, plaintext=False)
# the real functions (the autouse fake_broker fixture replaces them in pulsar_admin)
BROKER_READY = pulsar_admin.broker_ready
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
HTTPS = WebAccess(tls=True, ca=CA_PEM)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "pulsar"
    path.mkdir()
    return path


def _inputs(tls: BrokerTls, **config: object) -> BrokerInputs:
    return BrokerInputs(PulsarConfig(**config), UNIT_ADDRESS, ZK_HOSTS, BK_URI, tls)  # type: ignore[arg-type]


# -- which way the charm goes ------------------------------------------------------------------


@given(st.booleans(), st.booleans(), st.sampled_from(["", CA_PEM]))
def test_https_only_with_a_certificate_plain_text_closed_and_a_ca(enabled, plaintext, ca):
    tls = BrokerTls(enabled=enabled, plaintext=plaintext)
    web = web_access(tls, ca or None)
    assert plain_web_open(tls) is (not enabled or plaintext)
    if enabled and not plaintext and ca:
        assert web == WebAccess(tls=True, ca=ca)
        assert web.url("b") == "https://b:8443"
    else:
        assert web == PLAIN_WEB and web.url("b") == "http://b:8080"
        assert web.ssl_context() is None
    assert CA_PEM not in repr(web)


def test_an_unusable_ca_is_refused_never_ignored():
    with pytest.raises(ssl.SSLError):
        HTTPS.ssl_context()
    with pytest.raises(ValueError):
        WebAccess(tls=True, ca=" ").ssl_context()
    # an admin call with it fails, it does not fall back to an unverified connection
    assert pulsar_admin.request("GET", "https://b:8443/x", web=HTTPS).status == 0


def test_the_probe_bundle_keeps_the_ca_a_rotation_replaced_until_the_next_one():
    old, new, newer = _other_ca(), _other_ca(), _other_ca()
    first = with_previous_ca(old, None)
    assert first.strip() == old.strip()
    assert with_previous_ca(old, first) == first  # unchanged: nothing written
    rotated = with_previous_ca(new, first)
    assert rotated == new.strip() + "\n" + old.strip() + "\n"
    assert with_previous_ca(new, rotated) == rotated
    assert with_previous_ca(newer, rotated) == newer.strip() + "\n" + new.strip() + "\n"
    # both verify: a context from the bundle loads two CAs
    context = WebAccess(tls=True, ca=rotated).ssl_context()
    assert context is not None and len(context.get_ca_certs()) == 2


# -- the renderers ----------------------------------------------------------------------------


@given(st.booleans(), st.booleans(), st.booleans())
def test_broker_conf_closes_8080_only_with_tls_and_plain_text_closed(enabled, plaintext, fw):
    tls = BrokerTls(enabled=enabled, plaintext=plaintext)
    inputs = _inputs(tls, functions_worker_enabled=fw)
    conf = render_broker_conf(inputs)
    client = render_client_conf(UNIT_ADDRESS, tls)
    worker = functions_worker_settings(inputs)
    if plain_web_open(tls):
        assert "webServicePort=8080\n" in conf
        assert f"webServiceUrl=http://{UNIT_ADDRESS}:8080/" in client
        assert worker["pulsarWebServiceUrl"] == f"http://{UNIT_ADDRESS}:8080"
        assert worker["workerPort"] == 8080 and "workerPortTls" not in worker
    else:
        assert "webServicePort=\n" in conf and "webServicePortTls=8443\n" in conf
        assert f"webServiceUrl=https://{UNIT_ADDRESS}:8443/" in client
        assert "tlsTrustCertsFilePath=" in client
        assert worker["pulsarWebServiceUrl"] == f"https://{UNIT_ADDRESS}:8443"
        assert worker["workerPortTls"] == 8443 and "workerPort" not in worker


def test_without_tls_or_with_plain_text_the_checks_are_unchanged():
    config = PulsarConfig()
    for tls in (BrokerTls(), BrokerTls(enabled=True, plaintext=True)):
        web = web_access(tls, CA_PEM)
        assert pebble_layer(config, UNIT_ADDRESS, web=web) == pebble_layer(config, UNIT_ADDRESS)
        assert view_layer(UNIT_ADDRESS, web) == view_layer(UNIT_ADDRESS)
        layer = pebble_layer(config, UNIT_ADDRESS, web=web)
        assert layer["checks"]["broker-alive"]["http"]["url"].startswith("http://")
        assert "/dev/tcp" in layer["checks"]["broker-ready"]["exec"]["command"]
        assert "curl" not in json.dumps(layer) + json.dumps(view_layer(UNIT_ADDRESS, web))


def test_with_plain_text_closed_every_check_uses_8443_and_the_ca_file():
    layer = pebble_layer(PulsarConfig(), UNIT_ADDRESS, web=HTTPS)
    alive = layer["checks"]["broker-alive"]
    assert "http" not in alive
    assert shlex.split(alive["exec"]["command"]) == [
        "curl",
        "-sf",
        "-o",
        "/dev/null",
        "--max-time",
        "2",
        "--cacert",
        PROBE_CA_PATH,
        f"https://{UNIT_ADDRESS}:8443/status.html",
    ]
    assert alive["exec"]["user-id"] == 10000
    ready = layer["checks"]["broker-ready"]["exec"]["command"]
    for text in (
        ready,
        json.dumps(view_layer(UNIT_ADDRESS, HTTPS)),
        json.dumps(functions_view_layer(UNIT_ADDRESS, HTTPS)),
    ):
        assert f"https://{UNIT_ADDRESS}:8443/admin/v2/" in text
        assert PROBE_CA_PATH in text and ":8080" not in text and "/dev/tcp" not in text
        assert "-k" not in shlex.split(text.replace('"', " ")), "never --insecure"
        assert CA_PEM not in text  # the file, not the content
    assert "/admin/v2/worker/cluster/leader" in json.dumps(
        functions_view_layer(UNIT_ADDRESS, HTTPS)
    )


# -- the probes, for real (bash + curl against an HTTPS server trusting a throwaway CA) --------


@dataclasses.dataclass
class Server:
    ca: str
    ca_path: Path
    token_path: Path
    port: int
    answers: dict[str, int]
    seen: list[tuple[str, str | None]]


def _ca_and_leaf(tmp: Path) -> tuple[str, Path, Path]:
    ca_key = PrivateKey.generate()
    ca = Certificate.generate_self_signed_ca(
        CertificateRequestAttributes(common_name="probe-ca", is_ca=True), ca_key, timedelta(days=1)
    )
    key = PrivateKey.generate()
    csr = CertificateRequestAttributes(
        common_name="localhost", sans_dns=frozenset({"localhost"})
    ).generate_csr(key)
    leaf = Certificate.generate(csr=csr, ca=ca, ca_private_key=ca_key, validity=timedelta(hours=1))
    (tmp / "leaf.pem").write_text(str(leaf) + "\n")
    (tmp / "key.pem").write_text(str(key) + "\n")
    return str(ca) + "\n", tmp / "leaf.pem", tmp / "key.pem"


def _other_ca() -> str:
    attributes = CertificateRequestAttributes(common_name="other-ca", is_ca=True)
    key = PrivateKey.generate()
    return str(Certificate.generate_self_signed_ca(attributes, key, timedelta(days=1))) + "\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    ca, leaf, key = _ca_and_leaf(tmp_path)
    answers: dict[str, int] = {}
    seen: list[tuple[str, str | None]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Authorization")))
            status = answers.get(self.path, 404)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_args: object) -> None:
            return None

    httpd = http.server.ThreadingHTTPServer(("localhost", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    (tmp_path / "ca.pem").write_text(ca)
    (tmp_path / "token").write_text("the-token")
    try:
        yield Server(
            ca, tmp_path / "ca.pem", tmp_path / "token", httpd.server_address[1], answers, seen
        )
    finally:
        httpd.shutdown()
        httpd.server_close()


def _local(server: Server) -> WebAccess:
    """HTTPS trusting the server's CA file (the scripts' port is replaced by the server's)."""
    return WebAccess(tls=True, ca=server.ca, ca_path=str(server.ca_path))


def _run(script: str, server: Server) -> str:
    script = script.replace(BROKER_TOKEN_PATH, str(server.token_path)).replace(
        "localhost:8443", f"localhost:{server.port}"
    )
    return subprocess.run(
        ["/bin/bash", "-c", script], capture_output=True, text=True, timeout=10
    ).stdout


def test_the_view_state_script_reads_ready_and_down_over_https(server: Server):
    web = _local(server)
    script = state_script("localhost", path="/admin/v2/brokers/ready", web=web)
    server.answers["/admin/v2/brokers/ready"] = 200
    assert _run(script, server) == READY
    assert server.seen[-1] == ("/admin/v2/brokers/ready", "Bearer the-token")
    server.answers["/admin/v2/brokers/ready"] = 503
    assert _run(script, server) == DOWN
    # a CA that did not sign the server's certificate: down, never an unverified "ready"
    server.answers["/admin/v2/brokers/ready"] = 200
    server.ca_path.write_text(_other_ca())
    assert _run(script, server) == DOWN


def test_the_ready_and_alive_checks_pass_only_on_200_over_https(server: Server):
    web = _local(server)
    ready = ready_check_command("localhost", web)
    alive = pebble_layer(PulsarConfig(), "localhost", web=web)["checks"]["broker-alive"]

    def passes(command: str) -> bool:
        argv = shlex.split(
            command.replace(BROKER_TOKEN_PATH, str(server.token_path)).replace(
                "localhost:8443", f"localhost:{server.port}"
            )
        )
        return subprocess.run(argv, capture_output=True, timeout=10).returncode == 0

    server.answers.update({"/admin/v2/brokers/ready": 200, "/status.html": 200})
    assert passes(ready) and passes(alive["exec"]["command"])
    assert ("/admin/v2/brokers/ready", "Bearer the-token") in server.seen
    server.answers.update({"/admin/v2/brokers/ready": 401, "/status.html": 404})
    assert not passes(ready) and not passes(alive["exec"]["command"])


def test_the_token_is_in_no_process_argument():
    get = ready_check_command(UNIT_ADDRESS, HTTPS)
    curl = get.split("| curl", 1)[1]
    assert "-H @-" in curl and "cat" not in curl and "Bearer" not in curl


def test_admin_calls_verify_the_broker_against_the_ca(server: Server, monkeypatch):
    server.answers["/admin/v2/brokers/ready"] = 200
    monkeypatch.setattr(WebAccess, "port", property(lambda _self: server.port))
    web = WebAccess(tls=True, ca=server.ca)
    assert BROKER_READY("localhost", token="t", web=web)
    assert server.seen[-1] == ("/admin/v2/brokers/ready", "Bearer t")
    admin = pulsar_admin.PulsarAdmin(web.url("localhost"), "admin-token", web=web)
    server.answers["/admin/v2/tenants/a"] = 200
    assert admin.with_token("other").get_tenant("a").ok
    assert server.seen[-1] == ("/admin/v2/tenants/a", "Bearer other")
    # another CA: the handshake fails, nothing is sent
    count = len(server.seen)
    assert not BROKER_READY("localhost", token="t", web=WebAccess(True, _other_ca()))
    assert len(server.seen) == count


# -- Prometheus ------------------------------------------------------------------------------


def test_the_scrape_job_is_https_with_the_ca_once_plain_text_is_closed():
    units = {"pulsar-k8s/0": UNIT_ADDRESS}
    (plain,) = scrape_jobs("pulsar-k8s", units, metrics_endpoint(PLAIN_WEB))
    assert plain["static_configs"][0]["targets"] == [f"{UNIT_ADDRESS}:8080"]
    assert "scheme" not in plain and "tls_config" not in plain
    (job,) = scrape_jobs("pulsar-k8s", units, metrics_endpoint(HTTPS))
    assert job["scheme"] == "https" and job["tls_config"] == {"ca_file": CA_PEM}
    assert job["static_configs"][0]["targets"] == [f"{UNIT_ADDRESS}:8443"]
    assert job["metrics_path"] == "/metrics/"
    assert metrics_endpoint(HTTPS) == MetricsEndpoint(8443, "/metrics/", "https", CA_PEM)


# -- the reconcile ----------------------------------------------------------------------------


def test_plain_text_closed_moves_checks_calls_ports_and_scrape_to_8443(
    ctx, root, calls, fake_broker
):
    state, ca = _answered(ctx, root, calls)
    metrics = testing.Relation("metrics-endpoint", remote_app_name="prometheus")
    state = dataclasses.replace(state, relations=[*state.relations, metrics])
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status == ops.ActiveStatus("broker ready (cluster pulsar)"), out.unit_status
    conf = (root / Path(BROKER_CONF_PATH).relative_to("/pulsar")).read_text()
    assert "webServicePort=\n" in conf and "webServicePortTls=8443\n" in conf
    client = (root / Path(CLIENT_CONF_PATH).relative_to("/pulsar")).read_text()
    assert "webServiceUrl=https://" in client
    assert {p.port for p in out.opened_ports} == {6651, 8443}
    plan = out.get_container("pulsar").plan.to_dict()
    checks = json.dumps(plan["checks"])
    assert ":8080" not in checks and "/dev/tcp" not in checks
    assert (
        "broker-view" in plan["checks"]
        and "curl" in plan["checks"]["broker-view"]["exec"]["command"]
    )
    # the watcher started with the broker (it wakes the charm at ready) reads 8443 too
    command = plan["services"]["broker"]["command"]
    assert f"https://{UNIT_ADDRESS}:8443/admin/v2/brokers/ready" in command
    assert "/dev/tcp" not in command and ":8080" not in command
    # the readiness the charm polled itself went over 8443 with the relation's CA
    web = fake_broker.webs[-1]
    assert web.tls and web.ca.strip() == ca.strip()
    probe_file = root / Path(PROBE_CA_PATH).relative_to("/pulsar")
    assert probe_file.read_text().strip() == ca.strip()
    (job,) = json.loads(out.get_relation(metrics.id).local_app_data["scrape_jobs"])
    assert job["scheme"] == "https" and job["tls_config"]["ca_file"].strip() == ca.strip()
    assert job["static_configs"][0]["targets"] == [f"{UNIT_ADDRESS}:8443"]

    # Converged: the next reconcile writes nothing.
    calls.log.clear()
    again = ctx.run(ctx.on.update_status(), out)
    assert calls.names() == []
    assert again.unit_status == out.unit_status
    assert (
        again.get_relation(metrics.id).local_app_data
        == out.get_relation(metrics.id).local_app_data
    )


def test_a_new_ca_is_trusted_next_to_the_one_the_broker_may_still_serve(
    ctx, root, calls, fake_broker
):
    state, ca = _answered(ctx, root, calls)
    old = _other_ca()
    probe_file = root / Path(PROBE_CA_PATH).relative_to("/pulsar")
    probe_file.parent.mkdir(parents=True, exist_ok=True)
    probe_file.write_text(old)
    ctx.run(ctx.on.config_changed(), state)
    assert probe_file.read_text() == ca.strip() + "\n" + old.strip() + "\n"
    web = fake_broker.webs[-1]
    assert web.ca == probe_file.read_text()
    assert len(web.ssl_context().get_ca_certs()) == 2


def test_plain_text_kept_open_keeps_8080_and_plain_checks(ctx, root, calls, fake_broker):
    state, _ = _answered(ctx, root, calls)
    state = dataclasses.replace(state, config={"tls-plaintext-enabled": True})
    out = ctx.run(ctx.on.config_changed(), state)
    conf = (root / Path(BROKER_CONF_PATH).relative_to("/pulsar")).read_text()
    assert "webServicePort=8080\n" in conf
    assert {p.port for p in out.opened_ports} == {6650, 6651, 8080, 8443}
    plan = out.get_container("pulsar").plan.to_dict()
    assert plan["checks"]["broker-alive"]["http"]["url"].endswith(":8080/status.html")
    assert fake_broker.webs[-1] == PLAIN_WEB


# -- the cluster's metadata record --------------------------------------------------------------

RECORD = {
    "serviceUrl": "http://pulsar-k8s.pulsar.svc.cluster.local:8080",
    "brokerServiceUrl": "pulsar://pulsar-k8s.pulsar.svc.cluster.local:6650",
    "brokerClientTlsEnabled": False,
}
TLS_URLS = cluster_tls_urls("pulsar-k8s", "pulsar", True)


def test_the_record_gets_the_tls_urls_and_keeps_every_other_field():
    assert TLS_URLS == {
        "serviceUrlTls": "https://pulsar-k8s.pulsar.svc.cluster.local:8443",
        "brokerServiceUrlTls": "pulsar+ssl://pulsar-k8s.pulsar.svc.cluster.local:6651",
    }
    assert updated_record(RECORD, TLS_URLS) == {**RECORD, **TLS_URLS}
    assert updated_record({**RECORD, **TLS_URLS}, TLS_URLS) is None
    none = cluster_tls_urls("pulsar-k8s", "pulsar", False)
    assert updated_record(RECORD, none) is None
    assert updated_record({**RECORD, "serviceUrlTls": None}, none) is None
    assert updated_record({**RECORD, **TLS_URLS}, none) == RECORD


class RecordAdmin:
    def __init__(self, status: int = 200, body: str = json.dumps(RECORD)):
        self.status, self.body, self.updates = status, body, []

    def get_cluster(self, cluster: str) -> pulsar_admin.AdminResult:
        return pulsar_admin.AdminResult(self.status, self.body)

    def update_cluster(self, cluster: str, data: dict) -> pulsar_admin.AdminResult:
        self.updates.append((cluster, data))
        self.body = json.dumps(data)
        return pulsar_admin.AdminResult(204)


def test_converge_reads_compares_and_updates_only_on_a_difference():
    admin = RecordAdmin()
    assert converge_record(admin, "pulsar", TLS_URLS).ok  # type: ignore[arg-type]
    assert admin.updates == [("pulsar", {**RECORD, **TLS_URLS})]
    assert converge_record(admin, "pulsar", TLS_URLS).ok  # type: ignore[arg-type]
    assert len(admin.updates) == 1
    for bad in (RecordAdmin(500, "{}"), RecordAdmin(200, "not json"), RecordAdmin(200, "[]")):
        assert not converge_record(bad, "pulsar", TLS_URLS).ok  # type: ignore[arg-type]
        assert bad.updates == []


def test_the_leader_publishes_the_tls_urls_once_and_retries_a_failure(
    ctx, root, calls, fake_broker
):
    state, _ = _answered(ctx, root, calls)
    fake_broker.cluster_status = 503
    failed = ctx.run(ctx.on.config_changed(), state)
    assert fake_broker.cluster_urls == [TLS_URLS]
    peer = next(r for r in failed.relations if r.endpoint == "cluster")
    assert CLUSTER_TLS_URL_KEY not in peer.local_app_data
    assert failed.unit_status.name == "active"  # the record is no reason to leave active
    fake_broker.cluster_status = 204
    out = ctx.run(ctx.on.update_status(), failed)
    peer = next(r for r in out.relations if r.endpoint == "cluster")
    assert peer.local_app_data[CLUSTER_TLS_URL_KEY] == TLS_URLS["brokerServiceUrlTls"]
    # converged: no admin call any more
    ctx.run(ctx.on.update_status(), out)
    assert len(fake_broker.cluster_urls) == 2
