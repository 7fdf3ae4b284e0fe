"""End to end for LLM cost: spans in raw.spans → dbt → fct_llm_calls and the cost marts.

Spans are written straight into `raw.spans` in the shape the loader stores them (one row per
span, attributes as typed JSON), one span per dialect the staging model reads, beside
marketplace and conversation events loaded with the loader. Every expected figure below is
worked out by hand from `seeds/model_prices.csv` (the rows are quoted next to each span), so a
pricing or matching mistake shows as a wrong number, not as a change of a stored result.

Phase 1 builds everything; phase 2 loads one late span of an existing conversation and builds
incrementally; the marts must then equal a full refresh.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Database, Dbt, load
from tests.factories import agent_event, marketplace_event, write_ndjson

pytestmark = pytest.mark.dbt

AS_OF = "2026-11-30"
VARS = ("--vars", json.dumps({"as_of": AS_OF}))
SELECT = (
    "--select",
    "+fct_llm_calls",
    "+llm_cost_daily",
    "+llm_unpriced_models",
    "+tenant_llm_insights",
    "+fct_conversations",
)
UTC = timezone.utc
BUDGETS = {"t-acme": Decimal("0.01"), "t-beta": Decimal("1")}


@dataclass
class Span:
    """One row of raw.spans."""

    number: int
    name: str
    attributes: dict[str, Any]
    start: datetime
    duration_ms: int = 1000
    resource: dict[str, Any] | None = None
    status_code: str = "unset"
    trace: int = 1

    @property
    def trace_id(self) -> str:
        return f"{self.trace:032x}"

    @property
    def span_id(self) -> str:
        return f"{self.number:016x}"


def at(day: int, hour: int = 9, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


# --- the spans, with their prices (seeds/model_prices.csv) and costs worked out by hand -----


def mini_chat(tenant: str) -> dict[str, Any]:
    """A chat span's attributes in the older conventions (gen_ai.system, prompt and completion
    tokens), the tenant among them. gpt-4o-mini-2024-07-18: input 1.5e-7, output 6e-7 per
    token, so 2000 * 1.5e-7 + 1000 * 6e-7 = 0.0009."""
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.usage.prompt_tokens": 2000,
        "gen_ai.usage.completion_tokens": 1000,
        "tenant.id": tenant,
    }


SPANS = [
    # Current GenAI conventions (OpenAI instrumentation, latest mode); tenant on the resource.
    # gpt-4o-2024-08-06 (the response model wins over gpt-4o): input 2.5e-6, output 1e-5,
    # cache read 1.25e-6. 800 uncached * 2.5e-6 + 200 * 1.25e-6 + 500 * 1e-5 = 0.00725.
    Span(
        1,
        "chat gpt-4o",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.cache_read.input_tokens": 200,
            "gen_ai.usage.output_tokens": 500,
            "gen_ai.conversation.id": "conv-1",
            "gen_ai.agent.name": "support",
            "user.id": "u-1",
        },
        at(5),
        duration_ms=1200,
        resource={"service.name": "support-bot", "tenant.id": "t-acme"},
    ),
    # The agent span around it and a tool span: not calls, their tokens are not counted.
    Span(
        2,
        "invoke_agent support",
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 99999,
            "gen_ai.usage.output_tokens": 99999,
            "gen_ai.conversation.id": "conv-1",
            "gen_ai.agent.name": "support",
        },
        at(5),
        resource={"tenant.id": "t-acme"},
    ),
    Span(
        3,
        "execute_tool lookup",
        {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"},
        at(5),
        resource={"tenant.id": "t-acme"},
    ),
    # Older conventions (the OpenAI instrumentation's default): 0.0009, see mini_chat.
    Span(4, "chat gpt-4o-mini", mini_chat("t-acme"), at(6), duration_ms=800),
    # OpenLLMetry, failed with a rate limit: gpt-4o (2.5e-6, 1e-5).
    # 10 * 2.5e-6 + 20 * 1e-5 = 0.000225.
    Span(
        5,
        "openai.chat",
        {
            "llm.request.type": "chat",
            "gen_ai.system": "OpenAI",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o",
            "gen_ai.usage.prompt_tokens": 10,
            "gen_ai.usage.completion_tokens": 20,
            "llm.usage.total_tokens": 30,
            "error.type": "RateLimitError",
            "traceloop.association.properties.session_id": "conv-2",
            "tenant.id": "t-acme",
        },
        at(6),
        status_code="error",
    ),
    # OpenLLMetry's workflow span: not a call.
    Span(
        6,
        "support.workflow",
        {"traceloop.span.kind": "workflow", "llm.usage.total_tokens": 5000},
        at(6),
        resource={"tenant.id": "t-acme"},
    ),
    # A model no price covers: cost null, listed, never zero.
    Span(
        7,
        "chat acme-llm-7b",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "acme",
            "gen_ai.request.model": "acme-llm-7b",
            "gen_ai.usage.input_tokens": 50,
            "gen_ai.usage.output_tokens": 50,
            "tenant.id": "t-acme",
        },
        at(7),
    ),
    # OpenInference, with prompt cache reads and writes; tenant on the resource.
    # claude-sonnet-4-20250514: input 3e-6, output 1.5e-5, cache read 3e-7, write 3.75e-6.
    # 1500 * 3e-6 + 1000 * 3e-7 + 500 * 3.75e-6 + 400 * 1.5e-5 = 0.012675.
    Span(
        8,
        "ChatAnthropic",
        {
            "openinference.span.kind": "LLM",
            "llm.provider": "anthropic",
            "llm.model_name": "claude-sonnet-4-20250514",
            "llm.token_count.prompt": 3000,
            "llm.token_count.prompt_details.cache_read": 1000,
            "llm.token_count.prompt_details.cache_write": 500,
            "llm.token_count.completion": 400,
            "llm.token_count.total": 3400,
            "session.id": "conv-3",
            "user.id": "u-9",
        },
        at(6),
        resource={"tenant.id": "t-beta"},
    ),
    # OpenInference with its own cost: the span's 0.5 wins over 100 * 2.5e-6 + 100 * 1e-5.
    Span(
        9,
        "ChatOpenAI",
        {
            "openinference.span.kind": "LLM",
            "llm.provider": "openai",
            "llm.model_name": "gpt-4o",
            "llm.token_count.prompt": 100,
            "llm.token_count.completion": 100,
            "llm.cost.total": 0.5,
            "agent.name": "researcher",
            "tenant.id": "t-beta",
        },
        at(6, 10),
        duration_ms=300,
    ),
    # The same agent and model, failed: 10 * 2.5e-6 + 10 * 1e-5 = 0.000125.
    Span(
        10,
        "ChatOpenAI",
        {
            "openinference.span.kind": "LLM",
            "llm.provider": "openai",
            "llm.model_name": "gpt-4o",
            "llm.token_count.prompt": 10,
            "llm.token_count.completion": 10,
            "agent.name": "researcher",
            "tenant.id": "t-beta",
        },
        at(6, 11),
        duration_ms=1000,
        status_code="error",
    ),
    # OpenInference agent, chain and tool spans: not calls.
    Span(11, "Agent", {"openinference.span.kind": "AGENT", "llm.token_count.prompt": 7}, at(6)),
    Span(12, "Chain", {"openinference.span.kind": "CHAIN", "llm.token_count.prompt": 7}, at(6)),
    Span(13, "Tool", {"openinference.span.kind": "TOOL", "tool.name": "search"}, at(6)),
    # Long context: gemini-2.5-pro above 200,000 input tokens is priced at its Large Context
    # tier (input 2.5e-6, output 1.5e-5, reasoning 1.5e-5), not Standard (1.25e-6, 1e-5).
    # 250000 * 2.5e-6 + 600 * 1.5e-5 + 400 * 1.5e-5 = 0.64.
    Span(
        14,
        "generate_content gemini-2.5-pro",
        {
            "gen_ai.operation.name": "generate_content",
            "gen_ai.provider.name": "gcp.gemini",
            "gen_ai.request.model": "gemini-2.5-pro",
            "gen_ai.usage.input_tokens": 250000,
            "gen_ai.usage.output_tokens": 1000,
            "gen_ai.usage.reasoning.output_tokens": 400,
            "tenant.id": "t-beta",
        },
        at(7),
    ),
    # A price valid from its day: claude-sonnet-4-6's row is valid from 2026-02-18, so a call
    # on 2026-01-10 has no price and one on 2026-11-08 does: 100 * 3e-6 + 10 * 1.5e-5 = 0.00045.
    *(
        Span(
            number,
            "chat claude-sonnet-4-6",
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "anthropic",
                "gen_ai.request.model": "claude-sonnet-4-6",
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 10,
                "tenant.id": "t-delta",
            },
            start,
        )
        for number, start in ((15, at(10, month=1)), (16, at(8)))
    ),
    # Not a GenAI span at all.
    Span(17, "GET /orders", {"http.request.method": "GET"}, at(6)),
]

# t-gamma: seven quiet days (1000 input tokens of gpt-4o-mini: 0.00015 each), then a day ten
# times as expensive (10000: 0.0015). Only that day is a spike with a full trailing sample.
SPANS += [
    Span(
        100 + day,
        "chat gpt-4o-mini",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 10000 if day == 8 else 1000,
            "gen_ai.usage.output_tokens": 0,
            "tenant.id": "t-gamma",
        },
        at(day),
        trace=2,
    )
    for day in range(1, 9)
]

# Phase 2: a late OpenInference call of conv-1 (t-acme), gpt-4o: 400 * 2.5e-6 + 100 * 1e-5.
LATE_SPAN = Span(
    200,
    "ChatOpenAI",
    {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o",
        "llm.token_count.prompt": 400,
        "llm.token_count.completion": 100,
        "session.id": "conv-1",
        "tenant.id": "t-acme",
    },
    at(5, 10),
    trace=3,
)

COSTS = {
    1: Decimal("0.00725"),
    4: Decimal("0.0009"),
    5: Decimal("0.000225"),
    8: Decimal("0.012675"),
    9: Decimal("0.5"),
    10: Decimal("0.000125"),
    14: Decimal("0.64"),
    16: Decimal("0.00045"),
    200: Decimal("0.002"),
}
COSTS.update({100 + day: Decimal("0.00015") for day in range(1, 8)})
COSTS[108] = Decimal("0.0015")
UNPRICED = {7, 15}
NOT_CALLS = {2, 3, 6, 11, 12, 13, 17}


def insert_spans(database: Database, spans: list[Span], batch_id: int) -> None:
    """The rows the loader would write for these spans."""
    with database.connect() as conn, conn.cursor() as cur:
        for span in spans:
            cur.execute(
                """
                insert into raw.spans (
                    trace_id, span_id, parent_span_id, name, kind, start_time, end_time,
                    duration_ns, status_code, status_message, attributes,
                    resource_attributes, scope_name, scope_version, events, batch_id, loaded_at
                ) values (
                    %s, %s, null, %s, 'client', %s, %s, %s, %s, null, %s, %s,
                    'tests', '1', '[]', %s, clock_timestamp()
                )
                """,
                (
                    span.trace_id,
                    span.span_id,
                    span.name,
                    span.start,
                    span.start + timedelta(milliseconds=span.duration_ms),
                    span.duration_ms * 1_000_000,
                    span.status_code,
                    json.dumps(span.attributes),
                    json.dumps(span.resource or {}),
                    batch_id,
                ),
            )
    conn.close()


def build(dbt: Dbt, database: Database, *extra: str, test: bool = False) -> str:
    """Seed, set the budgets, run the LLM models and what they read; test them if asked."""
    dbt("seed", "--select", "model_prices", "insight_rules", "tenant_llm_budgets")
    with database.connect() as conn, conn.cursor() as cur:
        for tenant, budget in BUDGETS.items():
            cur.execute("insert into seeds.tenant_llm_budgets values (%s, %s)", (tenant, budget))
    conn.close()
    dbt("run", *SELECT, *VARS, *extra)
    # cautious: the tests that also read marts outside the selection (not built here) wait
    return dbt("test", *SELECT, "--indirect-selection", "cautious", *VARS).stdout if test else ""


def snapshot(database: Database) -> dict[str, list[tuple]]:
    """Every LLM mart and the LLM columns of fct_conversations, ordered."""
    queries = {
        "fct_llm_calls": "select * from marts.fct_llm_calls order by trace_id, span_id",
        "llm_cost_daily": "select * from marts.llm_cost_daily order by 1, 2, 3, date_day",
        "llm_unpriced_models": "select * from marts.llm_unpriced_models order by 1, 2",
        "tenant_unit_economics_monthly": (
            "select * from marts.tenant_unit_economics_monthly order by 1, month_start_date"
        ),
        "tenant_llm_insights": "select * from marts.tenant_llm_insights order by insight_id",
        "fct_conversations": "select * from marts.fct_conversations order by conversation_id",
    }
    return {name: database.query(sql) for name, sql in queries.items()}


@dataclass
class Pipeline:
    database: Database
    test_output: str
    phase_1: dict[str, list[tuple]]
    incremental: dict[str, list[tuple]]
    full_refresh: dict[str, list[tuple]]


@pytest.fixture(scope="module")
def pipeline(
    module_db: Database, dbt: Dbt, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    folder: Path = tmp_path_factory.mktemp("llm_events")
    marketplace = [
        marketplace_event(
            tenant_id="t-acme", timestamp=at(5).isoformat(), properties={"cost_usd": 0.005}
        ),
        marketplace_event(
            tenant_id="t-acme", timestamp=at(5).isoformat(), properties={"cost_usd": 0.003}
        ),
        marketplace_event(
            tenant_id="t-acme",
            event_type="agent_errored",
            timestamp=at(6).isoformat(),
            properties={"cost_usd": 0.004, "error_type": "timeout"},
        ),
        marketplace_event(
            tenant_id="t-beta", timestamp=at(6).isoformat(), properties={"cost_usd": 2.0}
        ),
    ]
    conversations = [
        agent_event(
            conversation_id=conv, event_type=kind, timestamp=at(5).replace(tzinfo=None).isoformat()
        )
        for conv in ("conv-1", "conv-2")
        for kind in ("message", "completion")
    ]
    load(module_db, write_ndjson(folder / "marketplace.ndjson", marketplace))
    load(module_db, write_ndjson(folder / "conversations.ndjson", conversations))
    insert_spans(module_db, SPANS, batch_id=1)
    test_output = build(dbt, module_db, test=True)
    phase_1 = snapshot(module_db)

    insert_spans(module_db, [LATE_SPAN], batch_id=2)
    build(dbt, module_db)
    incremental = snapshot(module_db)
    build(dbt, module_db, "--full-refresh")
    full_refresh = snapshot(module_db)
    yield Pipeline(module_db, test_output, phase_1, incremental, full_refresh)


def calls(pipeline: Pipeline, phase: str = "phase_1") -> dict[int, dict[str, Any]]:
    """fct_llm_calls by span number."""
    rows = getattr(pipeline, phase)["fct_llm_calls"]
    columns = [
        row[0]
        for row in pipeline.database.query(
            "select column_name from information_schema.columns"
            " where table_schema = 'marts' and table_name = 'fct_llm_calls'"
            " order by ordinal_position"
        )
    ]
    return {int(row[1], 16): dict(zip(columns, row, strict=True)) for row in rows}


def test_every_dialect_is_priced_at_tokens_times_the_seed_price(pipeline: Pipeline) -> None:
    found = calls(pipeline)
    assert {number: row["cost_usd"] for number, row in found.items() if row["is_priced"]} == {
        number: cost for number, cost in COSTS.items() if number != 200
    }


def test_each_dialect_reads_into_one_shape(pipeline: Pipeline) -> None:
    found = calls(pipeline)
    shape = (
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    )
    assert tuple(found[1][key] for key in shape) == (1000, 500, 200, None, None)
    assert tuple(found[4][key] for key in shape) == (2000, 1000, None, None, None)
    assert tuple(found[5][key] for key in shape) == (10, 20, None, None, None)
    assert tuple(found[8][key] for key in shape) == (3000, 400, 1000, 500, None)
    assert tuple(found[14][key] for key in shape) == (250000, 1000, None, None, 400)
    assert (found[1]["tenant_id"], found[1]["user_id"], found[1]["agent_name"]) == (
        "t-acme",
        "u-1",
        "support",
    )
    assert (found[8]["tenant_id"], found[8]["user_id"], found[8]["conversation_id"]) == (
        "t-beta",
        "u-9",
        "conv-3",
    )
    assert (found[5]["conversation_id"], found[5]["error_type"], found[5]["is_error"]) == (
        "conv-2",
        "RateLimitError",
        True,
    )
    assert (found[10]["error_type"], found[9]["agent_name"]) == ("_OTHER", "researcher")
    assert [found[n]["provider_name"] for n in (1, 4, 5, 8)] == [
        "openai",
        "openai",
        "openai",
        "anthropic",
    ]
    assert found[1]["price_model_name"] == "gpt-4o-2024-08-06"  # the response model, not gpt-4o


def test_span_carried_cost_wins(pipeline: Pipeline) -> None:
    call = calls(pipeline)[9]
    assert (call["cost_source"], call["cost_usd"], call["computed_cost_usd"]) == (
        "span",
        Decimal("0.5"),
        Decimal("0.00125"),
    )


def test_agent_tool_and_other_spans_are_not_calls(pipeline: Pipeline) -> None:
    assert set(calls(pipeline)) == set(COSTS) - {200} | UNPRICED
    staged = pipeline.database.query(
        "select span_id, operation_type from staging.stg_otel__genai_operations"
        " where operation_type <> 'llm_call' order by span_id"
    )
    assert {int(span_id, 16): kind for span_id, kind in staged} == {
        2: "agent",
        3: "tool",
        6: "other",
        11: "agent",
        12: "other",
        13: "tool",
    }


def test_unpriced_calls_are_listed_and_warned(pipeline: Pipeline) -> None:
    found = calls(pipeline)
    assert {n for n, row in found.items() if not row["is_priced"]} == UNPRICED
    assert all(found[n]["cost_usd"] is None for n in UNPRICED)
    assert [row[:4] for row in pipeline.phase_1["llm_unpriced_models"]] == [
        ("acme-llm-7b", "acme", 1, 1),
        ("claude-sonnet-4-6", "anthropic", 1, 1),
    ]
    assert (
        "WARN" in pipeline.test_output and "fct_llm_calls_every_call_priced" in pipeline.test_output
    )


def test_cost_daily_groups_tenant_agent_model_day(pipeline: Pipeline) -> None:
    rows = {(r[0], r[1], r[2], str(r[16])): r for r in pipeline.phase_1["llm_cost_daily"]}
    researcher = rows[("t-beta", "researcher", "gpt-4o", "2026-11-06")]
    # its freshness: the newer of its two calls' loads (each span was inserted at its own time)
    found = calls(pipeline)
    assert researcher[17] == max(found[9]["loaded_at"], found[10]["loaded_at"])
    # calls, errored, unpriced; total tokens; cost; error rate, p50 and p95 (nearest rank)
    assert researcher[3:6] == (2, 1, 0)
    assert researcher[11] == 220
    assert researcher[12] == COSTS[9] + COSTS[10]
    assert researcher[13:16] == (Decimal("0.5"), Decimal("300"), Decimal("1000"))
    assert sum(r[12] for r in rows.values()) == sum(c for n, c in COSTS.items() if n != 200)


def test_unit_economics_margin_is_revenue_minus_cost(pipeline: Pipeline) -> None:
    rows = {(r[0], str(r[-1])): r for r in pipeline.phase_1["tenant_unit_economics_monthly"]}
    acme = rows[("t-acme", "2026-11-01")]
    acme_cost = COSTS[1] + COSTS[4] + COSTS[5]
    # invocations, conversations, calls, unpriced, revenue, cost, margin, margin rate,
    # cost per invocation, per conversation, budget, budget used
    assert acme[1:5] == (3, 2, 4, 1)
    assert acme[5:8] == (Decimal("0.008"), acme_cost, Decimal("0.008") - acme_cost)
    assert acme[9] == round(acme_cost / 3, 6)
    assert acme[10] == round(acme_cost / 2, 6)
    assert acme[12] == round(acme_cost / BUDGETS["t-acme"], 8)
    beta = rows[("t-beta", "2026-11-01")]
    beta_cost = COSTS[8] + COSTS[9] + COSTS[10] + COSTS[14]
    assert beta[5:9] == (Decimal("2"), beta_cost, 2 - beta_cost, round((2 - beta_cost) / 2, 8))
    # a tenant with calls only in January: cost 0 (the one call is unpriced), no revenue
    assert rows[("t-delta", "2026-01-01")][3:8] == (1, 1, 0, 0, 0)


def test_conversations_gain_llm_cost_and_tokens(pipeline: Pipeline) -> None:
    by_id = {row[0]: row for row in pipeline.phase_1["fct_conversations"]}
    # llm_calls, unpriced, input, output, total, cost: the six columns added at the end
    assert by_id["conv-1"][-6:] == (1, 0, 1000, 500, 1500, COSTS[1])
    assert by_id["conv-2"][-6:] == (1, 0, 10, 20, 30, COSTS[5])
    late = {row[0]: row for row in pipeline.incremental["fct_conversations"]}["conv-1"]
    assert late[-6:] == (2, 0, 1400, 600, 2000, COSTS[1] + COSTS[200])


def test_cost_insights_fire(pipeline: Pipeline) -> None:
    fired = {(row[1], row[2], str(row[-2])) for row in pipeline.phase_1["tenant_llm_insights"]}
    assert fired == {
        ("llm_budget_80_percent", "t-acme", "None"),
        ("negative_margin", "t-acme", "None"),
        ("unpriced_llm_calls", "t-acme", "None"),
        ("llm_budget_80_percent", "t-beta", "None"),
        ("llm_budget_exceeded", "t-beta", "None"),
        ("negative_margin", "t-gamma", "None"),
        ("negative_margin", "t-delta", "None"),
        ("llm_cost_spike", "t-gamma", "2026-11-08"),
    }
    spike = next(
        row for row in pipeline.phase_1["tenant_llm_insights"] if row[1] == "llm_cost_spike"
    )
    assert spike[10:12] == (Decimal(10), Decimal(3))
    assert "10.0 times" in spike[6]


def test_incremental_equals_full_refresh(pipeline: Pipeline) -> None:
    for name, rows in pipeline.full_refresh.items():
        assert rows == pipeline.incremental[name], name
