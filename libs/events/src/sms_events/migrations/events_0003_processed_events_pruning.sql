-- Consumers forget handled event ids past a retention window; this index lets the pruning
-- delete find them without reading the whole table.
-- depends: events_0002_announced_appenders

CREATE INDEX IF NOT EXISTS processed_events_age ON processed_events (consumer, processed_at);
