"""The `bookkeeper` interface: BookKeeper metadata location and writable bookies.

Where a BookKeeper cluster keeps its metadata, and which bookies can take writes right now.

provider (bookkeeper-k8s) application databag
    ``metadata-service-uri``  e.g. ``zk+hierarchical://zk-0:2181;zk-1:2181/bookkeeper/ledgers``
    ``bookies``               JSON list of the ids (``host:3181``) of every bookie unit
    ``ready-bookies``         JSON list of the ids of the bookies that are writable now

requirer (pulsar-k8s) application databag: nothing is required.

Neither side raises on bad data: a malformed databag reads as "not ready".
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import ops

LIBID = "9c8d7e6f5a4b4c3d2e1f0a9b8c7d6e5f"
LIBAPI = 0
LIBPATCH = 2

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BookKeeperInfo:
    metadata_service_uri: str
    bookies: tuple[str, ...]
    ready_bookies: tuple[str, ...]


class BookKeeperProvider:
    def __init__(self, charm: ops.CharmBase, relation_name: str = "bookkeeper"):
        self._charm = charm
        self._relation_name = relation_name

    def publish(self, info: BookKeeperInfo | None) -> None:
        """Leader only: tell every related application; ``None`` withdraws (not ready)."""
        if not self._charm.unit.is_leader():
            return
        wanted = (
            {
                "metadata-service-uri": info.metadata_service_uri,
                "bookies": json.dumps(sorted(info.bookies)),
                "ready-bookies": json.dumps(sorted(info.ready_bookies)),
            }
            if info
            else {"metadata-service-uri": "", "bookies": "[]", "ready-bookies": "[]"}
        )
        for relation in self._charm.model.relations[self._relation_name]:
            databag = relation.data[self._charm.app]
            for key, value in wanted.items():
                if databag.get(key, "") != value:
                    if value:
                        databag[key] = value
                    else:
                        del databag[key]


class BookKeeperRequirer:
    def __init__(self, charm: ops.CharmBase, relation_name: str = "bookkeeper"):
        self._charm = charm
        self._relation_name = relation_name

    def info(self) -> BookKeeperInfo | None:
        relation = self._charm.model.get_relation(self._relation_name)
        if relation is None or relation.app is None:
            return None
        try:
            data = relation.data[relation.app]
            uri = data.get("metadata-service-uri", "")
            bookies = json.loads(data.get("bookies", "[]"))
            ready = json.loads(data.get("ready-bookies", "[]"))
        except (ops.ModelError, ValueError) as exc:
            logger.info("bookkeeper relation data not usable: %s", exc)
            return None
        if not uri or not _is_str_list(bookies) or not _is_str_list(ready):
            return None
        return BookKeeperInfo(uri, tuple(bookies), tuple(ready))


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
