"""The typed view of the ``cluster`` peer relation: the only place its databags are read.

Unit databags (every unit, this one included):
    ``address`` its stable name; ``server-id`` its server id (for people reading the databag:
    the charm derives the id from the unit number and never reads it back); ``started`` "true"
    when its server runs and answers ``ruok``; ``users`` JSON list of the client users its
    running server's JAAS holds; ``quorum-tls`` the quorum TLS stage its running server was
    started with; ``secure-port`` "true" when its running server serves the TLS client port;
    ``certificate`` "true" when the unit has its certificate (it can run quorum TLS);
    ``tls-cas`` JSON list of the CAs (PEM) it needs trusted: its newest certificate's and the
    one its running server presents (two during a CA rotation); ``trusted-cas`` JSON list of
    the SHA-256 fingerprints of the CAs its running server trusts (absent: not running TLS);
    ``plain-clients`` the number of plain-text client connections its server has, while the
    leader waits for them to leave before closing 2181 (absent: not counted).
Application databag (leader):
    ``members`` JSON {server-id: address} of the committed ensemble; ``clients`` JSON
    {username: chroot} of the client ACLs in place, for revocation; ``internal-secret-id`` the
    id of the ``zookeeper-internal`` secret (read by ``find_app_secret``); ``rotations`` the
    credential rotations in progress (``zookeeper_rotation``); ``quorum-tls-stage`` the quorum
    TLS stage the members run (``zookeeper_tls``; missing: ``off``); ``plain-client-port``
    where the members' plain-text client listeners are bound in ZooKeeper's own config
    (``zookeeper_plain_port``: ``open`` on 2181, ``closed`` on the pod's loopback; missing:
    ``open``), written once the reconfig is done.
The rolling-restart library keeps its own keys in both and reads them itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from charms.pulsar_k8s.v0.validation import (
    InvalidField,
    parse_count,
    parse_hostname,
    parse_json_list,
    parse_json_object,
    parse_username,
    parse_znode_path,
)
from zookeeper_plain_port import OPEN
from zookeeper_plain_port import STATES as PLAIN_PORT_STATES
from zookeeper_render import server_id
from zookeeper_rotation import Rotation, parse_rotations
from zookeeper_tls import OFF, STAGES, split_certificates

PEER = "cluster"
ADDRESS_KEY = "address"
SERVER_ID_KEY = "server-id"
STARTED_KEY = "started"
USERS_KEY = "users"
MEMBERS_KEY = "members"
CLIENTS_KEY = "clients"
INTERNAL_SECRET_ID_KEY = "internal-secret-id"
ROTATIONS_KEY = "rotations"
QUORUM_TLS_KEY = "quorum-tls"
SECURE_PORT_KEY = "secure-port"
CERTIFICATE_KEY = "certificate"
QUORUM_TLS_STAGE_KEY = "quorum-tls-stage"
TLS_CAS_KEY = "tls-cas"
TRUSTED_CAS_KEY = "trusted-cas"
PLAIN_CLIENTS_KEY = "plain-clients"
PLAIN_CLIENT_PORT_KEY = "plain-client-port"


@dataclass(frozen=True)
class Peer:
    """What one unit (this one included) published in the peer relation."""

    unit_number: int
    address: str
    started: bool
    users: frozenset[str]
    # the quorum TLS stage its running server started with (None: unknown or not running)
    quorum_tls: str | None = None
    secure_port: bool = False
    certificate: bool = False
    # the CAs (PEM) it needs trusted
    cas: tuple[str, ...] = ()
    # the CA fingerprints its running server trusts (None: unknown, or not running TLS)
    trusted: frozenset[str] | None = None
    # its server's plain-text client connections (None: not counted)
    plain_clients: int | None = None

    @property
    def server_id(self) -> int:
        return server_id(self.unit_number)


@dataclass(frozen=True)
class ZooKeeperPeerState:
    # server id -> address of the committed ensemble (empty until the leader commits one)
    members: Mapping[int, str] = field(default_factory=dict)
    # username -> chroot of every client ACL the leader has set
    clients: Mapping[str, str] = field(default_factory=dict)
    # server id -> every unit that published an address
    peers: Mapping[int, Peer] = field(default_factory=dict)
    # relation id -> its credential rotation in progress
    rotations: Mapping[int, Rotation] = field(default_factory=dict)
    # the quorum TLS stage the leader set (zookeeper_tls.STAGES)
    quorum_tls_stage: str = OFF
    # where the plain-text client listeners are bound (zookeeper_plain_port.STATES)
    plain_client_port: str = OPEN


def parse(app: Mapping[str, str], units: Mapping[str, Mapping[str, str]]) -> ZooKeeperPeerState:
    """Read the peer databags (``units``: unit name -> unit databag); InvalidField if refused."""
    peers = (_peer(name, data) for name, data in units.items())
    return ZooKeeperPeerState(
        members=_members(app),
        clients=_clients(app),
        peers={peer.server_id: peer for peer in peers if peer is not None},
        rotations=parse_rotations(PEER, app.get(ROTATIONS_KEY)),
        quorum_tls_stage=_stage(app.get(QUORUM_TLS_STAGE_KEY)),
        plain_client_port=_plain_client_port(app.get(PLAIN_CLIENT_PORT_KEY)),
    )


def _plain_client_port(raw: str | None) -> str:
    if raw is None or raw == "":
        return OPEN
    if raw not in PLAIN_PORT_STATES:
        raise InvalidField(PEER, PLAIN_CLIENT_PORT_KEY, "must be open or closed")
    return raw


def _stage(raw: str | None) -> str:
    if raw is None or raw == "":
        return OFF
    if raw not in STAGES:
        raise InvalidField(PEER, QUORUM_TLS_STAGE_KEY, f"must be one of {', '.join(STAGES)}")
    return raw


def _peer(unit_name: str, data: Mapping[str, str]) -> Peer | None:
    number = unit_name.rpartition("/")[2]
    address = data.get(ADDRESS_KEY, "")
    if not (number.isascii() and number.isdigit()) or not address:
        return None  # not a unit name, or the unit has not published its address yet
    # The address ends up in server.N= lines: refused, never a newline or anything else.
    parse_hostname(PEER, f"{unit_name} {ADDRESS_KEY}", address)
    return Peer(
        unit_number=int(number),
        address=address,
        # Anything but "true" reads as not started: such a unit is never added to the
        # ensemble nor counted for quorum.
        started=data.get(STARTED_KEY) == "true",
        users=_users(data.get(USERS_KEY)),
        # anything unknown reads as an unknown stage: the leader then waits, the safe side
        quorum_tls=data.get(QUORUM_TLS_KEY) if data.get(QUORUM_TLS_KEY) in STAGES else None,
        secure_port=data.get(SECURE_PORT_KEY) == "true",
        certificate=data.get(CERTIFICATE_KEY) == "true",
        cas=_cas(data.get(TLS_CAS_KEY)),
        trusted=_trusted(data.get(TRUSTED_CAS_KEY)),
        plain_clients=_count(data.get(PLAIN_CLIENTS_KEY)),
    )


def _count(raw: str | None) -> int | None:
    # anything but a count reads as not counted: the leader then keeps 2181 open, the safe side
    if raw is None or not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        return None
    return int(raw)


def _cas(raw: str | None) -> tuple[str, ...]:
    # Only well-formed certificate blocks are kept: they end up in every trust store. A bad
    # list reads as no CA (that member is then trusted a roll later, never anything else).
    try:
        values = parse_json_list(PEER, TLS_CAS_KEY, raw or None)
    except InvalidField:
        return ()
    return tuple(block for v in values if isinstance(v, str) for block in split_certificates(v))


def _trusted(raw: str | None) -> frozenset[str] | None:
    # Unknown reads as trusting nothing: a member waits before presenting a new CA.
    if not raw:
        return None
    try:
        values = parse_json_list(PEER, TRUSTED_CAS_KEY, raw)
    except InvalidField:
        return None
    return frozenset(v for v in values if isinstance(v, str) and _is_fingerprint(v))


def _is_fingerprint(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _users(raw: str | None) -> frozenset[str]:
    # A bad list (or entry) reads as no user loaded: the leader then only waits longer before
    # handing out a password, which is the safe side.
    try:
        values = parse_json_list(PEER, USERS_KEY, raw or None)
    except InvalidField:
        return frozenset()
    return frozenset(v for v in values if isinstance(v, str) and _is_username(v))


def _is_username(value: str) -> bool:
    try:
        parse_username(PEER, USERS_KEY, value)
    except InvalidField:
        return False
    return True


def _members(app: Mapping[str, str]) -> dict[int, str]:
    # Refused, never read as empty: no members would make the leader bootstrap a new ensemble.
    raw = parse_json_object(PEER, MEMBERS_KEY, app.get(MEMBERS_KEY) or None)
    members: dict[int, str] = {}
    for sid, address in raw.items():
        if not (sid.isascii() and sid.isdigit()):
            continue  # not a server id: the leader never writes one, nothing can join as it
        where = f"{MEMBERS_KEY}[{sid}]"
        members[parse_count(PEER, where, sid)] = parse_hostname(PEER, where, address)
    return members


def _clients(app: Mapping[str, str]) -> dict[str, str]:
    # Refused, never read as empty: the record is how the leader revokes the ACLs of gone
    # relations, so forgetting it would leave their access in place.
    raw = parse_json_object(PEER, CLIENTS_KEY, app.get(CLIENTS_KEY) or None)
    return {
        parse_username(PEER, CLIENTS_KEY, username): parse_znode_path(PEER, CLIENTS_KEY, chroot)
        for username, chroot in raw.items()
    }
