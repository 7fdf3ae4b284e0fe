"""The generator's GenAI spans: OTLP JSON as the Collector's file exporter writes it, the
same tokens as the events they mirror, every dialect, and the two planted cost anomalies."""

from __future__ import annotations

import gzip
import json
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

from loader.devtools.generate import Workload, generate
from loader.devtools.spans import LOOPING_CALLS
from tests.loader.test_generate import digest, read_all

END = datetime(2026, 11, 20, tzinfo=timezone.utc)
WORKLOAD = dict(events=4000, end=END, seed=5, tenants=6, cost_spike_tenant="tenant-002")


def _value(value: dict):
    ((kind, raw),) = value.items()
    return int(raw) if kind == "intValue" else raw


def _spans(files):
    for path in files:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                for resource in json.loads(line)["resourceSpans"]:
                    service = _value(resource["resource"]["attributes"][0]["value"])
                    for scope in resource["scopeSpans"]:
                        for span in scope["spans"]:
                            attributes = {a["key"]: _value(a["value"]) for a in span["attributes"]}
                            yield service, span, attributes


def _is_call(attributes: dict) -> bool:
    return attributes.get("gen_ai.operation.name") == "chat" or (
        attributes.get("openinference.span.kind") == "LLM"
    )


def _input_tokens(attributes: dict) -> int:
    for key in (
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "llm.token_count.prompt",
    ):
        if key in attributes:
            return attributes[key]
    raise AssertionError(attributes)


def test_spans_leave_the_events_unchanged_and_mirror_their_tokens(tmp_path):
    plain = generate(Workload(**WORKLOAD), tmp_path / "plain")
    written = generate(
        Workload(**WORKLOAD, llm_spans=True, unpriced_agent="pub-01-agent-1"), tmp_path / "spans"
    )
    assert digest(plain.files) == digest(written.files)
    assert plain.span_files == [] and written.span_files

    spans = list(_spans(written.span_files))
    assert len(spans) == written.spans
    calls = [(service, span, a) for service, span, a in spans if _is_call(a)]
    # every call is the child of an agent span of its trace, which is not a call
    ids = {(span["traceId"], span["spanId"]): a for _, span, a in spans}
    for _, span, _ in calls:
        assert not _is_call(ids[(span["traceId"], span["parentSpanId"])])

    events = list(read_all(written.files))
    prompt_tokens = sum(
        e["metadata"]["prompt_tokens"] for e in events if e.get("metadata", {}).get("prompt_tokens")
    )
    invocation_tokens = defaultdict(int)
    for e in events:
        if e.get("event_type") in ("agent_completed", "agent_errored"):
            invocation_tokens[e["tenant_id"]] += e["properties"]["input_tokens"]
    by_tenant = defaultdict(int)
    conversation_tokens = 0
    for _, _, a in calls:
        if "tenant.id" in a:
            by_tenant[a["tenant.id"]] += _input_tokens(a)
        else:
            conversation_tokens += _input_tokens(a)
    assert conversation_tokens == prompt_tokens
    # the spiking tenant's looping traces resend the prompt: more tokens than its events
    spiking = WORKLOAD["cost_spike_tenant"]
    assert by_tenant.pop(spiking) > invocation_tokens.pop(spiking)
    assert by_tenant == invocation_tokens

    dialects = Counter(
        "openinference"
        if "llm.model_name" in a
        else "legacy"
        if "gen_ai.system" in a
        else "current"
        for _, _, a in calls
    )
    assert set(dialects) == {"current", "legacy", "openinference"}
    unpriced = {
        a.get("gen_ai.request.model", a.get("llm.model_name"))
        for s, _, a in calls
        if s == "pub-01-agent-1"
    }
    assert unpriced == {"in-house-llm-v2"}


def test_the_spiking_tenant_loops_on_the_last_day_only(tmp_path):
    written = generate(Workload(**WORKLOAD, llm_spans=True), tmp_path)
    per_trace = defaultdict(int)
    tenant_of, day_of = {}, {}
    for _, span, a in _spans(written.span_files):
        if _is_call(a) and "tenant.id" in a:
            per_trace[span["traceId"]] += 1
            tenant_of[span["traceId"]] = a["tenant.id"]
            started = datetime.fromtimestamp(int(span["startTimeUnixNano"]) / 1e9, timezone.utc)
            day_of[span["traceId"]] = started >= END - timedelta(days=1)
    looping = {t for t, n in per_trace.items() if n > 1}
    assert looping and all(per_trace[t] == LOOPING_CALLS for t in looping)
    assert {tenant_of[t] for t in looping} == {"tenant-002"}
    spike_traces = {t for t in per_trace if tenant_of[t] == "tenant-002" and day_of[t]}
    assert looping == spike_traces
