"""Render docs/reference/<charm>.md from every charm's charmcraft.yaml.

docs/reference/alerts.md comes from the charms' alert rules (tools/alerts_reference.py).

Usage::

    python -m tools.docs_reference          # (re)write docs/reference/*.md
    python -m tools.docs_reference --check  # exit 1 if any page is missing or stale

The output depends only on the charmcraft.yaml files (no dates, sorted names), so ``--check``
in CI catches a charm whose options, actions or relations changed without regenerating.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from tools import alerts_reference
from tools.repo import ROOT, CharmSpec, charm_dirs, load_charm

REFERENCE_DIR = pathlib.Path("docs") / "reference"
INDEX = "index.md"
COMMAND = "python -m tools.docs_reference"
NONE = "-"


def _cell(value: Any) -> str:
    """Format one Markdown table cell: one line, pipes escaped."""
    if value is None or value == "":
        return NONE
    text = " ".join(str(value).split())
    return text.replace("|", "\\|")


def _code(value: Any) -> str:
    """Format a literal value (a default, a type) as inline code."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value if value.strip() == value and value else json.dumps(value)
    elif isinstance(value, int | float):
        text = str(value)
    else:
        text = json.dumps(value, sort_keys=True)
    text = text.replace("|", "\\|").replace("`", "'")
    return f"`{text}`"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _paragraph(text: Any) -> list[str]:
    """Keep a multi-line description as Markdown text (trailing spaces dropped)."""
    if not text:
        return []
    return [line.rstrip() for line in str(text).strip().splitlines()]


def _config_section(charm: CharmSpec) -> list[str]:
    lines = ["## Configuration", ""]
    options = charm.options
    if not options:
        return [*lines, "This charm has no configuration options.", ""]
    rows = [
        (
            f"`{name}`",
            _cell(spec.get("type")),
            _code(spec.get("default")),
            _cell(spec.get("description")),
        )
        for name, spec in sorted(options.items())
        for spec in [spec or {}]
    ]
    return [*lines, *_table(("Option", "Type", "Default", "Description"), rows), ""]


def _actions_section(charm: CharmSpec) -> list[str]:
    lines = ["## Actions", ""]
    actions = charm.actions
    if not actions:
        return [*lines, "This charm has no actions.", ""]
    for name, spec in sorted(actions.items()):
        spec = spec or {}
        lines += [f"### `{name}`", ""]
        lines += _paragraph(spec.get("description")) or ["(no description)"]
        lines.append("")
        params = spec.get("params") or {}
        required = set(spec.get("required") or [])
        if not params:
            lines += ["No parameters.", ""]
            continue
        rows = [
            (
                f"`{pname}`",
                _cell(pspec.get("type")),
                _code(pspec.get("default")),
                "yes" if pname in required else "no",
                _cell(pspec.get("description")),
            )
            for pname, pspec in sorted(params.items())
            for pspec in [pspec or {}]
        ]
        lines += _table(("Parameter", "Type", "Default", "Required", "Description"), rows)
        lines.append("")
    return lines


def _relations_section(charm: CharmSpec) -> list[str]:
    lines = ["## Relations", ""]
    endpoints = charm.endpoints
    if not endpoints:
        return [*lines, "This charm has no relation endpoints.", ""]
    order = {"provides": 0, "requires": 1, "peers": 2}
    rows = [
        (
            f"`{ep.name}`",
            ep.role,
            f"`{ep.interface}`",
            _cell(ep.limit),
            _cell(None if ep.optional is None else ("yes" if ep.optional else "no")),
            _cell(ep.description),
        )
        for ep in sorted(endpoints.values(), key=lambda e: (order[e.role], e.name))
    ]
    header = ("Endpoint", "Role", "Interface", "Limit", "Optional", "Description")
    return [*lines, *_table(header, rows), ""]


def _storage_section(charm: CharmSpec) -> list[str]:
    lines = ["## Storage", ""]
    storage = charm.storage
    if not storage:
        return [*lines, "This charm declares no storage.", ""]
    rows = [
        (
            f"`{name}`",
            _cell(spec.get("type")),
            _cell(spec.get("location")),
            _cell(spec.get("minimum-size")),
            _cell(spec.get("multiple", {}).get("range") if spec.get("multiple") else None),
            _cell(spec.get("description")),
        )
        for name, spec in sorted(storage.items())
        for spec in [spec or {}]
    ]
    header = ("Storage", "Type", "Location", "Minimum size", "Multiple", "Description")
    return [*lines, *_table(header, rows), ""]


def _workload_section(charm: CharmSpec) -> list[str]:
    lines = ["## Containers and resources", ""]
    containers = charm.containers
    resources = charm.resources
    if not containers and not resources:
        return [*lines, "This charm declares no containers or resources.", ""]
    if containers:
        rows = [
            (
                f"`{name}`",
                _cell(spec.get("resource")),
                _cell(
                    ", ".join(
                        f"{m.get('storage')} at {m.get('location')}"
                        for m in spec.get("mounts") or []
                    )
                ),
            )
            for name, spec in sorted(containers.items())
            for spec in [spec or {}]
        ]
        lines += [*_table(("Container", "Resource", "Mounts"), rows), ""]
    if resources:
        rows = [
            (
                f"`{name}`",
                _cell(spec.get("type")),
                _code(spec.get("upstream-source")),
                _cell(spec.get("description")),
            )
            for name, spec in sorted(resources.items())
            for spec in [spec or {}]
        ]
        lines += [*_table(("Resource", "Type", "Upstream source", "Description"), rows), ""]
    return lines


def render_charm(charm: CharmSpec, root: pathlib.Path = ROOT) -> str:
    """Return the Markdown reference page of one charm."""
    source = (charm.directory / "charmcraft.yaml").relative_to(root).as_posix()
    title = charm.raw.get("title")
    lines = [
        f"# {charm.name}",
        "",
        f"<!-- Generated from {source} by `{COMMAND}`: do not edit by hand. -->",
        "",
    ]
    if title:
        lines += [f"**{_cell(title)}**", ""]
    if charm.raw.get("summary"):
        lines += [_cell(charm.raw.get("summary")), ""]
    lines += _paragraph(charm.raw.get("description"))
    lines.append("")
    assumes = charm.raw.get("assumes")
    if assumes:
        lines += ["Requires: " + ", ".join(_code(a) for a in assumes) + ".", ""]
    lines += _config_section(charm)
    lines += _actions_section(charm)
    lines += _relations_section(charm)
    lines += _storage_section(charm)
    lines += _workload_section(charm)
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def render_index(charms: Sequence[CharmSpec]) -> str:
    """Return docs/reference/index.md: one line per charm."""
    lines = [
        "# Reference",
        "",
        f"<!-- Generated by `{COMMAND}`: do not edit by hand. -->",
        "",
        "Every configuration option, action, relation endpoint, storage and resource of each",
        "charm, generated from its `charmcraft.yaml`.",
        "",
    ]
    rows = [
        (
            f"[`{c.name}`]({c.name}.md)",
            _cell(c.raw.get("summary")),
            str(len(c.options)),
            str(len(c.actions)),
            str(len(c.endpoints)),
        )
        for c in sorted(charms, key=lambda c: c.name)
    ]
    lines += _table(("Charm", "Summary", "Options", "Actions", "Endpoints"), rows)
    return "\n".join(lines) + "\n"


def render_all(root: pathlib.Path = ROOT) -> dict[pathlib.Path, str]:
    """Return every reference page by path relative to ``root``.

    Charm directories without a charmcraft.yaml yet are left out.
    """
    charms = [
        load_charm(d) for d in charm_dirs(root / "charms") if (d / "charmcraft.yaml").is_file()
    ]
    pages = {REFERENCE_DIR / f"{c.name}.md": render_charm(c, root) for c in charms}
    pages[REFERENCE_DIR / INDEX] = render_index(charms)
    alerts = alerts_reference.render(root)
    if alerts is not None:
        pages[REFERENCE_DIR / alerts_reference.PAGE] = alerts
    return pages


def stale_pages(root: pathlib.Path = ROOT) -> list[str]:
    """Return the reference files that are missing, differ, or are no longer generated."""
    pages = render_all(root)
    problems = []
    for rel, content in sorted(pages.items()):
        path = root / rel
        if not path.is_file():
            problems.append(f"{rel.as_posix()}: missing")
        elif path.read_text(encoding="utf-8") != content:
            problems.append(f"{rel.as_posix()}: out of date")
    for path in sorted((root / REFERENCE_DIR).glob("*.md")):
        if path.relative_to(root) not in pages:
            problems.append(f"{path.relative_to(root).as_posix()}: not generated from any charm")
    return problems


def write_all(root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    """Write every page whose content changed and delete pages of charms that are gone."""
    pages = render_all(root)
    changed = []
    (root / REFERENCE_DIR).mkdir(parents=True, exist_ok=True)
    for rel, content in sorted(pages.items()):
        path = root / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
            changed.append(rel)
    for path in sorted((root / REFERENCE_DIR).glob("*.md")):
        if path.relative_to(root) not in pages:
            path.unlink()
            changed.append(path.relative_to(root))
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog=COMMAND, description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale pages")
    parser.add_argument("--root", type=pathlib.Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.check:
        problems = stale_pages(root)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(f"docs/reference is stale: run `{COMMAND}`", file=sys.stderr)
            return 1
        print("docs/reference is up to date")
        return 0
    for rel in write_all(root):
        print(f"wrote {rel.as_posix()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
