-- The audit trail reads who made each command's events from their metadata (metadata.actor):
-- newest first overall, or for one actor, both stopping early on these partial indexes.
-- depends: events_0003_processed_events_pruning

CREATE INDEX IF NOT EXISTS events_audit
    ON events (global_position) WHERE metadata ? 'actor';
CREATE INDEX IF NOT EXISTS events_audit_by_actor
    ON events ((metadata -> 'actor' ->> 'id'), global_position) WHERE metadata ? 'actor';
