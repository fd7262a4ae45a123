-- Dispatcher: a provider call is claimed before it is made and its outcome recorded as it
-- arrives, so a crash or an outage repeats at most the calls that were on the wire.
-- depends: dispatcher_0003_mailing_holds

-- A row with no outcome is a claim: the (message, attempt) is being called by `owner`. It may be
-- taken over only once the owner's lease has run out (the owner died or lost the database).
ALTER TABLE dispatcher_attempts ALTER COLUMN outcome DROP NOT NULL;
ALTER TABLE dispatcher_attempts ADD COLUMN IF NOT EXISTS owner uuid;

-- One row per dispatcher process, kept alive by its heartbeat. A process whose lease ran out
-- never renews it: it starts again under a new id, so its old claims stay takeable.
CREATE TABLE IF NOT EXISTS dispatcher_owners (
    owner       uuid PRIMARY KEY,
    alive_until timestamptz NOT NULL
);

-- The provider's Retry-After, shared by every replica: no call starts before `until`.
CREATE TABLE IF NOT EXISTS dispatcher_provider_holds (
    bucket text PRIMARY KEY,
    until  timestamptz NOT NULL
);
