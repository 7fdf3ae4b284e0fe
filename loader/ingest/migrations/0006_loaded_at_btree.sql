-- 0006: the event tables' `loaded_at` indexes become b-trees.
-- Every incremental dbt build reads the rows loaded since its high-water mark. A BRIN index
-- finds them only while new rows lie at the end of the table, and they do not: once vacuum
-- has recorded the few hundred free bytes left on each full page, COPY puts new rows in
-- those gaps, all over the table, and every BRIN range matches. Measured at 1 million
-- events: the staging model's read of 17,585 new rows visited 33,323 of 63,787 pages
-- (0.51 s); through a b-tree, 0.10 s. The b-tree costs about 5 bytes an event.

create index agent_events_loaded_at_btree on raw.agent_events (loaded_at);
drop index raw.agent_events_loaded_at;
alter index raw.agent_events_loaded_at_btree rename to agent_events_loaded_at;

create index marketplace_events_loaded_at_btree on raw.marketplace_events (loaded_at);
drop index raw.marketplace_events_loaded_at;
alter index raw.marketplace_events_loaded_at_btree rename to marketplace_events_loaded_at;
