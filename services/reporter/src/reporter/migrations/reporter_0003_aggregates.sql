-- Statistics aggregates, kept by the projection in the same transaction as the counters (see
-- reporter/stats.py), so that /stats reads a few small rows whatever the number of messages;
-- the client count; and the record of the daily statistics emails.
-- depends: reporter_0002_audience_resolved

-- When a CA message was cancelled (the cancels a day saw are counted by this time).
ALTER TABLE reporter_messages ADD COLUMN IF NOT EXISTS cancelled_at timestamptz;

-- The failure reason as the statistics group it: the same rule as reporter.stats.reason
-- (a test holds the two equal).
CREATE OR REPLACE FUNCTION reporter_reason(error text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(
        nullif(rtrim(left(btrim(regexp_replace(coalesce(error, ''), '[ \t\n\r\f\v]+', ' ', 'g'),
                                ' '), 100), ' '), ''),
        'unknown')
$$;

-- (a) Sends per minute of each mailing: deliveries by sent_at, final failures by failed_at.
CREATE TABLE IF NOT EXISTS reporter_mailing_minutes (
    mailing_id bigint      NOT NULL,
    minute     timestamptz NOT NULL,
    delivered  bigint      NOT NULL DEFAULT 0,
    failed     bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (mailing_id, minute)
);

-- What each mailing did per quarter hour (UTC): the daily report sums the quarters of a local
-- day, which is exact in every time zone and across DST changes.
CREATE TABLE IF NOT EXISTS reporter_mailing_quarters (
    quarter    timestamptz NOT NULL,
    mailing_id bigint      NOT NULL,
    delivered  bigint      NOT NULL DEFAULT 0,
    failed     bigint      NOT NULL DEFAULT 0,
    cancelled  bigint      NOT NULL DEFAULT 0,
    attempts   bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (quarter, mailing_id)
) WITH (fillfactor = 85);
CREATE INDEX IF NOT EXISTS reporter_mailing_quarters_by_mailing
    ON reporter_mailing_quarters (mailing_id);

-- (b) The same for all mailings together: sends per hour of the last 24 hours, day totals.
CREATE TABLE IF NOT EXISTS reporter_quarters (
    quarter   timestamptz PRIMARY KEY,
    delivered bigint      NOT NULL DEFAULT 0,
    failed    bigint      NOT NULL DEFAULT 0,
    cancelled bigint      NOT NULL DEFAULT 0,
    attempts  bigint      NOT NULL DEFAULT 0
) WITH (fillfactor = 70);

-- (c) Failures of each mailing by reason: failed attempts reported, and messages whose final
-- status is ND for that reason.
CREATE TABLE IF NOT EXISTS reporter_mailing_failures (
    mailing_id bigint NOT NULL,
    reason     text   NOT NULL,
    attempts   bigint NOT NULL DEFAULT 0,
    final      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (mailing_id, reason)
);

-- (d), (e) Global totals: messages by status (SC, DL, ND, CA) and the number of clients.
CREATE TABLE IF NOT EXISTS reporter_totals (
    name  text   PRIMARY KEY,
    value bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 50);

-- Every client the reporter has heard of. A row makes client.created/client.deleted
-- idempotent in any order: created counts once, deleted only uncounts a counted client, and a
-- deletion seen first leaves a tombstone (created = false) that a late creation cannot revive.
CREATE TABLE IF NOT EXISTS reporter_clients (
    client_id  bigint      PRIMARY KEY,
    created    boolean     NOT NULL,
    deleted_at timestamptz
);

-- One row per local day (in REPORT_TZ) whose statistics email was claimed: see
-- reporter/daily_report.py for how the claim makes it one email per day.
CREATE TABLE IF NOT EXISTS reporter_daily_reports (
    day           date        PRIMARY KEY,
    state         text        NOT NULL CHECK (state IN ('sending', 'failed', 'sent')),
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text,
    claimed_by    text,
    -- While sending: the lease; after a failure: not retried before this time (backoff).
    claimed_until timestamptz,
    sent_at       timestamptz,
    message_id    text,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Backfill from what the projection already holds (nothing on a new database). Cancellations
-- before this migration have no time and are not in any day; attempts have no history.
INSERT INTO reporter_mailing_minutes (mailing_id, minute, delivered, failed)
SELECT mailing_id, date_trunc('minute', datetime_send AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
       count(*) FILTER (WHERE status = 'DL'), count(*) FILTER (WHERE status = 'ND')
  FROM reporter_messages
 WHERE status IN ('DL', 'ND') AND datetime_send IS NOT NULL
 GROUP BY 1, 2
ON CONFLICT DO NOTHING;

INSERT INTO reporter_mailing_quarters (quarter, mailing_id, delivered, failed)
SELECT date_bin('15 minutes', datetime_send, timestamptz '2000-01-01 00:00:00+00'), mailing_id,
       count(*) FILTER (WHERE status = 'DL'), count(*) FILTER (WHERE status = 'ND')
  FROM reporter_messages
 WHERE status IN ('DL', 'ND') AND datetime_send IS NOT NULL
 GROUP BY 1, 2
ON CONFLICT DO NOTHING;

INSERT INTO reporter_quarters (quarter, delivered, failed)
SELECT quarter, sum(delivered), sum(failed) FROM reporter_mailing_quarters GROUP BY quarter
ON CONFLICT DO NOTHING;

INSERT INTO reporter_mailing_failures (mailing_id, reason, final)
SELECT mailing_id, reporter_reason(last_error), count(*)
  FROM reporter_messages WHERE status = 'ND' GROUP BY 1, 2
ON CONFLICT DO NOTHING;

-- Clients created before the reporter listened to client events, from the event store.
-- (Events published between this migration and the queue binding, at the first start with
-- this version, would be missed: the window is a process start.)
INSERT INTO reporter_clients (client_id, created, deleted_at)
SELECT (data->>'client_id')::bigint, bool_or(type = 'client.created'),
       min(recorded_at) FILTER (WHERE type = 'client.deleted')
  FROM events
 WHERE type IN ('client.created', 'client.deleted')
 GROUP BY 1
ON CONFLICT DO NOTHING;

INSERT INTO reporter_totals (name, value)
SELECT 'SC', coalesce(sum(scheduled_messages), 0) FROM reporter_mailings
UNION ALL SELECT 'DL', coalesce(sum(delivered_messages), 0) FROM reporter_mailings
UNION ALL SELECT 'ND', coalesce(sum(undelivered_messages), 0) FROM reporter_mailings
UNION ALL SELECT 'CA', coalesce(sum(cancelled_messages), 0) FROM reporter_mailings
UNION ALL SELECT 'clients', count(*) FROM reporter_clients
                            WHERE created AND deleted_at IS NULL
ON CONFLICT DO NOTHING;
