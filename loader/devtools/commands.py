"""The developer tools commands: generate, demo, embedded start / stop."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import click

from loader.alerts import demo as alerts_demo
from loader.console import (
    EXIT_INTERRUPTED,
    F,
    dsn_option,
    ignore_further_signals,
    json_option,
    project_dir_option,
    resolve_dsn,
)
from loader.devtools import demo, embedded
from loader.devtools.generate import Workload, generate
from loader.ingest import warehouse
from loader.operations import dbt


def _rates(values: tuple[str, ...], option: str) -> dict[str, float]:
    """Parse repeated NAME=RATE options into a dict, with a usage error on a bad one."""
    parsed = {}
    for value in values:
        name, _, rate = value.partition("=")
        try:
            parsed[name] = float(rate)
        except ValueError:
            raise click.BadParameter(
                f"expected NAME=RATE, got {value!r}", param_hint=option
            ) from None
        if not name or not 0 <= parsed[name] <= 1:
            raise click.BadParameter(
                f"expected NAME=RATE with RATE in [0, 1], got {value!r}", param_hint=option
            )
    return parsed


# The workload options `generate` and `demo` share: one definition each.
def days_option(default: int) -> Callable[[F], F]:
    """--days, whose default differs on purpose: `generate` spreads its events over 3 days;
    `demo` over 4, so the day of its planted cost spike has the 3 whole trailing days with
    calls that the spike rule's minimum sample asks for at any time of day (with 3, the first
    day is partial, and before about 19:00 UTC it can hold no call of the spiking tenant)."""
    return click.option(
        "--days",
        default=default,
        show_default=True,
        type=click.IntRange(min=1),
        help="Spread the events over this many days, ending now.",
    )


seed_option = click.option("--seed", default=7, show_default=True, help="Same seed, same events.")


def events_option(default: int, minimum: int, help: str) -> Callable[[F], F]:
    """--events, whose default differs on purpose: `generate` writes a workload sized for
    trying the loader (100,000); `demo` generates, loads and builds on a first run (its dbt
    build takes about a minute) and needs enough events for the anomalies it plants to show
    in the insights: 40,000 by default, at least 1,000."""
    return click.option(
        "--events",
        default=default,
        show_default=True,
        type=click.IntRange(min=minimum),
        help=help,
    )


@click.command(name="generate")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the batch files into (created if missing).",
)
@events_option(100_000, minimum=1, help="About how many events to write.")
@days_option(3)
@seed_option
@click.option(
    "--publishers",
    default=6,
    show_default=True,
    type=click.IntRange(min=1),
    help="Marketplace publishers pub-01, pub-02, ... (two agents each).",
)
@click.option(
    "--events-per-file",
    default=50_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rotate files (NDJSON, .gz, {events}) at this size.",
)
@click.option(
    "--duplicate-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of events written twice, as a retrying collector would.",
)
@click.option(
    "--late-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of events held back and written into later files.",
)
@click.option(
    "--error-rate",
    "error_rates",
    multiple=True,
    metavar="PUBLISHER=RATE",
    help="Plant an error rate for a publisher, e.g. pub-02=0.15. Repeatable.",
)
@click.option(
    "--slow-agent",
    "slow_agents",
    multiple=True,
    metavar="AGENT",
    help="Plant a slow agent (durations around 16 s), e.g. pub-03-agent-1.",
)
@click.option(
    "--failing-tool",
    "failing_tools",
    multiple=True,
    metavar="PUBLISHER/TOOL=RATE",
    help="Plant a tool failure rate for one publisher, e.g. pub-05/web_fetch=0.35.",
)
@click.option(
    "--unhappy",
    "unhappy",
    multiple=True,
    metavar="PUBLISHER",
    help="Plant unhappy users for a publisher (ratings mostly 1 and 2).",
)
@click.option(
    "--llm-spans",
    is_flag=True,
    help="Also write the model calls as OpenTelemetry GenAI spans (spans-*.jsonl, OTLP JSON).",
)
@click.option(
    "--cost-spike",
    "cost_spike_tenant",
    metavar="TENANT",
    help="With --llm-spans: plant a cost spike (the tenant's calls loop on the last day).",
)
@click.option(
    "--unpriced-agent",
    metavar="AGENT",
    help="With --llm-spans: this agent calls a model with no price in the price seed.",
)
@json_option
def generate_command(
    out: Path,
    events: int,
    days: int,
    seed: int,
    publishers: int,
    events_per_file: int,
    duplicate_rate: float,
    late_rate: float,
    error_rates: tuple[str, ...],
    slow_agents: tuple[str, ...],
    failing_tools: tuple[str, ...],
    unhappy: tuple[str, ...],
    llm_spans: bool,
    cost_spike_tenant: str | None,
    unpriced_agent: str | None,
    as_json: bool,
) -> None:
    """Write synthetic batch files of both event kinds, deterministic for a --seed.

    Conversation events and marketplace invocations, tool calls, feedback and installs,
    written as collectors write them. Options plant anomalies for the insights
    to find, and duplicate and late events for the loader and the incremental models.
    """
    tools = {}
    for key, rate in _rates(failing_tools, "--failing-tool").items():
        publisher, _, tool = key.partition("/")
        if not tool:
            raise click.BadParameter(
                f"expected PUBLISHER/TOOL=RATE, got {key!r}", param_hint="--failing-tool"
            )
        tools[(publisher, tool)] = rate
    workload = Workload(
        events=events,
        days=days,
        seed=seed,
        publishers=publishers,
        events_per_file=events_per_file,
        duplicate_rate=duplicate_rate,
        late_rate=late_rate,
        error_rate_by_publisher=_rates(error_rates, "--error-rate"),
        slow_agents=set(slow_agents),
        failing_tools=tools,
        unhappy_publishers=set(unhappy),
        llm_spans=llm_spans,
        cost_spike_tenant=cost_spike_tenant,
        unpriced_agent=unpriced_agent,
    )
    written = generate(
        workload, out, progress=lambda n: click.echo(f"  {n:,} events written ...", err=True)
    )
    if as_json:
        summary = {
            "events": written.events,
            "duplicates": written.duplicates,
            "late": written.late,
            "files": [str(path) for path in written.files],
            "spans": written.spans,
            "span_files": [str(path) for path in written.span_files],
        }
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(
        f"wrote {written.events:,} events ({written.duplicates:,} duplicates,"
        f" {written.late:,} late) in {len(written.files)} files under {out}"
        + (f", and {written.spans:,} spans in {len(written.span_files)} files" if llm_spans else "")
    )


@click.command(name="demo")
@dsn_option
@events_option(40_000, minimum=1000, help="Events to generate on the first run.")
@days_option(4)
@seed_option
@click.option(
    "--reset",
    is_flag=True,
    help="Start over: drop the raw and dbt schemas and the generated files first.",
)
@click.option(
    "--alert",
    is_flag=True,
    help="Then plant an error spike (pub-spike, in raw) and show the alert it triggers.",
)
@click.option(
    "--webhook",
    envvar="AGENT_ANALYTICS_WEBHOOK_URL",
    help="With --alert: send the alert here (secret: $AGENT_ANALYTICS_WEBHOOK_SECRET).",
)
@project_dir_option
@json_option
def demo_command(
    dsn: str | None,
    events: int,
    days: int,
    seed: int,
    reset: bool,
    alert: bool,
    webhook: str | None,
    project_dir: Path | None,
    as_json: bool,
) -> None:
    """Generate, load and build a few days of events, then print what the marts say, and
    build the operator's dashboards site when their npm package is installed.

    With --alert, it then loads an error spike and shows the alert it triggers (sent to
    --webhook, else printed); the spike stays in raw, so later builds show it.

    With no --dsn or PG* variables it runs on an embedded PostgreSQL under
    $AGENT_ANALYTICS_HOME (./.agent-analytics), which keeps running afterwards
    (`agent-loader embedded stop` stops it). A rerun reuses the generated files, so it
    loads nothing twice; --reset starts from scratch.
    """
    secret = os.environ.get("AGENT_ANALYTICS_WEBHOOK_SECRET", "").encode() or None
    if alert and webhook and not secret:
        raise click.UsageError("--webhook needs $AGENT_ANALYTICS_WEBHOOK_SECRET to sign with")
    is_embedded = not dsn and not warehouse.libpq_configured()
    project_dir = dbt.project_dir(project_dir)  # before starting a server it would not use
    resolved = resolve_dsn(dsn, start_embedded=True)
    say = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    try:
        result = demo.run(resolved, events, days, seed, reset, say=say, project=project_dir)
    except KeyboardInterrupt:
        ignore_further_signals()
        click.echo(
            "Error: interrupted: rerun `agent-loader demo` to continue (the files loaded stay"
            " loaded, none loads twice)",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    if not result.dbt_ok:
        raise click.ClickException("dbt build failed; see the lines above")
    if as_json:
        click.echo(json.dumps(demo.report_data(resolved), default=str, indent=2))
        return
    click.echo(demo.report(resolved))
    if alert:
        spike = alerts_demo.plant_spike_and_alert(resolved, result.landing.parent, webhook, secret)
        click.echo("\n".join(spike))
    click.echo(demo.dashboards_help(resolved, embedded.home()))
    click.echo(demo.connection_help(resolved, is_embedded))


@click.group(name="embedded")
def embedded_group() -> None:
    """Manage the embedded PostgreSQL, whose data lives under $AGENT_ANALYTICS_HOME."""


@embedded_group.command(name="start")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help=(
        f"TCP port on 127.0.0.1 [default: ${embedded.PORT_VARIABLE}, else"
        f" {embedded.DEFAULT_PORT}, which dbt's shipped profile reads the same way]."
    ),
)
@json_option
def embedded_start(port: int | None, as_json: bool) -> None:
    """Start the embedded server (or reuse it) and print its connection URI.

    It listens on 127.0.0.1 so that psql and BI tools can connect; dbt's shipped profile
    reaches it when no PG* variable is set (both read $AGENT_ANALYTICS_PORT, default 15432).
    A port in use is refused (exit 2), never swapped for another.
    """
    uri = embedded.start(port)
    if port and port != embedded.configured_port():
        click.echo(
            f"dbt's shipped profile reads ${embedded.PORT_VARIABLE} (default"
            f" {embedded.DEFAULT_PORT}): export {embedded.PORT_VARIABLE}={port} for dbt"
            " to reach this server",
            err=True,
        )
    if as_json:
        click.echo(json.dumps({"uri": uri, "pgdata": str(embedded.pgdata())}))
    else:
        click.echo(uri)


@embedded_group.command(name="stop")
@json_option
def embedded_stop(as_json: bool) -> None:
    """Stop the embedded server; its data stays for the next start."""
    stopped = embedded.stop()
    if as_json:
        click.echo(json.dumps({"stopped": stopped}))
    else:
        click.echo("stopped" if stopped else "not running")
