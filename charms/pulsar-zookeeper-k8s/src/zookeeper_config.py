"""Typed, validated charm configuration.

Every option of charmcraft.yaml has one field here; a value outside its accepted range raises
``ValueError("<option>: <what it accepts>")`` so the charm can block with a message an operator can
act on, before anything running is touched.
"""

from __future__ import annotations

import dataclasses

LOG_LEVELS = ("trace", "debug", "info", "warn", "error")
# How client chroots are protected (see zookeeper_clients.py).
ACL_POLICIES = ("shared", "exclusive")

# option name -> (minimum, maximum) for the integer options
_INT_RANGES: dict[str, tuple[int, int]] = {
    "tick-time": (100, 60000),
    "init-limit": (1, 1000),
    "sync-limit": (1, 1000),
    "max-client-connections": (0, 100000),
    "autopurge-snap-retain-count": (3, 1000),
    "autopurge-purge-interval": (0, 8760),
    "heap-mb": (128, 65536),
}


@dataclasses.dataclass(frozen=True)
class ZooKeeperConfig:
    """The charm's config options (dashes become underscores, as ``load_config`` passes them)."""

    tick_time: int = 2000
    init_limit: int = 10
    sync_limit: int = 5
    max_client_connections: int = 60
    autopurge_snap_retain_count: int = 3
    autopurge_purge_interval: int = 1
    heap_mb: int = 512
    log_level: str = "info"
    acl_policy: str = "exclusive"

    def __post_init__(self) -> None:
        """Reject values ZooKeeper or the JVM would refuse or misbehave with."""
        for option, (low, high) in _INT_RANGES.items():
            value = getattr(self, option.replace("-", "_"))
            # bool is an int subclass; Juju never sends one for an int option, but be strict.
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"{option}: must be an integer from {low} to {high}")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"log-level: must be one of {', '.join(LOG_LEVELS)}")
        if self.acl_policy not in ACL_POLICIES:
            raise ValueError(f"acl-policy: must be one of {', '.join(ACL_POLICIES)}")
