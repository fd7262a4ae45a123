-- The suppression list as the scheduler sees it: the newest version of each phone's opt-out
-- (a removal keeps its row, opted_out false, so an older event arriving late changes nothing).
-- Resolution leaves opted-out phones out; an opt-out withdraws or cancels their unsent messages.
-- depends: scheduler_0004_follow_ups

CREATE TABLE IF NOT EXISTS scheduler_opt_outs (
    phone     text    PRIMARY KEY,
    opted_out boolean NOT NULL,
    version   integer NOT NULL
);
-- An opt-out finds the clients with its phone.
CREATE INDEX IF NOT EXISTS scheduler_clients_phone ON scheduler_clients (phone);
