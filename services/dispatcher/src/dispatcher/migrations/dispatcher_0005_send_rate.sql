-- Dispatcher: the adaptive send rate every replica shares (send_rate.py has the rule).
-- depends: dispatcher_0004_claims

CREATE TABLE IF NOT EXISTS dispatcher_send_rate (
    bucket     text PRIMARY KEY,               -- what is limited, e.g. 'sms-provider'
    rate       double precision,               -- messages per second; NULL: free (no limit)
    changed_at timestamptz NOT NULL DEFAULT now(),
    cut_at     timestamptz                     -- the latest cut (one per cut gap)
);
