-- 0014: the state of `agent-loader alerts` (docs/alerts.md): each alert's state, every
-- transition to notify once, every delivery to a receiver and every attempt at it.
-- Schema `alerts` is the loader owner's; no BI reader is granted anything in it.

create schema if not exists alerts;

-- One row per rule, subject and agent that has breached at least once.
create table alerts.alert_states (
    alert_key text primary key,
    rule_id text not null,
    scope text not null check (scope in ('publisher', 'tenant')),
    subject_id text not null,
    agent_id text not null,
    status text not null check (status in ('ok', 'pending', 'firing', 'resolved')),
    -- the episode: how many times the alert has fired (the transitions' key)
    episode integer not null default 0,
    breaching_since timestamptz,
    clear_since timestamptz,
    fired_at timestamptz,
    resolved_at timestamptz,
    last_value numeric,
    last_samples bigint,
    evaluated_at timestamptz not null
);

-- A state change that notifies: written once, by the evaluation that made it (the unique
-- key stops a second instance or a rerun from writing it again).
create table alerts.transitions (
    transition_id bigint generated always as identity primary key,
    alert_key text not null references alerts.alert_states (alert_key),
    episode integer not null,
    kind text not null check (kind in ('firing', 'resolved')),
    occurred_at timestamptz not null,
    -- the facts a notification may hold (rule, subject, value), as evaluated
    facts jsonb not null,
    unique (alert_key, episode, kind)
);

-- One row per transition and receiver: what is left to send, and how it ended.
-- `sending` is committed before the request goes out, with the sender's backend: a sender
-- that died mid-request leaves it, and the next run marks it `interrupted` (never resent).
create table alerts.deliveries (
    transition_id bigint not null references alerts.transitions (transition_id),
    receiver text not null,
    status text not null
        check (status in ('pending', 'sending', 'delivered', 'failed', 'interrupted')),
    attempts integer not null default 0,
    next_attempt_at timestamptz not null,
    sender_pid integer,
    sender_backend_start timestamptz,
    finished_at timestamptz,
    primary key (transition_id, receiver)
);

create index deliveries_due on alerts.deliveries (next_attempt_at) where status = 'pending';

-- Every attempt: the receiver's status code, or the error (timeout, refused).
create table alerts.delivery_attempts (
    attempt_id bigint generated always as identity primary key,
    transition_id bigint not null,
    receiver text not null,
    attempt integer not null,
    started_at timestamptz not null,
    finished_at timestamptz,
    status_code integer,
    error text,
    foreign key (transition_id, receiver) references alerts.deliveries (transition_id, receiver)
);
