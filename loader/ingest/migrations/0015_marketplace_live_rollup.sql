-- 0015: the marketplace invocations of the last two hours, rolled up in the transaction that
-- writes raw, so `marts.operational_health_live` reads 1-minute buckets, not events
-- (docs/alerts.md has what it guarantees).
--
-- Keyed on bounded values only: the bucket, publisher_id and agent_id (256 bytes each at most,
-- 0007; limits.py MAX_ID_BYTES), the outcome and a duration bin (a smallint), so no event can
-- make an index row over PostgreSQL's b-tree limit (tests/e2e/test_hostile_build.py). The
-- durations themselves are only summed and compared (sum, min, max per row), never keyed.
--
-- Statement triggers with transition tables keep it exact under every write to
-- raw.marketplace_events: a load's COPY (or any insert) adds the rows it wrote, read once
-- from the statement's own transition table, in its transaction; a delete or update (purge,
-- erasure) counts the buckets it touched again from raw; a truncate empties it. Each insert
-- also drops buckets older than two hours (the widest live window may be at most 110
-- minutes), so the table holds two hours of buckets whatever the traffic.

create table raw.marketplace_live_rollup (
    bucket_at timestamptz not null,
    publisher_id text not null,
    agent_id text not null,
    is_success boolean not null,
    duration_bin smallint not null,
    invocations bigint not null,
    duration_sum numeric,
    duration_min numeric,
    duration_max numeric,
    last_event_ts timestamptz not null,
    primary key (bucket_at, publisher_id, agent_id, is_success, duration_bin)
) with (fillfactor = 70);

-- The 1-minute bucket holding `event_ts` (macros/live_views.sql `live_bucket` is its one other
-- spelling, held to this one by tests/alerts/test_live_rollup.py).
create function raw.marketplace_live_bucket(event_ts timestamptz) returns timestamptz
language sql immutable parallel safe
return date_bin('1 minute', event_ts, timestamptz '1970-01-01 00:00:00+00');

-- `duration_ms` as the marts read it: json_number(properties, 'duration_ms', 'numeric', 0,
-- 1e12) (macros/json_number.sql; the bound is limits.py MAX_MILLISECONDS): a JSON number in
-- range, else null. tests/alerts/test_live_rollup.py holds the two readings equal.
create function raw.marketplace_duration_ms(properties jsonb) returns numeric
language sql immutable parallel safe
return case
    when jsonb_typeof(properties -> 'duration_ms') = 'number'
        then case
            when cast(properties -> 'duration_ms' as numeric) between 0 and 1e12
                then cast(properties -> 'duration_ms' as numeric)
        end
end;

-- The bin of a completion's duration: whole milliseconds below 100 ms (bins 0 to 99), then
-- bins 1% wide (bin 100 + k holds [100 * 1.01^k, 100 * 1.01^(k+1))), 2,415 bins up to 10^12;
-- -1 for an invocation with no response time (errored, or no duration). Monotone in the
-- duration, so the bins sort as the durations do, and two durations of one bin differ by
-- less than 1 ms below 100 ms, by less than 1% of the smaller above.
create function raw.marketplace_duration_bin(is_success boolean, duration_ms numeric)
returns smallint
language sql immutable parallel safe
return case
    when not is_success or duration_ms is null then -1
    when duration_ms < 100 then cast(floor(duration_ms) as smallint)
    else cast(
        100 + floor(ln(cast(duration_ms as double precision) / 100) / ln(1.01)) as smallint
    )
end;

-- The statement that adds the invocations among the marketplace events of `events` (a
-- relation with raw.marketplace_events' columns) to the rollup: written once, run by the
-- insert trigger on its transition table and by the recount on raw's rows of the buckets it
-- recounts.
create function raw.marketplace_live_rollup_merge(events text) returns text
language sql immutable parallel safe
return format($sql$
    insert into raw.marketplace_live_rollup as r (
        bucket_at, publisher_id, agent_id, is_success, duration_bin, invocations,
        duration_sum, duration_min, duration_max, last_event_ts
    )
    select
        bucket_at, publisher_id, agent_id, is_success,
        raw.marketplace_duration_bin(is_success, duration_ms),
        count(*),
        sum(duration_ms) filter (where is_success),
        min(duration_ms) filter (where is_success),
        max(duration_ms) filter (where is_success),
        max(event_ts)
    from (
        select
            raw.marketplace_live_bucket(event_ts) as bucket_at,
            publisher_id,
            agent_id,
            event_type = 'agent_completed' as is_success,
            raw.marketplace_duration_ms(properties) as duration_ms,
            event_ts
        from %s
        where
            event_type in ('agent_completed', 'agent_errored')
            and event_ts > now() - interval '2 hours'
    ) as invocations
    group by 1, 2, 3, 4, 5
    -- one lock order for every statement: two wait for each other, never deadlock (two
    -- files of several segments each can; the loader then loads the one rolled back again)
    order by 1, 2, 3, 4, 5
    on conflict (bucket_at, publisher_id, agent_id, is_success, duration_bin) do update
    set invocations = r.invocations + excluded.invocations,
        duration_sum = r.duration_sum + excluded.duration_sum,
        duration_min = least(r.duration_min, excluded.duration_min),
        duration_max = greatest(r.duration_max, excluded.duration_max),
        last_event_ts = greatest(r.last_event_ts, excluded.last_event_ts)
$sql$, events);

create function raw.marketplace_live_rollup_add() returns trigger
language plpgsql as $$
begin
    execute raw.marketplace_live_rollup_merge('added');
    delete from raw.marketplace_live_rollup where bucket_at < now() - interval '2 hours';
    return null;
end
$$;

-- The buckets (of a publisher and agent) a delete or update touched, counted again from raw.
create function raw.marketplace_live_rollup_recount() returns trigger
language plpgsql as $$
begin
    create temporary table marketplace_live_touched on commit drop as
    select distinct raw.marketplace_live_bucket(event_ts) as bucket_at, publisher_id, agent_id
    from removed
    where event_ts > now() - interval '2 hours' - interval '1 minute';
    if tg_op = 'UPDATE' then
        insert into marketplace_live_touched
        select distinct raw.marketplace_live_bucket(event_ts), publisher_id, agent_id
        from added
        where event_ts > now() - interval '2 hours' - interval '1 minute';
    end if;
    delete from raw.marketplace_live_rollup as r
    using marketplace_live_touched as t
    where r.bucket_at = t.bucket_at and r.publisher_id = t.publisher_id and r.agent_id = t.agent_id;
    create temporary table marketplace_live_recounted on commit drop as
    select e.*
    from (select distinct * from marketplace_live_touched) as t
    inner join raw.marketplace_events as e
        on
            e.publisher_id = t.publisher_id and e.agent_id = t.agent_id
            and e.event_ts >= t.bucket_at and e.event_ts < t.bucket_at + interval '1 minute';
    execute raw.marketplace_live_rollup_merge('marketplace_live_recounted');
    drop table marketplace_live_touched;
    drop table marketplace_live_recounted;
    return null;
end
$$;

create function raw.marketplace_live_rollup_clear() returns trigger
language plpgsql as $$
begin
    truncate raw.marketplace_live_rollup;
    return null;
end
$$;

create trigger marketplace_live_rollup_insert
after insert on raw.marketplace_events
referencing new table as added
for each statement execute function raw.marketplace_live_rollup_add();

create trigger marketplace_live_rollup_delete
after delete on raw.marketplace_events
referencing old table as removed
for each statement execute function raw.marketplace_live_rollup_recount();

create trigger marketplace_live_rollup_update
after update on raw.marketplace_events
referencing old table as removed new table as added
for each statement execute function raw.marketplace_live_rollup_recount();

create trigger marketplace_live_rollup_truncate
after truncate on raw.marketplace_events
for each statement execute function raw.marketplace_live_rollup_clear();
