"""Shared fixtures of the bookkeeper-k8s unit tests: no real HTTP, no real sleeping."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bookkeeper_charm import BookKeeperCharm
from bookkeeper_render import JOURNAL_DIR, LEDGERS_DIR
from bookkeeper_workload import BookieWorkload
from ops import testing

CHARM_ROOT = Path(__file__).resolve().parents[2]


# What GET /api/v1/bookie/state answers (BookKeeper 4.17 pretty-prints it).
BOOKIE_STATES = {
    "writable": '{\n  "running" : true,\n  "readOnly" : false,\n  "shuttingDown" : false\n}',
    "read-only": '{\n  "running" : true,\n  "readOnly" : true,\n  "shuttingDown" : false\n}',
    "starting": '{\n  "running" : false,\n  "readOnly" : false,\n  "shuttingDown" : false\n}',
}


@dataclass
class FakeBookieHttp:
    """Stands in for the bookie's HTTP API; ``writable`` = None makes every request fail.

    ``own``: what this unit's bookie says of itself (a key of BOOKIE_STATES).
    """

    writable: list[str] | None = field(default_factory=list)
    ready: bool = True
    own: str = "writable"
    requests: list[str] = field(default_factory=list)
    # PUT requests (path, body); ``put_ok`` = False: the bookie does not answer them.
    puts: list[tuple[str, str]] = field(default_factory=list)
    put_ok: bool = True

    def put(self, path: str, body: str) -> str | None:
        self.puts.append((path, body))
        return "" if self.put_ok and self.writable is not None else None

    def get(self, path: str) -> str | None:
        self.requests.append(path)
        if self.writable is None:
            return None
        if path == "/api/v1/bookie/state":
            return BOOKIE_STATES[self.own]
        if path.startswith("/api/v1/bookie/list_bookies"):
            return json.dumps({bookie: bookie.rsplit(":", 1)[0] for bookie in self.writable})
        if path == "/api/v1/bookie/is_ready":
            return "OK" if self.ready else None
        return None


@pytest.fixture(autouse=True)
def fake_http(monkeypatch: pytest.MonkeyPatch) -> FakeBookieHttp:
    fake = FakeBookieHttp()
    monkeypatch.setattr(BookieWorkload, "_http_get", lambda _self, path, **_: fake.get(path))
    monkeypatch.setattr(
        BookieWorkload, "_http_put", lambda _self, path, body: fake.put(path, body)
    )
    return fake


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """No hook may sleep: a hook that waits for the JVM fails the test."""

    def forbidden(seconds: float) -> None:
        raise AssertionError(f"a hook slept {seconds}s")

    monkeypatch.setattr("time.sleep", forbidden)


@pytest.fixture
def ctx(no_sleep: None) -> testing.Context:
    return testing.Context(BookKeeperCharm, charm_root=CHARM_ROOT)


@pytest.fixture
def storage(tmp_path: Path) -> dict[str, testing.Mount]:
    """The two storage mounts (directories under tmp_path)."""
    mounts = {}
    for name, location in (("journal", JOURNAL_DIR), ("ledgers", LEDGERS_DIR)):
        source = tmp_path / name
        source.mkdir()
        mounts[name] = testing.Mount(location=location, source=source)
    return mounts


@pytest.fixture(autouse=True)
def not_owned(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Storage paths the fake reports as not yet owned by the workload user (default: none).

    ops.testing mounts storage as symlinks, so list_files(itself=True) reports the symlink's
    owner, not the directory's: ownership is faked at the workload boundary instead.
    """
    paths: set[str] = set()
    monkeypatch.setattr(BookieWorkload, "owner_uid", lambda _self, p: 0 if p in paths else 10000)
    return paths
