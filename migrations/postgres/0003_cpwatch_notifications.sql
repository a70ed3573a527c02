-- The notification log: every reminder or escalation cpwatch decided to send,
-- recorded before it is sent. Instants are RFC 3339 UTC text in both databases.
CREATE TABLE IF NOT EXISTS cpwatch_notifications (
    id TEXT PRIMARY KEY,
    obligation_key TEXT NOT NULL,
    stage TEXT NOT NULL,
    recipient TEXT NOT NULL,
    occurrence BIGINT NOT NULL,
    board TEXT NOT NULL,
    rule TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'dropped')),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    message_id TEXT,
    last_error TEXT,
    planned_at TEXT NOT NULL,
    sent_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cpwatch_notifications_status_idx ON cpwatch_notifications (status);
