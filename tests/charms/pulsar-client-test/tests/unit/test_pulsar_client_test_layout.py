"""The repository checks that scan only charms/*, applied to this test charm too.

``tests/unit/test_repo_charm_libraries.py`` and ``tests/unit/test_repo_charmcraft.py`` discover
charms under ``charms/*`` only; this file runs their checks on ``tests/charms/pulsar-client-test``
(library copy identical to pulsar-k8s's, charmcraft.yaml accepted by charmcraft itself).
"""

from __future__ import annotations

from pathlib import Path

import pulsar_client_test_io as client_io
import pytest

from tests.unit.test_repo_charm_libraries import library_files, library_problems
from tests.unit.test_repo_charmcraft import charmcraft_problems
from tools.repo import CHARMS_DIR, load_yaml

CHARM_ROOT = Path(__file__).resolve().parents[2]


def test_library_copy_is_identical_to_owner():
    libs = library_files(CHARM_ROOT.parent)
    mine = [lib for lib in libs if CHARM_ROOT in lib.parents]
    assert [lib.relative_to(CHARM_ROOT).as_posix() for lib in mine] == [
        "lib/charms/pulsar_k8s/v0/pulsar_client.py"
    ]
    problems = [p for lib in mine for p in library_problems(lib, CHARMS_DIR)]
    assert not problems, "\n".join(problems)


def test_charmcraft_yaml_valid_for_charmcraft():
    problems = charmcraft_problems(CHARM_ROOT)
    assert not problems, "\n".join(problems)


def test_charm_has_no_workload_container():
    raw = load_yaml(CHARM_ROOT / "charmcraft.yaml")
    assert not raw.get("containers") and not raw.get("resources")
    assert raw["requires"] == {
        "pulsar": {"interface": "pulsar_client", "limit": 1},
        "pulsar-second": {"interface": "pulsar_client", "limit": 1},
    }


def test_requirements_pinned():
    lines = (CHARM_ROOT / "requirements.txt").read_text().split()
    assert lines == ["ops==3.9.0", "pulsar-client==3.13.0"]


@pytest.mark.parametrize(
    ("topic", "url"),
    [
        ("test", "persistent://t/ns/test"),
        (" spaced ", "persistent://t/ns/spaced"),
        ("persistent://o/n/x", "persistent://o/n/x"),
        ("non-persistent://o/n/x", "non-persistent://o/n/x"),
    ],
)
def test_topic_url(topic: str, url: str):
    assert client_io.topic_url("t/ns", topic) == url


@pytest.mark.parametrize("topic", ["", "a/b", "  "])
def test_topic_url_refuses(topic: str):
    with pytest.raises(client_io.ClientIOError):
        client_io.topic_url("t/ns", topic)


def test_target_repr_hides_token():
    target = client_io.Target("pulsar://b:6650", "t/ns", "relation-1", "SECRET")
    assert "SECRET" not in repr(target)
