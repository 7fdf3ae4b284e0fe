-- 0002: remember each loaded file's modification time, so a rerun can skip a file it has
-- already loaded (same path, size and mtime) without reading it again. A landing directory
-- that keeps months of files then costs a `stat` per file per run, not a full checksum.

alter table raw.load_batches add column modified_ns bigint;

create index load_batches_file_identity
    on raw.load_batches (path, bytes, modified_ns) where status = 'loaded';
