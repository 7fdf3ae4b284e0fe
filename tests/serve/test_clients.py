"""The collectors: the conversation-analytics reference's, unchanged, delivers to `serve`
(and loses a batch when a POST fails); `loader.live.client.EventCollector` never does; the
marketplace reference's collector posts through `EndpointQueue`."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from loader.live.client import BatchRefused, EndpointQueue, EventCollector
from tests.conftest import Database, run_loader
from tests.e2e import marketplace_reference as marketplace
from tests.serve import reference_collector as reference
from tests.serve.conftest import agent_event, free_port, start_follow


def _conversation(n: int, event_type: str = "message") -> reference.AgentEvent:
    return reference.AgentEvent(
        conversation_id=f"conv-{n // 10}",
        session_id="s-1",
        event_type=event_type,
        agent_name="support",
        user_id=f"user-{n % 3}",
        payload={"text": f"message {n}", "role": "user"},
        metadata={"model": "m-1", "total_tokens": n, "latency_ms": 100 + n},
    )


def test_reference_collector_unchanged_delivers_to_serve(start_serve, db: Database) -> None:
    server = start_serve()
    events = [_conversation(n) for n in range(120)]

    async def send() -> None:
        collector = reference.EventCollector(server.url + "/v1/events")
        for event in events:
            await collector.collect(event)  # posts two batches of 50 on its own
        await collector._flush()  # the last 20, as its periodic flush would

    asyncio.run(send())
    run_loader(db, "load", str(server.landing))
    rows = db.query(
        "select event_id, (metadata->>'total_tokens')::int from raw.agent_events order by 2"
    )
    assert rows == [(event.event_id, n) for n, event in enumerate(events)]
    assert db.scalar("select count(*) from raw.quarantine") == 0


def test_reference_collector_loses_the_batch_when_a_post_fails() -> None:
    """Why loader.live.client exists: the reference pops the batch before a POST that fails."""

    async def send() -> int:
        collector = reference.EventCollector(f"http://127.0.0.1:{free_port()}/v1/events")
        for n in range(49):
            await collector.collect(_conversation(n))
        with pytest.raises(aiohttp.ClientConnectionError):
            await collector.collect(_conversation(49))
        return len(collector._buffer)

    assert asyncio.run(send()) == 0  # 50 events gone, nowhere


def test_collector_keeps_every_event_while_the_server_is_down(
    start_serve, tmp_path: Path, db: Database
) -> None:
    port = free_port()
    events = [agent_event(f"down-{i}") for i in range(130)]

    async def send() -> int:
        collector = EventCollector(
            f"http://127.0.0.1:{port}/v1/events", flush_interval=0.1, max_backoff=0.5
        )
        periodic = asyncio.create_task(collector.start_periodic_flush())
        for event in events[:40]:
            await collector.collect(event)
        await asyncio.sleep(0.5)  # a few failed flushes: nothing may go
        assert collector.buffered == 40
        # The server comes up; the rest flows, including the batches that failed.
        await asyncio.to_thread(start_serve, landing=tmp_path / "landing", port=port)
        for event in events[40:]:
            await collector.collect(event)
        await collector.close()
        periodic.cancel()
        return collector.delivered

    assert asyncio.run(send()) == 130
    run_loader(db, "load", str(tmp_path / "landing"))
    ids = {row[0] for row in db.query("select event_id from raw.agent_events")}
    assert ids == {event["event_id"] for event in events}


def test_full_buffer_makes_collect_wait_instead_of_dropping() -> None:
    async def send() -> tuple[int, bool]:
        collector = EventCollector(
            f"http://127.0.0.1:{free_port()}/v1/events", max_buffer=60, max_backoff=0.2
        )
        for n in range(49):
            await collector.collect(agent_event(f"buf-{n}"))
        # The 50th triggers a flush that retries forever against a closed port.
        flushing = asyncio.create_task(collector.collect(agent_event("buf-49")))
        await asyncio.sleep(0.1)
        for n in range(50, 60):
            await collector.collect(agent_event(f"buf-{n}"))
        try:
            await asyncio.wait_for(collector.collect(agent_event("buf-60")), 0.5)
            waited = False
        except asyncio.TimeoutError:
            waited = True
        flushing.cancel()
        await asyncio.gather(flushing, return_exceptions=True)
        await collector._client().close()
        return collector.buffered, waited

    assert asyncio.run(send()) == (60, True)


def test_close_spills_what_cannot_be_delivered_to_a_loadable_file(
    tmp_path: Path, db: Database
) -> None:
    spill = tmp_path / "spill" / "undelivered.ndjson"
    spill.parent.mkdir()

    async def send() -> None:
        collector = EventCollector(
            f"http://127.0.0.1:{free_port()}/v1/events",
            close_timeout=0.5,
            max_backoff=0.1,
            spill_path=spill,
        )
        for n in range(49):
            await collector.collect(agent_event(f"spill-{n}"))
        await collector.close()  # retries for close_timeout, then spills

    asyncio.run(send())
    assert len(spill.read_text().splitlines()) == 49
    run_loader(db, "load", str(spill.parent))
    assert db.scalar("select count(*) from raw.agent_events") == 49


def test_refused_batch_raises_and_stays_buffered(start_serve, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("team:0123456789abcdef0123\n")
    server = start_serve("--keys-file", str(keys))

    async def send(api_key: str | None) -> int:
        collector = EventCollector(server.url + "/v1/events", api_key=api_key)
        await collector.collect(agent_event("ref-1"))
        try:
            with pytest.raises(BatchRefused) as refused:
                await collector.flush()
            assert refused.value.status == 401
            return collector.buffered
        finally:
            await collector._session.close()

    assert asyncio.run(send(None)) == 1
    assert asyncio.run(send("wrong-key-0123456789")) == 1
    assert server.batch_files() == []


def test_marketplace_reference_collector_posts_through_the_endpoint_queue(
    start_serve, db: Database
) -> None:
    server = start_serve()

    async def send() -> None:
        queue = EndpointQueue(server.url + "/v1/events", batch_size=50)
        collector = marketplace.EventCollector(queue)
        await collector.track_invocation(
            "pub-01-agent-1", "pub-01", "t-1", 120, 40, ["search"], 900, True, 0.0125
        )
        await collector.track_invocation(
            "pub-01-agent-1", "pub-01", "t-2", 10, 0, [], 50, False, 0.0
        )
        await collector.track_feedback("pub-01-agent-1", "pub-01", "t-1", 5, "great")
        await queue.close()

    asyncio.run(send())
    run_loader(db, "load", str(server.landing))
    rows = db.query(
        "select event_type, tenant_id, properties from raw.marketplace_events order by event_ts"
    )
    assert [(r[0], r[1]) for r in rows] == [
        ("agent_completed", "t-1"),
        ("agent_errored", "t-2"),
        ("user_feedback", "t-1"),
    ]
    assert rows[0][2] == {
        "input_tokens": 120,
        "output_tokens": 40,
        "tool_calls": ["search"],
        "duration_ms": 900,
        "cost_usd": 0.0125,
    }
    assert rows[2][2] == {"rating": 5, "comment": "great"}


def test_reference_collector_events_reach_raw_within_seconds(
    start_serve, tmp_path: Path, db: Database
) -> None:
    """The issue's done-when: the collector, unchanged, and the events are in raw in seconds."""
    server = start_serve()
    follower = start_follow(db, str(server.landing), "--move-loaded-to", str(tmp_path / "done"))
    try:
        events = [_conversation(n) for n in range(50)]

        async def send() -> None:
            collector = reference.EventCollector(server.url + "/v1/events")
            for event in events:
                await collector.collect(event)  # the 50th posts the batch

        asyncio.run(send())
        posted = time.monotonic()
        ids = [event.event_id for event in events]
        query = "select count(*) from raw.agent_events where event_id = any(%s)"
        while db.scalar(query, (ids,)) < 50:
            assert time.monotonic() - posted < 10, "not in raw after 10 s"
            time.sleep(0.05)
    finally:
        follower.send_signal(signal.SIGTERM)
        follower.communicate(timeout=30)
    assert follower.returncode == 0


def test_batches_over_the_body_limit_are_split_until_they_fit(start_serve) -> None:
    server = start_serve("--max-body-bytes", "4096")
    events = [agent_event(f"split-{i}", payload={"text": "y" * 200}) for i in range(50)]

    async def send() -> int:
        collector = EventCollector(server.url + "/v1/events")
        for event in events:
            await collector.collect(event)
        await collector.close()
        return collector.batch_size

    batch_size = asyncio.run(send())
    assert batch_size < 50
    assert len(json.dumps({"events": events[:batch_size]})) <= 4096
    written = [json.loads(line)["event_id"] for f in server.batch_files() for line in f.open()]
    assert written == [event["event_id"] for event in events]
