-- A withdrawn message keeps the event time it was first recorded at, so that a final status
-- bringing it back restores its created_at: message times come from the events, never from the
-- projection's clock (sms-replay rebuilds them identically).
-- depends: reporter_0003_aggregates

ALTER TABLE reporter_withdrawn_messages ADD COLUMN IF NOT EXISTS created_at timestamptz;
