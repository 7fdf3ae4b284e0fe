"""The LLM cost and the conversations pages, with data to show, in headless Chromium.

test_dashboards.py opens every page on a warehouse of marketplace events only, so its LLM and
conversations pages show nothing. Here the warehouse also holds one tenant's GenAI spans (OTLP
JSON, as the Collector's file exporter writes it) and three conversations' events, loaded by
`agent-loader load`; the marts are built by dbt, the operator site by `agent-loader dashboards
build`, and the figures the pages show (and the margin row the LLM page's data holds) are
compared with values worked out here from the planted records and seeds/model_prices.csv.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import Database, Dbt, run_loader
from tests.dashboards.browser import chromium, serve
from tests.factories import agent_event, marketplace_event, write_ndjson

pytestmark = pytest.mark.dbt

NOW = datetime.now(timezone.utc).replace(microsecond=0)
WHEN = NOW - timedelta(hours=2)
TENANT = "t-llm-page"
# seeds/model_prices.csv, gpt-4o-mini-2024-07-18: input 0.00000015, output 0.0000006 a token.
# 1,000,000 * 0.00000015 + 100,000 * 0.0000006 = 0.15 + 0.06 = 0.21 a call; three calls.
PRICED_CALLS, COST_PER_CALL = 3, 0.21
COST = PRICED_CALLS * COST_PER_CALL  # 0.63
REVENUE = 2 * 0.5  # two completed invocations at 0.5
MARGIN = REVENUE - COST  # 0.37


def attribute(key: str, value: str | int) -> dict:
    kind = "intValue" if isinstance(value, int) else "stringValue"
    return {"key": key, "value": {kind: str(value) if kind == "intValue" else value}}


def call(number: int, model: str) -> dict:
    end = int(WHEN.timestamp() * 1e9) + number * 1_000_000_000
    return {
        "traceId": f"{number:032x}",
        "spanId": f"{number:016x}",
        "name": f"chat {model}",
        "kind": 3,
        "startTimeUnixNano": str(end - 500_000_000),
        "endTimeUnixNano": str(end),
        "attributes": [
            attribute("gen_ai.operation.name", "chat"),
            attribute("gen_ai.provider.name", "openai"),
            attribute("gen_ai.request.model", model),
            attribute("gen_ai.response.model", model),
            attribute("gen_ai.usage.input_tokens", 1_000_000),
            attribute("gen_ai.usage.output_tokens", 100_000),
        ],
    }


@pytest.fixture(scope="module")
def site(module_db: Database, dbt: Dbt, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("llm_page")
    events = [
        marketplace_event(
            id=f"page-{n}", tenant_id=TENANT, timestamp=WHEN.isoformat(),
            properties={"cost_usd": 0.5, "duration_ms": 100},
        )
        for n in range(2)
    ]  # fmt: skip
    spans = [call(n, "gpt-4o-mini-2024-07-18") for n in range(1, PRICED_CALLS + 1)]
    spans.append(call(9, "acme-llm-7b"))  # no price: counted, listed, not costed
    request = {
        "resourceSpans": [
            {
                "resource": {"attributes": [attribute("tenant.id", TENANT)]},
                "scopeSpans": [{"scope": {"name": "tests"}, "spans": spans}],
            }
        ]
    }
    # conv-a: two messages and an error; conv-b: one message; conv-c: a message in this hour
    # and one in the next. 3 conversations, 5 messages, 1 error.
    hour_later = WHEN + timedelta(hours=1)
    conversation = [
        ("conv-a", "message", WHEN), ("conv-a", "message", WHEN), ("conv-a", "error", WHEN),
        ("conv-b", "message", WHEN), ("conv-c", "message", WHEN), ("conv-c", "message", hour_later),
    ]  # fmt: skip
    write_ndjson(
        folder / "conversations.ndjson",
        [
            agent_event(
                conversation_id=conv,
                event_type=kind,
                timestamp=moment.replace(tzinfo=None).isoformat(),
            )
            for conv, kind, moment in conversation
        ],
    )
    (folder / "traces.json.gz").write_bytes(gzip.compress(json.dumps(request).encode() + b"\n"))
    write_ndjson(folder / "events.ndjson", events)
    run_loader(module_db, "load", str(folder))
    dbt("seed")
    dbt("run", "--vars", json.dumps({"as_of": NOW.date().isoformat()}))
    out = folder / "site"
    run_loader(module_db, "dashboards", "build", "--out", str(out))
    return out


def test_the_llm_page_shows_the_calls_cost_and_margin_of_the_spans(
    site: Path, tmp_path: Path
) -> None:
    with chromium() as browser, serve(site) as url:
        visit = browser.open(f"{url}/llm-cost.html", tmp_path / "llm-cost.png")
    assert visit.problems == []
    assert visit.figures["LLM cost"] == f"${COST:,.2f}" == "$0.63"
    assert visit.figures["LLM calls"] == "4"
    assert visit.figures["Unpriced calls"] == "1"
    economics = json.loads((site / "data" / "llm-cost.json").read_text())["economics"]
    [row] = [dict(zip(economics["columns"], r, strict=True)) for r in economics["rows"]]
    assert row["tenant"] == TENANT
    assert row["revenue_usd"] == pytest.approx(REVENUE)
    assert row["llm_cost_usd"] == pytest.approx(COST)
    assert row["margin_usd"] == pytest.approx(MARGIN)
    assert row["margin_rate"] == pytest.approx(MARGIN / REVENUE)


def test_the_conversations_page_counts_each_conversation_once(site: Path, tmp_path: Path) -> None:
    with chromium() as browser, serve(site) as url:
        visit = browser.open(f"{url}/conversations.html", tmp_path / "conversations.png")
    assert visit.problems == []
    # conv-c has messages in two hours: it is still one conversation
    assert (visit.figures["Conversations"], visit.figures["Messages"]) == ("3", "5")
    assert visit.figures["Errors"] == "1"
