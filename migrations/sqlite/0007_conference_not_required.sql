-- A section 47 enquiry that concluded no initial conference is required
-- (the census's ICPCnotRequired): the conference's timeliness is void, with
-- that reason, rather than overdue. Nullable, as every column added to the
-- contract; NULL reads as false.
ALTER TABLE strategy_discussions ADD COLUMN conference_not_required INTEGER;
