"""Hypothesis and example tests of the pure renderers and the config model."""

from __future__ import annotations

import dataclasses
import shlex

import pulsar_tokens
import pytest
import yaml
from charms.pulsar_k8s.v0.rendering import UnsafeValue
from charms.pulsar_k8s.v0.validation import is_credential
from charms.pulsar_k8s.v0.workload import unit_fqdn
from hypothesis import given
from hypothesis import strategies as st
from pulsar_config import LOG_LEVELS, PulsarConfig
from pulsar_render import (
    ADMIN_TOKEN_PATH,
    BROKER_TOKEN_PATH,
    PRIVATE_PATHS,
    SECRET_KEY_PATH,
    AuthMaterial,
    BrokerInputs,
    broker_environment,
    broker_files,
    broker_properties,
    functions_worker_settings,
    initialize_cluster_metadata_argv,
    pebble_layer,
    render_broker_conf,
    render_client_conf,
    render_functions_worker_yml,
    render_jaas,
    render_properties,
    tool_environment,
)

KEY = pulsar_tokens.generate_key()
AUTH = AuthMaterial(
    KEY, pulsar_tokens.mint_token(KEY, "admin"), pulsar_tokens.mint_token(KEY, "pulsar-broker")
)

DEPRECATED_KEYS = {"zookeeperServers", "configurationStoreServers", "tlsEnabled"}


def parse_properties(text: str) -> dict[str, str]:
    """A java.util.Properties.load reader for the subset the renderer emits (one line each)."""
    result = {}
    for raw in text.splitlines():
        line = raw.lstrip()
        if not line or line[0] in "#!":
            continue
        key, i = _read_until_separator(line)
        result[key] = _unescape(line[i:])
    return result


def _read_until_separator(line: str) -> tuple[str, int]:
    out, i = [], 0
    while i < len(line):
        char = line[i]
        if char == "\\":
            out.append(line[i : i + 2])
            i += 2
            continue
        if char in "=:":
            return _unescape("".join(out)), i + 1
        out.append(char)
        i += 1
    return _unescape("".join(out)), i


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        char = value[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        nxt = value[i + 1]
        if nxt == "u":
            out.append(chr(int(value[i + 2 : i + 6], 16)))
            i += 6
            continue
        out.append({"n": "\n", "r": "\r", "t": "\t", "f": "\f"}.get(nxt, nxt))
        i += 2
    # UTF-16 surrogate pairs written as two \\u escapes
    return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16")


# -- strategies -----------------------------------------------------------------------------

quorums = st.integers(1, 9).flatmap(
    lambda e: st.integers(1, e).flatmap(
        lambda w: st.tuples(st.just(e), st.just(w), st.integers(1, w))
    )
)
cluster_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True).filter(
    lambda n: n != "global"
)
hosts = st.lists(
    st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,7}){0,3}", fullmatch=True).map(
        lambda h: f"{h}:2181"
    ),
    min_size=1,
    max_size=5,
).map(",".join)


@st.composite
def configs(draw: st.DrawFn) -> PulsarConfig:
    ensemble, write, ack = draw(quorums)
    return PulsarConfig(
        cluster_name=draw(cluster_names),
        managed_ledger_ensemble_size=ensemble,
        managed_ledger_write_quorum=write,
        managed_ledger_ack_quorum=ack,
        default_retention_time_minutes=draw(st.integers(-1, 10**6)),
        default_retention_size_mb=draw(st.integers(-1, 10**6)),
        backlog_quota_default_limit_mb=draw(st.integers(-1, 10**6)),
        heap_mb=draw(st.integers(128, 65536)),
        direct_memory_mb=draw(st.integers(64, 65536)),
        log_level=draw(st.sampled_from(LOG_LEVELS)),
        functions_worker_enabled=draw(st.booleans()),
        websocket_service_enabled=draw(st.booleans()),
    )


@st.composite
def broker_inputs(draw: st.DrawFn) -> BrokerInputs:
    unit = draw(st.integers(0, 99))
    app = draw(st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True))
    model = draw(st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True))
    zk = draw(hosts)
    return BrokerInputs(
        config=draw(configs()),
        unit_address=unit_fqdn(f"{app}/{unit}", app, model),
        zookeeper_hosts=zk,
        bookkeeper_metadata_service_uri=f"zk+hierarchical://{zk.replace(',', ';')}/bk/ledgers",
    )


# -- properties -----------------------------------------------------------------------------


@given(st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=40), max_size=10))
def test_any_properties_parse_back(properties):
    text = render_properties(properties, "header\nsecond line")
    assert text.isascii()
    assert parse_properties(text) == properties


@given(broker_inputs())
def test_broker_conf_parses_back_to_the_owned_keys(inputs):
    parsed = parse_properties(render_broker_conf(inputs))
    assert parsed == broker_properties(inputs)
    assert not DEPRECATED_KEYS & set(parsed)
    config = inputs.config
    assert parsed["clusterName"] == config.cluster_name
    assert parsed["metadataStoreUrl"] == f"zk:{inputs.zookeeper_hosts}/pulsar"
    assert parsed["configurationMetadataStoreUrl"] == parsed["metadataStoreUrl"]
    assert parsed["advertisedAddress"] == parsed["bindAddress"] == inputs.unit_address
    assert parsed["functionsWorkerEnabled"] == str(config.functions_worker_enabled).lower()


@given(broker_inputs())
def test_quorum_invariants_hold_in_the_rendered_conf(inputs):
    parsed = parse_properties(render_broker_conf(inputs))
    ensemble = int(parsed["managedLedgerDefaultEnsembleSize"])
    write = int(parsed["managedLedgerDefaultWriteQuorum"])
    ack = int(parsed["managedLedgerDefaultAckQuorum"])
    assert ensemble >= write >= ack >= 1


@given(st.integers(-3, 6), st.integers(-3, 6), st.integers(-3, 6))
def test_config_accepts_quorums_exactly_when_ordered(ensemble, write, ack):
    valid = ensemble >= write >= ack >= 1
    try:
        PulsarConfig(
            managed_ledger_ensemble_size=ensemble,
            managed_ledger_write_quorum=write,
            managed_ledger_ack_quorum=ack,
        )
    except ValueError as exc:
        assert not valid
        assert str(exc).startswith("managed-ledger-")
    else:
        assert valid


@given(broker_inputs())
def test_nothing_rendered_binds_or_points_to_the_wildcard_address(inputs):
    rendered = [
        *(v for v in broker_files(inputs, "user", "pw", AUTH).values() if isinstance(v, str)),
        render_functions_worker_yml(inputs),
        repr(pebble_layer(inputs.config, inputs.unit_address)),
    ]
    for text in rendered:
        assert "0.0.0.0" not in text
        assert "localhost" not in text


@given(broker_inputs())
def test_functions_worker_yml_is_yaml_of_its_settings(inputs):
    settings = yaml.safe_load(render_functions_worker_yml(inputs))
    assert settings == functions_worker_settings(inputs)
    assert settings["workerHostname"] == inputs.unit_address
    # values whose absence made the real broker fail at start
    for key in ("pulsarFunctionsNamespace", "failureCheckFreqMs", "functionRuntimeFactoryConfigs"):
        assert settings[key]


@given(broker_inputs())
def test_functions_worker_file_only_when_enabled(inputs):
    files = broker_files(inputs, "user", "pw", AUTH)
    assert ("/pulsar/conf/functions_worker.yml" in files) == (
        inputs.config.functions_worker_enabled
    )


@given(configs())
def test_environment_sizes_the_jvm_and_logs_to_pebble(config):
    env = broker_environment(config)
    assert env["PULSAR_MEM"].split() == [
        f"-Xms{config.heap_mb}m",
        f"-Xmx{config.heap_mb}m",
        f"-XX:MaxDirectMemorySize={config.direct_memory_mb}m",
    ]
    assert (
        "-Djava.security.auth.login.config=/pulsar/conf/zookeeper-jaas.conf"
        in (env["PULSAR_EXTRA_OPTS"])
    )
    assert "-Dzookeeper.fips-mode=false" in env["PULSAR_EXTRA_OPTS"]
    assert env["PULSAR_LOG_APPENDER"] == "Console"
    assert env["PULSAR_LOG_LEVEL"] == config.log_level
    # the broker keeps Pulsar's default collector; one-off tools run C1 and the serial one
    assert "PULSAR_GC" not in env
    tools = tool_environment(zookeeper_tls=False)
    assert tools["PULSAR_GC"] == "-XX:+UseSerialGC"
    assert "-XX:TieredStopAtLevel=1" in tools["PULSAR_MEM"].split()
    assert tools["PULSAR_EXTRA_OPTS"] == env["PULSAR_EXTRA_OPTS"]


@given(st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True), st.text(max_size=30))
def test_jaas_holds_a_safe_credential_verbatim_and_refuses_any_other(username, password):
    try:
        text = render_jaas(username, password)
    except UnsafeValue as exc:
        assert not is_credential(password)
        # the refusal never echoes the value (a blank one cannot be told apart from the prose)
        assert password not in str(exc) or not password.strip()
        return
    assert is_credential(password)
    assert f'username="{username}"' in text and f'password="{password}";' in text
    assert text.startswith("Client {\n")


def test_init_argv_uses_the_existing_bookkeeper_and_service_urls():
    argv = initialize_cluster_metadata_argv(
        cluster_name="c1",
        zookeeper_hosts="z0:2181,z1:2181",
        bookkeeper_metadata_service_uri="zk+hierarchical://z0:2181;z1:2181/pulsar/ledgers",
        app_name="pulsar",
        model_name="m",
    )
    pairs = dict(zip(argv[2::2], argv[3::2], strict=True))
    assert argv[:2] == ["/pulsar/bin/pulsar", "initialize-cluster-metadata"]
    assert pairs == {
        "--cluster": "c1",
        "--metadata-store": "zk:z0:2181,z1:2181/pulsar",
        "--configuration-metadata-store": "zk:z0:2181,z1:2181/pulsar",
        "--web-service-url": "http://pulsar.m.svc.cluster.local:8080",
        "--broker-service-url": "pulsar://pulsar.m.svc.cluster.local:6650",
        "--existing-bk-metadata-service-uri": ("zk+hierarchical://z0:2181;z1:2181/pulsar/ledgers"),
        "--initial-num-stream-storage-containers": "0",
    }


def test_layer_checks_use_the_unit_address():
    layer = pebble_layer(PulsarConfig(), "b-0.b-endpoints.m.svc.cluster.local")
    checks = layer["checks"]
    assert checks["broker-alive"]["http"]["url"] == (
        "http://b-0.b-endpoints.m.svc.cluster.local:8080/status.html"
    )
    ready = checks["broker-ready"]["exec"]
    assert (ready["user-id"], ready["group"]) == (10000, "root")
    argv = shlex.split(ready["command"])
    assert argv[:2] == ["/bin/bash", "-c"]
    assert "/dev/tcp/b-0.b-endpoints.m.svc.cluster.local/8080" in argv[2]
    assert "GET /admin/v2/brokers/ready" in argv[2]
    assert f"$(cat {BROKER_TOKEN_PATH})" in argv[2]
    service = layer["services"]["broker"]
    assert service["command"] == "/pulsar/bin/pulsar broker"
    enabled = pebble_layer(PulsarConfig(functions_worker_enabled=True), "b")["services"]["broker"]
    assert enabled["command"] == (
        "/pulsar/bin/pulsar broker --functions-worker-conf /pulsar/conf/functions_worker.yml"
    )
    assert service["on-check-failure"] == {"broker-alive": "restart"}
    assert service["user-id"] == 10000


def test_unit_fqdn():
    assert unit_fqdn("pulsar-k8s/3", "pulsar-k8s", "prod") == (
        "pulsar-k8s-3.pulsar-k8s-endpoints.prod.svc.cluster.local"
    )


@pytest.mark.parametrize(
    "field", [f.name for f in dataclasses.fields(PulsarConfig) if f.type == "int"]
)
def test_config_rejects_non_integers_naming_the_option(field):
    with pytest.raises(ValueError, match=f"^{field.replace('_', '-')}: must be an integer"):
        PulsarConfig(**{field: "3"})  # pyright: ignore[reportArgumentType]


# -- token authentication ----------------------------------------------------------------------


@given(broker_inputs())
def test_auth_is_always_on_and_secrets_are_referenced_by_file(inputs):
    props = parse_properties(render_broker_conf(inputs))
    assert props["authenticationEnabled"] == "true"
    assert props["authorizationEnabled"] == "true"
    assert props["authenticationProviders"] == (
        "org.apache.pulsar.broker.authentication.AuthenticationProviderToken"
    )
    assert props["tokenSecretKey"] == f"file://{SECRET_KEY_PATH}"
    assert props["superUserRoles"] == "admin,pulsar-broker,pulsar-proxy"
    assert props["proxyRoles"] == "pulsar-proxy"
    assert props["brokerClientAuthenticationPlugin"] == (
        "org.apache.pulsar.client.impl.auth.AuthenticationToken"
    )
    assert props["brokerClientAuthenticationParameters"] == f"file://{BROKER_TOKEN_PATH}"
    files = broker_files(inputs, "user", "pw", AUTH)
    public = [v for p, v in files.items() if p not in PRIVATE_PATHS]
    for text in public:
        assert isinstance(text, str)
        for secret in (AUTH.admin_token, AUTH.broker_token, AUTH.signing_key):
            assert secret not in text
    # the broker reads a file:// tokenSecretKey as raw bytes (base64 text made tokens fail)
    assert files[SECRET_KEY_PATH] == __import__("base64").b64decode(KEY)
    assert files[ADMIN_TOKEN_PATH] == AUTH.admin_token
    assert files[BROKER_TOKEN_PATH] == AUTH.broker_token
    layer = repr(pebble_layer(inputs.config, inputs.unit_address))
    for secret in (AUTH.admin_token, AUTH.broker_token, AUTH.signing_key):
        assert secret not in layer


@given(broker_inputs())
def test_functions_worker_authenticates_too(inputs):
    settings = functions_worker_settings(inputs)
    assert settings["authenticationEnabled"] is True
    assert settings["authorizationEnabled"] is True
    assert settings["superUserRoles"] == ["admin", "pulsar-broker", "pulsar-proxy"]
    assert settings["brokerClientAuthenticationParameters"] == f"file://{BROKER_TOKEN_PATH}"
    assert settings["clientAuthenticationParameters"] == f"file://{BROKER_TOKEN_PATH}"
    assert settings["properties"] == {"tokenSecretKey": f"file://{SECRET_KEY_PATH}"}


def test_client_conf_names_the_admin_token_file_only():
    props = parse_properties(render_client_conf("b-0.example"))
    assert props == {
        "webServiceUrl": "http://b-0.example:8080/",
        "brokerServiceUrl": "pulsar://b-0.example:6650/",
        "authPlugin": "org.apache.pulsar.client.impl.auth.AuthenticationToken",
        "authParams": f"file://{ADMIN_TOKEN_PATH}",
    }


def test_auth_material_repr_hides_secrets():
    text = repr(AUTH)
    assert AUTH.admin_token not in text
    assert AUTH.signing_key not in text
