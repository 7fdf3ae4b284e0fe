"""A synthetic workload: batch files in both seed shapes, as collectors write them.

Deterministic for a given seed. Conversations (seed 000) go start → user and assistant
messages → tool calls → maybe a handoff or an error → completion → end; marketplace events
(seed 004) are invocations with their tool calls, feedback, installs and uninstalls. Events
stream to disk a file at a time, so memory does not grow with the number of events.
Anomalies can be planted (a publisher's error rate, a slow publisher, a failing tool, unhappy
users), and so can duplicate and late events, to give the insights something true to find.
With `llm_spans`, the model calls behind the events are also written as OpenTelemetry GenAI
spans (loader/devtools/spans.py).
"""

from __future__ import annotations

import gzip
import json
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

from loader.devtools.spans import LOOPING_CALLS, Call, SpanWriter

AGENTS = ("triage", "billing", "shipping", "tech_support", "returns")
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-haiku")
# What a provider answers for each requested model (the spans' response model).
RESPONSE_MODELS = {
    "gpt-4o-mini": ("gpt-4o-mini-2024-07-18", "openai"),
    "gpt-4o": ("gpt-4o-2024-08-06", "openai"),
    "claude-3-5-haiku": ("claude-3-5-haiku-20241022", "anthropic"),
}
ERROR_TYPES = (  # weighted: the first is the most common
    ("tool_timeout", 30),
    ("rate_limited", 20),
    ("context_overflow", 12),
    ("invalid_tool_args", 9),
    ("upstream_5xx", 7),
    ("auth_expired", 5),
    ("parse_failure", 4),
    ("guardrail_block", 3),
    ("unknown", 2),
    ("policy_violation", 1),
    ("quota_exceeded", 1),
)
TOOLS = ("search", "crm_lookup", "calendar", "send_email", "web_fetch", "sql_query")
SENTENCES = (
    "Where is my order? It was supposed to arrive yesterday.",
    "I was charged twice for the same subscription this month.",
    "Can you help me reset the password on my account?",
    "The integration keeps failing with a timeout when I sync contacts.",
    "I'd like to return the headphones, they stopped working after a week.",
    "What are the opening hours of the store downtown this weekend?",
)
REPLIES = (
    "I can help with that. Let me look up the details for you right away.",
    "Thanks for your patience. I found the record and here is what happened.",
    "I've escalated this to a specialist who will follow up within the hour.",
    "That should be fixed now. Is there anything else I can help you with today?",
)


@dataclass
class Workload:
    """What to generate. Rates are shares of invocations (or tool calls) in [0, 1]."""

    events: int = 10_000
    days: int = 3
    end: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    seed: int = 7
    marketplace_share: float = 0.5
    publishers: int = 6
    agents_per_publisher: int = 2
    tenants: int = 40
    events_per_file: int = 50_000
    error_rate: float = 0.01
    tool_failure_rate: float = 0.02
    duplicate_rate: float = 0.0
    late_rate: float = 0.0
    # Planted anomalies. Publishers are pub-01, pub-02, ...; their agents pub-01-agent-1, ...
    error_rate_by_publisher: dict[str, float] = field(default_factory=dict)
    slow_agents: set[str] = field(default_factory=set)  # durations around 16 s, not 1.3 s
    failing_tools: dict[tuple[str, str], float] = field(default_factory=dict)  # (pub, tool)
    unhappy_publishers: set[str] = field(default_factory=set)  # ratings mostly 1 and 2
    # OpenTelemetry GenAI spans of the model calls behind the events (spans-*.jsonl files).
    llm_spans: bool = False
    cost_spike_tenant: str | None = None  # its calls loop on the last day
    unpriced_agent: str | None = None  # calls a model with no price

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)


@dataclass
class Written:
    files: list[Path] = field(default_factory=list)
    events: int = 0
    duplicates: int = 0
    late: int = 0
    span_files: list[Path] = field(default_factory=list)
    spans: int = 0


class _Files:
    """Rotates output files and their formats: NDJSON, gzip NDJSON, {"events": [...]}."""

    FORMATS = ("ndjson", "ndjson.gz", "json")

    def __init__(self, folder: Path, per_file: int, written: Written) -> None:
        self.folder, self.per_file, self.written = folder, per_file, written
        self._handle: TextIO | None = None
        self._count = 0
        self._format = ""

    def write(self, event: dict[str, Any]) -> None:
        if self._handle is None or self._count >= self.per_file:
            self._open_next()
        assert self._handle is not None
        text = json.dumps(event, separators=(",", ":"))
        if self._format == "json":
            self._handle.write(("," if self._count else "") + "\n" + text)
        else:
            self._handle.write(text + "\n")
        self._count += 1
        self.written.events += 1

    def _open_next(self) -> None:
        self.close()
        index = len(self.written.files)
        self._format = self.FORMATS[index % len(self.FORMATS)]
        path = self.folder / f"batch-{index:05d}.{self._format}"
        opener: Callable[..., TextIO] = gzip.open if self._format.endswith(".gz") else open
        self._handle = opener(path, "wt", encoding="utf-8")
        if self._format == "json":
            self._handle.write('{"events": [')
        self._count = 0
        self.written.files.append(path)

    def close(self) -> None:
        if self._handle is not None:
            if self._format == "json":
                self._handle.write("\n]}\n")
            self._handle.close()
            self._handle = None


class Generator:
    def __init__(self, workload: Workload, spans: SpanWriter | None = None) -> None:
        self.w = workload
        self.spans = spans
        self.rng = random.Random(workload.seed)
        self.publishers = [f"pub-{i + 1:02d}" for i in range(workload.publishers)]
        self.tenants = [f"tenant-{i + 1:03d}" for i in range(workload.tenants)]
        self._ids = random.Random(workload.seed + 1)

    def _id(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def _moment(self) -> datetime:
        span = (self.w.end - self.w.start).total_seconds() - 3600
        return self.w.start + timedelta(seconds=self.rng.uniform(0, max(span, 1)))

    # --- seed 000 ------------------------------------------------------------------------

    def conversation(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        conversation_id, session_id = self._id(), self._id()
        user_id = f"user-{rng.randrange(1, 5000):05d}"
        agent = rng.choice(AGENTS)
        at = self._moment()

        def event(event_type: str, payload: dict, metadata: dict | None = None) -> dict:
            nonlocal at
            at += timedelta(seconds=rng.uniform(1, 40))
            return {
                "event_id": self._id(),
                "conversation_id": conversation_id,
                "session_id": session_id,
                "event_type": event_type,
                # seed 000 writes naive UTC (`utcnow().isoformat()`)
                "timestamp": at.replace(tzinfo=None).isoformat(),
                "agent_name": agent,
                "user_id": user_id,
                "payload": payload,
                "metadata": metadata or {},
            }

        yield event("conversation_start", {"channel": rng.choice(("web", "voice", "sms"))})
        errored = False
        for turn in range(rng.randint(1, 5)):
            yield event("message", {"text": rng.choice(SENTENCES), "role": "user"})
            if rng.random() < 0.35:
                tool = rng.choice(TOOLS)
                yield event(
                    "tool_call",
                    {"tool_name": tool, "arguments": {"query": rng.choice(SENTENCES)[:30]}},
                    {"latency_ms": round(rng.lognormvariate(5.5, 0.6), 1)},
                )
            if rng.random() < 0.04:
                error_type = rng.choices(*zip(*ERROR_TYPES, strict=True))[0]
                yield event("error", {"error_type": error_type, "message": f"{error_type} in turn"})
                errored = True
                if rng.random() < 0.5:
                    break
            prompt = rng.randint(200, 1500)
            completion = rng.randint(20, 400)
            reply = event(
                "message",
                {"text": rng.choice(REPLIES), "role": "assistant"},
                {
                    "model": rng.choice(MODELS),
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                    "latency_ms": round(rng.lognormvariate(6.8, 0.5), 1),
                },
            )
            if self.spans:
                model = reply["metadata"]["model"]
                self.spans.write(
                    Call(
                        started_at=at - timedelta(milliseconds=reply["metadata"]["latency_ms"]),
                        duration_ms=reply["metadata"]["latency_ms"],
                        input_tokens=prompt,
                        output_tokens=completion,
                        errored=False,
                        agent=agent,
                        user_id=user_id,
                        conversation_id=conversation_id,
                        model=(model, *RESPONSE_MODELS[model]),
                    )
                )
            yield reply
            if turn == 0 and rng.random() < 0.12:
                target = rng.choice([a for a in AGENTS if a != agent])
                yield event("handoff", {"from_agent": agent, "to_agent": target, "reason": "skill"})
                agent = target
        if not errored and rng.random() < 0.8:
            yield event("completion", {"resolved": True})
        if rng.random() < 0.9:
            yield event("conversation_end", {})

    # --- seed 004 ------------------------------------------------------------------------

    def invocation(self) -> Iterator[dict[str, Any]]:
        rng, w = self.rng, self.w
        publisher = rng.choice(self.publishers)
        agent_id = f"{publisher}-agent-{rng.randrange(w.agents_per_publisher) + 1}"
        tenant = rng.choice(self.tenants)
        at = self._moment()

        def event(event_type: str, properties: dict) -> dict:
            return {
                "id": self._id(),
                "event_type": event_type,
                "agent_id": agent_id,
                "publisher_id": publisher,
                "tenant_id": tenant,
                "timestamp": at.isoformat(),
                "properties": properties,
            }

        if rng.random() < 0.01:
            yield event("install", {"plan": rng.choice(("free", "pro", "enterprise"))})
        if rng.random() < 0.002:
            yield event("uninstall", {})
        tools = rng.sample(TOOLS, rng.randint(0, 3))
        for tool in tools:
            at += timedelta(milliseconds=rng.randint(50, 900))
            failure_rate = w.failing_tools.get((publisher, tool), w.tool_failure_rate)
            if rng.random() < failure_rate:
                yield event("tool_failed", {"tool_name": tool, "error": "HTTP 502"})
            else:
                yield event("tool_called", {"tool_name": tool})
        slow = agent_id in w.slow_agents
        duration = rng.lognormvariate(9.7 if slow else 7.2, 0.45)
        errored = rng.random() < w.error_rate_by_publisher.get(publisher, w.error_rate)
        input_tokens = rng.randint(100, 4000)
        output_tokens = rng.randint(20, 1200)
        properties = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "tool_calls": tools,
            "duration_ms": int(duration),
            "cost_usd": 0.0 if errored else round((input_tokens + 3 * output_tokens) * 2e-6, 6),
        }
        if self.spans:
            looping = tenant == w.cost_spike_tenant and at >= w.end - timedelta(days=1)
            self.spans.write(
                Call(
                    started_at=at,
                    duration_ms=int(duration),
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    errored=errored,
                    agent=agent_id,
                    tenant_id=tenant,
                    model=self.spans.model_for(agent_id, w.unpriced_agent),
                ),
                calls=LOOPING_CALLS if looping else 1,
            )
        at += timedelta(milliseconds=int(duration))
        yield event("agent_errored" if errored else "agent_completed", properties)
        if rng.random() < 0.15:
            unhappy = publisher in w.unhappy_publishers
            weights = (30, 30, 20, 12, 8) if unhappy else (2, 3, 10, 35, 50)
            rating = rng.choices((1, 2, 3, 4, 5), weights)[0]
            yield event("user_feedback", {"rating": rating, "comment": None})


def generate(
    workload: Workload, folder: Path, progress: Callable[[int], None] | None = None
) -> Written:
    """Write about `workload.events` events into batch files under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    spans = SpanWriter(folder, workload.seed) if workload.llm_spans else None
    generator = Generator(workload, spans)
    written = Written()
    files = _Files(folder, workload.events_per_file, written)
    rng = random.Random(workload.seed + 2)
    held_back: list[dict[str, Any]] = []  # late events: written after later ones
    reported = 0
    try:
        while written.events < workload.events:
            if rng.random() < workload.marketplace_share:
                batch = generator.invocation()
            else:
                batch = generator.conversation()
            for event in batch:
                if workload.late_rate and rng.random() < workload.late_rate:
                    held_back.append(event)
                    continue
                files.write(event)
                if workload.duplicate_rate and rng.random() < workload.duplicate_rate:
                    files.write(event)  # a collector retry: the same event twice
                    written.duplicates += 1
            if len(held_back) >= 1000:
                written.late += _flush(files, held_back)
            if progress and written.events - reported >= 100_000:
                reported = written.events
                progress(written.events)
        written.late += _flush(files, held_back)
    finally:
        files.close()
        if spans:
            spans.close()
            written.span_files, written.spans = spans.files, spans.spans
    return written


def _flush(files: _Files, held_back: list[dict[str, Any]]) -> int:
    count = len(held_back)
    for event in held_back:
        files.write(event)
    held_back.clear()
    return count
