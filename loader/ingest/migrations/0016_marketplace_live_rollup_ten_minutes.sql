-- 0016: 10-minute buckets beside the 1-minute ones in raw.marketplace_live_rollup, so a read
-- of `marts.operational_health_live` costs each 10-minute bucket whole in a window as one row
-- per publisher, agent, outcome and duration bin, not ten: the 60-minute window reads its
-- interior in 10-minute buckets and only its edges in 1-minute ones (macros/live_views.sql),
-- about a third of the rows 0015 read when every agent's bins are in use each minute.
--
-- A 10-minute row is the sum of the 1-minute rows of its ten minutes (same publisher, agent,
-- outcome and bin: invocations and durations summed, min of the minima, max of the maxima and
-- of the newest events), written by the same statements in the same transactions: the insert
-- trigger adds a load's invocations to both levels in one upsert (one lock order still), a
-- delete or update counts the whole 10-minute buckets it touched again from raw, a truncate
-- empties both, and the two-hour pruning drops both (the table stays bounded).

alter table raw.marketplace_live_rollup
add column bucket_minutes smallint not null default 1 check (bucket_minutes in (1, 10));

alter table raw.marketplace_live_rollup
drop constraint marketplace_live_rollup_pkey,
add primary key (bucket_at, bucket_minutes, publisher_id, agent_id, is_success, duration_bin);

-- The 10-minute bucket holding `event_ts` (macros/live_views.sql `live_ten_minute_bucket` is
-- its one other spelling): ten 1-minute buckets (`raw.marketplace_live_bucket`) each.
create function raw.marketplace_live_ten_minute_bucket(event_ts timestamptz)
returns timestamptz
language sql immutable parallel safe
return date_bin('10 minutes', event_ts, timestamptz '1970-01-01 00:00:00+00');

-- The 10-minute rows of the 1-minute rows of `minutes` (a relation with the rollup's columns
-- but `bucket_minutes`), in the rollup's column order: each the sums of one publisher's,
-- agent's, outcome's and bin's rows of its ten minutes. Written once: read by the insert
-- trigger's statement, the backfill below and bench/ingest_bench.py's planted history.
create function raw.marketplace_live_ten_minute_sums(minutes text) returns text
language sql immutable parallel safe
return format($sql$
    select
        raw.marketplace_live_ten_minute_bucket(bucket_at) as bucket_at,
        publisher_id, agent_id, is_success, duration_bin,
        sum(invocations) as invocations,
        sum(duration_sum) as duration_sum,
        min(duration_min) as duration_min,
        max(duration_max) as duration_max,
        max(last_event_ts) as last_event_ts,
        10 as bucket_minutes
    from %s
    group by 1, 2, 3, 4, 5
$sql$, minutes);

-- As 0015's, and each group of invocations also added to its 10-minute bucket, in the same
-- statement (the rows sorted by key over both levels: one lock order for every statement).
create or replace function raw.marketplace_live_rollup_merge(events text) returns text
language sql immutable parallel safe
return format($sql$
    with minutes as (
        select
            bucket_at, publisher_id, agent_id, is_success,
            raw.marketplace_duration_bin(is_success, duration_ms) as duration_bin,
            count(*) as invocations,
            sum(duration_ms) filter (where is_success) as duration_sum,
            min(duration_ms) filter (where is_success) as duration_min,
            max(duration_ms) filter (where is_success) as duration_max,
            max(event_ts) as last_event_ts
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
    )
    insert into raw.marketplace_live_rollup as r (
        bucket_at, publisher_id, agent_id, is_success, duration_bin, invocations,
        duration_sum, duration_min, duration_max, last_event_ts, bucket_minutes
    )
    select *, 1 from minutes
    union all
    %s
    -- one lock order for every statement: two wait for each other, never deadlock (two
    -- files of several segments each can; the loader then loads the one rolled back again)
    order by 1, 11, 2, 3, 4, 5
    on conflict (bucket_at, bucket_minutes, publisher_id, agent_id, is_success, duration_bin)
    do update
    set invocations = r.invocations + excluded.invocations,
        duration_sum = r.duration_sum + excluded.duration_sum,
        duration_min = least(r.duration_min, excluded.duration_min),
        duration_max = greatest(r.duration_max, excluded.duration_max),
        last_event_ts = greatest(r.last_event_ts, excluded.last_event_ts)
$sql$, events, raw.marketplace_live_ten_minute_sums('minutes'));

-- The 10-minute buckets (of a publisher and agent) a delete or update touched, both levels,
-- counted again from raw: 0015's recount, by whole 10-minute buckets.
create or replace function raw.marketplace_live_rollup_recount() returns trigger
language plpgsql as $$
begin
    create temporary table marketplace_live_touched on commit drop as
    select distinct
        raw.marketplace_live_ten_minute_bucket(event_ts) as bucket_at, publisher_id, agent_id
    from removed
    where event_ts > now() - interval '2 hours' - interval '10 minutes';
    if tg_op = 'UPDATE' then
        insert into marketplace_live_touched
        select distinct
            raw.marketplace_live_ten_minute_bucket(event_ts), publisher_id, agent_id
        from added
        where event_ts > now() - interval '2 hours' - interval '10 minutes';
    end if;
    delete from raw.marketplace_live_rollup as r
    using marketplace_live_touched as t
    where
        r.bucket_at >= t.bucket_at and r.bucket_at < t.bucket_at + interval '10 minutes'
        and r.publisher_id = t.publisher_id and r.agent_id = t.agent_id;
    create temporary table marketplace_live_recounted on commit drop as
    select e.*
    from (select distinct * from marketplace_live_touched) as t
    inner join raw.marketplace_events as e
        on
            e.publisher_id = t.publisher_id and e.agent_id = t.agent_id
            and e.event_ts >= t.bucket_at and e.event_ts < t.bucket_at + interval '10 minutes';
    execute raw.marketplace_live_rollup_merge('marketplace_live_recounted');
    drop table marketplace_live_touched;
    drop table marketplace_live_recounted;
    return null;
end
$$;

-- The 10-minute buckets of the rows already there (the triggers keep them from now on).
do $$
begin
    execute 'insert into raw.marketplace_live_rollup '
        || raw.marketplace_live_ten_minute_sums('raw.marketplace_live_rollup');
end
$$;
