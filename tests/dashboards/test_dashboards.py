"""`agent-loader dashboards build`: the login's grants decide what a site holds.

The module builds the marts on a private database with roles under a prefix unique to this
run, an operator login, a publisher login granted `pub-big` and a login with no grant, builds
each login's site and reads its data files; then it serves the sites on 127.0.0.1 and opens
every page in headless Chromium (tests/dashboards/browser.py), comparing the figures shown
with the marts.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from loader.cli import main
from loader.dashboards import build as sites
from loader.dashboards import pages
from loader.errors import DashboardsBuildFailed
from tests.conftest import Database, Dbt, Server, prefixed_roles, run_loader
from tests.dashboards.browser import Visit, chromium, serve
from tests.factories import marketplace_event, write_ndjson

NOW = datetime.now(timezone.utc).replace(microsecond=0)
PREFIX = f"aa_d{uuid.uuid4().hex[:8]}_"
LOGINS = {name: f"{PREFIX}{name}_login" for name in ("operator", "publisher", "nobody")}


def test_build_without_the_chart_library_says_what_to_install_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sites, "CHART_LIBRARY", tmp_path / "node_modules" / "echarts.min.js")
    result = CliRunner().invoke(main, ["dashboards", "build", "--dsn", "postgresql:///none"])
    assert result.exit_code == 2, result.output
    assert "Node.js" in result.output and "npm ci" in result.output
    assert "Traceback" not in result.output


def test_the_publisher_site_has_only_the_publisher_queries_and_its_portal() -> None:
    publisher = sites.SITES["publisher"]
    assert publisher.pages == {"publisher-portal.md": "index.md"}
    assert publisher.queries and all(q.startswith("publisher_") for q in publisher.queries)
    for query in publisher.queries:
        text = (sites.PROJECT / "sources" / sites.SOURCE / query).read_text()
        marts = {word for word in text.split() if word.startswith("marts.")}
        assert marts and all(mart.endswith("_shared") for mart in marts), (query, marts)
    operator = sites.SITES["operator"]
    assert set(publisher.queries) < set(operator.queries)
    assert all((sites.PROJECT / "pages" / page).is_file() for page in operator.pages)


def test_every_page_reads_only_its_sites_queries() -> None:
    for site in sites.SITES.values():
        for source in site.pages:
            page = pages.parse(source, (sites.PROJECT / "pages" / source).read_text())
            for name, query in page.queries.items():
                assert query.sources, (source, name)
                sites.page_sql(site, source, name, query)  # raises on another site's query
            assert page.title and 'data-component="' in page.body


def test_a_page_becomes_html_queries_and_browser_filters() -> None:
    text = (
        "---\ntitle: T & co\n---\n\n```sql picked\nselect a, b from warehouse.x\n"
        "where a = '${inputs.choice.value}' and b > 1\n```\n\n## Head\n\n"
        "Up to <Value data={picked} column=b fmt='#,##0\" ms\"' />.\n\n"
        '<BigValue data={picked} value=b title="B" fmt=pct1 />\n'
        '<DataTable data={picked}>\n    <Column id=a title="A" />\n</DataTable>\n'
    )
    page = pages.parse("t.md", text)
    assert page.title == "T & co"
    query = page.queries["picked"]
    assert query.sql == "select a, b from warehouse.x\nwhere true and b > 1\n"
    assert (query.sources, query.filters) == (["x"], [("a", "choice")])
    assert "<h2>Head</h2>" in page.body and "<p>Up to <span" in page.body
    props = [
        json.loads(chunk.split('"', 1)[0].replace("&quot;", '"'))
        for chunk in page.body.split('data-props="')[1:]
    ]
    assert props == [
        {"data": "picked", "column": "b", "fmt": '#,##0" ms"'},
        {"data": "picked", "value": "b", "title": "B", "fmt": "pct1"},
        {"data": "picked", "columns": [{"id": "a", "title": "A"}]},
    ]
    with pytest.raises(DashboardsBuildFailed, match="unknown component <Map>"):
        pages.parse("t.md", "<Map data={x} />\n")
    with pytest.raises(DashboardsBuildFailed, match="no attribute colour"):
        pages.parse("t.md", "<BigValue data={x} colour=red />\n")


def events() -> list[dict]:
    """pub-big: six tenants (above the suppression threshold); pub-small: two tenants."""
    records: list[dict] = []
    for publisher, tenants in (("pub-big", range(1, 7)), ("pub-small", (1, 7))):
        for number in tenants:
            tenant = f"tenant-{number}"
            common = {"publisher_id": publisher, "tenant_id": tenant, "agent_id": f"{publisher}-a"}
            records.append(
                marketplace_event(
                    id=f"{publisher}-{tenant}-install",
                    event_type="install",
                    timestamp=(NOW - timedelta(hours=50)).isoformat(),
                    **common,
                )
            )
            for i in range(4):
                records.append(
                    marketplace_event(
                        id=f"{publisher}-{tenant}-done-{i}",
                        event_type="agent_completed" if i else "agent_errored",
                        timestamp=(NOW - timedelta(hours=30 + i)).isoformat(),
                        properties={"duration_ms": 900, "cost_usd": 0.5, "error_type": "boom"},
                        **common,
                    )
                )
    return records


@dataclass
class Warehouse:
    database: Database


@pytest.fixture(scope="module")
def warehouse(
    server: Server, module_db: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Warehouse]:
    folder: Path = tmp_path_factory.mktemp("dashboards")
    logins = {LOGINS["operator"]: "bi_operator", LOGINS["publisher"]: None, LOGINS["nobody"]: None}
    with prefixed_roles(module_db, PREFIX, logins):
        run_loader(module_db, "grant-publisher", LOGINS["publisher"], "pub-big", "--prefix", PREFIX)
        run_loader(module_db, "load", str(write_ndjson(folder / "events.ndjson", events())))
        dbt = Dbt(module_db, folder / "dbt")
        variables = {"as_of": NOW.date().isoformat(), "role_prefix": PREFIX}
        dbt("build", "--vars", json.dumps(variables))
        yield Warehouse(module_db)


def site_data(site: Path) -> dict[str, dict[str, dict]]:
    """Every data file of a built site: page -> query -> columns and rows."""
    return {path.stem: json.loads(path.read_text()) for path in (site / "data").glob("*.json")}


def column(result: dict, name: str) -> list:
    return [row[result["columns"].index(name)] for row in result["rows"]]


@pytest.fixture(scope="module")
def built(warehouse: Warehouse, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The operator's and the publisher's sites, built by the command as each login."""
    folder = tmp_path_factory.mktemp("sites")
    for name in ("operator", "publisher"):
        run_loader(
            warehouse.database,
            "dashboards",
            "build",
            "--as",
            LOGINS[name],
            "--out",
            str(folder / name),
        )
    return {name: folder / name for name in ("operator", "publisher")}


@pytest.mark.dbt
def test_the_logins_grants_pick_the_site(warehouse: Warehouse) -> None:
    expected = {"operator": "operator", "publisher": "publisher"}
    for name, audience in expected.items():
        conn = sites.connect_as(warehouse.database.dsn, LOGINS[name])
        try:
            assert sites.audience_of(conn) == audience
        finally:
            conn.close()
    result = run_loader(
        warehouse.database, "dashboards", "build", "--as", LOGINS["nobody"], check=False
    )
    assert result.returncode == 1 and "reads neither" in result.stderr


@pytest.mark.dbt
def test_a_publishers_site_holds_no_other_publishers_row_and_no_tenant_row(
    built: dict[str, Path],
) -> None:
    data = site_data(built["publisher"])
    assert sorted(data) == ["index"]
    assert sorted(path.name for path in built["publisher"].glob("*.html")) == ["index.html"]
    for page, results in data.items():
        for name, result in results.items():
            assert "tenant_id" not in result["columns"], (page, name)
            if "publisher_id" in result["columns"]:
                assert set(column(result, "publisher_id")) <= {"pub-big"}, (page, name)
    dashboard = data["index"]["dashboard"]
    assert column(dashboard, "publisher_id") == ["pub-big"]
    # 6 tenants x 4 invocations = 24, published to the nearest multiple of publish_count_step (5).
    assert column(dashboard, "total_invocations") == [25]
    # The same page on the operator's site holds both: the filter is the login's, not the SQL's.
    operator = site_data(built["operator"])["publisher-portal"]["dashboard"]
    assert sorted(column(operator, "publisher_id")) == ["pub-big", "pub-small"]


@pytest.mark.dbt
def test_the_operator_site_has_every_page_and_the_platforms_totals(built: dict[str, Path]) -> None:
    data = site_data(built["operator"])
    assert sorted(data) == sorted(page.removesuffix(".md") for page in sites.OPERATOR_PAGES)
    totals = data["index"]["totals"]
    assert column(totals, "invocations") == [32]  # 8 publisher-tenant pairs x 4 invocations
    assert column(totals, "error_rate") == [0.25]  # 1 errored of each pair's 4


def percent(value: float) -> str:
    """pct1, as the pages show it."""
    return f"{value:.1%}"


def mart_row(database: Database, login: str, sql: str) -> dict:
    conn = sites.connect_as(database.dsn, login)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            names = [column.name for column in cur.description or ()]
            return dict(zip(names, cur.fetchone() or (), strict=True))
    finally:
        conn.close()


@pytest.mark.dbt
def test_every_page_opens_in_chromium_and_shows_the_marts_figures(
    warehouse: Warehouse, built: dict[str, Path], tmp_path: Path
) -> None:
    shots = Path(os.environ.get("DASHBOARDS_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    visits: dict[tuple[str, str], Visit] = {}
    with chromium() as browser:
        for name, site in built.items():
            with serve(site) as url:
                for page in sorted(site.glob("*.html")):
                    visit = browser.open(f"{url}/{page.name}", shots / f"{name}-{page.stem}.png")
                    assert visit.problems == [], (name, page.name, visit.problems)
                    visits[name, page.stem] = visit
                    if (name, page.stem) == ("operator", "publisher-portal"):
                        small = browser.choose("pub-small")
    assert len(visits) == len(sites.OPERATOR_PAGES) + 1
    mine = mart_row(
        warehouse.database,
        LOGINS["publisher"],
        "select total_invocations, error_rate from marts.publisher_dashboard_shared",
    )
    figures = visits["publisher", "index"].figures
    assert figures["Invocations"] == f"{mine['total_invocations']:,}" == "25"
    assert figures["Error rate"] == percent(float(mine["error_rate"]))
    platform = mart_row(
        warehouse.database,
        LOGINS["operator"],
        "select sum(invocations) as invocations, sum(errored_invocations) as errored,"
        " sum(gmv_usd) as gmv_usd from marts.platform_daily",
    )
    figures = visits["operator", "index"].figures
    assert figures["Invocations"] == f"{platform['invocations']:,}" == "32"
    assert figures["Error rate"] == percent(platform["errored"] / platform["invocations"])
    assert figures["GMV"] == f"${float(platform['gmv_usd']):,.2f}"
    # The operator's portal shows the first publisher of its drop-down: pub-big, as above.
    assert visits["operator", "publisher-portal"].figures["Invocations"] == "25"
    # The drop-down filters in the browser: pub-small's figures, as the mart has them.
    theirs = mart_row(
        warehouse.database,
        LOGINS["operator"],
        "select total_invocations, error_rate from marts.publisher_dashboard_shared"
        " where publisher_id = 'pub-small'",
    )
    shown = (small["Invocations"], small["Error rate"])
    expected = tuple(
        "\u2013" if value is None else text  # an en dash: a suppressed figure
        for value, text in (
            (theirs["total_invocations"], f"{theirs['total_invocations'] or 0:,}"),
            (theirs["error_rate"], percent(float(theirs["error_rate"] or 0))),
        )
    )
    assert shown == expected and shown[0] != "25"
