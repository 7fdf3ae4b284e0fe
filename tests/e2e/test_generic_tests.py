"""Our custom generic tests can fail: each runs on a passing and a failing fixture.

The test macros (`tests/generic/*.sql`) are called directly inside `dbt show --inline`, on
inline `values` lists, and the number of failing rows each returns is checked.
"""

from __future__ import annotations

import re

# A shared mart's mapping (macros/shared_marts.sql), as a Jinja literal.
MAPPING = (
    "{'base': 'b', 'columns':"
    " {'a': 'shown', 'b': 'withheld', 'c': {'coarsen': 'count'}, 'd': 'shown'}}"
)

CASES = {
    # name (dbt show cuts cells at 20 characters): (macro call, expected failing rows)
    "range_pass": (
        "test_accepted_range(model='(values (0), (1), (null)) as m (x)', column_name='x',"
        " min_value=0, max_value=1)",
        0,
    ),
    "range_fail": (
        "test_accepted_range(model='(values (-0.1), (0.5), (1.5)) as m (x)', column_name='x',"
        " min_value=0, max_value=1)",
        2,
    ),
    "range_strict": (
        "test_accepted_range(model='(values (0), (1)) as m (x)', column_name='x',"
        " min_value=0, inclusive=false)",
        1,
    ),
    "range_one_sided": (
        "test_accepted_range(model='(values (0), (99)) as m (x)', column_name='x', min_value=0)",
        0,
    ),
    "combo_pass": (
        "test_unique_combination_of_columns(model='(values (1, 1), (1, 2)) as m (a, b)',"
        " combination_of_columns=['a', 'b'])",
        0,
    ),
    "combo_fail": (
        "test_unique_combination_of_columns(model='(values (1, 1), (1, 1), (2, 1)) as m (a, b)',"
        " combination_of_columns=['a', 'b'])",
        1,
    ),
    "expr_pass": (
        "test_expression_is_true(model='(values (1, 2), (3, 3)) as m (a, b)', expression='a <= b')",
        0,
    ),
    "expr_fail_and_null": (
        "test_expression_is_true(model='(values (1, 2), (4, 3), (null, 1)) as m (a, b)',"
        " expression='a <= b')",
        2,
    ),
    "expr_condition": (
        "test_expression_is_true(model='(values (1, 2), (4, 3)) as m (a, b)',"
        " expression='a <= b', condition='a < 4')",
        0,
    ),
    # maps_every_base_column (macros/shared_marts.sql): mapping a -> shown, b -> withheld,
    # c -> coarsened, d -> shown (a column only the shared mart has)
    "mapping_pass": (
        f"shared_mart_mapping_problems('m', {MAPPING}, ['a', 'b', 'c'], ['a', 'c', 'd'])",
        0,
    ),
    "mapping_new_base_col": (
        f"shared_mart_mapping_problems('m', {MAPPING}, ['a', 'b', 'c', 'e'], ['a', 'c', 'd'])",
        1,
    ),
    "mapping_mismatch": (
        # b is withheld but shared, x is shared but unmapped, d is mapped but in neither
        f"shared_mart_mapping_problems('m', {MAPPING}, ['a', 'b', 'c'], ['a', 'b', 'c', 'x'])",
        3,
    ),
    "mapping_real_marts": (
        "test_maps_every_base_column(model=api.Relation.create(identifier='publisher_daily_shared'))",
        0,
    ),
}


def test_each_generic_test_passes_and_fails_where_it_should(dbt):
    query = "\nunion all\n".join(
        f"select '{name}' as check_name, count(*) as failures from ({{{{ {call} }}}}) as t"
        for name, (call, _) in CASES.items()
    )
    result = dbt("show", "--inline", query, "--limit", "50")
    found = dict(re.findall(r"^\|\s*(\w+)\s*\|\s*(\d+)\s*\|$", result.stdout, re.MULTILINE))
    assert {name: int(count) for name, count in found.items()} == {
        name: expected for name, (_, expected) in CASES.items()
    }
