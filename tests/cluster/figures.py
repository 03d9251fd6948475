"""Figures measured by the rig's scenarios, and the page that shows them.

Scenarios call :func:`record` (``record("bundle.first_message_s", 84.2)``): the figure is printed
and merged into a JSON file (``$PULSAR_RIG_FIGURES``, default ``tests/cluster/.figures.json``,
git-ignored).

``python -m tests.cluster.figures [--slow] [--no-run] [pytest args]`` runs the scenarios with
figure recording (the default set; ``--slow`` adds the slow ones), then writes
``docs/explanation/proof-and-figures.md`` from the figures file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tests.cluster import service_levels

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FILE = Path(__file__).resolve().parent / ".figures.json"
PAGE = ROOT / "docs" / "explanation" / "proof-and-figures.md"
EXTENDED_FILE = Path(__file__).resolve().parent / "figures-extended.json"
"""The figures of the scenarios outside the default run (`tox -e cluster-extended` writes it;
committed, so the page keeps them, with when they last ran, whatever run it is drawn from)."""
_lock = threading.Lock()


def figures_file() -> Path:
    return Path(os.environ.get("PULSAR_RIG_FIGURES") or DEFAULT_FILE)


def load() -> dict[str, Any]:
    try:
        return json.loads(figures_file().read_text())
    except (OSError, ValueError):
        return {}


def record(key: str, value: Any) -> None:
    """Print a measured figure and merge it into the figures file."""
    if isinstance(value, float):
        value = round(value, 2)
    print(f"FIGURE {key} = {value}", flush=True)
    with _lock:
        data = load()
        data.setdefault("figures", {})[key] = value
        now = datetime.datetime.now(datetime.timezone.utc)
        data["updated"] = now.isoformat(timespec="seconds")
        path = figures_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def machine() -> str:
    try:
        meminfo = Path("/proc/meminfo").read_text().split("\n")[0].split()
        mem = f"{int(meminfo[1]) / 1024 / 1024:.0f} GiB"
    except (OSError, IndexError, ValueError):
        mem = "?"
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    jvm = (java.stderr.splitlines() or ["?"])[0]
    return f"{os.cpu_count()} CPUs (nproc), {mem} memory, {platform.machine()}, {jvm}"


# key -> (scenario, what it is, unit)
ROWS: list[tuple[str, str, str, str]] = [
    (
        "standalone.first_message_s",
        "baseline",
        "`bin/pulsar standalone`: start to first consumed message (median of the runs)",
        "s",
    ),
    ("standalone.runs_s", "baseline", "each standalone run (s)", ""),
    ("standalone.cpu_s", "baseline", "CPU the standalone used to its first message (median)", "s"),
    (
        "bundle.settle_s",
        "1",
        "empty model to every unit active (3 ZooKeeper, 3 bookies, 1 broker)",
        "s",
    ),
    ("bundle.first_message_s", "1", "empty model to first consumed message", "s"),
    ("bundle.ready_bookies", "1", "ready-bookies on the bookkeeper relation", ""),
    ("bundle.update_status_interval_s", "1", "update-status interval of the model", "s"),
    ("bundle.update_status_hooks", "1", "update-status hooks run during scenario 1", ""),
    ("bundle.longest_hook", "1", "longest hook per charm outside one-off init", ""),
    ("bundle.cpu", "1", "CPU from empty model to first message: machine, JVMs, rig", ""),
    ("bulk.produced", "1", "messages produced (send_async, bounded window)", ""),
    ("bulk.consumed", "1", "messages consumed, byte-identical and in order", ""),
    ("bulk.produce_s", "1", "time to produce and flush them", "s"),
    ("bulk.msgs_per_s", "1", "produce rate", "msg/s"),
    (
        "init.initnewcluster",
        "2",
        "initnewcluster execs after leader changes, pod loss, refresh",
        "",
    ),
    (
        "init.initialize_cluster_metadata",
        "2",
        "initialize-cluster-metadata execs, same history",
        "",
    ),
    ("init.whatisinstanceid", "2", "whatisinstanceid probes, same history", ""),
    ("init.restarts", "2", "restarts per unit (service PID changed) over that history", ""),
    ("init.settle_s", "2", "time to settle leader changes + pod losses + refresh", "s"),
    ("bookie_kill.back_s", "4", "kill -9 of a bookie to new PID and is_ready", "s"),
    ("bookie_kill.longest_gap_s", "4", "longest publish gap (acks) after the kill", "s"),
    ("bookie_kill.restarts", "4", "restarts per unit (service PID changed)", ""),
    ("bookie_kill.acked", "4", "messages acknowledged", ""),
    ("bookie_kill.acked_after_kill", "4", "of which after the kill", ""),
    ("bookie_kill.read", "4", "messages read back from the earliest (acked ones all present)", ""),
    ("bookie_kill.send_failures", "4", "sends that failed and were retried", ""),
    (
        "faults.zookeeper_leader_frozen_30s.back_to_true_s",
        "F",
        "ZooKeeper leader frozen 30 s: resume to every status true",
        "s",
    ),
    (
        "faults.bookkeeper_leader_frozen.ready_bookies",
        "F",
        "bookkeeper leader's bookie frozen: ready-bookies the leader publishes",
        "",
    ),
    (
        "faults.bookkeeper_leader_bookie_frozen.back_to_true_s",
        "F",
        "bookkeeper leader's bookie frozen 20 s+: resume to every status true",
        "s",
    ),
    (
        "restart.first_message_s",
        "R",
        "every pod lost and restored: to first consumed message",
        "s",
    ),
    ("restart.settle_s", "R", "every pod restored: to every unit active", "s"),
    ("restart.cpu", "R", "CPU from the loss to first message: machine, JVMs, rig", ""),
    ("restart.read_back", "R", "acknowledged messages read back after it (of 500)", ""),
    ("restart.longest_hook", "R", "longest hook per charm outside one-off init, whole run", ""),
    (
        "restart.early_sends_refused",
        "R",
        "sends straight to the broker JVM, before its first acknowledgement, refused",
        "",
    ),
    (
        "restart.first_ack_after_writable_s",
        "R",
        "its first acknowledgement after 2 bookies writable (sampled every 0.5 s)",
        "s",
    ),
    ("zk_scale.writes", "3", "znode writes during ZooKeeper 3 -> 5 -> 3", ""),
    ("zk_scale.retries", "3", "writes retried (ConnectionLoss / SessionExpired)", ""),
    ("zk_scale.failed", "3", "writes failed after retries", ""),
    ("zk_scale.longest_write_gap_s", "3", "longest gap between successful writes", "s"),
    ("zk_scale.restarts_of_staying_members", "3", "restarts of members that stayed", ""),
    ("zk_scale.settle_s", "3", "time for 3 -> 5 -> 3 to settle", "s"),
    ("broker_loss.back_s", "5", "lose_pod(pulsar-k8s/0) to active again", "s"),
    ("broker_loss.acked", "5", "messages acknowledged before the loss", ""),
    ("broker_loss.read", "5", "messages read back (acked ones all present)", ""),
    ("config.broker_restarts", "6", "broker restarts for one config change (2 brokers)", ""),
    ("config.other_restarts", "6", "ZooKeeper + bookie restarts for it", ""),
    ("config.both_brokers_down_s", "6", "time both brokers were down at once", "s"),
    ("config.longest_gap_s", "6", "longest publish gap during the rolling restart", "s"),
    ("config.acked", "6", "messages acknowledged during it", ""),
    ("config.read", "6", "messages read back (acked ones all present)", ""),
    (
        "config.identical_pushes",
        "6",
        "files pushed by a config change rendering identical files",
        "",
    ),
    ("config.identical_restarts", "6", "restarts caused by it", ""),
    (
        "relations.cycles",
        "7",
        "remove + re-add cycles (zookeeper<->broker, bookkeeper<->broker)",
        "",
    ),
    ("relations.longest_cycle_s", "7", "longest cycle back to active and serving", "s"),
    ("security.namespaces_ready_s", "S", "integrate to both clients' namespaces ready", "s"),
    ("security.client_b_consume_refused_s", "S", "client-b's consume refused after", "s"),
    ("security.revocation_latency_s", "S", "relation removed to the old token refused", "s"),
    ("security.reintegrated_working_s", "S", "integrate again to working produce", "s"),
    ("functions.deploy_to_running_s", "FN", "deploy-function to an instance running", "s"),
    ("functions.update_to_v2_output_s", "FN", "update-function to the new code's output", "s"),
    (
        "functions.pod_loss_to_worker_ready_s",
        "FN",
        "broker pod lost to its functions worker ready again (slow)",
        "s",
    ),
    ("rotation.roll_s", "K", "rotate-signing-key to the old key dropped (2 brokers)", "s"),
    ("rotation.clients_updated_s", "K", "rotate-signing-key to both clients on new tokens", "s"),
    ("rotation.publish_gap_s", "K", "longest publish gap under the producer", "s"),
    ("rotation.producer_failed_sends", "K", "producer sends failed (then retried)", ""),
    ("rotation.probe_failures", "K", "new-connection probes failed (any reason)", ""),
    ("rotation.broker_token_refusals", "K", "tokens refused by a broker during the roll", ""),
    (
        "zk_rotation.published_s",
        "ZR",
        "rotate-zookeeper-credentials to the new user published",
        "s",
    ),
    ("zk_rotation.total_s", "ZR", "rotate-zookeeper-credentials to the old user gone", "s"),
    ("zk_rotation.publish_gap_s", "ZR", "longest publish gap under the producer", "s"),
    ("zk_rotation.producer_failed_sends", "ZR", "producer sends failed (then retried)", ""),
    ("upgrade.total_s", "U", "refresh to the next patch release, all three applications", "s"),
    ("upgrade.pulsar-zookeeper-k8s.refresh_s", "U", "ZooKeeper refresh (3 units)", "s"),
    ("upgrade.bookkeeper-k8s.refresh_s", "U", "bookie refresh (3 units)", "s"),
    ("upgrade.pulsar-k8s.refresh_s", "U", "broker refresh (2 units)", "s"),
    ("upgrade.longest_gap_s", "U", "longest publish gap during the whole refresh", "s"),
    (
        "upgrade.pulsar-k8s.longest_gap_s",
        "U",
        "longest publish gap during the broker refresh",
        "s",
    ),
    ("upgrade.acked", "U", "messages acknowledged during the refresh", ""),
    ("upgrade.consumed", "U", "messages consumed (acked ones all, in order)", ""),
    ("upgrade.send_failures", "U", "producer sends failed (then retried)", ""),
]

SCENARIO_ROWS: list[tuple[str, str, str, str]] = [
    (
        "1",
        "from nothing, the bundle's shape converges: every unit active, the cluster listed by "
        "`/admin/v2/clusters`, 3 ready bookies; 10,000 messages produced with a bounded "
        "in-flight window, all consumed byte-identical and in order",
        "`test_scenarios.py`",
        "default",
    ),
    (
        "2",
        "one-off initialisation runs exactly once: after leader changes on the bookkeeper and "
        "broker applications, loss of the leaders' pods and a charm refresh, the exec history "
        "holds one `initnewcluster` and one `initialize-cluster-metadata`",
        "`test_scenarios.py`",
        "default",
    ),
    (
        "4",
        "`kill -9` of a bookie under a producer: Pebble restarts it (new PID, `is_ready`), "
        "production goes on, no acknowledged message is lost or reordered",
        "`test_scenarios.py`",
        "default",
    ),
    (
        "3",
        "ZooKeeper 3 -> 5 -> 3 under a kazoo client writing znodes continuously as the super "
        "user: no failed write after bounded retries, no member that stayed restarted",
        "`test_scenarios_slow.py`",
        "slow",
    ),
    (
        "5",
        "loss of the broker pod `pulsar-k8s/0` (2 brokers): the charm brings it back, every "
        "message acknowledged before the loss is still there",
        "`test_scenarios_slow.py`",
        "slow",
    ),
    (
        "6",
        "broker config change with 2 brokers under a producer: only brokers restart, one at a "
        "time, nothing acknowledged is lost; a change rendering identical files pushes nothing "
        "and restarts nothing",
        "`test_scenarios_slow.py`",
        "slow",
    ),
    (
        "7",
        "relation remove + re-add (zookeeper<->broker, bookkeeper<->broker) three times each: "
        "back to active and serving after each cycle",
        "`test_scenarios_slow.py`",
        "slow",
    ),
    (
        "F",
        "faults clear without update-status: the ZooKeeper leader's JVM frozen 30 s, then the "
        "bookkeeper leader's bookie frozen; while the bookie is frozen its unit reports it down "
        "and the others writable (ready-bookies 2, not 0); after each resume every status is "
        "true again, and no hook that made a unit active again was update-status",
        "`test_scenarios.py`",
        "default",
    ),
    (
        "R",
        "full-cluster restart: every pod lost at once, then all restored; back to serving, all "
        "500 acknowledged messages readable, no one-off initialisation run again, no unit made "
        "active by update-status",
        "`test_scenarios.py`",
        "default",
    ),
    (
        "S",
        "security (2 brokers, two client applications): client-a's namespace, URLs and token "
        "arrive on the `pulsar` relation and its produce/consume actions work; client-b is "
        "refused on client-a's namespace; no token and a forged token are refused; an "
        "unauthenticated ZooKeeper client cannot read or change `/pulsar`; a broker leader "
        "change and pod losses mint no new token; removing the relation revokes access at "
        "once, integrating again restores it",
        "`test_security.py`",
        "default",
    ),
    (
        "FN",
        "Pulsar Functions in the brokers' worker: a real Python function deployed by "
        "`deploy-function` transforms, counts and logs real messages; a malformed config dict "
        "fails naming the field; `update-function` changes the output and loses no input; "
        "`delete-function` stops it; a client relation deploys its own function with its role "
        "and cannot deploy into another client's namespace; (extended) a broker pod loss under a "
        "producer skips no acknowledged input",
        "`test_functions.py`",
        "default (+ extended)",
    ),
    (
        "K",
        "signing-key rotation (2 brokers, two client applications) under a producer: "
        "`rotate-signing-key` rolls the brokers one at a time, re-minted tokens reach both "
        "clients through their relation secrets, their actions work with them, old tokens are "
        "refused afterwards, nothing acknowledged is lost",
        "`test_key_rotation.py`",
        "extended",
    ),
    (
        "ZR",
        "ZooKeeper credential rotation of the bookkeeper relation (the cluster's one ZooKeeper "
        "identity) under a producer: `rotate-zookeeper-credentials` rolls the servers, the "
        "bookies and the broker move to the new user, the old one is refused by ZooKeeper "
        "afterwards, nothing acknowledged is lost",
        "`test_zookeeper_rotation.py`",
        "extended",
    ),
    (
        "U",
        "`juju refresh` from the previous Pulsar patch release (`PULSAR_UPGRADE_FROM_VERSION`) to "
        "`PULSAR_VERSION` (ZooKeeper x3, bookies x3, brokers x2) under "
        "a producer and a consumer, in the order ZooKeeper, bookies, brokers, each after "
        "`pre-refresh-check` passed: every unit restarts once, never two units of one "
        "application down at a time, nothing acknowledged lost, every JVM on the new jars; a "
        "pre-refresh check with a bookie killed fails naming it",
        "`test_upgrade.py`",
        "extended",
    ),
]
ROWS += [
    ("cos_targets", "O", "Prometheus targets built from metrics-endpoint (every unit)", ""),
    ("cos_targets_up_s", "O", "Prometheus start to every target up (2 s scrape interval)", "s"),
    ("cos_alert_rules", "O", "alert rules loaded from the published alert_rules", ""),
    ("cos_expressions_evaluated", "O", "PromQL expressions evaluated, each with data", ""),
    ("cos_bookie_down_alert_s", "O", "bookie kill -9 to BookieDown pending", "s"),
    ("cos_bookie_down_alert_cleared_s", "O", "bookie kill -9 to BookieDown cleared", "s"),
    ("cos_loki_lines_pulsar-zookeeper-k8s", "O", "log lines received by the Loki stand-in", ""),
    ("cos_loki_lines_bookkeeper-k8s", "O", "log lines received by the Loki stand-in", ""),
    ("cos_loki_lines_pulsar-k8s", "O", "log lines received by the Loki stand-in", ""),
]
SCENARIO_ROWS.append(
    (
        "O",
        "observability: a real Prometheus (Debian's) built only from what the charms published on "
        "`metrics-endpoint` scrapes every unit; under a producer every service-level query and "
        "every shipped rule/dashboard expression returns data; `kill -9` of a bookie makes the "
        "published BookieDown alert pending/firing, then it clears; `logging`: Pebble forwards "
        "the workloads' logs to a receiver standing in for Loki",
        "`test_observability.py`",
        "default",
    )
)
ROWS += [
    ("proxy.ready_s", "P", "deploy + integrate 2 proxies and 3 clients to all active", "s"),
    (
        "proxy.client_relation.produce_consume_s",
        "P",
        "client related to the proxy: produce + consume 5 messages by its actions",
        "s",
    ),
    (
        "proxy.client_relation.revocation_s",
        "P",
        "client relation removed at the proxy until its token is refused through the proxy",
        "s",
    ),
    ("proxy.loss_0.longest_ack_gap_s", "P", "longest ack gap, proxy pod 0 lost", "s"),
    ("proxy.loss_1.longest_ack_gap_s", "P", "longest ack gap, proxy pod 1 lost", "s"),
    ("proxy.loss.acked", "P", "messages acknowledged through the proxies (all read back)", ""),
    ("proxy.loss.send_failures", "P", "sends failed (then retried) over both proxy losses", ""),
    (
        "proxy.broker_loss.longest_ack_gap_s",
        "P",
        "longest ack gap, topic owner broker lost behind the proxies (slow)",
        "s",
    ),
    ("proxy.broker_loss.acked", "P", "messages acknowledged, all read back (slow)", ""),
]
SCENARIO_ROWS.append(
    (
        "P",
        "proxies: 2 pulsar-proxy-k8s units in front of the brokers; a client's relation token "
        "produces and consumes through each; no token, a forged token and another namespace's "
        "token are refused through the proxy; WebSocket produce/consume with the client's token "
        "on the broker and through each proxy, another namespace's token refused at the "
        "proxy's handshake; a client related to the proxy's `pulsar` endpoint gets the proxy's "
        "URLs and a token for its namespace only, and produces/consumes through it; each proxy "
        "pod lost in turn under a producer listing both: it "
        "reconnects through the other, nothing acknowledged lost; (slow) the topic's broker "
        "lost behind the proxies",
        "`test_proxy.py`",
        "default (+ slow)",
    )
)
# Safe bookie scale-down (issue 12, item 2).
ROWS += [
    (
        "scaledown.decommission_s",
        "D",
        "bookie 4 -> 3: the storage-detaching hook that decommissions",
        "s",
    ),
    ("scaledown.ledgers_moved", "D", "ledgers that had a copy on the removed bookie", ""),
    ("scaledown.decommission_attempts", "D", "decommissionbookie runs in that hook", ""),
    ("scaledown.publish_gap_s", "D", "longest publish gap under the producer during 4 -> 3", "s"),
]
SCENARIO_ROWS.append(
    (
        "D",
        "bookie scale-down at ensemble/write/ack quorum 3/3/2: 4 -> 3 decommissions the removed "
        "bookie (read-only, stopped, `decommissionbookie`), every message readable, nothing "
        "under-replicated, the bookie no longer listed; 3 -> 2 is refused (Blocked, nothing "
        "decommissioned) and every message is still readable",
        "`test_bookie_scale_down.py`",
        "extended",
    )
)
ROWS += [
    ("tls.enable_to_active_s", "T", "certificates related to broker serving TLS, active", "s"),
    ("tls.enable_publish_gap_s", "T", "longest publish gap while TLS is enabled (1 broker)", "s"),
    ("tls.client_round_trip_s", "T", "client charm: 10 messages produced+consumed over TLS", "s"),
    ("tls.renewal_reload_s", "T", "renewed certificate published to served, no restart", "s"),
    ("tls.ca_rotation_reload_s", "T", "new CA published to served, no restart", "s"),
    (
        "tls_slow.enable_two_brokers_s",
        "T",
        "TLS enabled on 2 brokers, one at a time (extended)",
        "s",
    ),
    ("tls_slow.enable_publish_gap_s", "T", "longest publish gap then (2 brokers, extended)", "s"),
    ("proxy_tls.ready_s", "T", "proxy + certificates + client deployed to proxy serving TLS", "s"),
    (
        "proxy_tls.client_round_trip_s",
        "T",
        "client of the proxy: 10 messages produced+consumed over pulsar+ssl through it",
        "s",
    ),
    ("proxy_tls.wss_round_trip_s", "T", "3 messages over wss through the proxy", "s"),
]
SCENARIO_ROWS.append(
    (
        "T",
        "TLS: a self-signed CA application on `certificates`; the broker enables TLS under a "
        "producer (nothing acknowledged lost), handshakes on 6651/8443 verify the chain and SANs, "
        "6650 refuses, the client charm moves messages over `pulsar+ssl`; a renewal and a CA "
        "rotation are served without a restart; the bookies serve TLS (one restart at a time, "
        "a real `START_TLS` handshake on each, the broker's BookKeeper client on TLS); a proxy "
        "reaches the TLS-only brokers over TLS and "
        "serves `pulsar+ssl`/HTTPS with its own certificate (handshakes, SANs, 6650 refused), "
        "its client moves messages through it over `pulsar+ssl` and `wss`; (extended, "
        "`test_tls_slow.py`) TLS enabled on two brokers one at a time, and a CA rotation on "
        "two brokers and the TLS bookies through trust bundles",
        "`test_tls.py`",
        "default (+ extended)",
    )
)
# BookKeeper TLS, in test_tls.py's module (issue 9).
ROWS += [
    ("bk_tls.enable_to_active_s", "T", "certificates related to bookies to broker on TLS", "s"),
    ("bk_tls.enable_publish_gap_s", "T", "longest publish gap then (3 bookies, 1 broker)", "s"),
    ("bk_tls.longest_bookie_down_s", "T", "longest bookie down then (one at a time)", "s"),
]
# ZooKeeper TLS (issue 9), test_zookeeper_tls.py.
ROWS += [
    (
        "zk_tls.enable_to_all_on_tls_s",
        "ZT",
        "certificates related to every server on quorum TLS, every client on 2182, 2181 closed",
        "s",
    ),
    (
        "zk_tls.zookeeper_restarts_per_server",
        "ZT",
        "restarts per server for it (staged quorum TLS)",
        "",
    ),
    ("zk_tls.enable_publish_gap_s", "ZT", "longest publish gap then", "s"),
    (
        "zk_tls.plain_port_reopen_s",
        "ZT",
        "tls-plaintext-enabled=true to 2181 answering on every server (no restart)",
        "s",
    ),
    (
        "zk_tls.plain_port_close_s",
        "ZT",
        "tls-plaintext-enabled=false to 2181 refusing on every server (no restart)",
        "s",
    ),
    ("zk_tls.ca_rotation_s", "ZT", "new CA to every server and client on it (extended)", "s"),
    ("zk_tls.ca_rotation_restarts_per_server", "ZT", "restarts per server for it (extended)", ""),
    ("zk_tls.ca_rotation_writes", "ZT", "kazoo writes during the rotation (extended)", ""),
    ("zk_tls.ca_rotation_write_retries", "ZT", "of which retried (extended)", ""),
    ("zk_tls.ca_rotation_longest_write_gap_s", "ZT", "longest gap between writes (extended)", "s"),
    (
        "zk_tls.ca_rotation_publish_gap_s",
        "ZT",
        "longest publish gap during the rotation (extended)",
        "s",
    ),
    (
        "zk_tls.disable_to_all_plain_s",
        "ZT",
        "relation removed to everything on plain text (extended)",
        "s",
    ),
    ("zk_tls.disable_publish_gap_s", "ZT", "longest publish gap then (extended)", "s"),
]
SCENARIO_ROWS.append(
    (
        "ZT",
        "ZooKeeper TLS (3 servers, 3 bookies, 1 broker, a proxy, under a producer): the CA "
        "related to ZooKeeper walks the quorum to TLS one server at a time; handshakes on "
        "every 2182 verify the chain and SANs, a plain-text client on 2182 gets nothing, "
        "bookies, broker and proxy run on 2182, nothing acknowledged lost; (extended) a CA "
        "rotation keeps the quorum (every server trusts both CAs on the way, kazoo writes "
        "never fail) and ends on the new CA alone; removing the relation walks everything back"
        " to plain text",
        "`test_zookeeper_tls.py`",
        "default (+ extended)",
    )
)
# Geo-replication between two clusters (issue 11, item 2).
ROWS += [
    ("georep.relate_to_replicating_s", "G", "relate to both statuses replicating", "s"),
    ("georep.first_message_latency_a_to_b_s", "G", "first message alpha -> beta", "s"),
    ("georep.first_message_latency_b_to_a_s", "G", "first message beta -> alpha", "s"),
    ("georep.median_latency_a_to_b_s", "G", "median of ten, alpha -> beta", "s"),
    ("georep.catch_up_after_restore_s", "G", "beta's broker pod restored to backlog arrived", "s"),
    ("georep.outage_duplicates", "G", "duplicates among the messages sent during the loss", ""),
    ("georep.relate_again_to_replicating_s", "G", "relate again to replicating", "s"),
    ("georep.resume_catch_up_s", "G", "relate again to the paused backlog arrived", "s"),
    ("georep.resume_duplicates", "G", "duplicates among the messages sent while unrelated", ""),
]
SCENARIO_ROWS.append(
    (
        "G",
        "geo-replication: two clusters in one model (1 ZooKeeper, 1 bookie, 1 broker each) "
        "related on `replication-offer`/`replication`; messages both ways, those produced while "
        "the peer's broker pod is lost arrive once it is back; unrelating pauses replication and "
        "relating again delivers what was produced meanwhile, in order; a namespace unlisted "
        "while unrelated stops for good",
        "`test_geo_replication.py`",
        "extended",
    )
)
SCENARIOS = "| # | scenario | module | run |\n|---|---|---|---|\n" + "".join(
    f"| {n} | {what} | {module} | {run} |\n" for n, what, module, run in SCENARIO_ROWS
)


TIMELINES = {
    "cold-deploy": "Cold deploy: empty model to first consumed message",
    "full-restart": "Full-cluster restart: every pod lost at once, then restored",
}
TIMELINE_DIR = ROOT / "docs" / "explanation" / "figures"


def render_timelines() -> list[str]:
    """Draw every saved timeline (matplotlib); return the names drawn."""
    # timeline.py reads the charms' own modules, which pytest finds through its pythonpath; a
    # plain `python -m tests.cluster.figures --no-run` needs them on sys.path as well.
    for folder in sorted(ROOT.glob("charms/*/src")) + sorted(ROOT.glob("charms/*/lib")):
        if str(folder) not in sys.path:
            sys.path.append(str(folder))
    from tests.cluster.timeline import Timeline, render_png

    drawn = []
    for name, title in TIMELINES.items():
        source = figures_file().parent / f".timeline-{name}.json"
        if source.exists():
            render_png(Timeline.load(source), TIMELINE_DIR / f"timeline-{name}.png", title)
            drawn.append(name)
    return drawn


def pace(figures: dict[str, Any]) -> str:
    """Issue 7's benchmarks, as ratios to the standalone baseline measured in the same run."""
    base = figures.get("standalone.first_message_s")
    lines = [f"- update-status every {figures.get('bundle.update_status_interval_s', '?')} s"]
    for key, what, bound in (
        ("bundle.first_message_s", "cold deploy to first consumed message", 4),
        ("restart.first_message_s", "full-cluster restart to first consumed message", 6),
    ):
        value = figures.get(key)
        if base and isinstance(value, (int, float)):
            lines.append(
                f"- {what}: {value} s = **{value / base:.1f}x** standalone ({base} s); "
                f"target <= {bound}x"
            )
        else:
            lines.append(f"- {what}: not measured")
    for key, what in (("bundle.cpu", "cold deploy"), ("restart.cpu", "full restart")):
        line = cpu_line(what, figures.get(key), figures.get("standalone.cpu_s"), base)
        if line:
            lines.append(line)
    for key in ("bundle.longest_hook", "restart.longest_hook"):
        hooks = figures.get(key)
        if isinstance(hooks, dict):
            worst = ", ".join(f"{app} {h['s']} s ({h['event']})" for app, h in hooks.items())
            lines.append(f"- longest hook per charm outside one-off init (`{key}`): {worst}")
    return "\n".join(lines)


def cpu_line(what: str, cpu: Any, standalone_cpu: Any, base: Any) -> str | None:
    """The CPU a scenario needed and the floor it puts under its wall time (issue 7)."""
    if not isinstance(cpu, dict):
        return None
    floor = cpu["floor_s"]
    ratio = f" = **{floor / base:.1f}x** standalone" if base else ""
    alone = f" (standalone: {standalone_cpu} CPU-s)" if standalone_cpu else ""
    return (
        f"- {what} CPU: {cpu['busy_s']} CPU-s on the machine{alone}, of which the JVMs "
        f"{cpu['jvms_s']}, the rig standing in for Juju {cpu['rig_s']} (its timeline sampling "
        f"{cpu['measurement_s']} more), the rest (tools, Pebble, checks) "
        f"{round(cpu['busy_s'] - cpu['jvms_s'] - cpu['rig_s'] - cpu['measurement_s'], 2)}; "
        f"{cpu['cpus']} CPUs {int(cpu['utilisation'] * 100)}% "
        f"busy, so no schedule ends before {floor} s{ratio}"
    )


def with_extended(data: dict[str, Any], extended: dict[str, Any]) -> dict[str, Any]:
    """Return ``data`` with the extended scenarios' figures it lacks, and when they ran."""
    figures = {**extended.get("figures", {}), **data.get("figures", {})}
    return {**data, "figures": figures, "extended": extended}


def load_extended() -> dict[str, Any]:
    try:
        return json.loads(EXTENDED_FILE.read_text())
    except (OSError, ValueError):
        return {}


def render(data: dict[str, Any]) -> str:
    figures = data.get("figures", {})
    extended = data.get("extended", {})
    rows = []
    for key, scenario, what, unit in ROWS:
        value = figures.get(key, "not measured")
        rows.append(
            f"| {scenario} | {what} | {value}{' ' + unit if unit and key in figures else ''} |"
        )
    extra = sorted(k for k in figures if k not in {r[0] for r in ROWS})
    rows += [f"| | `{k}` | {figures[k]} |" for k in extra]
    table = "\n".join(rows)
    return f"""# How the charms are proven, and what they measured

The charms are proven at three levels, each answering a different question.

1. **Unit tests** (`tox -e unit`: `charms/*/tests`, `tests/unit`): each charm's logic against
   `ops.testing` with a mocked Pebble. Fast and exhaustive on decisions (what to render, when to
   take the rolling-restart lock, what to publish on a relation), blind to whether Pulsar agrees.
2. **The real-workload rig** (`tox -e cluster`, `tox -e cluster-slow`: `tests/cluster`): the
   charms' own code, driven by a small Juju built on `ops.testing`, talks to a real Pebble per
   "pod" running the real Pulsar distribution, each pod on its own `127.0.x.y` address inside a
   private mount namespace. The rig only delivers events the way Juju would (relations,
   leadership, secrets, config, pod loss, rolling refresh); it knows nothing of what the charms
   run. Assertions are on real processes: PIDs, HTTP admin APIs, real produce/consume with
   `pulsar-client`, real znodes with `kazoo`, and the record of every call the charms made on
   Pebble. See `tests/cluster/README.md`.
3. **Integration on microk8s** (`tox -e integration`: `tests/integration`): the packed charms on
   a real Juju controller and Kubernetes, with `jubilant`; what the rig cannot show (the real
   controller, Services, image, storage provisioning).

## What each rig scenario shows

{SCENARIOS}
`tox` (the README's test command, which CI runs) runs the default and slow ones: `tox -e
cluster` (`pytest tests/cluster -m "not slow and not extended"`: 1, 4, 2, F, R, security and a
baseline, at Juju's update-status cadence of 300 s) and `tox -e cluster-slow` (the scenarios
marked `slow`), so either half can also be run alone. The scenarios marked `extended` (run
column "extended") do not fit CI's time budget beside them; `tox -e cluster-extended` runs
them and records their figures in `tests/cluster/figures-extended.json`, which this page
shows with the date of that run. Each figure below is printed by the
scenario that measured it and recorded in the figures file; `python -m tests.cluster.figures`
reruns the scenarios and rewrites this page.

## Latest figures

Measured {data.get("updated", "?")} on {data.get("machine", "?")}; every JVM small
(ZooKeeper heap 128 MB, bookies 256 MB heap + 256 MB direct, brokers 384 MB + 256 MB; the
standalone baseline `-Xms256m -Xmx512m -XX:MaxDirectMemorySize=256m`; every JVM, the baseline's
included, with Pulsar's default collector from `conf/pulsar_env.sh`).

{data.get("note", "")}

The extended scenarios (`tox -e cluster-extended`: U, D, K, ZR, GR, the functions' pod
loss and leader change, TLS on two brokers and their CA rotation, ZooKeeper's CA rotation and
TLS removal) are outside the default run; their figures below come from their own
run, last on {extended.get("updated", "?")}. {extended.get("note", "")}

| scenario | figure | value |
|---|---|---|
{table}

## Converging at Juju's pace (issue 7)

{pace(figures)}

The rig runs one hook at a time (Juju runs each unit's hooks concurrently); units take turns
in its queue, the one that waited longest since its last hook going next with each unit's own
order kept, as Juju's unit agents run side by side. Hook time therefore still adds up on the
critical path (a JVM start waits about 1 s in Pebble before the hook goes on), so these
figures are an upper bound of what a controller would show. Until 2026-12-03 the queue was one
FIFO for the whole model: the broker's first `bookkeeper` hook waited about 13 s behind the
other units' joins, and the cold deploy measured 3.5x-4.7x. Until the same day the rig also
read the pods' Pebble only once the whole queue was empty, so during a cold deploy's relation
cascade a check event or a custom notice waited for every queued hook of every unit; it now
reads them every 0.25 s between hooks, as Juju's watchers run beside the hooks.

What wakes a unit when its workload comes up is a Pebble custom notice from the watcher each
service starts with (architecture: "The watcher"): the bookie's, ZooKeeper's and the broker's
notices are recorded within 0.25 s of the change, where the 2 s view check alone had taken a
second on average (1.3 s from the broker ready to Active on 2026-12-02). The rig delivers the
notice as the next hook of that unit; with every unit's hooks run one at a time, a unit with a
backlog of relation hooks still hears of it late (a ZooKeeper member's quorum notice ran 30 s
after it was recorded in one loaded run), which a controller, running each unit's hooks beside
the others', would not show.

On 2 CPUs a cold deploy is CPU-bound, and the "CPU" lines above say by how much. From the
empty model to the first message the scenario counts every CPU-second the machine spent (from
`/proc/stat`, so the JVMs, the one-off tools, Pebble, the checks and the rig alike), each
unit's JVM, and the rig's own process (the simulated Juju: every hook runs the charm's code in
it). Divided by the CPUs, that is the shortest wall time any schedule could reach with the same
work; the standalone baseline is one JVM doing ZooKeeper, bookie and broker work in about a
fifth of the CPU-seconds. In the clean-clone CI run of c2d669b (2026-12-03 evening, the lines
above): 59.2 CPU-s, of which the seven JVMs 44.7 (ZooKeeper 4.7-5.2 each, bookies 5.3-5.6
each, the broker 13.5), the rig 6.1, the rest (one-off tools, Pebble, checks) 8.2; the 2 CPUs
were 94% busy, so no schedule ends before 29.6 s, **4.16x** the 7.12 s standalone (11.6 CPU-s)
of the same run, against a measured 31.4 s (4.42x). A targeted run that afternoon: 56.2 CPU-s,
floor 28.1 s = 4.5x a 6.24 s standalone, measured 30.15 s (4.8x). The <= 4x target is
therefore below this machine's floor for this work: the charms' ordering costs the 6-7% of
idle CPU, and the rest is the JVMs' own start (JIT and class loading, paid seven times where
the standalone pays it once). The rig's share is the charms' own hook code run in its process
(a controller runs each hook as a process of its own, which costs more, not less). What was
tried against that floor, measured the same way: the G1
collector for every JVM instead of Pulsar's ZGC (56.2 against 56.8 CPU-s, within noise; the
standalone gained 5%), and the one-off tools already run with C1 only and the serial
collector. Where the JVMs' CPU goes, from a broker restarted alone on the deployed cluster
(nothing else starting): 9.2 CPU-s to ready in 6.5 s as deployed, 8.9 without the WebSocket
service, 8.9 with G1 and no pre-touched heap, and 5.3 CPU-s in 4.9 s with C1 only: the C2
compiler's work on start-up paths is the largest share, and the only flag measured to move the
floor. It is not taken: C2's code is what serves messages for the JVM's whole life, and the
charms keep Pulsar's JVM defaults (the bookies behave alike: 4.2 CPU-s alone, 5.0-5.4 in the
cold deploy, where the JIT runs at half speed beside six other JVMs). Timings measured while
other processes use the same CPUs are noisy (one standalone start took 5.5 s to 14 s), hence
the median of three as the baseline, with the same JVM collector as the cluster, and the
figures from CI's quiet run. The broker JVM starts only
after the cluster metadata exists (Pulsar's Helm chart waits for the same znode), beside the
bookies. The full restart is within its 6x.

Measured in the clean-clone CI run of a851d1e (2026-12-03, the watcher in place, the machine
about 25% slower than the day before): cold deploy 30.2 s against a 6.95 s baseline, 4.35x,
no better than the 4.2x-4.4x of the day before. The critical path of that run: quorum 7.0 s,
BookKeeper metadata 8.3 s, the cluster-metadata tool 8.7-13.5 s, the broker JVM 14.3-28.1 s
beside three bookies starting (writable at 19.3-20.7 s), Active within the same timeline sample
as ready (the broker's notice), first message 30.2 s. Starting cluster-metadata initialisation
at the quorum, beside BookKeeper's, would move the broker's start about 1.5 s earlier on a
controller (in the rig, where hooks run one at a time, by the BookKeeper tool's hook); it
changes no CPU-second, so it cannot bring the cold deploy under the floor above, and is not
taken.

The timelines below come from the clean-clone CI run of c2d669b (2026-12-03 evening): cold
deploy 31.4 s against a 7.12 s baseline, 4.42x; full restart 31.6 s, 4.44x. Critical path of
the cold deploy: quorum 7.7 s, BookKeeper metadata 9.1 s, cluster metadata 14.6 s, the broker
JVM 15.1-29.3 s beside three bookies starting (writable at 22.1 s), first message 31.4 s. The
full restart: the broker JVM starts at 5.7 s (nothing one-off to wait for), quorum 14.3 s,
writable bookies 27.6 s, broker ready 30.1 s, first message 31.6 s. The earlier CI run of
c423b0d took 41.8 s against 9.44 s (4.43x): the ratio follows the machine's speed of the hour
more than any change since.

Each timeline shows one row per unit: the JVM's real state (thick: started, answering,
serving / writable / ready) over the unit's status after each hook (thin), the hooks as ticks,
and the critical path as dashed lines (ZooKeeper quorum, BookKeeper metadata, cluster metadata,
broker JVM started, writable bookies for the ensemble, ready broker, first consumed message).
The broker JVM starts right after the cluster metadata, beside the bookies: two branches run
at once after the BookKeeper metadata (bookies starting until writable; cluster metadata then
the broker JVM's start), and the broker serves (readiness gate, Active, client relations) once
both are done. After a full restart nothing one-off runs: ZooKeeper quorum, then each bookie
re-registers once its old session expired (`zkTimeout` 10 s after the quorum) while the broker
JVM starts.

![cold deploy](figures/timeline-cold-deploy.png)

![full-cluster restart](figures/timeline-full-restart.png)

## What an operator sees (COS)

The service-level panels, drawn from the `query_range` of the real Prometheus that scraped the
rig (scenario O) while a producer ran and a bookie was killed with `kill -9` (red line): what the
Grafana dashboards show on a real COS.

![service levels](figures/service-levels.png)

Figures marked "not measured" come from scenarios that were not part of the last run (for
instance the slow ones when only the default set ran).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--slow", action="store_true", help="also run the slow scenarios")
    parser.add_argument("--no-run", action="store_true", help="only rewrite the page")
    args, pytest_args = parser.parse_known_args(argv)
    os.environ.setdefault("PULSAR_RIG_FIGURES", str(DEFAULT_FILE))
    rc = 0
    if not args.no_run:
        figures_file().unlink(missing_ok=True)
        marker = [] if args.slow else ["-m", "not slow"]
        tests = ["tests/cluster/test_scenarios.py", "tests/cluster/test_observability.py"]
        tests.append("tests/cluster/test_tls.py")
        tests.append("tests/cluster/test_proxy.py")
        tests.append("tests/cluster/test_zookeeper_tls.py")
        if args.slow:
            tests.append("tests/cluster/test_scenarios_slow.py")
            tests.append("tests/cluster/test_key_rotation.py")
            tests.append("tests/cluster/test_zookeeper_rotation.py")
            tests.append("tests/cluster/test_tls_slow.py")
            tests.append("tests/cluster/test_upgrade.py")
            tests.append("tests/cluster/test_bookie_scale_down.py")
            tests.append("tests/cluster/test_geo_replication.py")
        rc = subprocess.run(
            [sys.executable, "-m", "pytest", *tests, *marker, "-q", "-s", *pytest_args],
            cwd=ROOT,
            check=False,
        ).returncode
    data = with_extended(load(), load_extended())
    data["machine"] = machine()
    try:
        print("timelines drawn:", render_timelines())
    except ImportError as exc:  # matplotlib comes with the cluster dependency group
        print(f"timelines not drawn: {exc}")
    levels = figures_file().parent / service_levels.SOURCE_NAME
    if levels.exists():
        service_levels.render_png(levels, TIMELINE_DIR / "service-levels.png")
        print("service levels drawn")
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(render(data))
    print(f"wrote {PAGE.relative_to(ROOT)} (pytest exit {rc})")
    return rc


if __name__ == "__main__":
    sys.exit(main())
