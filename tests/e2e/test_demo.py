"""`agent-loader demo` end to end: on the embedded server and on a configured one.

The demo plants four anomalies (loader.devtools.demo.DEMO_ANOMALIES); the report must list exactly
those four insights, and a rerun must load nothing twice.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest

from loader.dashboards import build as sites
from loader.devtools import embedded
from tests.conftest import REPO

PLANTED = [
    "  [critical] pub-02: High Error Rate.",
    "  [warning] pub-03: Slow p95 Response Time.",
    "  [warning] pub-04: Low User Satisfaction.",
    "  [warning] pub-05: Tool 'web_fetch' Failing Often.",
]


def agent_loader(env, *args):
    return subprocess.run(
        [sys.executable, "-m", "loader", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )


def insight_lines(report: str) -> list[str]:
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Insights (marts.insights)"))
    found = []
    for line in lines[start + 1 :]:
        if not line.startswith("  ["):
            break
        found.append(line.split(". ", 1)[0] + ".")
    return found


def check_report(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "dbt build: ok" in result.stdout
    assert insight_lines(result.stdout) == PLANTED
    assert " + 0 quarantined" in result.stdout
    assert "Top error types" in result.stdout and " 1. tool_timeout" in result.stdout
    # the planted LLM cost spike (loader.devtools.demo.DEMO_LLM) is among the cost insights
    cost = result.stdout.split("LLM cost insights (marts.tenant_llm_insights)", 1)[1]
    assert "  [warning] tenant-007: LLM Cost Spike." in cost
    assert "LLM cost and margin" in result.stdout and "  tenant-007 " in result.stdout


@pytest.fixture
def embedded_env(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["AGENT_ANALYTICS_HOME"] = str(tmp_path / "home")
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    # A free port of its own: 15432 may be taken (tests/e2e/test_embedded.py).
    with socket.socket() as probe:
        probe.bind((embedded.HOST, 0))
        env[embedded.PORT_VARIABLE] = str(probe.getsockname()[1])
    yield env
    agent_loader(env, "embedded", "stop")


def test_demo_on_the_embedded_server_reports_the_planted_anomalies_and_reruns_safely(embedded_env):
    first = agent_loader(embedded_env, "demo")
    check_report(first)
    assert "Using the embedded PostgreSQL" in first.stderr
    assert "agent-loader embedded stop" in first.stdout

    # The printed URL is TCP on 127.0.0.1, as a BI tool or a container needs, and reads the marts.
    url = re.search(r"psql '(postgresql://[^']+)'", first.stdout).group(1)
    assert url.startswith("postgresql://postgres@127.0.0.1:")
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute("select count(*) from marts.insights")
        assert cur.fetchone()[0] == len(PLANTED)
    conn.close()

    # dbt with the shipped profile and no PG* variable reaches the same database.
    assert url.startswith(
        f"postgresql://postgres@127.0.0.1:{embedded_env[embedded.PORT_VARIABLE]}/"
    )
    shown = subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt")),
            "show",
            "--inline",
            "select count(*) as n from marts.insights",
            "--output",
            "json",
            "--log-format",
            "json",
        ],
        env=embedded_env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shown.returncode == 0, shown.stdout[-3000:]
    assert f'\\"n\\": {len(PLANTED)}' in shown.stdout or f'"n": {len(PLANTED)}' in shown.stdout

    second = agent_loader(embedded_env, "demo")
    check_report(second)
    assert "generate: reusing the batch files" in second.stdout
    assert second.stdout.count(": skipped, 0 loaded") == first.stdout.count(": loaded, ")
    summary = next(line for line in first.stdout.splitlines() if line.startswith("Loaded "))
    assert summary in second.stdout  # the same totals: nothing loaded twice


def test_demo_on_a_configured_server(module_db, tmp_path):
    env = dict(module_db.env, AGENT_ANALYTICS_HOME=str(tmp_path / "home"))
    result = agent_loader(env, "demo", "--events", "30000")
    check_report(result)
    assert "Using the embedded PostgreSQL" not in result.stderr
    assert module_db.scalar("select count(*) from marts.insights") == len(PLANTED)
    # It ends with the dashboards: built when their npm package is installed, else how to.
    site = tmp_path / "home" / "dashboards" / "operator"
    if sites.CHART_LIBRARY.is_file():
        assert f"Dashboards: the operator site is built in {site}" in result.stdout
        assert (site / "index.html").is_file() and (site / "data" / "index.json").is_file()
    else:
        assert "Dashboards: install Node.js and npm, run `npm ci`" in result.stdout


@pytest.mark.dbt
def test_ctrl_c_during_dbt_build_exits_130_and_says_how_to_continue_even_pressed_twice(
    empty_db, tmp_path
):
    # A database of its own: the whole build to do (about a minute), not an incremental no-op.
    env = dict(empty_db.env, AGENT_ANALYTICS_HOME=str(tmp_path / "home"), PYTHONUNBUFFERED="1")
    demo_run = subprocess.Popen(
        [sys.executable, "-m", "loader", "demo", "--events", "3000"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # dbt creates its schemas before its first model: from then on it is building.
    deadline = time.monotonic() + 600
    while not empty_db.scalar("select count(*) from pg_namespace where nspname = 'marts'"):
        assert demo_run.poll() is None and time.monotonic() < deadline, "dbt never started"
        time.sleep(0.2)
    # An impatient user: Ctrl-C, then again every quarter second while it shuts down. One
    # second press landing in the teardown used to end the process by SIGINT (CI saw it).
    demo_run.send_signal(signal.SIGINT)
    try:
        rest, stderr = demo_run.communicate(timeout=0.25)
    except subprocess.TimeoutExpired:
        for _ in range(1200):
            if demo_run.poll() is not None:
                break
            demo_run.send_signal(signal.SIGINT)
            time.sleep(0.25)
        rest, stderr = demo_run.communicate(timeout=300)
    assert demo_run.returncode == 130, rest + stderr
    assert "dbt build failed" not in rest + stderr
    assert stderr.strip().splitlines()[-1] == (
        "Error: interrupted: rerun `agent-loader demo` to continue (the files loaded stay"
        " loaded, none loads twice)"
    )
