-- Dispatcher: the suppression list as the dispatcher sees it, so that a phone that opted out
-- after its messages were handed over gets no call (opt_outs.py).
-- depends: dispatcher_0005_send_rate

-- One row per phone ever opted out, at the newest version applied: a removal keeps its row with
-- opted_out = false, so that an older opt-out arriving late (another replica, a redelivery) finds
-- a newer version and cannot bring the phone back on the list.
CREATE TABLE IF NOT EXISTS dispatcher_opt_outs (
    phone      text    PRIMARY KEY,
    opted_out  boolean NOT NULL,
    version    integer NOT NULL  -- the opt_out-<phone> stream's sequence at that event
);
