"""Who receives which alerts: the `--webhook` receiver (every alert, the operator's) and the
routing file (each publisher's or tenant's alerts to its own webhook only).

The routing file (YAML or JSON) holds addresses; each secret comes from a file or an
environment variable it names, never from the file itself nor from the seed:

    routes:
      - scope: publisher            # or tenant
        subject_id: pub_acme
        url: https://hooks.acme.example/agent-analytics
        format: json                # or slack ({"text": ...})
        secret_env: ACME_WEBHOOK_SECRET      # or secret_file: /etc/agent-analytics/acme.secret
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from loader.errors import AlertRoutesInvalid

OPERATOR = "operator"
STDOUT = "stdout"
FORMATS = ("json", "slack")
SCOPES = ("publisher", "tenant")


@dataclass(frozen=True)
class Receiver:
    """One webhook: `audience` is `operator` (reads every mart) or the subject's scope."""

    name: str
    url: str
    secret: bytes
    format: str
    audience: str


@dataclass(frozen=True)
class Routes:
    receivers: dict[str, Receiver]

    def receivers_for(self, scope: str, subject_id: str) -> list[str]:
        """The operator's receiver (if any) and the subject's own (if routed); `stdout`
        when no receiver is configured at all."""
        if not self.receivers:
            return [STDOUT]
        names = [OPERATOR] if OPERATOR in self.receivers else []
        own = receiver_name(scope, subject_id)
        if own in self.receivers:
            names.append(own)
        return names


def receiver_name(scope: str, subject_id: str) -> str:
    return f"{scope}:{subject_id}"


def read_secret(secret_file: str | None, secret_env: str | None, what: str) -> bytes:
    if secret_file:
        try:
            secret = Path(secret_file).read_text().strip()
        except OSError as error:
            raise AlertRoutesInvalid(
                f"{what}: cannot read secret_file {secret_file}: {error}"
            ) from None
    elif secret_env:
        secret = os.environ.get(secret_env, "").strip()
        if not secret:
            raise AlertRoutesInvalid(f"{what}: environment variable {secret_env} is unset or empty")
    else:
        raise AlertRoutesInvalid(f"{what}: no secret_file or secret_env (requests are signed)")
    return secret.encode()


def load_routes(
    path: Path | None,
    webhook: str | None = None,
    webhook_secret: bytes | None = None,
    webhook_format: str = "json",
) -> Routes:
    """The receivers: `--webhook` as `operator`, then each route of the file."""
    receivers: dict[str, Receiver] = {}
    if webhook:
        if not webhook_secret:
            raise AlertRoutesInvalid(
                "--webhook needs a secret: --webhook-secret-file or $AGENT_ANALYTICS_WEBHOOK_SECRET"
            )
        receivers[OPERATOR] = Receiver(OPERATOR, webhook, webhook_secret, webhook_format, OPERATOR)
    if path is None:
        return Routes(receivers)
    try:
        text = path.read_text()
        document = yaml.safe_load(text) if path.suffix in (".yml", ".yaml") else json.loads(text)
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise AlertRoutesInvalid(f"cannot read routing file {path}: {error}") from None
    entries = (document or {}).get("routes") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise AlertRoutesInvalid(f"{path}: expected a top-level `routes:` list")
    for index, entry in enumerate(entries):
        what = f"{path}: route {index + 1}"
        if not isinstance(entry, dict):
            raise AlertRoutesInvalid(f"{what}: expected a mapping")
        scope, subject, url = entry.get("scope"), entry.get("subject_id"), entry.get("url")
        fmt = entry.get("format", "json")
        if scope not in SCOPES or not subject or not url or fmt not in FORMATS:
            raise AlertRoutesInvalid(
                f"{what}: needs scope (publisher|tenant), subject_id, url, format (json|slack)"
            )
        if "secret" in entry:
            raise AlertRoutesInvalid(f"{what}: put the secret in secret_file or secret_env")
        name = receiver_name(scope, str(subject))
        if name in receivers:
            raise AlertRoutesInvalid(f"{what}: {name} is routed twice")
        secret = read_secret(entry.get("secret_file"), entry.get("secret_env"), what)
        receivers[name] = Receiver(name, str(url), secret, fmt, scope)
    return Routes(receivers)
