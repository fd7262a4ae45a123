-- Scheduler: each message carries the close of the send slot it was timed for, so a message
-- that misses it (backlog, pause, outage) is timed again for the client's next window instead
-- of being handed over late; and who was left out of an audience is remembered, with why.
-- depends: scheduler_0001_schedule

ALTER TABLE scheduler_messages ADD COLUMN IF NOT EXISTS closes_at timestamptz;
UPDATE scheduler_messages m SET closes_at = g.datetime_end
  FROM scheduler_mailings g
 WHERE g.mailing_id = m.mailing_id AND m.closes_at IS NULL;
ALTER TABLE scheduler_messages ALTER COLUMN closes_at SET NOT NULL;

-- Scheduled messages whose slot closed unsent: the timer finds them by this index, oldest first.
CREATE INDEX IF NOT EXISTS scheduler_messages_missed
    ON scheduler_messages (closes_at) WHERE state = 'scheduled';

-- Clients of an audience who got no message because no send moment was left before the end; a
-- later datetime_end brings them in.
CREATE TABLE IF NOT EXISTS scheduler_left_out (
    mailing_id bigint NOT NULL,
    client_id  bigint NOT NULL,
    reason     text   NOT NULL,
    PRIMARY KEY (mailing_id, client_id)
);
