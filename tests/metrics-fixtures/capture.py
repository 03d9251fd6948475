"""Capture the real Prometheus expositions of every unit of the rig's cluster.

``flock /tmp/pulsar-rig.lock .tox/cluster/bin/python tests/metrics-fixtures/capture.py``
(from the repository root). Brings the bundle up with the ``tutorial`` client (as
``tests.cluster.local_cluster`` does), runs producers and consumers on ``public/default`` and
``tutorial/default`` (one subscription is left behind, so a backlog exists), scrapes every unit
and writes ``<component>-<n>.prom`` next to this file, then tears the cluster down.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from tests.cluster import local_cluster, rig_net, rig_pods  # noqa: E402
from tests.cluster.rig_bundle import BOOKKEEPER, BROKER, ZOOKEEPER  # noqa: E402
from tests.cluster.rig_juju import Model, RigEnv  # noqa: E402

ENDPOINTS = {  # component file prefix -> (application, units, port, path)
    "zookeeper": (ZOOKEEPER, 3, 8000, "/metrics"),
    "bookkeeper": (BOOKKEEPER, 3, 8000, "/metrics"),
    "broker": (BROKER, 1, 8080, "/metrics/"),
}


def fetch(url: str, token: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


def traffic(access: local_cluster.ClientAccess, seconds: float) -> None:
    import pulsar

    def client(token: str) -> pulsar.Client:
        return pulsar.Client(access.service_url, authentication=pulsar.AuthenticationToken(token))

    admin, tutorial = client(access.admin_token), client(access.token)
    try:
        pairs = []
        for c, topic in (
            (admin, "persistent://public/default/metrics-capture"),
            (tutorial, f"persistent://{access.namespace}/metrics-capture"),
        ):
            consumer = c.subscribe(topic, "reader")
            c.subscribe(topic, "left-behind").close()  # keeps a backlog
            pairs.append((c.create_producer(topic, batching_enabled=False), consumer))
        end, n = time.monotonic() + seconds, 0
        while time.monotonic() < end:
            for producer, consumer in pairs:
                producer.send(f"message {n}".encode())
                consumer.acknowledge(consumer.receive(timeout_millis=30_000))
            n += 1
            time.sleep(0.01)
        print(f"sent {n} messages per topic", flush=True)
    finally:
        admin.close()
        tutorial.close()


def main() -> int:
    sys.path[:0] = local_cluster.charm_paths()
    state = Path(tempfile.mkdtemp(prefix="pulsar-rig-metrics-"))
    plan = rig_net.AddressPlan(state / "hosts")
    for app in rig_net.KNOWN_SUBNETS:
        plan.add_app(app)
    rig_net.enter_rig_namespace(state, plan)
    rig_pods.kill_stale_processes()
    model = Model(RigEnv(state / "m", rig_pods.Image.from_cache(), plan))
    try:
        access = local_cluster.bring_up(model)
        print(model.status_table(), flush=True)
        traffic(access, 60)
        for prefix, (app, units, port, path) in ENDPOINTS.items():
            for n in range(units):
                url = f"http://{plan.fqdn(app, n)}:{port}{path}"
                status, body = fetch(url, None)
                note = "without a token"
                if status != 200:
                    print(f"{url}: HTTP {status} without a token", flush=True)
                    status, body = fetch(url, access.admin_token)
                    note = "with the admin token"
                print(f"{url}: HTTP {status} {note}, {len(body)} chars", flush=True)
                (HERE / f"{prefix}-{n}.prom").write_text(body)
        return 0
    except Exception:
        print(model.report(), flush=True)
        raise
    finally:
        model.teardown()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
