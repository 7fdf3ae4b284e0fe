"""The CLI: summaries, --json, and the exit codes docs/operating.md documents."""

from __future__ import annotations

import json
import sys
from unittest import mock

import pytest
from click.testing import CliRunner

from loader.cli import main
from loader.ingest import commands, warehouse
from loader.ingest.load import THREAD_SWITCH_SECONDS
from tests.factories import agent_event, marketplace_event, write_events_document, write_ndjson


def invoke(*args):
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def landing(tmp_path):
    """A landing directory with good, duplicated and bad records across two files."""
    shared = agent_event()
    write_ndjson(tmp_path / "a.ndjson", [shared, marketplace_event(), {"bad": True}])
    write_events_document(tmp_path / "b.json", [shared, agent_event()], compress=True)
    return tmp_path


def test_load_prints_counts_that_reconcile(db, landing):
    result = invoke("load", landing, "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert "2 file(s) (2 loaded): read=5 loaded=3 duplicates=1 quarantined=1" in result.output


def test_files_load_with_a_short_thread_switch_interval(db, landing):
    """The thread feeding COPY gets the GIL back within THREAD_SWITCH_SECONDS, not 5 ms."""
    seen = []
    load_file = commands.load_file

    def noting_the_interval(*args, **kwargs):
        seen.append(sys.getswitchinterval())
        return load_file(*args, **kwargs)

    previous = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        with mock.patch.object(commands, "load_file", noting_the_interval):
            assert invoke("load", landing, "--dsn", db.dsn).exit_code == 0
    finally:
        sys.setswitchinterval(previous)
    assert seen == [pytest.approx(THREAD_SWITCH_SECONDS)] * 2
    assert THREAD_SWITCH_SECONDS < 0.005


def test_load_json_output_is_one_object_per_file(db, landing):
    result = invoke("load", landing, "--dsn", db.dsn, "--json")
    files = json.loads(result.output)
    assert [(f["status"], f["records_read"], f["loaded"], f["duplicates"]) for f in files] == [
        ("loaded", 3, 2, 0),
        ("loaded", 2, 1, 1),
    ]
    assert files[1]["file_format"] == "events-document.gz"


def test_rerun_skips_everything_and_exits_0(db, landing):
    invoke("load", landing, "--dsn", db.dsn)
    result = invoke("load", landing, "--dsn", db.dsn)
    assert result.exit_code == 0
    assert "2 file(s) (2 skipped): read=0 loaded=0" in result.output


def test_fail_on_quarantine_exits_1(db, landing):
    assert invoke("load", landing, "--dsn", db.dsn, "--fail-on-quarantine").exit_code == 1


def test_unreadable_file_is_one_line_and_exit_1(db, landing):
    (landing / "c.ndjson").symlink_to(landing / "missing-target")
    result = invoke("load", landing, "--dsn", db.dsn)
    assert result.exit_code == 1
    assert "failed     " in result.output
    assert "c.ndjson: cannot read the file: not a regular file: a symlink" in result.output
    assert db.scalar("select count(*) from raw.load_batches where status = 'loaded'") == 2


def test_refused_connection_exits_3_with_one_line():
    result = invoke("init", "--dsn", "host=127.0.0.1 port=9 connect_timeout=3")
    assert result.exit_code == 3
    assert result.output.startswith("Error: cannot connect to PostgreSQL")
    assert len(result.output.strip().splitlines()) == 1


def test_load_before_init_exits_5(empty_db, landing):
    result = invoke("load", landing, "--dsn", empty_db.dsn)
    assert result.exit_code == 5
    assert "run `agent-loader init` first" in result.output


def test_init_twice_applies_nothing_the_second_time(empty_db):
    first = json.loads(invoke("init", "--dsn", empty_db.dsn, "--json").output)
    second = json.loads(invoke("init", "--dsn", empty_db.dsn, "--json").output)
    versions = [migration.version for migration in warehouse.migrations()]
    assert first == {"schema_version": versions[-1], "applied": versions}
    assert second == {"schema_version": versions[-1], "applied": []}


def test_no_wait_exits_4_while_another_load_holds_the_lock(db, landing):
    holder = warehouse.acquire_load_lock(db.dsn, wait=False)
    try:
        result = invoke("load", landing, "--dsn", db.dsn, "--no-wait")
    finally:
        holder.close()
    assert result.exit_code == 4
    assert "another `agent-loader load` is running" in result.output
    assert db.scalar("select count(*) from raw.load_batches") == 0


def test_validate_needs_no_database_and_exits_1_on_invalid_records(landing):
    result = invoke("validate", landing)
    assert result.exit_code == 1
    assert "record fits neither event shape" in result.output
    assert invoke("validate", landing / "b.json").exit_code == 0


def test_validate_counts_what_would_load_and_names_each_quarantined_position(tmp_path):
    good = agent_event(event_id="e1")
    path = tmp_path / "mixed.ndjson"
    path.write_text(
        json.dumps(good) + "\nnot json\n" + json.dumps(good | {"event_id": "e2"}) + "\n{}\n"
    )
    text = invoke("validate", path)
    assert text.exit_code == 1
    assert "read=4 valid=2 quarantined=2" in text.output
    assert "loaded=" not in text.output  # a dry run loads nothing
    assert "    at 2: invalid JSON" in text.output
    [report] = json.loads(invoke("validate", "--json", path).output)
    assert (report["valid"], report["quarantined"]) == (2, 2)
    assert [problem["position"] for problem in report["problems"]] == [2, 4]
    assert report["problems"][0]["reason"].startswith("invalid JSON")


def test_history_lists_the_ledger_newest_first(db, landing):
    invoke("load", landing, "--dsn", db.dsn)
    rows = json.loads(invoke("history", "--dsn", db.dsn, "--json").output)
    assert [row["path"].rsplit("/", 1)[1] for row in rows] == ["b.json", "a.ndjson"]


def test_missing_path_is_a_usage_error(db):
    assert invoke("load", "/no/such/dir", "--dsn", db.dsn).exit_code == 2


@pytest.mark.parametrize(
    ("command", "phrase"),
    [
        ([], "Load agent event batches into PostgreSQL"),
        (["init"], "Create the raw schema"),
        (["load"], "--no-wait"),
        (["load"], "--max-record-bytes"),
        (["validate"], "without a database"),
        (["history"], "--limit"),
    ],
)
def test_help_describes_each_command(command, phrase):
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert phrase in result.output


@pytest.mark.parametrize(
    ("dsn", "reason"),
    [
        (
            "host=x port=notanumber",
            "Error: the port in --dsn is 'notanumber', not a TCP port number",
        ),
        (
            "postgresql://u:secret@[::1",
            "Error: malformed --dsn (or $AGENT_ANALYTICS_DSN): end of string reached when looking"
            ' for matching "]" in IPv6 host address in the URI',
        ),
    ],
)
def test_a_malformed_dsn_is_a_usage_error_with_the_reason_and_no_password(dsn, reason):
    result = invoke("init", "--dsn", dsn)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(reason)
    assert len(result.output.strip().splitlines()) == 1
    assert "secret" not in result.output


def test_a_port_variable_that_is_not_a_number_is_a_usage_error(monkeypatch):
    monkeypatch.setenv("PGPORT", "54x")
    result = invoke("init")
    assert result.exit_code == 2, result.output
    assert result.output.strip() == "Error: $PGPORT is '54x', not a TCP port number"
