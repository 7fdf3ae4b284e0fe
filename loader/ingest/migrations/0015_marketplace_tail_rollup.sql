-- 0015: the marketplace tail, rolled up in the transaction that writes raw (docs/alerts.md).
-- `marts.operational_health_live` reads these 10-second buckets for the whole of each window
-- and raw only for the partial buckets at its edges, so a read costs the buckets of the
-- last hour, not its events. Nothing here interprets an event: the bucket keeps each
-- event type and the `duration_ms` JSON value as loaded, in an object of its own
-- (`{"duration_ms": null}` when absent, which json_number reads the same way), with how many
-- events had them; dbt applies the definitions (macros/live_views.sql `tail_bucket` is this bucket's one other spelling).
-- Statement triggers keep it exact under every write to raw.marketplace_events: a load
-- (COPY or insert) adds its new rows, a delete or update (purge, erasure) recounts the
-- buckets it touched from raw, a truncate empties it. Buckets older than two hours are
-- dropped by each load (the widest live window may be at most 110 minutes).

create table raw.marketplace_tail_rollup (
    bucket_at timestamptz not null,
    publisher_id text not null,
    agent_id text not null,
    event_type text not null,
    duration jsonb not null,
    events bigint not null,
    last_event_ts timestamptz not null,
    primary key (bucket_at, publisher_id, agent_id, event_type, duration)
);

-- date_bin (built in, cheap: the live view applies it to every bucket row it reads)
create function raw.marketplace_tail_bucket(event_ts timestamptz) returns timestamptz
language sql immutable parallel safe
return date_bin('10 seconds', event_ts, timestamptz '1970-01-01 00:00:00+00');

create function raw.marketplace_tail_rollup_add() returns trigger
language plpgsql as $$
begin
    insert into raw.marketplace_tail_rollup as r (
        bucket_at, publisher_id, agent_id, event_type, duration, events, last_event_ts
    )
    select
        raw.marketplace_tail_bucket(event_ts),
        publisher_id,
        agent_id,
        event_type,
        jsonb_build_object('duration_ms', properties -> 'duration_ms'),
        count(*),
        max(event_ts)
    from added
    where event_ts > now() - interval '2 hours'
    group by 1, 2, 3, 4, 5
    order by 1, 2, 3, 4, 5
    on conflict (bucket_at, publisher_id, agent_id, event_type, duration) do update
    set events = r.events + excluded.events,
        last_event_ts = greatest(r.last_event_ts, excluded.last_event_ts);
    delete from raw.marketplace_tail_rollup where bucket_at < now() - interval '2 hours';
    return null;
end
$$;

-- The buckets a delete (or an update: old and new rows) touched, counted again from raw as
-- it is now.
create function raw.marketplace_tail_rollup_recount() returns trigger
language plpgsql as $$
declare
    touched jsonb;
begin
    select coalesce(jsonb_agg(distinct jsonb_build_array(
        raw.marketplace_tail_bucket(event_ts), publisher_id, agent_id, event_type
    )), '[]')
    into touched
    from removed
    where event_ts >= now() - interval '2 hours' - interval '10 seconds';
    if tg_op = 'UPDATE' then
        select touched || coalesce(jsonb_agg(distinct jsonb_build_array(
            raw.marketplace_tail_bucket(event_ts), publisher_id, agent_id, event_type
        )), '[]')
        into touched
        from added
        where event_ts >= now() - interval '2 hours' - interval '10 seconds';
    end if;
    if touched = '[]' then
        return null;
    end if;
    create temporary table marketplace_tail_touched on commit drop as
    select distinct
        cast(k ->> 0 as timestamptz) as bucket_at,
        k ->> 1 as publisher_id,
        k ->> 2 as agent_id,
        k ->> 3 as event_type
    from jsonb_array_elements(touched) as k;
    delete from raw.marketplace_tail_rollup as r
    using marketplace_tail_touched as t
    where
        r.bucket_at = t.bucket_at and r.publisher_id = t.publisher_id
        and r.agent_id = t.agent_id and r.event_type = t.event_type;
    insert into raw.marketplace_tail_rollup (
        bucket_at, publisher_id, agent_id, event_type, duration, events, last_event_ts
    )
    select
        t.bucket_at,
        e.publisher_id,
        e.agent_id,
        e.event_type,
        jsonb_build_object('duration_ms', e.properties -> 'duration_ms'),
        count(*),
        max(e.event_ts)
    from marketplace_tail_touched as t
    inner join raw.marketplace_events as e
        on
            e.publisher_id = t.publisher_id and e.agent_id = t.agent_id
            and e.event_type = t.event_type
            and e.event_ts >= t.bucket_at and e.event_ts < t.bucket_at + interval '10 seconds'
    where t.bucket_at >= now() - interval '2 hours'
    group by 1, 2, 3, 4, 5;
    drop table marketplace_tail_touched;
    return null;
end
$$;

create function raw.marketplace_tail_rollup_clear() returns trigger
language plpgsql as $$
begin
    truncate raw.marketplace_tail_rollup;
    return null;
end
$$;

create trigger marketplace_tail_rollup_insert
after insert on raw.marketplace_events
referencing new table as added
for each statement execute function raw.marketplace_tail_rollup_add();

create trigger marketplace_tail_rollup_delete
after delete on raw.marketplace_events
referencing old table as removed
for each statement execute function raw.marketplace_tail_rollup_recount();

create trigger marketplace_tail_rollup_update
after update on raw.marketplace_events
referencing old table as removed new table as added
for each statement execute function raw.marketplace_tail_rollup_recount();

create trigger marketplace_tail_rollup_truncate
after truncate on raw.marketplace_events
for each statement execute function raw.marketplace_tail_rollup_clear();
