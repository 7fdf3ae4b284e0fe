"""What fits: every bound the system enforces, defined once.

The contract, the HTTP endpoint, the loader, raw's constraints and the dbt models all read
their bounds from here (docs/contract.md has the table and why each value was chosen). A
record the contract accepts must load, and every row that loads must survive every later
`dbt build`: a bound that one layer enforces and another does not is where data is lost or
a build is stopped, so no layer defines a bound of its own.
"""

from __future__ import annotations

# --- values --------------------------------------------------------------------------------

MAX_ID_BYTES = 256
"""Largest identifier, in UTF-8 bytes: event_id, conversation_id, session_id, user_id (the
conversation-analytics reference); id, agent_id, publisher_id, tenant_id (the marketplace
reference). Real ids are UUIDs (36 bytes), ULIDs (26) or slugs; 256 is seven times a UUID,
far above any producer, and keeps the widest index the warehouse builds (three ids side by
side) under a third of PostgreSQL's b-tree row limit (BTREE_MAX_ROW_BYTES)."""

MAX_NAME_BYTES = 256
"""Largest name that reaches an indexed or grouped column, in UTF-8 bytes: agent_name,
metadata.model, payload.role, payload.tool_name, payload.from_agent / to_agent,
payload.error_type; properties.tool_name, each item of properties.tool_calls,
properties.error_type, properties.plan. Names are labels people read on a dashboard (the
longest in the references is under 40 bytes); 256 leaves room for namespaced names
(`org/team/agent-v2`) and keeps every index under the row limit, as MAX_ID_BYTES does."""

BTREE_MAX_ROW_BYTES = 2704
"""PostgreSQL's limit (not ours) on one b-tree index row, header included (`index row size
... exceeds btree version 4 maximum 2704`): a value over it stops every later `dbt build`.
tests/e2e/test_hostile_build.py proves from the bounds above that no index the warehouse
builds can meet it."""

MAX_COUNT = 10**12
"""Largest token count (a trillion): millions of such events still sum within bigint."""

MAX_MILLISECONDS = 10**12
"""Largest duration or latency, in milliseconds (about 31 years)."""

MAX_COST_USD = 10**9
"""Largest cost of one invocation, in US dollars."""

MAX_INTEGER_DIGITS = 4300
"""Most digits in an integer anywhere in a record (Python's own limit on converting text to
int, `sys.get_int_max_str_digits()`): longer ones are quarantined, not decoded. jsonb holds
them, but no number a producer means has that many digits."""

# --- records -------------------------------------------------------------------------------

MAX_RECORD_BYTES = 1 << 20
"""Records larger than this (1 MiB) are quarantined; `--max-record-bytes` changes it. A
conversation event holds one message (a few kB); 1 MiB keeps long tool outputs and bounds
the memory one record costs the reader."""

MAX_DEPTH = 64
"""Records nested deeper than this (objects and arrays in one another) are quarantined.
The references nest three levels (a record, its payload, a tool's arguments); 64 leaves
tools' arguments room and keeps every recursive walk (the JSON decoders, jsonb) far from
Python's and PostgreSQL's recursion limits, at every nesting an attacker chooses."""

QUARANTINE_PREFIX_BYTES = 1 << 16
"""How much of an oversized or unsplittable record the quarantine keeps (64 KiB)."""

# --- requests to `agent-loader serve` ------------------------------------------------------

MAX_REQUEST_BYTES = 16 << 20
"""Largest request body as sent, before gzip decoding (16 MiB); larger bodies get 413 and the
connection is closed. Without it a stream that decodes to nothing (empty gzip members) is
read for as long as the client sends."""

MAX_DECOMPRESSED_BYTES = 16 << 20
"""Largest request body after gzip decoding (16 MiB); larger bodies get 413 (a gzip bomb
stops here)."""

MAX_GZIP_MEMBERS = 1000
"""Most gzip members in one request body (concatenated gzip); more get 413. A collector
sends one, or one per flush of a buffer; 20-byte empty members are only ever an attack."""

MAX_RECORDS_PER_REQUEST = 10_000
"""Most records in one request (200 times the collectors' default batch of 50); more get 413.
It bounds the work and the memory one request costs: a worker checks 10,000 records of a
16 MiB body in about a second on a busy 2-core machine, and a body of 8M one-byte records
is refused before any is parsed (records are counted only up to the limit)."""

MAX_PROBLEMS_IN_ANSWER = 100
"""Most quarantined records an answer lists (index and reason); the answer also gives their
count, so a request of 10,000 bad records gets an answer of a few kB, not megabytes."""

BODY_TIMEOUT_SECONDS = 30.0
"""Seconds a client may take to send its request body before it gets 408."""

# --- OpenTelemetry spans (`POST /v1/traces`, OTLP JSON lines) -----------------------------

MAX_SPAN_ATTRIBUTES = 128
"""Most attributes on one span, on its resource, or on one of its events; a span over it is
quarantined. 128 is the OpenTelemetry SDKs' own default attribute count limit
(`OTEL_ATTRIBUTE_COUNT_LIMIT`), so a span an SDK sends as configured by default always fits;
the GenAI conventions put about 20 on an LLM call."""

MAX_SPAN_EVENTS = 128
"""Most events on one span (the SDKs' default `OTEL_SPAN_EVENT_COUNT_LIMIT`); more are
quarantined with the span."""
