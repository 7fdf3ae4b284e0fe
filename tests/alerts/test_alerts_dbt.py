"""An error spike from loaded events to a publisher's webhook, with no build in between.

As operated: the realtime cadence has built the views once; events are loaded
(`agent-loader load`), and `agent-loader alerts --once` evaluates the seed's rules on
`marts.operational_health_live`, which reads the live rollup. The spike's notification must
reach the publisher's receiver within 60 s of the load that brought its first bad event, and
only that publisher's receiver; the recovery resolves it.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from loader.alerts.demo import plant_spike_and_alert
from tests.alerts.receiver import running_receiver
from tests.conftest import Database, Dbt, run_loader
from tests.factories import marketplace_event, write_ndjson

pytestmark = pytest.mark.dbt

SPIKE = {"publisher_id": "pub-hot", "tenant_id": "tenant-1", "agent_id": "spiky"}
CALM = {"publisher_id": "pub-calm", "tenant_id": "tenant-2", "agent_id": "calm"}
KEY = "error_rate_critical/publisher:pub-hot/spiky"


def invocations(who: dict, count: int, errored: int, ending: datetime, tag: str) -> list[dict]:
    """`count` invocations one second apart up to `ending`, the first `errored` of them failed."""
    return [
        marketplace_event(
            id=f"{tag}-{index}",
            event_type="agent_errored" if index < errored else "agent_completed",
            timestamp=(ending - timedelta(seconds=count - index)).isoformat(),
            properties={"input_tokens": 10, "output_tokens": 5, "duration_ms": 200 + index},
            **who,
        )
        for index in range(count)
    ]


@pytest.fixture(scope="module")
def built(module_db: Database, dbt: Dbt) -> None:
    """The rules seed and the realtime views, built once (the views read raw when queried)."""
    dbt("seed", "--select", "alert_rules")
    dbt("build", "--selector", "realtime")


def test_spike_reaches_its_publisher_within_a_minute_and_resolves(
    module_db: Database, built: None, tmp_path: Path
) -> None:
    # pub-hot's own threshold row: resolved as soon as its rule is clear (no cool-down)
    module_db.query(
        "insert into seeds.alert_rules select rule_id, metric, comparison, threshold,"
        " window_minutes, min_samples, severity, for_minutes, 0, scope, 'pub-hot'"
        " from seeds.alert_rules where rule_id = 'error_rate_critical'"
    )
    now = datetime.now(timezone.utc)
    calm = invocations(CALM, 40, 1, now, "calm")
    run_loader(module_db, "load", str(write_ndjson(tmp_path / "0.ndjson", calm)))
    (tmp_path / "spike.secret").write_text("spike-secret")
    (tmp_path / "calm.secret").write_text("calm-secret")
    with running_receiver() as spike_hook, running_receiver() as calm_hook:
        routes = tmp_path / "routes.json"
        routes.write_text(
            '{"routes": ['
            f'{{"scope": "publisher", "subject_id": "pub-hot", "url": "{spike_hook.url}",'
            f' "secret_file": "{tmp_path / "spike.secret"}"}},'
            f'{{"scope": "publisher", "subject_id": "pub-calm", "url": "{calm_hook.url}",'
            f' "secret_file": "{tmp_path / "calm.secret"}"}}]}}'
        )
        # 30 invocations, 20 errored (0.67 > 0.25 on more than 20): the first bad event is
        # the first one loaded
        spike = invocations(SPIKE, 30, 20, datetime.now(timezone.utc), "spike")
        started = time.time()
        run_loader(module_db, "load", str(write_ndjson(tmp_path / "1.ndjson", spike)))
        run_loader(module_db, "alerts", "--once", "--routes", str(routes))
        assert spike_hook.alert_ids == [(KEY, "firing")]
        delivered_after = spike_hook.requests[0].received_at - started
        assert delivered_after < 60, delivered_after
        assert spike_hook.requests[0].signed_with(b"spike-secret")
        # the live mart, by hand: 20 of 30 errored; the completions took 220..229 ms, and
        # their p95 (discrete, nearest rank 10 of 10) is 229
        assert module_db.query(
            "select invocations, errored_invocations, error_rate, p95_response_time_ms"
            " from marts.operational_health_live"
            " where publisher_id = 'pub-hot' and window_minutes = 15"
        ) == [(30, 20, Decimal("0.66666667"), Decimal("229.000000"))]
        firing = spike_hook.requests[0].document["alert"]
        assert (firing["severity"], firing["metric"], firing["window_minutes"]) == (
            "critical",
            "error_rate",
            15,
        )

        # recovery: 200 completions after the spike: 20 / 230 < 0.25
        recovery = invocations(SPIKE, 200, 0, datetime.now(timezone.utc), "recovery")
        run_loader(module_db, "load", str(write_ndjson(tmp_path / "2.ndjson", recovery)))
        run_loader(module_db, "alerts", "--once", "--routes", str(routes))
        assert spike_hook.alert_ids == [(KEY, "firing"), (KEY, "resolved")]
        # an evaluation with nothing new sends nothing
        run_loader(module_db, "alerts", "--once", "--routes", str(routes))
    assert len(spike_hook.requests) == 2
    assert calm_hook.requests == []
    print(f"spike delivered {delivered_after:.1f} s after its load started")


def test_the_demo_spike_prints_the_alert_it_would_send(
    module_db: Database, built: None, tmp_path: Path
) -> None:
    lines = plant_spike_and_alert(module_db.dsn, tmp_path, webhook=None, secret=None)
    assert "  firing: error_rate_critical/publisher:pub-spike/pub-spike-agent" in lines
    [shown] = [json.loads(line) for line in lines if line.startswith("  {")]
    alert = shown["alert"]
    # 20 of 30 invocations errored: 0.66666667 > 0.25, on 30 >= 20 samples
    assert (alert["publisher_id"], alert["value"], alert["samples"]) == (
        "pub-spike",
        "0.66666667",
        30,
    )
