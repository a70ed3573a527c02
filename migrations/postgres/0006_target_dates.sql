-- The authority's own target date for a conference (the census's
-- InitialCPCtarget, the Standard Safeguarding Dataset's target and review
-- due dates): compared with cpwatch's deadline. Nullable, as every column
-- added to the contract.
ALTER TABLE conferences ADD COLUMN IF NOT EXISTS target_on DATE;
