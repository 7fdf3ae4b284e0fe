"""The documentation issues 26 and 27 ask for, checked against what exists.

- docs/alerts.md's freshness table names marts that exist, and every mart the operational
  claims rest on;
- the alerts service's systemd unit and the documented cron line use real `alerts` options;
- docs/opentelemetry.md says what issue 26 lists: exporter variables for Python and Node, the
  collector's `otlphttp` exporter, the dialects read, how tenant and user are set (the dbt
  vars that exist in dbt_project.yml), how cost is computed and the prices command.
"""

from __future__ import annotations

import re
import shlex

import click
import yaml

from loader.cli import main
from tests.conftest import REPO

DOCS = REPO / "docs"


def freshness_rows() -> dict[str, str]:
    """The first cell of each row of the 'How fresh each mart is' table -> the row."""
    text = (DOCS / "alerts.md").read_text()
    section = text.split("## How fresh each mart is", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][2:]
    return {row.split("|")[1].strip(): row for row in rows}


def test_the_freshness_table_names_existing_marts_and_the_operational_ones() -> None:
    rows = freshness_rows()
    models = {path.stem for path in (REPO / "models").rglob("*.sql")}
    named = {name for cell in rows for name in re.findall(r"`([a-z_]+)`", cell)}
    assert named - models == set()
    for mart in ("operational_health_live", "operational_health", "tenant_llm_metrics"):
        assert mart in named, mart
    assert all(len(row.split("|")) == 5 for row in rows.values())  # mart, how, how old


def alerts_args(command_line: str) -> list[str]:
    words = shlex.split(command_line)
    return words[words.index("alerts") + 1 :]


def parses(args: list[str]) -> None:
    """Raises click's usage error on an option `alerts` does not have (names only: the
    files the lines name need not exist here)."""
    command = main.get_command(click.Context(main), "alerts")
    assert command is not None
    command.make_parser(click.Context(command)).parse_args(args)


def test_the_systemd_unit_and_the_cron_line_run_real_alerts_options() -> None:
    unit = (REPO / "deploy" / "systemd" / "agent-loader-alerts.service").read_text()
    # ExecStart= and its continuation lines (each ending in a backslash)
    exec_start = re.search(r"^ExecStart=((?:.*\\\n)*.*)$", unit, re.MULTILINE)
    assert exec_start
    args = alerts_args(exec_start.group(1).replace("\\\n", " "))
    assert "--once" not in args and "--interval" in args  # the long-running mode
    parses(args)
    cron = next(
        line
        for line in (DOCS / "alerts.md").read_text().splitlines()
        if line.startswith("* * * * *") and "alerts" in line
    )
    args = alerts_args(cron.split(">>", 1)[0].split("&&", 1)[1])
    assert "--once" in args
    parses(args)


def test_the_opentelemetry_page_says_what_the_issue_lists() -> None:
    text = (DOCS / "opentelemetry.md").read_text()
    for needed in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "Authorization=Bearer",
        "**Node**",
        "otlphttp",
        "gen_ai.provider.name",
        "gen_ai.system",
        "gen_ai.usage.prompt_tokens",
        "llm.token_count",
        "openinference.span.kind",
        "traceloop",
        "enduser.id",
        "gen_ai.usage.cost",
        "llm.cost.total",
        "agent-loader prices",
    ):
        assert needed in text, needed
    variables = yaml.safe_load((REPO / "dbt_project.yml").read_text())["vars"]
    for var in ("otel_tenant_attribute", "otel_user_attributes"):
        assert var in variables and var in text, var
    # the collector configuration shown parses, and sends to this project's traces path
    [config] = [
        block for block in re.findall(r"```ya?ml\n(.*?)```", text, re.DOTALL) if "otlphttp" in block
    ]
    exporters = yaml.safe_load(config)["exporters"]
    assert [exporter["traces_endpoint"].endswith("/v1/traces") for exporter in exporters.values()
            if "traces_endpoint" in exporter] == [True]  # fmt: skip


def test_models_md_documents_the_llm_marts() -> None:
    text = (DOCS / "models.md").read_text()
    for mart in (
        "fct_llm_calls",
        "llm_cost_daily",
        "tenant_unit_economics_monthly",
        "llm_unpriced_models",
    ):
        assert f"`{mart}`" in text, mart
