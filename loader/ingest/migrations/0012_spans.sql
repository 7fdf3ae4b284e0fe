-- 0012: OpenTelemetry spans, kept as sent (one row per span), beside the two event tables.
--
-- A span is the same span when its (trace_id, span_id) match: OpenTelemetry makes both
-- random (128 and 64 bits), and exporters retry whole requests, so a retried span is a
-- duplicate, counted like an event's. Attribute values keep their OTLP type in JSON
-- (string, number, boolean, array, object for a key-value list); reading the GenAI
-- conventions out of them is dbt staging's work, so a new dialect needs no migration.
-- Ids are lowercase hex of the lengths OTLP fixes; names are bounded like the events'
-- (loader/limits.py: MAX_NAME_BYTES), so no row can stop a later build's index.

create table raw.spans (
    trace_id text not null,
    span_id text not null,
    parent_span_id text,
    name text not null,
    kind text not null,
    start_time timestamptz not null,
    end_time timestamptz not null,
    -- As sent, in nanoseconds: timestamptz keeps microseconds only.
    duration_ns bigint not null,
    status_code text not null,
    status_message text,
    attributes jsonb not null,
    resource_attributes jsonb not null,
    scope_name text,
    scope_version text,
    events jsonb not null,
    batch_id bigint not null,
    loaded_at timestamptz not null,
    primary key (trace_id, span_id),
    constraint spans_ids_are_hex check (
        trace_id ~ '^[0-9a-f]{32}$'
        and span_id ~ '^[0-9a-f]{16}$'
        and (parent_span_id is null or parent_span_id ~ '^[0-9a-f]{16}$')
    ),
    constraint spans_name_fits check (octet_length(name) <= 256),
    constraint spans_kind_known check (
        kind in ('unspecified', 'internal', 'server', 'client', 'producer', 'consumer')
    ),
    constraint spans_status_known check (status_code in ('unset', 'ok', 'error'))
);

create index spans_loaded_at on raw.spans using brin (loaded_at);
create index spans_start_time on raw.spans using brin (start_time);

alter table raw.load_batches
    add column spans_loaded bigint not null default 0,
    drop constraint load_batches_loaded_split,
    add constraint load_batches_loaded_split check (
        status <> 'loaded'
        or loaded = agent_events_loaded + marketplace_events_loaded + spans_loaded
    );

alter table raw.conflicts
    drop constraint conflicts_event_table_check,
    add constraint conflicts_event_table_check check (
        event_table in ('agent_events', 'marketplace_events', 'spans')
    );
