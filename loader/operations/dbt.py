"""Running the project's dbt from Python, with the same connection as the loader.

dbt is driven in-process through its programmatic API (`dbtRunner`), and its result objects
are read, not its printed lines. The project is found the way dbt finds it: `--project-dir`,
else $DBT_PROJECT_DIR, else the current folder.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2.extensions

from loader.errors import ProjectNotFound

PROJECT_DIR_VARIABLE = "DBT_PROJECT_DIR"

_LIBPQ_NAMES = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
}


def project_dir(explicit: Path | str | None = None) -> Path:
    """The dbt project: `explicit`, else $DBT_PROJECT_DIR, else the current folder."""
    chosen = explicit or os.environ.get(PROJECT_DIR_VARIABLE) or Path.cwd()
    folder = Path(chosen).expanduser().resolve()
    if not (folder / "dbt_project.yml").is_file():
        raise ProjectNotFound(
            f"no dbt_project.yml in {folder}: run from the agent-analytics checkout, or pass"
            f" --project-dir (or set ${PROJECT_DIR_VARIABLE})"
        )
    return folder


def environment(dsn: str) -> dict[str, str]:
    """The process environment with the PG* variables that the shipped `profiles.yml` reads.

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


@contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    """os.environ replaced for the duration: dbt's `env_var()` reads the process environment."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass
class BuildResult:
    """What one dbt invocation did: success, counts by status, and the nodes that failed."""

    success: bool
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def summary(self) -> str:
        if self.error:
            return self.error
        return " ".join(f"{status.upper()}={n}" for status, n in sorted(self.counts.items()))


def run(args: list[str], dsn: str, project: Path | None = None) -> BuildResult:
    """Run `dbt ARGS` in-process on the project against `dsn`; dbt's own logs go to its log file."""
    from dbt.cli.main import dbtRunner  # late: importing dbt takes a second

    folder = project_dir(project)
    command = [*args, "--project-dir", str(folder), "--log-level", "none"]
    if not os.environ.get("DBT_PROFILES_DIR") and (folder / "profiles.yml").is_file():
        command += ["--profiles-dir", str(folder)]  # the shipped profile, as dbt run there would
    with _environ(environment(dsn)):
        outcome = dbtRunner().invoke(command)
    if isinstance(outcome.exception, KeyboardInterrupt):
        raise KeyboardInterrupt  # dbtRunner returns Ctrl-C as a failure: the caller must stop
    result = BuildResult(success=outcome.success)
    if outcome.exception is not None:
        result.error = " ".join(str(outcome.exception).split())
    for node in getattr(outcome.result, "results", None) or []:
        status = str(getattr(node.status, "value", node.status)).lower()
        result.counts[status] += 1
        if status in ("error", "fail"):
            message = (node.message or "").strip().splitlines()
            result.failures.append(f"{node.node.name}: {message[0] if message else status}")
    return result
