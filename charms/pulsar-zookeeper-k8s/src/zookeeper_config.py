"""Typed, validated charm configuration.

Every option of charmcraft.yaml has one field here, its accepted range beside it; a value outside
it raises ``ConfigError`` (a ``ValueError``) reading ``"<option>: <what it accepts>"``, so the
charm can block with a message an operator can act on, before anything running is touched.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from charms.pulsar_k8s.v0.validation import check_bool, check_choice, check_int

LOG_LEVELS = ("trace", "debug", "info", "warn", "error")
# How client chroots are protected (see zookeeper_clients.py).
ACL_POLICIES = ("shared", "exclusive")


def _int_option(default: int, low: int, high: int) -> Any:
    """Declare an integer option with its accepted range (read by ``__post_init__``)."""
    return dataclasses.field(default=default, metadata={"range": (low, high)})


@dataclasses.dataclass(frozen=True)
class ZooKeeperConfig:
    """The charm's config options (dashes become underscores, as ``load_config`` passes them)."""

    # ZooKeeper's basic time unit (ms): heartbeats, session and sync limits are multiples.
    tick_time: int = _int_option(2000, 100, 60000)
    init_limit: int = _int_option(10, 1, 1000)
    sync_limit: int = _int_option(5, 1, 1000)
    # Per client IP address; 0 means no limit.
    max_client_connections: int = _int_option(60, 0, 100000)
    autopurge_snap_retain_count: int = _int_option(3, 3, 1000)
    autopurge_purge_interval: int = _int_option(1, 0, 8760)
    heap_mb: int = _int_option(512, 128, 65536)
    log_level: str = "info"
    acl_policy: str = "exclusive"
    # TLS on everywhere: keep 2181 open on the pod network next to 2182 (zookeeper_plain_port)
    tls_plaintext_enabled: bool = False

    def __post_init__(self) -> None:
        """Reject values ZooKeeper or the JVM would refuse or misbehave with."""
        for field in dataclasses.fields(self):
            if "range" in field.metadata:
                low, high = field.metadata["range"]
                check_int(field.name.replace("_", "-"), getattr(self, field.name), low, high)
        check_choice("log-level", self.log_level, LOG_LEVELS)
        check_choice("acl-policy", self.acl_policy, ACL_POLICIES)
        check_bool("tls-plaintext-enabled", self.tls_plaintext_enabled)
