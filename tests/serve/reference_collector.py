"""The conversation-analytics reference's `AgentEvent` and `EventCollector`, as printed.

Copied from the article with its indentation restored and nothing else changed (not even
`datetime.utcnow()`), so the tests prove that the collector, used as is, delivers to
`agent-loader serve`. Note `_flush`: it pops the batch before POSTing and never reads the
answer, so a failed POST loses the batch; `loader.live.client.EventCollector` does not.
"""
# ruff: noqa

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
import uuid
import json


@dataclass
class AgentEvent:
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    conversation_id: str = ""
    session_id: str = ""
    event_type: str = ""  # message, tool_call, handoff, error, completion
    timestamp: str = field(default_factory=lambda: datetime.utcnow().isoformat())
    agent_name: str = ""
    user_id: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "event_id": self.event_id,
            "conversation_id": self.conversation_id,
            "session_id": self.session_id,
            "event_type": self.event_type,
            "timestamp": self.timestamp,
            "agent_name": self.agent_name,
            "user_id": self.user_id,
            "payload": self.payload,
            "metadata": self.metadata,
        }


import asyncio
from collections import deque
import aiohttp


class EventCollector:
    def __init__(self, endpoint: str, batch_size: int = 50, flush_interval: float = 5.0):
        self.endpoint = endpoint
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._buffer: deque[dict] = deque()
        self._running = False

    async def collect(self, event: AgentEvent) -> None:
        self._buffer.append(event.to_dict())
        if len(self._buffer) >= self.batch_size:
            await self._flush()

    async def _flush(self) -> None:
        if not self._buffer:
            return
        batch = []
        while self._buffer and len(batch) < self.batch_size:
            batch.append(self._buffer.popleft())
        async with aiohttp.ClientSession() as session:
            await session.post(
                self.endpoint,
                json={"events": batch},
                headers={"Content-Type": "application/json"},
            )

    async def start_periodic_flush(self) -> None:
        self._running = True
        while self._running:
            await asyncio.sleep(self.flush_interval)
            await self._flush()
