"""The local-cluster tutorial, executed as printed.

Brings the cluster up with the page's own start command (its arguments parsed by
``local_cluster``'s parser, the cluster built by ``local_cluster.bring_up``: the same code as
``tox -e local-cluster``), checks the page's excerpt of the printed output, then runs the
page's marked steps in order in a fresh directory with the ``--shell`` environment: files are
saved, shell blocks run with bash, and each ``output`` block must be exactly what the previous
command printed. The page cannot drift from what works: change a step and this test runs the
new one.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.cluster import local_cluster
from tests.cluster.figures import record
from tests.cluster.rig_juju import Model
from tests.cluster.tutorial_page import printed_mismatches, start_args, steps

PAGE = local_cluster.REPO_ROOT / "docs" / "tutorial" / "local-cluster.md"
STEP_TIMEOUT_S = 120


def run_step(code: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, (
        f"step failed ({done.returncode}):\n{code}\n--- stdout\n{done.stdout}\n"
        f"--- stderr\n{done.stderr[-3000:]}"
    )
    return done.stdout


def test_tutorial_steps_run_as_printed(model: Model, tmp_path: Path) -> None:
    page_steps = steps(PAGE)
    (start,) = [s for s in page_steps if s.kind == "start"]
    args = local_cluster.parser().parse_args(start_args(start, "local-cluster"))

    started = time.monotonic()
    access = local_cluster.bring_up(model, brokers=args.brokers, timeout=args.timeout)
    record("tutorial.cluster_settle_s", time.monotonic() - started)
    env_file = tmp_path / local_cluster.CLIENT_ENV_FILE
    access.write_env(env_file)
    env = local_cluster.shell_env(access, env_file)
    printed = local_cluster.connection_help(access, env_file, model.env.plan, args.brokers)

    workdir = tmp_path / "reader"
    workdir.mkdir()
    last_stdout: str | None = None
    checked_outputs: list[str] = []
    steps_started = time.monotonic()
    for step in page_steps:
        if step.kind == "printed":
            missing = printed_mismatches(step.code, printed)
            assert not missing, f"the page shows lines the command does not print: {missing}"
        elif step.kind == "file":
            assert step.arg, "a file step names its file"
            (workdir / step.arg).write_text(step.code)
        elif step.kind == "run":
            last_stdout = run_step(step.code, workdir, env)
        elif step.kind == "output":
            assert last_stdout is not None, "an output block follows a run block"
            assert last_stdout.strip() == step.code.strip(), (
                f"the page says the command prints\n{step.code}\nbut it printed\n{last_stdout}"
            )
            checked_outputs.append(step.code.strip())
            last_stdout = None
    record("tutorial.steps_s", time.monotonic() - steps_started)
    # What the page must keep demonstrating: messages round-trip with the namespace token, the
    # admin API refuses no token and answers the admin token.
    for promised in ("hello 0\nhello 1\nhello 2", "401", '["pulsar"]'):
        assert promised in checked_outputs, f"the page no longer shows {promised!r}"
