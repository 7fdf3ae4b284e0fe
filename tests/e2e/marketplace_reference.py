"""The marketplace reference's analytics code, copied as the oracle for the marketplace marts.

The one copy in the tests: the serve and docs tests also take its `EventCollector` from here,
given a `loader.live.client.EndpointQueue` as its queue.

Everything between the "seed 004, verbatim" markers is the seed article's code, reindented
(the article lost its indentation) and reflowed to this repo's line length by `ruff format`,
its logic unchanged. Fixes, only where it cannot run:

1. The `PublisherDashboardMetrics` snippet imports only `dataclass` but uses `field`; it runs
   here because the first snippet's `from dataclasses import dataclass, field` is in the same
   module (kept as the seed wrote both imports).
2. `PublisherAnalyticsService` awaits `self.events.query(publisher_id=..., days=...)` on an
   event store the seed never shows: `InMemoryEventStore` below is that store.

Not fixed, on purpose (the marts document a better definition and the tests show the
difference): the p95 index `int(len * 0.95)`, the integer division of the mean response time,
0.0 for an empty average, rounding inside the metrics, `active_installs`, `invocations_trend`,
`revenue_trend` and `tool_failure_rates` left unfilled.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from enum import Enum
from typing import Optional

# ---- seed 004, verbatim (event schema and collector) -------------------------------------


class EventType(Enum):
    AGENT_INVOKED = "agent_invoked"
    AGENT_COMPLETED = "agent_completed"
    AGENT_ERRORED = "agent_errored"
    TOOL_CALLED = "tool_called"
    TOOL_FAILED = "tool_failed"
    USER_FEEDBACK = "user_feedback"
    INSTALL = "install"
    UNINSTALL = "uninstall"


@dataclass
class AnalyticsEvent:
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    event_type: EventType = EventType.AGENT_INVOKED
    agent_id: str = ""
    publisher_id: str = ""
    tenant_id: str = ""
    timestamp: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    properties: dict = field(default_factory=dict)


class EventCollector:
    def __init__(self, event_queue):
        self.queue = event_queue

    async def track_invocation(
        self,
        agent_id: str,
        publisher_id: str,
        tenant_id: str,
        input_tokens: int,
        output_tokens: int,
        tool_calls: list[str],
        duration_ms: int,
        success: bool,
        cost_usd: float,
    ):
        event = AnalyticsEvent(
            event_type=(EventType.AGENT_COMPLETED if success else EventType.AGENT_ERRORED),
            agent_id=agent_id,
            publisher_id=publisher_id,
            tenant_id=tenant_id,
            properties={
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "tool_calls": tool_calls,
                "duration_ms": duration_ms,
                "cost_usd": cost_usd,
            },
        )
        await self.queue.enqueue(event)

    async def track_feedback(
        self,
        agent_id: str,
        publisher_id: str,
        tenant_id: str,
        rating: int,
        comment: Optional[str] = None,  # noqa: UP045 - as the seed wrote it
    ):
        event = AnalyticsEvent(
            event_type=EventType.USER_FEEDBACK,
            agent_id=agent_id,
            publisher_id=publisher_id,
            tenant_id=tenant_id,
            properties={
                "rating": rating,
                "comment": comment,
            },
        )
        await self.queue.enqueue(event)


# ---- seed 004, verbatim (dashboard metrics and service) ----------------------------------

from dataclasses import dataclass  # noqa: E402 - the seed's own import (fix 1)


@dataclass
class PublisherDashboardMetrics:
    # Usage
    total_invocations: int = 0
    unique_tenants: int = 0
    active_installs: int = 0
    invocations_trend: list[dict] = field(default_factory=list)
    # Quality
    avg_satisfaction: float = 0.0
    error_rate: float = 0.0
    avg_response_time_ms: int = 0
    p95_response_time_ms: int = 0
    # Revenue
    total_revenue: float = 0.0
    revenue_trend: list[dict] = field(default_factory=list)
    avg_revenue_per_tenant: float = 0.0
    # Tool usage
    tool_usage_breakdown: dict[str, int] = field(default_factory=dict)
    tool_failure_rates: dict[str, float] = field(default_factory=dict)


class PublisherAnalyticsService:
    def __init__(self, event_store):
        self.events = event_store

    async def get_dashboard(
        self, publisher_id: str, period_days: int = 30
    ) -> PublisherDashboardMetrics:
        raw_events = await self.events.query(
            publisher_id=publisher_id,
            days=period_days,
        )
        completions = [e for e in raw_events if e.event_type == EventType.AGENT_COMPLETED]
        errors = [e for e in raw_events if e.event_type == EventType.AGENT_ERRORED]
        feedback = [e for e in raw_events if e.event_type == EventType.USER_FEEDBACK]
        total = len(completions) + len(errors)
        unique_tenants = len(set(e.tenant_id for e in completions + errors))
        # Tool usage breakdown
        tool_counts: dict[str, int] = {}
        for event in completions:
            for tool in event.properties.get("tool_calls", []):
                tool_counts[tool] = tool_counts.get(tool, 0) + 1
        # Revenue
        total_revenue = sum(e.properties.get("cost_usd", 0) for e in completions)
        # Satisfaction
        ratings = [e.properties["rating"] for e in feedback if "rating" in e.properties]
        avg_sat = sum(ratings) / len(ratings) if ratings else 0.0
        # Response times
        durations = [
            e.properties["duration_ms"] for e in completions if "duration_ms" in e.properties
        ]
        durations.sort()
        avg_duration = sum(durations) // len(durations) if durations else 0
        p95_duration = durations[int(len(durations) * 0.95)] if durations else 0
        return PublisherDashboardMetrics(
            total_invocations=total,
            unique_tenants=unique_tenants,
            avg_satisfaction=round(avg_sat, 2),
            error_rate=(round(len(errors) / total, 4) if total > 0 else 0.0),
            avg_response_time_ms=avg_duration,
            p95_response_time_ms=p95_duration,
            total_revenue=round(total_revenue, 2),
            avg_revenue_per_tenant=(
                round(total_revenue / unique_tenants, 2) if unique_tenants > 0 else 0.0
            ),
            tool_usage_breakdown=tool_counts,
        )


# ---- seed 004, verbatim (insights) ---------------------------------------------------------


@dataclass
class Insight:
    severity: str  # "critical", "warning", "info"
    category: str
    title: str
    description: str
    recommendation: str


class InsightEngine:
    async def generate_insights(self, metrics: PublisherDashboardMetrics) -> list[Insight]:
        insights = []
        if metrics.error_rate > 0.05:
            insights.append(
                Insight(
                    severity="critical",
                    category="reliability",
                    title="High Error Rate",
                    description=(
                        f"Error rate is {metrics.error_rate:.1%}, above the 5% threshold."
                    ),
                    recommendation=(
                        "Review error logs for the most common "
                        "failure patterns. Check tool integrations "
                        "and add retry logic for transient failures."
                    ),
                )
            )
        if metrics.p95_response_time_ms > 10000:
            insights.append(
                Insight(
                    severity="warning",
                    category="performance",
                    title="Slow p95 Response Time",
                    description=(f"p95 latency is {metrics.p95_response_time_ms}ms."),
                    recommendation=(
                        "Consider using a faster model for simple "
                        "queries or adding response streaming."
                    ),
                )
            )
        if metrics.avg_satisfaction < 3.5:
            insights.append(
                Insight(
                    severity="warning",
                    category="quality",
                    title="Low User Satisfaction",
                    description=(f"Average rating is {metrics.avg_satisfaction}/5.0."),
                    recommendation=(
                        "Review low-rated conversations to identify "
                        "common frustration patterns. Improve system "
                        "prompt or add missing tool capabilities."
                    ),
                )
            )
        # Tool failure analysis
        for tool, rate in metrics.tool_failure_rates.items():
            if rate > 0.1:
                insights.append(
                    Insight(
                        severity="warning",
                        category="reliability",
                        title=f"Tool '{tool}' Failing Often",
                        description=(f"Failure rate: {rate:.1%}"),
                        recommendation=(
                            f"Check the '{tool}' integration configuration and API health."
                        ),
                    )
                )
        return insights


# ---- end of seed 004 -----------------------------------------------------------------------


class InMemoryEventStore:
    """The event store the seed's service queries (fix 2), over a list of events.

    `query(publisher_id, days)` returns the publisher's events of the `days` calendar days
    (UTC) ending with `as_of`, both included: the marts' dashboard window. The seed counts back
    from "now"; whole days are the documented difference, and the test fixture keeps every
    event well inside (or well outside) the window, so both readings select the same events.
    """

    def __init__(self, events: list[AnalyticsEvent], as_of: date) -> None:
        self._events = events
        self._as_of = as_of

    async def query(self, publisher_id: str, days: int) -> list[AnalyticsEvent]:
        first = self._as_of - timedelta(days=days - 1)
        return [
            event
            for event in self._events
            if event.publisher_id == publisher_id
            and first <= event.timestamp.astimezone(timezone.utc).date() <= self._as_of
        ]


def event_from_record(record: dict) -> AnalyticsEvent:
    """A batch-file record (the loader's JSON shape) as the seed's `AnalyticsEvent`."""
    return AnalyticsEvent(
        id=record["id"],
        event_type=EventType(record["event_type"]),
        agent_id=record["agent_id"],
        publisher_id=record["publisher_id"],
        tenant_id=record["tenant_id"],
        timestamp=datetime.fromisoformat(record["timestamp"]),
        properties=dict(record["properties"]),
    )
