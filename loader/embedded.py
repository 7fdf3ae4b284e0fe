"""The embedded PostgreSQL: a private server under a project-local folder.

Used when neither `--dsn` nor the libpq variables (PGHOST, ...) name a server, so the
README's commands work on a machine with no PostgreSQL installed. The server binaries come
in the `pgserver` wheel; nothing is downloaded. The server keeps running between commands
(a cron `load` reuses it) until `agent-loader embedded stop`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

HOME_VARIABLE = "AGENT_ANALYTICS_HOME"
DEFAULT_HOME = ".agent-analytics"


def home() -> Path:
    """Where the embedded server keeps its data: $AGENT_ANALYTICS_HOME or ./.agent-analytics."""
    return Path(os.environ.get(HOME_VARIABLE) or DEFAULT_HOME).expanduser().resolve()


def pgdata() -> Path:
    return home() / "pgdata"


def start() -> str:
    """Start the embedded server (or reuse the running one) and return its connection URI."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
        import pgserver

        home().mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(pgdata(), cleanup_mode=None)
        return server.get_uri()


def stop() -> bool:
    """Stop the embedded server; False when it was not running."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver import pg_ctl

        if not (pgdata() / "postmaster.pid").exists():
            return False
        user = "pgserver" if os.name == "posix" and os.geteuid() == 0 else None
        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pgdata(), user=user)
        return True
