"""Closing ZooKeeper's plain-text client port 2181 once every member and client speaks TLS.

``tls-plaintext-enabled=false`` (the default) closes 2181 on the pod network once TLS is on
everywhere. ZooKeeper's reconfig refuses a ``server.N`` line without a client address, so
"closed" moves each server's plain listener to its pod's loopback (``zookeeper_render``): a
reconfig changes every member's client address and each running server re-binds at once,
without a restart; reopening is the reverse reconfig. Nothing else may depend on 2181 then:
the charm's probes and checks ask the AdminServer (9990), its own sessions go over TLS.

The leader closes the port only when nobody still uses it: every member serves 2182, the quorum
runs TLS only (the last stage of the TLS walk, so the clients have been told the 2182
endpoints for a while), and no member has a plain-text client connection left (each unit counts
its own through the AdminServer's ``connections`` command and publishes the count; a Pebble
check wakes it when the count drops to zero). It reopens the port as soon as the option allows
plain text again or a member is without its certificate (the certificates relation removed,
or a new unit without one yet).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from zookeeper_render import ADMIN_PORT, parse_members, server_line, server_lines

OPEN = "open"
CLOSED = "closed"
STATES = (OPEN, CLOSED)

PLAIN_CLIENTS_CHECK = "zookeeper-plain-clients"


def plan_plain_port(
    current: str,
    *,
    plaintext_allowed: bool,
    tls_everywhere: bool,
    tls_only_quorum: bool,
    plain_clients: Sequence[int | None],
) -> str:
    """Return where the plain client port should be: ``open`` or ``closed``.

    ``plain_clients``: each member's count of plain-text client connections (None: unknown).
    Once closed it stays closed while TLS is everywhere and the option says so: a client that
    still tries 2181 afterwards is refused, not a reason to reopen.
    """
    if plaintext_allowed or not tls_everywhere:
        return OPEN
    if current == CLOSED:
        return CLOSED
    if tls_only_quorum and plain_clients and all(count == 0 for count in plain_clients):
        return CLOSED
    return OPEN


def plain_connection_count(connections_answer: str) -> int | None:
    """Count the plain-text client connections in the AdminServer's ``connections`` answer.

    None when the answer is not one (no answer, an error, a server not serving).
    """
    try:
        data = json.loads(connections_answer)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("error") is not None:
        return None
    connections = data.get("connections")
    return len(connections) if isinstance(connections, list) else None


def client_moves(config_text: str, addresses: Mapping[int, str], state: str) -> list[str]:
    """Return the ``server.N`` lines a reconfig needs so every member's client address is right.

    ``config_text``: the ensemble's dynamic config (``/zookeeper/config``); ``addresses``:
    server id -> stable name. A member whose line already binds where ``state`` says is left
    out; an empty list means nothing to change.
    """
    plain_open = state != CLOSED
    members = parse_members(config_text)
    moves = []
    for sid, line in server_lines(config_text).items():
        wanted = server_line(sid, addresses.get(sid, members[sid]), plain_open)
        if line != wanted:
            moves.append(wanted)
    return moves


def connections_script(address: str) -> str:
    """Bash: exit 0 when the server has no plain-text client connection (the wake-up check)."""
    return (
        f"answer=$( (exec 3<>/dev/tcp/{address}/{ADMIN_PORT} && "
        'printf "GET /commands/connections HTTP/1.0\\r\\n\\r\\n" >&3 && '
        "while IFS= read -r -t 0.4 -u 3 line || [[ -n $line ]]; "
        "do printf '%s\\n' \"$line\"; done) 2>/dev/null); "
        'case "$answer" in *\'"connections" : [ ]\'*) exit 0;; esac; exit 1'
    )
