"""No single file or record stops a load run.

Errors are told apart by SQLSTATE (a refused value against a lost connection), produced for
real on the test database; any file name loads or is reported escaped; a folder is read for
its batch files only; `load --lake` without its extra says so; an unchanged file is skipped
by a `stat` against one ledger query per run.
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from click.testing import CliRunner

from loader.cli import main
from loader.ingest import load as load_module
from loader.ingest.load import known_files, load_file
from tests.factories import agent_event


def lines(records: list[dict]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def good(count: int, prefix: str) -> list[dict]:
    return [agent_event(event_id=f"{prefix}-{i}") for i in range(count)]


def invoke(db, *args: object):
    """`agent-loader` in-process against the test database; never a traceback."""
    outcome = CliRunner().invoke(main, [*map(str, args)], env={"AGENT_ANALYTICS_DSN": db.dsn})
    assert outcome.exception is None or isinstance(outcome.exception, SystemExit), outcome.output
    assert "Traceback" not in outcome.output
    return outcome


def three_files(folder: Path, refused: dict) -> None:
    """a and c hold good events; b holds good events around one the database refuses."""
    folder.mkdir(exist_ok=True)
    (folder / "a.ndjson").write_bytes(lines(good(2, "a")))
    (folder / "b.ndjson").write_bytes(lines([*good(2, "b1"), refused, *good(2, "b2")]))
    (folder / "c.ndjson").write_bytes(lines(good(2, "c")))


# --- 1. errors classified by SQLSTATE -----------------------------------------------------

# Each way makes PostgreSQL itself refuse the event `refused` with a SQLSTATE of the class.
REFUSALS = {
    # 22xxx: a data exception, raised by a trigger as a type's input function would.
    "22023": """
        create function raw.refuse() returns trigger language plpgsql as $$
        begin
            if new.event_id = 'refused' then
                raise exception 'invalid parameter value' using errcode = '22023';
            end if;
            return new;
        end $$;
        create trigger refuse before insert on raw.agent_events
            for each row execute function raw.refuse();
    """,
    # 23xxx: a check constraint the row violates.
    "23514": """
        alter table raw.agent_events
            add constraint no_refused check (event_id <> 'refused') not valid;
    """,
    # 54000: a real index row over the b-tree maximum (psycopg2 calls it OperationalError).
    "54000": "create index payload_text on raw.agent_events ((payload ->> 'text'));",
}


def refused_event() -> dict:
    """Incompressible 9,000 characters: over the b-tree maximum even when compressed."""
    return agent_event(event_id="refused", payload={"text": secrets.token_urlsafe(6750)})


@pytest.mark.parametrize("sqlstate", sorted(REFUSALS))
def test_a_value_postgresql_refuses_costs_only_its_record_and_the_run_goes_on(
    db, tmp_path, sqlstate
):
    db.query(REFUSALS[sqlstate])
    three_files(tmp_path / "landing", refused_event())
    outcome = invoke(db, "load", tmp_path / "landing")
    assert outcome.exit_code == 0, outcome.output
    assert db.query("select path, status, loaded, quarantined from raw.load_batches") == [
        (str(tmp_path / "landing" / name), "loaded", loaded, quarantined)
        for name, loaded, quarantined in [
            ("a.ndjson", 2, 0),
            ("b.ndjson", 4, 1),
            ("c.ndjson", 2, 0),
        ]
    ]
    [(position, reason, raw_text)] = db.query(
        "select position, reason, raw_text from raw.quarantine"
    )
    assert position == 3
    assert reason.startswith("PostgreSQL refused this record")
    assert f"(SQLSTATE {sqlstate})" in reason
    assert json.loads(raw_text)["event_id"] == "refused"
    assert db.scalar("select count(*) from raw.agent_events") == 8


def test_a_record_postgresql_refuses_under_redaction_is_quarantined_masked(db, tmp_path):
    db.query(REFUSALS["23514"])
    email = "rosa.refused@example.org"
    refused = agent_event(event_id="refused", payload={"text": f"mail {email}"})
    three_files(tmp_path / "landing", refused)
    assert invoke(db, "init", "--redact", "mask").exit_code == 0
    assert invoke(db, "load", tmp_path / "landing").exit_code == 0
    [(reason, raw_text)] = db.query("select reason, raw_text from raw.quarantine")
    assert reason.endswith("(SQLSTATE 23514)")
    assert email not in raw_text and "[EMAIL]" in raw_text


@pytest.mark.parametrize("sqlstate", ["08006", "57P01"])
def test_a_lost_connection_stops_the_run_with_one_line_and_the_next_run_loads_the_rest(
    db, tmp_path, sqlstate
):
    """Class 08 and the server's shutdown codes are a lost connection, whatever raised them:
    exit 3, the file rolled back, nothing after it attempted (pg_terminate_backend itself:
    test_hostile.py's test_a_terminated_backend_is_one_documented_line_and_exit_3)."""
    db.query(REFUSALS["22023"].replace("22023", sqlstate))
    three_files(tmp_path / "landing", agent_event(event_id="refused"))
    run = subprocess.run(
        [sys.executable, "-m", "loader", "load", str(tmp_path / "landing")],
        env=db.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 3, run.stderr
    assert run.stderr.startswith("Error: lost the connection to PostgreSQL while loading")
    assert "b.ndjson" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert db.query("select path, status from raw.load_batches") == [
        (str(tmp_path / "landing" / "a.ndjson"), "loaded")
    ]
    db.query("drop trigger refuse on raw.agent_events")
    assert invoke(db, "load", tmp_path / "landing").exit_code == 0
    assert db.scalar("select count(*) from raw.agent_events") == 9


def test_a_refusal_in_careful_mode_that_is_not_a_value_fails_that_file_only(db, tmp_path):
    """A SQLSTATE of no refusal class (here 42501, insufficient privilege) is no reason to
    load a record at a time: that file fails with the reason, the next ones load."""
    db.query(REFUSALS["22023"].replace("22023", "42501"))
    three_files(tmp_path / "landing", agent_event(event_id="refused"))
    outcome = invoke(db, "load", tmp_path / "landing")
    assert outcome.exit_code == 1
    assert db.query("select status, error from raw.load_batches order by path") == [
        ("loaded", None),
        ("failed", "PostgreSQL refused the batch: invalid parameter value"),
        ("loaded", None),
    ]


# --- 2. any file name loads or is reported, escaped by one rule ---------------------------


def write_named(folder: Path, name: bytes, data: bytes) -> Path:
    folder.mkdir(exist_ok=True)
    with open(os.path.join(os.fsencode(folder), name), "wb") as handle:
        handle.write(data)
    return Path(os.fsdecode(os.path.join(os.fsencode(folder), name)))


NAMES = {
    b"caf\xe9.ndjson": "caf\\xe9.ndjson",  # Latin-1, not UTF-8
    "a\u2028b\u2029c\u0085d.ndjson".encode(): "a\\u2028b\\u2029c\\x85d.ndjson",
    b"\x1b[2Jclear\x07.ndjson": "\\x1b[2Jclear\\x07.ndjson",
    "\u202eevil\u200b.ndjson".encode(): "\\u202eevil\\u200b.ndjson",
}


@pytest.mark.parametrize("name", sorted(NAMES), ids=repr)
def test_any_file_name_loads_and_shows_escaped_in_load_validate_history_and_ledger(
    db, tmp_path, name
):
    folder = tmp_path / "landing"
    write_named(folder, name, lines(good(2, "n")))
    escaped = f"{folder}/{NAMES[name]}"

    loaded = invoke(db, "load", folder)
    assert loaded.exit_code == 0
    assert f"loaded     {escaped}: read=2 loaded=2" in loaded.output
    assert db.query("select path, loaded from raw.load_batches") == [(escaped, 2)]
    again = invoke(db, "load", folder)  # the stored name finds the file again
    assert f"skipped    {escaped} (already loaded as batch" in again.output
    validated = invoke(db, "validate", folder)
    assert f"validated  {escaped}: read=2 valid=2" in validated.output
    history = invoke(db, "history")
    assert history.output.rstrip().endswith(escaped)
    for outcome in (loaded, again, validated, history):
        shown = outcome.output.replace("\n", "")
        assert shown.isprintable(), shown
        assert max(shown) < "\ud800"  # no surrogate: the output is valid UTF-8


def test_a_file_that_fails_under_an_undecodable_name_is_reported_escaped(db, tmp_path):
    path = write_named(tmp_path, b"\xff\xfe.ndjson", b"")
    path.chmod(0)
    outcome = invoke(db, "load", path)
    if os.access(path, os.R_OK):  # root reads it anyway: it is then an empty file
        assert outcome.exit_code == 0
    else:
        assert outcome.exit_code == 1
        assert f"failed     {tmp_path}/\\xff\\xfe.ndjson: cannot read the file" in outcome.output
    assert db.scalar("select path from raw.load_batches") == f"{tmp_path}/\\xff\\xfe.ndjson"


# --- 3. a folder is read for batch files; an empty run says so ----------------------------


def test_a_folder_is_read_for_batch_file_names_and_other_files_are_listed_as_ignored(db, tmp_path):
    folder = tmp_path / "landing"
    folder.mkdir()
    for name in ["a.ndjson", "b.jsonl", "c.JSON", "d.ndjson.gz", "readme.txt", "e.ndjson.bak"]:
        (folder / name).write_bytes(lines(good(1, name)))
    (folder / "d.ndjson.gz").write_bytes(gzip.compress(lines(good(1, "d"))))
    outcome = invoke(db, "load", "--json", folder)
    assert outcome.exit_code == 0
    statuses = {Path(r["path"]).name: r["status"] for r in json.loads(outcome.output)}
    assert statuses == {
        "a.ndjson": "loaded",
        "b.jsonl": "loaded",
        "c.JSON": "loaded",
        "d.ndjson.gz": "loaded",
        "e.ndjson.bak": "ignored",
        "readme.txt": "ignored",
    }
    assert db.scalar("select count(*) from raw.load_batches") == 4
    assert db.scalar("select count(*) from raw.quarantine") == 0
    text = invoke(db, "load", folder).output
    assert f"ignored    {folder}/readme.txt (not a batch file" in text
    assert "6 file(s) (2 ignored, 4 skipped)" in text
    validated = invoke(db, "validate", folder)
    assert validated.exit_code == 0 and "2 ignored, 4 validated" in validated.output


def test_a_file_named_on_the_command_line_is_read_whatever_its_name(db, tmp_path):
    path = tmp_path / "events.txt"
    path.write_bytes(lines(good(3, "txt")))
    outcome = invoke(db, "load", path)
    assert outcome.exit_code == 0
    assert db.query("select loaded from raw.load_batches") == [(3,)]


@pytest.mark.parametrize("contents", [[], ["readme.txt"]], ids=["empty", "no-batch-file"])
def test_a_run_that_finds_no_batch_file_says_so_and_can_fail(db, tmp_path, contents):
    for name in contents:
        (tmp_path / name).write_text("notes")
    quiet = subprocess.run(
        [sys.executable, "-m", "loader", "load", str(tmp_path)],
        env=db.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert quiet.returncode == 0
    assert quiet.stderr == f"no batch file found under {tmp_path}: nothing to load\n"
    alert = invoke(db, "load", "--fail-on-empty", tmp_path)
    assert alert.exit_code == 1
    (tmp_path / "a.ndjson").write_bytes(lines(good(1, "a")))
    found = invoke(db, "load", "--fail-on-empty", tmp_path)
    assert found.exit_code == 0
    assert invoke(db, "load", "--fail-on-empty", tmp_path).exit_code == 0  # skipped is found


# --- 4. load --lake without the [spark] extra ---------------------------------------------


def test_lake_without_the_spark_extra_names_the_extra_and_exits_2(tmp_path):
    (tmp_path / "a.ndjson").write_bytes(lines(good(1, "a")))
    blocked = (
        "import sys; sys.modules['pyarrow'] = None; sys.modules['pyspark'] = None;"
        " sys.argv[0] = 'agent-loader'; from loader.cli import main; main()"
    )
    run = subprocess.run(
        [sys.executable, "-c", blocked, "load", "--lake", str(tmp_path / "lake"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr == (
        "Error: --lake needs the [spark] extra (module pyarrow is not installed):"
        " pip install 'agent-analytics[spark]'\n"
    )


# --- 6. unchanged files skipped by a stat, with one ledger query per run ------------------


def test_unchanged_files_under_a_folder_are_skipped_without_a_query_or_a_read(db, tmp_path):
    folder = tmp_path / "landing"
    folder.mkdir()
    paths = [folder / f"{i}.ndjson" for i in range(3)]
    for path in paths:
        path.write_bytes(lines(good(2, path.stem)))
    assert invoke(db, "load", folder).exit_code == 0
    conn = db.connect()
    try:
        known = known_files(conn, [folder])
        with (
            mock.patch.object(load_module, "_loaded_file", side_effect=AssertionError("query")),
            mock.patch.object(load_module, "read_whole", side_effect=AssertionError("read")),
        ):
            results = [load_file(conn, path, known=known) for path in paths]
    finally:
        conn.close()
    assert [result.status for result in results] == ["skipped"] * 3


def test_a_file_replaced_under_the_same_name_size_and_mtime_is_judged_by_content(db, tmp_path):
    """A copy that keeps the mtime (rsync -t, cp -p) over a loaded file: another inode or
    inode-change time (here the freed inode is even reused), so its content decides; the
    same content stays skipped, another one loads."""
    folder = tmp_path / "landing"
    folder.mkdir()
    path = folder / "a.ndjson"
    path.write_bytes(lines(good(2, "old")))
    assert invoke(db, "load", folder).exit_code == 0
    before = path.stat()

    def replace(data: bytes) -> None:
        replacement = folder / ".replacement"
        replacement.write_bytes(data)
        os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
        replacement.rename(path)

    replace(path.read_bytes())  # the same bytes, another inode
    assert "skipped" in invoke(db, "load", folder).output
    replace(lines(good(2, "new")))  # other bytes of the same size and mtime
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    outcome = invoke(db, "load", folder)
    assert "loaded     " in outcome.output, outcome.output
    assert db.scalar("select count(*) from raw.agent_events") == 4
