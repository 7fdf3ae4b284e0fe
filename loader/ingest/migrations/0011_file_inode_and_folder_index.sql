-- 0011: a cron `load` over a landing folder skips its already-loaded files with one query
-- per run, not one per file. The ledger keeps each loaded file's inode, device and
-- inode-change time (ctime) beside its path, size and mtime: a file replaced under the same
-- name (a rename over it, a copy that keeps the mtime, even on a reused inode) differs in
-- one of them, so it is checksummed and its content decides. The index serves the run's
-- one query: a range of paths in byte order per folder loaded.

alter table raw.load_batches
add column inode bigint,
add column device bigint,
add column changed_ns bigint;

comment on column raw.load_batches.inode is
'The loaded file''s inode number (as a signed 64-bit value), to skip it while unchanged.';
comment on column raw.load_batches.device is
'The device number of the loaded file''s file system (as a signed 64-bit value).';
comment on column raw.load_batches.changed_ns is
'The loaded file''s inode-change time (ctime) in nanoseconds since the epoch.';

create index load_batches_loaded_path_bytewise
on raw.load_batches (path collate "C") where status = 'loaded';
