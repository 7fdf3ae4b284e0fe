"""Ingest keys (401 without the right one, the label recorded with the batch) and
backpressure (503 + Retry-After while the spool or the disk is too full; nothing written)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from loader.live.serve import IngestKey, KeyConfigError, _key_label, parse_keys
from tests.conftest import REPO, Database, run_loader
from tests.serve.conftest import agent_event

KEY_A = "a" * 20 + "-secret-key-a"
KEY_B = "b" * 20 + "-secret-key-b"


def test_keys_parse_from_lines_and_commas() -> None:
    text = f"# team keys\nteam-a: {KEY_A}\n\nteam_b:{KEY_B}\n"
    assert parse_keys(text, "f") == {"team-a": IngestKey(KEY_A), "team_b": IngestKey(KEY_B)}
    assert parse_keys(f"x:{KEY_A},y:{KEY_B}", "env") == {
        "x": IngestKey(KEY_A),
        "y": IngestKey(KEY_B),
    }


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("no-colon-here", "expected LABEL:KEY"),
        ("bad label:0123456789abcdef", "expected LABEL:KEY"),
        ("a:short", "at least 16 characters"),
        (f"a:{KEY_A}\na:{KEY_B}", "appears twice"),
    ],
)
def test_malformed_keys_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(KeyConfigError, match=fragment):
        parse_keys(text, "f")


def test_key_label_needs_an_exact_bearer_key() -> None:
    keys = {"team-a": KEY_A, "team-b": KEY_B}
    assert _key_label(keys, f"Bearer {KEY_B}") == "team-b"
    assert _key_label(keys, f"bearer {KEY_A}") == "team-a"
    assert _key_label(keys, None) is None
    assert _key_label(keys, f"Basic {KEY_A}") is None
    assert _key_label(keys, f"Bearer {KEY_A[:-1]}") is None
    assert _key_label(keys, f"Bearer {KEY_A}x") is None
    assert _key_label({}, None) == "anonymous"


def test_posts_need_a_key_and_the_label_is_recorded_with_the_batch(
    start_serve, tmp_path: Path, db: Database
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"team-a:{KEY_A}\n")
    server = start_serve("--keys-file", str(keys))
    body = {"events": [agent_event("k-1")]}

    missing = server.post(body)
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = server.post(body, headers={"Authorization": f"Bearer {KEY_B}"})
    assert wrong.status == 401
    assert server.batch_files() == []

    right = server.post(body, headers={"Authorization": f"Bearer {KEY_A}"})
    assert right.status == 200
    assert "-team-a-" in right.json["file"]
    run_loader(db, "load", str(server.landing))
    path = db.scalar("select path from raw.load_batches where status = 'loaded'")
    assert "-team-a-" in Path(str(path)).name
    assert db.scalar("select count(*) from raw.agent_events where event_id = 'k-1'") == 1


def test_a_bad_keys_file_stops_serve_with_a_usage_error(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("team-a:short\n")
    command = [sys.executable, "-m", "loader", "serve", "--landing", str(tmp_path / "l")]
    result = subprocess.run(
        [*command, "--keys-file", str(keys)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 2
    assert "at least 16 characters" in result.stderr
    assert "Traceback" not in result.stderr


def test_full_spool_answers_503_with_retry_after_until_files_are_taken_away(start_serve) -> None:
    server = start_serve("--max-spool-bytes", "100")
    first = server.post({"events": [agent_event("bp-1")]})
    assert first.status == 200  # the spool was empty
    (written,) = server.batch_files()
    assert written.stat().st_size > 100

    refused = server.post({"events": [agent_event("bp-2")]})
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "2"
    assert "not yet loaded" in refused.json["error"]
    assert server.batch_files() == [written]

    written.unlink()  # what `load --follow --move-loaded-to` does
    deadline = time.monotonic() + 10
    while (reply := server.post({"events": [agent_event("bp-2")]})).status == 503:
        assert time.monotonic() < deadline, "the spool was never recounted"
        time.sleep(0.2)
    assert reply.status == 200


def test_nearly_full_disk_answers_503_and_writes_nothing(start_serve) -> None:
    stat = os.statvfs("/")
    more_than_free = str(stat.f_bavail * stat.f_frsize * 2 + (1 << 40))
    server = start_serve("--min-free-bytes", more_than_free)
    reply = server.post({"events": [agent_event("disk-1")]})
    assert reply.status == 503
    assert reply.headers["Retry-After"] == "2"
    assert "free" in reply.json["error"]
    assert server.batch_files() == []


def test_batches_waiting_for_their_file_count_against_the_spool(start_serve) -> None:
    # The first batch is written at once; the next ones wait 2 s for the next file, in
    # memory. Two 60 kB batches waiting put the spool over 100 kB: the third is refused.
    server = start_serve("--max-spool-bytes", "100000", "--commit-interval", "2")
    assert server.post({"events": [agent_event("first")]}).status == 200
    bodies = [
        {"events": [agent_event(f"w-{n}-{i}", payload={"text": "x" * 1000}) for i in range(60)]}
        for n in range(3)
    ]
    with ThreadPoolExecutor(3) as pool:
        statuses = sorted(reply.status for reply in pool.map(server.post, bodies))
    assert statuses == [200, 200, 503]


def test_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "loader", "serve", "--landing", str(tmp_path / "l")]
        result = subprocess.run(
            [*command, "--port", str(port)], capture_output=True, text=True, cwd=REPO, timeout=60
        )
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in result.stderr
