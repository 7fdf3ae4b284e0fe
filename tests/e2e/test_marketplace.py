"""End to end for the marketplace marts: planted anomalies in, the seed's numbers out.

A fixture writes batch files of marketplace events (timestamps relative to now) with known
anomalies: a publisher above 5% errors, one with p95 above 10 s, one below 3.5 satisfaction,
one with a tool failing more than 10%, healthy publishers, a small publisher that breaks every
threshold on too small a sample, an idle publisher, and events outside the dashboard window.
The loader loads them and `dbt build` builds and tests the marketplace models. Then:
- `publisher_dashboard` equals seed 004's own `PublisherAnalyticsService.get_dashboard`
  (tests/e2e/marketplace_reference.py) field by field, except where the marts document a better
  definition; there the test asserts the documented one and shows how the seed differs;
- `insights` holds exactly the planted findings, where the seed's `InsightEngine` also flags
  small and silent publishers and never sees tool failures;
- a second load, built incrementally, equals a full refresh, and `insights_history` shows the
  finding that cleared.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from tests.conftest import Database, Dbt, run_loader
from tests.e2e.marketplace_reference import (
    InMemoryEventStore,
    InsightEngine,
    PublisherAnalyticsService,
    PublisherDashboardMetrics,
    event_from_record,
)

pytestmark = pytest.mark.dbt

NOW = datetime.now(timezone.utc).replace(microsecond=0)
AS_OF = NOW.date()
WINDOW_DAYS = 30
# The marketplace models and everything downstream of them; the build date pinned to AS_OF.
# +tenant_llm_insights: the unit economics and cost insights read the priced spans too
SELECT = ("--select", "source:marketplace+", "+tenant_llm_insights", "insight_rules+")
VARS = ("--vars", json.dumps({"as_of": AS_OF.isoformat()}))

PLANTED_FINDINGS = {
    ("high_error_rate", "pub-errors", None),
    ("slow_p95_response_time", "pub-slow", None),
    ("low_satisfaction", "pub-unhappy", None),
    ("tool_failing_often", "pub-tools", "web_search"),
}
SEED_TITLES = {
    "high_error_rate": "High Error Rate",
    "slow_p95_response_time": "Slow p95 Response Time",
    "low_satisfaction": "Low User Satisfaction",
}


class Batch:
    """Marketplace events in the loader's JSON shape, written as one NDJSON batch file."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.records: list[dict] = []

    def add(
        self, event_type: str, publisher: str, tenant: str, ago: timedelta, **properties: object
    ) -> dict:
        record = {
            "id": f"{self.prefix}-{len(self.records) + 1:05d}",
            "event_type": event_type,
            "agent_id": f"agent-{publisher.removeprefix('pub-')}",
            "publisher_id": publisher,
            "tenant_id": tenant,
            "timestamp": (NOW - ago).isoformat(),
            "properties": properties,
        }
        self.records.append(record)
        return record

    def invocation(
        self,
        publisher: str,
        i: int,
        *,
        ok: bool = True,
        duration_ms: float = 800,
        tools: tuple[str, ...] = (),
        ago: timedelta | None = None,
    ) -> None:
        """The i-th invocation of a publisher: spread over 20 days, 7 tenants, costs in cents."""
        ago = ago if ago is not None else spread(i)
        tenant = f"tenant-{i % 7 + 1}"
        if i % 3 == 0:
            self.add(
                "agent_invoked", publisher, tenant, ago + timedelta(seconds=5), input_tokens=90
            )
        self.add(
            "agent_completed" if ok else "agent_errored",
            publisher,
            tenant,
            ago,
            input_tokens=100 + i,
            output_tokens=40 + i % 11,
            tool_calls=list(tools),
            duration_ms=duration_ms,
            cost_usd=round(0.01 * (1 + i % 9), 2),
            **({} if ok else {"error_type": "upstream_timeout"}),
        )

    def feedback(self, publisher: str, ratings: list[int], ago: timedelta | None = None) -> None:
        for i, rating in enumerate(ratings):
            when = ago if ago is not None else spread(i, hours=5)
            comment = "meh" if rating < 3 else None
            self.add(
                "user_feedback",
                publisher,
                f"tenant-{i % 5 + 1}",
                when,
                rating=rating,
                comment=comment,
            )

    def tool(self, publisher: str, tool: str, *, calls: int, failures: int) -> None:
        """A tool-tracing producer: a `tool_called` event per call, a `tool_failed` event too
        when the call fails (the default `tool_failure_reading`, `subset`)."""
        for i in range(calls):
            tenant, ago = f"tenant-{i % 7 + 1}", spread(i, hours=3)
            self.add("tool_called", publisher, tenant, ago, tool_name=tool, duration_ms=120 + i)
            if i < failures:
                self.add("tool_failed", publisher, tenant, ago, tool_name=tool, error="HTTP 503")

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.prefix}.ndjson"
        path.write_text("".join(json.dumps(record) + "\n" for record in self.records))
        return path


def spread(i: int, hours: int = 0) -> timedelta:
    """Inside the window: 0 to 19 days (plus a few hours) before now, never in the future."""
    return timedelta(days=i % 20, hours=(i * 7 + hours) % 23, minutes=1 + i % 50)


def first_batch() -> Batch:
    batch = Batch("mkt-b1")
    # pub-errors: 40 invocations, 4 errors (10% > 5%) -> critical. Otherwise healthy.
    for i in range(40):
        batch.invocation("pub-errors", i, ok=i % 10 != 3, duration_ms=400 + 10 * i)
    batch.feedback("pub-errors", [4, 5, 4, 4, 3, 5, 4, 4, 5, 4, 4, 4])
    # pub-slow: 40 completions, the slowest 4 above 10 s -> p95 warning. No ratings at all.
    for i in range(40):
        batch.invocation(
            "pub-slow", i, duration_ms=15_000 + 1_000 * i if i >= 36 else 1_000 + 50 * i
        )
    # pub-unhappy: 36 invocations, 1 error (2.8%), 12 ratings averaging 2.92 -> quality warning.
    for i in range(36):
        batch.invocation("pub-unhappy", i, ok=i != 17, duration_ms=900 + 5 * i)
    batch.feedback("pub-unhappy", [2, 3, 3, 2, 4, 3, 3, 2, 3, 4, 3, 3])
    batch.feedback("pub-unhappy", [5] * 20, ago=timedelta(days=45))  # outside the window
    # pub-tools: healthy, but web_search fails 5 of 25 calls (20%) -> tool warning;
    # calculator fails 1 of 31 (3%).
    for i in range(35):
        tools = ("web_search", "calculator") if i % 2 else ("calculator",)
        batch.invocation("pub-tools", i, duration_ms=700 + 3 * i, tools=tools)
    batch.feedback("pub-tools", [5] * 12)
    batch.tool("pub-tools", "web_search", calls=25, failures=5)
    batch.tool("pub-tools", "calculator", calls=31, failures=1)
    # pub-healthy: 41 invocations, 1 error (2.4%), durations 100..4000 ms (n = 40 completions:
    # the seed's p95 index picks 3900, nearest rank 3800), 15 good ratings, a tool known from
    # the lists only, a flaky tool on too few calls, and a bad month outside the window.
    for i in range(40):
        batch.invocation("pub-healthy", i, duration_ms=100 * (i + 1), tools=("search_docs",))
    batch.invocation("pub-healthy", 40, ok=False, duration_ms=30_000)
    batch.feedback("pub-healthy", [5, 4, 5, 5, 4, 5, 4, 5, 5, 4, 5, 4, 5, 5, 4])
    batch.tool("pub-healthy", "flaky_api", calls=5, failures=3)
    for i in range(10):
        batch.invocation("pub-healthy", 100 + i, ok=False, ago=timedelta(days=40 + i))
    # pub-small: 3 invocations, 1 error (33%), p95 20 s, one rating of 1, a tool failing 2 of 2:
    # every rule's threshold broken, every rule's minimum sample missed -> no finding.
    for i in range(3):
        batch.invocation("pub-small", i, ok=i != 1, duration_ms=20_000)
    batch.feedback("pub-small", [1])
    batch.tool("pub-small", "broken_tool", calls=2, failures=2)
    # pub-partial: 4 invocations by 3 tenants, valid but incomplete. A free agent's completion
    # has no cost_usd, an SDK that does not time calls sends no duration_ms, and an error has
    # no properties at all. The seed counts all four (4 invocations, 3 tenants, 1 error).
    partial = {"input_tokens": 10, "output_tokens": 5, "tool_calls": []}
    hour = timedelta(hours=1)
    batch.add(
        "agent_completed",
        "pub-partial",
        "tenant-a",
        30 * hour,
        **partial,
        duration_ms=1000,
        cost_usd=0.10,
    )
    batch.add("agent_completed", "pub-partial", "tenant-b", 29 * hour, **partial, duration_ms=3000)
    # alone on its day: that day has a completion and no response time
    batch.add("agent_completed", "pub-partial", "tenant-c", 5 * 24 * hour, **partial, cost_usd=0.30)
    batch.add("agent_errored", "pub-partial", "tenant-a", 27 * hour)
    # Installs: current state from the latest install/uninstall per agent and tenant.
    day = timedelta(days=1)
    batch.add("install", "pub-healthy", "tenant-1", 25 * day, plan="pro")
    batch.add("install", "pub-healthy", "tenant-2", 24 * day, plan="free")
    batch.add("uninstall", "pub-healthy", "tenant-2", 5 * day)
    batch.add("install", "pub-healthy", "tenant-3", 20 * day, plan="free")
    batch.add("uninstall", "pub-healthy", "tenant-3", 10 * day)
    batch.add("install", "pub-healthy", "tenant-3", 2 * day, plan="pro")
    batch.add("install", "pub-errors", "tenant-1", 90 * day, plan="pro")  # before the window
    # An install whose properties carry a key of another event type, with another JSON type.
    batch.add("install", "pub-errors", "tenant-2", 3 * day, plan="team", rating="five")
    # pub-idle: installs only, no invocation and no rating.
    batch.add("install", "pub-idle", "tenant-1", 12 * day)
    batch.add("install", "pub-idle", "tenant-2", 11 * day)
    batch.add("uninstall", "pub-idle", "tenant-2", 1 * day)
    return batch


def second_batch(replayed: dict) -> Batch:
    """A later load: pub-errors recovers (4 errors in 100 invocations), a late rating, a replay."""
    batch = Batch("mkt-b2")
    for i in range(60):
        batch.invocation("pub-errors", 200 + i, duration_ms=450)
    batch.feedback("pub-healthy", [3], ago=timedelta(days=3))
    batch.records.append(replayed)
    return batch


@pytest.fixture(scope="module")
def loaded(module_db: Database, dbt: Dbt, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The first batch loaded and built; the records and the build's output."""
    batch = first_batch()
    folder = tmp_path_factory.mktemp("mkt-landing")
    run_loader(module_db, "load", str(batch.write(folder / "b1")))
    result = dbt("build", *SELECT, *VARS)
    return {"records": batch.records, "build": result.stdout, "folder": folder}


def seed_dashboards(records: list[dict]) -> dict[str, PublisherDashboardMetrics]:
    store = InMemoryEventStore([event_from_record(r) for r in records], AS_OF)
    service = PublisherAnalyticsService(store)
    publishers = sorted({r["publisher_id"] for r in records})

    async def all_dashboards() -> list[PublisherDashboardMetrics]:
        return [await service.get_dashboard(p, period_days=WINDOW_DAYS) for p in publishers]

    return dict(zip(publishers, asyncio.run(all_dashboards()), strict=True))


def window_durations(records: list[dict], publisher: str) -> list[float]:
    store = InMemoryEventStore([event_from_record(r) for r in records], AS_OF)
    events = asyncio.run(store.query(publisher, WINDOW_DAYS))
    return sorted(
        e.properties["duration_ms"]
        for e in events
        if e.event_type.value == "agent_completed" and "duration_ms" in e.properties
    )


def test_build_passes_every_test(loaded):
    assert "Completed successfully" in loaded["build"]
    assert "ERROR=0" in loaded["build"]


def test_dashboard_rates_and_money_are_stored_at_a_fixed_scale(loaded, module_db):
    """Rates at 8 decimals, money and averages at 6: the exact value, rounded half up once."""
    eight, six = Decimal("1e-8"), Decimal("1e-6")
    checked = 0
    for mart in module_db.dicts("select * from marts.publisher_dashboard"):
        if not mart["total_invocations"]:
            continue
        exact_rate = Decimal(mart["errored_invocations"]) / Decimal(mart["total_invocations"])
        assert mart["error_rate"] == exact_rate.quantize(eight, ROUND_HALF_UP)
        assert mart["error_rate"].as_tuple().exponent == -8
        assert mart["total_revenue"].as_tuple().exponent == -6
        durations = window_durations(loaded["records"], mart["publisher_id"])
        if durations:
            exact_mean = Decimal(sum(durations)) / len(durations)
            assert mart["avg_response_time_ms"] == exact_mean.quantize(six, ROUND_HALF_UP)
        checked += 1
    assert checked >= 3


def test_dashboard_matches_the_seed_reference_field_by_field(loaded, module_db):
    dashboards = {
        row["publisher_id"]: row
        for row in module_db.dicts("select * from marts.publisher_dashboard")
    }
    seed = seed_dashboards(loaded["records"])
    assert set(dashboards) == set(seed)

    for publisher, expected in seed.items():
        mart = dashboards[publisher]
        # Same definition, same value.
        assert mart["total_invocations"] == expected.total_invocations, publisher
        assert mart["unique_tenants"] == expected.unique_tenants, publisher
        assert round(mart["total_revenue"], 2) == Decimal(str(expected.total_revenue)), publisher
        # Seed rounds to 4 (error rate) and 2 (satisfaction, revenue per tenant) for display;
        # the mart keeps 8 (rates) or 6 decimals; an empty denominator is null in the mart,
        # 0.0 in the seed.
        if expected.total_invocations:
            assert round(mart["error_rate"], 4) == Decimal(str(expected.error_rate)), publisher
            assert round(mart["avg_revenue_per_tenant"], 2) == Decimal(
                str(expected.avg_revenue_per_tenant)
            )
        else:
            assert mart["error_rate"] is None and expected.error_rate == 0.0
            assert mart["avg_revenue_per_tenant"] is None and expected.avg_revenue_per_tenant == 0.0
        if mart["rating_count"]:
            assert round(mart["avg_satisfaction"], 2) == Decimal(str(expected.avg_satisfaction)), (
                publisher
            )
        else:
            assert mart["avg_satisfaction"] is None and expected.avg_satisfaction == 0.0, publisher
        # Mean response time: the seed floors (integer division); the mart keeps the mean.
        durations = window_durations(loaded["records"], publisher)
        if durations:
            assert mart["avg_response_time_ms"] == pytest.approx(
                Decimal(sum(durations)) / len(durations)
            )
            assert math.floor(mart["avg_response_time_ms"]) == expected.avg_response_time_ms, (
                publisher
            )
        else:
            assert mart["avg_response_time_ms"] is None and expected.avg_response_time_ms == 0
    # The idle publisher has a row, with nothing to average.
    assert dashboards["pub-idle"]["total_invocations"] == 0


def test_incomplete_invocations_are_counted_with_the_seed_rules(loaded, module_db):
    # By hand, pub-partial: completions by tenant-a (0.10 USD, 1000 ms), tenant-b (no cost,
    # 3000 ms) and tenant-c (0.30 USD, no duration, 5 days ago), one error by tenant-a with no
    # properties.
    # Missing cost earns 0; missing duration is left out of the latency figures.
    assert module_db.scalar("select count(*) from raw.quarantine") == 0
    [mart] = module_db.dicts(
        "select * from marts.publisher_dashboard where publisher_id = 'pub-partial'"
    )
    assert (
        mart["total_invocations"],
        mart["completed_invocations"],
        mart["errored_invocations"],
        mart["unique_tenants"],
        mart["error_rate"],
        mart["total_revenue"],
        mart["avg_response_time_ms"],
        mart["p95_response_time_ms"],
    ) == (4, 3, 1, 3, Decimal("0.25"), Decimal("0.40"), Decimal(2000), Decimal(3000))
    assert round(mart["avg_revenue_per_tenant"], 6) == Decimal("0.133333")
    tenants = {
        r["tenant_id"]: (r["invocations"], r["revenue_usd"])
        for r in module_db.dicts(
            "select * from marts.tenant_revenue where publisher_id = 'pub-partial'"
        )
    }
    assert tenants == {
        "tenant-a": (2, Decimal("0.10")),
        "tenant-b": (1, Decimal(0)),
        "tenant-c": (1, Decimal("0.30")),
    }
    # The seed's own dashboard agrees on every figure.
    seed = seed_dashboards(loaded["records"])["pub-partial"]
    assert (
        seed.total_invocations,
        seed.unique_tenants,
        seed.error_rate,
        seed.total_revenue,
        seed.avg_response_time_ms,
        seed.p95_response_time_ms,
    ) == (4, 3, 0.25, 0.4, 2000, 3000)


def test_p95_is_nearest_rank_and_the_seed_index_is_one_too_high_on_multiples_of_20(
    loaded, module_db
):
    dashboards = {
        row["publisher_id"]: row
        for row in module_db.dicts("select * from marts.publisher_dashboard")
    }
    seed = seed_dashboards(loaded["records"])
    for publisher, expected in seed.items():
        durations = window_durations(loaded["records"], publisher)
        if not durations:
            assert dashboards[publisher]["p95_response_time_ms"] is None
            assert expected.p95_response_time_ms == 0
            continue
        nearest_rank = durations[math.ceil(0.95 * len(durations)) - 1]
        assert dashboards[publisher]["p95_response_time_ms"] == nearest_rank, publisher
        seed_index = int(len(durations) * 0.95)
        assert expected.p95_response_time_ms == durations[seed_index]
        if len(durations) % 20:
            assert expected.p95_response_time_ms == nearest_rank, publisher
    # pub-healthy: 40 completions of 100..4000 ms: nearest rank is the 38th (3800 ms), the seed
    # takes sorted[38], the 39th (3900 ms).
    assert dashboards["pub-healthy"]["p95_response_time_ms"] == 3800
    assert seed["pub-healthy"].p95_response_time_ms == 3900


def test_active_installs_follow_the_latest_install_event(loaded, module_db):
    latest: dict[tuple, dict] = {}
    for record in loaded["records"]:
        if record["event_type"] in ("install", "uninstall"):
            key = (record["publisher_id"], record["agent_id"], record["tenant_id"])
            if key not in latest or record["timestamp"] > latest[key]["timestamp"]:
                latest[key] = record
    expected = defaultdict(int)
    for (publisher, _, _), record in latest.items():
        expected[publisher] += record["event_type"] == "install"
    dashboards = {
        r["publisher_id"]: r["active_installs"]
        for r in module_db.dicts("select * from marts.publisher_dashboard")
    }
    assert (
        {p: n for p, n in dashboards.items() if n}
        == dict(expected)
        == {
            "pub-healthy": 2,
            "pub-errors": 2,
            "pub-idle": 1,
        }
    )
    # The seed declares active_installs and never fills it.
    assert all(m.active_installs == 0 for m in seed_dashboards(loaded["records"]).values())


def test_tool_usage_keeps_the_seed_breakdown_and_fills_failure_rates(loaded, module_db):
    usage = {
        (r["publisher_id"], r["tool_name"]): r
        for r in module_db.dicts("select * from marts.publisher_tool_usage")
    }
    for publisher, metrics in seed_dashboards(loaded["records"]).items():
        listed = {
            tool: r["listed_in_completions"] for (p, tool), r in usage.items() if p == publisher
        }
        assert {t: n for t, n in listed.items() if n} == metrics.tool_usage_breakdown, publisher
        assert metrics.tool_failure_rates == {}  # declared, never filled by the seed
    web_search = usage[("pub-tools", "web_search")]
    assert (web_search["calls"], web_search["failures"]) == (25, 5)
    assert web_search["failure_rate"] == Decimal("0.2")
    assert (
        usage[("pub-tools", "calculator")]["calls"],
        usage[("pub-tools", "calculator")]["failures"],
    ) == (31, 1)
    # Known from the invocation lists only: calls counted from the lists, failure rate unknown.
    search_docs = usage[("pub-healthy", "search_docs")]
    assert (search_docs["calls"], search_docs["failure_rate"], search_docs["has_tool_events"]) == (
        40,
        None,
        False,
    )


def test_insights_hold_exactly_the_planted_findings(loaded, module_db):
    found = module_db.dicts("select * from marts.insights")
    assert {(r["rule_id"], r["publisher_id"], r["tool_name"]) for r in found} == PLANTED_FINDINGS
    by_rule = {r["rule_id"]: r for r in found}
    assert by_rule["high_error_rate"]["severity"] == "critical"
    assert by_rule["high_error_rate"]["metric_value"] == Decimal("0.1")
    assert by_rule["high_error_rate"]["threshold"] == Decimal("0.05")
    assert by_rule["tool_failing_often"]["title"] == "Tool 'web_search' Failing Often"
    assert by_rule["tool_failing_often"]["description"] == "Failure rate: 20.0%"


def test_seed_insight_engine_flags_small_and_silent_publishers_and_misses_tools(loaded, module_db):
    seed = seed_dashboards(loaded["records"])
    engine = InsightEngine()
    title_to_rule = {title: rule for rule, title in SEED_TITLES.items()}
    seed_findings = {}
    for publisher, metrics in seed.items():
        for insight in asyncio.run(engine.generate_insights(metrics)):
            seed_findings[(title_to_rule[insight.title], publisher, None)] = insight
    # The seed flags what the minimum samples and null averages keep out of `insights`:
    false_alarms = {
        ("high_error_rate", "pub-small", None),  # 1 error in 3 invocations
        ("slow_p95_response_time", "pub-small", None),  # 2 completions
        ("low_satisfaction", "pub-small", None),  # 1 rating
        ("low_satisfaction", "pub-slow", None),  # no rating: the seed's 0.0 average
        ("low_satisfaction", "pub-idle", None),  # no activity at all
        ("high_error_rate", "pub-partial", None),  # 1 error in 4 invocations
        ("low_satisfaction", "pub-partial", None),  # no rating
    }
    # ... and never sees tool failures, since it never fills tool_failure_rates.
    missed = {("tool_failing_often", "pub-tools", "web_search")}
    assert set(seed_findings) == (PLANTED_FINDINGS - missed) | false_alarms
    # Where both fire, the texts are the seed's (p95: the value differs on multiples of 20).
    ours = {
        (r["rule_id"], r["publisher_id"], r["tool_name"]): r
        for r in module_db.dicts("select * from marts.insights")
    }
    for key in PLANTED_FINDINGS - missed:
        mine, theirs = ours[key], seed_findings[key]
        assert (mine["severity"], mine["category"], mine["title"], mine["recommendation"]) == (
            theirs.severity,
            theirs.category,
            theirs.title,
            theirs.recommendation,
        )
        if key[0] == "slow_p95_response_time":
            assert mine["description"] == f"p95 latency is {int(mine['metric_value'])}ms."
        else:
            assert mine["description"] == theirs.description


def test_seed_rounds_before_its_thresholds_and_the_marts_do_not():
    # 20000 ratings, 9901 fours and 10099 threes: 69901 / 20000 = 3.49505, below 3.5. The seed
    # rounds the average to 3.5 before comparing and stays silent; the marts keep full
    # precision (unit test test_insight_thresholds_compare_full_precision: the rule fires).
    ratings = [4] * 9901 + [3] * 10099
    assert sum(ratings) / len(ratings) == 3.49505
    records = [
        {
            "id": f"fb-{i}",
            "event_type": "user_feedback",
            "agent_id": "agent-round",
            "publisher_id": "pub-round",
            "tenant_id": "tenant-1",
            "timestamp": NOW.isoformat(),
            "properties": {"rating": rating},
        }
        for i, rating in enumerate(ratings)
    ]
    metrics = seed_dashboards(records)["pub-round"]
    assert metrics.avg_satisfaction == 3.5
    titles = {insight.title for insight in asyncio.run(InsightEngine().generate_insights(metrics))}
    assert "Low User Satisfaction" not in titles


def test_incremental_build_equals_full_refresh_and_history_shows_the_cleared_finding(
    loaded, module_db, dbt
):
    replayed = loaded["records"][0]
    batch = second_batch(replayed)
    run_loader(module_db, "load", str(batch.write(loaded["folder"] / "b2")))
    dbt("build", *SELECT, *VARS)

    found = {
        (r["rule_id"], r["publisher_id"], r["tool_name"])
        for r in module_db.dicts("select * from marts.insights")
    }
    assert found == PLANTED_FINDINGS - {("high_error_rate", "pub-errors", None)}
    history = module_db.dicts(
        "select rule_id, publisher_id, dbt_valid_from, dbt_valid_to from marts.insights_history",
    )
    assert len(history) == len(PLANTED_FINDINGS)
    cleared = [h for h in history if h["dbt_valid_to"] is not None]
    assert [(h["rule_id"], h["publisher_id"]) for h in cleared] == [
        ("high_error_rate", "pub-errors")
    ]
    assert cleared[0]["dbt_valid_to"] > cleared[0]["dbt_valid_from"]

    fingerprints = {
        "staging.stg_marketplace__events": "event_id",
        "intermediate.int_invocations_enriched": "invocation_id",
        "intermediate.int_tool_uses_unioned": "tool_use_id",
    }

    incremental = {table: module_db.fingerprint(table, key) for table, key in fingerprints.items()}
    assert incremental["staging.stg_marketplace__events"][0] == module_db.scalar(
        "select count(*) from raw.marketplace_events"
    )
    dbt(
        "run",
        "--full-refresh",
        "--select",
        "stg_marketplace__events",
        "int_invocations_enriched",
        "int_tool_uses_unioned",
        *VARS,
    )
    full_refresh = {table: module_db.fingerprint(table, key) for table, key in fingerprints.items()}
    assert incremental == full_refresh
