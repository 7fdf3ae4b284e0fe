-- Staging holds every raw event loaded up to its high-water mark, exactly once (event_id with
-- agent_name is unique in both): an incremental run that skipped a late-loaded row would fail
-- here. Rows loaded while this build ran (after the high-water mark) are left for the next
-- build.
with

raw_events as (

    select * from {{ source('agent_events', 'agent_events') }}

),

events as (

    select * from {{ ref('stg_agent_events__events') }}

),

high_water as (

    select max(loaded_at) as loaded_at from events

),

counts as (

    select
        (
            select count(*) from raw_events
            where raw_events.loaded_at <= (select high_water.loaded_at from high_water)
        ) as raw_events,
        (select count(*) from events) as staged_events

),

final as (

    select *
    from counts
    where raw_events != staged_events

)

select * from final
