"""The live path's commands: serve, and `load --follow` (its options and its run)."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack, closing
from pathlib import Path

import click
import psycopg2.extensions

from loader.console import EXIT_PROBLEMS, F, file_line, max_record_option, privacy_errors
from loader.ingest import warehouse
from loader.ingest.load import FileResult, _record_failure, load_file
from loader.ingest.privacy import Privacy, warehouse_privacy
from loader.limits import BODY_TIMEOUT_SECONDS, MAX_DECOMPRESSED_BYTES, MAX_REQUEST_BYTES
from loader.live.follow import (
    DEFAULT_SETTLE,
    Loader,
    Session,
    Stop,
    follow,
    retry_rolled_back,
)
from loader.shown import shown_path

follow_option = click.option(
    "--follow",
    is_flag=True,
    help=(
        "Keep running: load new files as they appear (polling), one transaction per file;"
        " SIGTERM stops it after the files being loaded. Pairs with `agent-loader serve`."
    ),
)
poll_interval_option = click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.01),
    default=0.1,
    show_default=True,
    help="With --follow: seconds between looks for new files.",
)
settle_option = click.option(
    "--settle",
    type=click.FloatRange(min=0),
    default=DEFAULT_SETTLE,
    show_default=True,
    help=(
        "With --follow: seconds a file's size and modification time must stay the same"
        " before it loads (a collector writing in place is done). Files `serve` writes load"
        " at once; 0 when every writer renames complete files into place."
    ),
)
connections_option = click.option(
    "--connections",
    type=click.IntRange(1, 8),
    default=2,
    show_default=True,
    help=(
        "With --follow: files loaded at once, each in its own transaction on its own"
        " connection (one is validated while the server stores another)."
    ),
)
move_loaded_to_option = click.option(
    "--move-loaded-to",
    type=click.Path(file_okay=False, path_type=Path),
    help=(
        "With --follow: move each loaded file into this folder after its commit, keeping the"
        " landing folder (the spool `serve` limits) small."
    ),
)


def follow_options(command: F) -> F:
    """`load`'s --follow and the options that go with it, in --help order."""
    for option in reversed(
        (
            follow_option,
            poll_interval_option,
            settle_option,
            connections_option,
            move_loaded_to_option,
        )
    ):
        command = option(command)
    return command


@click.command(name="serve")
@click.option(
    "--landing",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder the batch files go to (created if missing); `load --follow` reads it.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--keys-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="AGENT_LOADER_KEYS_FILE",
    help=(
        "Ingest keys, one LABEL:KEY a line; also read from $AGENT_LOADER_INGEST_KEYS"
        " (LABEL:KEY,...). With keys, POSTs need Authorization: Bearer KEY."
    ),
)
@click.option(
    "--max-request-bytes",
    type=click.IntRange(min=1024),
    default=MAX_REQUEST_BYTES,
    show_default=True,
    help="Largest request body as sent (before gzip decoding); larger gets 413.",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1024),
    default=MAX_DECOMPRESSED_BYTES,
    show_default=True,
    help="Largest request body after gzip decoding; larger gets 413.",
)
@click.option(
    "--max-spool-bytes",
    type=click.IntRange(min=0),
    default=1 << 30,
    show_default=True,
    help="Answer 503 + Retry-After while the landing folder holds more than this.",
)
@click.option(
    "--min-free-bytes",
    type=click.IntRange(min=0),
    default=512 << 20,
    show_default=True,
    help="Answer 503 + Retry-After while the disk has less free space than this.",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0.1),
    default=BODY_TIMEOUT_SECONDS,
    show_default=True,
    help="Seconds a client may take to send a request body (408 after that).",
)
@click.option(
    "--commit-interval",
    type=click.FloatRange(min=0),
    default=0.02,
    show_default=True,
    help=(
        "Least seconds between two batch files (group commit): under load, batches wait up"
        " to this long to share one file and one fsync."
    ),
)
@max_record_option
def serve_command(
    landing: Path,
    host: str,
    port: int,
    keys_file: Path | None,
    max_request_bytes: int,
    max_body_bytes: int,
    max_spool_bytes: int,
    min_free_bytes: int,
    body_timeout: float,
    commit_interval: float,
    max_record_bytes: int,
) -> None:
    """Receive events over HTTP (POST /v1/events) and OpenTelemetry spans (POST /v1/traces,
    OTLP/HTTP) into durable batch files.

    A 2xx answer means the batch is fsync'd in the landing folder; the answer lists the
    records the loader will quarantine and why (for spans, OTLP's partialSuccess).
    GET /healthz and GET /metrics (Prometheus).
    SIGTERM stops accepting, finishes in-flight requests and exits 0.
    """
    from loader.live import serve

    try:
        keys = serve.load_keys(keys_file)
    except (serve.KeyConfigError, OSError, UnicodeDecodeError) as error:
        raise click.BadParameter(str(error), param_hint="--keys-file") from None
    landing.mkdir(parents=True, exist_ok=True)
    if not keys and host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: listening on {host} with no ingest keys: anyone can POST", err=True)
    config = serve.ServeConfig(
        landing=landing,
        host=host,
        port=port,
        keys={label: entry.key for label, entry in keys.items()},
        scopes={label: entry.scope for label, entry in keys.items() if entry.scope},
        max_request_bytes=max_request_bytes,
        max_body_bytes=max_body_bytes,
        max_record_bytes=max_record_bytes,
        max_spool_bytes=max_spool_bytes,
        min_free_bytes=min_free_bytes,
        body_timeout=body_timeout,
        commit_interval=commit_interval,
    )
    try:
        serve.run(
            config,
            ready=lambda _: click.echo(
                f"serving http://{host}:{port}/v1/events and /v1/traces into {landing}"
                f" ({len(keys)} ingest key(s)); SIGTERM stops",
                err=True,
            ),
        )
    except OSError as error:
        raise click.ClickException(f"cannot listen on {host}:{port}: {error.strerror}") from None
    click.echo("stopped: in-flight requests answered", err=True)


def follow_files(
    conn: psycopg2.extensions.connection,
    lock: psycopg2.extensions.connection,
    dsn: str,
    connections: int,
    paths: tuple[Path, ...],
    max_record_bytes: int,
    rehash: bool,
    privacy: Privacy,
    poll_interval: float,
    settle: float,
    move_loaded_to: Path | None,
    as_json: bool,
    tokenize_users: bool | None,
    redact: str | None,
) -> None:
    """`load --follow`: load new files until SIGTERM/SIGINT, then exit 0 (1 if files failed).

    Prints a line per file as it is loaded (with --json: one JSON document per line). The
    run's connection loads files too; `connections - 1` more are opened (the load lock has
    a connection of its own). When PostgreSQL goes away the follower reconnects
    (loader/live/follow.py): the schema, the lock and the privacy settings are checked again
    as at the start.
    """

    def report(result: FileResult) -> None:
        click.echo(json.dumps(result.as_dict()) if as_json else file_line(result))

    def loader_on(connection: psycopg2.extensions.connection) -> Loader:
        def load_one(path: Path) -> FileResult:
            return load_file(connection, path, max_record_bytes, rehash, privacy)

        def record_failure(result: FileResult) -> None:
            _record_failure(connection, result, privacy)

        return Loader(retry_rolled_back(connection, load_one), record_failure)

    # Connections handed on out of an ExitStack (`pop_all`) are wrapped in `closing`, never
    # in `warehouse.connected`: a generator's context, once dropped, closes when collected.
    def session_on(first: psycopg2.extensions.connection) -> Session:
        with ExitStack() as opening:  # all of them closed if one cannot be opened
            opening.callback(first.close)
            opened = [first]
            for _ in range(connections - 1):
                opened.append(opening.enter_context(closing(warehouse.connect(dsn))))
            close = opening.pop_all().close  # the session's now
        return Session([loader_on(connection) for connection in opened], close, privacy)

    held = [lock]  # the load lock's connection: replaced when a reconnect takes it again

    def reconnect() -> Session:
        with ExitStack() as checking:  # closed unless every check passes
            first = checking.enter_context(closing(warehouse.connect(dsn)))
            warehouse.require_current_schema(first)
            held[0] = warehouse.reacquire_load_lock(held[0], dsn)
            privacy_errors(lambda: warehouse_privacy(first, tokenize_users, redact))
            checking.pop_all()
        return session_on(first)

    stop = Stop()
    stop.install()
    followed = ", ".join(map(shown_path, paths))
    click.echo(f"following {followed} (SIGTERM stops after the files being loaded)", err=True)
    try:
        failed = follow(
            paths,
            session_on(conn),
            report,
            stop,
            poll_interval,
            move_loaded_to,
            settle=settle,
            reconnect=reconnect,
            say=lambda line: click.echo(line, err=True),
        )
    finally:
        held[0].close()  # the lock a reconnect took again (`load` closes the first one)
    click.echo(f"stopped; {len(failed)} file(s) still failing", err=True)
    if failed:
        sys.exit(EXIT_PROBLEMS)
