-- SMS segments each message of a mailing takes (its text's, sms_events.segments), set from the
-- mailing's events: segments sent are delivered messages times this, per mailing and, through
-- the quarter-hour aggregates, per day. NULL for mailings whose events were projected before
-- this column: their segments are not counted.
-- depends: reporter_0003_aggregates

ALTER TABLE reporter_mailings ADD COLUMN IF NOT EXISTS segments integer;
