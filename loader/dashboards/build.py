"""Build one static dashboards site (Evidence, dashboards/) as one login.

The site holds what its queries return when run as that login: row-level security and the
publisher marts' small-group suppression decide its rows, not the pages. A login that reads the
operator marts gets the operator site (every page); a publisher login gets the publisher portal
built from the `*_shared` marts only. Evidence runs in a private copy of the project's pages and
queries (under dashboards/.build/), so builds of different sites never share files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extensions

from loader.errors import DashboardsBuildFailed, DashboardsNotInstalled

PROJECT = Path(__file__).resolve().parents[2] / "dashboards"
"""The Evidence project: package.json, package-lock.json, pages/ and sources/warehouse/."""

SOURCE = "warehouse"
"""The Evidence source every page queries; its connection comes from EVIDENCE_SOURCE__ vars."""

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
    sources_seconds: float
    build_seconds: float
    size_bytes: int
    parquet_files: int


def check_node() -> str:
    """The npm executable; DashboardsNotInstalled naming what to install when node, npm or the
    project's packages are missing."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        raise DashboardsNotInstalled(
            "the dashboards need Node.js 18+ and npm: install them (Debian: `apt-get install -y"
            f" nodejs npm`), then run `npm ci` in {PROJECT} (docs/dashboards.md)"
        )
    if not (PROJECT / "node_modules" / "@evidence-dev" / "evidence").is_dir():
        raise DashboardsNotInstalled(
            f"the dashboards' npm packages are not installed: run"
            f" `SEND_ANONYMOUS_USAGE_STATS=no npm ci` in {PROJECT} (docs/dashboards.md)"
        )
    return npm


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


def login_site(dsn: str, login: str | None) -> tuple[str, dict[str, str]]:
    """The audience of `login` and its connection parameters (for Evidence): `operator` when
    it reads the operator marts, else `publisher` when it reads the publisher-facing marts;
    the database's grants decide, not an option."""
    conn = connect_as(dsn, login)
    try:
        with conn.cursor() as cur:
            operator, publisher = (readable(cur, mart) for mart in (OPERATOR_MART, PUBLISHER_MART))
        info = conn.info
        connection = {
            "host": info.host,
            "port": str(info.port),
            "database": info.dbname,
            "user": info.user,
            "password": info.password or "",
        }
    finally:
        conn.close()
    if operator:
        return "operator", connection
    if publisher:
        return "publisher", connection
    raise DashboardsBuildFailed(
        f"login {connection['user']} reads neither {OPERATOR_MART} nor {PUBLISHER_MART}: build"
        " the marts (dbt build) and grant it a publisher (`agent-loader grant-publisher`) or"
        " the operator role"
    )


def stage(site: Site, folder: Path) -> None:
    """Write the Evidence project of `site` into `folder` (pages and queries of its audience)."""
    for name in ("package.json", "evidence.config.yaml"):
        shutil.copy(PROJECT / name, folder / name)
    (folder / "pages").mkdir()
    for source, target in site.pages.items():
        shutil.copy(PROJECT / "pages" / source, folder / "pages" / target)
    queries = folder / "sources" / SOURCE
    queries.mkdir(parents=True)
    shutil.copy(PROJECT / "sources" / SOURCE / "connection.yaml", queries / "connection.yaml")
    for query in site.queries:
        shutil.copy(PROJECT / "sources" / SOURCE / query, queries / query)


def evidence_env(connection: dict[str, str]) -> dict[str, str]:
    """The environment of Evidence's commands: the source's connection, telemetry off."""
    env = dict(os.environ)
    for name, value in connection.items():
        env[f"EVIDENCE_SOURCE__{SOURCE}__{name}"] = value
    env["SEND_ANONYMOUS_USAGE_STATS"] = "no"
    # npm looks up `evidence` in the node_modules/.bin of the folder and its parents.
    env["PATH"] = f"{PROJECT / 'node_modules' / '.bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


STEP_TIMEOUT_SECONDS = 600.0
"""The longest one Evidence step may take: a step waiting on the network (DuckDB fetching
an extension where there is none) fails instead of hanging."""


def run_npm(npm: str, script: str, folder: Path, env: dict[str, str]) -> float:
    """`npm run SCRIPT` in `folder`; its seconds, or DashboardsBuildFailed with its output."""
    started = time.monotonic()
    try:
        result = subprocess.run(
            [npm, "run", script],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=STEP_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as expired:
        output = expired.stdout or b""
        text = output.decode() if isinstance(output, bytes) else output
        tail = text.strip().splitlines()[-5:]
        raise DashboardsBuildFailed(
            f"`npm run {script}` did not finish in {STEP_TIMEOUT_SECONDS:.0f}s (Evidence's"
            " DuckDB fetches its parquet extension from extensions.duckdb.org; see"
            " docs/dashboards.md):\n" + "\n".join(tail)
        ) from None
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
        raise DashboardsBuildFailed(f"`npm run {script}` failed:\n" + "\n".join(tail))
    return time.monotonic() - started


def size_of(folder: Path) -> tuple[int, int]:
    """Bytes under `folder` and its number of Parquet files."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    return sum(path.stat().st_size for path in files), sum(
        1 for path in files if path.suffix == ".parquet"
    )


def build(dsn: str, login: str | None, out: Path | None) -> BuildResult:
    """Build the site of `login` (default: the connection's user) into `out`
    (default dashboards/sites/<login>/), replacing what was there."""
    npm = check_node()
    audience, connection = login_site(dsn, login)
    target = out or PROJECT / "sites" / connection["user"]
    work_root = PROJECT / ".build"
    work_root.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{audience}-", dir=work_root))
    try:
        stage(SITES[audience], folder)
        env = evidence_env(connection)
        sources_seconds = run_npm(npm, "sources", folder, env)
        build_seconds = run_npm(npm, "build:strict", folder, env)
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder / "build"), target)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    size, parquet_files = size_of(target)
    return BuildResult(
        audience, connection["user"], target, sources_seconds, build_seconds, size, parquet_files
    )
