"""Typed, validated charm configuration of pulsar-proxy-k8s.

Loaded with ``CharmBase.load_config(ProxyConfig)``: Juju option names with dashes become the
underscored field names. A bad value raises :class:`ConfigError` whose message starts with the
Juju option name and says what it accepts (the charm shows it as ``BlockedStatus``).
"""

from __future__ import annotations

from dataclasses import dataclass

from charms.pulsar_k8s.v0.tls import parse_extra_sans
from charms.pulsar_k8s.v0.validation import ConfigError, check_bool, check_choice, check_int

LOG_LEVELS = ("trace", "debug", "info", "warn", "error")
__all__ = ["LOG_LEVELS", "ConfigError", "ProxyConfig"]


@dataclass(frozen=True)
class ProxyConfig:
    heap_mb: int = 256
    direct_memory_mb: int = 256
    websocket_service_enabled: bool = True
    max_concurrent_inbound_connections: int = 10000
    log_level: str = "info"
    tls_plaintext_enabled: bool = False
    tls_extra_sans: str = ""

    def __post_init__(self) -> None:
        check_int("heap-mb", self.heap_mb, 128, 65536)
        check_int("direct-memory-mb", self.direct_memory_mb, 64, 262144)
        check_bool("websocket-service-enabled", self.websocket_service_enabled)
        check_int(
            "max-concurrent-inbound-connections", self.max_concurrent_inbound_connections, 1, 10**6
        )
        check_choice("log-level", self.log_level, LOG_LEVELS)
        check_bool("tls-plaintext-enabled", self.tls_plaintext_enabled)
        if parse_extra_sans(self.tls_extra_sans) is None:
            raise ConfigError("tls-extra-sans", "comma-separated DNS names (no IP addresses)")
