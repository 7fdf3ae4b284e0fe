-- The load lock: `agent-loader load` holds `lock table raw.load_lock in exclusive mode` for
-- its whole run (in a connection of its own). Locking a table in that mode needs UPDATE,
-- DELETE or TRUNCATE on it, and schema `raw` is closed to readers, so only the loader (and
-- the table's owner or a superuser) can take it. A session-level advisory lock, used before,
-- could be taken by any login and so stop every load.
create table raw.load_lock (
    singleton boolean primary key default true check (singleton)
);

comment on table raw.load_lock is
'Locked (exclusive mode) by the running `agent-loader load`: one loader at a time. Holds no row.';

revoke all on raw.load_lock from public;
