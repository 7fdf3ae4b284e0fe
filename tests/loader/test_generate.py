"""The workload generator: deterministic, realistic, and carrying the anomalies it plants."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime, timezone

from loader.devtools.generate import Workload, generate
from loader.ingest.contract import AgentEvent, parse_event
from loader.ingest.readers import BatchFile

END = datetime(2026, 11, 20, tzinfo=timezone.utc)


def digest(files):
    return [hashlib.sha256(path.read_bytes()).hexdigest() for path in files]


def read_all(files):
    for path in files:
        with BatchFile(path) as batch:
            yield from (record.value for record in batch.records())


def test_same_seed_same_files_and_another_seed_other_files(tmp_path):
    first = generate(Workload(events=3000, end=END, seed=3), tmp_path / "a")
    second = generate(Workload(events=3000, end=END, seed=3), tmp_path / "b")
    third = generate(Workload(events=3000, end=END, seed=4), tmp_path / "c")
    assert digest(first.files) == digest(second.files)
    assert digest(first.files) != digest(third.files)


def test_every_generated_event_passes_the_contract_in_every_format(tmp_path):
    written = generate(Workload(events=5000, end=END, events_per_file=1000), tmp_path)
    assert {path.name.split(".", 1)[1] for path in written.files} == {"ndjson", "ndjson.gz", "json"}
    events = [parse_event(value) for value in read_all(written.files)]
    assert len(events) == written.events >= 5000
    shapes = Counter(isinstance(event, AgentEvent) for event in events)
    assert shapes[True] > 1000 and shapes[False] > 1000
    assert all(
        END.timestamp() - 3 * 86400 <= e.timestamp.timestamp() <= END.timestamp() for e in events
    )


def test_planted_anomalies_shift_the_raw_figures(tmp_path):
    workload = Workload(
        events=30_000,
        end=END,
        error_rate_by_publisher={"pub-02": 0.3},
        failing_tools={("pub-05", "search"): 0.5},
        unhappy_publishers={"pub-04"},
    )
    events = list(read_all(generate(workload, tmp_path).files))
    invocations = Counter()
    errors = Counter()
    ratings: dict[str, list[int]] = {}
    tool_uses = Counter()
    tool_failures = Counter()
    for event in events:
        publisher = event.get("publisher_id")
        kind = event["event_type"]
        if kind in ("agent_completed", "agent_errored"):
            invocations[publisher] += 1
            errors[publisher] += kind == "agent_errored"
        elif kind == "user_feedback":
            ratings.setdefault(publisher, []).append(event["properties"]["rating"])
        elif kind in ("tool_called", "tool_failed"):
            key = (publisher, event["properties"]["tool_name"])
            tool_uses[key] += 1
            tool_failures[key] += kind == "tool_failed"
    assert errors["pub-02"] / invocations["pub-02"] > 0.2
    assert errors["pub-01"] / invocations["pub-01"] < 0.05
    assert sum(ratings["pub-04"]) / len(ratings["pub-04"]) < 3
    assert sum(ratings["pub-01"]) / len(ratings["pub-01"]) > 3.8
    assert tool_failures[("pub-05", "search")] / tool_uses[("pub-05", "search")] > 0.35
    assert tool_failures[("pub-01", "search")] / tool_uses[("pub-01", "search")] < 0.1


def test_duplicates_are_the_same_event_written_twice(tmp_path):
    written = generate(Workload(events=4000, end=END, duplicate_rate=0.05), tmp_path)
    ids = Counter(value.get("event_id") or value["id"] for value in read_all(written.files))
    assert sum(count - 1 for count in ids.values()) == written.duplicates > 100
