-- Gateway read model: the current state of every client, one row per client-<id> stream.
-- depends: events_0001_event_store

-- Written in the same transaction as the client's events, so `version` is always the client's
-- last version (an event's on client-<id>, or its item's in an import's clients.imported batch)
-- and a GET right after a POST sees the client. Ids come from this table's
-- identity sequence and are never reused, so client-<id> streams never collide.
CREATE TABLE IF NOT EXISTS gateway_clients (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    phone         text        NOT NULL CHECK (phone ~ '^7[0-9]{10}$'),
    operator_code text        NOT NULL GENERATED ALWAYS AS (substr(phone, 2, 3)) STORED,
    tag           text        CHECK (tag <> '' AND char_length(tag) <= 20),
    time_zone     text        NOT NULL DEFAULT 'UTC',
    version       integer     NOT NULL CHECK (version > 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT gateway_clients_phone_unique UNIQUE (phone)
);

-- The list is newest first (ORDER BY id DESC, served by the primary key); each filter gets an
-- index that also yields that order, so a filtered page needs no sort. ?phone= uses the
-- unique constraint's index.
CREATE INDEX IF NOT EXISTS gateway_clients_tag_id ON gateway_clients (tag, id DESC);
CREATE INDEX IF NOT EXISTS gateway_clients_operator_code_id
    ON gateway_clients (operator_code, id DESC);
