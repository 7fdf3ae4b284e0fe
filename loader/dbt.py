"""Running the project's dbt from Python, with the same connection as the loader."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg2.extensions

from loader import embedded

PROJECT_DIR = Path(__file__).resolve().parent.parent
"""The dbt project: this checkout's root, where dbt_project.yml sits beside `loader/`."""

_LIBPQ_NAMES = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
}


def environment(dsn: str) -> dict[str, str]:
    """The process environment with the PG* variables that `profiles.example.yml` reads.

    A DSN (key=value or URI) is spelled out into PGHOST, PGPORT, ...; an empty DSN means
    the PG* variables already in the environment.
    """
    env = dict(os.environ)
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    if dsn:
        for name in _LIBPQ_NAMES.values():
            env.pop(name, None)
        for key, value in psycopg2.extensions.parse_dsn(dsn).items():
            if key in _LIBPQ_NAMES and value:
                env[_LIBPQ_NAMES[key]] = value
    return env


def profiles_dir() -> Path:
    """A folder holding profiles.yml: the project's own, else a copy of the example."""
    if (PROJECT_DIR / "profiles.yml").exists():
        return PROJECT_DIR
    folder = embedded.home() / "dbt"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_DIR / "profiles.example.yml", folder / "profiles.yml")
    return folder


def run(args: list[str], dsn: str) -> subprocess.CompletedProcess[str]:
    """Run `dbt ARGS` on the project against `dsn`; output is captured, not printed."""
    if not (PROJECT_DIR / "dbt_project.yml").exists():
        raise FileNotFoundError(
            f"no dbt_project.yml in {PROJECT_DIR}: run from a checkout of agent-analytics"
        )
    executable = Path(sys.executable).with_name("dbt")
    command = [str(executable) if executable.exists() else "dbt", *args]
    command += ["--profiles-dir", str(profiles_dir())]
    return subprocess.run(
        command, cwd=PROJECT_DIR, env=environment(dsn), capture_output=True, text=True
    )
