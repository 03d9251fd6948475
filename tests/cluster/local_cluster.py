"""Bring the bundle's shape up in the rig and keep it running until Ctrl-C.

``python -m tests.cluster.local_cluster [--brokers N] [--timeout S] [--once]``

The cluster lives in a private mount namespace: its names
(``<app>-<n>.<app>-endpoints.rig.svc.cluster.local``) resolve only for this process and its
children. ``--shell`` opens a shell inside that namespace once the cluster is up (exit it to tear
down); otherwise the status table is printed every ``--tick`` seconds.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.cluster import rig_net, rig_pods
from tests.cluster.rig_bundle import deploy_bundle
from tests.cluster.rig_juju import Model, RigEnv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bring the bundle up in the rig.")
    parser.add_argument("--brokers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--tick", type=float, default=30)
    parser.add_argument("--once", action="store_true", help="tear down once settled")
    parser.add_argument("--shell", action="store_true", help="open a shell in the namespace")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)

    sys.path[:0] = [
        str(Path(__file__).resolve().parents[2] / "charms" / charm / sub)
        for charm in ("pulsar-zookeeper-k8s", "bookkeeper-k8s", "pulsar-k8s")
        for sub in ("src", "lib")
    ]
    state = Path(tempfile.mkdtemp(prefix="pulsar-rig-", dir=os.environ.get("PULSAR_RIG_STATE")))
    plan = rig_net.AddressPlan(state / "hosts")
    for app in rig_net.KNOWN_SUBNETS:
        plan.add_app(app)
    rig_net.enter_rig_namespace(state, plan)
    rig_pods.kill_stale_processes()
    model = Model(RigEnv(state / "m", rig_pods.Image.from_cache(), plan))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        deploy_bundle(model, brokers=args.brokers)
        took = model.settle(timeout=args.timeout)
        print(f"settled in {took:.0f}s\n{model.status_table()}", flush=True)
        print(connection_help(plan, args.brokers), flush=True)
        if args.shell:
            subprocess.run([os.environ.get("SHELL", "/bin/sh")], check=False)
        while not args.once and not args.shell:
            model.run_for(args.tick)
            print(model.status_table(), flush=True)
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception:
        print(model.report(), flush=True)
        raise
    finally:
        model.teardown()
        shutil.rmtree(state, ignore_errors=True)


def connection_help(plan: rig_net.AddressPlan, brokers: int) -> str:
    """Where to point a Pulsar client, and how to make the unit names resolve outside."""
    app = "pulsar-k8s"
    lines = ["", "Pulsar is up:"]
    for n in range(brokers):
        name = plan.fqdn(app, n)
        lines += [
            f"  broker service URL  pulsar://{name}:6650",
            f"  admin URL           http://{name}:8080",
        ]
    lines += [
        "",
        "Clients follow the brokers' advertised names: they resolve inside the rig's namespace",
        "(--shell), or outside it once these lines are in your /etc/hosts:",
        *(f"  {plan.address(app, n)} {plan.fqdn(app, n)}" for n in range(brokers)),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
