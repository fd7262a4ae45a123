-- Reporter: per-mailing counters and one row per message, projected from message events.
-- depends: events_0001_event_store

-- One row per mailing the reporter has heard of. Counters move in the same transaction as the
-- message rows they count, so they always equal a GROUP BY over reporter_messages. Every batch
-- locks the rows of its mailings first (in mailing_id order): that serialises the writers of one
-- mailing's messages, which is what keeps "read old states, write new ones, add the
-- difference" exact when several reporter replicas consume at once.
CREATE TABLE IF NOT EXISTS reporter_mailings (
    mailing_id           bigint      PRIMARY KEY,
    clients_count        bigint      NOT NULL DEFAULT 0,
    created_messages     bigint      NOT NULL DEFAULT 0,
    scheduled_messages   bigint      NOT NULL DEFAULT 0,
    delivered_messages   bigint      NOT NULL DEFAULT 0,
    undelivered_messages bigint      NOT NULL DEFAULT 0,
    cancelled_messages   bigint      NOT NULL DEFAULT 0,
    attempts_total       bigint      NOT NULL DEFAULT 0,
    paused               boolean     NOT NULL DEFAULT false,
    cancelled_at         timestamptz,
    datetime_start       timestamptz,
    datetime_end         timestamptz,
    first_sent_at        timestamptz,
    last_sent_at         timestamptz,
    -- Set when scheduled_messages reaches 0 with messages present, cleared if it rises again.
    completed_at         timestamptz,
    -- Guards that let mailing events arrive in any order: the newest word on each field wins.
    state_updated_at     timestamptz,
    paused_changed_at    timestamptz,
    -- A deleted mailing stays as a tombstone so that late message events cannot revive it.
    deleted_at           timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Rows are updated a few times each (attempts, then a final status); the free space lets
-- updates that leave the indexed columns alone stay on the same page (HOT).
CREATE TABLE IF NOT EXISTS reporter_messages (
    message_id    bigint      PRIMARY KEY,
    mailing_id    bigint      NOT NULL,
    -- Unknown while only a dispatch event has been seen (events out of order).
    client_id     bigint,
    status        char(2)     NOT NULL CHECK (status IN ('SC', 'DL', 'ND', 'CA')),
    datetime_send timestamptz,
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 85);

CREATE INDEX IF NOT EXISTS reporter_messages_by_mailing
    ON reporter_messages (mailing_id, message_id DESC);
CREATE INDEX IF NOT EXISTS reporter_messages_by_mailing_status
    ON reporter_messages (mailing_id, status, message_id DESC);

-- Messages withdrawn before the start. They count nowhere; they are remembered so that a
-- messages.scheduled arriving after its withdrawal cannot bring the message back, with their
-- last known state in case a final status (which outranks a withdrawal) arrives after all.
CREATE TABLE IF NOT EXISTS reporter_withdrawn_messages (
    message_id    bigint      PRIMARY KEY,
    mailing_id    bigint      NOT NULL,
    client_id     bigint,
    datetime_send timestamptz,
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text,
    withdrawn_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS reporter_withdrawn_messages_by_mailing
    ON reporter_withdrawn_messages (mailing_id);
