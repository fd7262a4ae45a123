-- Follow-up mailings (POST /api/v1/mailings/{id}/resend/): the mailing whose recipients they
-- send to again, and which final statuses of its messages chose them. No foreign key: the
-- original may only be deleted before its start, when it has no final message to resend.
-- depends: gateway_0003_client_groups

ALTER TABLE gateway_mailings ADD COLUMN IF NOT EXISTS source_mailing_id bigint;
ALTER TABLE gateway_mailings ADD COLUMN IF NOT EXISTS source_statuses text[];
CREATE INDEX IF NOT EXISTS gateway_mailings_follow_ups
    ON gateway_mailings (source_mailing_id, id) WHERE source_mailing_id IS NOT NULL;
