"""The live path's command: serve."""

from __future__ import annotations

from pathlib import Path

import click

from loader.console import max_record_option
from loader.limits import BODY_TIMEOUT_SECONDS, MAX_DECOMPRESSED_BYTES, MAX_REQUEST_BYTES


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
