-- cpwatch's case-state contract (docs/case-schema.md) as views over Data to
-- Insight's Standard Safeguarding Dataset (SSD) in PostgreSQL, so the
-- service reads the live SSD with no copy. The mapping is the one
-- `cpwatch import ssd` applies to CSV extracts (docs/import.md); the test
-- suite checks that both give the same obligations.
--
-- Run it with the SSD's own schema first on the search path, as a role that
-- may create a schema:
--
--   cpwatch import ssd-views --ssd-schema ssd --database postgres://…/DB
--
-- or, by hand:
--
--   PGOPTIONS='-c search_path=ssd' psql -v ON_ERROR_STOP=1 -d DB -f contract-views.sql
--
-- then point cpwatch at the views' schema:
--
--   postgres://cpwatch@host/DB?options=-c%20search_path%3Dcpwatch_ssd
--
-- Running it again replaces the views. Agreed exceptions are a real table
-- here (the SSD has none), kept when the views are replaced.

CREATE SCHEMA IF NOT EXISTS cpwatch_ssd;

-- A value as the SSD's extracts hold it: blank or 'NULL' is no value.
CREATE OR REPLACE FUNCTION cpwatch_ssd.txt(v text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN trim(v) = '' OR lower(trim(v)) = 'null' THEN NULL ELSE trim(v) END
$$;

-- A CHAR(1) flag: Y/N (or 1/0, T/F); anything else is no value.
CREATE OR REPLACE FUNCTION cpwatch_ssd.flag(v text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE upper(cpwatch_ssd.txt(v))
        WHEN 'Y' THEN true WHEN 'YES' THEN true WHEN '1' THEN true WHEN 'T' THEN true WHEN 'TRUE' THEN true
        WHEN 'N' THEN false WHEN 'NO' THEN false WHEN '0' THEN false WHEN 'F' THEN false WHEN 'FALSE' THEN false
    END
$$;

-- The SSD's TIMESTAMP columns hold UK local time.
CREATE OR REPLACE FUNCTION cpwatch_ssd.uk(t timestamp) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT t AT TIME ZONE 'Europe/London'
$$;

-- A category of abuse in the contract's words.
CREATE OR REPLACE FUNCTION cpwatch_ssd.category(c text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN w IS NULL THEN NULL
        WHEN w = 'neg' THEN 'neglect'
        WHEN w = 'phy' THEN 'physical_abuse'
        WHEN w = 'emo' THEN 'emotional_abuse'
        WHEN w = 'sab' THEN 'sexual_abuse'
        WHEN w = 'mul' THEN 'multiple'
        WHEN w LIKE '%multiple%' THEN 'multiple'
        WHEN w LIKE '%neglect%' THEN 'neglect'
        WHEN w LIKE '%physical%' THEN 'physical_abuse'
        WHEN w LIKE '%emotional%' THEN 'emotional_abuse'
        WHEN w LIKE '%sexual%' THEN 'sexual_abuse'
        ELSE regexp_replace(w, '\s+', '_', 'g')
    END
    FROM (SELECT lower(cpwatch_ssd.txt(c)) AS w) x
$$;

DROP VIEW IF EXISTS cpwatch_ssd.teams, cpwatch_ssd.workers, cpwatch_ssd.referrals,
    cpwatch_ssd.strategy_discussions, cpwatch_ssd.conference_children,
    cpwatch_ssd.conferences, cpwatch_ssd.cp_plans, cpwatch_ssd.visits,
    cpwatch_ssd.agencies, cpwatch_ssd.assessments, cpwatch_ssd.invitations,
    cpwatch_ssd.core_groups, cpwatch_ssd.cin_reviews, cpwatch_ssd.children;

-- The people the child protection tables name (the SSD holds every person),
-- each allocated to the worker of the open involvement that started last.
CREATE VIEW cpwatch_ssd.children AS
WITH named AS (
    SELECT cpwatch_ssd.txt(cine_person_id) AS person FROM ssd_cin_episodes
        WHERE cine_referral_date IS NOT NULL AND cpwatch_ssd.txt(cine_referral_id) IS NOT NULL
    UNION SELECT cpwatch_ssd.txt(s47e_person_id) FROM ssd_s47_enquiry
        WHERE s47e_s47_start_date IS NOT NULL AND cpwatch_ssd.txt(s47e_s47_enquiry_id) IS NOT NULL
    UNION SELECT cpwatch_ssd.txt(icpc_person_id) FROM ssd_initial_cp_conference
        WHERE icpc_icpc_date IS NOT NULL AND cpwatch_ssd.txt(icpc_icpc_id) IS NOT NULL
    UNION SELECT cpwatch_ssd.txt(cppl_person_id) FROM ssd_cp_plans
        WHERE cppl_cp_plan_start_date IS NOT NULL AND cpwatch_ssd.txt(cppl_cp_plan_id) IS NOT NULL
    UNION SELECT cpwatch_ssd.txt(cppr_person_id) FROM ssd_cp_reviews
        WHERE cppr_cp_review_date IS NOT NULL AND cpwatch_ssd.txt(cppr_cp_review_id) IS NOT NULL
),
allocated AS (
    SELECT DISTINCT ON (cpwatch_ssd.txt(invo_person_id))
        cpwatch_ssd.txt(invo_person_id) AS person,
        cpwatch_ssd.txt(invo_professional_id) AS professional
    FROM ssd_involvements
    WHERE invo_involvement_end_date IS NULL
        AND cpwatch_ssd.txt(invo_involvements_id) IS NOT NULL
        AND cpwatch_ssd.txt(invo_person_id) IS NOT NULL
        AND cpwatch_ssd.txt(invo_professional_id) IS NOT NULL
    ORDER BY cpwatch_ssd.txt(invo_person_id),
        cpwatch_ssd.uk(invo_involvement_start_date) DESC NULLS LAST,
        cpwatch_ssd.txt(invo_involvements_id) COLLATE "C" DESC
)
SELECT cpwatch_ssd.txt(p.pers_person_id) AS id,
    cpwatch_ssd.txt(p.pers_person_id) AS reference,
    NULL::text AS board,
    p.pers_dob::date AS date_of_birth,
    p.pers_expected_dob::date AS expected_due_date,
    a.professional AS allocated_worker_id,
    false AS looked_after,
    now() AS updated_at
FROM ssd_person p
JOIN named n ON n.person = cpwatch_ssd.txt(p.pers_person_id)
LEFT JOIN allocated a ON a.person = cpwatch_ssd.txt(p.pers_person_id);

-- The allocated workers, each in the team of its latest involvement.
CREATE VIEW cpwatch_ssd.workers AS
WITH latest AS (
    SELECT DISTINCT ON (cpwatch_ssd.txt(invo_professional_id))
        cpwatch_ssd.txt(invo_professional_id) AS professional,
        cpwatch_ssd.txt(invo_professional_team) AS team
    FROM ssd_involvements
    WHERE cpwatch_ssd.txt(invo_involvements_id) IS NOT NULL
        AND cpwatch_ssd.txt(invo_person_id) IS NOT NULL
        AND cpwatch_ssd.txt(invo_professional_id) IS NOT NULL
    ORDER BY cpwatch_ssd.txt(invo_professional_id),
        cpwatch_ssd.uk(invo_involvement_start_date) DESC NULLS LAST,
        cpwatch_ssd.txt(invo_involvements_id) COLLATE "C" DESC
)
SELECT w.id,
    coalesce(cpwatch_ssd.txt(pr.prof_professional_name), w.id) AS name,
    NULL::text AS email,
    coalesce(l.team, '') AS team_id,
    now() AS updated_at
FROM (SELECT DISTINCT allocated_worker_id AS id FROM cpwatch_ssd.children
      WHERE allocated_worker_id IS NOT NULL) w
LEFT JOIN latest l ON l.professional = w.id
LEFT JOIN ssd_professionals pr ON cpwatch_ssd.txt(pr.prof_professional_id) = w.id;

CREATE VIEW cpwatch_ssd.teams AS
SELECT DISTINCT team_id AS id, team_id AS name, NULL::text AS manager_email, now() AS updated_at
FROM cpwatch_ssd.workers WHERE team_id <> '';

CREATE VIEW cpwatch_ssd.referrals AS
SELECT cpwatch_ssd.txt(e.cine_referral_id) AS id,
    c.id AS child_id,
    cpwatch_ssd.uk(e.cine_referral_date) AS received_at,
    false AS by_telephone,
    NULL::timestamptz AS written_confirmation_at,
    NULL::timestamptz AS acknowledged_at,
    NULL::timestamptz AS next_steps_recorded_at,
    NULL::text AS concern,
    now() AS updated_at
FROM ssd_cin_episodes e
JOIN cpwatch_ssd.children c ON c.id = cpwatch_ssd.txt(e.cine_person_id)
WHERE e.cine_referral_date IS NOT NULL AND cpwatch_ssd.txt(e.cine_referral_id) IS NOT NULL;

-- Each section 47 enquiry as the strategy discussion that initiated it. No
-- date of the decision is kept: an enquiry not closed with no further action
-- awaits a conference from its start.
CREATE VIEW cpwatch_ssd.strategy_discussions AS
SELECT cpwatch_ssd.txt(s.s47e_s47_enquiry_id) AS id,
    c.id AS child_id,
    cpwatch_ssd.uk(s.s47e_s47_start_date) AS held_at,
    true AS s47_initiated,
    NULL::text AS concern,
    NULL::timestamptz AS child_seen_at,
    CASE WHEN cpwatch_ssd.flag(s.s47e_s47_nfa) IS TRUE THEN NULL
        ELSE cpwatch_ssd.uk(s.s47e_s47_start_date) END AS conference_decided_at,
    NULL::timestamptz AS record_circulated_at,
    coalesce(cpwatch_ssd.flag(s.s47e_s47_nfa), false) AS conference_not_required,
    now() AS updated_at
FROM ssd_s47_enquiry s
JOIN cpwatch_ssd.children c ON c.id = cpwatch_ssd.txt(s.s47e_person_id)
WHERE s.s47e_s47_start_date IS NOT NULL AND cpwatch_ssd.txt(s.s47e_s47_enquiry_id) IS NOT NULL;

-- Held initial conferences (`icpc/` and the SSD's id) and review conferences
-- (`review/` and its id), with the authority's own target dates.
CREATE VIEW cpwatch_ssd.conferences AS
SELECT 'icpc/' || cpwatch_ssd.txt(i.icpc_icpc_id) AS id,
    CASE WHEN cpwatch_ssd.flag(i.icpc_icpc_transfer_in) THEN 'transfer_in'
        WHEN c.date_of_birth IS NOT NULL AND i.icpc_icpc_date::date < c.date_of_birth THEN 'pre_birth'
        WHEN c.date_of_birth IS NULL AND c.expected_due_date IS NOT NULL THEN 'pre_birth'
        ELSE 'initial' END AS kind,
    'held' AS status,
    NULL::timestamptz AS requested_at,
    NULL::timestamptz AS transfer_notified_at,
    cpwatch_ssd.uk(i.icpc_icpc_date) AS scheduled_at,
    cpwatch_ssd.uk(i.icpc_icpc_date) AS held_at,
    NULL::text AS reconvenes_id,
    NULL::text AS chair_email,
    NULL::timestamptz AS chair_liaison_at,
    false AS chair_overruled,
    NULL::timestamptz AS decision_circulated_at,
    NULL::timestamptz AS plan_circulated_at,
    NULL::timestamptz AS plan_hard_copy_sent_at,
    NULL::timestamptz AS summary_circulated_at,
    NULL::timestamptz AS minutes_circulated_at,
    NULL::date AS next_review_on,
    NULL::boolean AS chair_concern,
    NULL::timestamptz AS chair_escalated_at,
    i.icpc_icpc_target_date::date AS target_on,
    now() AS updated_at
FROM ssd_initial_cp_conference i
JOIN cpwatch_ssd.children c ON c.id = cpwatch_ssd.txt(i.icpc_person_id)
WHERE i.icpc_icpc_date IS NOT NULL AND cpwatch_ssd.txt(i.icpc_icpc_id) IS NOT NULL
UNION ALL
SELECT 'review/' || cpwatch_ssd.txt(r.cppr_cp_review_id),
    'review', 'held', NULL, NULL,
    cpwatch_ssd.uk(r.cppr_cp_review_date),
    cpwatch_ssd.uk(r.cppr_cp_review_date),
    NULL, NULL, NULL, false, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    r.cppr_cp_review_due::date,
    now()
FROM ssd_cp_reviews r
JOIN cpwatch_ssd.children c ON c.id = cpwatch_ssd.txt(r.cppr_person_id)
WHERE r.cppr_cp_review_date IS NOT NULL AND cpwatch_ssd.txt(r.cppr_cp_review_id) IS NOT NULL;

CREATE VIEW cpwatch_ssd.conference_children AS
SELECT 'icpc/' || cpwatch_ssd.txt(i.icpc_icpc_id) AS conference_id,
    c.id AS child_id,
    CASE cpwatch_ssd.flag(i.icpc_icpc_outcome_cp_flag) WHEN true THEN 'plan' WHEN false THEN 'no_plan' END AS outcome,
    NULL::text AS category,
    NULL::boolean AS advocacy_offered,
    NULL::timestamptz AS workbook_received_at,
    false AS dissent_recorded,
    now() AS updated_at
FROM ssd_initial_cp_conference i
JOIN cpwatch_ssd.children c ON c.id = cpwatch_ssd.txt(i.icpc_person_id)
WHERE i.icpc_icpc_date IS NOT NULL AND cpwatch_ssd.txt(i.icpc_icpc_id) IS NOT NULL
UNION ALL
SELECT 'review/' || cpwatch_ssd.txt(r.cppr_cp_review_id),
    c.id,
    CASE cpwatch_ssd.flag(r.cppr_cp_review_outcome_continue_cp) WHEN true THEN 'plan_continues' WHEN false THEN 'plan_ended' END,
    NULL, NULL, NULL, false, now()
FROM ssd_cp_reviews r
JOIN cpwatch_ssd.children c ON c.id = cpwatch_ssd.txt(r.cppr_person_id)
WHERE r.cppr_cp_review_date IS NOT NULL AND cpwatch_ssd.txt(r.cppr_cp_review_id) IS NOT NULL;

CREATE VIEW cpwatch_ssd.cp_plans AS
SELECT cpwatch_ssd.txt(p.cppl_cp_plan_id) AS id,
    c.id AS child_id,
    p.cppl_cp_plan_start_date::date AS started_on,
    p.cppl_cp_plan_end_date::date AS ended_on,
    NULL::text AS end_reason,
    cpwatch_ssd.category(coalesce(cpwatch_ssd.txt(p.cppl_cp_plan_latest_category),
        cpwatch_ssd.txt(p.cppl_cp_plan_initial_category))) AS category,
    NULL::integer AS visit_interval_working_days,
    now() AS updated_at
FROM ssd_cp_plans p
JOIN cpwatch_ssd.children c ON c.id = cpwatch_ssd.txt(p.cppl_person_id)
WHERE p.cppl_cp_plan_start_date IS NOT NULL AND cpwatch_ssd.txt(p.cppl_cp_plan_id) IS NOT NULL;

CREATE VIEW cpwatch_ssd.visits AS
SELECT cpwatch_ssd.txt(v.cppv_cp_visit_id) AS id,
    c.id AS child_id,
    cpwatch_ssd.uk(v.cppv_cp_visit_date) AS visited_at,
    cpwatch_ssd.flag(v.cppv_cp_visit_seen_alone) AS seen_alone,
    now() AS updated_at
FROM ssd_cp_visits v
JOIN cpwatch_ssd.children c ON c.id = cpwatch_ssd.txt(v.cppv_person_id)
WHERE v.cppv_cp_visit_date IS NOT NULL AND cpwatch_ssd.txt(v.cppv_cp_visit_id) IS NOT NULL;

-- What the SSD does not hold.
CREATE VIEW cpwatch_ssd.agencies AS
SELECT NULL::text AS id, NULL::text AS name, NULL::text AS professional_group,
    NULL::text AS email, NULL::timestamptz AS updated_at WHERE false;
CREATE VIEW cpwatch_ssd.assessments AS
SELECT NULL::text AS id, NULL::text AS child_id, NULL::text AS kind, NULL::date AS started_on,
    NULL::date AS completed_on, NULL::timestamptz AS updated_at WHERE false;
CREATE VIEW cpwatch_ssd.invitations AS
SELECT NULL::text AS conference_id, NULL::text AS agency_id, NULL::boolean AS attended,
    NULL::boolean AS report_expected, NULL::timestamptz AS report_received_at,
    NULL::timestamptz AS report_shared_with_family_at, NULL::timestamptz AS report_authorised_at,
    NULL::text AS email, NULL::timestamptz AS updated_at WHERE false;
CREATE VIEW cpwatch_ssd.core_groups AS
SELECT NULL::text AS id, NULL::text AS child_id, NULL::timestamptz AS held_at,
    NULL::timestamptz AS updated_at WHERE false;
CREATE VIEW cpwatch_ssd.cin_reviews AS
SELECT NULL::text AS id, NULL::text AS child_id, NULL::date AS held_on,
    NULL::timestamptz AS updated_at WHERE false;

CREATE TABLE IF NOT EXISTS cpwatch_ssd.exceptions (
    id TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    child_id TEXT,
    conference_id TEXT,
    agency_id TEXT,
    reason TEXT NOT NULL,
    agreed_by TEXT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
