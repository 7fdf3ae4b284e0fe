"""Publisher-facing aggregates resist differencing: the three attacks, tried as a publisher.

A publisher login (granted its publisher with `agent-loader grant-publisher`) reads
`publisher_dashboard_shared` and `publisher_daily_shared` after real builds and does the
arithmetic an attacker would do to recover one small tenant's figures:

1. window minus days: the window total minus the visible in-window days;
2. daily versus window across builds: the window slides by a day, so
   W(as_of) - W(as_of - 1) + d(oldest day) = d(newest day);
3. successive builds with one tenant added: the change of a published figure.

Each attack is first shown to work on the exact (operator) marts, so the test can fail,
then shown not to recover the tenant's exact figure from what the publisher sees.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest

from tests.conftest import Database, Dbt, Server, prefixed_roles, run_loader
from tests.factories import marketplace_event, write_ndjson

pytestmark = pytest.mark.dbt

PREFIX = f"aa_d{uuid.uuid4().hex[:8]}_"
PUBLISHER_LOGIN = f"{PREFIX}pub_login"
AS_OF = date(2026, 10, 15)
MIN_TENANTS = 5
COUNT_STEP = 5
BUSY_TENANTS = [f"busy-{n}" for n in range(1, 7)]
# One tenant alone on an in-window day, and one alone on the day after AS_OF.
LONELY_DAY = AS_OF - timedelta(days=20)
LONELY_INVOCATIONS = 3
LONELY_COST = Decimal("1.23")
NEXT_DAY = AS_OF + timedelta(days=1)
OLDEST_DAY = AS_OF - timedelta(days=29)
SHARED_TOOL = "search"
SOLO_TOOL = "lonely-crm"


def at(day: date) -> str:
    return datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc).isoformat()


def event(n: int, kind: str, tenant: str, day: date, **properties) -> dict:
    return marketplace_event(
        id=f"diff-{tenant}-{kind}-{n}",
        event_type=kind,
        publisher_id="pub-a",
        tenant_id=tenant,
        agent_id="pub-a-agent",
        timestamp=at(day),
        properties=properties,
    )


def invocation(n: int, tenant: str, day: date, cost: Decimal) -> dict:
    return event(
        n,
        "agent_completed",
        tenant,
        day,
        input_tokens=10,
        output_tokens=5,
        duration_ms=900,
        cost_usd=float(cost),
        tool_calls=[],
    )


def base_events() -> list[dict]:
    """Six busy tenants two invocations a day on ten in-window days and on the oldest window
    day, all rating once and calling SHARED_TOOL; `lonely` alone on LONELY_DAY, the only
    tenant calling SOLO_TOOL; `night` alone on NEXT_DAY."""
    records: list[dict] = []
    busy_days = [AS_OF - timedelta(days=d) for d in range(1, 11)] + [OLDEST_DAY]
    for tenant in BUSY_TENANTS:
        records.append(event(0, "install", tenant, OLDEST_DAY))
        for day in busy_days:
            for _ in range(2):
                records.append(invocation(len(records), tenant, day, Decimal("0.5")))
        records.append(
            event(len(records), "user_feedback", tenant, AS_OF - timedelta(days=5), rating=4)
        )
        records.append(
            event(
                len(records),
                "tool_called",
                tenant,
                AS_OF - timedelta(days=2),
                tool_name=SHARED_TOOL,
            )
        )
    records.append(event(len(records), "tool_called", "lonely", LONELY_DAY, tool_name=SOLO_TOOL))
    for tenant, day in (("lonely", LONELY_DAY), ("night", NEXT_DAY)):
        records.append(event(len(records), "install", tenant, day))
        for _ in range(LONELY_INVOCATIONS):
            records.append(invocation(len(records), tenant, day, LONELY_COST))
        records.append(event(len(records), "user_feedback", tenant, day, rating=1))
    return records


@dataclass
class Builds:
    database: Database
    dbt: Dbt
    folder: Path

    def build(self, as_of: date) -> None:
        variables = {"as_of": as_of.isoformat(), "role_prefix": PREFIX}
        self.dbt(
            "build",
            "--select",
            "+marts.shared",
            "--indirect-selection",
            "cautious",
            "--vars",
            json.dumps(variables),
        )

    def published(self, sql: str) -> list[tuple]:
        """What the publisher login reads."""
        conn = Database({**self.database.params, "user": PUBLISHER_LOGIN}).connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def builds(
    server: Server, module_db: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Builds]:
    folder: Path = tmp_path_factory.mktemp("differencing")
    logins = {PUBLISHER_LOGIN: None, f"{PREFIX}dbt_login": "transformer"}
    with prefixed_roles(module_db, PREFIX, logins):
        run_loader(module_db, "grant-publisher", PUBLISHER_LOGIN, "pub-a", "--prefix", PREFIX)
        run_loader(module_db, "load", str(write_ndjson(folder / "base.ndjson", base_events())))
        dbt = Dbt(
            Database({**module_db.params, "user": f"{PREFIX}dbt_login"}),
            folder / "dbt",
            AGENT_ANALYTICS_DBT_ROLE=f"{PREFIX}transformer",
        )
        built = Builds(module_db, dbt, folder)
        built.build(AS_OF)
        yield built


DASHBOARD = (
    "select total_invocations, total_revenue, rating_count, avg_satisfaction"
    " from marts.{} where publisher_id = 'pub-a'"
)
IN_WINDOW_DAYS = (
    "select date_day, invocations, revenue_usd, rating_count, rating_sum"
    " from marts.{} where publisher_id = 'pub-a' and is_in_dashboard_window order by date_day"
)


def exact(builds: Builds, sql: str) -> list[tuple]:
    return builds.database.query(sql)


def test_the_three_differencing_attacks(builds: Builds):
    # 1. Window minus days. The attack works on the exact marts ...
    window = exact(builds, DASHBOARD.format("publisher_dashboard"))[0]
    days = exact(builds, IN_WINDOW_DAYS.format("publisher_daily"))
    assert window[0] - sum(d[1] for d in days if d[0] != LONELY_DAY) == LONELY_INVOCATIONS
    # ... not on what the publisher sees: the lonely day is hidden, and so is every other
    # in-window day of its groups (complementary suppression), so the difference is the
    # window total itself, over all seven tenants.
    shared_window = builds.published(DASHBOARD.format("publisher_dashboard_shared"))[0]
    shared_days = builds.published(IN_WINDOW_DAYS.format("publisher_daily_shared"))
    assert LONELY_DAY not in [d[0] for d in shared_days]  # not even a row
    assert all(d[1:] == (None, None, None, None) for d in shared_days)
    residual = shared_window[0] - sum(d[1] or 0 for d in shared_days)
    assert residual == shared_window[0] == 6 * 2 * 10 + 6 * 2 + LONELY_INVOCATIONS  # 135
    assert residual != LONELY_INVOCATIONS

    # 2. Daily versus window across builds: the window slides to NEXT_DAY, where `night`
    # is alone; the oldest day leaves the window and is published on its own.
    builds.build(NEXT_DAY)
    window_next = exact(builds, DASHBOARD.format("publisher_dashboard"))[0]
    oldest = exact(
        builds,
        "select invocations, revenue_usd from marts.publisher_daily"
        f" where publisher_id = 'pub-a' and date_day = '{OLDEST_DAY}'",
    )[0]
    assert window_next[0] - window[0] + oldest[0] == LONELY_INVOCATIONS
    assert window_next[1] - window[1] + oldest[1] == LONELY_COST * LONELY_INVOCATIONS
    shared_next = builds.published(DASHBOARD.format("publisher_dashboard_shared"))[0]
    shared_oldest = builds.published(
        "select invocations, revenue_usd from marts.publisher_daily_shared"
        f" where date_day = '{OLDEST_DAY}'"
    )[0]
    assert shared_oldest == (10, Decimal(6))  # 12 invocations, 6 USD, coarsened
    night_invocations = shared_next[0] - shared_window[0] + shared_oldest[0]
    night_revenue = shared_next[1] - shared_window[1] + shared_oldest[1]
    assert night_invocations != LONELY_INVOCATIONS
    assert night_revenue != LONELY_COST * LONELY_INVOCATIONS
    assert night_invocations % COUNT_STEP == 0

    # 3. Successive builds with one tenant added: `newcomer` invokes once (0.37 USD) and
    # rates 1 inside the window; the exact change is exactly its figures.
    newcomer = [
        invocation(0, "newcomer", AS_OF - timedelta(days=3), Decimal("0.37")),
        event(1, "user_feedback", "newcomer", AS_OF - timedelta(days=3), rating=1),
    ]
    run_loader(builds.database, "load", str(write_ndjson(builds.folder / "new.ndjson", newcomer)))
    builds.build(NEXT_DAY)
    after = exact(builds, DASHBOARD.format("publisher_dashboard"))[0]
    assert after[0] - window_next[0] == 1
    assert after[1] - window_next[1] == Decimal("0.37")
    assert after[2] - window_next[2] == 1
    assert after[3] * after[2] - window_next[3] * window_next[2] == 1  # the rating itself
    shared_after = builds.published(DASHBOARD.format("publisher_dashboard_shared"))[0]
    changes = [a - b for a, b in zip(shared_after, shared_next, strict=True)]
    assert changes[0] != 1 and changes[0] % COUNT_STEP == 0
    assert changes[1] != Decimal("0.37") and changes[1] % 1 == 0
    assert changes[2] != 1 and changes[2] % COUNT_STEP == 0
    rating = shared_after[3] * shared_after[2] - shared_next[3] * shared_next[2]
    assert rating != 1


def test_every_published_count_is_coarsened_and_thin_residuals_never_appear(builds: Builds):
    """Whatever the last build, over every bigint column of every `*_shared` mart: a multiple of
    the count step; and the in-window days hidden in publisher_daily_shared hold no tenants
    or at least MIN_TENANTS of them (computed here from the events loaded)."""
    columns = builds.database.query(
        "select table_name, column_name from information_schema.columns"
        " where table_schema = 'marts' and table_name like '%%\\_shared'"
        " and data_type = 'bigint'"
    )
    assert len(columns) > 10
    for table, column in columns:
        bad = builds.published(
            f"select count(*) from marts.{table} where {column} % {COUNT_STEP} <> 0"
        )
        assert bad == [(0,)], (table, column)
    # hidden: the window's days without published invocations, a row or not
    visible_days = {
        row[0]
        for row in builds.published(
            "select date_day from marts.publisher_daily_shared"
            " where is_in_dashboard_window and invocations is not null"
        )
    }
    start, end = builds.published(
        "select window_start_date, window_end_date from marts.publisher_dashboard_shared"
    )[0]
    window = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    hidden_days = [day for day in window if day not in visible_days]
    tenants = {
        row[0]
        for row in builds.database.query(
            "select distinct tenant_id from raw.marketplace_events"
            " where event_type in ('agent_completed', 'agent_errored')"
            " and cast(event_ts at time zone 'utc' as date) = any(%s)",
            (hidden_days,),
        )
    }
    assert hidden_days and (len(tenants) == 0 or len(tenants) >= MIN_TENANTS)


def test_a_tool_or_a_day_of_fewer_tenants_than_the_threshold_is_not_a_row(builds: Builds):
    """Suppression hides existence: the operator marts have a row for the tool only `lonely`
    calls and for the days `lonely` or `night` alone were active; the publisher sees none."""
    tools = "select tool_name from marts.{} where publisher_id = 'pub-a' order by 1"
    assert exact(builds, tools.format("publisher_tool_usage")) == [(SOLO_TOOL,), (SHARED_TOOL,)]
    assert builds.published(tools.format("publisher_tool_usage_shared")) == [(SHARED_TOOL,)]
    days = "select date_day from marts.{} where publisher_id = 'pub-a'"
    thin_days = {LONELY_DAY, NEXT_DAY}
    assert thin_days <= {row[0] for row in exact(builds, days.format("publisher_daily"))}
    published = {row[0] for row in builds.published(days.format("publisher_daily_shared"))}
    assert published and not thin_days & published
    # and no published row is all nulls: a row is there only for what it publishes
    empty = builds.published(
        "select count(*) from marts.publisher_daily_shared"
        " where invocations is null and avg_response_time_ms is null and rating_count is null"
    )
    assert empty == [(0,)]


def test_the_publisher_login_cannot_read_the_exact_marts(builds: Builds):
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        builds.published("select * from marts.publisher_dashboard")
