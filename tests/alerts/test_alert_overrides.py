"""Per-publisher rule rows override the shipped defaults for that publisher only.

test_alerts.py tries a tenant's override (budget at 95%); this is the publisher side: a row of
`seeds.alert_rules` with `subject_id` set replaces the default row of the same rule for that
publisher (threshold and minimum samples), and every other publisher keeps the default.
"""

from __future__ import annotations

from datetime import datetime, timezone

from loader.alerts import deliver, service
from loader.alerts.routes import Routes
from tests.alerts.planted import Pair, plant_metrics, plant_rules
from tests.conftest import Database

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
# error_rate_critical (shipped): > 0.25 on at least 20 invocations, fires at once
OVERRIDES = [
    "error_rate_critical,error_rate,>,0.5,15,20,critical,0,10,publisher,pub-lax",
    "error_rate_critical,error_rate,>,0.1,15,20,critical,0,10,publisher,pub-strict",
    "error_rate_critical,error_rate,>,0.25,15,5,critical,0,10,publisher,pub-small",
]


def test_a_publishers_own_row_replaces_the_default_for_it_alone(db: Database) -> None:
    plant_rules(db, OVERRIDES)
    plant_metrics(
        db,
        [
            Pair("pub-default", invocations=40, errored=12),  # 0.30 > 0.25: fires
            Pair("pub-quiet", invocations=40, errored=6),  # 0.15: under the default
            Pair("pub-lax", invocations=40, errored=12),  # 0.30, its own 0.5: quiet
            Pair("pub-strict", invocations=40, errored=6),  # 0.15, its own 0.1: fires
            Pair("pub-small", invocations=10, errored=5),  # 10 >= its own 5 samples: fires
            Pair("pub-few", invocations=10, errored=5),  # 10 < the default 20: quiet
        ],
    )
    conn = db.connect()
    try:
        result = service.run_cycle(
            conn, Routes({}), deliver.Policy(), now=T0, show=lambda line: None
        )
    finally:
        conn.close()
    fired = {
        t.facts["publisher_id"]: t.facts["threshold"]
        for t in result.transitions
        if t.kind == "firing" and t.facts["rule_id"] == "error_rate_critical"
    }
    assert fired == {"pub-default": "0.25", "pub-strict": "0.1", "pub-small": "0.25"}
    assert {t.facts["rule_id"] for t in result.transitions} == {"error_rate_critical"}
