-- The suppression list (opt-outs): a phone on it gets no message. A removed phone keeps its row
-- (opted_out false) so that its version goes on when it opts out again: every change is one
-- version, the version of its event.
-- depends: gateway_0004_follow_ups

CREATE TABLE IF NOT EXISTS gateway_opt_outs (
    phone        text        PRIMARY KEY,
    opted_out    boolean     NOT NULL,
    reason       text,
    source       text        NOT NULL,
    opted_out_at timestamptz NOT NULL,
    version      integer     NOT NULL,
    updated_at   timestamptz NOT NULL
);
-- The list, newest first (GET /api/v1/opt-outs/).
CREATE INDEX IF NOT EXISTS gateway_opt_outs_newest
    ON gateway_opt_outs (opted_out_at DESC, phone) WHERE opted_out;
