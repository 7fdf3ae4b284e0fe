"""The example systemd units in deploy/systemd: valid for systemd, and every `agent-loader`
command line in them parses with the CLI's own options."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loader.cli import main
from tests.conftest import REPO

UNITS = REPO / "deploy" / "systemd"
INSTALL_ROOT = "/srv/agent-analytics"


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(path.read_text().replace("\\\n", " "))
    return parser


def test_the_units_are_the_expected_set() -> None:
    assert sorted(path.name for path in UNITS.iterdir()) == [
        "agent-analytics-dbt-daily.timer",
        "agent-analytics-dbt-hourly.timer",
        "agent-analytics-dbt-realtime.timer",
        "agent-analytics-dbt@.service",
        "agent-loader-alerts.service",
        "agent-loader-follow.service",
        "agent-loader-serve.service",
    ]


@pytest.mark.parametrize(
    "name",
    ["agent-loader-serve.service", "agent-loader-follow.service", "agent-loader-alerts.service"],
)
def test_agent_loader_command_lines_parse(name: str, tmp_path: Path) -> None:
    unit = _unit(UNITS / name)
    (tmp_path / "landing").mkdir()  # the state directory, which must exist for `load`
    (tmp_path / "alert-routes.yml").write_text("{}\n")  # the alerts unit's routing file
    command_line = (
        unit["Service"]["ExecStart"]
        .replace("/var/lib/agent-analytics", str(tmp_path))
        .replace("/etc/agent-analytics", str(tmp_path))
    )
    argv = shlex.split(command_line)
    assert argv[0] == f"{INSTALL_ROOT}/.venv/bin/agent-loader"
    assert unit["Service"]["KillSignal"] == "SIGTERM"
    # click's parser: an unknown or misspelt option, or a missing value, raises here.
    context = main.make_context("agent-loader", argv[1:2])
    command = main.get_command(context, argv[1])
    assert command is not None
    command.make_context(argv[1], argv[2:], resilient_parsing=False)


def test_each_timer_starts_its_cadence() -> None:
    for cadence in ("realtime", "hourly", "daily"):
        timer = _unit(UNITS / f"agent-analytics-dbt-{cadence}.timer")
        assert timer["Timer"]["Unit"] == f"agent-analytics-dbt@{cadence}.service"
    service = _unit(UNITS / "agent-analytics-dbt@.service")
    assert "dbt build --selector %i" in service["Service"]["ExecStart"]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    """Installed paths are pointed at this checkout, so systemd can check the executables."""
    bin_dir = str(Path(sys.executable).parent)
    for path in UNITS.iterdir():
        text = path.read_text().replace(f"{INSTALL_ROOT}/.venv/bin", bin_dir)
        text = text.replace(INSTALL_ROOT, str(REPO))
        names = [path.name]
        if path.name == "agent-analytics-dbt@.service":
            names = [f"agent-analytics-dbt@{c}.service" for c in ("realtime", "hourly", "daily")]
        for name in names:
            (tmp_path / name).write_text(text)
    units = sorted(str(path) for path in tmp_path.iterdir())
    result = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # unknown keys and bad values only warn
