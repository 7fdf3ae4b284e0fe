"""The library's expected failures: plain exceptions that say what failed.

The library raises them and knows nothing of exit codes or click; the command line
(loader/console.py) translates each into one line (`Error: ...`) and the exit code
docs/operating.md documents, never a traceback.
"""

from __future__ import annotations


class LoaderError(Exception):
    """An expected failure; its message is the one line the command line prints."""


class NoConnection(LoaderError):
    """No --dsn, no PG* variables and no running embedded server: a configuration error."""


class MissingExtra(LoaderError):
    """The command needs an optional extra that is not installed (`load --lake`: [spark])."""


class DatabaseError(LoaderError):
    """PostgreSQL cannot be reached, or refused a statement."""


class LockBusy(LoaderError):
    """Another loader holds the load lock (only with --no-wait)."""


class SchemaOutOfDate(LoaderError):
    """The raw schema is missing or older than this loader: run `agent-loader init`."""


class PrivacySettingsDiffer(LoaderError):
    """The load's privacy options or key differ from the warehouse's stored settings."""


class EmbeddedPortUnavailable(LoaderError):
    """The embedded server's port is taken or malformed: a configuration error."""


class MalformedConnectionString(LoaderError):
    """--dsn ($AGENT_ANALYTICS_DSN) or $PGPORT cannot be parsed: usage, not a server down."""


class ProjectNotFound(LoaderError):
    """No dbt_project.yml where dbt would look (--project-dir, $DBT_PROJECT_DIR, the cwd)."""


class AlertRulesNotBuilt(LoaderError):
    """`alerts`: the rules seed or the live operational mart is not built: run dbt first."""


class AlertRoutesInvalid(LoaderError):
    """`alerts`: the routing file, or a webhook secret it names, is unusable: configuration."""


class DashboardsNotInstalled(LoaderError):
    """`dashboards build`: the dashboards' npm package (the chart library) is missing: install
    node and npm, then `npm ci`."""


class DashboardsBuildFailed(LoaderError):
    """`dashboards build`: the login reads no dashboard mart, or a page or its query is wrong."""
