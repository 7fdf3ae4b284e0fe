"""The `tool_failure_reading` var: both readings are unit-tested, anything else is refused.

The unit tests (models/marts/publisher/_publisher__reference_rules.yml) give both readings
the same tool events; each reading's figures there are computed by hand.
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.dbt


def test_both_readings_hold_their_hand_computed_figures(dbt):
    dbt("run", "--select", "+int_tool_uses_unioned")  # unit tests read their inputs' columns
    result = dbt("test", "--select", "publisher_tool_usage,test_type:unit")
    passed = set(
        re.findall(
            r"PASS publisher_tool_usage::(test_tool_failure_rate_\w+_reading) ", result.stdout
        )
    )
    assert passed == {
        "test_tool_failure_rate_subset_reading",
        "test_tool_failure_rate_disjoint_reading",
    }


def test_the_default_reading_is_subset_and_the_disjoint_one_adds_failures(dbt):
    dbt("compile", "--select", "publisher_tool_usage")
    compiled = next(dbt.target_dir.glob("compiled/**/publisher_tool_usage.sql")).read_text()
    assert "tool_called_events as tool_event_calls" in compiled
    dbt("compile", "--select", "publisher_tool_usage", "--vars", "{tool_failure_reading: disjoint}")
    compiled = next(dbt.target_dir.glob("compiled/**/publisher_tool_usage.sql")).read_text()
    assert "(tool_called_events + tool_failed_events) as tool_event_calls" in compiled


def test_an_unknown_reading_stops_the_build_saying_what_to_set(dbt):
    result = dbt(
        "compile",
        "--select",
        "publisher_tool_usage",
        "--vars",
        "{tool_failure_reading: both}",
        check=False,
    )
    assert result.returncode != 0
    assert "var tool_failure_reading is 'both': set it to 'subset'" in result.stdout
