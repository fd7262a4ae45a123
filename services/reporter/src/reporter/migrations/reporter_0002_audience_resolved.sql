-- When the scheduler last resolved the mailing's audience (lets the gateway tell "no recipients
-- yet" from "nothing left to send").
-- depends: reporter_0001_statistics

ALTER TABLE reporter_mailings ADD COLUMN IF NOT EXISTS resolved_at timestamptz;
