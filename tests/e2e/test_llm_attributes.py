"""Issue 26's attribute claims that test_llm_costs.py leaves out, on the real dbt models.

- the user falls back from `user.id` to `enduser.id`, on the span, then on its resource;
- the tenant and user attribute names are dbt vars (`otel_tenant_attribute`,
  `otel_user_attributes`): other names read other attributes;
- a cost carried as `gen_ai.usage.cost` (the GenAI conventions' name, beside OpenInference's
  `llm.cost.total`) wins over the computed one.

Spans go straight into raw.spans with test_llm_costs.py's writer; every expected value is
written out here from the spans and seeds/model_prices.csv.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.conftest import Database, Dbt
from tests.e2e.test_llm_costs import Span, at, insert_spans

pytestmark = pytest.mark.dbt

CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 100,
}
SPANS = [
    # enduser.id only, on the span
    Span(1, "chat", {**CHAT, "enduser.id": "end-1", "tenant.id": "t-1"}, at(5)),
    # user.id on the resource, enduser.id on the span: the span is read first (documented in
    # _otel__models.yml: "Read on the span, then on its resource")
    Span(2, "chat", {**CHAT, "enduser.id": "end-2"}, at(5), resource={"user.id": "u-2"}),
    # user.id on both: the span's wins; tenant on the resource, another name on the span
    Span(
        3,
        "chat",
        {**CHAT, "user.id": "u-span", "customer.id": "c-3", "app.user": "a-3"},
        at(5),
        resource={"user.id": "u-resource", "tenant.id": "t-3"},
    ),
    # a span-carried cost under the GenAI name: 0.25 wins over
    # 1000 * 1.5e-7 + 100 * 6e-7 = 0.00021 (gpt-4o-mini-2024-07-18)
    Span(4, "chat", {**CHAT, "gen_ai.usage.cost": 0.25, "tenant.id": "t-4"}, at(5)),
]


def staged(database: Database) -> dict[int, tuple]:
    rows = database.query(
        "select span_id, tenant_id, user_id from staging.stg_otel__genai_operations"
    )
    return {int(span_id, 16): (tenant, user) for span_id, tenant, user in rows}


def test_user_fallback_attribute_vars_and_the_genai_cost_name(
    module_db: Database, dbt: Dbt
) -> None:
    insert_spans(module_db, SPANS, batch_id=1)
    dbt("seed", "--select", "model_prices")
    dbt("run", "--select", "+fct_llm_calls", "--vars", json.dumps({"as_of": "2026-11-30"}))
    assert staged(module_db) == {
        1: ("t-1", "end-1"),
        2: ("", "end-2"),
        3: ("t-3", "u-span"),
        4: ("t-4", None),
    }
    cost = module_db.query(
        "select cost_source, cost_usd, computed_cost_usd from marts.fct_llm_calls"
        " where span_id = %s",
        (SPANS[3].span_id,),
    )
    assert cost == [("span", Decimal("0.25"), Decimal("0.00021"))]

    # other attribute names, as a deployment would set them in dbt_project.yml or --vars;
    # the model is incremental, so spans already staged are read again by a full refresh
    other = {
        "as_of": "2026-11-30",
        "otel_tenant_attribute": "customer.id",
        "otel_user_attributes": ["app.user"],
    }
    dbt(
        "run",
        "--select",
        "stg_otel__genai_operations",
        "--full-refresh",
        "--vars",
        json.dumps(other),
    )
    assert staged(module_db) == {1: ("", None), 2: ("", None), 3: ("c-3", "a-3"), 4: ("", None)}
