"""The local-cluster tutorial agrees with the command it documents (no cluster needed).

The rig test ``tests/cluster/test_tutorial_local_cluster.py`` runs the page's steps on a real
cluster; these checks catch the cheap drifts in the unit run: the start command, the options
table, the printed excerpt and the variables the steps use.
"""

from __future__ import annotations

import configparser
import re
import sys
from pathlib import Path

import pytest

from tests.cluster import local_cluster, rig_net
from tests.cluster.tutorial_page import Step, printed_mismatches, start_args, steps

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "tutorial" / "local-cluster.md"

FAKE_ACCESS = local_cluster.ClientAccess(
    service_url="pulsar://pulsar-k8s.rig.svc.cluster.local:6650",
    web_url="http://pulsar-k8s.rig.svc.cluster.local:8080",
    websocket_url="ws://pulsar-k8s.rig.svc.cluster.local:8080/ws/v2",
    namespace="tutorial/default",
    role="relation-7",
    token="eyJ.namespace.token",
    admin_token="eyJ.admin.token",
    pulsar_bin="/cache/apache-pulsar/bin",
)


@pytest.fixture(scope="module")
def page_steps() -> list[Step]:
    return steps(PAGE)


def test_the_page_starts_the_cluster_with_tox_local_cluster(page_steps: list[Step]) -> None:
    (start,) = [s for s in page_steps if s.kind == "start"]
    args = local_cluster.parser().parse_args(start_args(start, "local-cluster"))
    assert args.shell, "the page's client steps run in the --shell"
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    commands = tox["testenv:local-cluster"]["commands"]
    assert "python -m tests.cluster.local_cluster {posargs}" in commands


def test_the_options_table_lists_exactly_the_commands_options() -> None:
    documented = set(re.findall(r"^\| `(-[-\w]+)", PAGE.read_text(), re.MULTILINE))
    actual = {
        action.option_strings[0]  # as the table spells it: `--brokers`, `-v`
        for action in local_cluster.parser()._actions
        if action.option_strings and action.dest != "help"
    }
    assert documented == actual


def test_the_printed_excerpt_is_what_the_command_prints(tmp_path: Path) -> None:
    (printed,) = [s for s in steps(PAGE) if s.kind == "printed"]
    plan = rig_net.AddressPlan(tmp_path / "hosts")
    output = local_cluster.connection_help(FAKE_ACCESS, tmp_path / "client.env", plan, 1)
    assert printed_mismatches(printed.code, output) == []
    assert FAKE_ACCESS.token in output and FAKE_ACCESS.admin_token in output


def test_the_steps_use_only_the_variables_the_shell_exports(page_steps: list[Step]) -> None:
    exported = {*FAKE_ACCESS.env(), "PULSAR_CLIENT_ENV"}
    used = set()
    for step in page_steps:
        if step.kind in ("run", "file"):
            used |= set(re.findall(r"\$\{?(PULSAR_\w+)", step.code))
            used |= set(re.findall(r"environ\[[\"'](PULSAR_\w+)", step.code))
    assert used, "the steps read the connection from the exported variables"
    assert used <= exported, used - exported


def test_client_env_holds_every_value_for_root_only(tmp_path: Path) -> None:
    env_file = tmp_path / "client.env"
    FAKE_ACCESS.write_env(env_file)
    assert env_file.stat().st_mode & 0o777 == 0o600
    lines = env_file.read_text().splitlines()
    assert lines == [f"export {k}={v}" for k, v in FAKE_ACCESS.env().items()]


def test_the_shell_runs_this_interpreter_with_the_variables(tmp_path: Path) -> None:
    env = local_cluster.shell_env(FAKE_ACCESS, tmp_path / "client.env")
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert env["PULSAR_TOKEN"] == FAKE_ACCESS.token
    assert env["PULSAR_CLIENT_ENV"] == str(tmp_path / "client.env")


def test_a_marker_without_its_code_block_is_an_error(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- tutorial: run -->\nno fence here\n")
    with pytest.raises(ValueError, match="markers"):
        steps(page)
