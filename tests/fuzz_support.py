"""What the charms' fuzz suites share: injected values, a recorder of what reaches the container.

Every injected value carries the marker ``INJ`` together with something that must never be
rendered (a line break, ``${``, a quote, a backslash, a blank, a NUL); valid generated values
never contain the marker. So "nothing injected reached a file, a layer or an exec argument" is
"``INJ`` appears in nothing the charm pushed, layered or executed".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import ops
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

MARKER = "INJ"

FUZZ_SETTINGS = settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,  # the same cases on every run: CI is deterministic
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# Each one breaks a properties file, a JAAS file, a ZooKeeper server line or an argv.
INJECTIONS = (
    f"{MARKER}\nextra=1",
    f"{MARKER}\n",  # a trailing line break: a `$`-anchored pattern would let it through
    f"a\r{MARKER}",
    f"${{{MARKER}}}",
    f'x"{MARKER}',
    f"x\\{MARKER}",
    f"x {MARKER}",
    f"x\x00{MARKER}",
    f"{MARKER}';x",
)


def injected() -> st.SearchStrategy[str]:
    """A value no charm may render: a fixed injection or text around a line break."""
    return st.one_of(
        st.sampled_from(INJECTIONS),
        st.text(max_size=8).map(lambda t: f"{t}\n{MARKER}"),
    )


def mostly(
    usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any], one_in: int = 8
) -> st.SearchStrategy[Any]:
    """``usual`` most of the time, ``other`` about once in ``one_in`` draws.

    Deep states (files rendered, services started) need every input valid at once, so each
    input is usually valid and the suite still sees every kind of bad value many times.
    """
    # sampled_from draws uniformly (st.integers favours its bounds, which would skew this)
    pick_other = [*([False] * (one_in - 1)), True]  # the simplest draw is the usual one
    return st.sampled_from(pick_other).flatmap(lambda bad: other if bad else usual)


def maybe_bad(valid: st.SearchStrategy[Any], one_in: int = 8) -> st.SearchStrategy[Any]:
    """Mostly ``valid``, sometimes an injected value (about 1 in ``one_in``)."""
    return mostly(valid, injected(), one_in)


@dataclass
class Recorder:
    """Everything a charm pushed, layered or executed in its containers during one case."""

    pushed: list[tuple[str, str]] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    execs: list[list[str]] = field(default_factory=list)

    def clear(self) -> None:
        self.pushed.clear()
        self.layers.clear()
        self.execs.clear()

    def touched(self) -> bool:
        return bool(self.pushed or self.layers or self.execs)

    def leaks(self) -> list[str]:
        """Where the marker of an injected value reached the workload (empty when nowhere)."""
        found = [f"file {path}" for path, content in self.pushed if MARKER in content]
        found += ["layer" for layer in self.layers if MARKER in layer]
        found += [f"exec {argv[:2]}" for argv in self.execs if any(MARKER in a for a in argv)]
        return found


@contextmanager
def recording() -> Iterator[Recorder]:
    """Record ops.Container push/add_layer/exec (and still perform them) within the block."""
    recorder = Recorder()
    original_push = ops.Container.push
    original_add_layer = ops.Container.add_layer
    original_exec = ops.Container.exec

    def push(self: ops.Container, path: Any, source: Any, *args: Any, **kwargs: Any) -> Any:
        text = source.decode("latin-1") if isinstance(source, bytes) else str(source)
        recorder.pushed.append((str(path), text))
        return original_push(self, path, source, *args, **kwargs)

    def add_layer(self: ops.Container, label: str, layer: Any, *args: Any, **kwargs: Any) -> Any:
        as_dict = layer.to_dict() if hasattr(layer, "to_dict") else layer
        recorder.layers.append(json.dumps(as_dict, default=str))
        return original_add_layer(self, label, layer, *args, **kwargs)

    def exec_(self: ops.Container, command: list[str], *args: Any, **kwargs: Any) -> Any:
        env = kwargs.get("environment") or {}
        recorder.execs.append([*command, *(f"{k}={v}" for k, v in env.items())])
        return original_exec(self, command, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ops.Container, "push", push)
        patch.setattr(ops.Container, "add_layer", add_layer)
        patch.setattr(ops.Container, "exec", exec_)
        yield recorder


def refusal_problems(status: Any, options: set[str], sources: set[str]) -> list[str]:
    """Why ``status`` is a refusal that does not name what was refused (empty when fine).

    Blocked must start with a config option name; a refusal of data ("...; waiting for valid
    data") must start with ``<relation> relation: <field>`` or ``<label> secret: <field>``.
    """
    message = status.message
    if MARKER in message:
        return [f"status shows an injected value: {message!r}"]
    names_option = any(message.startswith((f"{o}:", f"{o}=")) for o in options)
    if status.name == "blocked" and not names_option:
        return [f"Blocked status names no option: {message!r}"]
    names_source = any(message.startswith((f"{s} relation: ", f"{s}: ")) for s in sources)
    if "waiting for valid data" in message and not names_source:
        return [f"refusal names no relation/field: {message!r}"]
    return []
