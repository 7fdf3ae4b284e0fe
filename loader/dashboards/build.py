"""Build one static dashboards site (dashboards/) as one login.

The site holds what its queries return when run as that login: row-level security and the
publisher marts' small-group suppression decide its rows, not the pages. A login that reads the
operator marts gets the operator site (every page); a publisher login gets the publisher portal
built from the `*_shared` marts only. The site is HTML pages, one JSON data file per page, the
renderer (dashboards/site/) and the chart library from npm: a browser needs no network.
"""

from __future__ import annotations

import html
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from string import Template

import psycopg2
import psycopg2.extensions

from loader.dashboards import pages
from loader.errors import DashboardsBuildFailed, DashboardsNotInstalled

PROJECT = Path(__file__).resolve().parents[2] / "dashboards"
"""The dashboards: pages/, sources/warehouse/, site/ and the npm package.json (chart library)."""

SOURCE = "warehouse"
"""The folder of the queries pages read as `warehouse.NAME`."""

OPERATOR_MART = "marts.platform_daily"
PUBLISHER_MART = "marts.publisher_dashboard_shared"


@dataclass(frozen=True)
class Site:
    """An audience's site: its pages (source file -> page file) and its queries."""

    audience: str
    pages: dict[str, str]
    queries: tuple[str, ...]


OPERATOR_PAGES = (
    "index.md",
    "publisher-portal.md",
    "conversations.md",
    "operational-health.md",
    "llm-cost.md",
)
SITES = {
    "operator": Site(
        audience="operator",
        pages={page: page for page in OPERATOR_PAGES},
        queries=tuple(sorted(path.name for path in (PROJECT / "sources" / SOURCE).glob("*.sql"))),
    ),
    "publisher": Site(
        audience="publisher",
        pages={"publisher-portal.md": "index.md"},
        queries=tuple(
            sorted(path.name for path in (PROJECT / "sources" / SOURCE).glob("publisher_*.sql"))
        ),
    ),
}
"""The operator sees every page; a publisher its portal only, as the site's home page."""


@dataclass(frozen=True)
class BuildResult:
    audience: str
    login: str
    out: Path
    build_seconds: float
    size_bytes: int
    data_files: int


CHART_LIBRARY = PROJECT / "node_modules" / "echarts" / "dist" / "echarts.min.js"
"""The chart library (npm, pinned by package-lock.json) every site carries: no network."""

ASSETS = PROJECT / "site"
"""The renderer's files copied into every site: app.js (draws the components), style.css."""


def check_chart_library() -> Path:
    """The chart library's file; DashboardsNotInstalled naming what to install when the
    dashboards' npm packages (and so maybe node and npm) are missing."""
    if CHART_LIBRARY.is_file():
        return CHART_LIBRARY
    raise DashboardsNotInstalled(
        "the dashboards' chart library is not installed: install Node.js 18+ and npm (Debian:"
        f" `apt-get install -y nodejs npm`), then run `npm ci` in {PROJECT} (docs/dashboards.md)"
    )


def connect_as(dsn: str, login: str | None) -> psycopg2.extensions.connection:
    """A connection with `dsn` (or the libpq variables) as `login`; the password is libpq's
    for that login (PGPASSWORD, ~/.pgpass)."""
    if login:
        return psycopg2.connect(dsn, user=login)
    return psycopg2.connect(dsn)


READABLE = """
select coalesce(bool_or(
    has_schema_privilege(namespaces.oid, 'usage') and has_table_privilege(classes.oid, 'select')
), false)
from pg_catalog.pg_class as classes
inner join pg_catalog.pg_namespace as namespaces on classes.relnamespace = namespaces.oid
where namespaces.nspname = %s and classes.relname = %s
"""
"""Whether the connected login can read a relation (false when it does not exist); from the
catalog, since `to_regclass` itself needs usage on the schema."""


def readable(cur: psycopg2.extensions.cursor, relation: str) -> bool:
    schema, name = relation.split(".")
    cur.execute(READABLE, (schema, name))
    row = cur.fetchone()
    return bool(row and row[0])


def audience_of(conn: psycopg2.extensions.connection) -> str:
    """`operator` when the connected login reads the operator marts, else `publisher` when it
    reads the publisher-facing marts; the database's grants decide, not an option."""
    with conn.cursor() as cur:
        operator, publisher = (readable(cur, mart) for mart in (OPERATOR_MART, PUBLISHER_MART))
    if operator:
        return "operator"
    if publisher:
        return "publisher"
    raise DashboardsBuildFailed(
        f"login {conn.info.user} reads neither {OPERATOR_MART} nor {PUBLISHER_MART}: build"
        " the marts (dbt build) and grant it a publisher (`agent-loader grant-publisher`) or"
        " the operator role"
    )


def json_value(value: object) -> object:
    """A query result value as JSON: numbers as numbers, times as ISO 8601 (UTC)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise TypeError(f"no JSON for {type(value).__name__}")


def page_sql(site: Site, page: str, name: str, query: pages.Query) -> str:
    """The SQL of a page's query: its `warehouse.X` as CTEs running sources/warehouse/X.sql."""
    missing = sorted(set(query.sources) - {Path(file).stem for file in site.queries})
    if missing:
        raise DashboardsBuildFailed(
            f"{page}: query {name} reads {', '.join(missing)}, not a query of the"
            f" {site.audience} site"
        )
    folder = PROJECT / "sources" / SOURCE
    sources = ",\n".join(
        f"{source} as (\n{(folder / f'{source}.sql').read_text()}\n)" for source in query.sources
    )
    body = pages.SOURCE.sub(r"\1", query.sql)
    return f"with {sources}\n{body}" if sources else body


def page_data(
    cur: psycopg2.extensions.cursor, site: Site, name: str, page: pages.Page
) -> dict[str, dict]:
    """Each query of `page` run as the connected login: its columns and rows."""
    data = {}
    for query_name, query in page.queries.items():
        try:
            cur.execute(page_sql(site, name, query_name, query))
        except psycopg2.Error as error:
            raise DashboardsBuildFailed(
                f"{name}: query {query_name} failed: {str(error).strip()}"
            ) from None
        columns = [column.name for column in cur.description or ()]
        data[query_name] = {"columns": columns, "rows": [list(row) for row in cur.fetchall()]}
    return data


def html_page(
    page: pages.Page, nav: list[tuple[str, str]], current: str, config: dict, footer: str
) -> str:
    links = "".join(
        f'<a href="{target}"{" aria-current=page" if target == current else ""}>'
        f"{html.escape(title)}</a>"
        for target, title in nav
    )
    return Template((ASSETS / "page.html").read_text()).substitute(
        title=html.escape(page.title),
        nav=links,
        body=page.body,
        # a <script> holds raw text: no entities, only "</script>" to keep out
        config=json.dumps(config).replace("<", "\\u003c"),
        footer=html.escape(footer),
    )


def write_site(conn: psycopg2.extensions.connection, site: Site, folder: Path, login: str) -> None:
    """The site's pages, data files and assets in `folder`."""
    parsed = {
        target: pages.parse(source, (PROJECT / "pages" / source).read_text())
        for source, target in site.pages.items()
    }
    nav = [(target.replace(".md", ".html"), page.title) for target, page in parsed.items()]
    built = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
    footer = f"The {site.audience} site, built {built} UTC with the data login {login} may read."
    (folder / "data").mkdir()
    with conn.cursor() as cur:
        cur.execute("set local timezone = 'UTC'")
        for target, page in parsed.items():
            stem = target.removesuffix(".md")
            data = page_data(cur, site, target, page)
            (folder / "data" / f"{stem}.json").write_text(json.dumps(data, default=json_value))
            filters = {name: query.filters for name, query in page.queries.items()}
            config = {"data": f"data/{stem}.json", "filters": filters}
            (folder / f"{stem}.html").write_text(
                html_page(page, nav, f"{stem}.html", config, footer)
            )
    for asset in ("app.js", "style.css"):
        shutil.copy(ASSETS / asset, folder / asset)
    shutil.copy(CHART_LIBRARY, folder / CHART_LIBRARY.name)


def size_of(folder: Path) -> tuple[int, int]:
    """Bytes under `folder` and its number of data files."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    return sum(path.stat().st_size for path in files), sum(
        1 for path in files if path.suffix == ".json"
    )


def build(dsn: str, login: str | None, out: Path | None) -> BuildResult:
    """Build the site of `login` (default: the connection's user) into `out`
    (default dashboards/sites/<login>/), replacing what was there. Every query runs in one
    read-only snapshot, so the pages agree with each other."""
    check_chart_library()
    started = time.monotonic()
    conn = connect_as(dsn, login)
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        audience = audience_of(conn)
        user = conn.info.user
        target = out or PROJECT / "sites" / user
        target.parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f".{audience}-", dir=target.parent))
        folder.chmod(0o755)  # a web server's user reads the site
        try:
            write_site(conn, SITES[audience], folder, user)
            if target.exists():
                shutil.rmtree(target)
            folder.rename(target)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        conn.close()
    size, data_files = size_of(target)
    return BuildResult(audience, user, target, time.monotonic() - started, size, data_files)
