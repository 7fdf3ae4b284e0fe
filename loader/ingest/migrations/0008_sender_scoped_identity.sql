-- 0008: an event's identity is scoped to its sender, and a conflicting duplicate is kept.
--
-- Ids were global: whoever sent an id first owned it, so a sender that reused (or squatted)
-- another sender's id booked that event under its own publisher, tenant and cost, and the
-- real event was dropped as a duplicate. An event is now the same event only when its id
-- and its sender's name match: a marketplace event by (id, publisher_id), a conversation
-- event by (event_id, agent_name). The id comes first in each key, so lookups by id alone
-- (the dbt models' incremental anti-joins) still use the index.

alter table raw.agent_events drop constraint agent_events_pkey;
alter table raw.agent_events add primary key (event_id, agent_name);

alter table raw.marketplace_events drop constraint marketplace_events_pkey;
alter table raw.marketplace_events add primary key (id, publisher_id);

-- A duplicate (same identity) whose content differs from the stored copy: the stored copy
-- stays in raw, the other one is kept here with the batch that brought it, never dropped
-- silently. `record` holds the duplicate's columns as stored in raw (the same privacy
-- masking and tokenisation applied). Identical duplicates are only counted.
create table raw.conflicts (
    conflict_id bigint generated always as identity primary key,
    event_table text not null check (event_table in ('agent_events', 'marketplace_events')),
    event_id text not null,
    sender text not null,
    stored_batch_id bigint not null,
    batch_id bigint not null references raw.load_batches (batch_id),
    record jsonb not null,
    detected_at timestamptz not null
);

create index conflicts_event on raw.conflicts (event_id, sender);
create index conflicts_batch on raw.conflicts (batch_id);

alter table raw.load_batches
    add column conflicts bigint not null default 0,
    add constraint load_batches_conflicts_are_duplicates check (conflicts <= duplicates);
