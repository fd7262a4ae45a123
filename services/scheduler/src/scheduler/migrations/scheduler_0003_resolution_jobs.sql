-- Scheduler: an audience is resolved in bounded chunks of clients, each in a transaction of its
-- own, with a cursor that a restarted scheduler resumes from; the consumer only asks for it.
-- depends: scheduler_0002_send_slots

CREATE TABLE IF NOT EXISTS scheduler_resolutions (
    mailing_id   bigint PRIMARY KEY,
    -- follow_base | add_missing | left_out (scheduler.domain.ResolutionMode)
    mode         text        NOT NULL,
    -- Clients up to this id are done; NULL: none yet.
    after_client bigint,
    -- The ids of the request that asked for it: the events of every chunk carry them.
    correlation_id text,
    causation_id   text,
    requested_at timestamptz NOT NULL DEFAULT now()
);

-- Stopped mailings whose scheduled messages are still to be cancelled (or deleted), in chunks.
CREATE INDEX IF NOT EXISTS scheduler_mailings_to_settle
    ON scheduler_mailings (mailing_id) WHERE NOT swept AND status IN ('cancelled', 'deleted');
