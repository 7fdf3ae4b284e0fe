"""Synthetic OpenTelemetry GenAI spans beside the synthetic events, as agents emit them.

Each generated invocation and each assistant message becomes a trace exported as the
OpenTelemetry Collector's `file` exporter writes it: OTLP JSON, one export request per line.
The spans carry the same tokens as the events they mirror, so the cost marts can be checked
against the events, and they are written in the three dialects the warehouse reads (the
current GenAI conventions, the older ones instrumentations still emit by default, and
OpenInference), so every staging branch gets rows. An agent span wraps each call: it must
not be counted as a call itself.

Planted, to give the cost insights something true to find: one tenant's calls on the last
day loop (many more calls per invocation than usual), and one agent calls a model that has
no price in `seeds/model_prices.csv`.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

# (requested model, response model, provider): the response names the dated snapshot, as
# the providers' APIs answer.
PRICED_MODELS = (
    ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", "openai"),
    ("gpt-4.1-mini", "gpt-4.1-mini-2025-04-14", "openai"),
    ("claude-3-5-haiku-20241022", "claude-3-5-haiku-20241022", "anthropic"),
)
UNPRICED_MODEL = ("in-house-llm-v2", "in-house-llm-v2", "acme")
DIALECTS = (("current", 60), ("legacy", 25), ("openinference", 15))
LOOPING_CALLS = 12  # calls per invocation of the planted cost spike


@dataclass(frozen=True)
class Call:
    """One model call, as the event it mirrors describes it."""

    started_at: datetime
    duration_ms: float
    input_tokens: int
    output_tokens: int
    errored: bool
    agent: str
    tenant_id: str | None = None
    user_id: str | None = None
    conversation_id: str | None = None
    model: tuple[str, str, str] | None = None


def _attribute(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):  # OTLP JSON writes 64-bit integers as strings
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": str(value)}}


def _nanos(moment: datetime) -> str:
    return str(int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000)


class SpanWriter:
    """Turns calls into traces and writes them to rotating `spans-NNNNN.jsonl[.gz]` files."""

    def __init__(self, folder: Path, seed: int, spans_per_file: int = 20_000) -> None:
        self.folder, self.spans_per_file = folder, spans_per_file
        self.rng = random.Random(seed + 3)  # its own stream: the events stay as they were
        self.files: list[Path] = []
        self.spans = 0
        self._handle: TextIO | None = None
        self._in_file = 0

    def _hex(self, bits: int) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def model_for(self, agent: str, unpriced_agent: str | None) -> tuple[str, str, str]:
        if agent == unpriced_agent:
            return UNPRICED_MODEL
        return PRICED_MODELS[sum(map(ord, agent)) % len(PRICED_MODELS)]

    def write(self, call: Call, calls: int = 1) -> None:
        """The trace of one invocation or message: an agent span and `calls` model calls."""
        rng = self.rng
        names, weights = [name for name, _ in DIALECTS], [weight for _, weight in DIALECTS]
        dialect = rng.choices(names, weights)[0]
        requested, responded, provider = call.model or PRICED_MODELS[0]
        trace_id, agent_span_id = self._hex(128), self._hex(64)
        end = call.started_at + timedelta(milliseconds=call.duration_ms)
        common = {"tenant.id": call.tenant_id, "user.id": call.user_id}
        # the agent on every span of its trace: staging reads a call's agent from the call's
        # own span (or its resource), never from a parent exported later
        common["agent.name" if dialect == "openinference" else "gen_ai.agent.name"] = call.agent
        conversation_key = "session.id" if dialect == "openinference" else "gen_ai.conversation.id"
        common[conversation_key] = call.conversation_id
        if dialect == "openinference":
            agent_attributes = {"openinference.span.kind": "AGENT", "agent.name": call.agent}
        else:
            agent_attributes = {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": call.agent,
            }
        spans = [
            self._span(
                trace_id,
                agent_span_id,
                None,
                f"invoke_agent {call.agent}",
                1,
                call.started_at,
                end,
                call.errored,
                {**agent_attributes, **common},
            )
        ]
        # A loop resends the whole prompt: every call of the trace carries the invocation's
        # tokens, so a looping trace costs `calls` times as much.
        step = timedelta(milliseconds=call.duration_ms / calls)
        for index in range(calls):
            input_tokens, output_tokens = call.input_tokens, call.output_tokens
            cached = input_tokens // 4 if rng.random() < 0.3 else 0
            usage = _usage(
                dialect, provider, requested, responded, input_tokens, output_tokens, cached
            )
            errored = call.errored and index == calls - 1
            if errored:
                usage["error.type"] = "upstream_5xx"
            start = call.started_at + step * index
            name = "ChatCompletion" if dialect == "openinference" else f"chat {requested}"
            spans.append(
                self._span(
                    trace_id,
                    self._hex(64),
                    agent_span_id,
                    name,
                    3,
                    start,
                    start + step,
                    errored,
                    {**usage, **common},
                )
            )
        self._write_request(call.agent, dialect, spans)

    def _span(
        self,
        trace_id: str,
        span_id: str,
        parent: str | None,
        name: str,
        kind: int,
        start: datetime,
        end: datetime,
        errored: bool,
        attributes: dict[str, Any],
    ) -> dict[str, Any]:
        return {
            "traceId": trace_id,
            "spanId": span_id,
            "parentSpanId": parent or "",
            "name": name,
            "kind": kind,
            "startTimeUnixNano": _nanos(start),
            "endTimeUnixNano": _nanos(end),
            "attributes": [_attribute(k, v) for k, v in attributes.items() if v is not None],
            "status": {"code": 2, "message": "upstream_5xx"} if errored else {"code": 0},
        }

    def _write_request(self, agent: str, dialect: str, spans: list[dict[str, Any]]) -> None:
        scope = {
            "current": ("opentelemetry.instrumentation.openai_v2", "2.3b0"),
            "legacy": ("opentelemetry.instrumentation.openai_v2", "2.1b0"),
            "openinference": ("openinference.instrumentation.openai", "0.1.30"),
        }[dialect]
        request = {
            "resourceSpans": [
                {
                    "resource": {"attributes": [_attribute("service.name", agent)]},
                    "scopeSpans": [
                        {"scope": {"name": scope[0], "version": scope[1]}, "spans": spans}
                    ],
                }
            ]
        }
        if self._handle is None or self._in_file >= self.spans_per_file:
            self._open_next()
        assert self._handle is not None
        self._handle.write(json.dumps(request, separators=(",", ":")) + "\n")
        self._in_file += len(spans)
        self.spans += len(spans)

    def _open_next(self) -> None:
        self.close()
        index = len(self.files)
        suffix = "jsonl.gz" if index % 2 else "jsonl"
        path = self.folder / f"spans-{index:05d}.{suffix}"
        opener: Callable[..., TextIO] = gzip.open if suffix.endswith(".gz") else open
        self._handle = opener(path, "wt", encoding="utf-8")
        self._in_file = 0
        self.files.append(path)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _usage(
    dialect: str,
    provider: str,
    requested: str,
    responded: str,
    input_tokens: int,
    output_tokens: int,
    cached: int,
) -> dict[str, Any]:
    """A call's model and token attributes, in the dialect's own names."""
    if dialect == "openinference":
        return {
            "openinference.span.kind": "LLM",
            "llm.provider": provider,
            "llm.model_name": responded,
            "llm.token_count.prompt": input_tokens,
            "llm.token_count.completion": output_tokens,
            "llm.token_count.total": input_tokens + output_tokens,
            "llm.token_count.prompt_details.cache_read": cached or None,
        }
    if dialect == "legacy":
        return {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": provider,
            "gen_ai.request.model": requested,
            "gen_ai.response.model": responded,
            "gen_ai.usage.prompt_tokens": input_tokens,
            "gen_ai.usage.completion_tokens": output_tokens,
        }
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": requested,
        "gen_ai.response.model": responded,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
        "gen_ai.usage.cache_read.input_tokens": cached or None,
    }
