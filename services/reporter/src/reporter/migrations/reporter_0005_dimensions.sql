-- Statistics by dimension (reporter/breakdown.py): each message remembers its client's values
-- when it was scheduled and its first due time; two aggregates count them per mailing, moved
-- in the same transaction as the message rows, so /stats reads them without scanning messages.
-- Messages projected before this migration have no values (they count as unknown) and no
-- first due time (they are in no latency bucket).
-- depends: reporter_0004_event_times reporter_0004_segments

ALTER TABLE reporter_messages
    ADD COLUMN IF NOT EXISTS operator_code text,
    ADD COLUMN IF NOT EXISTS tag text,
    ADD COLUMN IF NOT EXISTS time_zone text,
    ADD COLUMN IF NOT EXISTS first_due_at timestamptz;
ALTER TABLE reporter_withdrawn_messages
    ADD COLUMN IF NOT EXISTS operator_code text,
    ADD COLUMN IF NOT EXISTS tag text,
    ADD COLUMN IF NOT EXISTS time_zone text,
    ADD COLUMN IF NOT EXISTS first_due_at timestamptz;

-- Messages of each mailing by status, per value of each dimension ('unknown', value '': the
-- client's values were not recorded; tag '': no tag). Rows that fall to all zeros are deleted,
-- so a rebuild from the events, whatever its batches, finds the same rows.
CREATE TABLE IF NOT EXISTS reporter_mailing_dimensions (
    mailing_id  bigint NOT NULL,
    dimension   text   NOT NULL
        CHECK (dimension IN ('operator_code', 'tag', 'time_zone', 'unknown')),
    value       text   NOT NULL,
    scheduled   bigint NOT NULL DEFAULT 0,
    delivered   bigint NOT NULL DEFAULT 0,
    undelivered bigint NOT NULL DEFAULT 0,
    cancelled   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (mailing_id, dimension, value)
) WITH (fillfactor = 85);

-- Settled messages (DL, ND) of each mailing by delivery latency bucket (fixed, log-spaced:
-- reporter.breakdown.latency_bucket). Zero rows are deleted, as above.
CREATE TABLE IF NOT EXISTS reporter_mailing_latency (
    mailing_id bigint   NOT NULL,
    bucket     smallint NOT NULL,
    messages   bigint   NOT NULL,
    PRIMARY KEY (mailing_id, bucket)
) WITH (fillfactor = 85);

-- Messages already projected count as unknown (nothing on a new database): a batch that later
-- moves one of them takes it out of this row, which must hold it. They have no first due time,
-- so they never enter the latency histogram.
INSERT INTO reporter_mailing_dimensions
    (mailing_id, dimension, value, scheduled, delivered, undelivered, cancelled)
SELECT mailing_id, 'unknown', '',
       count(*) FILTER (WHERE status = 'SC'), count(*) FILTER (WHERE status = 'DL'),
       count(*) FILTER (WHERE status = 'ND'), count(*) FILTER (WHERE status = 'CA')
  FROM reporter_messages
 WHERE operator_code IS NULL
 GROUP BY mailing_id
ON CONFLICT DO NOTHING;
