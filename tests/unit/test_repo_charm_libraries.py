"""Every copy of a charm library is byte-identical to its owner's file, and is a real library.

The owner of ``lib/charms/<owner>/vN/<lib>.py`` is the charm directory whose name with '-'
replaced by '_' is ``<owner>`` (``charms.pulsar_zookeeper_k8s`` lives in
``charms/pulsar-zookeeper-k8s``).
"""

from __future__ import annotations

import ast
import difflib
import pathlib
import re

import pytest

from tools.repo import CHARMS_DIR, ROOT

LIB_VERSION_DIR = re.compile(r"^v(\d+)$")

# The shared charm core (owned by pulsar-k8s): every charm carries every core library.
CORE_LIBRARIES = [
    f"pulsar_k8s/v0/{name}.py"
    for name in (
        "workload",
        "validation",
        "rendering",
        "databags",
        "statuses",
        "log_hygiene",
        "view_check",
        "observability",
        "tls",
        "refresh",
    )
]

# The interface libraries CONTRIBUTING.md says each consumer carries, and the core.
REQUIRED_COPIES = {
    "bookkeeper-k8s": [
        "pulsar_zookeeper_k8s/v0/zookeeper.py",
        "pulsar_zookeeper_k8s/v0/rolling_restart.py",
        *CORE_LIBRARIES,
    ],
    "pulsar-zookeeper-k8s": CORE_LIBRARIES,
    "pulsar-proxy-k8s": [
        "pulsar_k8s/v0/pulsar_proxy.py",
        "pulsar_k8s/v0/pulsar_client.py",
        "pulsar_zookeeper_k8s/v0/zookeeper.py",
        "pulsar_zookeeper_k8s/v0/rolling_restart.py",
        *CORE_LIBRARIES,
    ],
    "pulsar-k8s": [
        "pulsar_zookeeper_k8s/v0/zookeeper.py",
        "pulsar_zookeeper_k8s/v0/rolling_restart.py",
        "bookkeeper_k8s/v0/bookkeeper.py",
        *CORE_LIBRARIES,
    ],
}


def library_files(charms_dir: pathlib.Path) -> list[pathlib.Path]:
    """Every ``charms/*/lib/charms/<owner>/vN/*.py`` (package ``__init__`` files excluded)."""
    found = [
        p
        for p in charms_dir.glob("*/lib/charms/*/*/*.py")
        if LIB_VERSION_DIR.match(p.parent.name) and p.name != "__init__.py"
    ]
    return sorted(found)


def owner_file(lib: pathlib.Path, charms_dir: pathlib.Path) -> pathlib.Path | None:
    """The owner's copy of ``lib``, or None if no charm directory owns that namespace."""
    owner = lib.parent.parent.name
    for charm in sorted(charms_dir.iterdir()):
        if charm.is_dir() and charm.name.replace("-", "_") == owner:
            return charm / "lib" / "charms" / owner / lib.parent.name / lib.name
    return None


def lib_metadata(path: pathlib.Path) -> dict[str, object]:
    """The module-level LIBID/LIBAPI/LIBPATCH assignments of a library file."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    found: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id in ("LIBID", "LIBAPI", "LIBPATCH"):
                    try:
                        found[target.id] = ast.literal_eval(node.value)  # type: ignore[arg-type]
                    except ValueError:
                        found[target.id] = "<not a literal>"
    return found


def library_problems(lib: pathlib.Path, charms_dir: pathlib.Path) -> list[str]:
    """Why ``lib`` is not a proper library or not the owner's exact copy (empty if fine)."""
    rel = lib.relative_to(charms_dir.parent)
    problems: list[str] = []
    meta = lib_metadata(lib)
    api = int(LIB_VERSION_DIR.match(lib.parent.name).group(1))  # type: ignore[union-attr]
    libid = meta.get("LIBID")
    if not isinstance(libid, str) or not re.fullmatch(r"[0-9a-z]{16,}", libid):
        problems.append(f"{rel}: LIBID must be a lowercase id string, found {libid!r}")
    if meta.get("LIBAPI") != api or isinstance(meta.get("LIBAPI"), bool):
        problems.append(
            f"{rel}: LIBAPI must be {api} (it lives in v{api}/), found {meta.get('LIBAPI')!r}"
        )
    patch = meta.get("LIBPATCH")
    if not isinstance(patch, int) or isinstance(patch, bool) or patch < 0:
        problems.append(f"{rel}: LIBPATCH must be a non-negative int, found {patch!r}")
    owner = owner_file(lib, charms_dir)
    if owner is None:
        problems.append(
            f"{rel}: no charm owns 'charms.{lib.parent.parent.name}' "
            f"(expected a directory charms/{lib.parent.parent.name.replace('_', '-')})"
        )
    elif owner != lib:
        owner_rel = owner.relative_to(charms_dir.parent)
        if not owner.is_file():
            problems.append(f"{rel}: copy of a library its owner does not have ({owner_rel})")
        elif owner.read_bytes() != lib.read_bytes():
            diff = difflib.unified_diff(
                owner.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True),
                lib.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True),
                fromfile=f"{owner_rel} (owner)",
                tofile=f"{rel} (copy)",
            )
            problems.append(
                f"{rel} differs from its owner's copy {owner_rel}; copy the owner's file over "
                f"it (and bump LIBPATCH in the owner for a real change):\n" + "".join(diff)
            )
    return problems


def libid_clashes(libs: list[pathlib.Path], charms_dir: pathlib.Path) -> list[str]:
    """Different libraries (by owner/vN/name) that share a LIBID."""
    by_id: dict[object, set[str]] = {}
    for lib in libs:
        key = "/".join(lib.parts[-3:])
        by_id.setdefault(lib_metadata(lib).get("LIBID"), set()).add(key)
    return [f"LIBID {i!r} used by {sorted(keys)}" for i, keys in by_id.items() if len(keys) > 1]


REPO_LIBS = library_files(CHARMS_DIR)


def test_repository_has_libraries():
    assert REPO_LIBS, f"no charm library found under {CHARMS_DIR}/*/lib/charms/<owner>/vN/"


@pytest.mark.parametrize("lib", REPO_LIBS, ids=[p.relative_to(ROOT).as_posix() for p in REPO_LIBS])
def test_library_is_owner_copy_with_metadata(lib: pathlib.Path):
    problems = library_problems(lib, CHARMS_DIR)
    assert not problems, "\n".join(problems)


def test_library_ids_unique():
    clashes = libid_clashes(REPO_LIBS, CHARMS_DIR)
    assert not clashes, "\n".join(clashes)


@pytest.mark.parametrize("consumer", sorted(REQUIRED_COPIES))
def test_consumers_carry_interface_libraries(consumer: str):
    base = CHARMS_DIR / consumer / "lib" / "charms"
    missing = [rel for rel in REQUIRED_COPIES[consumer] if not (base / rel).is_file()]
    assert not missing, f"{consumer} lacks copies of {missing} (copy them from their owner)"


# The checks themselves, on a sample repository.


def test_sample_identical_copies_pass(sample_repo):
    charms_dir = sample_repo.root / "charms"
    libs = library_files(charms_dir)
    assert len(libs) == 5
    assert [p for lib in libs for p in library_problems(lib, charms_dir)] == []
    assert libid_clashes(libs, charms_dir) == []


def test_sample_modified_copy_fails_with_diff(sample_repo):
    copy = sample_repo.lib_path("pulsar-k8s", "pulsar_zookeeper_k8s", "zookeeper")
    copy.write_text(copy.read_text().replace('return "zookeeper"', 'return "changed"'))
    charms_dir = sample_repo.root / "charms"
    problems = library_problems(copy, charms_dir)
    assert len(problems) == 1
    message = problems[0]
    assert "charms/pulsar-k8s/lib/charms/pulsar_zookeeper_k8s/v0/zookeeper.py differs" in message
    assert '-    return "zookeeper"' in message
    assert '+    return "changed"' in message
    # the owner itself is not reported
    owner = sample_repo.lib_path("pulsar-zookeeper-k8s", "pulsar_zookeeper_k8s", "zookeeper")
    assert library_problems(owner, charms_dir) == []


def test_sample_whitespace_only_change_is_caught(sample_repo):
    copy = sample_repo.lib_path("bookkeeper-k8s", "pulsar_zookeeper_k8s", "zookeeper")
    copy.write_bytes(copy.read_bytes().replace(b"\n", b"\r\n"))
    assert library_problems(copy, sample_repo.root / "charms")


def test_sample_missing_metadata_and_wrong_api(sample_repo):
    owner = sample_repo.lib_path("pulsar-zookeeper-k8s", "pulsar_zookeeper_k8s", "zookeeper")
    owner.write_text(
        owner.read_text().replace("LIBAPI = 0", "LIBAPI = 1").replace("LIBPATCH = 1\n", "")
    )
    problems = library_problems(owner, sample_repo.root / "charms")
    assert any("LIBAPI must be 0" in p for p in problems)
    assert any("LIBPATCH must be a non-negative int, found None" in p for p in problems)


def test_sample_orphan_and_unowned_libraries(sample_repo):
    charms_dir = sample_repo.root / "charms"
    sample_repo.add_lib("pulsar-k8s", "pulsar_zookeeper_k8s", "extra", "c" * 32)
    sample_repo.add_lib("pulsar-k8s", "nobody_k8s", "thing", "d" * 32)
    orphan = sample_repo.lib_path("pulsar-k8s", "pulsar_zookeeper_k8s", "extra")
    unowned = sample_repo.lib_path("pulsar-k8s", "nobody_k8s", "thing")
    assert "its owner does not have" in " ".join(library_problems(orphan, charms_dir))
    assert "no charm owns 'charms.nobody_k8s'" in " ".join(library_problems(unowned, charms_dir))


def test_sample_libid_clash(sample_repo):
    sample_repo.add_lib("bookkeeper-k8s", "bookkeeper_k8s", "other", "b" * 32)
    charms_dir = sample_repo.root / "charms"
    clashes = libid_clashes(library_files(charms_dir), charms_dir)
    assert len(clashes) == 1 and "bookkeeper_k8s/v0/other.py" in clashes[0]
