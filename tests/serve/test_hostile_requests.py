"""The endpoint's hostile corpus: requests built to cost the server the most per byte sent.

One instance of each class issue 23 found, each different from the issue's own examples
(those are in test_request_bounds.py). The bounds come from loader/limits.py.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator

import pytest

from loader.limits import MAX_DECOMPRESSED_BYTES, MAX_RECORDS_PER_REQUEST
from tests.serve.conftest import ServeProcess, request


@pytest.fixture(scope="module")
def ingest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """A server with the default limits."""
    process = ServeProcess(tmp_path_factory.mktemp("landing"))
    yield process
    process.stop()


def test_a_small_gzip_of_millions_of_empty_objects_is_refused_cheaply(
    ingest: ServeProcess,
) -> None:
    """Work proportional to what the attacker chooses: 13 kB on the wire decode to a JSON
    array of 5.6 million `{}`, each a record the loader would quarantine. The old server
    parsed and judged every one on its event loop and answered with every reason."""
    records = (MAX_DECOMPRESSED_BYTES - 2) // 3
    body = b"[" + b"{}," * (records - 1) + b"{}]"
    assert len(body) <= MAX_DECOMPRESSED_BYTES
    compressed = gzip.compress(body, 9)
    assert len(compressed) < 32 << 10
    started = time.monotonic()
    reply = request(
        ingest.url + "/v1/events", compressed, headers={"Content-Encoding": "gzip"}, timeout=60
    )
    answered_after = time.monotonic() - started
    assert reply.status == 413
    assert f"more than {MAX_RECORDS_PER_REQUEST} records" in reply.json["error"]
    assert ingest.batch_files() == []
    assert answered_after < 20  # generous: the records are counted up to the limit, no more
    assert request(ingest.url + "/healthz").status == 200
