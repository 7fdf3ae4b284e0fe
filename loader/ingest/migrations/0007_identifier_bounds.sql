-- 0007: the raw event tables refuse an identifier or name longer than the contract allows.
-- The loader's contract already quarantines such a record (loader/limits.py: MAX_ID_BYTES
-- and MAX_NAME_BYTES, both 256 UTF-8 bytes); these checks hold the same bound for a row
-- written by anything else, so no row in raw can stop a later `dbt build` with an index
-- row over PostgreSQL's b-tree limit. `not valid`: rows already loaded are not re-read
-- (the migration stays instant on a large table); every new row is checked, at the cost of
-- a length read per column. tests/loader/test_limits.py holds these numbers to limits.py.

alter table raw.agent_events add constraint agent_events_identifiers_fit check (
    octet_length(event_id) <= 256
    and octet_length(conversation_id) <= 256
    and octet_length(session_id) <= 256
    and octet_length(user_id) <= 256
    and octet_length(agent_name) <= 256
) not valid;

alter table raw.marketplace_events add constraint marketplace_events_identifiers_fit check (
    octet_length(id) <= 256
    and octet_length(agent_id) <= 256
    and octet_length(publisher_id) <= 256
    and octet_length(tenant_id) <= 256
) not valid;
