-- Nullable columns added to the case-state contract after its first version.
-- cpwatch reads a database without them (an authority's own tables or views)
-- as if every value were NULL.
ALTER TABLE strategy_discussions ADD COLUMN record_circulated_at TEXT;
ALTER TABLE conferences ADD COLUMN chair_concern INTEGER;
ALTER TABLE conferences ADD COLUMN chair_escalated_at TEXT;
ALTER TABLE conference_children ADD COLUMN dissent_recorded INTEGER;
