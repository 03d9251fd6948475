"""Typed, validated configuration of the pulsar-client-test charm.

Loaded with ``CharmBase.load_config(ClientTestConfig)``. Every validation error is a
``ValueError`` whose message is the ``BlockedStatus`` text: ``"<option>: <what it accepts>"``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from charms.pulsar_k8s.v0.pulsar_client import PERMISSIONS, validate_namespace


@dataclass(frozen=True)
class ClientTestConfig:
    """The charm's options, one field per Juju option."""

    namespace: str = ""
    second_namespace: str = ""
    permissions: str = "produce,consume"
    function: str = ""
    function_code_in_secret: bool = False

    def __post_init__(self) -> None:
        error = self.first_error()
        if error:
            raise ValueError(error)

    def first_error(self) -> str | None:
        """Return the first problem, as ``"<option>: <what it accepts>"``; None when valid."""
        for option, value, default in (
            ("namespace", self.namespace, "<app>/default"),
            ("second-namespace", self.second_namespace, "<app>/second"),
        ):
            if not isinstance(value, str):
                return f"{option}: must be a string 'tenant/namespace' (empty: {default})"
            if value.strip() and validate_namespace(value.strip()):
                return (
                    f"{option}: {value!r} is not 'tenant/namespace' (each part letters, "
                    f"digits, '_', '.', '-'; empty: {default})"
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
        if not isinstance(self.function, str) or (
            self.function.strip() and self.function_config() is None
        ):
            return "function: a JSON object (a Pulsar Function config dict), or empty"
        if not isinstance(self.function_code_in_secret, bool):
            return "function-code-in-secret: true or false"
        if self.function_code_in_secret and self.function_code() is None:
            return (
                "function-code-in-secret: needs a function whose py is inline code "
                "(a string with a line break) and whose name is a string"
            )
        return None

    def function_code(self) -> dict[str, str] | None:
        """{name: code} of the function whose inline code goes into a secret; None otherwise."""
        function = self.function_config() or {}
        code, name = function.get("py"), function.get("name")
        if not (isinstance(code, str) and "\n" in code and isinstance(name, str)):
            return None
        return {name: code}

    def function_config(self) -> dict | None:
        """The declared function's config dict; None when empty or not a JSON object."""
        try:
            value = json.loads(self.function)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def namespaces(self, app_name: str) -> dict[str, str]:
        """The namespace to ask for on each endpoint (defaults named after the application)."""
        return {
            "pulsar": self.namespace.strip() or f"{app_name}/default",
            "pulsar-second": self.second_namespace.strip() or f"{app_name}/second",
        }

    def permission_list(self) -> list[str]:
        """The permissions in the order given, without blanks or duplicates."""
        seen: list[str] = []
        for item in self.permissions.split(","):
            name = item.strip()
            if name and name not in seen:
                seen.append(name)
        return seen
