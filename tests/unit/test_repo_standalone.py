"""The repository stands alone: nothing under tests/, charms/, tools/ or .ci/ reads outside it.

A fresh clone in an empty directory must pass its own tests, so no file may name the project's
shared reference folder (the interface schemas are copied into ``tests/interface-schemas``),
and no ``Path(__file__)`` expression may climb above the repository root. Symlinks must stay
inside too. The one documented home-directory path, the rig's download cache, is not a path
relative to the repository and is not concerned.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("tests", "charms", "tools", ".ci")
ROOT_FILES = ("tox.ini", "pyproject.toml", "bundle.yaml")
SKIPPED_DIRS = {".tox", "__pycache__", "build", ".pytest_cache", ".hypothesis", "venv"}

# Written so that this file does not match itself.
_SHARED = re.compile(r"\.\./shared\b|\bshared/interface-schema[s]|/work/share[d]\b")
_FROM_FILE = re.compile(
    r"Path\(__file__\)(?:\.resolve\(\)|\.absolute\(\))?"
    r"(?P<climb>(?:\.parent\b)+|\.parents\[(?P<index>\d+)\])"
    r"(?P<joins>(?:\s*/\s*[\"'][^\"']*[\"'])*)"
)
_JOINED = re.compile(r"[\"']([^\"']*)[\"']")


def outside_references(rel_path: Path, text: str) -> list[str]:
    """What in ``text`` (the file at ``rel_path`` from the root) points outside the root."""
    problems = [f"{rel_path}: names {m.group(0)!r}" for m in _SHARED.finditer(text)]
    depth = len(rel_path.parts) - 1  # directories between the root and the file
    for m in _FROM_FILE.finditer(text):
        if m["index"] is not None:
            level = depth - int(m["index"])
        else:
            level = depth - (m["climb"].count(".parent") - 1)
        lowest = level
        for joined in _JOINED.findall(m["joins"]):
            for part in Path(joined).parts:
                level += -1 if part == ".." else 0 if part == "." else 1
                lowest = min(lowest, level)
        if lowest < 0:
            problems.append(f"{rel_path}: {m.group(0)!r} climbs above the repository root")
    return problems


def scanned_files() -> list[Path]:
    found = [ROOT / name for name in ROOT_FILES]
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            rel = path.relative_to(ROOT)
            if SKIPPED_DIRS & set(rel.parts) or not (path.is_file() or path.is_symlink()):
                continue
            found.append(path)
    return found


# -- the check itself ----------------------------------------------------------------------------


# The examples are assembled so that this file does not match them itself.
FILE = "Path(__file" + "__)"


def test_checker_flags_the_shared_folder_and_climbing_paths() -> None:
    shared = "../" + "shared/interface-" + "schemas/zookeeper"
    flagged = {
        "tests/unit/a.py": f'SCHEMAS = Path("{shared}")',
        "tests/unit/b.py": f"ROOT = {FILE}.resolve().parents[3]",
        "charms/x/tests/unit/c.py": f"UP = {FILE}.parent.parent.parent.parent.parent.parent",
        "tools/d.py": f'OUT = {FILE}.parent / ".." / ".."',
        "tests/e.py": f"OUT = {FILE}.parents[2]",
        "tests/unit/f.py": f'S = {FILE}.resolve().parents[3] / "shared/x"',
    }
    for rel, text in flagged.items():
        assert outside_references(Path(rel), text), rel


def test_checker_accepts_paths_that_stay_inside() -> None:
    fine = {
        "tests/unit/a.py": f"ROOT = {FILE}.resolve().parents[2]",
        "charms/x/tests/unit/b.py": f'S = {FILE}.resolve().parents[4] / "tests/x"',
        "tools/c.py": f'ROOT = {FILE}.parent / ".."',
        "tests/unit/d.py": 'bad_input = {"namespace": "../x"}',
    }
    for rel, text in fine.items():
        assert outside_references(Path(rel), text) == [], rel


# -- the repository ------------------------------------------------------------------------------


def test_no_file_reads_outside_the_repository() -> None:
    problems = []
    for path in scanned_files():
        rel = path.relative_to(ROOT)
        if path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(ROOT):
                problems.append(f"{rel}: symlink to {target}, outside the repository")
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # binary files name no paths we could follow
        problems += outside_references(rel, text)
    assert problems == [], "\n".join(problems)


def test_copied_interface_schemas_say_where_they_come_from() -> None:
    schemas = ROOT / "tests" / "interface-schemas"
    readme = (schemas / "README.md").read_text()
    assert "charm-relation-interfaces" in readme
    for folder in sorted(p for p in schemas.glob("*/v*") if p.is_dir()):
        assert f"`{folder.parent.name}/{folder.name}`" in readme, folder
