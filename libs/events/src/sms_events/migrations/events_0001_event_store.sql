-- Event store, outbox checkpoints and consumer tracking.
-- depends:

CREATE TABLE IF NOT EXISTS events (
    global_position bigserial PRIMARY KEY,
    -- Readers order by (transaction_id, global_position) and only read below the oldest
    -- transaction still in flight, so an event committed late is never skipped (see store.py).
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid        NOT NULL UNIQUE,
    stream_id       text        NOT NULL,
    stream_version  integer     NOT NULL CHECK (stream_version > 0),
    type            text        NOT NULL,
    schema_version  integer     NOT NULL DEFAULT 1,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (stream_id, stream_version)
);

CREATE INDEX IF NOT EXISTS events_commit_order ON events (transaction_id, global_position);

-- One wake-up per writing statement (not per row): notifications are delivered at commit, so
-- the relay never wakes for a rolled-back transaction, and duplicates within one transaction fold.
CREATE OR REPLACE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sms_events_appended', '');
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS events_notify ON events;
CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();

-- Where each reader of the whole store (the outbox relay, projections) has got to.
CREATE TABLE IF NOT EXISTS event_checkpoints (
    reader          text PRIMARY KEY,
    transaction_id  bigint NOT NULL DEFAULT 0,
    global_position bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Event ids each consumer has handled, written in the same transaction as its projection.
CREATE TABLE IF NOT EXISTS processed_events (
    consumer     text NOT NULL,
    event_id     uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
