-- Dispatcher: every provider call it made, so a redelivered due event never repeats one.
-- depends: events_0001_event_store

CREATE TABLE IF NOT EXISTS dispatcher_attempts (
    message_id bigint      NOT NULL,
    attempt    integer     NOT NULL,
    -- delivered | retryable | rejected
    outcome    text        NOT NULL,
    status     integer,
    error      text,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, attempt)
);
