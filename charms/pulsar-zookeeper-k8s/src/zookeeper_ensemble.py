"""Talking to the running ensemble: AdminServer commands, reconfig, chroots and ACLs (kazoo).

Every failure (connection refused, timeout, auth failure, ZooKeeper error) surfaces as
:class:`EnsembleError`, which the charm turns into a Waiting status: a hook never fails because
ZooKeeper is briefly unreachable. Timeouts are short because this runs inside Juju hooks.
"""

from __future__ import annotations

import http.client
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, cast

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, KazooException, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry
from kazoo.security import ACL, Id, Permissions
from zookeeper_plain_port import client_moves, plain_connection_count
from zookeeper_render import ADMIN_PORT, CLIENT_PORT, SUPER_USER, digest, parse_members
from zookeeper_tls import SECURE_CLIENT_PORT
from zookeeper_view import SERVING, server_state

logger = logging.getLogger(__name__)

CONFIG_ZNODE = "/zookeeper/config"
_PERMISSION_BITS = {
    "c": Permissions.CREATE,
    "d": Permissions.DELETE,
    "r": Permissions.READ,
    "w": Permissions.WRITE,
    "a": Permissions.ADMIN,
}


class EnsembleError(Exception):
    """ZooKeeper could not be reached or refused the operation; retry on a later event."""


def admin_command(host: str, command: str, *, timeout: float = 3.0) -> str:
    """Ask the server's AdminServer a command (``zabstate``, ``connections``): its JSON answer.

    "" when it does not answer. Plain HTTP on 9990, no credentials and no session: it answers
    whichever client ports are open.
    """
    connection = http.client.HTTPConnection(host, ADMIN_PORT, timeout=timeout)
    try:
        connection.request("GET", f"/commands/{command}")
        response = connection.getresponse()
        return response.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        logger.debug("%s on %s:%s failed: %s", command, host, ADMIN_PORT, exc)
        return ""
    finally:
        connection.close()


def server_state_of(host: str, *, timeout: float = 3.0) -> str:
    """Return ``down``, ``up`` or ``serving`` (``zookeeper_view.server_state``) of a server."""
    return server_state(admin_command(host, "zabstate", timeout=timeout))


def is_serving(host: str) -> bool:
    """Return whether the server leads or follows a quorum."""
    return server_state_of(host) == SERVING


def plain_clients(host: str, *, timeout: float = 1.0) -> int | None:
    """Return the server's plain-text client connections (None: no usable answer)."""
    return plain_connection_count(admin_command(host, "connections", timeout=timeout))


def sasl_options(username: str, password: str) -> dict[str, str]:
    """Kazoo's SASL DIGEST-MD5 login (needs ``pure-sasl``); a fresh dict: kazoo mutates it."""
    return {"mechanism": "DIGEST-MD5", "username": username, "password": password}


def acl_entries(username: str, password: str, letters: str) -> list[ACL]:
    """Build a client chroot's ACL: ``sasl:<user>`` and ``digest:<user>:<hash>``."""
    perms = 0
    for letter in letters:
        perms |= _PERMISSION_BITS[letter]
    return [
        ACL(perms, Id("sasl", username)),
        ACL(perms, Id("digest", digest(username, password))),
    ]


def _entries(username: str, password: str, perms: int) -> list[ACL]:
    return [
        ACL(perms, Id("sasl", username)),
        ACL(perms, Id("digest", digest(username, password))),
    ]


def _belongs_to(acl: ACL, username: str) -> bool:
    ident = acl.id.id
    return (acl.id.scheme == "sasl" and ident == username) or (
        acl.id.scheme == "digest" and ident.split(":", 1)[0] == username
    )


class ZooKeeperEnsemble:
    """A short-lived super-user session on the ensemble (use as a context manager).

    With ``tls_ca`` (the CAs the servers' certificates chain to) the session goes to the secure
    client port over TLS, checking each server's certificate and name: the super user's digest
    credential (``addauth``) travels in the clear otherwise.
    """

    def __init__(
        self, hosts: Iterable[str], super_password: str, *, timeout: int = 5, tls_ca: str = ""
    ):
        port = SECURE_CLIENT_PORT if tls_ca else CLIENT_PORT
        # a host given with its port keeps it (the pod-local plain listener)
        self._hosts = ",".join(h if ":" in h else f"{h}:{port}" for h in hosts)
        self._super_password = super_password
        self._timeout = timeout
        self._tls_ca = tls_ca
        self._ca_file: str | None = None
        self._client: KazooClient | None = None

    def _tls_options(self) -> dict[str, Any]:
        if not self._tls_ca:
            return {}
        # kazoo reads the CA from a file: a private one in the charm container, gone on exit
        fd, self._ca_file = tempfile.mkstemp(prefix="zookeeper-ca-", suffix=".pem")
        with os.fdopen(fd, "w") as handle:
            handle.write(self._tls_ca)
        return {"use_ssl": True, "verify_certs": True, "check_hostname": True, "ca": self._ca_file}

    def _remove_ca_file(self) -> None:
        if self._ca_file is not None:
            with suppress(OSError):
                os.unlink(self._ca_file)
            self._ca_file = None

    @property
    def _super_acl(self) -> list[ACL]:
        return [ACL(Permissions.ALL, Id("digest", digest(SUPER_USER, self._super_password)))]

    def __enter__(self) -> ZooKeeperEnsemble:
        """Connect and authenticate as super.

        The server enforces SASL for every session (``enforce.auth.schemes=sasl``), so the
        session first logs in over SASL DIGEST-MD5 as the JAAS ``Server`` user ``super``
        (``-Dzookeeper.superUser=super`` makes it ZooKeeper's super user), then adds the digest
        credential matched by ``superDigest`` (super on servers started before enforcement).
        """
        client = KazooClient(
            hosts=self._hosts,
            timeout=self._timeout,
            sasl_options=sasl_options(SUPER_USER, self._super_password),
            auth_data=[("digest", f"{SUPER_USER}:{self._super_password}")],
            connection_retry=KazooRetry(max_tries=1, ignore_expire=False),
            command_retry=KazooRetry(max_tries=1, ignore_expire=False),
            **self._tls_options(),
        )
        try:
            client.start(timeout=self._timeout)
        except (KazooException, KazooTimeoutError, OSError) as exc:
            client.close()
            self._remove_ca_file()
            raise EnsembleError(f"cannot connect to {self._hosts}: {exc}") from exc
        self._client = client
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the session; errors while closing do not matter."""
        if self._client is not None:
            try:
                self._client.stop()
                self._client.close()
            except Exception:  # closing must never fail a hook
                logger.debug("error closing the kazoo client", exc_info=True)
            self._client = None
        self._remove_ca_file()

    @contextmanager
    def _calling(self, what: str) -> Iterator[KazooClient]:
        if self._client is None:
            raise EnsembleError(f"{what}: not connected")
        try:
            yield self._client
        except (KazooException, KazooTimeoutError, OSError) as exc:
            raise EnsembleError(f"{what}: {type(exc).__name__} {exc}") from exc

    def members(self) -> dict[int, str]:
        """Return the committed membership (server id -> address) as ZooKeeper knows it."""
        with self._calling("read /zookeeper/config") as client:
            data, _ = cast("tuple[bytes, Any]", client.get(CONFIG_ZNODE))
        return parse_members(data.decode())

    def remove_servers(self, server_ids: Iterable[int]) -> dict[int, str]:
        """Reconfig: drop ``server_ids``; returns the new membership."""
        leaving = ",".join(str(s) for s in sorted(server_ids))
        with self._calling(f"reconfig remove {leaving}") as client:
            data, _ = cast(
                "tuple[bytes, Any]",
                client.reconfig(joining=None, leaving=leaving, new_members=None),
            )
        return parse_members(data.decode())

    def add_servers(self, server_lines: Iterable[str]) -> dict[int, str]:
        """Reconfig: add ``server.N=...`` lines; returns the new membership."""
        joining = ",".join(server_lines)
        with self._calling(f"reconfig add {joining}") as client:
            data, _ = cast(
                "tuple[bytes, Any]",
                client.reconfig(joining=joining, leaving=None, new_members=None),
            )
        return parse_members(data.decode())

    def move_client_addresses(self, addresses: dict[int, str], state: str) -> bool:
        """Reconfig every member whose client address is not where ``state`` says.

        ``addresses``: server id -> stable name. Running servers re-bind at once (no restart).
        Returns whether a reconfig was needed.
        """
        with self._calling("read /zookeeper/config") as client:
            data, _ = cast("tuple[bytes, Any]", client.get(CONFIG_ZNODE))
        moves = client_moves(data.decode(), addresses, state)
        if moves:
            self.add_servers(moves)
        return bool(moves)

    def grant(
        self,
        chroot: str,
        username: str,
        password: str,
        letters: str,
        *,
        exclusive: bool = False,
        also: Iterable[tuple[str, str]] = (),
    ) -> int:
        """Create ``chroot`` if missing and give ``username`` its ACL entries there.

        Shared: the chroot znode's ACL keeps other users' entries. Exclusive: the chroot and
        every znode under it get exactly the client's entries (clients such as Pulsar create
        znodes world-open, so this is re-applied on every call). ``also``: more (user,
        password) pairs given the same entries (both users of a credential rotation). Returns
        the znodes changed.
        """
        pairs = [(username, password), *also]
        wanted = [acl for user, pw in pairs for acl in acl_entries(user, pw, letters)]
        with self._calling(f"grant {chroot} to {username}") as client:
            client.ensure_path(chroot, acl=wanted)
            if not exclusive:
                current, stat = cast("tuple[list[ACL], Any]", client.get_acls(chroot))
                merged = [
                    a for a in current if not any(_belongs_to(a, user) for user, _ in pairs)
                ] + wanted
                return int(self._set_if_different(client, chroot, current, stat, merged))
            changed = 0
            for path in self._subtree(client, chroot):
                # a znode may vanish or change under us (ephemeral nodes): the next call fixes it
                with suppress(NoNodeError, BadVersionError):
                    current, stat = cast("tuple[list[ACL], Any]", client.get_acls(path))
                    changed += self._set_if_different(client, path, current, stat, wanted)
            return changed

    def mirror(self, chroot: str, old_user: str, new_user: str, new_password: str) -> int:
        """Give ``new_user`` the permissions ``old_user`` holds, on ``chroot`` and under it.

        A credential rotation's step: every znode whose ACL names the old user gets the new
        user's ``sasl`` and ``digest`` entries with the same permission bits (other entries are
        kept). Returns the znodes changed; idempotent.
        """
        with self._calling(f"mirror {old_user} to {new_user} on {chroot}") as client:
            if client.exists(chroot) is None:
                return 0
            changed = 0
            for path in self._subtree(client, chroot):
                with suppress(NoNodeError, BadVersionError):
                    current, stat = cast("tuple[list[ACL], Any]", client.get_acls(path))
                    perms = 0
                    for acl in current:
                        if _belongs_to(acl, old_user):
                            perms |= acl.perms
                    if not perms:
                        continue
                    wanted = [a for a in current if not _belongs_to(a, new_user)]
                    wanted += _entries(new_user, new_password, perms)
                    changed += self._set_if_different(client, path, current, stat, wanted)
            return changed

    def revoke(self, chroot: str, username: str, *, recursive: bool = False) -> None:
        """Remove ``username``'s ACL entries from ``chroot`` (and under it when ``recursive``).

        Data stays; a znode left with no entry is handed to the super user alone.
        """
        with self._calling(f"revoke {username} on {chroot}") as client:
            if client.exists(chroot) is None:
                return
            paths = self._subtree(client, chroot) if recursive else [chroot]
            for path in paths:
                with suppress(NoNodeError, BadVersionError):
                    current, stat = cast("tuple[list[ACL], Any]", client.get_acls(path))
                    remaining = [a for a in current if not _belongs_to(a, username)]
                    # an empty ACL is invalid: leave the znode to the super user alone
                    wanted = remaining or self._super_acl
                    self._set_if_different(client, path, current, stat, wanted)

    @staticmethod
    def _set_if_different(
        client: KazooClient, path: str, current: list[ACL], stat: Any, wanted: list[ACL]
    ) -> bool:
        if sorted(map(str, current)) == sorted(map(str, wanted)):
            return False
        client.set_acls(path, wanted, version=stat.aversion)
        return True

    @staticmethod
    def _subtree(client: KazooClient, root: str) -> list[str]:
        """``root`` and every znode under it, parents first (a vanished child is skipped)."""
        found, pending = [], [root]
        while pending:
            path = pending.pop()
            found.append(path)
            try:
                children = client.get_children(path) or []
            except NoNodeError:
                continue
            pending.extend(f"{path.rstrip('/')}/{child}" for child in sorted(children))
        return found
