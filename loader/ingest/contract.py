"""The event contract: the two shapes collectors send, validated field by field.

Seed 000 (`AgentEvent.to_dict()`) describes conversation events; seed 004 (`AnalyticsEvent`)
describes marketplace events. A record is routed by its shape (`event_id` versus `id`) and
then validated by the pydantic model of that shape. Everything dbt staging casts out of the
JSON bodies is type-checked here, so a bad value is quarantined at load time instead of
breaking `dbt build` later. Unknown extra keys inside `payload`, `metadata` and `properties`
are kept: those bodies are open by design. Unknown keys on the envelope are refused.

The contract refuses what is broken, not what is merely incomplete: a value the seeds' code
reads as optional (an invocation's cost or duration, an error's type, an event's metadata)
may be missing, and the event is kept with the value missing. docs/differences.md lists
every way the contract differs from the seeds' code.
"""

from __future__ import annotations

import math
import re
import time
import unicodedata
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal, Union, get_type_hints

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    create_model,
)
from pydantic_core import PydanticCustomError
from typing_extensions import NotRequired, TypedDict  # typing's: Python 3.11+, 3.12+

from loader.limits import MAX_COST_USD, MAX_COUNT, MAX_ID_BYTES, MAX_MILLISECONDS, MAX_NAME_BYTES
from loader.shown import HIDDEN_CHARACTER

AGENT_EVENT_TYPES = (
    "conversation_start",
    "message",
    "tool_call",
    "handoff",
    "error",
    "completion",
    "conversation_end",
)
MARKETPLACE_EVENT_TYPES = (
    "agent_invoked",
    "agent_completed",
    "agent_errored",
    "tool_called",
    "tool_failed",
    "user_feedback",
    "install",
    "uninstall",
)


class ContractError(ValueError):
    """A record breaks the event contract; `reason` is what goes into the quarantine."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# The timestamp forms the loader and PostgreSQL read alike: extended ISO 8601 (RFC 3339),
# a date alone or a date, `T` (or a space), hh:mm[:ss[.fraction]] and an optional `Z` or
# offset. Forms outside it are refused: `10:59:59,5` (PostgreSQL refuses a comma) and
# `10:59.5` (PostgreSQL reads it as 00:10:59.5) would otherwise load as another instant.
_TIMESTAMP_FORM = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?P<fraction>\.\d+)?)?(?P<offset>Z|[+-]\d{2}(?::?\d{2})?)?)?",
    re.ASCII,
)


def _parse_timestamp(value: Any) -> datetime:
    """ISO 8601 text only; a naive timestamp (seed 000's `utcnow().isoformat()`) is UTC.

    Fractional seconds are rounded to the microsecond the way PostgreSQL rounds them
    (`rint(fraction * 1e6)` on the double), not truncated: `10:59:59.9999999` is 11:00:00,
    so the loader and a plain `timestamptz` cast of the same text never disagree.
    """
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 string, got {type(value).__name__}")
    form = _TIMESTAMP_FORM.fullmatch(value)
    if form is None:
        raise ValueError(
            "not an ISO 8601 timestamp (expected YYYY-MM-DD[Thh:mm[:ss[.ffffff]]][Z|±hh:mm])"
        )
    fraction = form.group("fraction")
    if form.group("offset") is None and form.end() > 10:  # a naive time: UTC, parsed as such
        value += "+00:00"  # (cheaper than `replace(tzinfo=...)` after parsing)
    try:
        if fraction is None or len(fraction) <= 7:  # at most six digits after the dot
            parsed = datetime.fromisoformat(value)
        else:
            whole = value[: form.start("fraction")] + value[form.end("fraction") :]
            micros = round(float(fraction) * 1_000_000)
            parsed = datetime.fromisoformat(whole) + timedelta(microseconds=micros)
    except (ValueError, OverflowError):
        raise ValueError("not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def _finite_number(value: Any) -> float:
    """A JSON number: int or float, never a bool or a string, never NaN or infinite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("expected a finite number")
    return value


# --- bounds: every value fits raw and every dbt model downstream --------------------------
# A value the contract accepts must never stop `dbt build`: counts must survive being summed
# into bigint, durations and costs into numeric(38, 6), and an event's date must keep the
# daily marts (one row per day since the first event) small. The numeric bounds live in
# loader/limits.py with every other bound.

EARLIEST_EVENT = datetime(2000, 1, 1, tzinfo=timezone.utc)
"""Events dated before this are quarantined (a zero or year-1 timestamp is a bug)."""

FUTURE_SKEW = timedelta(days=1)
"""Events may be dated up to this far past the loader's clock (collectors' clock skew)."""


# [when computed (time.time()), latest accepted timestamp, the same as naive ISO text]
_latest: list[Any] = [0.0, EARLIEST_EVENT, ""]
_MAX_OFFSET = timedelta(hours=16)


def _refresh_latest() -> None:
    """now + FUTURE_SKEW, recomputed at most once a second (it is asked once per record)."""
    now = time.time()
    if now - _latest[0] >= 1:
        latest = datetime.fromtimestamp(now, timezone.utc) + FUTURE_SKEW
        _latest[:] = [now, latest, latest.strftime("%Y-%m-%dT%H:%M:%S.%f")]


def _latest_accepted() -> datetime:
    _refresh_latest()
    return _latest[1]


def _within_window(value: datetime) -> datetime:
    """A timestamp in [EARLIEST_EVENT, now + FUTURE_SKEW], with a whole-minute UTC offset."""
    offset = value.utcoffset()
    if offset:
        if offset.seconds % 60 or offset.microseconds:
            raise ValueError("the UTC offset must be whole minutes (PostgreSQL refuses seconds)")
        if not -_MAX_OFFSET < offset < _MAX_OFFSET:
            raise ValueError("the UTC offset must be under 16 hours (PostgreSQL refuses more)")
    if value < EARLIEST_EVENT:
        raise ValueError(f"timestamp is before {EARLIEST_EVENT:%Y-%m-%d}, the earliest accepted")
    if value > _latest_accepted():
        raise ValueError("timestamp is more than 1 day in the future (clock skew allowance)")
    return value


check_window = _within_window
"""The window every timestamp must fall in (raises ValueError), for the span contract."""

Timestamp = Annotated[datetime, BeforeValidator(_parse_timestamp), AfterValidator(_within_window)]

# The timestamp forms nearly every collector writes (seed 000's `utcnow().isoformat()`): a
# UTC date and time to the second, up to six fraction digits, naive or `Z` / `+00:00`. The
# one-call checkers (`check_event_json`) test it in pydantic-core (Rust's regex reads it
# alike: ASCII digits, `$` only at the very end), `utc_timestamp_text` with Python's.
_COMMON_UTC_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|\+00:00)?$"
)
_COMMON_UTC_FORM = re.compile(_COMMON_UTC_PATTERN)
_EARLIEST_TEXT = EARLIEST_EVENT.strftime("%Y-%m-%dT%H:%M:%S")


def utc_timestamp_text(value: str) -> str | None:
    """`Timestamp`'s verdict for the common forms, without building a datetime: the
    timestamp as text PostgreSQL reads as the same instant (`...+00`), or None when the
    value is not in a common form or `Timestamp` would refuse it (ask it then).
    """
    if _COMMON_UTC_FORM.fullmatch(value) is None:
        return None
    return _common_utc_text(value)


def _common_utc_text(value: str) -> str | None:
    """`utc_timestamp_text` of a value known to be in a common form (`_COMMON_UTC_PATTERN`).

    The same rules, on text: the same `fromisoformat` call as `_parse_timestamp`'s, on the
    date and time alone, decides they are real; the window is compared as text, which in
    this fixed zero-padded form orders exactly as the instants do (a shorter fraction is a
    prefix, so equal instants compare as not greater).
    """
    # Without its `Z` or `+00:00` (in these forms, only that puts a `+` six from the end).
    base = value[:-1] if value[-1] == "Z" else value[:-6] if value[-6] == "+" else value
    try:
        datetime.fromisoformat(base)
    except ValueError:
        return None
    _refresh_latest()
    if base < _EARLIEST_TEXT or base > _latest[2]:
        return None
    return base + "+00"


# --- identifiers and names: one form, bounded in bytes ------------------------------------
# Every identifier and name reaches an indexed or grouped column downstream (docs/contract.md
# lists them). Each is stored in one form, so one agent is one agent in the marts: Unicode
# NFC (an agent named in decomposed form, as macOS file names and some keyboards write
# it, is the same agent as its composed form). A name that holds a character a reader
# cannot see or that reorders what is shown (a control, zero-width or bidirectional
# formatting character, a line separator) is quarantined rather than silently cleaned: two
# names that look the same would otherwise be told apart, or joined, by a rule no reader can
# see. The byte bound (after normalisation: that form is what is stored and indexed) keeps
# every index under PostgreSQL's b-tree row limit.

BOUND_ERRORS = ("too_many_bytes", "hidden_character")
"""The error kinds of the identifier and name rules: their reasons never show the value."""


def _one_form(most: int) -> Callable[[str], str]:
    """The validator of an identifier or name of at most `most` UTF-8 bytes: its NFC form."""

    def one_form(value: str) -> str:
        if not value.isascii():
            value = unicodedata.normalize("NFC", value)
        hidden = HIDDEN_CHARACTER.search(value)
        if hidden:
            raise PydanticCustomError(
                "hidden_character",
                "holds U+{code}, a control, zero-width or bidirectional formatting character",
                {"code": f"{ord(hidden.group()):04X}"},
            )
        # At most 4 bytes a character: a value of most // 4 characters always fits.
        if len(value) > most // 4 and len(value.encode("utf-8", "surrogatepass")) > most:
            raise PydanticCustomError(
                "too_many_bytes", "longer than {most} bytes (UTF-8)", {"most": most}
            )
        return value

    return one_form


Identifier = Annotated[StrictStr, Field(min_length=1), AfterValidator(_one_form(MAX_ID_BYTES))]
"""A required identifier (event_id, id, conversation_id, agent_id, publisher_id, tenant_id)."""
MaybeEmptyIdentifier = Annotated[StrictStr, AfterValidator(_one_form(MAX_ID_BYTES))]
"""session_id and user_id: the conversation-analytics reference writes "" for none."""
Name = Annotated[StrictStr, AfterValidator(_one_form(MAX_NAME_BYTES))]
NonEmptyName = Annotated[StrictStr, Field(min_length=1), AfterValidator(_one_form(MAX_NAME_BYTES))]

# The same rules as pydantic-core alone checks them, for the one-call checkers
# (`check_event_json`): printable ASCII only, so a character is a byte, NFC holds and
# nothing is hidden. A value outside it (any other character) is not refused there: its
# record takes the standard way, where the rules above give the verdict and the reason.
_PRINTABLE_ASCII = r"^[ -~]*$"


def _plain(most: int, least: int = 0) -> Any:
    return Annotated[StrictStr, Field(min_length=least, max_length=most, pattern=_PRINTABLE_ASCII)]


_PLAIN_NAMES: dict[Any, Any] = {
    Identifier: _plain(MAX_ID_BYTES, 1),
    MaybeEmptyIdentifier: _plain(MAX_ID_BYTES),
    NonEmptyName: _plain(MAX_NAME_BYTES, 1),
    Name | None: _plain(MAX_NAME_BYTES) | None,
    list[Name]: list[_plain(MAX_NAME_BYTES)],  # type: ignore[misc]
}

NonNegativeInt = Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)]
# A JSON number stays what it was written as: 1840 stays an int (a float would be stored
# as 1840.0 by the loader, which writes the validated values).
_Number = Union[StrictInt, float]  # noqa: UP007
NonNegativeNumber = Annotated[
    _Number, BeforeValidator(_finite_number), Field(ge=0, le=MAX_MILLISECONDS)
]
Cost = Annotated[_Number, BeforeValidator(_finite_number), Field(ge=0, le=MAX_COST_USD)]


class _Body(BaseModel):
    """A JSON body whose known keys are typed and whose other keys are kept as they are."""

    model_config = ConfigDict(extra="allow")


# --- seed 000: conversation events -------------------------------------------------------


class AgentMetadata(_Body):
    """`metadata`: model name, token counts and latency (seed 000's ETL reads the last two)."""

    model: Name | None = None
    total_tokens: NonNegativeInt | None = None
    prompt_tokens: NonNegativeInt | None = None
    completion_tokens: NonNegativeInt | None = None
    latency_ms: NonNegativeNumber | None = None


class MessagePayload(_Body):
    text: StrictStr | None = None
    role: Name | None = None


class ToolCallPayload(_Body):
    tool_name: Name | None = None
    arguments: dict[str, Any] | None = None


class HandoffPayload(_Body):
    from_agent: Name | None = None
    to_agent: Name | None = None
    reason: StrictStr | None = None


class ErrorPayload(_Body):
    """`error`: an error without a usable `error_type` (missing, null, "") is still an error.

    Seed 000's `top_error_types` counts it under a null error type, and it still marks when
    its conversation ended; staging reads "" as null, so every model counts it the same way.
    """

    error_type: Name | None = None
    message: StrictStr | None = None


AGENT_PAYLOADS: dict[str, type[_Body]] = {
    "conversation_start": _Body,
    "message": MessagePayload,
    "tool_call": ToolCallPayload,
    "handoff": HandoffPayload,
    "error": ErrorPayload,
    "completion": _Body,
    "conversation_end": _Body,
}


class AgentEvent(BaseModel):
    """Seed 000's `AgentEvent.to_dict()`: its nine keys, exactly; `metadata` may be missing.

    Seed 000's ETL reads `event.get("metadata", {})`: an event without it still counts, with
    no tokens and no latency; it is stored with `metadata` = `{}`.

    `payload` is checked by the model for the event type (AGENT_PAYLOADS), through
    `parse_event`; validating this class directly checks the envelope and metadata only.
    """

    model_config = ConfigDict(extra="forbid")

    event_id: Identifier
    conversation_id: Identifier
    session_id: MaybeEmptyIdentifier
    event_type: Literal[AGENT_EVENT_TYPES]  # type: ignore[valid-type]
    timestamp: Timestamp
    agent_name: NonEmptyName
    user_id: MaybeEmptyIdentifier
    payload: _Body
    metadata: AgentMetadata = Field(default_factory=AgentMetadata)


# --- seed 004: marketplace events --------------------------------------------------------


class InvocationProperties(_Body):
    """`agent_completed` / `agent_errored`: what seed 004's `track_invocation` writes.

    Every key may be missing (or null): the invocation still happened, and seed 004's
    dashboard counts it, reading `properties.get("cost_usd", 0)` and
    `if "duration_ms" in e.properties`. A missing value stays null in the warehouse; the
    marts apply the seed's rules (no cost is 0 revenue, no duration is left out of latency).
    """

    input_tokens: NonNegativeInt | None = None
    output_tokens: NonNegativeInt | None = None
    tool_calls: list[Name] = []
    duration_ms: NonNegativeNumber | None = None
    cost_usd: Cost | None = None
    error_type: Name | None = None


class InvokedProperties(_Body):
    input_tokens: NonNegativeInt | None = None


class ToolProperties(_Body):
    """`tool_called` / `tool_failed`: one tool use, named by `tool_name`."""

    tool_name: NonEmptyName
    duration_ms: NonNegativeNumber | None = None
    error: StrictStr | None = None


class FeedbackProperties(_Body):
    """`user_feedback`: seed 004's `track_feedback`."""

    rating: Annotated[StrictInt, Field(ge=1, le=5)]
    comment: StrictStr | None = None


class InstallProperties(_Body):
    plan: Name | None = None


MARKETPLACE_PROPERTIES: dict[str, type[_Body]] = {
    "agent_invoked": InvokedProperties,
    "agent_completed": InvocationProperties,
    "agent_errored": InvocationProperties,
    "tool_called": ToolProperties,
    "tool_failed": ToolProperties,
    "user_feedback": FeedbackProperties,
    "install": InstallProperties,
    "uninstall": InstallProperties,
}


class MarketplaceEvent(BaseModel):
    """Seed 004's `AnalyticsEvent`, `event_type` as the enum's value string.

    `properties` is checked by the model for the event type (MARKETPLACE_PROPERTIES),
    through `parse_event`.
    """

    model_config = ConfigDict(extra="forbid")

    id: Identifier
    event_type: Literal[MARKETPLACE_EVENT_TYPES]  # type: ignore[valid-type]
    agent_id: Identifier
    publisher_id: Identifier
    tenant_id: Identifier
    timestamp: Timestamp
    properties: _Body


# --- routing -----------------------------------------------------------------------------


def _by_event_type(base: type[BaseModel], body: str, bodies: dict[str, type[_Body]]) -> TypeAdapter:
    """One validator for a shape: a union of `base` narrowed to each event type's body model.

    Validating envelope and body in one call (discriminated on `event_type`) is about twice
    as fast as validating them one after the other, and the loader does it per record.
    """

    def variant(event_type: str, model: type[_Body]) -> type[BaseModel]:
        fields: dict[str, Any] = {"event_type": (Literal[event_type], ...), body: (model, ...)}
        return create_model(f"{base.__name__}_{event_type}", __base__=base, **fields)

    variants = tuple(variant(event_type, model) for event_type, model in bodies.items())
    # A union of types built at run time, which no type checker can follow.
    union = Annotated[Union[variants], Field(discriminator="event_type")]  # type: ignore[valid-type]  # noqa: UP007
    return TypeAdapter(union)


# Built on first use (`_built`): a load whose records all pass the fast check from their
# text (`check_event_json`) never needs them, and building them is a fifth of start-up.
_LAZY_VALIDATORS = {
    "_AGENT_EVENT": lambda: _by_event_type(AgentEvent, "payload", AGENT_PAYLOADS),
    "_MARKETPLACE_EVENT": lambda: _by_event_type(
        MarketplaceEvent, "properties", MARKETPLACE_PROPERTIES
    ),
    "_AGENT_CHECK": lambda: _checker(AgentEvent, "payload", AGENT_PAYLOADS),
    "_MARKETPLACE_CHECK": lambda: _checker(MarketplaceEvent, "properties", MARKETPLACE_PROPERTIES),
}


def _built(name: str) -> TypeAdapter:
    """One of `_LAZY_VALIDATORS`, built the first time it is asked for."""
    adapter = globals().get(name)
    if adapter is None:
        adapter = globals()[name] = _LAZY_VALIDATORS[name]()
    return adapter


def __getattr__(name: str) -> Any:
    """`contract._AGENT_CHECK` and the like, from outside (tests), built on first use."""
    if name in _LAZY_VALIDATORS:
        return _built(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- the same contract as typed dicts: a verdict without building model instances --------
# Building a model instance costs pydantic-core about three times what validating the same
# dict as a TypedDict costs, and the loader only needs the verdict (and the timestamp). The
# typed dicts are generated from the models above, field by field with the same annotated
# types, so the two cannot drift: `check_event` accepts exactly what `parse_event` accepts
# (tests/loader/test_contract.py holds them to it), and a record it refuses goes through
# `parse_event` for the reason.


def _as_typed_dict(
    model: type[BaseModel], types: dict[Any, Any] | None = None, **overrides: Any
) -> Any:
    """A TypedDict with `model`'s fields, annotated types and `extra` setting.

    A field with a default becomes NotRequired; a body field typed by a model becomes that
    model's typed dict (through `overrides`); an annotated type in `types` becomes its value.
    """
    hints = get_type_hints(model, include_extras=True)
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation = overrides.get(name, hints[name])
        annotation = (types or {}).get(annotation, annotation)
        fields[name] = annotation if info.is_required() else NotRequired[annotation]
    # Built at run time from `fields`, which a type checker cannot follow.
    typed = TypedDict(f"{model.__name__}Dict", fields)  # type: ignore[misc]
    typed.__pydantic_config__ = ConfigDict(extra=model.model_config.get("extra"))  # type: ignore[attr-defined]
    return typed


def _checker(
    base: type[BaseModel],
    body: str,
    bodies: dict[str, type[_Body]],
    config: ConfigDict | None = None,
    types: dict[Any, Any] | None = None,
    **overrides: Any,
) -> TypeAdapter:
    """`_by_event_type` with typed dicts: one discriminated union per shape (`types`: see
    `_as_typed_dict`, for the bodies)."""
    variants = tuple(
        _as_typed_dict(
            base,
            types,
            event_type=Literal[event_type],
            **{body: _as_typed_dict(model, types)},
            **({"metadata": _as_typed_dict(AgentMetadata, types)} if base is AgentEvent else {}),
            **overrides,
        )
        for event_type, model in bodies.items()
    )
    # A union of types built at run time, which no type checker can follow.
    union = Annotated[Union[variants], Field(discriminator="event_type")]  # type: ignore[valid-type]  # noqa: UP007
    return TypeAdapter(union, config=config)


# `_AGENT_CHECK` and `_MARKETPLACE_CHECK` (built on first use, above) check decoded records;
# these, the timestamp left as text for `utc_timestamp_text` (two Python validators per
# record are a third of the check's time): only `check_event_json` uses these. Of the
# strings read from JSON only keys are cached: ids and timestamps seldom repeat, and
# caching every string costs a tenth of the check. A number read from JSON is never a bool
# or a string, and pydantic-core can refuse NaN and infinities and check the bounds itself
# (on each member of the union: on the union they are Python calls): the numbers
# `_finite_number` and the bounds let through, without a Python call for each.
_JSON_TEXT = ConfigDict(cache_strings="keys")
_COMMON_UTC_TEXT = Annotated[StrictStr, Field(pattern=_COMMON_UTC_PATTERN)]


def _json_number(most: int) -> Any:
    """A number in [0, most] read from JSON, or null, checked in pydantic-core alone."""
    whole = Annotated[StrictInt, Field(ge=0, le=most)]
    finite = Annotated[StrictFloat, Field(ge=0, le=most, allow_inf_nan=False)]
    return Union[whole, finite] | None  # noqa: UP007


_JSON_NUMBERS = {
    NonNegativeNumber | None: _json_number(MAX_MILLISECONDS),
    Cost | None: _json_number(MAX_COST_USD),
    **_PLAIN_NAMES,
}
_AGENT_CHECK_TEXT = _checker(
    AgentEvent,
    "payload",
    AGENT_PAYLOADS,
    _JSON_TEXT,
    _JSON_NUMBERS,
    timestamp=_COMMON_UTC_TEXT,
)
_MARKETPLACE_CHECK_TEXT = _checker(
    MarketplaceEvent,
    "properties",
    MARKETPLACE_PROPERTIES,
    _JSON_TEXT,
    _JSON_NUMBERS,
    timestamp=_COMMON_UTC_TEXT,
)
# pydantic-core's validators themselves: `TypeAdapter.validate_json` is a Python wrapper
_AGENT_VALIDATOR_TEXT = _AGENT_CHECK_TEXT.validator
_MARKETPLACE_VALIDATOR_TEXT = _MARKETPLACE_CHECK_TEXT.validator


def _describe(error: ValidationError, event_types: tuple[str, ...], show_values: bool) -> str:
    """One readable line per failed field: `properties.rating: ... (got 7)`.

    With `show_values` off (privacy options on) the rejected value is never echoed: the
    reason names the field and the rule only. A key the contract does not know is never
    named, whatever the options: a key is text the sender chose (an e-mail address, a
    6,000-byte string), and the reason is counted, logged and shown in the answer.
    """
    parts = []
    unknown: dict[str, int] = {}  # where: how many keys outside the contract
    for item in error.errors(include_url=False):
        kind, location = item["type"], item["loc"]
        if location and location[0] in event_types:
            location = location[1:]  # the union's variant name, not a field
        if kind == "extra_forbidden":
            where = ".".join(str(part) for part in location[:-1]) or "record"
            if where not in unknown:
                parts.append(where)  # its place, filled in below
            unknown[where] = unknown.get(where, 0) + 1
            continue
        if kind == "union_tag_not_found":
            parts.append("event_type: Field required")
            continue
        if kind == "union_tag_invalid":
            expected = ", ".join(repr(event_type) for event_type in event_types)
            got = f" (got {item['ctx']['tag']!r})" if show_values else ""
            parts.append(f"event_type: Input should be one of {expected}{got}")
            continue
        message = item["msg"]
        if kind == "value_error":
            message = message.removeprefix("Value error, ")
        if show_values and kind not in ("missing", *BOUND_ERRORS) and "input" in item:
            shown = repr(item["input"])
            message += f" (got {shown[:60]}{'...' if len(shown) > 60 else ''})"
        parts.append(f"{'.'.join(str(part) for part in location) or 'record'}: {message}")
    for where, count in unknown.items():
        keys = "a key" if count == 1 else f"{count} keys"
        hint = ""
        if where == "record":  # the envelope: the one place with fixed keys
            body = "`payload` or `metadata`" if event_types is AGENT_EVENT_TYPES else "`properties`"
            hint = f" (the envelope's keys are fixed: put other values in {body})"
        parts[parts.index(where)] = f"{where}: {keys} outside the contract{hint}"
    return "; ".join(parts)


def parse_event(record: Any, show_values: bool = True) -> AgentEvent | MarketplaceEvent:
    """Route a decoded JSON record to its shape and validate it, or raise ContractError.

    The shape is told by the id field (`event_id` for seed 000, `id` for seed 004); the
    envelope and the body of the record's event type are then validated together.
    """
    if not isinstance(record, dict):
        kind = "an array" if isinstance(record, list) else f"a {type(record).__name__}"
        raise ContractError(f"record is {kind}, expected a JSON object")
    event_types: tuple[str, ...]
    if "event_id" in record:
        adapter, event_types = _built("_AGENT_EVENT"), AGENT_EVENT_TYPES
    elif "id" in record:
        adapter, event_types = _built("_MARKETPLACE_EVENT"), MARKETPLACE_EVENT_TYPES
    else:
        raise ContractError(
            "record fits neither event shape: it has no 'event_id' (conversation event,"
            " seed 000) and no 'id' (marketplace event, seed 004)"
        )
    try:
        return adapter.validate_python(record)
    except ValidationError as error:
        raise ContractError(_describe(error, event_types, show_values)) from None


def check_event(record: Any, show_values: bool = True) -> tuple[bool, datetime]:
    """`parse_event`'s verdict, faster: (is it a conversation event, its timestamp).

    Raises ContractError with `parse_event`'s reason for a record that breaks the contract.
    """
    _, conversation, timestamp = checked_record(record, show_values)
    return conversation, timestamp


def checked_record(record: Any, show_values: bool = True) -> tuple[dict[str, Any], bool, datetime]:
    """`check_event`, with the record as it is stored: its identifiers and names in NFC.

    The record's other values are as they were read (the typed dicts copy them, keys as
    read); raises ContractError with `parse_event`'s reason.
    """
    if isinstance(record, dict):
        if "event_id" in record:
            try:
                value = _built("_AGENT_CHECK").validate_python(record)
                return value, True, value["timestamp"]
            except ValidationError:
                pass
        elif "id" in record:
            try:
                value = _built("_MARKETPLACE_CHECK").validate_python(record)
                return value, False, value["timestamp"]
            except ValidationError:
                pass
    event = parse_event(record, show_values)  # the reason; raises ContractError
    # (only if the typed dicts refused what the models accept: tests hold them to agree)
    value = event.model_dump(exclude_unset=True)
    return value, isinstance(event, AgentEvent), event.timestamp


def check_event_json(text: str) -> tuple[dict[str, Any], str] | None:
    """The record validated from its JSON text in one pydantic-core call, or None.

    None means "not shown valid this way": the caller then decodes the text with the
    standard decoder and asks `check_event`, which gives the verdict and the reason. The
    result is the validated record as a dict (its numbers as the contract's types read
    them, the `event_type`-routed body checked as `parse_event` checks it) and its timestamp
    as UTC text (`utc_timestamp_text`); a timestamp in another form also gives None.
    """
    validator = _AGENT_VALIDATOR_TEXT if '"event_id"' in text else _MARKETPLACE_VALIDATOR_TEXT
    try:
        value = validator.validate_json(text)
    except ValidationError:
        return None
    stamp = _common_utc_text(value["timestamp"])  # its form checked by the validator
    return None if stamp is None else (value, stamp)
