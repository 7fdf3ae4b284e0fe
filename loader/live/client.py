"""Clients for `agent-loader serve` that never drop a batch.

`EventCollector` keeps the interface of the conversation-analytics reference's collector
(`collect`, `start_periodic_flush`, `_flush`/`flush`) but a batch leaves its buffer only
after the server acknowledged it (2xx): a failed POST is retried with exponential backoff
(honouring `Retry-After`), the buffer is bounded (`collect` waits when it is full instead of
dropping), and `close()` flushes what is left. The reference's own collector pops a batch
off its buffer before POSTing and never looks at the answer, so a failed POST loses it.

`EndpointQueue` is the queue the marketplace reference's `EventCollector(event_queue)` calls
`await queue.enqueue(event)` on: it batches the `AnalyticsEvent`s and posts them the same way.

Retries can deliver a batch twice (the server stored it but the answer was lost); the loader
counts the second copy as duplicates, because events keep their own ids.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import logging
import random
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

log = logging.getLogger("agent_loader.client")

RETRYABLE = {408, 425, 429, 500, 502, 503, 504}


class BatchRefused(Exception):
    """The server refused a batch for good (400, 401, 415, ...): retrying cannot help.

    The batch stays at the head of the buffer; fix the cause (a key, the event code) and
    flush again, or take the events out with `EventCollector.take_refused()`.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the server refused the batch ({status}): {message}")
        self.status = status


def to_record(event: Any) -> dict:
    """An event as its JSON record: `to_dict()`, a dataclass (enums by value) or a dict."""
    if hasattr(event, "to_dict"):
        return event.to_dict()
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        return {f.name: _plain(getattr(event, f.name)) for f in dataclasses.fields(event)}
    if isinstance(event, dict):
        return event
    raise TypeError(f"cannot send a {type(event).__name__}: give a dict or a dataclass")


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class EventCollector:
    """Buffers events and POSTs `{"events": [...]}` batches; never drops a batch.

    `max_buffer` bounds memory: `collect` waits while the buffer is full. `close()` stops
    the periodic flush and delivers what is left, retrying until `close_timeout`; events
    still undelivered then are written to `spill_path` (NDJSON, for `agent-loader load`) if
    given, else `close()` raises with their count.
    """

    def __init__(
        self,
        endpoint: str,
        batch_size: int = 50,
        flush_interval: float = 5.0,
        *,
        api_key: str | None = None,
        max_buffer: int = 10_000,
        request_timeout: float = 10.0,
        max_backoff: float = 30.0,
        close_timeout: float = 30.0,
        spill_path: Path | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_buffer = max(max_buffer, batch_size)
        self.request_timeout = request_timeout
        self.max_backoff = max_backoff
        self.close_timeout = close_timeout
        self.spill_path = spill_path
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._buffer: deque[dict] = deque()
        self._running = False
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()  # one batch in flight: order is kept, nothing sent twice
        self._space = asyncio.Event()
        self._space.set()
        self.delivered = 0

    # --- the reference interface ---------------------------------------------------------

    async def collect(self, event: Any) -> None:
        """Buffer one event; flush a batch when `batch_size` are waiting."""
        while len(self._buffer) >= self.max_buffer:
            self._space.clear()
            await self._space.wait()
        self._buffer.append(to_record(event))
        if len(self._buffer) >= self.batch_size and not self._lock.locked():
            await self._flush()

    async def _flush(self) -> None:
        """Deliver one batch from the head of the buffer (the reference's name)."""
        async with self._lock:
            await self._deliver_one()

    async def flush(self) -> None:
        """Deliver everything buffered."""
        async with self._lock:
            while self._buffer:
                await self._deliver_one()

    async def start_periodic_flush(self) -> None:
        """Flush every `flush_interval` seconds until `close()`; errors are logged, kept."""
        self._running = True
        while self._running:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
            except BatchRefused as error:
                log.error("%s", error)

    async def close(self) -> None:
        """Stop the periodic flush and deliver what is buffered (see the class docstring)."""
        self._running = False
        try:
            await asyncio.wait_for(self.flush(), self.close_timeout)
        except (asyncio.TimeoutError, BatchRefused) as error:
            left = len(self._buffer)
            if left and self.spill_path is not None:
                self._spill()
                log.warning("%d undelivered events written to %s", left, self.spill_path)
            elif left:
                raise RuntimeError(
                    f"{left} events could not be delivered before close ({error or 'timeout'})"
                ) from error
        finally:
            if self._session is not None:
                await self._session.close()
                self._session = None

    def take_refused(self) -> list[dict]:
        """Remove and return the batch at the head of the buffer (after a BatchRefused)."""
        return [self._buffer.popleft() for _ in range(min(self.batch_size, len(self._buffer)))]

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    # --- delivery ------------------------------------------------------------------------

    async def _deliver_one(self) -> None:
        if not self._buffer:
            return
        batch = [self._buffer[i] for i in range(min(self.batch_size, len(self._buffer)))]
        try:
            await self._post_until_acknowledged(batch)
        except BatchRefused as error:
            if error.status != 413 or len(batch) == 1:
                raise
            self.batch_size = len(batch) // 2  # over the server's body limit: smaller batches
            log.warning("batch too large for the server; batch_size is now %d", self.batch_size)
            return
        for _ in batch:
            self._buffer.popleft()
        self.delivered += len(batch)
        self._space.set()

    async def _post_until_acknowledged(self, batch: list[dict]) -> None:
        body = json.dumps({"events": batch}).encode("utf-8")
        attempt = 0
        while True:
            attempt += 1
            wait = min(self.max_backoff, 0.1 * 2 ** min(attempt, 20)) * random.uniform(0.5, 1)
            try:
                session = self._client()
                async with session.post(self.endpoint, data=body, headers=self._headers) as reply:
                    if 200 <= reply.status < 300:
                        return
                    text = (await reply.text())[:500]
                    if reply.status not in RETRYABLE:
                        raise BatchRefused(reply.status, text)
                    retry_after = reply.headers.get("Retry-After", "")
                    if retry_after.isdigit():
                        wait = max(wait, min(float(retry_after), self.max_backoff))
                    log.warning(
                        "POST %s: %s, retrying in %.1f s", self.endpoint, reply.status, wait
                    )
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
                log.warning("POST %s failed (%s), retrying in %.1f s", self.endpoint, error, wait)
            await asyncio.sleep(wait)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self.request_timeout)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    def _spill(self) -> None:
        assert self.spill_path is not None
        with open(self.spill_path, "a", encoding="utf-8") as handle:
            while self._buffer:
                handle.write(json.dumps(self._buffer.popleft()) + "\n")


class EndpointQueue:
    """The marketplace reference's `event_queue`: `await enqueue(event)` posts in batches.

    Usage: `queue = EndpointQueue(url)`, `collector = EventCollector(queue)` (the reference
    class, unchanged), `asyncio.create_task(queue.start_periodic_flush())`, and
    `await queue.close()` at shutdown. Options are those of `EventCollector` above.
    """

    def __init__(self, endpoint: str, **options: Any) -> None:
        self.collector = EventCollector(endpoint, **options)

    async def enqueue(self, event: Any) -> None:
        await self.collector.collect(event)

    async def start_periodic_flush(self) -> None:
        await self.collector.start_periodic_flush()

    async def flush(self) -> None:
        await self.collector.flush()

    async def close(self) -> None:
        await self.collector.close()
