-- 0003: what the PII options were for each loaded file, and retention bookkeeping.
-- After a purge, each batch still reconciles:
--   loaded = rows still in raw with its batch_id + purged_events
--   quarantined = its rows still in raw.quarantine + purged_quarantined

alter table raw.load_batches
    add column privacy text,
    add column purged_events bigint not null default 0,
    add column purged_quarantined bigint not null default 0;

create table raw.purges (
    purge_id bigint generated always as identity primary key,
    older_than interval not null,
    cutoff timestamptz not null,
    agent_events bigint not null,
    marketplace_events bigint not null,
    quarantine bigint not null,
    started_at timestamptz not null,
    finished_at timestamptz not null
);
