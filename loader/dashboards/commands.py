"""The `dashboards` command group: build the static sites (docs/dashboards.md)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from loader.console import database_errors, dsn_option, json_option, resolve_dsn
from loader.dashboards import build as sites


@click.group(name="dashboards")
def dashboards_group() -> None:
    """Static dashboards sites, one per audience, scoped by the database."""


@dashboards_group.command(name="build")
@click.option(
    "--as",
    "login",
    help="Run the site's queries as this login (default: the connection's user). Its grants"
    " decide the site: the operator's every page, a publisher's its own portal.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the static site goes (default: dashboards/sites/LOGIN); replaced if present.",
)
@json_option
@dsn_option
@database_errors
def build_command(login: str | None, out: Path | None, as_json: bool, dsn: str | None) -> None:
    """Run the pages' queries as LOGIN, write the static site (HTML, JSON data, the chart
    library) and print where it is; serve it with any static file server."""
    result = sites.build(resolve_dsn(dsn), login, out)
    if as_json:
        click.echo(json.dumps({**asdict(result), "out": str(result.out)}))
        return
    click.echo(
        f"built the {result.audience} site as {result.login} in {result.out}"
        f" ({result.size_bytes / 1e6:.1f} MB, {result.data_files} data files;"
        f" {result.build_seconds:.1f}s)"
    )
    click.echo(f"open it: python3 -m http.server -d {result.out} -b 127.0.0.1 8000")
