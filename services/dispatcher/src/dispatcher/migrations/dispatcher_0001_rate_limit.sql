-- Dispatcher: the send-rate budget shared by every replica, one row per key and time slot.
-- depends: events_0001_event_store

-- Each replica claims tokens from the current slot's row with one atomic upsert (ratelimit.py),
-- so the replicas together never use more than the slot's limit. The rows only matter for the
-- slot they describe, so the table is UNLOGGED (no WAL: a crash empties it, which costs at most
-- one slot of overshoot) and leaves room in each page for HOT updates of the hot row.
CREATE UNLOGGED TABLE IF NOT EXISTS dispatcher_rate_slots (
    bucket     text    NOT NULL,  -- what is limited, e.g. 'sms-provider'
    slot_us    bigint  NOT NULL,  -- slot length in microseconds (replicas must agree on it)
    slot       bigint  NOT NULL,  -- floor(epoch microseconds / slot_us), from the database clock
    used       integer NOT NULL,  -- tokens handed out in this slot
    last_grant integer NOT NULL,  -- tokens the latest upsert handed out (read by its RETURNING)
    PRIMARY KEY (bucket, slot_us, slot)
) WITH (fillfactor = 50);
