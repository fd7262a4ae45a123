-- Client imports run as background jobs (POST /api/v1/clients/import with Prefer:
-- respond-async, and every admin upload): one row per job, its progress written about once a
-- second by the gateway process running it, readable by every replica.
-- depends: gateway_0002_mailings

-- state: one of gateway.import_jobs.JobState (running, succeeded, failed). errors holds at most
-- the importer's first MAX_ERRORS rejected lines, so a row stays small whatever the file.
CREATE TABLE IF NOT EXISTS gateway_import_jobs (
    id           uuid        PRIMARY KEY,
    state        text        NOT NULL,
    format       text        NOT NULL,
    bytes_total  bigint      NOT NULL CHECK (bytes_total >= 0),
    bytes_read   bigint      NOT NULL DEFAULT 0,
    rows_read    bigint      NOT NULL DEFAULT 0,
    created      bigint      NOT NULL DEFAULT 0,
    updated      bigint      NOT NULL DEFAULT 0,
    unchanged    bigint      NOT NULL DEFAULT 0,
    rejected     bigint      NOT NULL DEFAULT 0,
    errors       jsonb       NOT NULL DEFAULT '[]',
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
