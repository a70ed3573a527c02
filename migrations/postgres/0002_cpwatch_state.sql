-- cpwatch's own state (key/value): what the embedded demo database was made from.
CREATE TABLE IF NOT EXISTS cpwatch_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
