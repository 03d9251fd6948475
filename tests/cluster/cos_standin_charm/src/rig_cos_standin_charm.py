"""COS stand-in: publishes a Loki push URL on ``logging`` as loki_push_api providers do."""

from __future__ import annotations

import json

import ops


class RigCosStandinCharm(ops.CharmBase):
    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        for event in (
            self.on.config_changed,
            self.on.leader_elected,
            self.on.logging_relation_created,
            self.on.logging_relation_joined,
        ):
            framework.observe(event, self._reconcile)

    def _reconcile(self, _: ops.EventBase) -> None:
        url = str(self.config.get("loki-url") or "")
        endpoint = json.dumps({"url": url}) if url else ""
        for relation in self.model.relations["logging"]:
            data = relation.data[self.unit]
            if data.get("endpoint", "") != endpoint:
                data["endpoint"] = endpoint
        self.unit.status = ops.ActiveStatus()
