-- Gateway read model: the current state of every mailing, one row per mailing-<id> stream.
-- depends: gateway_0001_clients

-- Written in the same transaction as the mailing's events, so `version` always equals the
-- stream's version and a GET right after a POST sees the mailing. Counters are not kept here:
-- the reporter projects them from the message events and the gateway asks it per page.
CREATE TABLE IF NOT EXISTS gateway_mailings (
    id                       bigserial   PRIMARY KEY,
    text                     text        NOT NULL
                                         CHECK (text <> '' AND char_length(text) <= 1000),
    datetime_start           timestamptz NOT NULL,
    datetime_end             timestamptz NOT NULL,
    send_interval_time_start time,
    send_interval_time_end   time,
    client_filter            text        CHECK (client_filter <> ''
                                                AND char_length(client_filter) <= 255),
    paused                   boolean     NOT NULL DEFAULT false,
    cancelled_at             timestamptz,
    version                  integer     NOT NULL CHECK (version > 0),
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT gateway_mailings_end_after_start CHECK (datetime_end > datetime_start),
    -- A send window is both bounds or neither, and never empty (it may cross midnight).
    CONSTRAINT gateway_mailings_whole_window CHECK (
        (send_interval_time_start IS NULL AND send_interval_time_end IS NULL)
        OR (send_interval_time_start IS NOT NULL AND send_interval_time_end IS NOT NULL
            AND send_interval_time_start <> send_interval_time_end)
    )
);

-- The newest-first listing is ORDER BY id DESC LIMIT/OFFSET (ids follow creation, as for
-- clients): the primary key's index serves it by a backward scan, with no sort and no second
-- index to keep up to date on every command.
