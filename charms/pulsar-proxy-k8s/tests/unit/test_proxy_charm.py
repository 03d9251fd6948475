"""State-transition tests of the pulsar-proxy-k8s reconcile (ops.testing)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import ops
import pytest
from charms.pulsar_k8s.v0.pulsar_proxy import ProxyOffer
from charms.pulsar_k8s.v0.workload import unit_fqdn
from ops import testing
from proxy_config import ProxyConfig
from proxy_render import (
    JAAS_CONF_PATH,
    PROXY_CONF_PATH,
    PROXY_TOKEN_PATH,
    STATUS_FILE_PATH,
    TOKEN_KEY_PATH,
    ZOOKEEPER_CA_PATH,
    ProxyInputs,
    ProxySecrets,
    pebble_layer,
    proxy_environment,
    proxy_files,
)
from proxy_view import VIEW_CHECK, VIEW_LAYER_LABEL, view_layer

MODEL = "pulsar"
APP = "pulsar-proxy-k8s"
ADDRESS = unit_fqdn(f"{APP}/0", APP, MODEL)
KEY = base64.b64encode(b"k" * 32).decode()
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwdWxzYXItcHJveHkifQ.c2lnbmF0dXJl"
ZK_PASSWORD = "zk-s3cret"
BROKERS = "pulsar-k8s.pulsar.svc.cluster.local"
ZK = "pulsar-zookeeper-k8s-0.pulsar-zookeeper-k8s-endpoints.pulsar.svc.cluster.local:2181"
OFFER_DATA = {
    "cluster-name": "pulsar",
    "broker-service-url": f"pulsar://{BROKERS}:6650",
    "web-service-url": f"http://{BROKERS}:8080",
    "metadata-store": f"zk:{ZK}/pulsar",
}
SECRET_CONTENT = {
    "token": TOKEN,
    "token-key": KEY,
    "zookeeper-username": "relation-4",
    "zookeeper-password": ZK_PASSWORD,
}


def offer(config: ProxyConfig | None = None, content: dict[str, str] | None = None):
    content = content or SECRET_CONTENT
    o = ProxyOffer(
        OFFER_DATA["cluster-name"],
        OFFER_DATA["broker-service-url"],
        OFFER_DATA["web-service-url"],
        OFFER_DATA["metadata-store"],
        content["token"],
        content["token-key"],
        content["zookeeper-username"],
        content["zookeeper-password"],
    )
    inputs = ProxyInputs(
        config or ProxyConfig(),
        ADDRESS,
        o.cluster_name,
        o.broker_service_url,
        o.web_service_url,
        o.metadata_store_url,
    )
    secrets = ProxySecrets(o.token, o.token_key, o.zookeeper_username, o.zookeeper_password)
    return proxy_files(inputs, secrets), pebble_layer(
        ADDRESS, proxy_environment(config or ProxyConfig())
    )


def proxy_secret(content: dict[str, str] | None = None) -> testing.Secret:
    return testing.Secret(tracked_content=content or dict(SECRET_CONTENT))


def proxy_relation(secret: testing.Secret | None, **overrides: str) -> testing.Relation:
    data = {**OFFER_DATA, "secret-proxy": secret.id if secret else ""}
    data.update(overrides)
    return testing.Relation("pulsar-proxy", remote_app_name="pulsar-k8s", remote_app_data=data)


def container(
    tmp_path: Path, *, running: bool = False, config: ProxyConfig | None = None
) -> testing.Container:
    """The pulsar container; ``running``: a proxy started with ``config``'s files."""
    conf = tmp_path / "conf"
    (conf / "auth").mkdir(parents=True, exist_ok=True)
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    mounts = {
        "conf": testing.Mount(location="/pulsar/conf", source=conf),
        "logs": testing.Mount(location="/pulsar/logs", source=logs),
    }
    layers: dict[str, ops.pebble.Layer] = {}
    service_statuses: dict[str, ops.pebble.ServiceStatus] = {}
    if running:
        files, layer = offer(config)
        for path, content in files.items():
            target = conf / path.removeprefix("/pulsar/conf/")
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        layers["pulsar-proxy"] = ops.pebble.Layer(layer)  # type: ignore[arg-type]
        layers[VIEW_LAYER_LABEL] = ops.pebble.Layer(view_layer(ADDRESS))  # type: ignore[arg-type]
        service_statuses["proxy"] = ops.pebble.ServiceStatus.ACTIVE
    return testing.Container(
        "pulsar",
        can_connect=True,
        mounts=mounts,
        layers=layers,
        service_statuses=service_statuses,
    )


def state(
    cont: testing.Container,
    *,
    relation: testing.Relation | None = None,
    secret: testing.Secret | None = None,
    related: bool = True,
    leader: bool = True,
    config: dict[str, Any] | None = None,
) -> testing.State:
    secret = secret or proxy_secret()
    relations: list[testing.RelationBase] = [testing.PeerRelation("cluster")]
    if related:
        relations.append(relation or proxy_relation(secret))
    return testing.State(
        leader=leader,
        model=testing.Model(name=MODEL),
        containers={cont},
        relations=relations,
        secrets={secret},
        config=config or {},
    )


# --- waiting for the brokers ---------------------------------------------------------------


def test_waits_for_the_relation_and_touches_nothing(ctx, tmp_path, calls):
    out = ctx.run(ctx.on.config_changed(), state(container(tmp_path), related=False))
    assert out.unit_status == ops.WaitingStatus("waiting for a pulsar-proxy relation")
    assert calls.log == []
    assert out.opened_ports == {testing.TCPPort(6650), testing.TCPPort(8080)}


def test_waits_for_the_offer(ctx, tmp_path, calls):
    relation = testing.Relation("pulsar-proxy", remote_app_name="pulsar-k8s")
    out = ctx.run(ctx.on.relation_joined(relation), state(container(tmp_path), relation=relation))
    assert out.unit_status == ops.WaitingStatus(
        "waiting for the brokers to publish their service URLs and credentials"
    )
    assert calls.log == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"broker-service-url": "http://brokers:6650"}, "broker-service-url"),
        ({"broker-service-url": "pulsar://a:6650\nbindAddress=0.0.0.0"}, "broker-service-url"),
        ({"web-service-url": "http://brokers"}, "web-service-url"),
        ({"metadata-store": "zk:bad host:2181/pulsar"}, "metadata-store"),
        ({"metadata-store": f"zk:{ZK}"}, "metadata-store"),
        ({"cluster-name": "no spaces"}, "cluster-name"),
    ],
)
def test_bad_relation_data_waits_naming_the_field(ctx, tmp_path, calls, overrides, field):
    secret = proxy_secret()
    relation = proxy_relation(secret, **overrides)
    out = ctx.run(
        ctx.on.relation_changed(relation),
        state(container(tmp_path), relation=relation, secret=secret),
    )
    assert out.unit_status.name == "waiting"
    assert out.unit_status.message.startswith(f"pulsar-proxy relation: {field} ")
    assert calls.log == []


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ({**SECRET_CONTENT, "token": "tok en"}, "token"),
        ({**SECRET_CONTENT, "token-key": "c2hvcnQ="}, "token-key"),
        ({**SECRET_CONTENT, "token-key": "not base64!"}, "token-key"),
        ({**SECRET_CONTENT, "zookeeper-password": 'pw"\nx'}, "zookeeper-password"),
        ({k: v for k, v in SECRET_CONTENT.items() if k != "token"}, "token"),
    ],
)
def test_bad_secret_waits_naming_the_field_never_the_value(ctx, tmp_path, calls, content, field):
    secret = proxy_secret(content)
    out = ctx.run(ctx.on.secret_changed(secret), state(container(tmp_path), secret=secret))
    assert out.unit_status.name == "waiting"
    assert out.unit_status.message.startswith(f"pulsar-proxy secret: {field} ")
    for value in content.values():
        assert value not in out.unit_status.message
    assert calls.log == []


def test_secret_not_granted_waits(ctx, tmp_path, calls):
    relation = proxy_relation(None, **{"secret-proxy": "secret:deadbeef0000000000000"})
    out = ctx.run(ctx.on.relation_changed(relation), state(container(tmp_path), relation=relation))
    assert out.unit_status.name == "waiting"
    assert calls.log == []


# --- bad config ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "option"),
    [
        ({"heap-mb": 16}, "heap-mb"),
        ({"direct-memory-mb": 1}, "direct-memory-mb"),
        ({"log-level": "chatty"}, "log-level"),
        ({"max-concurrent-inbound-connections": 0}, "max-concurrent-inbound-connections"),
    ],
)
def test_bad_config_blocks_naming_the_option_and_touches_nothing(
    ctx, tmp_path, calls, config, option
):
    out = ctx.run(ctx.on.config_changed(), state(container(tmp_path, running=True), config=config))
    assert out.unit_status.name == "blocked"
    assert out.unit_status.message.startswith(f"{option}: ")
    assert calls.log == []


# --- starting and running ------------------------------------------------------------------


def test_first_start_pushes_files_and_starts_without_waiting(ctx, tmp_path, calls, fake_http):
    fake_http.answers = False
    cont = container(tmp_path)
    out = ctx.run(ctx.on.pebble_ready(cont), state(cont))
    assert "start_proxy" in calls.names()
    assert out.unit_status == ops.WaitingStatus("proxy started; waiting for /status.html")
    files, _layer = offer()
    fs = out.get_container("pulsar").get_filesystem(ctx)
    assert (fs / PROXY_CONF_PATH.lstrip("/")).read_text() == files[PROXY_CONF_PATH]
    assert (fs / TOKEN_KEY_PATH.lstrip("/")).read_bytes() == base64.b64decode(KEY)
    assert (fs / PROXY_TOKEN_PATH.lstrip("/")).read_text() == TOKEN
    assert (fs / STATUS_FILE_PATH.lstrip("/")).is_file()
    plan = out.get_container("pulsar").plan
    assert "proxy" in plan.services
    assert VIEW_CHECK in plan.checks


def test_ready_proxy_is_active_and_an_unchanged_reconcile_writes_nothing(ctx, tmp_path, calls):
    cont = container(tmp_path, running=True)
    out = ctx.run(ctx.on.update_status(), state(cont))
    assert out.unit_status == ops.ActiveStatus("proxy ready (cluster pulsar)")
    # the first run records the view; the next writes nothing at all
    calls.log.clear()
    out = ctx.run(ctx.on.update_status(), state(cont))
    assert out.unit_status == ops.ActiveStatus("proxy ready (cluster pulsar)")
    assert calls.log == []


def test_view_check_event_reports_the_proxy_answering(ctx, tmp_path, calls, fake_http):
    fake_http.answers = False
    cont = container(tmp_path, running=True)
    out = ctx.run(ctx.on.update_status(), state(cont))
    assert out.unit_status.name == "waiting"
    fake_http.answers = True
    check = testing.CheckInfo(
        VIEW_CHECK, level=None, status=ops.pebble.CheckStatus.DOWN, threshold=1
    )
    cont = testing.Container(
        "pulsar",
        can_connect=True,
        mounts=cont.mounts,
        layers=cont.layers,
        service_statuses=cont.service_statuses,
        check_infos={check},
    )
    out = ctx.run(ctx.on.pebble_check_failed(cont, check), state(cont))
    assert out.unit_status == ops.ActiveStatus("proxy ready (cluster pulsar)")


def test_changed_offer_restarts_through_the_lock(ctx, tmp_path, calls):
    cont = container(tmp_path, running=True)
    secret = proxy_secret({**SECRET_CONTENT, "token": TOKEN + "x"})
    out = ctx.run(ctx.on.secret_changed(secret), state(cont, secret=secret))
    assert "restart_proxy" in calls.names()
    assert out.unit_status == ops.WaitingStatus("proxy restarted; waiting for /status.html")
    fs = out.get_container("pulsar").get_filesystem(ctx)
    assert (fs / PROXY_TOKEN_PATH.lstrip("/")).read_text() == TOKEN + "x"


def test_non_leader_waits_for_the_lock_before_restarting(ctx, tmp_path, calls):
    cont = container(tmp_path, running=True)
    st = state(cont, leader=False, config={"log-level": "debug"})
    out = ctx.run(ctx.on.config_changed(), st)
    assert out.unit_status == ops.WaitingStatus(
        "waiting for the rolling-restart lock to apply changes"
    )
    assert "restart_proxy" not in calls.names()
    assert "push" not in calls.names()


def test_relation_removed_stops_the_proxy(ctx, tmp_path, calls):
    cont = container(tmp_path, running=True)
    out = ctx.run(ctx.on.update_status(), state(cont, related=False))
    assert "stop_proxy" in calls.names()
    assert out.unit_status == ops.WaitingStatus("waiting for a pulsar-proxy relation")


def test_pebble_unreachable_waits(ctx, tmp_path, calls):
    cont = testing.Container("pulsar", can_connect=False)
    out = ctx.run(ctx.on.update_status(), state(cont))
    assert out.unit_status.name == "waiting"
    assert "Pebble" in out.unit_status.message


def test_no_credential_in_the_layer_or_public_files():
    files, layer = offer()
    assert TOKEN not in repr(layer) and ZK_PASSWORD not in repr(layer)
    conf = str(files[PROXY_CONF_PATH])
    assert TOKEN not in conf and ZK_PASSWORD not in conf
    assert ZK_PASSWORD in str(files[JAAS_CONF_PATH])


# --- a TLS ZooKeeper (the brokers pass its CA) ----------------------------------------------

ZK_TLS = ZK.replace(":2181", ":2182")
ZK_CA = "-----BEGIN CERTIFICATE-----\n" + "QUJD" * 16 + "\n-----END CERTIFICATE-----\n"


def test_tls_zookeeper_restarts_onto_the_ca_and_the_secure_client(ctx, tmp_path, calls):
    cont = container(tmp_path, running=True)
    secret = proxy_secret()
    relation = proxy_relation(
        secret, **{"metadata-store": f"zk:{ZK_TLS}/pulsar", "zookeeper-tls-ca": ZK_CA}
    )
    out = ctx.run(ctx.on.relation_changed(relation), state(cont, relation=relation, secret=secret))
    assert "restart_proxy" in calls.names()
    fs = out.get_container("pulsar").get_filesystem(ctx)
    assert (fs / ZOOKEEPER_CA_PATH.lstrip("/")).read_text() == ZK_CA
    conf = (fs / PROXY_CONF_PATH.lstrip("/")).read_text()
    assert f"metadataStoreUrl=zk:{ZK_TLS}/pulsar" in conf
    env = out.get_container("pulsar").plan.services["proxy"].environment
    opts = env["PULSAR_EXTRA_OPTS"].split()
    assert "-Dzookeeper.client.secure=true" in opts
    assert f"-Dzookeeper.ssl.trustStore.location={ZOOKEEPER_CA_PATH}" in opts
    assert "-Dzookeeper.ssl.trustStore.type=PEM" in opts


def test_plain_zookeeper_has_no_tls_options_and_no_ca_file():
    files, layer = offer()
    assert ZOOKEEPER_CA_PATH not in files
    opts = layer["services"]["proxy"]["environment"]["PULSAR_EXTRA_OPTS"]
    assert "zookeeper.client.secure" not in opts


@pytest.mark.parametrize("bad", ["not a certificate", "-----BEGIN CERTIFICATE-----\n!!\n"])
def test_a_bad_zookeeper_ca_waits_naming_the_field_and_changes_nothing(ctx, tmp_path, calls, bad):
    cont = container(tmp_path, running=True)
    secret = proxy_secret()
    relation = proxy_relation(secret, **{"zookeeper-tls-ca": bad})
    out = ctx.run(ctx.on.relation_changed(relation), state(cont, relation=relation, secret=secret))
    assert out.unit_status.name == "waiting"
    assert out.unit_status.message.startswith("pulsar-proxy relation: zookeeper-tls-ca ")
    assert "restart_proxy" not in calls.names()
