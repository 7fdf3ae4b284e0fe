"""The live ingest benchmark's short run: it completes and its figures agree with each other.

Times are never asserted (the machine is shared); what is checked is that the benchmark
measured what it says: every acknowledged event in raw exactly once, samples taken.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, Database


@pytest.mark.dbt  # slow like the dbt suites: it runs serve, load --follow and the clients
def test_ingest_bench_short_run_reconciles(db: Database, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "ingest_bench.py"),
            "--clients",
            "4",
            "--seconds",
            "3",
            "--rate",
            "0",
            "--rate",
            "2000",
            "--heavy-seconds",
            "3",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=db.env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saturation, paced, heavy = json.loads(out.read_text())["phases"]
    assert (saturation["offered_events_per_second"], paced["offered_events_per_second"]) == (
        None,
        2000,
    )
    for report in (saturation, paced):
        assert report["events_acknowledged"] > 0
        assert report["events_acknowledged"] % 50 == 0
        assert report["events_in_raw"] == report["events_acknowledged"]
        assert report["reconciled"] is True
        assert report["events_per_second"] == round(report["events_acknowledged"] / 3)
        assert report["answer_p50_ms"] <= report["answer_p99_ms"]
        assert 0 <= report["backlog_events_at_end"] <= report["events_acknowledged"]
    # Paced: 4 tasks each post a 50-event batch every 0.1 s, at most 3 s / 0.1 s each.
    assert paced["events_acknowledged"] <= 4 * 30 * 50
    assert "saturation" in result.stdout and "2,000 events/s offered" in result.stdout
    # Heavy: /healthz was probed, and each heavy kind got the answer its limits give.
    assert heavy["healthz"]["samples"] > 0 and heavy["healthz_idle"]["samples"] > 0
    assert heavy["healthz"]["p50_ms"] <= heavy["healthz"]["p99_ms"] <= heavy["healthz"]["max_ms"]
    expected = {
        "valid, 10k records in 16 MiB": "200",
        "valid, gzip": "200",
        "all quarantined, 10k records": "200",
        "8M one-byte records": "413",
        "empty gzip members": "413",
    }
    for kind, status in expected.items():
        statuses = heavy["requests"][kind]["statuses"]
        assert set(statuses) <= {status}, (kind, statuses)
    assert any(heavy["requests"][kind]["requests"] for kind in expected)
    assert "/healthz while the heaviest allowed requests arrive" in result.stdout


@pytest.mark.dbt  # slow like the dbt suites: it runs serve, load --follow and the clients
def test_ingest_bench_spans_run_reconciles(db: Database, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    command = [sys.executable, str(REPO / "bench" / "ingest_bench.py"), "--spans"]
    command += ["--clients", "4", "--seconds", "3", "--rate", "0", "--heavy-seconds", "0"]
    result = subprocess.run(
        [*command, "--json", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=db.env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (report,) = json.loads(out.read_text())["phases"]
    assert report["records"] == "spans" and report["phase"] == "saturation (OTLP spans)"
    assert report["events_acknowledged"] > 0 and report["events_acknowledged"] % 50 == 0
    assert report["events_in_raw"] == report["events_acknowledged"]  # counted in raw.spans
    assert report["reconciled"] is True
    assert report["ack_to_raw_samples"] > 0
    assert "spans/s" in result.stdout
