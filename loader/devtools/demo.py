"""`agent-loader demo`: from nothing to marts and insights, with a report on screen.

Steps: connect (embedded server unless one is configured), create the raw schema, generate a
few days of events with planted anomalies (once: a rerun reuses the files, so it loads
nothing twice), load them, run `dbt build`, and report what the marts say.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg2.extensions
import psycopg2.extras

from loader.dashboards import build as sites
from loader.devtools import embedded
from loader.devtools.generate import Workload, generate
from loader.errors import DashboardsBuildFailed, DashboardsNotInstalled
from loader.ingest import warehouse
from loader.ingest.load import FileResult, batch_files, load_file
from loader.operations import dbt

# The anomalies the demo plants; `insights` should report exactly these.
DEMO_ANOMALIES: dict[str, Any] = {
    "error_rate_by_publisher": {"pub-02": 0.15},
    "slow_agents": {"pub-03-agent-1"},
    "failing_tools": {("pub-05", "web_fetch"): 0.35},
    "unhappy_publishers": {"pub-04"},
}
# The LLM calls behind the events, as OpenTelemetry spans, with a planted cost anomaly:
# `tenant_llm_insights` should report the tenant's cost spike on the last day.
DEMO_LLM: dict[str, Any] = {"llm_spans": True, "cost_spike_tenant": "tenant-007"}

DBT_SCHEMAS = ("staging", "intermediate", "marts", "seeds")


@dataclass
class DemoResult:
    landing: Path
    generated: int
    files: list[FileResult] = field(default_factory=list)
    dbt_summary: str = ""
    dbt_ok: bool = False


def demo_workload(events: int, days: int, seed: int) -> Workload:
    return Workload(
        events=events,
        days=days,
        seed=seed,
        events_per_file=max(events // 6, 1000),
        duplicate_rate=0.002,
        late_rate=0.001,
        **DEMO_ANOMALIES,
        **DEMO_LLM,
    )


def reset(conn: psycopg2.extensions.connection, landing: Path) -> None:
    """Drop everything the demo made: the raw and dbt schemas, and the generated files."""
    with conn.cursor() as cur:
        for schema in ("raw", *DBT_SCHEMAS):
            cur.execute(f"drop schema if exists {schema} cascade")
    conn.commit()
    if landing.exists():
        for path in sorted(landing.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()


def run(
    dsn: str,
    events: int,
    days: int,
    seed: int,
    fresh: bool,
    say: Callable[[str], None],
    project: Path | None = None,
) -> DemoResult:
    project = dbt.project_dir(project)  # before any work: a missing project is a usage error
    landing = embedded.home() / "landing" / f"seed-{seed}"
    with warehouse.connected(dsn) as conn:
        if fresh:
            say("reset: dropping the raw, staging, intermediate, marts and seeds schemas")
            reset(conn, landing)
        applied = warehouse.migrate(conn)
        say(
            f"init: raw schema at version {warehouse.schema_version(conn)}"
            + (f" (applied {len(applied)} migrations)" if applied else "")
        )

        result = DemoResult(landing, 0)
        if any(landing.glob("batch-*")):
            say(f"generate: reusing the batch files in {landing}")
        else:
            say(f"generate: {events:,} events over {days} days into {landing}")
            written = generate(demo_workload(events, days, seed), landing)
            result.generated = written.events
        with warehouse.load_lock(dsn, wait=True):
            for path in batch_files([landing]):
                file_result = load_file(conn, path)
                result.files.append(file_result)
                say(
                    f"load: {path.name}: {file_result.status}, {file_result.loaded:,} loaded,"
                    f" {file_result.duplicates:,} duplicates,"
                    f" {file_result.quarantined:,} quarantined"
                )

    say("dbt build: staging, intermediate and marts, with every test (about a minute) ...")
    built = dbt.run(["build"], dsn, project)
    result.dbt_summary = built.summary
    result.dbt_ok = built.success
    say(f"dbt build: {'ok' if result.dbt_ok else 'FAILED'}: {result.dbt_summary}")
    for failure in built.failures[:15]:
        say(f"    {failure}")
    return result


def _rows(conn: psycopg2.extensions.connection, sql: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def report_data(dsn: str) -> dict[str, Any]:
    """What the demo's closing report shows, read from the ledger and the marts."""
    with warehouse.connected(dsn) as conn:
        files, read, loaded, duplicates, quarantined = _rows(
            conn,
            "select count(*), coalesce(sum(records_read), 0), coalesce(sum(loaded), 0),"
            " coalesce(sum(duplicates), 0), coalesce(sum(quarantined), 0)"
            " from raw.load_batches where status = 'loaded'",
        )[0]
        dashboard = _dicts(
            conn,
            "select publisher_id, total_invocations, unique_tenants, active_installs,"
            " avg_satisfaction, error_rate, avg_response_time_ms, p95_response_time_ms,"
            " total_revenue from marts.publisher_dashboard order by publisher_id",
        )
        errors = _dicts(
            conn,
            "select rank, error_type, occurrences, share from marts.error_types_ranked"
            " where rank <= 10 order by rank, error_type",
        )
        insights = _dicts(
            conn,
            "select severity, publisher_id, title, description from marts.insights"
            " order by case severity when 'critical' then 0 when 'warning' then 1 else 2 end,"
            " publisher_id, title",
        )
        # the month of the newest LLM call: the demo's days may straddle two months
        unit_economics = _dicts(
            conn,
            "select tenant_id, llm_calls, revenue_usd, llm_cost_usd, margin_usd, margin_rate"
            " from marts.tenant_unit_economics_monthly"
            " where month_start_date = (select max(month_start_date)"
            " from marts.tenant_unit_economics_monthly)"
            " order by llm_cost_usd desc nulls last, tenant_id limit 8",
        )
        cost_insights = _dicts(
            conn,
            "select severity, tenant_id, title, description from marts.tenant_llm_insights"
            " order by case severity when 'critical' then 0 when 'warning' then 1 else 2 end,"
            " tenant_id, title",
        )
    ledger = {
        "files": int(files),
        "read": int(read),
        "loaded": int(loaded),
        "duplicates": int(duplicates),
        "quarantined": int(quarantined),
    }
    return {
        "ledger": ledger,
        "dashboard": dashboard,
        "errors": errors,
        "insights": insights,
        "unit_economics": unit_economics,
        "cost_insights": cost_insights,
    }


def report(dsn: str) -> str:
    """The demo's closing report as text."""
    data = report_data(dsn)
    ledger = data["ledger"]
    out = [
        "",
        f"Loaded {ledger['files']} batch files: {ledger['read']:,} records read ="
        f" {ledger['loaded']:,} loaded + {ledger['duplicates']:,} duplicates"
        f" + {ledger['quarantined']:,} quarantined",
        "",
        "Publisher dashboard (marts.publisher_dashboard)",
        f"  {'publisher':<10} {'invocations':>11} {'tenants':>7} {'installs':>8} {'rating':>6}"
        f" {'errors':>7} {'avg ms':>7} {'p95 ms':>7} {'revenue $':>10}",
    ]
    for row in data["dashboard"]:
        out.append(
            f"  {row['publisher_id']:<10} {row['total_invocations']:>11,}"
            f" {row['unique_tenants']:>7} {row['active_installs']:>8}"
            f" {_num(row['avg_satisfaction'], 2):>6} {_pct(row['error_rate']):>7}"
            f" {_num(row['avg_response_time_ms'], 0):>7} {_num(row['p95_response_time_ms'], 0):>7}"
            f" {_num(row['total_revenue'], 2):>10}"
        )
    out += ["", "Top error types (marts.error_types_ranked)"]
    out += [
        f"  {row['rank']:>2}. {row['error_type'] or '-':<20} {row['occurrences']:>6,}"
        f"  {_pct(row['share'])}"
        for row in data["errors"]
    ]
    out += ["", f"Insights (marts.insights): {len(data['insights'])}"]
    out += [_insight_line(row, row["publisher_id"]) for row in data["insights"]]
    out += [
        "",
        "LLM cost and margin, the top tenants by cost this month"
        " (marts.tenant_unit_economics_monthly)",
        f"  {'tenant':<11} {'LLM calls':>9} {'revenue $':>10} {'LLM cost $':>10}"
        f" {'margin $':>9} {'margin':>7}",
    ]
    out += [
        f"  {row['tenant_id'] or '(none)':<11} {row['llm_calls']:>9,}"
        f" {_num(row['revenue_usd'], 2):>10} {_num(row['llm_cost_usd'], 2):>10}"
        f" {_num(row['margin_usd'], 2):>9} {_pct(row['margin_rate']):>7}"
        for row in data["unit_economics"]
    ]
    out += ["", f"LLM cost insights (marts.tenant_llm_insights): {len(data['cost_insights'])}"]
    out += [_insight_line(row, row["tenant_id"] or "-") for row in data["cost_insights"]]
    return "\n".join(out)


def _insight_line(row: dict[str, Any], subject: str) -> str:
    """One insight (a publisher's or a tenant's) as the report prints it."""
    return f"  [{row['severity']}] {subject}: {row['title']}. {row['description']}"


def _dicts(conn: psycopg2.extensions.connection, sql: str) -> list[dict[str, Any]]:
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(sql)
        # numeric columns arrive as Decimal: floats for JSON and for printing
        return [
            {
                key: float(value) if isinstance(value, Decimal) else value
                for key, value in row.items()
            }
            for row in cur.fetchall()
        ]


def _num(value: Any, places: int) -> str:
    return "-" if value is None else f"{float(value):,.{places}f}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1%}"


def dashboards_help(dsn: str, home: Path) -> str:
    """Build the operator's dashboards site under `home` when the chart library is installed
    (about a second at the demo's size) and say how to open it; else say how to install it."""
    try:
        result = sites.build(dsn, None, home / "dashboards" / "operator")
    except DashboardsNotInstalled:
        return (
            "Dashboards: install Node.js and npm, run `npm ci` in dashboards/, then"
            " `agent-loader dashboards build [--as LOGIN]` (docs/dashboards.md)."
        )
    except DashboardsBuildFailed as error:
        return f"Dashboards: not built: {error}"
    return "\n".join(
        [
            f"Dashboards: the {result.audience} site is built in {result.out}"
            f" ({result.build_seconds:.1f}s); open it:",
            f"  python3 -m http.server -d {result.out} -b 127.0.0.1 8000"
            "  # then http://127.0.0.1:8000/",
            "  A publisher's own site: agent-loader dashboards build --as LOGIN"
            " (docs/dashboards.md).",
        ]
    )


def connection_help(dsn: str, is_embedded: bool) -> str:
    target = dsn or "the PG* variables"
    lines = [
        "",
        f"Connect a BI tool (host, port, user and database from this URL): {target}",
        f"  psql: psql '{dsn}'" if dsn else "  psql: psql (it reads the PG* variables)",
        "  BI tools read the schema `marts`; docs/operating.md lists the reader roles.",
    ]
    if is_embedded:
        lines.append(
            f"The embedded server keeps running (data in {embedded.pgdata()});"
            " stop it with: agent-loader embedded stop"
        )
    lines.append(f"Report generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.")
    return "\n".join(lines)
