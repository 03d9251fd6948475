"""Typed, validated charm configuration of the Pulsar broker.

Loaded with ``CharmBase.load_config(PulsarConfig)``: Juju option ``cluster-name`` arrives as the
keyword ``cluster_name``. Every validation error is a ``ValueError`` whose message is the
``BlockedStatus`` text: ``"<option>: <what it accepts>"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from charms.pulsar_k8s.v0.tls import parse_extra_sans
from charms.pulsar_k8s.v0.validation import JAVA_INT_MAX, JAVA_LONG_MAX, ConfigError

LOG_LEVELS = ("trace", "debug", "info", "warn", "error")
MIN_HEAP_MB = 128
MIN_DIRECT_MEMORY_MB = 64
# Largest heap / direct memory the charm passes to the JVM (1 TiB).
MAX_MEMORY_MB = 1024 * 1024
# backlogQuotaDefaultLimitBytes is a Java long: the limit in MiB times 2^20 must fit.
MAX_BACKLOG_MB = JAVA_LONG_MAX // (1024 * 1024)

# Pulsar accepts more characters in a cluster name, but the name also ends up in znode paths,
# URLs and function-worker ids, so the charm keeps to a conservative subset.
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def is_cluster_name(value: str) -> bool:
    return bool(_CLUSTER_NAME.fullmatch(value)) and value != "global"


@dataclass(frozen=True)
class PulsarConfig:
    """The charm's options, one field per Juju option (dashes become underscores)."""

    cluster_name: str = "pulsar"
    managed_ledger_ensemble_size: int = 2
    managed_ledger_write_quorum: int = 2
    managed_ledger_ack_quorum: int = 2
    default_retention_time_minutes: int = 0
    default_retention_size_mb: int = 0
    backlog_quota_default_limit_mb: int = -1
    heap_mb: int = 512
    direct_memory_mb: int = 256
    log_level: str = "info"
    functions_worker_enabled: bool = False
    websocket_service_enabled: bool = True
    tls_plaintext_enabled: bool = False
    tls_extra_sans: str = ""

    def __post_init__(self) -> None:
        error = self.first_error()
        if error:
            option, _, accepts = error.partition(": ")
            raise ConfigError(option, accepts)

    def first_error(self) -> str | None:
        """Return the first problem, as ``"<option>: <what it accepts>"``; None when valid."""
        for check in (
            self._check_types,
            self._check_cluster_name,
            self._check_quorums,
            self._check_retention,
            self._check_memory,
            self._check_log_level,
            self._check_tls_extra_sans,
        ):
            error = check()
            if error:
                return error
        return None

    def _check_types(self) -> str | None:
        # Juju enforces option types, but a test harness or a stale config may not: bool is an
        # int subclass in Python, so it is excluded explicitly.
        for name, wanted in type(self).__annotations__.items():
            value = getattr(self, name)
            option = name.replace("_", "-")
            if wanted == "int" and (not isinstance(value, int) or isinstance(value, bool)):
                return f"{option}: must be an integer"
            if wanted == "bool" and not isinstance(value, bool):
                return f"{option}: must be true or false"
            if wanted == "str" and not isinstance(value, str):
                return f"{option}: must be a string"
        return None

    def _check_cluster_name(self) -> str | None:
        if not is_cluster_name(self.cluster_name):
            return (
                "cluster-name: 1-64 letters, digits, '_', '.', '-' starting with a letter or "
                "digit (not 'global')"
            )
        return None

    def _check_quorums(self) -> str | None:
        ensemble = self.managed_ledger_ensemble_size
        write = self.managed_ledger_write_quorum
        ack = self.managed_ledger_ack_quorum
        if not 1 <= ensemble <= JAVA_INT_MAX:
            return f"managed-ledger-ensemble-size: an integer from 1 to {JAVA_INT_MAX}"
        if not 1 <= write <= ensemble:
            return (
                "managed-ledger-write-quorum: an integer between 1 and "
                f"managed-ledger-ensemble-size ({ensemble})"
            )
        if not 1 <= ack <= write:
            return (
                "managed-ledger-ack-quorum: an integer between 1 and "
                f"managed-ledger-write-quorum ({write})"
            )
        return None

    def _check_retention(self) -> str | None:
        # Pulsar keeps these in Java fields: retention as int, the backlog quota (bytes) as long.
        for option, value, high in (
            ("default-retention-time-minutes", self.default_retention_time_minutes, JAVA_INT_MAX),
            ("default-retention-size-mb", self.default_retention_size_mb, JAVA_INT_MAX),
            (
                "backlog-quota-default-limit-mb",
                self.backlog_quota_default_limit_mb,
                MAX_BACKLOG_MB,
            ),
        ):
            if not -1 <= value <= high:
                return f"{option}: an integer from -1 (unlimited) to {high}"
        return None

    def _check_memory(self) -> str | None:
        if not MIN_HEAP_MB <= self.heap_mb <= MAX_MEMORY_MB:
            return f"heap-mb: an integer from {MIN_HEAP_MB} to {MAX_MEMORY_MB}"
        if not MIN_DIRECT_MEMORY_MB <= self.direct_memory_mb <= MAX_MEMORY_MB:
            return f"direct-memory-mb: an integer from {MIN_DIRECT_MEMORY_MB} to {MAX_MEMORY_MB}"
        return None

    def _check_log_level(self) -> str | None:
        if self.log_level not in LOG_LEVELS:
            return f"log-level: one of {', '.join(LOG_LEVELS)}"
        return None

    def _check_tls_extra_sans(self) -> str | None:
        if parse_extra_sans(self.tls_extra_sans) is None:
            return "tls-extra-sans: comma-separated DNS names (no IP addresses)"
        return None
