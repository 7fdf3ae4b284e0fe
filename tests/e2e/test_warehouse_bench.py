"""The warehouse benchmark's --quick run: it completes and its figures agree with each other.

Times are never asserted (the machine is shared); what is checked is that the benchmark
measured what it says: every generated record loaded, the late events written, the
incremental marts equal to a full refresh, every BI question giving the seed's answer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg2.extensions
import pytest

from tests.conftest import REPO, Server

pytestmark = pytest.mark.dbt


@pytest.fixture(scope="module")
def report(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "warehouse_bench.py"),
            "--quick",
            "--repeat",
            "2",
            "--dsn",
            psycopg2.extensions.make_dsn(**server.params),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-4000:]
    assert "hourly / full" in result.stdout
    return json.loads(Path(out).read_text())


def test_every_generated_record_is_loaded_once(report):
    history, increment = report["load"]["summary"], report["increment"]["summary"]
    # the generator finishes the conversation it is writing: about N events
    assert history["records_read"] == report["events_written"] >= report["events"] > 0
    assert history["loaded"] == history["records_read"]
    assert history["quarantined"] == history["files_failed"] == 0
    assert increment["loaded"] == report["increment"]["events"] + report["increment"]["late"]
    assert report["increment"]["late"] > 0


def test_incremental_marts_equal_the_full_refresh(report):
    assert report["marts_compared"] >= 10
    assert report["marts_differing"] == []


def test_every_bi_question_gives_the_same_answer_on_marts_and_raw(report):
    questions = {q["question"]: q for q in report["bi"]}
    assert len(questions) == 5
    for question in questions.values():
        assert question["same_answer"], question
        assert question["rows"] > 0, question
        assert question["mart_ms"] > 0 and question["raw_ms"] > 0


def test_every_figure_is_reported(report):
    for build in (
        "full_build",
        "realtime_build",
        "incremental_build",
        "daily_build",
        "full_refresh",
    ):
        assert report[build]["seconds"] > 0
        assert report[build]["slowest"]
    assert report["load"]["peak_mib"] > 0 and report["increment"]["peak_mib"] > 0
    sizes = {table for table, _, _ in report["sizes"]}
    assert {"raw.agent_events", "staging.stg_agent_events__events"} <= sizes
