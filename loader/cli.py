"""`agent-loader`: the command line. It parses options, calls the library and prints.

Exit codes: 0 success, 1 a problem found, 2 usage, 3 PostgreSQL, 4 lock held, 5 schema out of
date, 6 privacy settings differ, 130 / 143 stopped by a signal; each one's cases are listed once,
in docs/operating.md ("Exit codes").
"""

from __future__ import annotations

import click

from loader import __version__
from loader.alerts.commands import alerts_command
from loader.console import Commands
from loader.dashboards.commands import dashboards_group
from loader.devtools.commands import demo_command, embedded_group, generate_command
from loader.ingest.commands import history, init, load, validate
from loader.live.commands import serve_command
from loader.operations.commands import (
    grant_publisher_command,
    grant_tenant_command,
    grants_command,
    prices_command,
    purge_command,
    revoke_command,
    roles_command,
)


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="agent-loader")
def main() -> None:
    """Load agent event batches into PostgreSQL, validated and exactly once.

    Typical cron use: `agent-loader init` once, then `agent-loader load DIR` every minute.
    """


for command in (
    init,
    load,
    validate,
    history,
    purge_command,
    roles_command,
    grant_tenant_command,
    grant_publisher_command,
    revoke_command,
    grants_command,
    prices_command,
    serve_command,
    generate_command,
    demo_command,
    embedded_group,
    alerts_command,
    dashboards_group,
):
    main.add_command(command)
