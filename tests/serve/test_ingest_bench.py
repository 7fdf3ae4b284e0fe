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
    report = json.loads(out.read_text())
    assert report["events_acknowledged"] > 0
    assert report["events_acknowledged"] % 50 == 0
    assert report["events_in_raw"] == report["events_acknowledged"]
    assert report["reconciled"] is True
    assert report["events_per_second"] == round(report["events_acknowledged"] / 3)
    assert report["answer_p50_ms"] <= report["answer_p99_ms"]
    assert "acknowledged" in result.stdout
