"""Shared fixtures: a real PostgreSQL, a private database per test (or module), and dbt.

The server comes from the libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD) when they are
set, as in CI; otherwise an embedded PostgreSQL (pgserver) is started in a temporary folder,
so `pytest` passes on a machine with no server. Every database a test uses is created here
with a unique name and dropped afterwards: runs never see each other's data.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest

from loader.devtools import embedded
from loader.ingest import warehouse
from loader.ingest.load import FileResult, load_file
from loader.operations.roles import ROLE_SUFFIXES

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Database:
    """A test database: connection parameters, a DSN, and PG* variables for subprocesses."""

    params: dict[str, str]

    @property
    def name(self) -> str:
        return self.params["dbname"]

    @property
    def dsn(self) -> str:
        return psycopg2.extensions.make_dsn(**self.params)

    @property
    def env(self) -> dict[str, str]:
        """The environment of a subprocess (loader, dbt) acting on this database: the same
        server as the test's own connections, whose parameters the libpq variables of the
        test's environment fill in (PGHOST, PGPORT, ...), overridden by `params`."""
        names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD"}
        env = dict(os.environ)
        env.update({names[k]: v for k, v in self.params.items() if k in names and v})
        env["PGDATABASE"] = self.name
        env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
        return env

    def connect(self) -> psycopg2.extensions.connection:
        return psycopg2.connect(self.dsn)

    def query(self, sql: str, params: object = None) -> list[tuple]:
        """Run one statement in its own connection and return all rows."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                rows = cur.fetchall() if cur.description else []
            conn.commit()
            return rows
        finally:
            conn.close()

    def dicts(self, sql: str, params: object = None) -> list[dict[str, Any]]:
        """Run one query in its own connection and return all rows as column -> value."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                names = [column.name for column in cur.description]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            conn.close()

    def fingerprint(self, relation: str, order_by: str) -> tuple:
        """The row count and an md5 of all rows of `relation` in `order_by` order: equal
        fingerprints, equal contents (an incremental build against a full refresh)."""
        return self.query(
            f"select count(*), md5(string_agg(t::text, '|' order by {order_by}))"
            f" from {relation} as t"
        )[0]

    def scalar(self, sql: str, params: object = None) -> object:
        return self.query(sql, params)[0][0]


class Server:
    """Creates and drops databases on the test server."""

    def __init__(self, params: dict[str, str]) -> None:
        self.params = params

    def _admin(self) -> psycopg2.extensions.connection:
        conn = psycopg2.connect(psycopg2.extensions.make_dsn(**self.params))
        conn.autocommit = True
        return conn

    def create(self, template: str | None = None) -> Database:
        name = f"aa_test_{uuid.uuid4().hex[:12]}"
        conn = self._admin()
        with conn.cursor() as cur:
            clause = f" template {template}" if template else ""
            cur.execute(f"create database {name}{clause}")
        conn.close()
        return Database({**self.params, "dbname": name})

    def drop(self, database: Database) -> None:
        conn = self._admin()
        with conn.cursor() as cur:
            cur.execute(f"drop database if exists {database.name} with (force)")
        conn.close()


def client_tool(name: str) -> str:
    """The PostgreSQL client program `name` (`pg_dump`, `psql`) matching the test server: the
    machine's when the PG* variables name the server, else the embedded server's own (the
    machine's may be another major version, which `pg_dump` refuses, or absent)."""
    return name if warehouse.libpq_configured() else str(embedded.client_tool(name))


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    if warehouse.libpq_configured():
        params = {"dbname": os.environ.get("PGDATABASE") or "postgres"}
        yield Server(params)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        folder = Path(tempfile.mkdtemp(prefix="aa-pg-"))
        embedded = pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
        params = dict(psycopg2.extensions.parse_dsn(embedded.get_uri()))
        params = {key: value for key, value in params.items() if value}
        yield Server(params)
        embedded.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def initialised_template(server: Server) -> Iterator[str]:
    """A database with the raw schema applied, cloned for each test that needs one."""
    template = server.create()
    conn = template.connect()
    warehouse.migrate(conn)
    conn.close()
    yield template.name
    server.drop(template)


@pytest.fixture
def db(server: Server, initialised_template: str) -> Iterator[Database]:
    """A fresh database with the raw schema, private to one test."""
    database = server.create(template=initialised_template)
    yield database
    server.drop(database)


@pytest.fixture
def empty_db(server: Server) -> Iterator[Database]:
    """A fresh database with nothing in it (not even the raw schema)."""
    database = server.create()
    yield database
    server.drop(database)


@pytest.fixture(scope="module")
def module_db(server: Server, initialised_template: str) -> Iterator[Database]:
    """A database with the raw schema shared by one test module (for dbt suites)."""
    database = server.create(template=initialised_template)
    yield database
    server.drop(database)


def run_loader(database: Database, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the `agent-loader` CLI in a subprocess against `database`."""
    result = subprocess.run(
        [sys.executable, "-m", "loader", *args],
        env=database.env,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"agent-loader {args} exited {result.returncode}:\n{result.stderr}")
    return result


def drop_roles(database: Database, names: Sequence[str]) -> None:
    """Drop those of the roles `names` that exist, with all they own in `database` (roles are
    shared by the whole server, so a test that makes them drops them itself)."""
    existing = [
        row[0]
        for row in database.query(
            "select rolname from pg_roles where rolname = any(%s)", (list(names),)
        )
    ]
    if existing:
        database.query(f"drop owned by {', '.join(existing)} cascade")
    for name in existing:
        database.query(f"drop role {name}")


@contextlib.contextmanager
def prefixed_roles(
    database: Database, prefix: str, logins: Mapping[str, str | None], *options: str
) -> Iterator[subprocess.CompletedProcess]:
    """`agent-loader roles --prefix <prefix> <options>` on `database` (its result), then the
    login roles `logins`: login name -> the group (a `ROLE_SUFFIXES` entry) it is a member of,
    or None for none. Afterwards, whatever happened, the logins and every group role under the
    prefix are dropped with all they own in `database`."""
    try:
        result = run_loader(database, "roles", "--prefix", prefix, *options)
        for login, group in logins.items():
            membership = f" in role {prefix}{group}" if group else ""
            database.query(f"create role {login} login{membership}")
        yield result
    finally:
        drop_roles(database, [*logins, *(f"{prefix}{suffix}" for suffix in ROLE_SUFFIXES)])


def load(database: Database, path: Path, **options: object) -> FileResult:
    """The loader's `load_file` in this process, on a connection of its own."""
    conn = database.connect()
    try:
        return load_file(conn, path, **options)  # type: ignore[arg-type]
    finally:
        conn.close()


class Dbt:
    """Runs dbt as a subprocess against one database, with private profiles and target dirs."""

    def __init__(self, database: Database, folder: Path, **env: str) -> None:
        """`env`: variables set on top of the database's (e.g. AGENT_ANALYTICS_DBT_ROLE)."""
        self.database = database
        self.env = {**database.env, **env}
        self.profiles_dir = folder / "profiles"
        self.target_dir = folder / "target"
        self.profiles_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "profiles.yml", self.profiles_dir / "profiles.yml")

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [
            str(Path(sys.executable).with_name("dbt")),
            *args,
            "--profiles-dir",
            str(self.profiles_dir),
            "--target-path",
            str(self.target_dir),
            "--log-path",
            str(self.target_dir / "logs"),
        ]
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, cwd=REPO)
        if check and result.returncode != 0:
            raise AssertionError(f"dbt {' '.join(args)} failed:\n{result.stdout[-8000:]}")
        return result


@pytest.fixture(scope="module")
def dbt(module_db: Database, tmp_path_factory: pytest.TempPathFactory) -> Dbt:
    """dbt bound to `module_db`."""
    return Dbt(module_db, tmp_path_factory.mktemp("dbt"))
