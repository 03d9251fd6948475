"""The super-user kazoo session authenticates the way the server enforces (SASL first)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import zookeeper_ensemble
from kazoo.exceptions import NoNodeError, SASLException
from kazoo.security import ACL, Id, Permissions


class _FakeKazoo:
    created: list[dict[str, Any]] = []
    fail_start: Exception | None = None

    def __init__(self, **kwargs: Any):
        type(self).created.append(kwargs)

    def start(self, timeout: float) -> None:
        if self.fail_start is not None:
            raise self.fail_start

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def fake_kazoo(monkeypatch: pytest.MonkeyPatch) -> type[_FakeKazoo]:
    _FakeKazoo.created = []
    _FakeKazoo.fail_start = None
    monkeypatch.setattr(zookeeper_ensemble, "KazooClient", _FakeKazoo)
    return _FakeKazoo


def test_session_logs_in_with_sasl_digest_md5_as_super_and_adds_the_super_digest(fake_kazoo):
    with zookeeper_ensemble.ZooKeeperEnsemble(["a", "b"], "s3cret"):
        pass
    (kwargs,) = fake_kazoo.created
    assert kwargs["hosts"] == "a:2181,b:2181"
    assert kwargs["sasl_options"] == {
        "mechanism": "DIGEST-MD5",
        "username": "super",
        "password": "s3cret",
    }
    assert kwargs["auth_data"] == [("digest", "super:s3cret")]


def test_with_a_ca_the_session_goes_to_2182_over_tls_checking_names(fake_kazoo):
    ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    with zookeeper_ensemble.ZooKeeperEnsemble(["a", "b"], "s3cret", tls_ca=ca):
        (kwargs,) = fake_kazoo.created
        assert Path(kwargs["ca"]).read_text() == ca  # kazoo reads it from a file
        assert oct(Path(kwargs["ca"]).stat().st_mode & 0o777) == "0o600"
    assert kwargs["hosts"] == "a:2182,b:2182"
    assert (kwargs["use_ssl"], kwargs["verify_certs"], kwargs["check_hostname"]) == (
        True,
        True,
        True,
    )
    assert not Path(kwargs["ca"]).exists()  # gone with the session


def test_a_failed_tls_session_leaves_no_ca_file(fake_kazoo):
    fake_kazoo.fail_start = OSError("certificate verify failed")
    ensemble = zookeeper_ensemble.ZooKeeperEnsemble(["a"], "pw", tls_ca="ca")
    with pytest.raises(zookeeper_ensemble.EnsembleError, match="a:2182"):
        ensemble.__enter__()
    assert not Path(fake_kazoo.created[0]["ca"]).exists()


def test_without_a_ca_the_session_stays_plain_on_2181(fake_kazoo):
    with zookeeper_ensemble.ZooKeeperEnsemble(["a"], "pw"):
        pass
    (kwargs,) = fake_kazoo.created
    assert kwargs["hosts"] == "a:2181" and "use_ssl" not in kwargs


def test_sasl_options_are_a_fresh_dict_each_time():
    # kazoo adds a "service" key to the dict it is given
    first = zookeeper_ensemble.sasl_options("u", "p")
    first["service"] = "zookeeper"
    assert "service" not in zookeeper_ensemble.sasl_options("u", "p")


def test_sasl_failure_is_an_ensemble_error(fake_kazoo):
    fake_kazoo.fail_start = SASLException("Missing SASL support")
    ensemble = zookeeper_ensemble.ZooKeeperEnsemble(["a"], "pw")
    with pytest.raises(zookeeper_ensemble.EnsembleError, match="cannot connect"):
        ensemble.__enter__()


class _FakeTree(_FakeKazoo):
    """A znode tree with ACLs: ``nodes`` maps path -> ACL list; ``vanish`` drop on listing."""

    nodes: dict[str, list[ACL]] = {}
    set_calls: list[str] = []
    vanish: set[str] = set()

    def ensure_path(self, path: str, acl: list[ACL]) -> None:
        self.nodes.setdefault(path, list(acl))

    def exists(self, path: str) -> object:
        return True if path in self.nodes else None

    def get_children(self, path: str) -> list[str]:
        if path not in self.nodes:
            raise NoNodeError(path)
        prefix = path.rstrip("/") + "/"
        children = [p[len(prefix) :] for p in self.nodes if p.startswith(prefix)]
        for gone in self.vanish:
            self.nodes.pop(gone, None)
        return [c for c in children if "/" not in c]

    def get_acls(self, path: str) -> tuple[list[ACL], Any]:
        if path not in self.nodes:
            raise NoNodeError(path)
        return list(self.nodes[path]), SimpleNamespace(aversion=0)

    def set_acls(self, path: str, acls: list[ACL], version: int) -> None:
        self.set_calls.append(path)
        self.nodes[path] = list(acls)


WORLD = [ACL(Permissions.ALL, Id("world", "anyone"))]


@pytest.fixture
def tree(monkeypatch: pytest.MonkeyPatch) -> type[_FakeTree]:
    other = zookeeper_ensemble.acl_entries("relation-2", "pw2", "cdrwa")
    _FakeTree.nodes = {
        "/pulsar": WORLD + other,
        "/pulsar/ledgers": list(WORLD),
        "/pulsar/ledgers/L1": list(other),
        "/pulsar/admin": list(WORLD),
        "/pulsarx": list(WORLD),
    }
    _FakeTree.set_calls = []
    _FakeTree.vanish = set()
    _FakeTree.fail_start = None
    monkeypatch.setattr(zookeeper_ensemble, "KazooClient", _FakeTree)
    return _FakeTree


def test_exclusive_grant_makes_the_whole_subtree_the_clients_alone(tree):
    mine = zookeeper_ensemble.acl_entries("relation-1", "pw1", "cdrwa")
    with zookeeper_ensemble.ZooKeeperEnsemble(["a"], "pw") as zk:
        changed = zk.grant("/pulsar", "relation-1", "pw1", "cdrwa", exclusive=True)
        assert changed == 4
        assert all(tree.nodes[p] == mine for p in tree.nodes if p.startswith("/pulsar/"))
        assert tree.nodes["/pulsar"] == mine
        assert tree.nodes["/pulsarx"] == WORLD  # a sibling with a common prefix is not under it
        # level-triggered: nothing differs, nothing is written
        tree.set_calls.clear()
        assert zk.grant("/pulsar", "relation-1", "pw1", "cdrwa", exclusive=True) == 0
        assert tree.set_calls == []


def test_shared_grant_adds_entries_on_the_chroot_only(tree):
    with zookeeper_ensemble.ZooKeeperEnsemble(["a"], "pw") as zk:
        assert zk.grant("/pulsar", "relation-1", "pw1", "cdrwa") == 1
    ids = {(a.id.scheme, a.id.id.split(":")[0]) for a in tree.nodes["/pulsar"]}
    assert {("sasl", "relation-1"), ("sasl", "relation-2"), ("world", "anyone")} <= ids
    assert tree.set_calls == ["/pulsar"]


def test_recursive_revoke_leaves_no_entry_of_the_user_and_never_an_empty_acl(tree):
    with zookeeper_ensemble.ZooKeeperEnsemble(["a"], "pw") as zk:
        zk.revoke("/pulsar", "relation-2", recursive=True)
    for path, acls in tree.nodes.items():
        assert acls, path
        assert not any(a.id.id.split(":")[0] == "relation-2" for a in acls), path
    assert tree.nodes["/pulsar/ledgers/L1"][0].id.id.startswith("super:")


def test_a_znode_vanishing_during_the_walk_is_skipped(tree):
    tree.vanish = {"/pulsar/admin"}
    with zookeeper_ensemble.ZooKeeperEnsemble(["a"], "pw") as zk:
        assert zk.grant("/pulsar", "relation-1", "pw1", "cdrwa", exclusive=True) == 3


# A credential rotation: relation-2 becomes relation-2-r1.


def users_of(acls: list[ACL]) -> set[tuple[str, str, int]]:
    return {(a.id.scheme, a.id.id.split(":")[0], a.perms) for a in acls}


def test_mirror_gives_the_new_user_the_old_ones_permissions_where_it_has_any(tree):
    read_only = zookeeper_ensemble.acl_entries("relation-2", "pw2", "r")
    tree.nodes["/pulsar/admin"] = WORLD + read_only
    with zookeeper_ensemble.ZooKeeperEnsemble(["a"], "pw") as zk:
        assert zk.mirror("/pulsar", "relation-2", "relation-2-r1", "new-pw") == 3
        # level-triggered: a second pass writes nothing
        tree.set_calls.clear()
        assert zk.mirror("/pulsar", "relation-2", "relation-2-r1", "new-pw") == 0
        assert tree.set_calls == []
    for path in ("/pulsar", "/pulsar/ledgers/L1"):
        acls = users_of(tree.nodes[path])
        assert ("sasl", "relation-2-r1", Permissions.ALL) in acls, path
        assert ("digest", "relation-2-r1", Permissions.ALL) in acls, path
        assert ("sasl", "relation-2", Permissions.ALL) in acls, path  # the old user stays
    assert ("sasl", "relation-2-r1", Permissions.READ) in users_of(tree.nodes["/pulsar/admin"])
    # the new user's digest entry is built from the new password
    new_digest = zookeeper_ensemble.digest("relation-2-r1", "new-pw")
    assert any(a.id.id == new_digest for a in tree.nodes["/pulsar/ledgers/L1"])
    # znodes the old user had nothing on are left alone
    assert tree.nodes["/pulsar/ledgers"] == WORLD
    assert tree.nodes["/pulsarx"] == WORLD


def test_mirror_of_a_missing_chroot_changes_nothing(tree):
    with zookeeper_ensemble.ZooKeeperEnsemble(["a"], "pw") as zk:
        assert zk.mirror("/absent", "relation-2", "relation-2-r1", "new-pw") == 0
    assert tree.set_calls == []


def test_grant_with_also_keeps_both_users_of_a_rotation(tree):
    with zookeeper_ensemble.ZooKeeperEnsemble(["a"], "pw") as zk:
        zk.grant(
            "/pulsar",
            "relation-2-r1",
            "new-pw",
            "cdrwa",
            exclusive=True,
            also=[("relation-2", "pw2")],
        )
    for path in ("/pulsar", "/pulsar/ledgers", "/pulsar/ledgers/L1", "/pulsar/admin"):
        names = {(a.id.scheme, a.id.id.split(":")[0]) for a in tree.nodes[path]}
        assert names == {
            ("sasl", "relation-2"),
            ("digest", "relation-2"),
            ("sasl", "relation-2-r1"),
            ("digest", "relation-2-r1"),
        }, path
