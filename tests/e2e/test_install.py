"""Installing and connecting as a stranger would: a non-editable install, no configuration.

The package must not need to sit beside the dbt project (dbt finds the project in the
current folder or through --project-dir), and with nothing configured a command other than
`demo` or `embedded start` must refuse with a one-line instruction, not start a server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO


def bare_env(tmp_path: Path) -> dict[str, str]:
    """What cron gives a job: no PG* variables, no DSN, a home folder of its own."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    env["AGENT_ANALYTICS_HOME"] = str(tmp_path / "home")
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    env["PYTHONPATH"] = str(REPO)  # this checkout's package, whatever folder the job runs in
    return env


@pytest.mark.parametrize(
    "command", [["load", "."], ["init"], ["history"], ["purge", "--older-than", "9d"]]
)
def test_without_a_configured_connection_commands_refuse_and_start_nothing(tmp_path, command):
    result = subprocess.run(
        [sys.executable, "-m", "loader", *command],
        env=bare_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: no PostgreSQL configured")
    assert "PGHOST" in lines[0] and "agent-loader embedded start" in lines[0]
    assert not (tmp_path / "home" / "pgdata").exists()


def test_the_demo_outside_a_checkout_refuses_before_starting_a_server(tmp_path):
    env = bare_env(tmp_path)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "loader", "demo"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:  # a server started against the rule is still stopped
        subprocess.run([sys.executable, "-m", "loader", "embedded", "stop"], env=env, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"Error: no dbt_project.yml in {tmp_path.resolve()}: run from the agent-analytics"
        " checkout, or pass --project-dir (or set $DBT_PROJECT_DIR)"
    ]
    assert not (tmp_path / "home" / "pgdata").exists()


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with `pip install .` (not editable), as a user runs it.

    The build backend is fetched by pip as for any install; the dependencies come from this
    venv (a .pth file), so the test does not download dbt again.
    """
    venv = tmp_path_factory.mktemp("install") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    return venv


def test_a_non_editable_install_is_the_package_not_the_checkout(installed, tmp_path):
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import loader; print(loader.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert "site-packages" in where and not where.startswith(str(REPO))


def test_a_non_editable_install_outside_the_project_says_where_to_run(
    installed, tmp_path, module_db
):
    result = subprocess.run(
        [str(installed / "bin" / "agent-loader"), "demo", "--events", "2000"],
        env=dict(module_db.env, AGENT_ANALYTICS_HOME=str(tmp_path / "home")),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"Error: no dbt_project.yml in {tmp_path.resolve()}: run from the agent-analytics"
        " checkout, or pass --project-dir (or set $DBT_PROJECT_DIR)"
    ]


@pytest.mark.dbt
def test_a_non_editable_install_runs_the_demo_from_the_checkout(installed, tmp_path, module_db):
    result = subprocess.run(
        [str(installed / "bin" / "agent-loader"), "demo", "--events", "3000", "--json"],
        env=dict(module_db.env, AGENT_ANALYTICS_HOME=str(tmp_path / "home")),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    report = json.loads(result.stdout)
    assert report["ledger"]["read"] == report["ledger"]["loaded"] + report["ledger"]["duplicates"]
    assert report["ledger"]["quarantined"] == 0
    assert {row["publisher_id"] for row in report["dashboard"]} >= {"pub-01", "pub-02"}
    assert module_db.scalar("select count(*) from marts.publisher_dashboard") == len(
        report["dashboard"]
    )
