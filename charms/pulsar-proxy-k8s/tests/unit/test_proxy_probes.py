"""The proxy with plain text closed: no HTTP 8080; its probes and the scrape job use 8443.

The renderers, the status probes run for real (bash + curl, Python ``ssl``) against a local
HTTPS server with a throwaway CA, and the reconcile with the real tls-certificates library.
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

import pytest
from charmlibs.interfaces.tls_certificates import (
    Certificate,
    CertificateRequestAttributes,
    PrivateKey,
)
from charms.pulsar_k8s.v0.observability import scrape_jobs
from charms.pulsar_k8s.v0.tls import ServingTls
from hypothesis import given
from hypothesis import strategies as st
from ops import testing
from proxy_charm import metrics_endpoint
from proxy_probes import (
    PLAIN_WEB,
    PROBE_CA_PATH,
    ProxyWeb,
    plain_web_open,
    proxy_web,
)
from proxy_render import pebble_layer
from proxy_view import DOWN, READY, state_script, view_layer
from proxy_workload import ProxyWorkload
from test_proxy_charm import ADDRESS
from test_proxy_tls import _answered

# the real probe (the autouse fake_http fixture replaces it)
ANSWERS = ProxyWorkload.answers
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
HTTPS = ProxyWeb(tls=True, ca=CA_PEM)


def _ca() -> tuple[str, PrivateKey, Certificate]:
    key = PrivateKey.generate()
    attributes = CertificateRequestAttributes(common_name="probe-ca", is_ca=True)
    ca = Certificate.generate_self_signed_ca(attributes, key, timedelta(days=1))
    return str(ca) + "\n", key, ca


@given(st.booleans(), st.booleans())
def test_https_only_with_a_certificate_and_plain_text_closed(enabled: bool, plaintext: bool):
    tls = ServingTls(enabled=enabled, plaintext=plaintext)
    web = proxy_web(tls, CA_PEM)
    assert plain_web_open(tls) is (not enabled or plaintext)
    assert web == (PLAIN_WEB if plain_web_open(tls) else HTTPS)
    assert web.status_url("p") == (
        "http://p:8080/status.html" if plain_web_open(tls) else "https://p:8443/status.html"
    )
    assert CA_PEM not in repr(web)


def test_the_checks_probe_8443_with_curl_and_the_ca_file_only_when_plain_text_is_closed():
    plain = pebble_layer(ADDRESS, {})
    assert pebble_layer(ADDRESS, {}, PLAIN_WEB) == plain
    assert plain["checks"]["proxy-alive"]["http"]["url"] == f"http://{ADDRESS}:8080/status.html"
    assert "curl" not in json.dumps(view_layer(ADDRESS))
    layer = pebble_layer(ADDRESS, {}, HTTPS)
    for name in ("proxy-alive", "proxy-ready"):
        argv = shlex.split(layer["checks"][name]["exec"]["command"])
        assert argv[0] == "curl" and "-k" not in argv and "--insecure" not in argv
        assert argv[argv.index("--cacert") + 1] == PROBE_CA_PATH
        assert argv[-1] == f"https://{ADDRESS}:8443/status.html"
    view = json.dumps(view_layer(ADDRESS, HTTPS))
    assert f"https://{ADDRESS}:8443/status.html" in view and "/dev/tcp" not in view


# The probe CA bundle (the replaced CA kept until the next rotation) is the core tls library's
# with_previous_ca, tested in pulsar-k8s (test_pulsar_probes).


# -- for real: an HTTPS server trusting a throwaway CA ------------------------------------------


@dataclasses.dataclass
class Server:
    ca: str
    port: int
    answers: dict[str, int]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    ca, ca_key, ca_cert = _ca()
    key = PrivateKey.generate()
    csr = CertificateRequestAttributes(
        common_name="localhost", sans_dns=frozenset({"localhost"})
    ).generate_csr(key)
    leaf = Certificate.generate(
        csr=csr, ca=ca_cert, ca_private_key=ca_key, validity=timedelta(hours=1)
    )
    (tmp_path / "leaf.pem").write_text(str(leaf) + "\n")
    (tmp_path / "key.pem").write_text(str(key) + "\n")
    answers: dict[str, int] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(answers.get(self.path, 404))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            return None

    httpd = http.server.ThreadingHTTPServer(("localhost", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "key.pem")
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield Server(ca, httpd.server_address[1], answers)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_view_script_reads_the_status_page_over_https(server: Server, tmp_path: Path):
    ca_file = tmp_path / "probe-ca.pem"
    script = state_script("localhost", web=ProxyWeb(tls=True, ca=server.ca))
    script = script.replace(PROBE_CA_PATH, str(ca_file)).replace(
        "localhost:8443", f"localhost:{server.port}"
    )

    def run() -> str:
        done = subprocess.run(["/bin/bash", "-c", script], capture_output=True, timeout=10)
        return done.stdout.decode()

    ca_file.write_text(server.ca)
    server.answers["/status.html"] = 200
    assert run() == READY
    server.answers["/status.html"] = 404
    assert run() == DOWN
    server.answers["/status.html"] = 200
    ca_file.write_text(_ca()[0])  # a CA that did not sign the proxy's certificate
    assert run() == DOWN


def test_the_charm_probe_verifies_the_proxy_against_the_ca(server: Server, monkeypatch):
    monkeypatch.setattr(ProxyWeb, "port", property(lambda _self: server.port))
    workload = ProxyWorkload.__new__(ProxyWorkload)
    workload._address = "localhost"  # type: ignore[attr-defined]
    server.answers["/status.html"] = 200
    assert ANSWERS(workload, ProxyWeb(tls=True, ca=server.ca))
    assert not ANSWERS(workload, ProxyWeb(tls=True, ca=_ca()[0]))
    assert not ANSWERS(workload, ProxyWeb(tls=True, ca=CA_PEM))  # unusable CA: no answer


# -- the reconcile ----------------------------------------------------------------------------


def test_plain_text_closed_moves_the_probes_ports_and_scrape_to_8443(
    ctx, tmp_path, calls, fake_http
):
    st_, ca = _answered(ctx, tmp_path, calls)
    metrics = testing.Relation("metrics-endpoint", remote_app_name="prometheus")
    st_ = dataclasses.replace(st_, relations=[*st_.relations, metrics])
    restarted = ctx.run(ctx.on.config_changed(), st_)
    assert {p.port for p in restarted.opened_ports} == {6651, 8443}
    # restarted onto 8443: every check, the view check too, probes it from now on
    plan = restarted.get_container("pulsar").plan.to_dict()
    checks = json.dumps(plan["checks"])
    assert ":8080" not in checks and "/dev/tcp" not in checks
    assert "proxy-view" in plan["checks"]
    out = ctx.run(ctx.on.update_status(), restarted)
    web = fake_http.webs[-1]
    assert web.tls and web.ca.strip() == ca.strip()
    probe = out.get_container("pulsar").get_filesystem(ctx) / PROBE_CA_PATH.lstrip("/")
    assert probe.read_text().strip() == ca.strip()
    (job,) = json.loads(out.get_relation(metrics.id).local_app_data["scrape_jobs"])
    assert job["scheme"] == "https" and job["tls_config"]["ca_file"].strip() == ca.strip()
    assert job["static_configs"][0]["targets"] == [f"{ADDRESS}:8443"]


def test_plain_text_kept_open_keeps_8080_and_the_http_checks(ctx, tmp_path, calls, fake_http):
    st_, _ = _answered(ctx, tmp_path, calls, config={"tls-plaintext-enabled": True})
    out = ctx.run(ctx.on.update_status(), ctx.run(ctx.on.config_changed(), st_))
    assert {p.port for p in out.opened_ports} == {6650, 6651, 8080, 8443}
    plan = out.get_container("pulsar").plan.to_dict()
    assert plan["checks"]["proxy-alive"]["http"]["url"].endswith(":8080/status.html")
    assert fake_http.webs[-1] == PLAIN_WEB
    (job,) = scrape_jobs("p", {"p/0": ADDRESS}, metrics_endpoint(PLAIN_WEB))
    assert "scheme" not in job
