"""The semantic layer's numbers equal the marts': `mf query` for each metric at the grains the
marts publish, compared with the mart column it reproduces (models/marts/semantic/).

Generated events (two months, a planted error rate, ratings, tools, installs, conversations)
are loaded and built once; then each query's rows must be the mart's rows, key for key, with
each value equal to the mart's within half a unit of the mart's last stored digit (the marts
round once, when stored; MetricFlow returns ratios as floating point).
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from collections.abc import Iterable
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import REPO, Database, Dbt, run_loader

pytestmark = [
    pytest.mark.dbt,
    pytest.mark.skipif(
        shutil.which("mf") is None and not Path(sys.executable).with_name("mf").exists(),
        reason="needs the [metrics] extra (dbt-metricflow)",
    ),
]


PROJECT_FILES = ["dbt_project.yml", "selectors.yml", "models", "macros", "seeds", "snapshots"]
PROJECT_FILES += ["analyses", "tests/generic", "tests/dbt"]


class Metrics:
    """`mf query` against one built database, rows as dicts of strings.

    MetricFlow reads `target/semantic_manifest.json` under the project it runs in, which
    names the database dbt parsed for: the queries run in a copy of the project, parsed for
    the test's database, so the checkout's own `target/` is never read or written.
    """

    def __init__(self, dbt: Dbt, folder: Path) -> None:
        self.dbt, self.folder = dbt, folder
        self.project = folder / "project"
        for name in PROJECT_FILES:
            source, copy = REPO / name, self.project / name
            if source.is_dir():
                shutil.copytree(source, copy)
            else:
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, copy)
        self.env = {**dbt.env, "DBT_PROFILES_DIR": str(dbt.profiles_dir)}
        self.run([str(Path(sys.executable).with_name("dbt")), "parse", "--quiet"])

    def run(self, command: list[str]) -> None:
        result = subprocess.run(
            command, env=self.env, cwd=self.project, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    def __call__(
        self, metrics: Iterable[str], group_by: Iterable[str], where: Iterable[str] = ()
    ) -> list[dict[str, str]]:
        out = self.folder / "query.csv"
        command = [
            str(Path(sys.executable).with_name("mf")),
            "query",
            "--metrics",
            ",".join(metrics),
            "--group-by",
            ",".join(group_by),
            "--csv",
            str(out),
            "--quiet",
        ]
        for condition in where:
            command += ["--where", condition]
        self.run(command)
        with out.open(newline="") as handle:
            return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def built(module_db: Database, dbt: Dbt, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("metrics")
    run_loader(
        module_db,
        "generate",
        "--out",
        str(folder / "events"),
        "--events",
        "12000",
        "--days",
        "45",
        "--seed",
        "11",
        "--error-rate",
        "pub-02=0.2",
        "--llm-spans",
        "--cost-spike",
        "tenant-003",
    )
    run_loader(module_db, "load", str(folder / "events"))
    dbt("build")
    return module_db, Metrics(dbt, folder)


def _close(found: str, expected: object, roundings: int = 1) -> bool:
    """Equal within half a unit of the mart's last stored digit per rounding behind the mart's
    value (exact for integers)."""
    if expected is None:
        return found == ""
    if isinstance(expected, Decimal):
        exponent = expected.as_tuple().exponent
        assert isinstance(exponent, int)
        tolerance = roundings * Decimal(5).scaleb(exponent - 1) + Decimal("1e-12")
        return abs(Decimal(found) - expected) <= tolerance
    return Decimal(found) == Decimal(expected)  # type: ignore[arg-type]


def _compare(
    queried: list[dict[str, str]],
    mart: list[tuple],
    keys: list[str],
    columns: dict[str, int],
    roundings: dict[str, int] | None = None,
) -> None:
    """Rows of `mf query` against mart rows whose first len(keys) values are the key."""
    expected = {tuple("" if v is None else str(v) for v in row[: len(keys)]): row for row in mart}
    found = {tuple(row[k] for k in keys): row for row in queried}
    assert set(found) == set(expected)
    assert len(found) > 2
    wrong = [
        (key, metric, row[metric], expected[key][index])
        for key, row in found.items()
        for metric, index in columns.items()
        if not _close(row[metric], expected[key][index], (roundings or {}).get(metric, 1))
    ]
    assert wrong == []


def _window(database: Database) -> tuple[date, date]:
    start, end = database.query(
        "select distinct window_start_date, window_end_date from marts.publisher_dashboard"
    )[0]
    return start, end


def _day_between(start: date, end: date) -> list[str]:
    day = "{{ TimeDimension('metric_time', 'day') }}"
    return [f"{day} >= '{start}'", f"{day} <= '{end}'"]


def test_publisher_dashboard_metrics_over_the_window(built) -> None:
    database, mf = built
    start, end = _window(database)
    # in the order of the mart's columns below, after publisher_id
    metrics = [
        "invocations",
        "completed_invocations",
        "errored_invocations",
        "error_rate",
        "unique_tenants",
        "revenue",
        "avg_revenue_per_tenant",
        "avg_response_time_ms",
        "p95_response_time_ms",
        "rating_count",
        "avg_satisfaction",
    ]
    rows = mf(metrics, ["publisher"], _day_between(start, end))
    mart = database.query(
        """
        select publisher_id, total_invocations, completed_invocations, errored_invocations,
            error_rate, unique_tenants, total_revenue, avg_revenue_per_tenant,
            avg_response_time_ms, p95_response_time_ms, rating_count, avg_satisfaction
        from marts.publisher_dashboard
        where total_invocations > 0
        """
    )
    _compare(rows, mart, ["publisher"], {m: i + 1 for i, m in enumerate(metrics)})
    # the planted error rate shows: one publisher near 0.2, the others near 0.01
    assert max(float(r["error_rate"]) for r in rows if r["publisher"] == "pub-02") > 0.1


def test_revenue_by_tenant_and_month(built) -> None:
    database, mf = built
    rows = mf(
        ["invocations", "completed_invocations", "revenue", "revenue_per_invocation"],
        ["publisher", "tenant", "metric_time__month"],
    )
    for row in rows:
        row["metric_time__month"] = row["metric_time__month"][:10]
    mart = database.query(
        """
        select publisher_id, tenant_id, month_start_date, invocations, completed_invocations,
            revenue_usd, revenue_per_invocation_usd
        from marts.tenant_revenue_monthly
        """
    )
    _compare(
        rows,
        mart,
        ["publisher", "tenant", "metric_time__month"],
        {"invocations": 3, "completed_invocations": 4, "revenue": 5, "revenue_per_invocation": 6},
    )


def test_platform_totals_by_day(built) -> None:
    database, mf = built
    rows = mf(["invocations", "errored_invocations", "gmv", "unique_tenants"], ["metric_time__day"])
    for row in rows:
        row["metric_time__day"] = row["metric_time__day"][:10]
    mart = database.query(
        """
        select date_day, invocations, errored_invocations, gmv_usd, active_tenants
        from marts.platform_daily where invocations > 0
        """
    )
    _compare(
        rows,
        mart,
        ["metric_time__day"],
        {"invocations": 1, "errored_invocations": 2, "gmv": 3, "unique_tenants": 4},
    )


def test_publisher_day_percentiles_and_error_rate(built) -> None:
    database, mf = built
    rows = mf(
        ["error_rate", "p50_response_time_ms", "p95_response_time_ms", "avg_satisfaction"],
        ["publisher", "metric_time__day"],
    )
    for row in rows:
        row["metric_time__day"] = row["metric_time__day"][:10]
    mart = database.query(
        """
        select publisher_id, date_day, error_rate, p50_response_time_ms, p95_response_time_ms,
            avg_satisfaction
        from marts.publisher_daily where invocations > 0 or rating_count > 0
        """
    )
    _compare(
        rows,
        mart,
        ["publisher", "metric_time__day"],
        {
            "error_rate": 2,
            "p50_response_time_ms": 3,
            "p95_response_time_ms": 4,
            "avg_satisfaction": 5,
        },
    )


def test_tool_usage_over_the_window(built) -> None:
    database, mf = built
    start, end = _window(database)
    rows = mf(
        ["tool_calls", "tool_failures", "tool_failure_rate"],
        ["publisher", "tool_use__tool_name"],
        _day_between(start, end),
    )
    mart = database.query(
        "select publisher_id, tool_name, calls, failures, failure_rate"
        " from marts.publisher_tool_usage where has_tool_events"
    )
    _compare(
        rows,
        mart,
        ["publisher", "tool_use__tool_name"],
        {"tool_calls": 2, "tool_failures": 3, "tool_failure_rate": 4},
    )


def test_active_installs_per_agent(built) -> None:
    database, mf = built
    rows = mf(["active_installs"], ["publisher", "agent"])
    mart = database.query(
        "select publisher_id, agent_id, active_installs from marts.agent_active_installs"
    )
    _compare(rows, mart, ["publisher", "agent"], {"active_installs": 2})


def test_conversations_per_hour(built) -> None:
    database, mf = built
    rows = mf(["hourly_conversations", "hourly_active_conversations"], ["metric_time__hour"])
    for row in rows:  # MetricFlow prints the hour without its zone: it is UTC
        moment = datetime.fromisoformat(row["metric_time__hour"]).replace(tzinfo=timezone.utc)
        row["metric_time__hour"] = str(moment)
    mart = database.query(
        "select hour, conversations, active_conversations from marts.conversations_hourly"
    )
    _compare(
        rows,
        mart,
        ["metric_time__hour"],
        {"hourly_conversations": 1, "hourly_active_conversations": 2},
    )


def test_resolution_time_per_agent(built) -> None:
    database, mf = built
    rows = mf(
        [
            "agent_conversations",
            "avg_resolution_seconds",
            "p50_resolution_seconds_interpolated",
            "p95_resolution_seconds_interpolated",
        ],
        ["conversation_agent__agent_name"],
    )
    mart = database.query(
        """
        select agent_name, conversations, avg_resolution_seconds,
            p50_resolution_seconds_interpolated, p95_resolution_seconds_interpolated
        from marts.agent_resolution_times
        """
    )
    _compare(
        rows,
        mart,
        ["conversation_agent__agent_name"],
        {
            "agent_conversations": 1,
            "avg_resolution_seconds": 2,
            "p50_resolution_seconds_interpolated": 3,
            "p95_resolution_seconds_interpolated": 4,
        },
    )


def test_top_error_types_and_conversation_totals(built) -> None:
    database, mf = built
    rows = mf(["error_occurrences"], ["conversation_error__error_type"])
    mart = database.query("select error_type, occurrences from marts.error_types_ranked")
    _compare(rows, mart, ["conversation_error__error_type"], {"error_occurrences": 1})

    (total,) = mf(["conversations", "conversation_tokens"], [])
    assert (
        Decimal(total["conversations"]),
        Decimal(total["conversation_tokens"]),
    ) == database.query("select count(*), sum(total_tokens) from marts.fct_conversations")[0]


def test_every_saved_query_runs(built) -> None:
    """The saved queries of the references' questions run locally and return rows."""
    _, mf = built
    for name in [
        "publisher_dashboard",
        "conversations_per_hour",
        "resolution_time_per_agent",
        "top_error_types",
        "revenue_per_tenant",
    ]:
        out = mf.folder / f"{name}.csv"
        mf.run(
            [
                *(str(Path(sys.executable).with_name("mf")), "query", "--saved-query", name),
                *("--csv", str(out), "--quiet"),
            ]
        )
        with out.open(newline="") as handle:
            assert len(list(csv.DictReader(handle))) > 2, name


def test_llm_calls_cost_and_tokens_by_tenant_agent_model_and_day(built) -> None:
    database, mf = built
    rows = mf(
        ["llm_calls", "unpriced_llm_calls", "llm_input_tokens", "llm_output_tokens", "llm_cost"],
        ["tenant", "llm_call__agent_name", "llm_call__model_name", "metric_time__day"],
    )
    for row in rows:
        row["metric_time__day"] = row["metric_time__day"][:10]
    mart = database.query(
        """
        select tenant_id, agent_name, model_name, date_day, calls, unpriced_calls,
            input_tokens, output_tokens, cost_usd
        from marts.llm_cost_daily
        """
    )
    _compare(
        rows,
        mart,
        ["tenant", "llm_call__agent_name", "llm_call__model_name", "metric_time__day"],
        {
            "llm_calls": 4,
            "unpriced_llm_calls": 5,
            "llm_input_tokens": 6,
            "llm_output_tokens": 7,
            "llm_cost": 8,
        },
    )


def test_margin_by_tenant_and_month(built) -> None:
    """Tenants with both invocations and LLM calls in the month: where one side is missing,
    MetricFlow's outer join leaves the metric empty and the mart counts the side as zero."""
    database, mf = built
    rows = mf(["revenue", "llm_cost", "margin", "margin_rate"], ["tenant", "metric_time__month"])
    rows = [row for row in rows if row["revenue"] and row["llm_cost"]]
    for row in rows:
        row["metric_time__month"] = row["metric_time__month"][:10]
    mart = database.query(
        """
        select tenant_id, month_start_date, revenue_usd, llm_cost_usd, margin_usd, margin_rate
        from marts.tenant_unit_economics_monthly
        where invocations > 0 and llm_calls > 0
        """
    )
    _compare(
        rows,
        mart,
        ["tenant", "metric_time__month"],
        {"revenue": 2, "llm_cost": 3, "margin": 4, "margin_rate": 5},
        # the mart's margin is the difference of its two rounded amounts
        roundings={"margin": 2},
    )
