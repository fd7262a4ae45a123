-- Follow-up mailings: their audience is the recipients of source_mailing_id whose messages are
-- in source_states (the scheduler's names of the requested final statuses), resolved in the
-- same chunks as any audience; NULL for an ordinary mailing.
-- depends: scheduler_0003_resolution_jobs

ALTER TABLE scheduler_mailings ADD COLUMN IF NOT EXISTS source_mailing_id bigint;
ALTER TABLE scheduler_mailings ADD COLUMN IF NOT EXISTS source_states text[];
