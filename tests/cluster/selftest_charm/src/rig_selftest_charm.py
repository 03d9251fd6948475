"""A tiny charm for the rig's self-test: one reconcile, real Pebble, peers, a secret."""

from __future__ import annotations

import json

import ops

PORT = 8080
SERVICE = "web"
CONF = "/pulsar/conf/rig-selftest.conf"
DATA = "/pulsar/data"
MARKER = f"{DATA}/first-boot"
SECRET_LABEL = "greeting-token"


def unit_fqdn(unit_name: str, app_name: str, model_name: str) -> str:
    n = unit_name.rsplit("/", 1)[1]
    return f"{app_name}-{n}.{app_name}-endpoints.{model_name}.svc.cluster.local"


class RigSelftestCharm(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        for event in (
            self.on.install,
            self.on.start,
            self.on.config_changed,
            self.on.upgrade_charm,
            self.on.update_status,
            self.on.leader_elected,
            self.on.pulsar_pebble_ready,
            self.on.pulsar_pebble_custom_notice,
            self.on.pulsar_pebble_check_failed,
            self.on.pulsar_pebble_check_recovered,
            self.on.secret_changed,
            self.on.cluster_relation_changed,
            self.on.cluster_relation_departed,
            self.on.greeting_relation_joined,
            self.on.upstream_relation_changed,
            self.on.upstream_relation_broken,
        ):
            framework.observe(event, self._reconcile)

    @property
    def fqdn(self) -> str:
        return unit_fqdn(self.unit.name, self.app.name, self.model.name)

    def _reconcile(self, event: ops.EventBase) -> None:
        container = self.unit.get_container("pulsar")
        self._publish_peers()
        self._provide_greeting()
        if not container.can_connect():
            self.unit.status = ops.WaitingStatus("waiting for Pebble")
            return
        upstream = self._upstream()
        # Juju storage arrives root-owned: make it the workload user's (root exec).
        if container.list_files(DATA, itself=True)[0].user_id != 10000:
            container.exec(["chown", "10000:0", DATA]).wait()
        if not container.exists(MARKER):
            container.push(MARKER, self.unit.name, user_id=10000, group_id=0, make_dirs=True)
        conf = json.dumps({"unit": self.unit.name, "fqdn": self.fqdn, "upstream": upstream})
        if not container.exists(CONF) or container.pull(CONF).read() != conf:
            container.push(CONF, conf, user_id=10000, group_id=0, permissions=0o644)
        if self.config["run-version"] and not container.exists(f"{DATA}/version.txt"):
            out, _ = container.exec(
                ["/pulsar/bin/pulsar", "version"],
                environment={"PULSAR_MEM": "-Xmx64m"},
                user_id=10000,
                group_id=0,
                timeout=120,
            ).wait_output()
            container.push(f"{DATA}/version.txt", out, user_id=10000, group_id=0)
        layer: ops.pebble.LayerDict = {
            "summary": "rig self-test",
            "services": {
                SERVICE: {
                    "override": "replace",
                    "command": f"python3 -m http.server --bind {self.fqdn} {PORT}"
                    " --directory /pulsar/conf",
                    "startup": "enabled",
                    "user-id": 10000,
                    "group-id": 0,
                }
            },
            "checks": {
                "web-ready": {
                    "override": "replace",
                    "level": "ready",
                    "period": "1s",
                    "threshold": 2,
                    "http": {"url": f"http://{self.fqdn}:{PORT}/rig-selftest.conf"},
                }
            },
        }
        if container.get_plan().to_dict().get("services") != layer.get("services"):
            container.add_layer("selftest", layer, combine=True)
        container.replan()
        if not container.get_service(SERVICE).is_running():
            self.unit.status = ops.MaintenanceStatus("starting")
            return
        if self.model.get_relation("upstream") and upstream is None:
            self.unit.status = ops.WaitingStatus("waiting for upstream greeting")
            return
        self.unit.status = ops.ActiveStatus(f"upstream: {upstream}" if upstream else "")

    def _publish_peers(self) -> None:
        peers = self.model.get_relation("cluster")
        if peers is None:
            return
        if peers.data[self.unit].get("address") != self.fqdn:
            peers.data[self.unit]["address"] = self.fqdn
        if self.unit.is_leader():
            members = sorted(
                [self.fqdn] + [a for u in peers.units if (a := peers.data[u].get("address"))]
            )
            if peers.data[self.app].get("members") != json.dumps(members):
                peers.data[self.app]["members"] = json.dumps(members)

    def _provide_greeting(self) -> None:
        if not self.unit.is_leader():
            return
        content = {"token": f"token-{self.config['message']}"}
        try:
            secret = self.model.get_secret(label=SECRET_LABEL)
            if secret.get_content(refresh=True) != content:
                secret.set_content(content)
        except ops.SecretNotFoundError:
            secret = self.app.add_secret(content, label=SECRET_LABEL)
        for relation in self.model.relations["greeting"]:
            secret.grant(relation)
            wanted = {"message": str(self.config["message"]), "secret-id": secret.id or ""}
            for key, value in wanted.items():
                if relation.data[self.app].get(key) != value:
                    relation.data[self.app][key] = value

    def _upstream(self) -> str | None:
        relation = self.model.get_relation("upstream")
        if relation is None or relation.app is None:
            return None
        data = relation.data[relation.app]
        if not data.get("secret-id"):
            return None
        try:
            token = self.model.get_secret(id=data["secret-id"]).get_content(refresh=True)
        except (ops.SecretNotFoundError, ops.ModelError):
            return None
        return f"{data.get('message')}/{token.get('token')}"
