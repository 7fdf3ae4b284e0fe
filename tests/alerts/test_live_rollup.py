"""operational_health_live over the live rollup: the daily marts' definitions, to the bound.

Events loaded with `agent-loader load` (the rollup's triggers run in the load's COPY), then
every row of `marts.operational_health_live` is compared with the same metrics worked out
here in plain Python from the events themselves: invocations, completions, errors, error
rate and mean response time exactly; the nearest-rank percentiles (`percentile_disc`, as
`response_time_ms` in macros/metrics.sql) exactly when every duration is a whole
millisecond under 100 ms, and otherwise within the documented bound (under 1% above
100 ms) and always one of the window's own durations. Each window is the whole 1-minute
buckets from the one holding its start, as the row's `window_start_at` says.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from loader import limits
from tests.conftest import REPO, Database, Dbt, run_loader
from tests.factories import marketplace_event, write_ndjson

pytestmark = pytest.mark.dbt

BUCKET_SECONDS = 60
COLUMNS = (
    "publisher_id, agent_id, window_minutes, invocations, completed_invocations,"
    " errored_invocations, error_rate, avg_response_time_ms, p50_response_time_ms,"
    " p95_response_time_ms, p99_response_time_ms, window_start_at, window_end_at,"
    " last_finished_at"
)
# durations the contract accepts and the marts do not read as one (json_number): the
# triggers' reading must agree with staging's on each
ODD_DURATIONS = ['"12"', "-1", "1000000000001", "true", "null", "[5]", '{"v": 5}', "0.5", "1e3"]


@dataclass(frozen=True)
class Invocation:
    publisher_id: str
    agent_id: str
    is_success: bool
    duration_ms: Decimal | None
    finished_at: datetime


def bucket_of(at: datetime) -> datetime:
    epoch = at.timestamp()
    return datetime.fromtimestamp(epoch - epoch % BUCKET_SECONDS, timezone.utc)


def nearest_rank(durations: list[Decimal], fraction: float) -> Decimal | None:
    """percentile_disc: the ceil(fraction * n)-th smallest (at least the first)."""
    if not durations:
        return None
    ordered = sorted(durations)
    return ordered[max(math.ceil(fraction * len(ordered)), 1) - 1]


def rounded(value: Decimal | None, places: int) -> Decimal | None:
    if value is None:
        return None
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def expected_row(invocations: list[Invocation], start: datetime, end: datetime) -> dict:
    """The daily marts' definitions over the invocations of the window's whole buckets."""
    inside = [i for i in invocations if start <= bucket_of(i.finished_at) and i.finished_at <= end]
    errored = sum(not i.is_success for i in inside)
    timed = [i.duration_ms for i in inside if i.is_success and i.duration_ms is not None]
    mean = sum(timed, Decimal(0)) / len(timed) if timed else None
    return {
        "invocations": len(inside),
        "completed_invocations": len(inside) - errored,
        "errored_invocations": errored,
        "error_rate": rounded(Decimal(errored) / len(inside), 8) if inside else None,
        "avg_response_time_ms": rounded(mean, 6),
        "percentiles": [nearest_rank(timed, f) for f in (0.50, 0.95, 0.99)],
        "timed": set(timed),
        "last_finished_at": max((i.finished_at for i in inside), default=None),
    }


def load(db: Database, path: Path, invocations: list[Invocation], tag: str) -> None:
    events = []
    for n, i in enumerate(invocations):
        properties: dict[str, object] = {"input_tokens": 1, "output_tokens": 1}
        if i.duration_ms is not None:
            properties["duration_ms"] = (
                float(i.duration_ms) if i.duration_ms % 1 else int(i.duration_ms)
            )
        events.append(
            marketplace_event(
                id=f"{tag}-{n}",
                event_type="agent_completed" if i.is_success else "agent_errored",
                publisher_id=i.publisher_id,
                agent_id=i.agent_id,
                timestamp=i.finished_at.isoformat(),
                properties=properties,
            )
        )
    run_loader(db, "load", str(write_ndjson(path / f"{tag}.ndjson", events)))


def live_rows(db: Database, publisher_like: str) -> list[dict]:
    names = [name.strip() for name in COLUMNS.split(",")]
    rows = db.query(
        f"select {COLUMNS} from marts.operational_health_live where publisher_id like %s"
        " order by 1, 2, 3",
        (publisher_like,),
    )
    return [dict(zip(names, row, strict=True)) for row in rows]


def assert_counts_and_mean(row: dict, want: dict) -> None:
    for column in (
        "invocations",
        "completed_invocations",
        "errored_invocations",
        "error_rate",
        "avg_response_time_ms",
        "last_finished_at",
    ):
        assert row[column] == want[column], (row, column, want[column])


@pytest.fixture(scope="module")
def built(module_db: Database, dbt: Dbt) -> None:
    """Raw rows with odd durations (written past the contract, as any writer could), then the
    live view and the staging it is compared with, built once."""
    now = datetime.now(timezone.utc)
    for n, value in enumerate(ODD_DURATIONS):
        module_db.query(
            "insert into raw.marketplace_events (id, event_type, agent_id, publisher_id,"
            " tenant_id, event_ts, properties, batch_id, loaded_at)"
            " values (%s, 'agent_completed', 'odd', 'reading-1', 't', %s,"
            " cast(%s as jsonb), 1, now())",
            (f"odd-{n}", now - timedelta(minutes=3), f'{{"duration_ms": {value}}}'),
        )
    dbt("run", "--select", "+operational_health_live", "+stg_marketplace__events")


def test_whole_millisecond_durations_give_the_daily_definitions_exactly(
    module_db: Database, built: None, tmp_path: Path
) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    invocations = [
        Invocation(
            publisher_id=f"exact-{n % 3}",
            agent_id=f"agent-{n % 2}",
            is_success=n % 9 != 0,
            # a completion in 13 has no duration; errored ones have one, never read
            duration_ms=None if n % 13 == 0 else Decimal((n * 37) % 100),
            finished_at=now - timedelta(seconds=3.5 * n),
        )
        for n in range(1300)  # 75 minutes back: the 60-minute window's start is inside
    ]
    load(module_db, tmp_path, invocations, "exact")
    rows = live_rows(module_db, "exact-%")
    assert {(r["publisher_id"], r["agent_id"], r["window_minutes"]) for r in rows} == {
        (f"exact-{p}", f"agent-{a}", w) for p in range(3) for a in range(2) for w in (5, 15, 60)
    }
    for row in rows:
        start, end = row["window_start_at"], row["window_end_at"]
        assert start == bucket_of(end - timedelta(minutes=row["window_minutes"]))
        mine = [
            i
            for i in invocations
            if (i.publisher_id, i.agent_id) == (row["publisher_id"], row["agent_id"])
        ]
        want = expected_row(mine, start, end)
        assert_counts_and_mean(row, want)
        got = [row[f"p{p}_response_time_ms"] for p in (50, 95, 99)]
        assert got == [rounded(value, 6) for value in want["percentiles"]], row


def test_other_durations_are_within_the_bound_and_one_of_the_windows_own(
    module_db: Database, built: None, tmp_path: Path
) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    draw = random.Random(27)
    invocations = [
        Invocation(
            publisher_id="bound-1",
            agent_id=f"agent-{n % 2}",
            is_success=n % 7 != 0,
            duration_ms=Decimal(str(round(draw.uniform(0, 200.0) ** 2, 3))),
            finished_at=now - timedelta(seconds=2.0 * n),
        )
        for n in range(2000)
    ]
    load(module_db, tmp_path, invocations, "bound")
    rows = live_rows(module_db, "bound-%")
    assert len(rows) == 6
    inexact = 0
    for row in rows:
        mine = [i for i in invocations if i.agent_id == row["agent_id"]]
        want = expected_row(mine, row["window_start_at"], row["window_end_at"])
        assert_counts_and_mean(row, want)
        for p, exact in zip((50, 95, 99), want["percentiles"], strict=True):
            got = row[f"p{p}_response_time_ms"]
            assert got in {rounded(value, 6) for value in want["timed"]}, (row, p)
            bound = Decimal(1) if exact < 100 else exact / 100
            assert abs(got - exact) < bound, (row, p, exact)
            inexact += got != exact
    assert inexact > 0  # the data do fall inside wide bins: the bound is what was tested


def test_a_delete_is_counted_again_and_old_buckets_are_dropped(
    module_db: Database, built: None, tmp_path: Path
) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    invocations = [
        Invocation("erase-1", "agent-1", n % 2 == 0, Decimal(10 + n), now - timedelta(seconds=n))
        for n in range(40)
    ]
    load(module_db, tmp_path, invocations, "erase")
    # an erasure or purge deletes rows of raw: the buckets they were in are counted again
    module_db.query("delete from raw.marketplace_events where id in ('erase-0', 'erase-3')")
    kept = [i for n, i in enumerate(invocations) if n not in (0, 3)]
    [row] = [r for r in live_rows(module_db, "erase-%") if r["window_minutes"] == 5]
    assert_counts_and_mean(row, expected_row(kept, row["window_start_at"], row["window_end_at"]))
    # a bucket over two hours old is dropped by the next load, and an event that old is
    # never added
    module_db.query(
        "insert into raw.marketplace_live_rollup values (%s, 'erase-1', 'agent-1', true, 5,"
        " 1, 5, 5, 5, %s)",
        (bucket_of(now - timedelta(hours=3)), now - timedelta(hours=3)),
    )
    old = [Invocation("erase-1", "agent-1", True, Decimal(7), now - timedelta(hours=2, minutes=5))]
    load(module_db, tmp_path, old, "old")
    assert module_db.query(
        "select count(*) from raw.marketplace_live_rollup"
        " where bucket_at < now() - interval '2 hours'"
    ) == [(0,)]


def test_the_triggers_read_durations_as_staging_does(module_db: Database, built: None) -> None:
    rows = module_db.query(
        "select s.event_id, s.duration_ms, raw.marketplace_duration_ms(r.properties)"
        " from staging.stg_marketplace__events as s"
        " join raw.marketplace_events as r on r.id = s.event_id"
        " where r.publisher_id = 'reading-1' order by 1"
    )
    assert len(rows) == len(ODD_DURATIONS)
    assert [(event, staged) for event, staged, _ in rows] == [
        (event, read) for event, _, read in rows
    ]
    # only 0.5 and 1e3 are durations: the others are read as none
    assert sorted(str(read) for _, _, read in rows if read is not None) == ["0.5", "1000"]


def test_the_triggers_duration_bound_is_limits_py() -> None:
    migration = (REPO / "loader/ingest/migrations/0015_marketplace_live_rollup.sql").read_text()
    [bound] = re.findall(r"between 0 and (\S+)\n", migration)
    assert Decimal(bound) == limits.MAX_MILLISECONDS
