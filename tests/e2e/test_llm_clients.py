"""Real clients, no network: the `openai` client under each instrumentation, end to end.

A stand-in for the OpenAI chat-completions API listens on 127.0.0.1 and answers every call
with the same usage (cached prompt tokens and reasoning tokens included) and a dated
response model. tests/e2e/llm_client.py, a subprocess per instrumentation mode, calls it
with the `openai` client and exports its spans with the OpenTelemetry SDK's OTLP protobuf
exporter to `agent-loader serve`; `agent-loader load` reads the landing and `dbt build`
builds the LLM marts. The tokens there must be the stand-in's, and the cost those tokens
times the `seeds/model_prices.csv` row of the response model, worked out here in plain
Python from the CSV.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.conftest import REPO, Database, Dbt, run_loader
from tests.serve.conftest import ServeProcess

pytestmark = pytest.mark.dbt

KEY = "c" * 24 + "-clients"
REQUEST_MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
# What the stand-in answers to every call (OpenAI's usage: prompt tokens include the cached
# ones, completion tokens the reasoning ones).
PROMPT_TOKENS, CACHED_TOKENS = 1200, 400
COMPLETION_TOKENS, REASONING_TOKENS = 300, 100
# One tenant per mode, and a different number of calls each, so rows tell modes apart.
MODES = {
    "openai-v2": ("t-openai-v2", 1),
    "openai-v2-latest": ("t-openai-v2-latest", 2),
    "openinference": ("t-openinference", 3),
}
LATEST = {"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental"}
# The instrumentation scope of each mode's spans.
SCOPES = {
    "openai-v2": "opentelemetry.util.genai.handler",
    "openai-v2-latest": "opentelemetry.util.genai.handler",
    "openinference": "openinference.instrumentation.openai",
}


class StandIn(BaseHTTPRequestHandler):
    """POST /v1/chat/completions, answered with fixed usage; every request body is kept."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        StandIn.received.append({"path": self.path, **body})
        answer = json.dumps(
            {
                "id": f"chatcmpl-{len(StandIn.received)}",
                "object": "chat.completion",
                "created": 1_765_000_000,
                "model": RESPONSE_MODEL,
                "system_fingerprint": "fp_standin",
                "service_tier": "default",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "It ships tomorrow."},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": PROMPT_TOKENS,
                    "completion_tokens": COMPLETION_TOKENS,
                    "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                    "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS, "audio_tokens": 0},
                    "completion_tokens_details": {
                        "reasoning_tokens": REASONING_TOKENS,
                        "audio_tokens": 0,
                    },
                },
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test's output is its assertions."""


@pytest.fixture(scope="module")
def stand_in() -> Iterator[str]:
    """The model API's stand-in on a free port of 127.0.0.1; its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def run_client(mode: str, api: str, endpoint: str) -> None:
    """tests/e2e/llm_client.py in its own process, as an instrumented application runs."""
    tenant, calls = MODES[mode]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(LATEST if mode == "openai-v2-latest" else {})
    command = [sys.executable, "-m", "tests.e2e.llm_client", mode, "--api", api]
    command += ["--endpoint", endpoint, "--key", KEY, "--tenant", tenant]
    command += ["--model", REQUEST_MODEL, "--calls", str(calls)]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@dataclass
class Built:
    requests: list[dict[str, Any]]
    spans: list[tuple]
    calls: list[dict[str, Any]]
    daily: list[dict[str, Any]]


@pytest.fixture(scope="module")
def built(
    module_db: Database, dbt: Dbt, stand_in: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Built]:
    folder: Path = tmp_path_factory.mktemp("llm_clients")
    keys = folder / "keys"
    keys.write_text(f"agents:{KEY}\n")
    serve = ServeProcess(folder / "landing", "--keys-file", str(keys))
    try:
        for mode in MODES:
            run_client(mode, stand_in, serve.url)
    finally:
        serve.stop()
    run_loader(module_db, "load", str(serve.landing))
    as_of = (datetime.now(timezone.utc) + timedelta(days=1)).date().isoformat()
    dbt(
        "build",
        "--select",
        "+fct_llm_calls",
        "+llm_cost_daily",
        "--indirect-selection",
        "cautious",
        "--vars",
        json.dumps({"as_of": as_of}),
    )
    yield Built(
        list(StandIn.received),
        module_db.query("select resource_attributes ->> 'tenant.id', scope_name from raw.spans"),
        module_db.dicts("select * from marts.fct_llm_calls order by tenant_id, started_at"),
        module_db.dicts("select * from marts.llm_cost_daily order by tenant_id"),
    )


def price_row(model: str) -> dict[str, str]:
    """The one row of seeds/model_prices.csv named `model`."""
    with (REPO / "seeds" / "model_prices.csv").open(newline="") as prices:
        (row,) = [row for row in csv.DictReader(prices) if row["model_name"] == model]
    return row


def expected_cost(row: dict[str, str], tokens: dict[str, int | None]) -> Decimal:
    """Tokens times the row's prices: cached prompt tokens at the cache-read price, the rest
    of the prompt at the input price; reasoning tokens at the reasoning price when the row
    has one, else with the rest of the completion at the output price."""

    def price(column: str, fallback: str) -> Decimal:
        return Decimal(row[column] or row[fallback])

    cached, reasoning = tokens["cache_read_tokens"] or 0, tokens["reasoning_tokens"] or 0
    output = tokens["output_tokens"] - (reasoning if row["reasoning_usd_per_token"] else 0)
    assert tokens["input_tokens"] is not None and tokens["output_tokens"] is not None
    return (
        (tokens["input_tokens"] - cached) * price("input_usd_per_token", "input_usd_per_token")
        + cached * price("cache_read_usd_per_token", "input_usd_per_token")
        + output * price("output_usd_per_token", "output_usd_per_token")
        + (reasoning * Decimal(row["reasoning_usd_per_token"] or 0))
    )


# What each instrumentation puts on its span of the stand-in's answer. The OpenAI
# instrumentation (2.4b0 with opentelemetry-util-genai 1.1b0, both modes) records prompt and
# completion tokens only: the cached and reasoning details are not on its spans, so its calls
# are priced with every prompt token at the input price. OpenInference records both.
REPORTED: dict[str, dict[str, int | None]] = {
    "openai-v2": {"cache_read_tokens": None, "reasoning_tokens": None},
    "openai-v2-latest": {"cache_read_tokens": None, "reasoning_tokens": None},
    "openinference": {"cache_read_tokens": CACHED_TOKENS, "reasoning_tokens": REASONING_TOKENS},
}
TOKENS = {
    mode: {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS, **details}
    for mode, details in REPORTED.items()
}


def test_every_call_reached_the_stand_in_and_became_one_span(built: Built) -> None:
    assert [(r["path"], r["model"]) for r in built.requests] == [
        ("/v1/chat/completions", REQUEST_MODEL)
    ] * sum(calls for _, calls in MODES.values())
    # one span per call, each from the instrumentation of its mode
    assert sorted(built.spans) == sorted(
        (tenant, SCOPES[mode]) for mode, (tenant, calls) in MODES.items() for _ in range(calls)
    )


def test_each_mode_loads_its_calls_with_the_stand_ins_tokens(built: Built) -> None:
    for mode, (tenant, calls) in MODES.items():
        rows = [row for row in built.calls if row["tenant_id"] == tenant]
        assert len(rows) == calls, mode
        for row in rows:
            assert {key: row[key] for key in TOKENS[mode]} == TOKENS[mode], mode
            assert row["total_tokens"] == PROMPT_TOKENS + COMPLETION_TOKENS, mode
            assert (row["provider_name"], row["operation_name"]) == ("openai", "chat"), mode
            assert (row["request_model"], row["response_model"]) == (
                REQUEST_MODEL,
                RESPONSE_MODEL,
            ), mode
            assert (row["is_error"], row["cost_source"]) == (False, "price_table"), mode
    assert len(built.calls) == sum(calls for _, calls in MODES.values())


def test_cost_is_the_tokens_times_the_response_models_seed_price(built: Built) -> None:
    row = price_row(RESPONSE_MODEL)
    for mode, (tenant, _) in MODES.items():
        for call in (c for c in built.calls if c["tenant_id"] == tenant):
            assert call["price_model_name"] == RESPONSE_MODEL, mode
            assert call["cost_usd"] == expected_cost(row, TOKENS[mode]), mode
    # the cached prompt tokens are cheaper: a mode that reports them costs less
    assert expected_cost(row, TOKENS["openinference"]) < expected_cost(row, TOKENS["openai-v2"])


def test_cost_daily_adds_up_each_tenants_calls(built: Built) -> None:
    row = price_row(RESPONSE_MODEL)
    sums = ("calls", "unpriced_calls", *TOKENS["openinference"], "cost_usd")
    found: dict[str, dict[str, Any]] = {}
    for day in built.daily:  # a run across midnight has two days: add them up
        assert day["model_name"] == RESPONSE_MODEL
        tenant = found.setdefault(day["tenant_id"], dict.fromkeys(sums, 0))
        for key in sums:
            tenant[key] += day[key]
    assert set(found) == {tenant for tenant, _ in MODES.values()}
    for mode, (tenant, calls) in MODES.items():
        expected = {key: calls * (value or 0) for key, value in TOKENS[mode].items()}
        cost = round(calls * expected_cost(row, TOKENS[mode]), 6)
        assert found[tenant] == {"calls": calls, "unpriced_calls": 0, **expected, "cost_usd": cost}
