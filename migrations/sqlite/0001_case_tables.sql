-- The case-state tables of case-schema.md (the contract ETL writes to).
-- Generated from one column list for both dialects; keep them in step.

CREATE TABLE IF NOT EXISTS agencies (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    professional_group TEXT NOT NULL CHECK (professional_group IN ('childrens_social_care', 'police', 'health', 'midwifery', 'education', 'early_years', 'adult_social_care', 'adult_health', 'probation', 'housing', 'youth_justice', 'voluntary', 'other')),
    email TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS agencies_updated_at_idx ON agencies (updated_at);

CREATE TABLE IF NOT EXISTS teams (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    manager_email TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS teams_updated_at_idx ON teams (updated_at);

CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    team_id TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS workers_updated_at_idx ON workers (updated_at);

CREATE TABLE IF NOT EXISTS children (
    id TEXT PRIMARY KEY,
    reference TEXT NOT NULL UNIQUE,
    board TEXT,
    date_of_birth TEXT,
    expected_due_date TEXT,
    allocated_worker_id TEXT,
    looked_after INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS children_updated_at_idx ON children (updated_at);

CREATE TABLE IF NOT EXISTS referrals (
    id TEXT PRIMARY KEY,
    child_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    by_telephone INTEGER NOT NULL DEFAULT 0,
    written_confirmation_at TEXT,
    acknowledged_at TEXT,
    next_steps_recorded_at TEXT,
    concern TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS referrals_child_id_idx ON referrals (child_id);
CREATE INDEX IF NOT EXISTS referrals_updated_at_idx ON referrals (updated_at);

CREATE TABLE IF NOT EXISTS assessments (
    id TEXT PRIMARY KEY,
    child_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('initial', 'core')),
    started_on TEXT NOT NULL,
    completed_on TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS assessments_child_id_idx ON assessments (child_id);
CREATE INDEX IF NOT EXISTS assessments_updated_at_idx ON assessments (updated_at);

CREATE TABLE IF NOT EXISTS strategy_discussions (
    id TEXT PRIMARY KEY,
    child_id TEXT NOT NULL,
    held_at TEXT NOT NULL,
    s47_initiated INTEGER NOT NULL DEFAULT 0,
    concern TEXT,
    child_seen_at TEXT,
    conference_decided_at TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS strategy_discussions_child_id_idx ON strategy_discussions (child_id);
CREATE INDEX IF NOT EXISTS strategy_discussions_updated_at_idx ON strategy_discussions (updated_at);

CREATE TABLE IF NOT EXISTS conferences (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('initial', 'review', 'pre_birth', 'transfer_in')),
    status TEXT NOT NULL CHECK (status IN ('scheduled', 'held', 'adjourned', 'deferred', 'cancelled')),
    requested_at TEXT,
    transfer_notified_at TEXT,
    scheduled_at TEXT,
    held_at TEXT,
    reconvenes_id TEXT,
    chair_email TEXT,
    chair_liaison_at TEXT,
    chair_overruled INTEGER NOT NULL DEFAULT 0,
    decision_circulated_at TEXT,
    plan_circulated_at TEXT,
    plan_hard_copy_sent_at TEXT,
    summary_circulated_at TEXT,
    minutes_circulated_at TEXT,
    next_review_on TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS conferences_updated_at_idx ON conferences (updated_at);

CREATE TABLE IF NOT EXISTS conference_children (
    conference_id TEXT NOT NULL,
    child_id TEXT NOT NULL,
    outcome TEXT,
    category TEXT,
    advocacy_offered INTEGER,
    workbook_received_at TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (conference_id, child_id)
);
CREATE INDEX IF NOT EXISTS conference_children_child_id_idx ON conference_children (child_id);
CREATE INDEX IF NOT EXISTS conference_children_updated_at_idx ON conference_children (updated_at);

CREATE TABLE IF NOT EXISTS invitations (
    conference_id TEXT NOT NULL,
    agency_id TEXT NOT NULL,
    attended INTEGER,
    report_expected INTEGER NOT NULL DEFAULT 1,
    report_received_at TEXT,
    report_shared_with_family_at TEXT,
    report_authorised_at TEXT,
    email TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (conference_id, agency_id)
);
CREATE INDEX IF NOT EXISTS invitations_updated_at_idx ON invitations (updated_at);

CREATE TABLE IF NOT EXISTS cp_plans (
    id TEXT PRIMARY KEY,
    child_id TEXT NOT NULL,
    started_on TEXT NOT NULL,
    ended_on TEXT,
    end_reason TEXT,
    category TEXT,
    visit_interval_working_days INTEGER,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS cp_plans_child_id_idx ON cp_plans (child_id);
CREATE INDEX IF NOT EXISTS cp_plans_updated_at_idx ON cp_plans (updated_at);

CREATE TABLE IF NOT EXISTS core_groups (
    id TEXT PRIMARY KEY,
    child_id TEXT NOT NULL,
    held_at TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS core_groups_child_id_idx ON core_groups (child_id);
CREATE INDEX IF NOT EXISTS core_groups_updated_at_idx ON core_groups (updated_at);

CREATE TABLE IF NOT EXISTS visits (
    id TEXT PRIMARY KEY,
    child_id TEXT NOT NULL,
    visited_at TEXT NOT NULL,
    seen_alone INTEGER,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS visits_child_id_idx ON visits (child_id);
CREATE INDEX IF NOT EXISTS visits_updated_at_idx ON visits (updated_at);

CREATE TABLE IF NOT EXISTS cin_reviews (
    id TEXT PRIMARY KEY,
    child_id TEXT NOT NULL,
    held_on TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS cin_reviews_child_id_idx ON cin_reviews (child_id);
CREATE INDEX IF NOT EXISTS cin_reviews_updated_at_idx ON cin_reviews (updated_at);

CREATE TABLE IF NOT EXISTS exceptions (
    id TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    child_id TEXT,
    conference_id TEXT,
    agency_id TEXT,
    reason TEXT NOT NULL,
    agreed_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS exceptions_updated_at_idx ON exceptions (updated_at);
