-- Scheduler: its projections of clients and mailings, and one row per message it schedules.
-- depends: events_0001_event_store

CREATE TABLE IF NOT EXISTS scheduler_clients (
    client_id     bigint PRIMARY KEY,
    phone         text    NOT NULL,
    operator_code text    NOT NULL,
    tag           text,
    time_zone     text    NOT NULL,
    version       integer NOT NULL
);
CREATE INDEX IF NOT EXISTS scheduler_clients_operator ON scheduler_clients (operator_code);
CREATE INDEX IF NOT EXISTS scheduler_clients_tag ON scheduler_clients (tag);

-- Deleted clients are remembered (tombstones) so that a late client.updated cannot revive one.
CREATE TABLE IF NOT EXISTS scheduler_deleted_clients (
    client_id bigint PRIMARY KEY
);

CREATE TABLE IF NOT EXISTS scheduler_mailings (
    mailing_id     bigint PRIMARY KEY,
    text           text        NOT NULL,
    datetime_start timestamptz NOT NULL,
    datetime_end   timestamptz NOT NULL,
    window_start   time,
    window_end     time,
    client_filter  text,
    -- active | paused | cancelled | deleted
    status         text        NOT NULL DEFAULT 'active',
    -- Set once the end has passed and every unsent message was settled.
    swept          boolean     NOT NULL DEFAULT false,
    version        integer     NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS scheduler_messages (
    message_id     bigserial PRIMARY KEY,
    mailing_id     bigint      NOT NULL,
    client_id      bigint      NOT NULL,
    due_at         timestamptz NOT NULL,
    -- scheduled | handed_over | delivered | undelivered | cancelled
    state          text        NOT NULL DEFAULT 'scheduled',
    attempts       integer     NOT NULL DEFAULT 0,
    last_error     text,
    handed_over_at timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- One message per recipient, however often resolution runs (crash, redelivery).
    UNIQUE (mailing_id, client_id)
);
CREATE INDEX IF NOT EXISTS scheduler_messages_due
    ON scheduler_messages (mailing_id, due_at) WHERE state = 'scheduled';
CREATE INDEX IF NOT EXISTS scheduler_messages_in_flight
    ON scheduler_messages (handed_over_at) WHERE state = 'handed_over';
CREATE INDEX IF NOT EXISTS scheduler_messages_client ON scheduler_messages (client_id);
