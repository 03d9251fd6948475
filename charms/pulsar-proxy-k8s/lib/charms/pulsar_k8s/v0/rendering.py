"""Java properties and JAAS files: one renderer each, one quoting and validation policy.

Properties: every key and value is escaped the way ``java.util.Properties.load`` reads it back
(backslash, line breaks, separators in keys, non-ASCII as ``\\uXXXX``), so no value can add a
line or a key.

JAAS: the JDK's ConfigFile parser ends a quoted string at a line break and expands
``${system.property}`` inside it, so a value is never escaped into shape: every option value must
pass :func:`charms.pulsar_k8s.v0.validation.is_credential` (user names, passwords) or the call
raises :class:`UnsafeValue`, before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping

from charms.pulsar_k8s.v0.validation import is_credential

LIBID = "7a1c3e5b9d2f4a6c8e0b1d3f5a7c9e2b"
LIBAPI = 0
LIBPATCH = 1

DIGEST_LOGIN_MODULE = "org.apache.zookeeper.server.auth.DigestLoginModule"

_CONTROL_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}


class UnsafeValue(ValueError):  # noqa: N818 (the value is unsafe, not an error object)
    """A value that cannot be written safely; the message names the option, never the value."""


def render_properties(properties: Mapping[str, str], header: str) -> str:
    """Render a Java properties file, keys sorted so equal inputs give identical bytes."""
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"{_escape_key(k)}={_escape_value(v)}" for k, v in sorted(properties.items())]
    return "\n".join(lines) + "\n"


def jaas_section(name: str, options: Mapping[str, str], module: str = DIGEST_LOGIN_MODULE) -> str:
    """One JAAS login section; every option value is checked, never escaped."""
    for option, value in options.items():
        if not is_credential(option) or not is_credential(value):
            raise UnsafeValue(f"JAAS {name}.{option}: value not allowed in a JAAS file")
    lines = [f'    {option}="{value}"' for option, value in options.items()]
    body = "\n".join(lines)
    return f"{name} {{\n    {module} required\n{body};\n}};\n"


def render_jaas(sections: Mapping[str, Mapping[str, str]]) -> str:
    return "".join(jaas_section(name, options) for name, options in sections.items())


def client_jaas(username: str, password: str) -> str:
    """Render the ``Client`` section ZooKeeper clients (bookies, brokers, tools) log in with."""
    return render_jaas({"Client": {"username": username, "password": password}})


def _escape_value(value: str) -> str:
    return _escape(value, specials="")


def _escape_key(key: str) -> str:
    # In a key, the separators and comment markers must be escaped too.
    return _escape(key, specials="=: #!")


def _escape(text: str, specials: str) -> str:
    out = []
    for i, char in enumerate(text):
        if char == "\\":
            out.append("\\\\")
        elif char in _CONTROL_ESCAPES:
            out.append(_CONTROL_ESCAPES[char])
        elif char in specials or (char == " " and i == 0):
            out.append("\\" + char)  # a leading blank would be stripped by the parser
        elif not 0x20 <= ord(char) < 0x7F:
            # Properties.load(InputStream) reads ISO-8859-1: keep the file pure ASCII.
            out.append("".join(f"\\u{unit:04x}" for unit in _utf16_units(char)))
        else:
            out.append(char)
    return "".join(out)


def _utf16_units(char: str) -> list[int]:
    data = char.encode("utf-16-be")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
