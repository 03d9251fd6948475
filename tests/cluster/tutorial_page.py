"""The executable steps of a tutorial page, as marked in its markdown.

A step is a fenced code block preceded by an HTML comment (invisible once rendered)::

    <!-- tutorial: start -->     the command that brings the cluster up (one line)
    <!-- tutorial: printed -->   an excerpt of what that command prints; ``<...>`` stands for
                                 text that differs between runs (tokens, paths, process ids)
    <!-- tutorial: file NAME --> a file the reader saves as NAME in the current directory
    <!-- tutorial: run -->       shell commands the reader runs, as printed
    <!-- tutorial: output -->    what the previous ``run`` block prints on stdout

The parser is pure so that a unit test can check the page's shape without a cluster; the rig
test (``tests/cluster/test_tutorial_local_cluster.py``) executes the steps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

KINDS = ("start", "printed", "file", "run", "output")
_STEP = re.compile(
    r"^<!-- tutorial: (?P<kind>\w+)(?: (?P<arg>\S+))? -->\n"
    r"```(?P<lang>[\w-]*)\n(?P<code>.*?)^```\s*$",
    re.MULTILINE | re.DOTALL,
)
_MARKER = re.compile(r"<!-- tutorial:")
_PLACEHOLDER = re.compile(r"<[^<>\s][^<>]*>")


@dataclass(frozen=True)
class Step:
    kind: str
    code: str
    arg: str | None = None
    lang: str = ""


def steps(page: Path) -> list[Step]:
    """The marked blocks of ``page`` in order; a marker not followed by a fence is an error."""
    text = page.read_text()
    found = [Step(m["kind"], m["code"], m["arg"], m["lang"]) for m in _STEP.finditer(text)]
    markers = len(_MARKER.findall(text))
    if markers != len(found):
        raise ValueError(f"{page}: {markers} tutorial markers but {len(found)} marked blocks")
    unknown = {s.kind for s in found} - set(KINDS)
    if unknown:
        raise ValueError(f"{page}: unknown step kinds {sorted(unknown)}")
    return found


def start_args(step: Step, tox_env: str) -> list[str]:
    """The arguments after ``--`` of the page's ``tox -e <tox_env> [-- args]`` command."""
    words = step.code.split()
    if words[:3] != ["tox", "-e", tox_env] or (len(words) > 3 and words[3] != "--"):
        raise ValueError(f"the start step is not `tox -e {tox_env} [-- ...]`: {step.code!r}")
    return words[4:]


def printed_mismatches(example: str, printed: str) -> list[str]:
    """Lines of ``example`` that do not appear, in order, among the lines of ``printed``.

    ``<...>`` in the example matches any text without blanks."""
    lines = iter(printed.splitlines())
    missing = []
    for wanted in example.splitlines():
        pattern = re.compile(
            "".join(
                r"\S+" if _PLACEHOLDER.fullmatch(part) else re.escape(part)
                for part in re.split(f"({_PLACEHOLDER.pattern})", wanted.rstrip())
            )
            + r"\s*"
        )
        if not any(pattern.fullmatch(line) for line in lines):
            missing.append(wanted)
            lines = iter(printed.splitlines())  # keep looking for the later lines
    return missing
