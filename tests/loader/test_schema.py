from loader.ingest import warehouse
from tests.conftest import run_loader


def test_fresh_database_has_the_raw_schema(db):
    tables = db.query(
        "select table_name from information_schema.tables where table_schema = 'raw' order by 1"
    )
    assert [name for (name,) in tables] == [
        "agent_events",
        "conflicts",
        "load_batches",
        "load_lock",
        "marketplace_events",
        "marketplace_live_rollup",
        "privacy_settings",
        "purges",
        "quarantine",
        "schema_migrations",
        "spans",
    ]


def test_cli_init_on_an_empty_database_reports_the_latest_version(empty_db):
    result = run_loader(empty_db, "init", "--json")
    assert f'"schema_version": {warehouse.migrations()[-1].version}' in result.stdout
