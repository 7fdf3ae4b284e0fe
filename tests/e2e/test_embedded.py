"""The embedded server, the loader and dbt's shipped profile reach one server, or nothing starts.

The server's port is $AGENT_ANALYTICS_PORT (default 15432), which the shipped `profiles.yml`
reads the same way; a taken port is refused with the fix, never swapped for another one that
dbt would not follow (it would reach whatever holds 15432, and `dbt debug` would say ok).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from loader.devtools import embedded
from tests.conftest import REPO


def run(env: dict[str, str], *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(command), env=env, cwd=REPO, capture_output=True, text=True, timeout=600
    )


def agent_loader(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run(env, sys.executable, "-m", "loader", *args)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((embedded.HOST, 0))
        return probe.getsockname()[1]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """No PG* variable and no port chosen, as on a newcomer's machine; a home of its own."""
    names = ("PG", "AGENT_ANALYTICS_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(names)}
    env["AGENT_ANALYTICS_HOME"] = str(tmp_path / "home")
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    yield env
    agent_loader(env, "embedded", "stop")


@pytest.fixture
def default_port_taken() -> Iterator[int]:
    """15432 held by a plain TCP listener (another project's server, to the embedded start)."""
    with socket.socket() as listener:
        try:
            listener.bind((embedded.HOST, embedded.DEFAULT_PORT))
            listener.listen()
        except OSError:
            pass  # something else holds it already: the same situation
        yield embedded.DEFAULT_PORT


@pytest.mark.parametrize("command", [["embedded", "start"], ["demo"]])
def test_a_taken_port_is_refused_with_the_fix_and_no_server_is_left(
    env, default_port_taken, tmp_path, command
):
    result = agent_loader(env, *command)
    assert result.returncode == 2, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"Error: port {default_port_taken} on 127.0.0.1 is in use"), last
    assert "export AGENT_ANALYTICS_PORT=N" in last
    assert not (tmp_path / "home" / "pgdata" / "postmaster.pid").exists()


def test_a_malformed_port_variable_is_a_usage_error(env):
    result = agent_loader(dict(env, AGENT_ANALYTICS_PORT="15432x"), "embedded", "start")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "Error: $AGENT_ANALYTICS_PORT is '15432x', not a TCP port (1-65535)"
    )


@pytest.mark.dbt
def test_the_loader_and_dbt_reach_the_server_on_the_port_both_read(env, default_port_taken):
    port = free_port()
    env["AGENT_ANALYTICS_PORT"] = str(port)
    started = agent_loader(env, "embedded", "start")
    assert started.returncode == 0, started.stderr
    uri = started.stdout.strip()
    assert uri == f"postgresql://postgres@127.0.0.1:{port}/postgres"

    # The loader (no --dsn, no PG*) creates the raw schema on it ...
    assert agent_loader(env, "init").returncode == 0
    conn = psycopg2.connect(uri)
    with conn.cursor() as cur:
        cur.execute("select count(*) from raw.schema_migrations")
        migrations = cur.fetchone()[0]
    conn.close()
    assert migrations > 0

    # ... and dbt, with the shipped profile and the same environment, reads that same schema.
    shown = run(
        env,
        str(Path(sys.executable).with_name("dbt")),
        "show",
        "--inline",
        "select count(*) as migrations from raw.schema_migrations",
        "--output",
        "json",
    )
    assert shown.returncode == 0, shown.stdout[-3000:]
    assert f'"migrations": {migrations}' in shown.stdout
