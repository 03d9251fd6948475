"""One validation policy for config options and for everything read from another unit or app.

Config: a charm's config dataclass checks its fields in ``__post_init__`` with the ``check_*``
helpers below; a bad value raises :class:`ConfigError` whose text is the Blocked status,
``"<option>: <what it accepts>"``.

Edge data (relation databags, peer data, secret contents): parse with the ``parse_*`` helpers
before use; a bad value raises :class:`InvalidField` naming the relation (or secret) and the
field, which the charm shows as a Waiting status and never renders into a file, a layer or an
exec argument.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Protocol

LIBID = "0f6e1d2c3b4a49588776a5b4c3d2e1f0"
LIBAPI = 0
LIBPATCH = 1

JAVA_INT_MAX = 2**31 - 1
JAVA_LONG_MAX = 2**63 - 1

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_IPV4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
)
_USERNAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# Patterns are used with fullmatch (a `$` would accept a trailing line break).
# Printable ASCII without blanks and without the characters that change meaning in a JAAS file
# (quotes, backslash, `$` of `${property}` expansion), a properties file or a shell.
_CREDENTIAL = re.compile(r"[!#%&(-\[\]-~]{1,512}")
_ZNODE_PATH = re.compile(r"(?:/[A-Za-z0-9_.-]+)+")


class ConfigError(ValueError):
    """A config value the charm refuses; ``str(error)`` is the Blocked status message."""

    def __init__(self, option: str, accepts: str):
        super().__init__(f"{option}: {accepts}")
        self.option = option


class InvalidField(ValueError):  # noqa: N818 (reads as "invalid field <source> <field>")
    """Data from a relation, peer or secret the charm refuses to use."""

    def __init__(self, source: str, field: str, reason: str):
        where = source if source.endswith(" secret") else f"{source} relation"
        super().__init__(f"{where}: {field} {reason}")
        self.source = source
        self.field = field
        self.reason = reason


# -- config --------------------------------------------------------------------------------


def check_int(option: str, value: object, low: int, high: int) -> int:
    """Check an integer option is in [low, high] (``bool`` refused: it is an int in Python)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(option, f"must be an integer from {low} to {high}")
    return value


def check_fraction(option: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(option, "must be a number from 0.0 to 1.0")
    return float(value)


def check_bool(option: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(option, "must be true or false")
    return value


def check_choice(option: str, value: object, choices: Iterable[str]) -> str:
    allowed = tuple(choices)
    if value not in allowed:
        raise ConfigError(option, f"must be one of {', '.join(allowed)}")
    return str(value)


# -- edge data -----------------------------------------------------------------------------


def is_hostname(value: str) -> bool:
    return len(value) <= 253 and bool(_HOSTNAME.fullmatch(value) or _IPV4.fullmatch(value))


def parse_hostname(source: str, field: str, value: object) -> str:
    if not isinstance(value, str) or not is_hostname(value):
        raise InvalidField(source, field, "is not a host name")
    return value


def parse_host_port(source: str, field: str, value: object) -> str:
    """``host:port`` with a DNS name or IPv4 address and a port 1-65535."""
    if not isinstance(value, str):
        raise InvalidField(source, field, "is not host:port")
    host, _, port = value.rpartition(":")
    if not is_hostname(host) or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InvalidField(source, field, "is not host:port")
    return value


def parse_host_ports(source: str, field: str, values: Iterable[object]) -> tuple[str, ...]:
    """Parse a non-empty list of distinct ``host:port``, order kept."""
    parsed = tuple(dict.fromkeys(parse_host_port(source, field, v) for v in values))
    if not parsed:
        raise InvalidField(source, field, "is empty")
    return parsed


def parse_username(source: str, field: str, value: object) -> str:
    if not isinstance(value, str) or not _USERNAME.fullmatch(value):
        raise InvalidField(source, field, "is not a user name ([A-Za-z0-9_.-], 1-64)")
    return value


def parse_credential(source: str, field: str, value: object) -> str:
    """Parse a password or token safe in JAAS and properties files (never echoed)."""
    if not isinstance(value, str) or not _CREDENTIAL.fullmatch(value):
        raise InvalidField(source, field, "has characters outside the accepted set")
    return value


def is_credential(value: str) -> bool:
    return bool(_CREDENTIAL.fullmatch(value))


def parse_znode_path(source: str, field: str, value: object) -> str:
    if (
        not isinstance(value, str)
        or not _ZNODE_PATH.fullmatch(value)
        or any(part in (".", "..") for part in value.split("/"))
    ):
        raise InvalidField(source, field, "is not an absolute znode path")
    return value


def parse_metadata_service_uri(source: str, field: str, value: object) -> str:
    """BookKeeper's ``zk+hierarchical://h1:p1;h2:p2/ledgers/path``, nothing else."""
    prefix = "zk+hierarchical://"
    if not isinstance(value, str) or not value.startswith(prefix):
        raise InvalidField(source, field, f"is not a {prefix} URI")
    hosts, slash, path = value[len(prefix) :].partition("/")
    if not slash:
        raise InvalidField(source, field, "has no ledgers path")
    parse_host_ports(source, field, hosts.split(";"))
    parse_znode_path(source, field, "/" + path)
    return value


def parse_count(source: str, field: str, value: object, low: int = 0) -> int:
    """Parse a non-negative (or >= low) count that fits a Java int."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= JAVA_INT_MAX:
        raise InvalidField(source, field, f"is not an integer from {low} to {JAVA_INT_MAX}")
    return value


def parse_json_list(source: str, field: str, raw: str | None) -> list[object]:
    try:
        value = json.loads(raw if raw is not None else "[]")
    except ValueError:
        raise InvalidField(source, field, "is not JSON") from None
    if not isinstance(value, list):
        raise InvalidField(source, field, "is not a JSON list")
    return value


def parse_json_object(source: str, field: str, raw: str | None) -> dict[str, object]:
    try:
        value = json.loads(raw if raw is not None else "{}")
    except ValueError:
        raise InvalidField(source, field, "is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidField(source, field, "is not a JSON object")
    return {str(k): v for k, v in value.items()}


class ZooKeeperClientData(Protocol):
    """What a ``zookeeper`` requirer receives (the interface library's connection type)."""

    @property
    def endpoints(self) -> tuple[str, ...]: ...
    @property
    def chroot(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def password(self) -> str: ...


def check_zookeeper_connection(source: str, connection: ZooKeeperClientData) -> None:
    """Refuse a ZooKeeper connection whose endpoints, chroot or credentials are unusable."""
    parse_host_ports(source, "endpoints", connection.endpoints)
    if len(set(connection.endpoints)) != len(connection.endpoints):
        raise InvalidField(source, "endpoints", "lists a server twice")
    parse_znode_path(source, "chroot", connection.chroot)
    parse_username(source, "username", connection.username)
    parse_credential(source, "password", connection.password)
