"""Property tests of the pure renderers and of config validation."""

from __future__ import annotations

import re

import pytest
from charms.pulsar_k8s.v0.workload import restart_token, unit_fqdn
from hypothesis import given
from hypothesis import strategies as st
from zookeeper_config import ZooKeeperConfig
from zookeeper_render import (
    digest,
    parse_members,
    render_dynamic_config,
    render_env,
    render_jaas,
    render_layer,
    render_static_config,
)

hostnames = st.from_regex(r"\A[a-z][a-z0-9-]{0,20}(\.[a-z0-9-]{1,10}){0,4}\Z")
members_st = st.dictionaries(st.integers(1, 255), hostnames, min_size=1, max_size=9)
names = st.from_regex(r"\A[A-Za-z0-9_.-]{1,30}\Z")
# the one credential policy of the core (charms.pulsar_k8s.v0.validation.is_credential)
passwords = st.from_regex(r"\A[!#%&(-\[\]-~]{1,40}\Z")
configs = st.builds(
    ZooKeeperConfig,
    tick_time=st.integers(100, 60000),
    init_limit=st.integers(1, 1000),
    sync_limit=st.integers(1, 1000),
    max_client_connections=st.integers(0, 100000),
    autopurge_snap_retain_count=st.integers(3, 1000),
    autopurge_purge_interval=st.integers(0, 8760),
    heap_mb=st.integers(128, 65536),
    log_level=st.sampled_from(["trace", "debug", "info", "warn", "error"]),
)


def _properties(text: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text.splitlines() if line and line[0] != "#"]
    assert all(len(p) == 2 for p in pairs)
    return dict(pairs)  # type: ignore[arg-type]


@given(members_st)
def test_dynamic_config_round_trips_and_binds_client_port_to_the_member(members):
    text = render_dynamic_config(members)
    assert parse_members(text) == members
    for line in text.splitlines():
        sid, spec = line.removeprefix("server.").split("=", 1)
        host = members[int(sid)]
        assert spec == f"{host}:2888:3888:participant;{host}:2181"


@given(configs, hostnames)
def test_static_config_binds_every_listener_to_the_unit_address(config, address):
    props = _properties(render_static_config(config, address))
    assert props["admin.serverAddress"] == address
    assert props["metricsProvider.httpHost"] == address
    assert props["quorumListenOnAllIPs"] == "false"
    assert props["reconfigEnabled"] == "true" and props["standaloneEnabled"] == "false"
    assert props["tickTime"] == str(config.tick_time)
    assert props["autopurge.purgeInterval"] == str(config.autopurge_purge_interval)
    assert not any(k.startswith("server.") for k in props)  # membership only in the dynamic file
    assert "0.0.0.0" not in props.values()


@given(passwords, passwords, st.dictionaries(names, passwords, max_size=5))
def test_jaas_lists_super_and_every_user_and_is_balanced(super_pw, quorum_pw, users):
    text = render_jaas(super_pw, quorum_pw, users)
    headers = re.findall(r"^(\w+) \{$", text, flags=re.M)
    assert headers == ["Server", "QuorumServer", "QuorumLearner"]
    assert len(re.findall(r"^\};$", text, flags=re.M)) == 3
    assert f'user_super="{super_pw}"' in text
    for user, password in users.items():
        assert f'user_{user}="{password}"' in text
    assert re.search(r"QuorumLearner \{[^}]*username=\"quorum\"", text)


@given(configs, hostnames)
def test_static_config_refuses_sessions_that_did_not_authenticate_with_sasl(config, address):
    props = _properties(render_static_config(config, address))
    assert props["authProvider.sasl"].endswith(".SASLAuthenticationProvider")
    assert props["enforce.auth.enabled"] == "true"
    # only SASL: digest auth never fails (any user:password becomes an id), so listing it
    # would let any client in (observed on ZooKeeper 3.9.4, see NOTES-real-workload.md)
    assert props["enforce.auth.schemes"] == "sasl"
    # the charm's health checks are 4lw (client port) and the admin server: no session
    assert props["4lw.commands.whitelist"] == "*"
    assert props["admin.enableServer"] == "true"


@given(configs, passwords.filter(lambda p: " " not in p))
def test_sasl_user_super_is_zookeepers_super_user(config, super_pw):
    env = render_env(config, super_pw)
    opts = env["PULSAR_EXTRA_OPTS"].split()
    assert "-Dzookeeper.superUser=super" in opts
    assert 'user_super="' + super_pw + '"' in render_jaas(super_pw, "q", {})


@pytest.mark.parametrize("bad", ['has"quote', "back\\slash", "new\nline", "", "${user.home}"])
def test_jaas_rejects_values_that_would_break_the_file(bad):
    with pytest.raises(ValueError):
        render_jaas("ok", "ok", {"relation-1": bad})


def test_digest_matches_zookeepers_documented_example():
    # the ZooKeeper admin guide's superDigest example is for "super:admin"; the second value
    # was produced by `java org.apache.zookeeper.server.auth.DigestAuthenticationProvider`
    assert digest("super", "admin") == "super:xQJmxLMiHGwaqBvst5y6rkB6HQs="
    assert digest("super", "adminsecret") == "super:GcMT0ijsx21yLyTWAWMqFV/azZE="


@given(configs, passwords.filter(lambda p: " " not in p), hostnames)
def test_layer_runs_as_the_image_user_with_a_bounded_heap(config, super_pw, address):
    env = render_env(config, super_pw)
    layer = render_layer(env, address)
    service = layer["services"]["zookeeper"]
    assert service["user-id"] == 10000 and service["group"] == "root"
    assert f"-Xmx{config.heap_mb}m" in service["environment"]["PULSAR_MEM"]
    assert "superDigest=" + digest("super", super_pw) in env["PULSAR_EXTRA_OPTS"]
    assert "-Dzookeeper.fips-mode=false" in env["PULSAR_EXTRA_OPTS"]
    assert layer["checks"]["zookeeper-alive"]["http"]["url"].startswith(f"http://{address}:9990")


@given(st.dictionaries(st.text(max_size=5), st.text(max_size=20), max_size=4), st.text())
def test_restart_token_is_stable_and_sensitive(files, extra):
    layer = {"services": {}}
    assert restart_token(files, layer) == restart_token(dict(files), layer)
    changed = {**files, "/extra": extra + "x"}
    assert restart_token(changed, layer) != restart_token(files, layer)


@given(st.integers(0, 1000))
def test_unit_fqdn_is_the_stable_pod_name(n):
    assert unit_fqdn(f"zk/{n}", "zk", "m") == f"zk-{n}.zk-endpoints.m.svc.cluster.local"


@pytest.mark.parametrize(
    ("field", "value", "option"),
    [
        ("tick_time", 99, "tick-time"),
        ("sync_limit", 0, "sync-limit"),
        ("max_client_connections", -1, "max-client-connections"),
        ("autopurge_purge_interval", 9000, "autopurge-purge-interval"),
        ("heap_mb", 100000, "heap-mb"),
        ("log_level", "loud", "log-level"),
    ],
)
def test_config_errors_name_the_option_and_what_it_accepts(field, value, option):
    with pytest.raises(ValueError, match=rf"^{option}: must be "):
        ZooKeeperConfig(**{field: value})
