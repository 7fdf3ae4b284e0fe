"""The embedded PostgreSQL: a private server under a project-local folder.

For trying the project on a machine with no PostgreSQL: `agent-loader demo` (or
`agent-loader embedded start`) starts it; the server binaries come in the `pgserver` wheel,
nothing is downloaded. It listens on a Unix socket and on 127.0.0.1 (port 15432 when free,
else a free one; `--port` chooses), so the loader, dbt with the shipped `profiles.yml` and a
BI tool reach the same database. It accepts local connections without a password, like a
fresh PostgreSQL with trust authentication: it is for a workstation, not a shared host.
It keeps running between commands until `agent-loader embedded stop`.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

HOME_VARIABLE = "AGENT_ANALYTICS_HOME"
DEFAULT_HOME = ".agent-analytics"
DEFAULT_PORT = 15432
"""The port the shipped `profiles.yml` uses when no PG* variable is set."""
HOST = "127.0.0.1"


def home() -> Path:
    """Where the embedded server keeps its data: $AGENT_ANALYTICS_HOME or ./.agent-analytics."""
    return Path(os.environ.get(HOME_VARIABLE) or DEFAULT_HOME).expanduser().resolve()


def pgdata() -> Path:
    return home() / "pgdata"


def _pgserver():  # imported late: it is slow and warns on import
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
        import pgserver
        import pgserver.utils

        return pgserver


def client_tool(name: str) -> Path:
    """The path of a PostgreSQL client program (`psql`, `pg_dump`, ...) of the embedded server's
    own version, from the `pgserver` wheel: the machine's may be older, or absent."""
    tool = Path(_pgserver().__file__).parent / "pginstall" / "bin" / name
    if not tool.is_file():
        raise FileNotFoundError(f"{name} is not in the pgserver wheel ({tool.parent})")
    return tool


def _system_user() -> str | None:
    """pgserver runs PostgreSQL as the user `pgserver` when started by root."""
    return "pgserver" if os.name == "posix" and os.geteuid() == 0 else None


def _uri(port: int) -> str:
    return f"postgresql://postgres@{HOST}:{port}/postgres"


def _free_port(preferred: int) -> int:
    """`preferred` when nothing listens on it, else a port the kernel picks."""
    for candidate in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((HOST, candidate))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise OSError(f"no free TCP port on {HOST}")


def _running_port() -> int | None:
    """The TCP port of the running embedded server; None when it is down or socket-only."""
    if not (pgdata() / "postmaster.pid").exists():
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = _pgserver().utils.PostmasterInfo.read_from_pgdata(pgdata())
    if info is None or not info.is_running() or info.hostname != HOST:
        return None
    return info.port


def running_uri() -> str | None:
    """The TCP connection URI of the embedded server when it runs, else None (never starts it)."""
    port = _running_port()
    return _uri(port) if port else None


def start(port: int | None = None) -> str:
    """Start the embedded server (or reuse the running one) and return its TCP URI.

    pgserver starts PostgreSQL on a Unix socket only; when the server does not already listen
    on 127.0.0.1 (at `port`, if given), it is restarted with TCP on, keeping its socket.
    """
    current = _running_port()
    if current and port in (None, current):
        return _uri(current)
    pgserver = _pgserver()
    home().mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = pgserver.get_server(pgdata(), cleanup_mode=None).get_postmaster_info()
    chosen = _free_port(port or DEFAULT_PORT)
    if port and chosen != port:
        raise OSError(f"port {port} on {HOST} is in use; choose another with --port")
    user = _system_user()
    pgserver.pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pgdata(), user=user)
    pgserver.pg_ctl(
        [
            "-w",
            "-o",
            f'-h "{HOST}"',
            "-o",
            f"-p {chosen}",
            "-o",
            f"-k {info.socket_dir}",
            "-l",
            str(pgdata() / "log"),
            "start",
        ],
        pgdata=pgdata(),
        user=user,
    )
    return _uri(chosen)


def stop() -> bool:
    """Stop the embedded server; False when it was not running."""
    if running_uri() is None and not (pgdata() / "postmaster.pid").exists():
        return False
    _pgserver().pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pgdata(), user=_system_user())
    return True
