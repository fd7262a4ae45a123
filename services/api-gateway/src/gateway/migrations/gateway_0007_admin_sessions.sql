-- The admin's server-side sessions (gateway.admin.session_store). The cookie holds a random id,
-- signed; the row holds what the login proved (the ID token's claims, kept so that the role is
-- worked out again from them with the current settings on every request) and whether the
-- session still stands: logout deletes the row, "log out everywhere" revokes every row of a
-- subject, so the same cookie replayed anywhere is refused at once. Only a hash of the id is
-- stored: a read of this table gives no usable session.
-- depends: gateway_0006_idempotency

CREATE TABLE IF NOT EXISTS gateway_admin_sessions (
    sid_hash   bytea       PRIMARY KEY,
    kind       text        NOT NULL CHECK (kind IN ('oidc', 'dev')),
    subject    text        NOT NULL,
    claims     jsonb       NOT NULL,
    id_token   text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
-- Revoking a subject's sessions, and the sessions page grouped by subject.
CREATE INDEX IF NOT EXISTS gateway_admin_sessions_subject ON gateway_admin_sessions (subject);
-- Expired rows are deleted at each login.
CREATE INDEX IF NOT EXISTS gateway_admin_sessions_expires_at
    ON gateway_admin_sessions (expires_at);
