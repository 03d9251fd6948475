"""Bring the bundle's shape up in the rig, hand a client a ready namespace, keep it running.

``python -m tests.cluster.local_cluster [--brokers N] [--timeout S] [--shell] [--once]``

Besides the bundle, the cluster gets one client application the way an operator would give
one: the test client charm, deployed as ``tutorial`` and integrated with ``pulsar-k8s``. The
broker charm answers that relation with the namespace ``tutorial/default``, a role allowed to
produce and consume there, and its token; this module prints those, the URLs and the admin
token, and writes them as shell variables to ``client.env`` in the cluster's state directory.

The cluster lives in a private mount namespace: its names
(``<app>-<n>.<app>-endpoints.rig.svc.cluster.local``) resolve only for this process and its
children (or a shell entered with ``nsenter``). ``--shell`` opens a shell inside that namespace
with the variables exported (exit it to tear down); otherwise the status table is printed every
``--tick`` seconds until Ctrl-C.

:func:`bring_up` and :func:`shell_env` are also what the tutorial's rig test uses, so the page
is checked against this very cluster.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.cluster import rig_net, rig_pods
from tests.cluster.rig_bundle import BROKER, deploy_bundle
from tests.cluster.rig_juju import Model, RigEnv

CLIENT_APP = "tutorial"
"""The client application the cluster is given; its namespace is ``tutorial/default``."""
CLIENT_ENV_FILE = "client.env"
TOKEN_PLUGIN = "org.apache.pulsar.client.impl.auth.AuthenticationToken"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ClientAccess:
    """What a client of the local cluster needs; the tokens are secrets."""

    service_url: str
    web_url: str
    websocket_url: str
    namespace: str
    role: str
    token: str
    admin_token: str
    pulsar_bin: str

    def env(self) -> dict[str, str]:
        """The shell variables the tutorial and scripts use."""
        return {
            "PULSAR_SERVICE_URL": self.service_url,
            "PULSAR_WEB_URL": self.web_url,
            "PULSAR_WEBSOCKET_URL": self.websocket_url,
            "PULSAR_NAMESPACE": self.namespace,
            "PULSAR_TOKEN": self.token,
            "PULSAR_ADMIN_TOKEN": self.admin_token,
            "PULSAR_BIN": self.pulsar_bin,
        }

    def write_env(self, path: Path) -> None:
        """Write ``export NAME=value`` lines, readable by root only (they hold tokens)."""
        text = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in self.env().items())
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(text)


def charm_paths() -> list[str]:
    """The charms' ``src``/``lib`` directories (what pytest's ``pythonpath`` adds for tests)."""
    charms = [REPO_ROOT / "charms" / c for c in ("pulsar-zookeeper-k8s", "bookkeeper-k8s")]
    charms += [REPO_ROOT / "charms" / "pulsar-k8s", REPO_ROOT / "tests/charms/pulsar-client-test"]
    return [str(charm / sub) for charm in charms for sub in ("src", "lib")]


def bring_up(model: Model, brokers: int = 1, timeout: float = 900) -> ClientAccess:
    """Deploy the bundle and the ``tutorial`` client, integrate them, settle; return access."""
    from pulsar_client_test_charm import PulsarClientTestCharm  # type: ignore[import-not-found]

    deploy_bundle(model, brokers=brokers)
    model.deploy(CLIENT_APP, PulsarClientTestCharm)
    model.integrate(f"{BROKER}:pulsar", f"{CLIENT_APP}:pulsar")
    model.settle(timeout=timeout)
    return client_access(model)


def client_access(model: Model) -> ClientAccess:
    """Read what the broker charm gave the ``tutorial`` relation, and the admin token."""
    (relation,) = model.relations_of(CLIENT_APP, "pulsar")
    answer = model.app_data(relation.id, BROKER)
    internal = model.secret("pulsar-internal", owner=BROKER).content()
    # The role and its token travel in the relation's `secret-user` Juju secret.
    user = model.secret(answer["secret-user"]).content()
    return ClientAccess(
        service_url=answer["broker-service-url"],
        web_url=answer["web-service-url"],
        websocket_url=answer["websocket-url"],
        namespace=answer["namespace"],
        role=user["username"],
        token=user["token"],
        admin_token=internal["admin-token"],
        pulsar_bin=str(model.env.image.distribution / "bin"),
    )


def shell_env(access: ClientAccess, env_file: Path) -> dict[str, str]:
    """The environment of ``--shell`` (and of the tutorial test's commands).

    ``python`` there is this interpreter (the tox environment's, with ``pulsar-client``).
    """
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, **access.env(), "PULSAR_CLIENT_ENV": str(env_file), "PATH": path}


def connection_help(
    access: ClientAccess, env_file: Path, plan: rig_net.AddressPlan, brokers: int
) -> str:
    """What a client needs, how to use the tokens, and how to reach the rig's names."""
    lines = [
        "",
        f"Pulsar is up. The application {CLIENT_APP!r} is integrated with {BROKER}:",
        f"  broker service URL  {access.service_url}",
        f"  web/admin URL       {access.web_url}",
        f"  WebSocket URL       {access.websocket_url}",
        f"  namespace           {access.namespace}",
        f"  token               {access.token}",
        f"                      (role {access.role}: produce and consume on {access.namespace})",
        f"  admin token         {access.admin_token}",
        "                      (superuser: every tenant, namespace and admin call)",
        "Use a token as: HTTP header 'Authorization: Bearer <token>';",
        f"  pulsar-admin --auth-plugin {TOKEN_PLUGIN} --auth-params token:<token>;",
        "  Python pulsar.Client(url, authentication=pulsar.AuthenticationToken(<token>)).",
        f"The same as shell variables: . {env_file}",
        "  (PULSAR_SERVICE_URL PULSAR_WEB_URL PULSAR_WEBSOCKET_URL PULSAR_NAMESPACE PULSAR_TOKEN",
        "   PULSAR_ADMIN_TOKEN PULSAR_BIN; --shell exports them.)",
        "The names resolve inside the rig's namespace only: --shell, or from another root shell",
        f"  nsenter --mount --target {os.getpid()} bash",
        "or outside it once these lines are in /etc/hosts:",
        *(
            f"  {plan.address(BROKER, n)} {plan.fqdn(BROKER, n)}"
            + (f" {rig_net.service_fqdn(BROKER)}" if n == 0 else "")
            for n in range(brokers)
        ),
    ]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Bring the bundle up in the rig.")
    p.add_argument("--brokers", type=int, default=1, help="number of brokers")
    p.add_argument("--timeout", type=float, default=900, help="seconds to settle")
    p.add_argument("--tick", type=float, default=30, help="status table period")
    p.add_argument("--once", action="store_true", help="tear down once settled")
    p.add_argument("--shell", action="store_true", help="open a shell in the namespace")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # On the handler, not the root logger: every simulated hook resets the root level to DEBUG.
    handler = logging.StreamHandler()
    handler.setLevel(logging.INFO if args.verbose else logging.WARNING)
    logging.getLogger().addHandler(handler)
    if not args.verbose:  # the simulator's consistency notes are for rig developers
        logging.getLogger("ops-scenario").setLevel(logging.ERROR)

    sys.path[:0] = charm_paths()
    base = os.environ.get("PULSAR_RIG_STATE") or None
    state = Path(tempfile.mkdtemp(prefix="pulsar-rig-", dir=base))
    plan = rig_net.AddressPlan(state / "hosts")
    for app in rig_net.KNOWN_SUBNETS:
        plan.add_app(app)
    rig_net.enter_rig_namespace(state, plan)
    rig_pods.kill_stale_processes()
    model = Model(RigEnv(state / "m", rig_pods.Image.from_cache(), plan))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        started = time.monotonic()
        access = bring_up(model, brokers=args.brokers, timeout=args.timeout)
        print(f"settled in {time.monotonic() - started:.0f}s", flush=True)
        env_file = state / CLIENT_ENV_FILE
        access.write_env(env_file)
        print(model.status_table(), flush=True)
        print(connection_help(access, env_file, plan, args.brokers), flush=True)
        if args.shell:
            subprocess.run(
                [os.environ.get("SHELL", "/bin/sh")], env=shell_env(access, env_file), check=False
            )
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


if __name__ == "__main__":
    sys.exit(main())
