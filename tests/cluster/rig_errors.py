"""The rig's exceptions."""

from __future__ import annotations


class RigError(RuntimeError):
    pass


class HookFailedError(RigError):
    """The charm raised: under Juju the unit would be in error state."""


class SettleTimeoutError(RigError):
    pass
