-- 0005: the event tables no longer check batch_id against the ledger row by row.
-- A foreign key costs PostgreSQL a lookup in raw.load_batches for every inserted event
-- (about a third of the server's time per event in a bulk load). The loader writes the
-- batch_id of the ledger row it inserted in the same transaction, and ledger rows are never
-- deleted (retention keeps them and counts what it purged), so the check can never fail.
-- The quarantine keeps its foreign key: it holds few rows.

alter table raw.agent_events drop constraint agent_events_batch_id_fkey;
alter table raw.marketplace_events drop constraint marketplace_events_batch_id_fkey;
