"""Typed, validated charm configuration of bookkeeper-k8s.

Loaded with ``CharmBase.load_config(BookKeeperConfig)``: Juju option names with dashes become the
underscored field names. A bad value raises :class:`ConfigError` whose message starts with the
Juju option name and says what it accepts, so the charm can show it as ``BlockedStatus`` as is.
"""

from __future__ import annotations

from dataclasses import dataclass

LOG_LEVELS = ("trace", "debug", "info", "warn", "error")


class ConfigError(ValueError):
    """A configuration value the charm refuses; ``str(error)`` is ready for a status message."""


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
        _int_in("heap-mb", self.heap_mb, 128, 65536)
        _int_in("direct-memory-mb", self.direct_memory_mb, 128, 262144)
        if not isinstance(self.journal_sync_data, bool):
            raise ConfigError("journal-sync-data: must be true or false")
        _int_in("journal-max-group-wait-ms", self.journal_max_group_wait_ms, 0, 1000)
        _int_in("journal-max-size-mb", self.journal_max_size_mb, 16, 65536)
        _int_in("write-cache-mb", self.write_cache_mb, 16, 131072)
        _int_in("read-ahead-cache-mb", self.read_ahead_cache_mb, 16, 131072)
        # Both caches are allocated from direct memory; Netty needs the rest for I/O buffers.
        if self.write_cache_mb + self.read_ahead_cache_mb >= self.direct_memory_mb:
            raise ConfigError(
                "direct-memory-mb: must exceed write-cache-mb + read-ahead-cache-mb "
                f"({self.write_cache_mb + self.read_ahead_cache_mb})"
            )
        _fraction("minor-compaction-threshold", self.minor_compaction_threshold)
        _fraction("major-compaction-threshold", self.major_compaction_threshold)
        _int_in("minor-compaction-interval-s", self.minor_compaction_interval_s, 0, 31536000)
        _int_in("major-compaction-interval-s", self.major_compaction_interval_s, 0, 31536000)
        _int_in("gc-wait-time-ms", self.gc_wait_time_ms, 1000, 86400000)
        self._check_compaction_rules()
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log-level: must be one of {', '.join(LOG_LEVELS)}")

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
                    f"{option}: must be 0 or at least gc-wait-time-ms/1000 "
                    f"({-(-self.gc_wait_time_ms // 1000)})"
                )
        if not (minor_on and major_on):
            return
        if self.major_compaction_interval_s <= self.minor_compaction_interval_s:
            raise ConfigError(
                "major-compaction-interval-s: must be 0 or > minor-compaction-interval-s "
                f"({self.minor_compaction_interval_s})"
            )
        if self.major_compaction_threshold <= self.minor_compaction_threshold:
            raise ConfigError(
                "major-compaction-threshold: must be 0 or > minor-compaction-threshold "
                f"({self.minor_compaction_threshold})"
            )


def _int_in(option: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{option}: must be an integer from {low} to {high}")


def _fraction(option: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"{option}: must be a number from 0.0 to 1.0")
