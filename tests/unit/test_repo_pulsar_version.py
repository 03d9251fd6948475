"""The Pulsar version is pinned in one place: the PULSAR_VERSION file.

charmcraft.yaml upstream-source, bundle.yaml and the generated reference repeat it (they cannot
read a file) and must agree; tests/cluster/rig_setup.py reads the file; nothing else may carry a
hard-coded 4.0.<patch> string.
"""

from __future__ import annotations

import pathlib
import re
import subprocess

import pytest

from tools.repo import ROOT, charm_names, load_yaml, pulsar_image, pulsar_version

RIG_SETUP = pathlib.Path("tests/cluster/rig_setup.py")
# A 4.0.<patch> version string that is not part of a longer version, e.g. not 14.0.1 or 4.0.1.2.
VERSION_PATTERN = re.compile(r"(?<![\w.])4\.0\.\d+(?![\w.]*\d)")
# Dependency pins of other packages that happen to be at 4.0.x (e.g. 'foo>=4.0.1').
PIN_PREFIX = re.compile(r"(==|>=|<=|~=|!=|<|>)\s*$")
TEXT_SUFFIXES = {".py", ".yaml", ".yml", ".md", ".txt", ".toml", ".ini", ".cfg", ".json", ".sh"}


def allowed_places(root: pathlib.Path) -> set[pathlib.Path]:
    """Files that may (must) spell the version out, relative to ``root``."""
    places = {pathlib.Path("PULSAR_VERSION"), pathlib.Path("bundle.yaml")}
    # the older release the slow refresh scenario starts from (tests/cluster/test_upgrade.py)
    places.add(pathlib.Path("PULSAR_UPGRADE_FROM_VERSION"))
    places |= {p.relative_to(root) for p in root.glob("charms/*/charmcraft.yaml")}
    places |= {p.relative_to(root) for p in root.glob("docs/reference/*.md")}  # generated
    return places


def repository_files(root: pathlib.Path) -> list[pathlib.Path]:
    """Tracked and untracked-but-not-ignored files (relative), or a plain walk without git."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout
        names = sorted({n for n in out.decode().split("\0") if n})
        return [pathlib.Path(n) for n in names if (root / n).is_file()]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".tox", ".venv", "build", "__pycache__", ".hypothesis"}
        return sorted(
            p.relative_to(root)
            for p in root.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(root).parts)
        )


def hard_coded_versions(root: pathlib.Path) -> list[str]:
    """``path:line: text`` of every 4.0.x string outside the allowed places."""
    allowed = allowed_places(root)
    found = []
    for rel in repository_files(root):
        if rel in allowed or (rel.suffix not in TEXT_SUFFIXES and rel.name != "Dockerfile"):
            continue
        try:
            text = (root / rel).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            for match in VERSION_PATTERN.finditer(line):
                if PIN_PREFIX.search(line[: match.start()]):
                    continue
                found.append(f"{rel.as_posix()}:{number}: {line.strip()}")
    return found


def version_disagreements(root: pathlib.Path) -> list[str]:
    """Places that must spell the version out but spell another one (or none)."""
    image = pulsar_image(root)
    problems = []
    for path in sorted(root.glob("charms/*/charmcraft.yaml")):
        resources = (load_yaml(path) or {}).get("resources") or {}
        for name, spec in sorted(resources.items()):
            if (spec or {}).get("type") == "oci-image" and spec.get("upstream-source") != image:
                problems.append(
                    f"{path.relative_to(root)}: {name} upstream-source "
                    f"{spec.get('upstream-source')!r} != {image!r}"
                )
    bundle = load_yaml(root / "bundle.yaml") or {}
    for app, spec in sorted((bundle.get("applications") or {}).items()):
        for name, value in sorted((spec.get("resources") or {}).items()):
            if str(value).startswith("apachepulsar/") and value != image:
                problems.append(f"bundle.yaml: {app} resource {name} {value!r} != {image!r}")
    return problems


def test_version_file_is_one_pulsar_4_0_release():
    version = pulsar_version()
    assert re.fullmatch(r"4\.0\.\d+", version), f"PULSAR_VERSION {version!r}: not a 4.0.x LTS"
    assert (ROOT / "PULSAR_VERSION").read_text() == version + "\n", "one line, no spaces"


@pytest.mark.parametrize("charm", charm_names())
def test_charm_image_is_the_pinned_version(charm: str):
    path = ROOT / "charms" / charm / "charmcraft.yaml"
    assert path.is_file(), f"{path}: missing"
    sources = [
        spec.get("upstream-source")
        for spec in ((load_yaml(path) or {}).get("resources") or {}).values()
        if (spec or {}).get("type") == "oci-image"
    ]
    assert sources == [pulsar_image()], f"{path}: oci-image upstream-source {sources}"


def test_bundle_and_charms_agree_with_version_file():
    problems = version_disagreements(ROOT)
    assert not problems, "\n".join(problems)


def test_rig_setup_reads_the_version_file():
    path = ROOT / RIG_SETUP
    assert path.is_file(), f"{RIG_SETUP} is missing (it must read PULSAR_VERSION)"
    source = path.read_text()
    assert "PULSAR_VERSION" in source, f"{RIG_SETUP} does not read the PULSAR_VERSION file"
    assert not VERSION_PATTERN.search(source), f"{RIG_SETUP} hard-codes a 4.0.x version"


def test_no_hard_coded_version_elsewhere():
    found = hard_coded_versions(ROOT)
    assert not found, (
        "the Pulsar version is hard-coded outside PULSAR_VERSION, charmcraft.yaml, bundle.yaml "
        "and docs/reference (read the PULSAR_VERSION file instead):\n" + "\n".join(found)
    )


# The checks themselves, on a sample repository.


def test_sample_agreement_and_drift(sample_repo):
    assert version_disagreements(sample_repo.root) == []
    newer = "4" + ".0.99"
    (sample_repo.root / "PULSAR_VERSION").write_text(newer + "\n")
    problems = version_disagreements(sample_repo.root)
    assert len(problems) == 6  # three charms, three bundle applications
    assert all(f"apachepulsar/pulsar:{newer}" in p for p in problems)


def test_sample_hard_coded_versions_found(sample_repo):
    root = sample_repo.root
    (root / "tests").mkdir()
    (root / "tests" / "rig.py").write_text(
        'VERSION = "4' + '.0.7"\nURL = f"pulsar-4' + '.0.12-bin.tar.gz"\n'
        'OK = "14.0.1 4.0.1.2 v4.10.1"\n'
    )
    (root / "requirements.txt").write_text("somelib>=4" + ".0.1\nother==4" + ".0.3\n")
    (root / "image.bin").write_bytes(b"\x00\xff 4" + b".0.1")
    found = hard_coded_versions(root)
    assert found == [
        'tests/rig.py:1: VERSION = "4' + '.0.7"',
        'tests/rig.py:2: URL = f"pulsar-4' + '.0.12-bin.tar.gz"',
    ]
