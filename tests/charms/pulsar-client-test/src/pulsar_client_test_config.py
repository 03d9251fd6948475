"""Typed, validated configuration of the pulsar-client-test charm.

Loaded with ``CharmBase.load_config(ClientTestConfig)``. Every validation error is a
``ValueError`` whose message is the ``BlockedStatus`` text: ``"<option>: <what it accepts>"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from charms.pulsar_k8s.v0.pulsar_client import PERMISSIONS, validate_namespace


@dataclass(frozen=True)
class ClientTestConfig:
    """The charm's options, one field per Juju option."""

    namespace: str = ""
    permissions: str = "produce,consume"

    def __post_init__(self) -> None:
        error = self.first_error()
        if error:
            raise ValueError(error)

    def first_error(self) -> str | None:
        """Return the first problem, as ``"<option>: <what it accepts>"``; None when valid."""
        if not isinstance(self.namespace, str):
            return "namespace: must be a string 'tenant/namespace' (empty: <app>/default)"
        if self.namespace.strip() and validate_namespace(self.namespace.strip()):
            return (
                f"namespace: {self.namespace!r} is not 'tenant/namespace' (each part letters, "
                "digits, '_', '.', '-'; empty: <app>/default)"
            )
        if not isinstance(self.permissions, str):
            return f"permissions: must be a comma-separated subset of {', '.join(PERMISSIONS)}"
        items = self.permission_list()
        unknown = [p for p in items if p not in PERMISSIONS]
        if not items or unknown:
            found = f" (unknown: {', '.join(unknown)})" if unknown else " (empty)"
            return (
                f"permissions: a non-empty comma-separated subset of {', '.join(PERMISSIONS)}"
                + found
            )
        return None

    @property
    def requested_namespace(self) -> str | None:
        """The namespace to ask for; None lets the library ask for ``<app>/default``."""
        return self.namespace.strip() or None

    def permission_list(self) -> list[str]:
        """The permissions in the order given, without blanks or duplicates."""
        seen: list[str] = []
        for item in self.permissions.split(","):
            name = item.strip()
            if name and name not in seen:
                seen.append(name)
        return seen
