"""No credential in any log: quiet the library loggers that print them, redact exec output.

``kazoo`` logs its ``Auth(scheme='digest', auth='super:<password>')`` packets and the SASL
exchange at DEBUG, and ops forwards DEBUG records to ``juju-log``; ``pure_sasl`` and
``urllib3`` can log credentials or headers at DEBUG too. :func:`quiet_credential_loggers` keeps
those loggers at INFO or above (records below are never created). :func:`redact` replaces every
known secret value in a text (exec output, error messages) before the charm logs it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

LIBID = "b2d4f6a8c0e24a6c8e0a2c4e6a8c0e2d"
LIBAPI = 0
LIBPATCH = 1

CREDENTIAL_LOGGERS = ("kazoo", "pure_sasl", "puresasl", "urllib3", "websocket", "pulsar")
REDACTED = "<redacted>"


def quiet_credential_loggers() -> None:
    """Raise the libraries' loggers that can print credentials to INFO (idempotent)."""
    for name in CREDENTIAL_LOGGERS:
        library_logger = logging.getLogger(name)
        if library_logger.getEffectiveLevel() < logging.INFO:
            library_logger.setLevel(logging.INFO)


def redact(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every (non-trivial) secret value replaced."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
