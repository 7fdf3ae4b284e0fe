-- 0001: the raw schema: the load ledger, both event tables and the quarantine.
-- Raw keeps the source's field names (the seed's warehouse table calls the timestamp
-- `event_ts`); renaming and casting happen once, in dbt staging.

create table raw.load_batches (
    batch_id bigint generated always as identity primary key,
    path text not null,
    sha256 text,
    bytes bigint,
    file_format text,
    status text not null check (status in ('loaded', 'failed')),
    records_read bigint not null default 0,
    loaded bigint not null default 0,
    duplicates bigint not null default 0,
    quarantined bigint not null default 0,
    agent_events_loaded bigint not null default 0,
    marketplace_events_loaded bigint not null default 0,
    error text,
    loader_version text not null,
    started_at timestamptz not null,
    finished_at timestamptz not null,
    -- The reconciliation promise, enforced by the database itself.
    constraint load_batches_counts_reconcile check (
        status <> 'loaded'
        or records_read = loaded + duplicates + quarantined
    ),
    constraint load_batches_loaded_split check (
        status <> 'loaded'
        or loaded = agent_events_loaded + marketplace_events_loaded
    )
);

-- A file's content is loaded at most once: one 'loaded' row per checksum.
create unique index load_batches_sha256_loaded
    on raw.load_batches (sha256) where status = 'loaded';
create index load_batches_started_at on raw.load_batches (started_at);

-- Seed 000 (`AgentEvent.to_dict()`): conversation events.
create table raw.agent_events (
    event_id text primary key,
    conversation_id text not null,
    session_id text not null,
    event_type text not null,
    event_ts timestamptz not null,
    agent_name text not null,
    user_id text not null,
    payload jsonb not null,
    metadata jsonb not null,
    batch_id bigint not null references raw.load_batches (batch_id),
    loaded_at timestamptz not null
);

-- BRIN: both columns grow with insertion order, so a tiny index serves the
-- incremental models (loaded_at) and time-window queries (event_ts) at no load cost.
create index agent_events_loaded_at on raw.agent_events using brin (loaded_at);
create index agent_events_event_ts on raw.agent_events using brin (event_ts);

-- Seed 004 (`AnalyticsEvent`): marketplace events.
create table raw.marketplace_events (
    id text primary key,
    event_type text not null,
    agent_id text not null,
    publisher_id text not null,
    tenant_id text not null,
    event_ts timestamptz not null,
    properties jsonb not null,
    batch_id bigint not null references raw.load_batches (batch_id),
    loaded_at timestamptz not null
);

create index marketplace_events_loaded_at on raw.marketplace_events using brin (loaded_at);
create index marketplace_events_event_ts on raw.marketplace_events using brin (event_ts);

-- Every record that failed the contract, with the text as read and the reason.
create table raw.quarantine (
    quarantine_id bigint generated always as identity primary key,
    batch_id bigint not null references raw.load_batches (batch_id),
    position bigint not null,
    raw_text text not null,
    raw_bytes bigint not null,
    reason text not null,
    quarantined_at timestamptz not null,
    unique (batch_id, position)
);
