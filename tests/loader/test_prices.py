"""The model price seed: what a refresh from Langfuse's price table keeps, adds and refuses."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from click.testing import CliRunner

from loader.cli import main
from loader.operations.prices import COLUMNS
from tests.conftest import Database

SHIPPED_SEED = Path(__file__).parents[2] / "seeds" / "model_prices.csv"


def _model(name: str, tiers: list[dict], created: str, updated: str) -> dict:
    return {
        "id": f"id-{name}",
        "modelName": name,
        "matchPattern": f"(?i)^(openai/)?({name})$",
        "createdAt": f"{created}T00:00:00.000Z",
        "updatedAt": f"{updated}T12:00:00.000Z",
        "pricingTiers": tiers,
    }


def _tier(tier_id: str, name: str, prices: dict, conditions: list | None = None) -> dict:
    return {"id": tier_id, "name": name, "conditions": conditions or [], "prices": prices}


LARGE_CONTEXT = [{"usageDetailPattern": "(input)", "operator": "gt", "value": 200000}]
FAST_MODE = [
    {"source": "model_parameters", "key": "service_tier", "operator": "in", "values": ["fast"]}
]


def _table(input_price: float = 2.5e-6) -> list[dict]:
    return [
        _model(
            "gpt-x",
            [
                _tier(
                    "gpt-x-default",
                    "Standard",
                    {
                        "input": input_price,
                        "output": 10e-6,
                        "input_cached_tokens": 1.25e-6,
                        "output_reasoning_tokens": 10e-6,
                    },
                ),
                _tier("gpt-x-large", "Large", {"input": 5e-6, "output": 20e-6}, LARGE_CONTEXT),
                _tier("gpt-x-fast", "Fast", {"input": 9e-6, "output": 30e-6}, FAST_MODE),
            ],
            created="2025-01-01",
            updated="2026-06-01",
        ),
        _model(
            "claude-y",
            [
                _tier(
                    "claude-y-default",
                    "Standard",
                    {"input": 3e-6, "output": 15e-6, "input_cache_creation": 3.75e-6},
                )
            ],
            created="2025-03-01",
            updated="2025-03-01",
        ),
    ]


def _refresh(tmp_path: Path, table: list[dict], commit: str) -> list[dict[str, str]]:
    table_path = tmp_path / "prices.json"
    table_path.write_text(json.dumps(table))
    seed = tmp_path / "model_prices.csv"
    result = CliRunner().invoke(
        main, ["prices", str(table_path), "--seed", str(seed), "--source-commit", commit]
    )
    assert result.exit_code == 0, result.output
    with seed.open(newline="") as file:
        return list(csv.DictReader(file))


def test_first_refresh_keeps_default_and_input_size_tiers_valid_from_creation(tmp_path: Path):
    rows = _refresh(tmp_path, _table(), "c1")
    assert [(r["model_name"], r["tier_name"], r["valid_from"]) for r in rows] == [
        ("claude-y", "Standard", "2025-03-01"),
        ("gpt-x", "Large", "2025-01-01"),
        ("gpt-x", "Standard", "2025-01-01"),
    ]
    standard = rows[2]
    assert standard["input_usd_per_token"] == "0.0000025"
    assert standard["output_usd_per_token"] == "0.00001"
    assert standard["cache_read_usd_per_token"] == "0.00000125"
    assert standard["cache_write_usd_per_token"] == ""
    assert standard["reasoning_usd_per_token"] == "0.00001"
    assert standard["input_tokens_above"] == ""
    assert rows[1]["input_tokens_above"] == "200000"
    assert rows[0]["cache_write_usd_per_token"] == "0.00000375"
    assert {r["source_commit"] for r in rows} == {"c1"}


def test_a_changed_price_is_added_from_its_update_date_and_the_old_one_stays(tmp_path: Path):
    _refresh(tmp_path, _table(), "c1")
    changed = _table(input_price=2e-6)
    changed[0]["updatedAt"] = "2026-09-15T08:00:00.000Z"
    del changed[1]  # a model that left the table keeps its rows
    rows = _refresh(tmp_path, changed, "c2")
    standard = [
        (r["valid_from"], r["input_usd_per_token"], r["source_commit"])
        for r in rows
        if r["model_name"] == "gpt-x" and r["tier_name"] == "Standard"
    ]
    assert standard == [("2025-01-01", "0.0000025", "c1"), ("2026-09-15", "0.000002", "c2")]
    assert len(rows) == 4
    assert [r["model_name"] for r in rows].count("claude-y") == 1


def test_an_unchanged_table_changes_nothing(tmp_path: Path):
    first = _refresh(tmp_path, _table(), "c1")
    assert _refresh(tmp_path, _table(), "c2") == first


def test_a_file_that_is_not_the_price_table_is_refused_with_the_reason(tmp_path: Path):
    table_path = tmp_path / "prices.json"
    table_path.write_text(json.dumps([{"modelName": "m"}]))
    result = CliRunner().invoke(
        main, ["prices", str(table_path), "--seed", str(tmp_path / "s.csv"), "--source-commit", "c"]
    )
    assert result.exit_code == 1
    assert "entry 'm' has no 'pricingTiers'" in result.output
    assert not (tmp_path / "s.csv").exists()


def test_shipped_seed_patterns_compile_in_postgresql_and_match_as_python_does(db: Database):
    with SHIPPED_SEED.open(newline="") as file:
        reader = csv.DictReader(file)
        assert reader.fieldnames == COLUMNS
        rows = list(reader)
    assert len(rows) > 100
    assert all(r["source_commit"] and r["input_usd_per_token"] for r in rows)
    # The build matches models with PostgreSQL's regular expressions: each pattern compiles
    # there, and its case-insensitive `(?i)` prefix is honoured.
    matched = db.query(
        "select name, name ~ pattern, upper(name) ~ pattern"
        " from unnest(%s, %s) as p(name, pattern)",
        ([r["model_name"] for r in rows], [r["match_pattern"] for r in rows]),
    )
    gpt_4o = next(m for m in matched if m[0] == "gpt-4o")
    assert gpt_4o[1:] == (True, True)
    assert sum(m[1] for m in matched) > 0.9 * len(rows)
