-- 0009: `agent-loader purge --user/--tenant` (erasure) is recorded in raw.purges beside the
-- retention purges, so the dbt models drop the erased rows on their next build.
-- An erasure has no retention window (`older_than` is null) and its cutoff is 'infinity':
-- rows of any age may have gone, so every model checks all its rows against upstream
-- (macros/retention.sql). `erased` says whose rows went (a user's or a tenant's), never
-- which one: the record of an erasure must not hold the id it erased.

alter table raw.purges
    alter column older_than drop not null,
    add column erased text,
    add constraint purges_window_or_erasure check (
        (older_than is not null and erased is null)
        or (older_than is null and erased in ('user', 'tenant'))
    );
