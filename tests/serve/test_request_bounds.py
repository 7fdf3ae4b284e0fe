"""What one request may cost the endpoint: records, bytes as sent and after decoding, gzip
members, the answer's size; and the event loop stays free while a request is checked.

The bounds come from loader/limits.py; the values asserted are computed here from them.
Times are asserted only as an order (which answer came first) or with a wide margin: the
speed targets are measured in bench/ingest_bench.py.
"""

from __future__ import annotations

import gzip
import json
import os
import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from loader.limits import (
    MAX_GZIP_MEMBERS,
    MAX_PROBLEMS_IN_ANSWER,
    MAX_RECORDS_PER_REQUEST,
    MAX_REQUEST_BYTES,
)
from tests.serve.conftest import ServeProcess, agent_event, request


@pytest.fixture(scope="module")
def ingest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """A server with the default limits."""
    process = ServeProcess(tmp_path_factory.mktemp("landing"))
    yield process
    process.stop()


def _ndjson(count: int, line: bytes = b"{}") -> bytes:
    return b"\n".join([line] * count) + b"\n"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (_ndjson(MAX_RECORDS_PER_REQUEST + 1), "application/x-ndjson"),
        (json.dumps([{}] * (MAX_RECORDS_PER_REQUEST + 1)).encode(), "application/json"),
        (json.dumps({"events": [7] * (MAX_RECORDS_PER_REQUEST + 1)}).encode(), "application/json"),
    ],
    ids=["ndjson", "array", "events-document"],
)
def test_one_record_more_than_the_limit_gets_413_naming_the_limit(
    ingest: ServeProcess, body: bytes, content_type: str
) -> None:
    before = ingest.batch_files()
    reply = ingest.post(body, content_type=content_type)
    assert reply.status == 413
    assert f"more than {MAX_RECORDS_PER_REQUEST} records" in reply.json["error"]
    assert ingest.batch_files() == before


def test_the_answer_lists_a_bounded_number_of_quarantined_records_and_counts_them_all(
    ingest: ServeProcess,
) -> None:
    # The limit exactly: every record is one the loader will quarantine.
    body = _ndjson(MAX_RECORDS_PER_REQUEST, b"1")
    reply = ingest.post(body, content_type="application/x-ndjson")
    assert reply.status == 200
    answer = reply.json
    assert answer["records"] == MAX_RECORDS_PER_REQUEST
    assert answer["accepted"] == 0
    assert answer["quarantined_count"] == MAX_RECORDS_PER_REQUEST
    assert [item["index"] for item in answer["quarantined"]] == list(range(MAX_PROBLEMS_IN_ANSWER))
    assert {item["reason"] for item in answer["quarantined"]} == {
        "record is a int, expected a JSON object"
    }
    assert len(reply.body) < 100 * MAX_PROBLEMS_IN_ANSWER  # was 55 bytes a record sent
    lines = (ingest.landing / answer["file"]).read_bytes().splitlines()
    assert lines == [b"1"] * MAX_RECORDS_PER_REQUEST  # every record kept for the loader


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def test_a_stream_of_empty_gzip_members_is_refused_and_the_connection_closed(
    ingest: ServeProcess,
) -> None:
    """Empty members decode to nothing, so no bound on decoded bytes ever stops them: the
    bytes as sent and the members are bounded, and the rest of the stream is not read."""
    member = gzip.compress(b"")
    data = _chunk(member * (65536 // len(member)))
    sent = 0
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", ingest.port), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        while sent < 8 * MAX_REQUEST_BYTES and time.monotonic() - started < 25:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer is there
            try:
                sock.sendall(data)
            except OSError:  # closed by the server: its answer was sent before
                break
            sent += len(data)
        answered_after = time.monotonic() - started
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert f"over {MAX_REQUEST_BYTES} bytes (as sent)".encode() in answer
    assert b"Connection: close" in answer
    # What was read is bounded by the bytes a request may send (plus socket buffers), not by
    # how long the client goes on; the old server read for its whole body timeout (30 s).
    assert sent < 2 * MAX_REQUEST_BYTES
    assert answered_after < 20


def test_more_gzip_members_than_the_limit_get_413(ingest: ServeProcess) -> None:
    member = gzip.compress(b"")
    body = member * MAX_GZIP_MEMBERS + gzip.compress(b"[]")
    reply = request(ingest.url + "/v1/events", body, headers={"Content-Encoding": "gzip"})
    assert reply.status == 413
    assert f"more than {MAX_GZIP_MEMBERS} members" in reply.json["error"]
    within = member * (MAX_GZIP_MEMBERS - 1) + gzip.compress(b"[]")
    reply = request(ingest.url + "/v1/events", within, headers={"Content-Encoding": "gzip"})
    assert (reply.status, reply.json["records"]) == (200, 0)


def test_a_body_over_the_bytes_a_request_may_send_gets_413_before_it_is_read(
    start_serve,
) -> None:
    server = start_serve("--max-request-bytes", "65536")
    noise = [agent_event(f"r-{i}", payload={"text": os.urandom(64).hex()}) for i in range(1000)]
    compressed = gzip.compress(json.dumps(noise).encode())
    assert len(compressed) > 65536  # random text: gzip cannot make it small
    reply = request(server.url + "/v1/events", compressed, headers={"Content-Encoding": "gzip"})
    assert reply.status == 413
    assert "over 65536 bytes (as sent)" in reply.json["error"]
    assert server.batch_files() == []


def test_healthz_answers_while_a_large_valid_body_is_being_checked(
    ingest: ServeProcess,
) -> None:
    """Checking MAX_RECORDS_PER_REQUEST valid records takes a worker a good part of a second;
    meanwhile the event loop answers /healthz. The body is gzip (a few kB, read at once), so
    once it is sent the server's work is checking it, then writing the batch file. The old
    server checked on the loop: one /healthz waited for the whole check, nearly as long as
    the POST took. Asserted as a ratio, not a time: the machine is shared."""
    events = [agent_event(f"heavy-{i}") for i in range(MAX_RECORDS_PER_REQUEST)]
    body = gzip.compress(json.dumps({"events": events}).encode())
    head = (
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    body_sent = threading.Event()
    times: dict[str, float] = {}
    answer: list[bytes] = []

    def post() -> None:
        with socket.create_connection(("127.0.0.1", ingest.port), timeout=120) as sock:
            sock.sendall(head + body)
            times["sent"] = time.monotonic()
            body_sent.set()
            answer.append(sock.recv(4096))
            times["answered"] = time.monotonic()

    poster = threading.Thread(target=post)
    poster.start()
    assert body_sent.wait(60)
    probes: list[float] = []
    while poster.is_alive():
        sent = time.monotonic()
        assert request(ingest.url + "/healthz", timeout=60).status == 200
        probes.append(time.monotonic() - sent)
    poster.join()
    assert answer[0].startswith(b"HTTP/1.1 200"), answer[0][:200]
    post_seconds = times["answered"] - times["sent"]
    assert len(probes) >= 3
    assert max(probes) < post_seconds / 2, (max(probes), post_seconds)
