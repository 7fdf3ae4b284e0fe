"""The demo's alert: one planted error spike, loaded, evaluated, and the notification shown
(printed when no webhook is given, else sent to it)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from loader.alerts import deliver, service
from loader.alerts.routes import load_routes
from loader.ingest import warehouse
from loader.ingest.load import load_file

SPIKE = {"publisher_id": "pub-spike", "tenant_id": "tenant-spike", "agent_id": "pub-spike-agent"}


def spike_events(now: datetime, count: int = 30, errored: int = 20) -> list[dict]:
    """`count` invocations in the last `count` seconds, the first `errored` of them failed."""
    return [
        {
            "id": str(uuid.uuid4()),
            "event_type": "agent_errored" if index < errored else "agent_completed",
            "timestamp": (now - timedelta(seconds=count - index)).isoformat(),
            "properties": {
                "input_tokens": 100,
                "output_tokens": 40,
                "duration_ms": 800 + 10 * index,
                "cost_usd": 0.01,
                "tool_calls": [],
                **({"error_type": "upstream_timeout"} if index < errored else {}),
            },
            **SPIKE,
        }
        for index in range(count)
    ]


def plant_spike_and_alert(
    dsn: str, folder: Path, webhook: str | None, secret: bytes | None
) -> list[str]:
    """Write and load a spike, run one alerts cycle, and say what was (or would be) sent."""
    now = datetime.now(timezone.utc)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"alert-spike-{now:%Y%m%dT%H%M%S}.ndjson"
    path.write_text("".join(json.dumps(event) + "\n" for event in spike_events(now)))
    printed: list[str] = []
    routes = load_routes(None, webhook, secret)
    with warehouse.load_lock(dsn, wait=True), warehouse.connected(dsn) as conn:
        loaded = load_file(conn, path)
        result = service.run_cycle(conn, routes, deliver.Policy(), show=printed.append)
    lines = [
        "",
        f"Alerts: planted an error spike ({path.name}: {loaded.loaded} invocations of"
        f" {SPIKE['publisher_id']}, 20 errored), evaluated the rules (seeds/alert_rules.csv)",
    ]
    if not result.transitions:
        lines.append("  no new alert (the spike's alert may be firing already from a previous run)")
    for transition in result.transitions:
        lines.append(f"  {transition.kind}: {transition.facts['alert_id']}")
    if webhook:
        lines += [
            f"  sent to {webhook}: {attempt.error or f'HTTP {attempt.status_code}'}"
            for attempt in result.attempts
        ]
    else:
        lines.append("  no webhook given (--webhook URL): the notification it would send:")
        lines += [f"  {line}" for line in printed]
    return lines
