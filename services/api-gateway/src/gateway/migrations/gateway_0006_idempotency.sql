-- The first answer to each Idempotency-Key (gateway.idempotency): a POST retried with the same
-- key and body gets it again instead of being carried out twice. A command writes its row in
-- its own transaction, with its read-model rows and its events, so either all of them commit or
-- none does. Keys belong to a caller (key_owner: the API key's name, or the inbound provider),
-- so two callers choosing the same key neither collide nor read each other's answers.
-- depends: gateway_0005_opt_outs

CREATE TABLE IF NOT EXISTS gateway_idempotency (
    key_owner    text        NOT NULL,
    idem_key     text        NOT NULL CHECK (char_length(idem_key) BETWEEN 1 AND 255),
    request_hash bytea       NOT NULL,
    method       text        NOT NULL,
    path         text        NOT NULL,
    status       integer     NOT NULL,
    headers      jsonb       NOT NULL,
    body         bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_owner, idem_key)
);
-- Expiry deletes the oldest rows in small batches (IDEMPOTENCY_TTL_H).
CREATE INDEX IF NOT EXISTS gateway_idempotency_created_at ON gateway_idempotency (created_at);
