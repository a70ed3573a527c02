-- Snoozes: reminders about a child, a conference, an agency's report or one
-- obligation stopped until an expiry, with the reason and who agreed it.
-- Rows are never deleted: ended and expired snoozes are the history.
-- Instants are RFC 3339 UTC text in both databases.
CREATE TABLE IF NOT EXISTS cpwatch_snoozes (
    id TEXT PRIMARY KEY,
    scope TEXT NOT NULL CHECK (scope IN ('child', 'conference', 'report', 'obligation')),
    target TEXT NOT NULL,
    agency TEXT,
    reason TEXT NOT NULL,
    agreed_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    ended_at TEXT,
    ended_by TEXT
);
CREATE INDEX IF NOT EXISTS cpwatch_snoozes_expires_idx ON cpwatch_snoozes (expires_at);

-- The notification log by obligation and recipient: which escalated duties
-- have been told resolved, read at every tick, in a log that only grows.
CREATE INDEX IF NOT EXISTS cpwatch_notifications_obligation_idx
    ON cpwatch_notifications (obligation_key, recipient, stage);
