"""Property tests of the proxy's pure renderers."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st
from proxy_config import ProxyConfig
from proxy_render import (
    LISTENER_KEYS,
    PRIVATE_PATHS,
    PROXY_CONF_PATH,
    TOKEN_KEY_PATH,
    ProxyInputs,
    ProxySecrets,
    pebble_layer,
    proxy_environment,
    proxy_files,
    proxy_properties,
    render_proxy_conf,
)

labels = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
hosts = st.lists(labels, min_size=1, max_size=4).map(".".join)
configs = st.builds(
    ProxyConfig,
    heap_mb=st.integers(128, 65536),
    direct_memory_mb=st.integers(64, 262144),
    websocket_service_enabled=st.booleans(),
    max_concurrent_inbound_connections=st.integers(1, 10**6),
    log_level=st.sampled_from(["trace", "debug", "info", "warn", "error"]),
)


@st.composite
def inputs(draw: st.DrawFn) -> ProxyInputs:
    brokers = draw(hosts)
    return ProxyInputs(
        draw(configs),
        draw(hosts),
        draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)),
        f"pulsar://{brokers}:6650",
        f"http://{brokers}:8080",
        f"zk:{draw(hosts)}:2181/pulsar",
    )


def parse_properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] not in "#!")
    return {key: value for key, value in pairs}


SECRETS = ProxySecrets(
    "aGVhZA.cGF5bG9hZA.c2ln", base64.b64encode(b"k" * 32).decode(), "u", "Pw_S3cret!"
)


@given(inputs())
def test_every_listener_binds_to_the_unit_address(i: ProxyInputs):
    props = parse_properties(render_proxy_conf(i))
    for key in LISTENER_KEYS:
        assert props[key] == i.address
    assert "0.0.0.0" not in render_proxy_conf(i)
    # one line per key: nothing a value holds can add a key
    assert set(props) == set(proxy_properties(i))


@given(inputs())
def test_authentication_authorization_and_forwarding_are_always_on(i: ProxyInputs):
    props = proxy_properties(i)
    assert props["authenticationEnabled"] == "true"
    assert props["authorizationEnabled"] == "true"
    assert props["forwardAuthorizationCredentials"] == "true"
    assert props["tokenSecretKey"] == f"file://{TOKEN_KEY_PATH}"
    assert props["webSocketServiceEnabled"] == str(i.config.websocket_service_enabled).lower()


@given(inputs())
def test_secrets_only_in_private_files(i: ProxyInputs):
    files = proxy_files(i, SECRETS)
    for path, content in files.items():
        if path in PRIVATE_PATHS:
            continue
        for value in (SECRETS.token, SECRETS.token_key, SECRETS.zookeeper_password):
            assert value not in str(content)
    assert files[TOKEN_KEY_PATH] == b"k" * 32
    layer = repr(pebble_layer(i.address, proxy_environment(i.config)))
    assert SECRETS.token not in layer and SECRETS.zookeeper_password not in layer
    assert PROXY_CONF_PATH not in PRIVATE_PATHS
