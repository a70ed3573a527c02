-- Nullable columns added to the case-state contract after its first version.
-- cpwatch reads a database without them (an authority's own tables or views)
-- as if every value were NULL.
ALTER TABLE strategy_discussions ADD COLUMN IF NOT EXISTS record_circulated_at TIMESTAMPTZ;
ALTER TABLE conferences ADD COLUMN IF NOT EXISTS chair_concern BOOLEAN;
ALTER TABLE conferences ADD COLUMN IF NOT EXISTS chair_escalated_at TIMESTAMPTZ;
ALTER TABLE conference_children ADD COLUMN IF NOT EXISTS dissent_recorded BOOLEAN;
