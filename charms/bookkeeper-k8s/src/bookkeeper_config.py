"""Typed, validated charm configuration of bookkeeper-k8s.

Loaded with ``CharmBase.load_config(BookKeeperConfig)``: Juju option names with dashes become the
underscored field names. A bad value raises :class:`ConfigError` whose message starts with the
Juju option name and says what it accepts, so the charm can show it as ``BlockedStatus`` as is.
"""

from __future__ import annotations

from dataclasses import dataclass

from charms.pulsar_k8s.v0.validation import (
    ConfigError,
    check_bool,
    check_choice,
    check_fraction,
    check_int,
)

LOG_LEVELS = ("trace", "debug", "info", "warn", "error")
__all__ = ["LOG_LEVELS", "BookKeeperConfig", "ConfigError"]


@dataclass(frozen=True)
class BookKeeperConfig:
    heap_mb: int = 512
    direct_memory_mb: int = 512
    journal_sync_data: bool = True
    journal_max_group_wait_ms: int = 1
    journal_max_size_mb: int = 2048
    write_cache_mb: int = 64
    read_ahead_cache_mb: int = 64
    minor_compaction_threshold: float = 0.2
    minor_compaction_interval_s: int = 3600
    major_compaction_threshold: float = 0.5
    major_compaction_interval_s: int = 86400
    gc_wait_time_ms: int = 900000
    log_level: str = "info"

    def __post_init__(self) -> None:
        check_int("heap-mb", self.heap_mb, 128, 65536)
        check_int("direct-memory-mb", self.direct_memory_mb, 128, 262144)
        check_bool("journal-sync-data", self.journal_sync_data)
        check_int("journal-max-group-wait-ms", self.journal_max_group_wait_ms, 0, 1000)
        check_int("journal-max-size-mb", self.journal_max_size_mb, 16, 65536)
        check_int("write-cache-mb", self.write_cache_mb, 16, 131072)
        check_int("read-ahead-cache-mb", self.read_ahead_cache_mb, 16, 131072)
        # Both caches are allocated from direct memory; Netty needs the rest for I/O buffers.
        if self.write_cache_mb + self.read_ahead_cache_mb >= self.direct_memory_mb:
            raise ConfigError(
                "direct-memory-mb",
                "must exceed write-cache-mb + read-ahead-cache-mb "
                f"({self.write_cache_mb + self.read_ahead_cache_mb})",
            )
        check_fraction("minor-compaction-threshold", self.minor_compaction_threshold)
        check_fraction("major-compaction-threshold", self.major_compaction_threshold)
        check_int("minor-compaction-interval-s", self.minor_compaction_interval_s, 0, 31536000)
        check_int("major-compaction-interval-s", self.major_compaction_interval_s, 0, 31536000)
        check_int("gc-wait-time-ms", self.gc_wait_time_ms, 1000, 86400000)
        self._check_compaction_rules()
        check_choice("log-level", self.log_level, LOG_LEVELS)

    def _check_compaction_rules(self) -> None:
        """Enforce the rules whose breach makes BookKeeper 4.17's GarbageCollectorThread fail."""
        minor_on = self.minor_compaction_interval_s > 0 and self.minor_compaction_threshold > 0
        major_on = self.major_compaction_interval_s > 0 and self.major_compaction_threshold > 0
        for on, option, interval_s in (
            (minor_on, "minor-compaction-interval-s", self.minor_compaction_interval_s),
            (major_on, "major-compaction-interval-s", self.major_compaction_interval_s),
        ):
            if on and interval_s * 1000 < self.gc_wait_time_ms:
                raise ConfigError(
                    option,
                    "must be 0 or at least gc-wait-time-ms/1000 "
                    f"({-(-self.gc_wait_time_ms // 1000)})",
                )
        if not (minor_on and major_on):
            return
        if self.major_compaction_interval_s <= self.minor_compaction_interval_s:
            raise ConfigError(
                "major-compaction-interval-s",
                f"must be 0 or > minor-compaction-interval-s ({self.minor_compaction_interval_s})",
            )
        if self.major_compaction_threshold <= self.minor_compaction_threshold:
            raise ConfigError(
                "major-compaction-threshold",
                f"must be 0 or > minor-compaction-threshold ({self.minor_compaction_threshold})",
            )
