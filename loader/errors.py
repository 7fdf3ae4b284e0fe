"""Expected failures, each with the exit code docs/operating.md documents.

They are `click.ClickException`s so the CLI prints one line (`Error: ...`) and exits with
the code below, never a traceback. Exit code 1 ("the work found a problem") and 2 (usage)
come from the commands and from click itself.
"""

from __future__ import annotations

import click

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_DATABASE = 3
EXIT_LOCK_BUSY = 4
EXIT_SCHEMA = 5
EXIT_PRIVACY = 6
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C): 128 + 2
EXIT_TERMINATED = 143  # SIGTERM: 128 + 15


class NoConnection(click.ClickException):
    """No --dsn, no PG* variables and no running embedded server: a configuration error."""

    exit_code = EXIT_USAGE


class MissingExtra(click.ClickException):
    """The command needs an optional extra that is not installed (`load --lake`: [spark])."""

    exit_code = EXIT_USAGE


class DatabaseError(click.ClickException):
    """PostgreSQL cannot be reached, or refused a statement."""

    exit_code = EXIT_DATABASE


class LockBusy(click.ClickException):
    """Another loader holds the load lock (only with --no-wait)."""

    exit_code = EXIT_LOCK_BUSY


class SchemaOutOfDate(click.ClickException):
    """The raw schema is missing or older than this loader: run `agent-loader init`."""

    exit_code = EXIT_SCHEMA


class PrivacySettingsDiffer(click.ClickException):
    """The load's privacy options or key differ from the warehouse's stored settings."""

    exit_code = EXIT_PRIVACY


class EmbeddedPortUnavailable(click.ClickException):
    """The embedded server's port is taken or malformed: a configuration error."""

    exit_code = EXIT_USAGE


class MalformedConnectionString(click.ClickException):
    """--dsn ($AGENT_ANALYTICS_DSN) or $PGPORT cannot be parsed: usage, not a server down."""

    exit_code = EXIT_USAGE
