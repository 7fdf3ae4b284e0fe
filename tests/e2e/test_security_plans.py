"""No plan a reader runs shows another tenant's (publisher's) rows.

A tenant login with `explain (analyze)` and the planner switches can make PostgreSQL read a
mart through any of its indexes; a node that visits rows the policy then removes reports them
("Rows Removed by Filter", loops, heap fetches, buffers). So every index of a mart a tenant
reads must lead with the tenant column (a publisher's: with the publisher column), and then
the figures of every plan are the same however many rows of other tenants hold the value
filtered on.

The test proves that, from the catalog: for every mart the tenant (publisher) group role may
select from, every index, each of its columns alone and all together, it fills the mart with
the build's rows plus extra rows of other tenants whose filtered columns hold the queried
value in none, one or many of them (the same number of rows each time, decoys otherwise),
and compares the plans the reader login gets under each planner switch, timings aside.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg2.extensions
import pytest

from tests.e2e.test_security import PREFIX, connect, rows, setup  # noqa: F401 (fixture)

pytestmark = pytest.mark.dbt

EXTRA_ROWS = 12
# Planner switches: each off in turn, then sequential scans off with each of the others.
SWITCHES = (
    (),
    ("enable_seqscan",),
    ("enable_indexscan",),
    ("enable_bitmapscan",),
    ("enable_indexonlyscan",),
    ("enable_seqscan", "enable_indexscan"),
    ("enable_seqscan", "enable_bitmapscan"),
    ("enable_seqscan", "enable_indexonlyscan"),
    ("enable_seqscan", "enable_indexscan", "enable_bitmapscan"),
)
# Per type: the value filtered on, and a decoy expression of the same size for row `i`.
VALUES = {
    "text": ("'ghost-match'", "'ghost-d' || lpad(i::text, 4, '0')"),
    "date": ("date '2000-01-01'", "date '2001-01-01' + i"),
    "timestamp with time zone": (
        "timestamptz '2000-01-01 00:00+00'",
        "timestamptz '2001-01-01 00:00+00' + make_interval(hours => i)",
    ),
    "bigint": ("900000000", "900000000 + i"),
    "integer": ("900000000", "900000000 + i"),
}
# What a plan node shows that is timing, not rows (and buffers split by cache state).
TIMINGS = {"Actual Startup Time", "Actual Total Time", "Planning Time", "Execution Time"}
BUFFER_DETAIL = re.compile(r"^(Shared|Local|Temp) (Hit|Read|Dirtied|Written) Blocks$|I/O")

INDEXES = """
select
    cls.relname,
    idx.relname,
    idx_def.indisunique,
    array(
        select att.attname
        from unnest(idx_def.indkey) with ordinality as key (attnum, position)
        left join pg_attribute as att
            on att.attrelid = cls.oid and att.attnum = key.attnum
        order by key.position
    )
from pg_index as idx_def
inner join pg_class as cls on idx_def.indrelid = cls.oid
inner join pg_class as idx on idx_def.indexrelid = idx.oid
inner join pg_namespace as nsp on cls.relnamespace = nsp.oid
where
    nsp.nspname = 'marts'
    and has_table_privilege(%s, cls.oid, 'select')
order by 1, 2
"""


def indexes(admin: psycopg2.extensions.connection, group: str) -> list[tuple]:
    with admin.cursor() as cur:
        cur.execute(INDEXES, (group,))
        return cur.fetchall()


@dataclass(frozen=True)
class Mart:
    name: str
    key: str  # the column the reader's policy filters on
    columns: dict[str, str]  # name -> type, in table order
    unique: list[list[str]]  # the columns of each unique index


def readable_marts(admin: psycopg2.extensions.connection, group: str) -> dict[str, Mart]:
    """The marts `group` may select from that have an index, from the catalog."""
    marts: dict[str, Mart] = {}
    for table, _, is_unique, columns in indexes(admin, group):
        assert None not in columns, f"{table}: an expression index; extend this test to it"
        if table not in marts:
            policy = rows(
                admin,
                "select qual from pg_policies where schemaname = 'marts'"
                f" and tablename = '{table}' and '{group}' = any(roles)",
            )
            assert policy, f"marts.{table}: readable by {group} without a policy"
            key = re.search(r"\(?(\w+) = ANY", policy[0][0])
            assert key, policy
            types = rows(
                admin,
                "select attname, format_type(atttypid, atttypmod) from pg_attribute"
                f" where attrelid = 'marts.{table}'::regclass and attnum > 0"
                " and not attisdropped order by attnum",
            )
            marts[table] = Mart(table, key.group(1), dict(types), [])
        if is_unique:
            marts[table].unique.append(columns)
    return marts


def filters(admin: psycopg2.extensions.connection, group: str) -> list[tuple[Mart, tuple]]:
    """Every indexed column of every mart `group` reads, alone, and each index's columns."""
    marts = readable_marts(admin, group)
    found: dict[tuple[str, tuple], Mart] = {}
    for table, _, _, columns in indexes(admin, group):
        for filtered in [(column,) for column in columns] + [tuple(columns)]:
            found[(table, filtered)] = marts[table]
    return [(mart, filtered) for (_, filtered), mart in sorted(found.items())]


def value_sql(mart: Mart, column: str) -> tuple[str, str]:
    kind = mart.columns[column]
    assert kind in VALUES, f"marts.{mart.name}.{column}: type {kind}; add it to VALUES"
    return VALUES[kind]


def fill(admin, mart: Mart, filtered: tuple, matching: int) -> None:
    """The mart as built, plus EXTRA_ROWS rows of other tenants: `matching` of them hold the
    queried value in every filtered column, the others a decoy of the same size."""
    expressions = []
    for column, kind in mart.columns.items():
        if column in filtered:
            match, decoy = value_sql(mart, column)
            expressions.append(f"case when i <= {matching} then {match} else {decoy} end")
        elif kind == "text":
            # other tenants (the key too), and distinct in every unique index
            expressions.append(f"template.{column} || '-x' || lpad(i::text, 4, '0')")
        else:
            expressions.append(f"template.{column}")
    execute_all(
        admin,
        f"truncate marts.{mart.name}",
        f"insert into marts.{mart.name} select * from pg_temp.{mart.name}_built",
        f"insert into marts.{mart.name} select {', '.join(expressions)}"
        f" from (select * from pg_temp.{mart.name}_built limit 1) as template,"
        f" generate_series(1, {EXTRA_ROWS}) as i",
        f"vacuum marts.{mart.name}",
    )


def execute_all(conn, *statements: str) -> None:
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def most_matching(mart: Mart, filtered: tuple) -> int:
    """How many extra rows may hold the queried values: one when a unique index would then
    hold the same values in every row (its columns all filtered or copied from one row)."""
    varied = {c for c, kind in mart.columns.items() if kind == "text" and c not in filtered}
    if any(not set(columns) & varied for columns in mart.unique):
        return 1
    return EXTRA_ROWS


def blocks(node: dict) -> int:
    return sum(node.get(f"Shared {kind} Blocks", 0) for kind in ("Hit", "Read"))


def init_plan_blocks(node: dict) -> int:
    """The buffers of the InitPlans in a plan (a node's buffers include its children's)."""
    return sum(
        blocks(child) if child.get("Parent Relationship") == "InitPlan" else init_plan_blocks(child)
        for child in node.get("Plans", [])
    )


def figures(node: dict, init_plans: int | None = None) -> dict:
    """A plan node as the reader sees it, timings aside, buffers summed over cache states.

    The InitPlan that reads the login's grants is left out, and its buffers with it: whether
    it runs at all is the one channel indexes cannot close (docs/security.md; shown by
    test_the_grants_sub_select_runs_only_when_a_row_passes_the_readers_conditions). It runs
    inside the scan that first needs the grants, so in these one-relation plans its buffers
    are in every other node's (each is that scan or above it).
    """
    if init_plans is None:
        init_plans = init_plan_blocks(node)
    shown = {}
    for name, value in node.items():
        if name in TIMINGS or BUFFER_DETAIL.search(name):
            continue
        if name == "Plans":
            value = [
                figures(child, init_plans)
                for child in value
                if child.get("Parent Relationship") != "InitPlan"
            ]
        shown[name] = value
    shown["Shared Blocks"] = blocks(node) - init_plans
    return shown


def changed(shown: object, base: object, path: str = "") -> dict[str, tuple]:
    """The figures (by their path in the plan) that differ between two plans."""
    if isinstance(shown, dict) and isinstance(base, dict):
        found = {}
        for name in shown.keys() | base.keys():
            found.update(changed(shown.get(name), base.get(name), f"{path}/{name}"))
        return found
    if isinstance(shown, list) and isinstance(base, list) and len(shown) == len(base):
        found = {}
        for n, (one, other) in enumerate(zip(shown, base, strict=True)):
            found.update(changed(one, other, f"{path}[{n}]"))
        return found
    return {} if shown == base else {path: (shown, base)}


def plans(reader, mart: Mart, filtered: tuple) -> dict[str, list]:
    """The plan of a `select *` and a `count(*)` (index-only) under every planner switch."""
    where = " and ".join(f"{column} = {value_sql(mart, column)[0]}" for column in filtered)
    seen = {}
    for switches in SWITCHES:
        execute_all(reader, "reset all", *(f"set {switch} = off" for switch in switches))
        for select in ("*", "count(*)"):
            sql = f"select {select} from marts.{mart.name} where {where}"
            plan = rows(reader, f"explain (analyze, buffers, format json) {sql}")[0][0][0]
            assert plan["Plan"]["Actual Rows"] in (0, 1), sql  # no row of another tenant
            seen[f"{sql} with {switches or 'defaults'} off"] = figures(plan["Plan"])
    return seen


def differences(admin, reader, group: str) -> list[str]:
    """Every plan whose figures change with the number of other tenants' matching rows."""
    found = []
    for mart in readable_marts(admin, group).values():
        execute_all(
            admin,
            f"create temp table if not exists {mart.name}_built as select * from marts.{mart.name}",
        )
    for mart, filtered in filters(admin, group):
        by_count = {}
        for matching in sorted({0, 1, most_matching(mart, filtered)}):
            fill(admin, mart, filtered, matching)
            by_count[matching] = plans(reader, mart, filtered)
        for matching, seen in by_count.items():
            for query, shown in seen.items():
                for path, (got, base) in changed(shown, by_count[0][query]).items():
                    found.append(
                        f"{query}: {path} is {got} with {matching} other tenants' rows"
                        f" holding the value, {base} with none"
                    )
    for mart in readable_marts(admin, group).values():
        execute_all(
            admin,
            f"truncate marts.{mart.name}",
            f"insert into marts.{mart.name} select * from pg_temp.{mart.name}_built",
        )
    return found


@pytest.mark.parametrize(
    ("group", "login"), [("bi_tenant", "tenant_1"), ("bi_publisher", "pub_big")]
)
def test_no_plan_shows_how_many_rows_of_other_tenants_hold_a_value(setup, group, login):  # noqa: F811
    admin = setup.database.connect()
    admin.autocommit = True
    reader = connect(setup.database, login)
    try:
        assert len(filters(admin, f"{PREFIX}{group}")) >= 5
        found = differences(admin, reader, f"{PREFIX}{group}")
        assert found == [], "\n".join(found)
    finally:
        reader.close()
        admin.close()


def grants_read(plan: dict) -> list[int]:
    """The loops of every InitPlan in a plan: 0 when PostgreSQL never ran it."""
    found = []
    for child in plan.get("Plans", []):
        if child.get("Parent Relationship") == "InitPlan":
            found.append(child["Actual Loops"])
        found.extend(grants_read(child))
    return found


def test_the_grants_sub_selects_run_the_same_whether_other_tenants_rows_match_or_not(
    setup,  # noqa: F811
):
    """In a sequential scan the policy's containment check comes before the reader's own
    conditions (macros/security.sql, `own_rows`): whether PostgreSQL ran each grants
    sub-select no longer tells whether some other tenant's row matched. Before, pub-small
    (bought by tenants 1 and 7 only) ran it and pub-nobody did not."""
    # tenant-2 and tenant-3 buy from pub-big only; tenant-1 and tenant-7 from pub-small too
    reader = connect(
        setup.database, "tenant_2_3", "set enable_indexscan = off", "set enable_bitmapscan = off"
    )
    try:
        seen = {
            publisher: grants_read(
                rows(
                    reader,
                    "explain (analyze, format json) select * from marts.tenant_revenue"
                    f" where publisher_id = '{publisher}'",
                )[0][0][0]["Plan"]
            )
            for publisher in ("pub-small", "pub-nobody")
        }
        assert seen["pub-nobody"], "the plan has no grants sub-select: is the policy there?"
        assert seen["pub-small"] == seen["pub-nobody"]
    finally:
        reader.close()
