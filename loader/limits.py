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
"""Largest identifier (event, conversation, session, user, agent, publisher, tenant id), in
UTF-8 bytes. Real ids are UUIDs (36), ULIDs (26) or slugs; 256 is far above any producer and
keeps the widest index the warehouse builds (several ids and names side by side) under
PostgreSQL's b-tree row limit of 2,704 bytes."""

MAX_NAME_BYTES = 256
"""Largest name that reaches an indexed or grouped column (agent name, tool name, error
type, model name, plan), in UTF-8 bytes; the same reasoning as MAX_ID_BYTES."""

MAX_COUNT = 10**12
"""Largest token count (a trillion): millions of such events still sum within bigint."""

MAX_MILLISECONDS = 10**12
"""Largest duration or latency, in milliseconds (about 31 years)."""

MAX_COST_USD = 10**9
"""Largest cost of one invocation, in US dollars."""

# --- records -------------------------------------------------------------------------------

MAX_RECORD_BYTES = 1 << 20
"""Records larger than this (1 MiB) are quarantined; `--max-record-bytes` changes it."""

MAX_DEPTH = 64
"""Records nested deeper than this (objects and arrays in one another) are quarantined."""

QUARANTINE_PREFIX_BYTES = 1 << 16
"""How much of an oversized or unsplittable record the quarantine keeps (64 KiB)."""

# --- requests to `agent-loader serve` ------------------------------------------------------

MAX_BODY_BYTES = 16 << 20
"""Largest request body, after gzip decoding (16 MiB); larger bodies get 413."""

BODY_TIMEOUT_SECONDS = 30.0
"""Seconds a client may take to send its request body before it gets 408."""
