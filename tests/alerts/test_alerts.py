"""`agent-loader alerts` on a real PostgreSQL and real HTTP receivers on 127.0.0.1.

The rules are the shipped seed's; the operational mart's rows are planted (planted.py), so
each test chooses the metric values and, through the library, the evaluation times. The
state machine, the routing, the delivery log and the once-only guarantees are what is tested;
test_alerts_dbt.py feeds the same command from loaded events through the dbt build.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from loader.alerts import deliver, service
from loader.alerts.routes import OPERATOR, Receiver, Routes, load_routes
from tests.alerts.planted import (
    Pair,
    TenantMetric,
    plant_metrics,
    plant_rules,
    plant_tenant_metrics,
)
from tests.alerts.receiver import running_receiver
from tests.conftest import REPO, Database, run_loader

SECRET = b"operator-secret"
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
# error_rate_warning (shipped): > 0.05 on at least 50 invocations, for 5 min, cooldown 15
BREACH = Pair("pub-flap", invocations=100, errored=10)
CLEAR = Pair("pub-flap", invocations=100, errored=1)


def operator_routes(url: str) -> Routes:
    return Routes({OPERATOR: Receiver(OPERATOR, url, SECRET, "json", OPERATOR)})


def alerts_cli(db: Database, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "loader", "alerts", "--once", *args],
        env={**db.env, "AGENT_ANALYTICS_WEBHOOK_SECRET": SECRET.decode(), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def finished(process: subprocess.Popen, timeout: float = 60) -> str:
    _, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return err


def test_flapping_metric_notifies_once_per_episode(db: Database) -> None:
    plant_rules(db)
    conn = db.connect()
    policy = deliver.Policy(timeout_seconds=5, max_attempts=3, backoff_seconds=0.1)
    kinds: list[tuple[int, str]] = []
    # minute: breaching? 0-19 flapping (never 5 minutes in a row), 20-25 breaching,
    # 26-45 flapping (never 15 minutes clear), 46-61 clear: clear since minute 45 (odd), so
    # resolved at minute 60
    timeline = (
        [(minute, minute % 2 == 0) for minute in range(20)]
        + [(minute, True) for minute in range(20, 26)]
        + [(minute, minute % 2 == 0) for minute in range(26, 46)]
        + [(minute, False) for minute in range(46, 62)]
    )
    with running_receiver() as receiver:
        for minute, breaching in timeline:
            plant_metrics(db, [BREACH if breaching else CLEAR])
            result = service.run_cycle(
                conn, operator_routes(receiver.url), policy, now=T0 + timedelta(minutes=minute)
            )
            kinds += [(minute, transition.kind) for transition in result.transitions]
    conn.close()
    assert kinds == [(25, "firing"), (60, "resolved")]
    key = "error_rate_warning/publisher:pub-flap/agent-1"
    assert receiver.alert_ids == [(key, "firing"), (key, "resolved")]
    assert all(request.signed_with(SECRET) for request in receiver.requests)
    firing = receiver.requests[0].document["alert"]
    assert (firing["value"], firing["samples"], firing["threshold"]) == ("0.10000000", 100, "0.05")


def test_failing_receiver_is_retried_with_backoff_and_logged(db: Database) -> None:
    plant_rules(db)
    plant_metrics(db, [Pair("pub-a", invocations=40, errored=20)])  # error_rate_critical
    conn = db.connect()
    policy = deliver.Policy(timeout_seconds=5, max_attempts=5, backoff_seconds=0.3)
    with running_receiver(statuses=[500, 500]) as receiver:
        service.run_once(conn, operator_routes(receiver.url), policy, retry_within=10)
    conn.close()
    assert [len(receiver.requests)] == [3]
    first, second, third = (request.received_at for request in receiver.requests)
    assert second - first >= 0.3 and third - second >= 0.6  # 0.3 s, then doubled
    assert len({request.body for request in receiver.requests}) == 1
    log = db.query(
        "select attempt, status_code, error from alerts.delivery_attempts order by attempt"
    )
    assert log == [(1, 500, None), (2, 500, None), (3, 200, None)]
    assert db.query("select status, attempts from alerts.deliveries") == [("delivered", 3)]


def test_receiver_timing_out_is_retried_then_given_up(db: Database) -> None:
    plant_rules(db)
    plant_metrics(db, [Pair("pub-a", invocations=40, errored=20)])
    conn = db.connect()
    policy = deliver.Policy(timeout_seconds=0.3, max_attempts=2, backoff_seconds=0.1)
    with running_receiver(hang_seconds=1.5) as receiver:
        service.run_once(conn, operator_routes(receiver.url), policy, retry_within=10)
    conn.close()
    assert len(receiver.requests) == 2
    log = db.query("select attempt, status_code, error from alerts.delivery_attempts order by 1")
    assert [(attempt, code) for attempt, code, _ in log] == [(1, None), (2, None)]
    assert all("timed out" in error for _, _, error in log), log
    assert db.query("select status, attempts from alerts.deliveries") == [("failed", 2)]


def test_restart_mid_delivery_sends_no_duplicate(db: Database) -> None:
    plant_rules(db)
    plant_metrics(db, [Pair("pub-a", invocations=40, errored=20)])
    with running_receiver(hang_seconds=30) as receiver:
        first = alerts_cli(db, "--webhook", receiver.url, "--timeout", "60")
        assert receiver.got_request.wait(30), first.communicate()
        first.send_signal(signal.SIGKILL)
        first.wait()
        receiver.hang_seconds = 0
        deadline = time.monotonic() + 10  # the killed client's backend ends
        while db.scalar(
            "select count(*) from pg_stat_activity where pid in"
            " (select sender_pid from alerts.deliveries)"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        finished(alerts_cli(db, "--webhook", receiver.url))
        finished(alerts_cli(db, "--webhook", receiver.url))
    assert len(receiver.requests) == 1
    assert db.query("select status, attempts from alerts.deliveries") == [("interrupted", 1)]
    [(error,)] = db.query("select error from alerts.delivery_attempts")
    assert error.startswith("interrupted")
    assert db.scalar("select count(*) from alerts.transitions") == 1


def test_each_publisher_receives_only_its_own_alerts(db: Database, tmp_path: Path) -> None:
    plant_rules(db)
    plant_metrics(
        db,
        [
            Pair("pub-a", invocations=40, errored=20),
            Pair("pub-b", invocations=30, errored=30),
            Pair("pub-c", invocations=40, errored=20),  # no route: the operator only
        ],
    )
    (tmp_path / "b.secret").write_text("secret-b\n")
    with (
        running_receiver() as operator,
        running_receiver() as receiver_a,
        running_receiver() as receiver_b,
    ):
        routes = tmp_path / "routes.yml"
        routes.write_text(
            "routes:\n"
            f"  - {{scope: publisher, subject_id: pub-a, url: '{receiver_a.url}',"
            " secret_env: PUB_A_SECRET}\n"
            f"  - {{scope: publisher, subject_id: pub-b, url: '{receiver_b.url}',"
            f" format: slack, secret_file: '{tmp_path / 'b.secret'}'}}\n"
        )
        secret_a = {"PUB_A_SECRET": "secret-a"}
        finished(alerts_cli(db, "--webhook", operator.url, "--routes", str(routes), env=secret_a))
    assert receiver_a.alert_ids == [("error_rate_critical/publisher:pub-a/agent-1", "firing")]
    alert_a = receiver_a.requests[0].document["alert"]
    assert alert_a["publisher_id"] == "pub-a"
    assert "value" not in alert_a and "samples" not in alert_a
    assert receiver_a.requests[0].signed_with(b"secret-a")
    [slack] = receiver_b.requests
    assert slack.signed_with(b"secret-b")
    assert list(slack.document) == ["text"]
    assert "pub-b" in slack.document["text"] and "pub-a" not in slack.document["text"]
    assert "now " not in slack.document["text"]  # no value for the publisher
    seen = [request.document["alert"] for request in operator.requests]
    values = {alert["publisher_id"]: alert["value"] for alert in seen}
    assert len(seen) == 3
    assert values == {"pub-a": "0.50000000", "pub-b": "1.00000000", "pub-c": "0.50000000"}


def test_two_instances_deliver_each_transition_once(db: Database) -> None:
    plant_rules(db)
    publishers = [f"pub-{number:02d}" for number in range(12)]
    plant_metrics(db, [Pair(publisher, invocations=40, errored=20) for publisher in publishers])
    with running_receiver(hang_seconds=0.2) as receiver:
        both = [alerts_cli(db, "--webhook", receiver.url) for _ in range(2)]
        errors = [finished(process) for process in both]
    ids = [alert_id for alert_id, _ in receiver.alert_ids]
    assert sorted(ids) == sorted(
        f"error_rate_critical/publisher:{publisher}/agent-1" for publisher in publishers
    )
    # both instances sent some (they shared the work) or one sent all; never one twice
    assert sum(error.count("(delivered)") for error in errors) == len(publishers)
    assert db.scalar("select count(*) from alerts.delivery_attempts") == len(publishers)


def test_no_receiver_prints_the_alert(db: Database) -> None:
    plant_rules(db)
    plant_metrics(db, [Pair("pub-a", invocations=40, errored=20)])
    process = subprocess.run(
        [sys.executable, "-m", "loader", "alerts", "--once"],
        env={k: v for k, v in db.env.items() if not k.startswith("AGENT_ANALYTICS_WEBHOOK")},
        capture_output=True, text=True, cwd=REPO, check=True,
    )  # fmt: skip
    [line] = process.stdout.splitlines()
    alert = json.loads(line)["alert"]
    assert (alert["rule_id"], alert["publisher_id"], alert["value"]) == (
        "error_rate_critical", "pub-a", "0.50000000",
    )  # fmt: skip


def test_unbuilt_rules_and_a_secret_in_the_routing_file_are_one_line_errors(
    db: Database, tmp_path: Path
) -> None:
    unbuilt = run_loader(db, "alerts", "--once", check=False)
    assert unbuilt.returncode == 5
    assert "seeds.alert_rules is missing: run `dbt seed`" in unbuilt.stderr
    routes = tmp_path / "routes.json"
    routes.write_text(
        '{"routes": [{"scope": "publisher", "subject_id": "p", "url": "http://127.0.0.1:9/",'
        ' "secret": "inline"}]}'
    )
    inline = run_loader(db, "alerts", "--once", "--routes", str(routes), check=False)
    assert inline.returncode == 2
    assert "put the secret in secret_file or secret_env" in inline.stderr
    assert "Traceback" not in unbuilt.stderr + inline.stderr


NOVEMBER, DECEMBER = date(2026, 11, 1), date(2026, 12, 1)


def budget(tenant_id: str, used: float, month: date = NOVEMBER) -> TenantMetric:
    """The month's LLM cost over the tenant's budget, on 40 LLM calls."""
    return TenantMetric(tenant_id, "llm_budget_used_rate", used, 40, month)


def tenant_routes(tmp_path: Path, urls: dict[str, str]) -> Path:
    """A routing file giving each tenant of `urls` its receiver, secret `secret-<tenant>`."""
    lines = ["routes:"]
    for tenant, url in urls.items():
        (tmp_path / f"{tenant}.secret").write_text(f"secret-{tenant}\n")
        lines.append(
            f"  - {{scope: tenant, subject_id: {tenant}, url: '{url}',"
            f" secret_file: '{tmp_path / f'{tenant}.secret'}'}}"
        )
    path = tmp_path / "routes.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_budget_breach_reaches_only_its_tenant_and_resolves_when_the_month_turns(
    db: Database, tmp_path: Path
) -> None:
    # tenant-b's own 80% row: it is told at 95% only
    plant_rules(
        db, ["llm_budget_80_percent,llm_budget_used_rate,>=,0.95,,1,warning,0,0,tenant,tenant-b"]
    )
    plant_metrics(db, [])
    conn = db.connect()
    policy = deliver.Policy(timeout_seconds=5, max_attempts=2, backoff_seconds=0.1)
    with (
        running_receiver() as operator,
        running_receiver() as hook_a,
        running_receiver() as hook_b,
    ):
        path = tenant_routes(tmp_path, {"tenant-a": hook_a.url, "tenant-b": hook_b.url})
        routes = load_routes(path, operator.url, SECRET)
        # November: a at 105% (both rules), b at 90% (under its own 95%), c at 85% (no route)
        plant_tenant_metrics(db, [budget("tenant-a", 1.05), budget("tenant-b", 0.9),
                                  budget("tenant-c", 0.85)])  # fmt: skip
        november = service.run_cycle(conn, routes, policy, now=T0)
        # the first evaluation on December's rows: a spent 10% so far, b and c nothing yet
        plant_tenant_metrics(db, [budget("tenant-a", 0.1, DECEMBER)])
        december = service.run_cycle(conn, routes, policy, now=T0 + timedelta(days=1))
    conn.close()
    exceeded, eighty = (
        "llm_budget_exceeded/tenant:tenant-a/",
        "llm_budget_80_percent/tenant:tenant-a/",
    )
    assert sorted(hook_a.alert_ids) == sorted(
        [(exceeded, "firing"), (eighty, "firing"), (exceeded, "resolved"), (eighty, "resolved")]
    )
    assert hook_b.requests == []
    assert all(request.signed_with(b"secret-tenant-a") for request in hook_a.requests)
    assert all(b"tenant-b" not in r.body and b"tenant-c" not in r.body for r in hook_a.requests)
    alerts = [request.document["alert"] for request in hook_a.requests]
    [firing] = [
        a for a in alerts if (a["rule_id"], a["status"]) == ("llm_budget_exceeded", "firing")
    ]
    # what tenant-a reads in its own row of tenant_llm_metrics: the value and the sample
    assert (firing["tenant_id"], firing["publisher_id"], firing["agent_id"]) == (
        "tenant-a",
        None,
        None,
    )
    assert (firing["value"], firing["samples"], firing["threshold"]) == ("1.05000000", 40, "1")
    assert (firing["severity"], firing["period_start_date"]) == ("critical", "2026-11-01")
    assert len(november.transitions) == 3 and len(december.transitions) == 3
    told = sorted((a["alert"]["tenant_id"], a["alert"]["status"]) for a in
                  (request.document for request in operator.requests))  # fmt: skip
    assert told == [("tenant-a", "firing")] * 2 + [("tenant-a", "resolved")] * 2 + [
        ("tenant-c", "firing"),
        ("tenant-c", "resolved"),
    ]


def test_cost_spike_needs_its_trailing_days_and_resolves_after_its_cool_down(
    db: Database,
) -> None:
    plant_rules(db)
    plant_metrics(db, [])
    conn = db.connect()
    routes = Routes({})
    policy = deliver.Policy()
    day = date(2026, 12, 7)

    def evaluate(ratio: float | None, trailing_days: int, minutes: int) -> list[str]:
        metrics = [] if ratio is None else [
            TenantMetric("tenant-a", "llm_cost_spike_ratio", ratio, trailing_days, day, "day")
        ]  # fmt: skip
        plant_tenant_metrics(db, metrics)
        result = service.run_cycle(
            conn, routes, policy, now=T0 + timedelta(minutes=minutes), show=lambda line: None
        )
        return [f"{t.kind}:{t.facts['rule_id']}" for t in result.transitions]

    # llm_cost_spike (shipped): ratio > 3 on at least 3 trailing days; cool-down 60 min
    assert evaluate(5.0, 2, 0) == []  # two trailing days: too few
    assert evaluate(3.0, 14, 1) == []  # not above 3
    assert evaluate(3.5, 14, 2) == ["firing:llm_cost_spike"]
    assert evaluate(None, 0, 3) == []  # the next day: no spike row, clear since minute 3
    assert evaluate(None, 0, 62) == []
    assert evaluate(None, 0, 63) == ["resolved:llm_cost_spike"]
    conn.close()


def test_tenant_rules_wait_for_the_cost_metrics_mart(db: Database) -> None:
    plant_rules(db)
    plant_metrics(db, [Pair("pub-a", invocations=40, errored=20)])
    result = run_loader(db, "alerts", "--once", "--json")
    document = json.loads(result.stdout.splitlines()[-1])
    assert document["notices"] == [
        "tenant rules not evaluated: marts.tenant_llm_metrics is missing"
        " (run `dbt build --selector hourly`)"
    ]
    assert [t["alert_id"] for t in document["transitions"]] == [
        "error_rate_critical/publisher:pub-a/agent-1"
    ]
