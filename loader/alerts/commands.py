"""The `alerts` command: evaluate the alert rules and notify the receivers."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from loader.alerts import deliver, rules, service
from loader.alerts.routes import load_routes, read_secret
from loader.console import database_errors, dsn_option, json_option, resolve_dsn
from loader.ingest import warehouse


@click.command(name="alerts")
@click.option("--once", is_flag=True, help="Evaluate once, send, retry, exit (for cron).")
@click.option(
    "--interval",
    type=click.FloatRange(min=1),
    default=15,
    show_default=True,
    help="Seconds between evaluations when long-running (systemd).",
)
@click.option(
    "--webhook",
    envvar="AGENT_ANALYTICS_WEBHOOK_URL",
    help="The operator's receiver: every alert, with values (env AGENT_ANALYTICS_WEBHOOK_URL).",
)
@click.option(
    "--webhook-secret-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The --webhook signing secret; else $AGENT_ANALYTICS_WEBHOOK_SECRET.",
)
@click.option(
    "--webhook-format", type=click.Choice(["json", "slack"]), default="json", show_default=True
)
@click.option(
    "--routes",
    "routes_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="AGENT_ANALYTICS_ALERT_ROUTES",
    help="YAML or JSON routing file: each publisher's or tenant's webhook (docs/alerts.md).",
)
@click.option(
    "--metrics-relation",
    default=rules.METRICS_RELATION,
    show_default=True,
    help="The relation the rules read (the operational mart's columns).",
)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=5.0, show_default=True)
@click.option("--max-attempts", type=click.IntRange(min=1), default=5, show_default=True)
@click.option(
    "--backoff",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Seconds before the first retry; doubled for each next one.",
)
@json_option
@dsn_option
@database_errors
def alerts_command(
    once: bool,
    interval: float,
    webhook: str | None,
    webhook_secret_file: Path | None,
    webhook_format: str,
    routes_file: Path | None,
    metrics_relation: str,
    timeout: float,
    max_attempts: int,
    backoff: float,
    as_json: bool,
    dsn: str | None,
) -> None:
    """Evaluate the alert rules (seed `alert_rules`) on the operational and LLM cost marts
    and send each firing and resolved alert once, signed, to its receivers; without any
    receiver, print it. Needs `agent-loader init`, `dbt seed`, the realtime build and (for
    the tenant cost rules) the hourly one; run it as a member of the alerts role
    (`agent-loader roles`; docs/alerts.md).

    Each cycle's transitions and delivery attempts go to stderr, or with --json to stdout,
    one JSON document a line."""
    secret = None
    if webhook:
        secret = read_secret(
            str(webhook_secret_file) if webhook_secret_file else None,
            "AGENT_ANALYTICS_WEBHOOK_SECRET",
            "--webhook",
        )
    routes = load_routes(routes_file, webhook, secret, webhook_format)
    policy = deliver.Policy(timeout, max_attempts, backoff)
    report = _report_json if as_json else _report
    with warehouse.connected(resolve_dsn(dsn)) as conn:
        warehouse.require_current_schema(conn)
        if once:
            report(service.run_once(conn, routes, policy, metrics_relation))
        else:
            service.run_forever(conn, routes, policy, interval, metrics_relation, report=report)


def _report(result: service.CycleResult) -> None:
    for notice in result.notices:
        click.echo(notice, err=True)
    for transition in result.transitions:
        click.echo(
            f"{transition.kind}: {transition.facts['alert_id']} -> "
            f"{', '.join(transition.receivers)}",
            err=True,
        )
    for attempt in result.attempts:
        detail = attempt.error or f"HTTP {attempt.status_code}"
        click.echo(
            f"delivery {attempt.transition_id}-{attempt.receiver} attempt {attempt.attempt}:"
            f" {detail} ({attempt.outcome})",
            err=True,
        )


def _report_json(result: service.CycleResult) -> None:
    document = {
        "transitions": [
            {"transition_id": t.transition_id, "kind": t.kind, "alert_id": t.facts["alert_id"],
             "receivers": t.receivers}
            for t in result.transitions
        ],
        "attempts": [asdict(attempt) for attempt in result.attempts],
        "notices": result.notices,
    }  # fmt: skip
    click.echo(json.dumps(document, sort_keys=True))
