"""PII protection applied before anything is written: keyed tokens and text redaction.

Both are off by default. With `--tokenize-users`, every user identifier (seed 000's
`user_id`) is replaced by `tok_` + the first 32 hex digits of HMAC-SHA256(key, value), the
key coming from the environment variable AGENT_ANALYTICS_TOKEN_KEY. The token is
deterministic, so joins and distinct counts still work, and keyed, so nobody without the key
can test a guess (an unkeyed hash of an e-mail address is reversible by a dictionary).

With `--redact mask`, e-mail addresses, card numbers and phone numbers inside free text are
replaced by `[EMAIL]`, `[CARD]` and `[PHONE]`; with `--redact drop` free text is removed
(set to null). Free text is: a message's `text`, an error's `message`, a tool call's
`arguments`, a handoff's `reason`, feedback's `comment`, a tool failure's `error`.
Quarantined records follow the same rule: their stored text is redacted and tokenized too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from typing import Any

TOKEN_KEY_VARIABLE = "AGENT_ANALYTICS_TOKEN_KEY"
MIN_KEY_BYTES = 16

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# 13 to 19 digits, optionally grouped by spaces or dashes: the card number lengths.
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
# An optional +, then 9 to 15 digits with spaces, dots, dashes or parentheses between.
_PHONE = re.compile(r"(?<![\w+])\+?\(?\d(?:[\s().-]*\d){8,14}(?!\d)")

# Free-text fields per body, by event type.
FREE_TEXT = {
    "payload": {
        "message": ("text",),
        "error": ("message",),
        "tool_call": ("arguments",),
        "handoff": ("reason",),
    },
    "properties": {"user_feedback": ("comment",), "tool_failed": ("error",)},
}


class PrivacyConfigError(ValueError):
    """The PII options cannot be honoured (no key, or a key too short)."""


def mask_text(text: str) -> str:
    """Replace e-mail addresses, card numbers and phone numbers with placeholders."""
    text = _EMAIL.sub("[EMAIL]", text)
    text = _CARD.sub("[CARD]", text)
    return _PHONE.sub("[PHONE]", text)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, list):
        return [_mask_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _mask_value(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class Privacy:
    """What to do to PII before writing: tokenize user ids, and `none`/`mask`/`drop` text."""

    key: bytes | None = None
    redact: str = "none"

    @property
    def active(self) -> bool:
        return self.key is not None or self.redact != "none"

    def describe(self) -> str | None:
        """For the ledger: which protections a batch was loaded with, or None."""
        parts = (["tokenize_users"] if self.key is not None else []) + (
            [f"redact={self.redact}"] if self.redact != "none" else []
        )
        return ",".join(parts) or None

    @classmethod
    def from_options(cls, tokenize_users: bool, redact: str) -> Privacy:
        key = None
        if tokenize_users:
            raw = os.environ.get(TOKEN_KEY_VARIABLE, "")
            if len(raw.encode()) < MIN_KEY_BYTES:
                raise PrivacyConfigError(
                    f"--tokenize-users needs a secret key of at least {MIN_KEY_BYTES} bytes in"
                    f" ${TOKEN_KEY_VARIABLE} (e.g. `openssl rand -hex 32`)"
                )
            key = raw.encode()
        return cls(key, redact)

    def token(self, value: str) -> str:
        assert self.key is not None
        return "tok_" + hmac.new(self.key, value.encode(), hashlib.sha256).hexdigest()[:32]

    def apply(self, record: dict[str, Any]) -> dict[str, Any]:
        """A copy of a valid event with user ids tokenized and free text redacted."""
        record = dict(record)
        if self.key is not None and isinstance(record.get("user_id"), str):
            record["user_id"] = self.token(record["user_id"])
        if self.redact != "none":
            for body, fields_by_type in FREE_TEXT.items():
                fields = fields_by_type.get(record.get("event_type", ""), ())
                if fields and isinstance(record.get(body), dict):
                    record[body] = self._redact_body(record[body], fields)
        return record

    def _redact_body(self, body: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
        body = dict(body)
        for name in fields:
            if body.get(name) is not None:
                body[name] = None if self.redact == "drop" else _mask_value(body[name])
        return body

    def raw_text(self, text: str) -> str:
        """Quarantined text: user ids tokenized where they can be found, PII masked.

        A quarantined record may not even be JSON, so this works on the text itself: any
        `"user_id": "..."` pair gets its value tokenized, and with any redaction mode the
        whole text is masked (`drop` cannot tell free text apart in a broken record).
        """
        if self.key is not None:
            text = re.sub(
                r'("user_id"\s*:\s*")((?:[^"\\]|\\.)*)(")',
                lambda m: m.group(1) + self.token(_unescape(m.group(2))) + m.group(3),
                text,
            )
        if self.redact != "none":
            text = mask_text(text)
        return text


NO_PRIVACY = Privacy()


def _unescape(json_string_body: str) -> str:
    try:
        return json.loads(f'"{json_string_body}"')
    except ValueError:
        return json_string_body
