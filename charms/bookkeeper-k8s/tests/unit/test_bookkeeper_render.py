"""Property tests of the pure renderers and the config validation."""

from __future__ import annotations

import pytest
from bookkeeper_config import BookKeeperConfig, ConfigError
from bookkeeper_render import (
    JAAS_PATH,
    LISTENER_KEYS,
    BookieInputs,
    bookie_env,
    bookkeeper_properties,
    metadata_service_uri,
    pebble_layer,
    render_bookkeeper_conf,
    render_jaas,
    tool_env,
)
from charms.pulsar_k8s.v0.rendering import UnsafeValue
from charms.pulsar_k8s.v0.validation import is_credential
from charms.pulsar_k8s.v0.workload import unit_fqdn
from hypothesis import assume, given
from hypothesis import strategies as st

label = st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True)
units = st.builds(lambda app, n: f"{app}/{n}", label, st.integers(0, 999))
endpoints = st.lists(
    st.builds(lambda h, p: f"{h}:{p}", label, st.integers(1, 65535)), min_size=1, max_size=5
)


def _config(**kwargs: object) -> BookKeeperConfig | None:
    try:
        return BookKeeperConfig(**kwargs)  # type: ignore[arg-type]
    except ConfigError:
        return None


configs = st.builds(
    _config,
    heap_mb=st.integers(128, 4096),
    direct_memory_mb=st.integers(128, 8192),
    journal_sync_data=st.booleans(),
    journal_max_group_wait_ms=st.integers(0, 1000),
    write_cache_mb=st.integers(16, 1024),
    read_ahead_cache_mb=st.integers(16, 1024),
    minor_compaction_threshold=st.floats(0, 1),
    major_compaction_threshold=st.floats(0, 1),
    log_level=st.sampled_from(["trace", "debug", "info", "warn", "error"]),
).filter(lambda c: c is not None)


def parse_properties(text: str) -> dict[str, str]:
    """A reader of the simple properties subset the renderer writes: key=value lines."""
    parsed: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith(("#", "!")):
            continue
        key, _, value = line.partition("=")
        assert key not in parsed, f"duplicate key {key}"
        parsed[key] = value
    return parsed


@given(unit=units, model=label, zk=endpoints, config=configs)
def test_rendered_conf_parses_back_to_the_intended_properties(unit, model, zk, config):
    inputs = BookieInputs(
        unit_fqdn(unit, unit.split("/")[0], model), metadata_service_uri(zk, "/pulsar"), config
    )
    assert parse_properties(render_bookkeeper_conf(inputs)) == bookkeeper_properties(inputs)


@given(unit=units, model=label, zk=endpoints, config=configs)
def test_every_listener_binds_to_the_unit_address(unit, model, zk, config):
    address = unit_fqdn(unit, unit.split("/")[0], model)
    props = bookkeeper_properties(BookieInputs(address, metadata_service_uri(zk, "/bk"), config))
    for key in LISTENER_KEYS:
        assert props[key] == address
        assert props[key] not in ("0.0.0.0", "", "localhost")
    assert props["listeningInterface"]  # non-empty: the bookie port binds to advertisedAddress
    assert props["useHostNameAsBookieID"] == "true"
    assert props["zkServers"] == ""
    layer = pebble_layer(address, bookie_env(config))
    assert layer["checks"]["bookie-ready"]["http"]["url"].startswith(f"http://{address}:8000/")
    assert f"/dev/tcp/{address}/8000" in layer["checks"]["bookie-alive"]["exec"]["command"]


@given(zk=endpoints)
def test_metadata_uri_separates_hosts_with_semicolons(zk):
    uri = metadata_service_uri(zk, "/pulsar")
    assert "," not in uri
    assert uri == f"zk+hierarchical://{';'.join(zk)}/pulsar/ledgers"


@given(config=configs)
def test_env_carries_memory_and_jaas(config):
    env = bookie_env(config)
    assert env["BOOKIE_MEM"] == env["PULSAR_MEM"]
    assert f"-Xmx{config.heap_mb}m" in env["BOOKIE_MEM"]
    assert f"-XX:MaxDirectMemorySize={config.direct_memory_mb}m" in env["BOOKIE_MEM"]
    for opts in (env["BOOKIE_EXTRA_OPTS"], env["PULSAR_EXTRA_OPTS"]):
        assert f"-Djava.security.auth.login.config={JAAS_PATH}" in opts
        assert "-Dzookeeper.fips-mode=false" in opts
    assert tool_env(config)["BOOKIE_MEM"] == "-Xmx128m -XX:TieredStopAtLevel=1"
    # the service keeps Pulsar's default collector; one-off tools run the serial one
    assert "BOOKIE_GC" not in env and "PULSAR_GC" not in env
    assert tool_env(config)["BOOKIE_GC"] == tool_env(config)["PULSAR_GC"] == "-XX:+UseSerialGC"


@given(password=st.text(min_size=1, max_size=40))
def test_jaas_holds_safe_credentials_verbatim_and_refuses_the_rest(password):
    if not is_credential(password):
        with pytest.raises(UnsafeValue):
            render_jaas("user", password)
        return
    text = render_jaas("user", password)
    assert 'username="user"' in text and f'password="{password}";' in text


@given(value=st.integers().filter(lambda v: not 128 <= v <= 65536))
def test_bad_heap_names_the_option(value):
    with pytest.raises(ConfigError, match=r"^heap-mb: "):
        BookKeeperConfig(heap_mb=value)


@given(config=configs)
def test_valid_configs_respect_bookkeeper_compaction_rules(config):
    minor_on = config.minor_compaction_interval_s > 0 and config.minor_compaction_threshold > 0
    major_on = config.major_compaction_interval_s > 0 and config.major_compaction_threshold > 0
    assume(minor_on and major_on)
    assert config.minor_compaction_threshold < config.major_compaction_threshold
    assert config.minor_compaction_interval_s < config.major_compaction_interval_s
    assert config.write_cache_mb + config.read_ahead_cache_mb < config.direct_memory_mb
