-- 0004: privacy settings belong to the warehouse, not to one command line.
-- One row at most: set by `agent-loader init --tokenize-users/--redact` (or by the first
-- load that asks for protection), then applied by every load. The key itself is never
-- stored: only a fingerprint (an HMAC of a fixed text under the key), so a load with a
-- different key is refused instead of mixing tokens of two keys.

create table raw.privacy_settings (
    singleton boolean primary key default true check (singleton),
    tokenize_users boolean not null,
    key_fingerprint text,
    redact text not null check (redact in ('none', 'mask', 'drop')),
    set_at timestamptz not null,
    check (tokenize_users = (key_fingerprint is not null))
);

alter table raw.load_batches add column key_fingerprint text;
