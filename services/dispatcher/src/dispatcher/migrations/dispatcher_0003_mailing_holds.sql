-- Mailings the dispatcher must not send for right now (paused) or ever again (cancelled,
-- deleted): due messages already queued for them are handed back instead of sent.
-- depends: dispatcher_0002_attempts

CREATE TABLE IF NOT EXISTS dispatcher_mailing_holds (
    mailing_id bigint PRIMARY KEY,
    paused     boolean     NOT NULL DEFAULT false,
    stopped    boolean     NOT NULL DEFAULT false,
    -- The time of the pause/resume event last applied: the newest word wins.
    changed_at timestamptz NOT NULL
);
