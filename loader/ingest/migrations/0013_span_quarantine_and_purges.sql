-- 0013: a quarantined span has a place of its own, and purges count spans.
--
-- One line of an OTLP file (an ExportTraceServiceRequest) holds many spans, each a record
-- of its own: a quarantined span keeps its line as `position` and its number among the
-- line's spans (1-based) as `span_index`; every other quarantined record has none. The
-- unique key over (batch_id, position) becomes one over the three, a record without a
-- span_index standing alone on its line as before (`nulls not distinct`, PostgreSQL 15+:
-- columns only, no expression, so every index row stays bounded by the column types).

alter table raw.quarantine
    add column span_index integer check (span_index >= 1),
    drop constraint quarantine_batch_id_position_key;

create unique index quarantine_batch_position_span
    on raw.quarantine (batch_id, position, span_index) nulls not distinct;

-- A retention purge or an erasure also deletes spans (raw.spans); the record counts them.
alter table raw.purges
    add column spans bigint not null default 0;
