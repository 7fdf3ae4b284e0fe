"""PII protection applied before anything is written: keyed tokens and text redaction.

Both are off by default. With `--tokenize-users`, every user identifier (seed 000's
`user_id`) is replaced by `tok_` + the first 32 hex digits of HMAC-SHA256(key, value), the
key coming from the environment variable AGENT_ANALYTICS_TOKEN_KEY. The token is
deterministic, so joins and distinct counts still work, and keyed, so nobody without the key
can test a guess (an unkeyed hash of an e-mail address is reversible by a dictionary).

With `--redact mask`, e-mail addresses, card numbers and phone numbers are replaced by
`[EMAIL]`, `[CARD]` and `[PHONE]` in every string of `payload`, `metadata` and `properties`
(keys included, at any depth, walked without recursion) and in the envelope's free-form
strings (`session_id`, `conversation_id`, `agent_name`, `agent_id`). With `--redact drop`
the free-text fields are removed (set to null) and every other string is masked as above.
Free text is: a message's `text`, an error's `message`, a tool call's `arguments`, a
handoff's `reason`, feedback's `comment`, a tool failure's `error`. Event ids, event types,
timestamps and the tenancy keys `publisher_id` / `tenant_id` are kept as they are.
Quarantined records follow the same rule: their stored text is redacted and tokenized too,
whatever the JSON type of their user id. A batch file's path, as the ledger stores it, is
masked like any other text.

The same protection covers the `load --follow --move-loaded-to` archive (`archive_file`): a
protected warehouse's archive holds each record as raw holds it, never the file in clear.
`Erasure` tells a person's or a tenant's records apart (by the clear id or its token), for
`agent-loader purge --user/--tenant` (loader/operations/retention.py).
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import io
import json
import os
import re
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from loader.ingest.contract import ContractError, checked_record
from loader.ingest.readers import BatchFile, Record
from loader.ingest.spans import USER_ATTRIBUTES, is_export_request
from loader.ingest.warehouse import one_row

TOKEN_KEY_VARIABLE = "AGENT_ANALYTICS_TOKEN_KEY"
MIN_KEY_BYTES = 16

# An e-mail address: a local part, the `@` or its URL encoding (`%40`, `%2540` when encoded
# twice), and a domain of labels whose last is letters or punycode (`xn--p1ai`). Letters of
# any script count (`jürgen@straße.de`, `用户@例子.广告`). The look-behind lets a match start
# only where a local part can start, so a long run of word characters is scanned once, not
# once per character (without it, 20,000 letters took 1.6 s).
_EMAIL = re.compile(
    r"(?<![\w.%+-])[\w.%+-]+(?:@|%(?:25)?40)[\w-]+(?:\.[\w-]+)*\.(?:xn--[\w-]+|[^\W\d_]{2,})",
    re.IGNORECASE,
)
# 13 to 19 digits, optionally grouped by spaces or dashes: the card number lengths.
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
# An optional +, then 9 to 15 digits with spaces, dots, dashes or parentheses between.
_PHONE = re.compile(r"(?<![\w+])\+?\(?\d(?:[\s().-]*\d){8,14}(?!\d)")

# Free-text fields per body, by event type (`--redact drop` removes them).
FREE_TEXT = {
    "payload": {
        "message": ("text",),
        "error": ("message",),
        "tool_call": ("arguments",),
        "handoff": ("reason",),
    },
    "properties": {"user_feedback": ("comment",), "tool_failed": ("error",)},
}


FREE_TEXT_FIELDS: dict[Any, dict[str, tuple[str, ...]]] = {}
for _body, _by_type in FREE_TEXT.items():
    for _event_type, _fields in _by_type.items():
        FREE_TEXT_FIELDS.setdefault(_event_type, {})[_body] = _fields


class PrivacyConfigError(ValueError):
    """The PII options cannot be honoured (no key, or a key too short)."""


class PrivacyMismatch(ValueError):
    """The options or the key differ from the warehouse's stored privacy settings."""


def mask_text(text: str) -> str:
    """Replace e-mail addresses, card numbers and phone numbers with placeholders."""
    text = _EMAIL.sub("[EMAIL]", text)
    text = _CARD.sub("[CARD]", text)
    return _PHONE.sub("[PHONE]", text)


_MAY_HOLD_PII = re.compile(r"[@\d]")

# Envelope strings that are free-form enough to hold PII (ids a collector made up).
MASKED_ENVELOPE = ("session_id", "conversation_id", "agent_name", "agent_id")


def _mask_string(text: str) -> str:
    return mask_text(text) if _MAY_HOLD_PII.search(text) else text


def mask_tree(value: Any) -> Any:
    """A copy of a JSON value with every string (object keys too) masked, at any depth.

    Iterative: no nesting depth can raise RecursionError.
    """
    if isinstance(value, str):
        return _mask_string(value)
    if not isinstance(value, (dict, list)):
        return value
    root: Any = {} if isinstance(value, dict) else [None] * len(value)
    stack = [(value, root)]
    while stack:
        source, target = stack.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in items:
            if isinstance(item, str):
                copy: Any = _mask_string(item)
            elif isinstance(item, dict):
                copy = {}
                stack.append((item, copy))
            elif isinstance(item, list):
                copy = [None] * len(item)
                stack.append((item, copy))
            else:
                copy = item
            target[_mask_string(key) if isinstance(key, str) else key] = copy
    return root


_mask_value = mask_tree


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

    @property
    def key_fingerprint(self) -> str | None:
        """Identifies the key without revealing it: stored in raw, compared by every load."""
        if self.key is None:
            return None
        return hmac.new(self.key, b"agent-analytics key fingerprint", hashlib.sha256).hexdigest()[
            :16
        ]

    def token(self, value: Any) -> str:
        """The token of a user id; an id that is not a string is tokenized as its JSON text."""
        assert self.key is not None
        if not isinstance(value, str):
            value = json.dumps(value, sort_keys=True, ensure_ascii=False)
        return "tok_" + hmac.new(self.key, value.encode(), hashlib.sha256).hexdigest()[:32]

    def apply(self, record: dict[str, Any]) -> dict[str, Any]:
        """A copy of a record with user ids tokenized and text redacted (see the module)."""
        record = dict(record)
        if self.key is not None and "user_id" in record:
            record["user_id"] = self.token(record["user_id"])
        if self.redact == "none":
            return record
        drop = FREE_TEXT_FIELDS.get(record.get("event_type"), {}) if self.redact == "drop" else {}
        for name in MASKED_ENVELOPE:
            if isinstance(record.get(name), str):
                record[name] = _mask_string(record[name])
        for body in ("payload", "metadata", "properties"):
            if body not in record:
                continue
            value = record[body]
            if isinstance(value, dict) and drop.get(body):
                value = {k: (None if k in drop[body] else v) for k, v in value.items()}
            record[body] = mask_tree(value)
        return record

    def ledger_path(self, path_text: str) -> str:
        """A batch file's path as the ledger stores it: masked under any redaction mode (an
        e-mail address in a file name is PII like any other)."""
        return mask_text(path_text) if self.redact != "none" else path_text

    def protected_line(self, record: Record) -> str | None:
        """A record as raw holds it, as one line of JSON text: a valid event protected as
        `apply` protects it, anything else as its quarantine text (`raw_text`); None for a
        record with no text (an empty file)."""
        stored = stored_event(record)
        if stored is not None:
            return json.dumps(self.apply(stored), ensure_ascii=False)
        if not record.raw:
            return None
        value = record.value if record.error is None else None
        text = self.raw_text(record.raw, value) if self.active else record.raw
        return text.replace("\r", "\\r").replace("\n", "\\n")

    def raw_text(self, text: str, value: Any = None) -> str:
        """Quarantined text: user ids tokenized, PII masked.

        When the record was decoded (`value`), every string in it is masked (ids and event
        type included: it is not a valid event) and it is re-serialised, with the user id
        tokenized whatever its JSON type. Otherwise the text may not even be JSON, so this
        works on the text:
        any `"user_id": ...` value (string, number, literal, or a flat array or object) is
        tokenized, and with any redaction mode the whole text is masked (`drop` cannot tell
        free text apart in a broken record).
        """
        if is_export_request(value):  # spans: protected as raw keeps them (`protected_request`)
            request = self.protected_request(value)
            return json.dumps(request, ensure_ascii=False, separators=(",", ":"))
        if isinstance(value, (dict, list)) or (value is not None and self.redact != "none"):
            # Not a valid event: every string is masked, ids and event type included. The
            # token goes in after masking, so a run of digits in it is never masked.
            protected: Any = mask_tree(value) if self.redact != "none" else value
            if self.key is not None and isinstance(value, dict) and "user_id" in value:
                protected = {**protected, "user_id": self.token(value["user_id"])}
            return json.dumps(protected, ensure_ascii=False, separators=(",", ":"))
        tokens: list[str] = []

        def placeholder(token: str) -> str:
            tokens.append(token)
            return f"\x00{len(tokens) - 1}\x00"

        if self.key is not None:
            text = _USER_ID_STRING.sub(
                lambda m: m.group(1) + placeholder(self.token(_unescape(m.group(2)))) + m.group(3),
                text,
            )
            text = _USER_ID_OTHER.sub(
                lambda m: m.group(1) + '"' + placeholder(self.token(m.group(2))) + '"', text
            )
        if self.redact != "none":
            text = mask_text(text)
        return re.sub("\x00(\\d+)\x00", lambda m: tokens[int(m.group(1))], text)

    def protected_request(self, value: Any, parent: str | None = None) -> Any:
        """OTLP JSON (an export request) as raw keeps its spans: the value of each
        `USER_ATTRIBUTES` pair tokenized, and under any redaction mode every `stringValue`
        and status message masked; ids, times and names stay as they are, so the text still
        loads (the `--move-loaded-to` archive is what a warehouse is rebuilt from)."""
        if isinstance(value, list):
            return [self.protected_request(item, parent) for item in value]
        if not isinstance(value, dict):
            return value
        inner = value.get("value")
        if self.key is not None and value.get("key") in USER_ATTRIBUTES and inner is not None:
            clear = inner.get("stringValue", inner) if isinstance(inner, dict) else inner
            return {**value, "value": {"stringValue": self.token(clear)}}
        protected = {}
        for name, item in value.items():
            masked = name == "stringValue" or (name == "message" and parent == "status")
            if masked and isinstance(item, str) and self.redact != "none":
                protected[name] = mask_text(item)
            else:
                protected[name] = self.protected_request(item, name)
        return protected


_USER_ID_STRING = re.compile(r'("user_id"\s*:\s*")((?:[^"\\]|\\.)*)(")')
_USER_ID_OTHER = re.compile(r'("user_id"\s*:\s*)(\[[^\]]*\]?|\{[^}]*\}?|[^\s",}\]"][^,}\]]*)')


NO_PRIVACY = Privacy()


def stored_event(record: Record) -> dict[str, Any] | None:
    """A record that is a valid event, as raw stores it (identifiers and names in NFC, the
    timestamp as sent); None for a record the contract refuses."""
    if record.error is not None:
        return None
    try:
        value, _, _ = checked_record(record.value, show_values=False)
    except ContractError:
        return None
    return {**value, "timestamp": record.value["timestamp"]}


def archive_file(source: Path, destination: Path, privacy: Privacy) -> None:
    """Put a loaded batch file into the `--move-loaded-to` archive at `destination`.

    Without protection the file is moved as it is. With it, the archive gets the file's
    records as raw holds them (`Privacy.protected_line`), one per line (NDJSON, gzipped
    when the file was), and the original is removed: the archive never holds PII that raw
    does not. The copy is written beside `destination` and renamed into place, so a crash
    leaves the original where it was (the next run skips it and archives it then).
    """
    if not privacy.active:
        shutil.move(str(source), str(destination))
        return
    partial = destination.with_name(f".{destination.name}.partial")
    with BatchFile(source) as batch, open(partial, "wb") as raw:
        out: io.BufferedIOBase = gzip.GzipFile(fileobj=raw, mode="wb") if batch.compressed else raw
        with out:
            for record in batch.records():
                line = privacy.protected_line(record)
                if line is not None:
                    out.write(line.encode("utf-8", "backslashreplace") + b"\n")
    os.replace(partial, destination)
    source.unlink()


@dataclass(frozen=True)
class Erasure:
    """Whose records `purge --user/--tenant` removes: a user or a tenant, by id.

    Raw stores a user id as its token when the warehouse tokenizes, so a user's records are
    those whose `user_id` is the clear id or its token. A record that cannot be read as an
    event (quarantined) belongs to the subject when its text mentions either as a JSON
    string (`mentions`), as in raw's quarantine.
    """

    kind: Literal["user", "tenant"]
    subject_id: str
    privacy: Privacy = NO_PRIVACY

    @property
    def values(self) -> list[str]:
        """The id as raw stores it (in NFC, as the contract stores identifiers): clear, and
        its token when the warehouse tokenizes."""
        stored = unicodedata.normalize("NFC", self.subject_id)
        if self.kind == "user" and self.privacy.key is not None:
            return [stored, self.privacy.token(stored)]
        return [stored]

    @property
    def mentions(self) -> list[str]:
        """The JSON string forms to look for in quarantined text, which is kept as read: the
        id as given, in NFC and in NFD, and its token, in either JSON escaping."""
        forms = {
            self.subject_id,
            *self.values,
            unicodedata.normalize("NFD", self.subject_id),
        }
        return sorted(
            {json.dumps(form, ensure_ascii=ascii) for form in forms for ascii in (True, False)}
        )

    def owns(self, record: Record) -> bool:
        """Whether a record of a batch file is the subject's, judged as in raw: a valid event
        by its `user_id` / `tenant_id` (in NFC, as stored), anything else (a quarantined
        record) by its text."""
        stored = stored_event(record)
        if stored is not None:
            return stored.get(self.kind + "_id") in self.values
        return any(mention in record.raw for mention in self.mentions)


def _unescape(json_string_body: str) -> str:
    try:
        return json.loads(f'"{json_string_body}"')
    except ValueError:
        return json_string_body


# --- settings stored in the warehouse ----------------------------------------------------


def _stored(conn: Any) -> tuple[bool, str | None, str] | None:
    with conn.cursor() as cur:
        cur.execute("select tokenize_users, key_fingerprint, redact from raw.privacy_settings")
        row = cur.fetchone()
    return row


def _describe_settings(tokenize_users: bool, redact: str) -> str:
    return f"--tokenize-users={'on' if tokenize_users else 'off'} --redact={redact}"


def store_settings(conn: Any, tokenize_users: bool, redact: str) -> Privacy:
    """Set the warehouse's privacy settings (`init`). Refused once events are loaded under
    other settings: a warehouse never holds raw ids beside tokens, or tokens of two keys."""
    privacy = Privacy.from_options(tokenize_users, redact)
    stored = _stored(conn)
    wanted = (tokenize_users, privacy.key_fingerprint, redact)
    if stored is not None and tuple(stored) == wanted:
        conn.rollback()
        return privacy
    with conn.cursor() as cur:
        # Batches loaded before settings were stored count as compatible when their
        # ledger shows the same protection.
        cur.execute(
            "select count(*) from raw.load_batches where status = 'loaded'"
            " and privacy is distinct from %s",
            (privacy.describe(),),
        )
        loaded = one_row(cur)[0]
    if loaded:
        conn.rollback()
        current = _describe_settings(stored[0], stored[2]) if stored else "no protection"
        raise PrivacyMismatch(
            f"the warehouse already holds {loaded} loaded batch(es) under {current}; changing"
            " the privacy settings would mix protected and unprotected rows. Load into a new"
            " warehouse (or purge and reload) to change them."
        )
    with conn.cursor() as cur:
        cur.execute(
            """
            insert into raw.privacy_settings (tokenize_users, key_fingerprint, redact, set_at)
            values (%s, %s, %s, now())
            on conflict (singleton) do update
            set tokenize_users = excluded.tokenize_users,
                key_fingerprint = excluded.key_fingerprint,
                redact = excluded.redact,
                set_at = excluded.set_at
            """,
            wanted,
        )
    conn.commit()
    return privacy


def warehouse_privacy(conn: Any, tokenize_users: bool | None, redact: str | None) -> Privacy:
    """The protection a load must apply: the stored settings, checked against the options.

    `None` options mean "not given". With settings stored, a load applies them even without
    flags; given flags must agree, and the key in the environment must have the stored
    fingerprint. With nothing stored, flags asking for protection are stored now (only on a
    warehouse with nothing loaded yet, see `store_settings`); no flags means no protection.
    """
    stored = _stored(conn)
    conn.rollback()
    if stored is None:
        if tokenize_users or (redact or "none") != "none":
            return store_settings(conn, bool(tokenize_users), redact or "none")
        return NO_PRIVACY
    stored_tokenize, fingerprint, stored_redact = stored
    requested = (
        stored_tokenize if tokenize_users is None else tokenize_users,
        stored_redact if redact is None else redact,
    )
    if requested != (stored_tokenize, stored_redact):
        raise PrivacyMismatch(
            f"this warehouse is set to {_describe_settings(stored_tokenize, stored_redact)};"
            f" the load asked for {_describe_settings(*requested)}. Drop the options (the"
            " stored settings apply to every load) or load into another warehouse."
        )
    privacy = Privacy.from_options(stored_tokenize, stored_redact)
    if privacy.key_fingerprint != fingerprint:
        raise PrivacyMismatch(
            f"${TOKEN_KEY_VARIABLE} holds a different key (fingerprint"
            f" {privacy.key_fingerprint}) from the one this warehouse tokenizes with"
            f" (fingerprint {fingerprint}); tokens of two keys would never match. Use the"
            " warehouse's key."
        )
    return privacy
