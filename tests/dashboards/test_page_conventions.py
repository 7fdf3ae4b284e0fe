"""Issue 28's page conventions, read from the pages as the builder parses them (no database).

- numbers are formatted as what they are: a `*_usd` figure as money, a `*_rate` as a
  percentage, a `*_ms` in milliseconds;
- each page says how fresh its data is: when its marts' data was loaded (`last_loaded_at`;
  the publisher portal's platform-wide `warehouse_last_loaded_at`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from loader.dashboards import build as sites
from loader.dashboards import pages

# the column each component shows, by the attribute that names it
SHOWN_BY = {"BigValue": "value", "Value": "column"}
# how the time a page's data reaches is shown: a load time, else the last day or window
LOAD_TIME_COLUMNS = {"last_loaded_at", "warehouse_last_loaded_at"}
FRESHNESS_COLUMNS = LOAD_TIME_COLUMNS | {"last_day", "window_end_at", "window_end_date"}


def components(source: str) -> Iterator[tuple[str, dict]]:
    """(component, props) of every component on a page, a DataTable's columns as `Column`."""
    page = pages.parse(source, (sites.PROJECT / "pages" / source).read_text())
    for chunk in page.body.split('data-component="')[1:]:
        name = chunk.split('"', 1)[0]
        props = json.loads(
            chunk.split('data-props="', 1)[1].split('"', 1)[0].replace("&quot;", '"')
        )
        yield name, props
        for column in props.get("columns", []):
            yield "Column", column


def shown(name: str, props: dict) -> str | None:
    return props.get("id") if name == "Column" else props.get(SHOWN_BY.get(name, ""))


def test_money_rates_and_milliseconds_are_formatted_as_such() -> None:
    wrong = []
    checked = 0
    for source in sites.OPERATOR_PAGES:
        for name, props in components(source):
            column, fmt = shown(name, props), str(props.get("fmt", ""))
            if column is None:
                continue
            for suffix, expected in (("_usd", "usd"), ("_rate", "pct"), ("_ms", '" ms"')):
                if column.endswith(suffix):
                    checked += 1
                    if expected not in fmt:
                        wrong.append((source, name, column, fmt))
    assert checked >= 10  # the pages do show money, rates and durations
    assert wrong == []


def freshness_shown(source: str) -> set[str]:
    return {
        column
        for name, props in components(source)
        if name == "Value" and (column := shown(name, props)) in FRESHNESS_COLUMNS
    }


@pytest.mark.parametrize("source", sites.OPERATOR_PAGES)
def test_every_page_says_how_fresh_its_data_is(source: str) -> None:
    assert freshness_shown(source), source


def test_every_page_shows_when_its_data_was_loaded() -> None:
    assert {
        source: bool(freshness_shown(source) & LOAD_TIME_COLUMNS) for source in sites.OPERATOR_PAGES
    } == dict.fromkeys(sites.OPERATOR_PAGES, True)
