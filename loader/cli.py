"""`agent-loader`: the command line. It parses options, calls the library and prints.

Exit codes (also in docs/operating.md): 0 success; 1 the work found a problem (a file failed to
load, `validate` found invalid records, `--fail-on-quarantine` saw quarantined records);
2 usage error; 3 PostgreSQL unreachable, refused a statement or the connection was lost;
4 another load holds the lock (`--no-wait`); 5 the raw schema is missing or out of date
(run `agent-loader init`); 6 the load's privacy options or key differ from the warehouse's
stored privacy settings; 130 / 143 the load was stopped by SIGINT (Ctrl-C) / SIGTERM (the
file being loaded was rolled back and loads on the next run).
"""

from __future__ import annotations

import click

from loader import __version__
from loader.devtools.commands import demo_command, embedded_group, generate_command
from loader.ingest.commands import history, init, load, validate
from loader.live.commands import serve_command
from loader.operations.commands import (
    grant_publisher_command,
    grant_tenant_command,
    grants_command,
    purge_command,
    revoke_command,
    roles_command,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    serve_command,
    generate_command,
    demo_command,
    embedded_group,
):
    main.add_command(command)
