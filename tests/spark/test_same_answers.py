"""The same events give the same marts on Apache Spark as on PostgreSQL.

Generated events with planted anomalies (and duplicates, late events and an invalid file) are
loaded into PostgreSQL (`agent-loader load`) and into a Parquet lake (`agent-loader load
--lake`); the dbt project is built on both (`--target spark` for the lake) and every mart is
compared row by row, with a tolerance for float rounding only.

Needs the [spark] extra (pyspark, pyarrow) and Java 17+; it starts Spark in-process, which
takes a minute or two on a small machine.
"""

from __future__ import annotations

import datetime as dt
import decimal
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
    "insights",
    "insights_shared",
    "operational_health",
    "platform_daily",
    "publisher_daily",
    "publisher_daily_shared",
    "publisher_dashboard",
    "publisher_dashboard_shared",
    "publisher_tool_usage",
    "publisher_tool_usage_shared",
    "tenant_retention_monthly",
    "tenant_revenue",
    "tenant_revenue_monthly",
]


LOAD_TIME_COLUMNS = {"loaded_at", "last_loaded_at"}


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
        "--days", "3",
        "--seed", "16",
        "--events-per-file", "1500",
        "--duplicate-rate", "0.03",
        "--late-rate", "0.03",
        "--error-rate", "pub-02=0.3",
        "--slow-agent", "pub-03-agent-1",
        "--failing-tool", "pub-05/web_fetch=0.4",
        "--unhappy", "pub-04",
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
    return module_db, lake


@pytest.mark.parametrize("mart", MARTS)
def test_mart_has_the_same_rows_on_spark_as_on_postgresql(built, mart):
    database, lake = built
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
    database, lake = built
    _, spark = _spark_rows(lake, "insights")
    postgres = database.query("select rule_id, publisher_id from marts.insights")
    columns, _ = _spark_rows(lake, "insights")
    fired = sorted(
        (row[columns.index("rule_id")], row[columns.index("publisher_id")]) for row in spark
    )
    assert fired == sorted(postgres)
    assert {publisher for _, publisher in fired} >= {"pub-02", "pub-03", "pub-04", "pub-05"}
