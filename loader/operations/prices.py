"""The model price seed (`seeds/model_prices.csv`), refreshed from Langfuse's price table.

Langfuse's `worker/src/constants/default-model-prices.json` (MIT) is maintained upstream: one
entry per model with a case-insensitive regular expression that matches provider prefixes and
date suffixes, and pricing tiers (a default tier, tiers above an input-token count, tiers chosen
by request parameters). The seed keeps one row per model, tier and `valid_from` date, so a
refresh never reprices calls made before a price changed: a row whose prices or pattern changed
upstream is appended with the entry's `updatedAt` date, and rows that left the table stay.

Kept: the default tier and the tiers chosen by input size (`input_tokens_above`). Left out:
tiers chosen by request parameters (`service_tier`, `speed`), which spans do not carry reliably.
"""

from __future__ import annotations

import csv
import json
from dataclasses import astuple, dataclass, fields
from decimal import Decimal
from pathlib import Path
from typing import Any

# Langfuse names one price several ways (per provider's usage keys); the first present wins.
# Spans count tokens without their modality, so audio models are priced at their text price;
# a single `total` price applies to input and output alike.
PRICE_KEYS: dict[str, tuple[str, ...]] = {
    "input_usd_per_token": (
        "input",
        "input_tokens",
        "input_text",
        "input_text_tokens",
        "prompt_token_count",
        "total",
    ),
    "output_usd_per_token": (
        "output",
        "output_tokens",
        "output_text",
        "output_text_tokens",
        "candidates_token_count",
        "total",
    ),
    "cache_read_usd_per_token": (
        "input_cache_read",
        "input_cached_tokens",
        "input_cached_text_tokens",
        "cache_read_input_tokens",
        "cached_content_token_count",
    ),
    "cache_write_usd_per_token": (
        "input_cache_creation",
        "cache_creation_input_tokens",
        "cache_write_tokens",
        "input_cache_creation_5m",
    ),
    "reasoning_usd_per_token": (
        "output_reasoning_tokens",
        "output_reasoning",
        "reasoning_tokens",
        "thoughts_token_count",
    ),
}


class PriceTableError(Exception):
    """The file is not a Langfuse model price table (or the seed is not this module's CSV)."""


@dataclass(frozen=True)
class PriceRow:
    """One row of the seed: a model's prices in one tier, valid from a date."""

    model_name: str
    tier_name: str
    valid_from: str
    match_pattern: str
    input_tokens_above: str
    input_usd_per_token: str
    output_usd_per_token: str
    cache_read_usd_per_token: str
    cache_write_usd_per_token: str
    reasoning_usd_per_token: str
    source_tier_id: str
    source_commit: str

    @property
    def prices(self) -> tuple[str, ...]:
        """What a refresh compares: the pattern, the tier condition and every price."""
        return astuple(self)[3:10]


COLUMNS = [field.name for field in fields(PriceRow)]


def _decimal(value: Any) -> str:
    """A price as plain decimal text (no exponent), which every engine's cast reads."""
    return format(Decimal(str(value)).normalize(), "f") if value is not None else ""


def _input_tokens_above(tier: dict[str, Any]) -> str | None:
    """The tier's input-size threshold ("" for none); None for a tier that also depends on
    request parameters, which the seed leaves out."""
    thresholds = []
    for condition in tier.get("conditions") or []:
        pattern = condition.get("usageDetailPattern", "")
        if condition.get("operator") != "gt" or "input" not in pattern:
            return None
        thresholds.append(int(condition["value"]))
    return str(max(thresholds)) if thresholds else ""


def rows_from_table(
    table: list[dict[str, Any]], source_commit: str, date_field: str = "updatedAt"
) -> list[PriceRow]:
    """The seed rows one copy of the price table gives, valid from the model's `date_field`."""
    rows = []
    for model in table:
        try:
            for tier in model["pricingTiers"]:
                threshold = _input_tokens_above(tier)
                if threshold is None:
                    continue
                prices = tier["prices"]
                chosen = {
                    column: _decimal(next((prices[k] for k in keys if k in prices), None))
                    for column, keys in PRICE_KEYS.items()
                }
                rows.append(
                    PriceRow(
                        model_name=model["modelName"],
                        tier_name=tier["name"],
                        valid_from=model[date_field][:10],
                        match_pattern=model["matchPattern"],
                        input_tokens_above=threshold,
                        **chosen,
                        source_tier_id=tier["id"],
                        source_commit=source_commit,
                    )
                )
        except (KeyError, TypeError, ValueError) as error:
            raise PriceTableError(
                f"entry {model.get('modelName', '?')!r} has no {error}: is this Langfuse's"
                " default-model-prices.json?"
            ) from error
    return rows


def merge(
    existing: list[PriceRow], fresh: list[PriceRow], first_seen: dict[str, PriceRow]
) -> list[PriceRow]:
    """Keep every existing row; add a fresh row where its tier's latest prices differ.

    A tier not in the seed yet is added as `first_seen` has it: valid from the model's
    `createdAt`, the best the table knows (it keeps no price history).
    """
    latest: dict[str, PriceRow] = {}
    for row in sorted(existing, key=lambda r: r.valid_from):
        latest[row.source_tier_id] = row
    added: list[PriceRow] = []
    replaced: set[int] = set()
    for row in fresh:
        before = latest.get(row.source_tier_id)
        if before is None:
            added.append(first_seen.get(row.source_tier_id, row))
        elif before.prices != row.prices:
            # Upstream dates a change by `updatedAt`; a change dated on or before the row it
            # follows replaces that row (one price per tier and day).
            valid_from = max(row.valid_from, before.valid_from)
            if valid_from == before.valid_from:
                replaced.add(id(before))
            added.append(PriceRow(**{**row.__dict__, "valid_from": valid_from}))
    kept = [row for row in existing if id(row) not in replaced]
    return sorted(kept + added, key=lambda r: (r.model_name, r.tier_name, r.valid_from))


def read_seed(path: Path) -> list[PriceRow]:
    """The seed's rows; none when the file does not exist yet."""
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        if reader.fieldnames != COLUMNS:
            raise PriceTableError(f"{path} does not have the columns {', '.join(COLUMNS)}")
        return [PriceRow(**row) for row in reader]


def refresh(table_path: Path, seed_path: Path, source_commit: str) -> tuple[int, int]:
    """Merge a copy of the price table into the seed; returns (rows before, rows after)."""
    try:
        table = json.loads(table_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PriceTableError(f"cannot read {table_path}: {error}") from error
    if not isinstance(table, list):
        raise PriceTableError(f"{table_path} is not a JSON list of models")
    existing = read_seed(seed_path)
    first_seen = {
        row.source_tier_id: row for row in rows_from_table(table, source_commit, "createdAt")
    }
    rows = merge(existing, rows_from_table(table, source_commit), first_seen)
    with seed_path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(astuple(row) for row in rows)
    return len(existing), len(rows)
