"""The embedded PostgreSQL: a private server under a project-local folder.

For trying the project on a machine with no PostgreSQL: `agent-loader demo` (or
`agent-loader embedded start`) starts it; the server binaries come in the `pgserver` wheel,
nothing is downloaded. It listens on a Unix socket and on 127.0.0.1, port
$AGENT_ANALYTICS_PORT (default 15432), the port the shipped `profiles.yml` reads the same way,
so the loader, dbt and a BI tool reach the same database. When that port is taken it refuses
rather than take another one, which dbt would not follow. It accepts local connections
without a password, like a fresh PostgreSQL with trust authentication: it is for a
workstation, not a shared host.
It keeps running between commands until `agent-loader embedded stop`.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

from loader.errors import EmbeddedPortUnavailable

HOME_VARIABLE = "AGENT_ANALYTICS_HOME"
DEFAULT_HOME = ".agent-analytics"
PORT_VARIABLE = "AGENT_ANALYTICS_PORT"
DEFAULT_PORT = 15432
"""The port when $AGENT_ANALYTICS_PORT is unset; the shipped `profiles.yml` has the same default."""
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


def configured_port() -> int:
    """$AGENT_ANALYTICS_PORT, else DEFAULT_PORT: the port dbt's shipped profile also reads."""
    value = os.environ.get(PORT_VARIABLE) or str(DEFAULT_PORT)
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise EmbeddedPortUnavailable(f"${PORT_VARIABLE} is {value!r}, not a TCP port (1-65535)")
    return int(value)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
        return True


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

    The port is `port`, else $AGENT_ANALYTICS_PORT, else 15432. When it is taken the start
    refuses before starting anything: another port would leave dbt, which reads the same
    variable, on whatever server holds this one. pgserver starts PostgreSQL on a Unix socket
    only; when the server does not already listen on 127.0.0.1 at the port, it is restarted
    with TCP on, keeping its socket.
    """
    chosen = port or configured_port()
    if _running_port() == chosen:
        return _uri(chosen)
    if not _port_is_free(chosen):
        raise EmbeddedPortUnavailable(
            f"port {chosen} on {HOST} is in use by another program, and dbt's shipped profile"
            f" would reach that one: choose a free port for the embedded server, the loader and"
            f" dbt alike with `export {PORT_VARIABLE}=N` (N a free port, e.g. 15433), or stop"
            " what listens there"
        )
    pgserver = _pgserver()
    home().mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = pgserver.get_server(pgdata(), cleanup_mode=None).get_postmaster_info()
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
