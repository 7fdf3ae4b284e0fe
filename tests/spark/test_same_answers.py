"""The same events give the same marts on Apache Spark as on PostgreSQL.

Generated events with planted anomalies (and duplicates, late events and an invalid file),
and the OpenTelemetry GenAI spans of their model calls (with a planted cost spike and an
unpriced model), are loaded into PostgreSQL (`agent-loader load`) and into a Parquet lake
(`agent-loader load --lake`); the dbt project is built on both (`--target spark` for the
lake) and every mart, the LLM cost marts included, is compared row by row, with a tolerance
for float rounding only.

Needs the [spark] extra (pyspark, pyarrow) and Java 17+; it starts Spark in-process, which
takes a minute or two on a small machine.
"""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, Database, run_loader

pq = pytest.importorskip(
    "pyarrow.parquet", reason="needs the [spark] extra: pip install -e '.[spark]'"
)
pytest.importorskip("pyspark", reason="needs the [spark] extra: pip install -e '.[spark]'")
pytest.importorskip(
    "dbt.adapters.spark", reason="needs the [spark] extra: pip install -e '.[spark]'"
)
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip(
        "Spark needs Java 17 or later (no `java` on PATH, no JAVA_HOME)", allow_module_level=True
    )

pytestmark = [pytest.mark.dbt, pytest.mark.spark]

# The build date, pinned for both builds (the generator writes the days before now).
AS_OF = dt.datetime.now(dt.timezone.utc).date().isoformat()
# Every BI mart (insights_history, a snapshot, needs Delta on Spark and is not built there).
MARTS = [
    "agent_active_installs",
    "agent_active_installs_shared",
    "agent_installs",
    "agent_resolution_times",
    "conversations_hourly",
    "error_types_ranked",
    "fct_conversations",
    "fct_invocations",
    "fct_llm_calls",
    "insights",
    "insights_shared",
    "llm_cost_daily",
    "llm_unpriced_models",
    "operational_health",
    "platform_daily",
    "publisher_daily",
    "publisher_daily_shared",
    "publisher_dashboard",
    "publisher_dashboard_shared",
    "publisher_tool_usage",
    "publisher_tool_usage_shared",
    "tenant_llm_insights",
    "tenant_llm_metrics",
    "tenant_retention_monthly",
    "tenant_revenue",
    "tenant_revenue_monthly",
    "tenant_unit_economics_monthly",
]
# The generator's planted LLM anomalies (loader/devtools/spans.py).
COST_SPIKE_TENANT = "tenant-007"
UNPRICED_AGENT = "pub-01-agent-1"
UNPRICED_MODEL = "in-house-llm-v2"


LOAD_TIME_COLUMNS = {"loaded_at", "last_loaded_at", "warehouse_last_loaded_at"}


def _dbt(env: dict[str, str], folder: Path, *args: str) -> None:
    command = [
        str(Path(sys.executable).with_name("dbt")),
        *args,
        "--vars",
        f"{{as_of: '{AS_OF}'}}",
        "--profiles-dir",
        str(REPO),
        "--target-path",
        str(folder / "target"),
        "--log-path",
        str(folder / "logs"),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        raise AssertionError(f"dbt {' '.join(args)} failed:\n{result.stdout[-8000:]}")


def _value(value: object) -> object:
    """One cell, engine-neutral: decimals as floats, timestamps in UTC without a zone."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value
    return value


def _sort_key(row: tuple) -> tuple:
    return tuple(
        (1, "") if v is None else (0, f"{v:.6g}" if isinstance(v, float) else str(v)) for v in row
    )


def _same(left: object, right: object) -> bool:
    """Equal, numbers to within rounding: the marts' contracts round to 6 decimals on
    PostgreSQL (numeric(38, 6)), which Spark does not apply (docs/spark.md)."""
    if isinstance(left, float) or isinstance(right, float):
        if left is None or right is None:
            return left is right
        return math.isclose(float(left), float(right), rel_tol=1e-9, abs_tol=1e-6)
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if isinstance(left, int) and isinstance(right, int):
        return left == right
    return left == right


def _postgres_rows(database: Database, table: str, columns: list[str]) -> list[tuple]:
    names = ", ".join(f'"{column}"' for column in columns)
    return [
        tuple(_value(v) for v in row)
        for row in database.query(f"select {names} from marts.{table}")
    ]


def _spark_rows(lake: Path, table: str) -> tuple[list[str], list[tuple]]:
    """A table Spark built, read straight from its Parquet files (no second Spark start)."""
    folder = lake / "_warehouse" / "marts.db" / table
    parts = sorted(p for p in folder.rglob("*.parquet"))
    if not parts:
        return [], []
    tables = [pq.read_table(p) for p in parts]
    columns = tables[0].column_names
    rows = [tuple(_value(row[c]) for c in columns) for t in tables for row in t.to_pylist()]
    return columns, rows


@pytest.fixture(scope="module")
def built(module_db: Database, tmp_path_factory: pytest.TempPathFactory) -> tuple[Database, Path]:
    folder = tmp_path_factory.mktemp("same-answers")
    landing = folder / "landing"
    run_loader(
        module_db,
        "generate",
        "--out", str(landing),
        "--events", "14000",
        # 10 days: the cost spike rule needs 7 days with a call before the day it tests
        "--days", "10",
        "--seed", "16",
        "--events-per-file", "1500",
        "--duplicate-rate", "0.03",
        "--late-rate", "0.03",
        "--error-rate", "pub-02=0.3",
        "--slow-agent", "pub-03-agent-1",
        "--failing-tool", "pub-05/web_fetch=0.4",
        "--unhappy", "pub-04",
        "--llm-spans",
        "--cost-spike", COST_SPIKE_TENANT,
        "--unpriced-agent", UNPRICED_AGENT,
    )  # fmt: skip
    (landing / "zz-invalid.ndjson").write_text('{"event_id": "x"}\nnot json\n')
    lake = folder / "lake"
    run_loader(module_db, "load", str(landing))
    run_loader(module_db, "load", "--lake", str(lake), str(landing))

    _dbt(module_db.env, folder / "postgres", "seed")
    _dbt(module_db.env, folder / "postgres", "run")
    spark_env = {**module_db.env, "AGENT_ANALYTICS_LAKE": str(lake)}
    _dbt(spark_env, folder / "spark", "seed", "--target", "spark")
    _dbt(spark_env, folder / "spark", "run", "--target", "spark")
    return module_db, lake, landing


@pytest.mark.parametrize("mart", MARTS)
def test_mart_has_the_same_rows_on_spark_as_on_postgresql(built, mart):
    database, lake, _ = built
    columns, spark = _spark_rows(lake, mart)
    postgres_columns = [
        row[0]
        for row in database.query(
            "select column_name from information_schema.columns"
            " where table_schema = 'marts' and table_name = %s order by ordinal_position",
            (mart,),
        )
    ]
    assert postgres_columns, f"marts.{mart} was not built on PostgreSQL"
    if spark:  # PostgreSQL orders columns as the contract does, Spark as the model selects
        assert sorted(columns) == sorted(postgres_columns)
        order = [columns.index(column) for column in postgres_columns]
        spark = [tuple(row[i] for i in order) for row in spark]
    # When each engine loaded the events differs by construction, nothing else may.
    compared = [c for c in postgres_columns if c not in LOAD_TIME_COLUMNS]
    keep = [postgres_columns.index(column) for column in compared]
    spark = [tuple(row[i] for i in keep) for row in spark]
    postgres = [
        tuple(row[i] for i in keep) for row in _postgres_rows(database, mart, postgres_columns)
    ]
    postgres_columns = compared
    assert len(spark) == len(postgres)
    for spark_row, postgres_row in zip(
        sorted(spark, key=_sort_key), sorted(postgres, key=_sort_key), strict=True
    ):
        differing = {
            column: (s, p)
            for column, s, p in zip(postgres_columns, spark_row, postgres_row, strict=True)
            if not _same(s, p)
        }
        assert not differing, (
            f"{mart}: {differing} in {dict(zip(postgres_columns, postgres_row, strict=True))}"
        )


def test_the_planted_anomalies_fire_on_both_engines(built):
    database, lake, _ = built
    _, spark = _spark_rows(lake, "insights")
    postgres = database.query("select rule_id, publisher_id from marts.insights")
    columns, _ = _spark_rows(lake, "insights")
    fired = sorted(
        (row[columns.index("rule_id")], row[columns.index("publisher_id")]) for row in spark
    )
    assert fired == sorted(postgres)
    assert {publisher for _, publisher in fired} >= {"pub-02", "pub-03", "pub-04", "pub-05"}


def _generated_spans(landing: Path) -> list[dict]:
    """Every span the generator wrote (OTLP JSON lines, some files gzipped)."""
    spans = []
    for path in sorted(landing.glob("spans-*.jsonl*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as lines:
            for line in lines:
                for resource in json.loads(line)["resourceSpans"]:
                    for scope in resource["scopeSpans"]:
                        spans.extend(scope["spans"])
    return spans


def test_the_llm_marts_compare_the_generated_calls_on_both_engines(built):
    """The LLM marts above are compared on real calls: every model call the generator wrote
    (a client span; the agent span around it is not a call), the unpriced model's calls, the
    conversations' LLM columns and the planted cost insights, on both engines."""
    database, lake, landing = built
    spans = _generated_spans(landing)
    calls = [span for span in spans if span["kind"] == 3]
    unpriced = [
        span
        for span in calls
        if any(a["value"].get("stringValue") == UNPRICED_MODEL for a in span["attributes"])
    ]
    assert len(spans) > len(calls) > len(unpriced) > 0
    columns, spark = _spark_rows(lake, "fct_llm_calls")
    assert len(spark) == database.query("select count(*) from marts.fct_llm_calls")[0][0]
    assert len(spark) == len(calls)
    priced = [row[columns.index("is_priced")] for row in spark]
    assert priced.count(False) == len(unpriced)

    columns, spark = _spark_rows(lake, "llm_unpriced_models")
    assert [(row[columns.index("model_name")], row[columns.index("calls")]) for row in spark] == [
        (UNPRICED_MODEL, len(unpriced))
    ]

    columns, spark = _spark_rows(lake, "fct_conversations")
    with_calls = [row for row in spark if row[columns.index("llm_calls")] > 0]
    assert with_calls and all(row[columns.index("llm_cost_usd")] > 0 for row in with_calls)
    (in_postgres,) = database.query(
        "select count(*) from marts.fct_conversations where llm_calls > 0"
    )
    assert len(with_calls) == in_postgres[0]

    columns, spark = _spark_rows(lake, "tenant_llm_insights")
    fired = sorted(
        (row[columns.index("rule_id")], row[columns.index("tenant_id")]) for row in spark
    )
    assert fired == sorted(
        database.query("select rule_id, tenant_id from marts.tenant_llm_insights")
    )
    assert ("llm_cost_spike", COST_SPIKE_TENANT) in fired
    assert "unpriced_llm_calls" in {rule for rule, _ in fired}
