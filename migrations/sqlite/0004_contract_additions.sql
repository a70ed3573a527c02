-- Nullable columns added to the case-state contract after its first version.
-- cpwatch reads a database without them (an authority's own tables or views)
-- as if every value were NULL.
ALTER TABLE strategy_discussions ADD COLUMN record_circulated_at TEXT;
ALTER TABLE conferences ADD COLUMN chair_concern INTEGER;
ALTER TABLE conferences ADD COLUMN chair_escalated_at TEXT;
ALTER TABLE conference_children ADD COLUMN dissent_recorded INTEGER;
-- What one child's explain looks up: the conferences that reconvene one,
-- and the exceptions about a child or a conference.
CREATE INDEX IF NOT EXISTS conferences_reconvenes_id_idx ON conferences (reconvenes_id);
CREATE INDEX IF NOT EXISTS exceptions_child_id_idx ON exceptions (child_id);
CREATE INDEX IF NOT EXISTS exceptions_conference_id_idx ON exceptions (conference_id);
