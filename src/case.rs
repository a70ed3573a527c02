//! Case state: the tables of the case-state contract (`case-schema.md`) as
//! plain data, loaded by `store` and read by `evaluate`. Names follow the
//! contract column for column.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

pub type Instant = DateTime<Utc>;

#[derive(Debug, Clone, Default, Serialize)]
pub struct CaseState {
    pub agencies: Vec<Agency>,
    pub teams: Vec<Team>,
    pub workers: Vec<Worker>,
    pub children: Vec<Child>,
    pub referrals: Vec<Referral>,
    pub assessments: Vec<Assessment>,
    pub strategy_discussions: Vec<StrategyDiscussion>,
    pub conferences: Vec<Conference>,
    pub conference_children: Vec<ConferenceChild>,
    pub invitations: Vec<Invitation>,
    pub cp_plans: Vec<CpPlan>,
    pub core_groups: Vec<CoreGroup>,
    pub visits: Vec<Visit>,
    pub cin_reviews: Vec<CinReview>,
    pub exceptions: Vec<Exception>,
    /// Problems found while reading rows (unparseable values), reported with
    /// the evaluation's own findings.
    #[serde(skip)]
    pub load_findings: Vec<crate::evaluate::Finding>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Agency {
    pub id: String,
    pub name: String,
    pub professional_group: String,
    pub email: Option<String>,
}

pub const PROFESSIONAL_GROUPS: &[&str] = &[
    "childrens_social_care",
    "police",
    "health",
    "midwifery",
    "education",
    "early_years",
    "adult_social_care",
    "adult_health",
    "probation",
    "housing",
    "youth_justice",
    "voluntary",
    "other",
];

pub const CONCERNS: &[&str] = &[
    "physical_abuse",
    "serious_neglect",
    "neglect",
    "emotional_abuse",
    "sexual_abuse",
    "financial_abuse",
    "other",
];

pub const CONFERENCE_KINDS: &[&str] = &["initial", "review", "pre_birth", "transfer_in"];
pub const CONFERENCE_STATUSES: &[&str] =
    &["scheduled", "held", "adjourned", "deferred", "cancelled"];
pub const OUTCOMES: &[&str] = &[
    "plan",
    "no_plan",
    "no_plan_cin",
    "plan_continues",
    "plan_ended",
    "deferred",
];

#[derive(Debug, Clone, Serialize)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub manager_email: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Worker {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub team_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Child {
    pub id: String,
    pub reference: String,
    pub board: Option<String>,
    pub date_of_birth: Option<NaiveDate>,
    pub expected_due_date: Option<NaiveDate>,
    pub allocated_worker_id: Option<String>,
    pub looked_after: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Referral {
    pub id: String,
    pub child_id: String,
    pub received_at: Instant,
    pub by_telephone: bool,
    pub written_confirmation_at: Option<Instant>,
    pub acknowledged_at: Option<Instant>,
    pub next_steps_recorded_at: Option<Instant>,
    pub concern: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    pub id: String,
    pub child_id: String,
    pub kind: String,
    pub started_on: NaiveDate,
    pub completed_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StrategyDiscussion {
    pub id: String,
    pub child_id: String,
    pub held_at: Instant,
    pub s47_initiated: bool,
    pub concern: Option<String>,
    pub child_seen_at: Option<Instant>,
    pub conference_decided_at: Option<Instant>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Conference {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub requested_at: Option<Instant>,
    pub transfer_notified_at: Option<Instant>,
    pub scheduled_at: Option<Instant>,
    pub held_at: Option<Instant>,
    pub reconvenes_id: Option<String>,
    pub chair_email: Option<String>,
    pub chair_liaison_at: Option<Instant>,
    pub chair_overruled: bool,
    pub decision_circulated_at: Option<Instant>,
    pub plan_circulated_at: Option<Instant>,
    pub plan_hard_copy_sent_at: Option<Instant>,
    pub summary_circulated_at: Option<Instant>,
    pub minutes_circulated_at: Option<Instant>,
    pub next_review_on: Option<NaiveDate>,
}

impl Conference {
    /// "Before conference C" counts back from `held_at`, else `scheduled_at`.
    pub fn date(&self) -> Option<Instant> {
        self.held_at.or(self.scheduled_at)
    }

    /// Took place (even if it then adjourned or deferred its decision).
    pub fn took_place(&self) -> Option<Instant> {
        match self.status.as_str() {
            "held" | "adjourned" | "deferred" => self.held_at,
            _ => None,
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.status == "cancelled"
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ConferenceChild {
    pub conference_id: String,
    pub child_id: String,
    pub outcome: Option<String>,
    pub category: Option<String>,
    pub advocacy_offered: Option<bool>,
    pub workbook_received_at: Option<Instant>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Invitation {
    pub conference_id: String,
    pub agency_id: String,
    pub attended: Option<bool>,
    pub report_expected: bool,
    pub report_received_at: Option<Instant>,
    pub report_shared_with_family_at: Option<Instant>,
    pub report_authorised_at: Option<Instant>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CpPlan {
    pub id: String,
    pub child_id: String,
    pub started_on: NaiveDate,
    pub ended_on: Option<NaiveDate>,
    pub end_reason: Option<String>,
    pub category: Option<String>,
    pub visit_interval_working_days: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CoreGroup {
    pub id: String,
    pub child_id: String,
    pub held_at: Instant,
}

#[derive(Debug, Clone, Serialize)]
pub struct Visit {
    pub id: String,
    pub child_id: String,
    pub visited_at: Instant,
    pub seen_alone: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CinReview {
    pub id: String,
    pub child_id: String,
    pub held_on: NaiveDate,
}

#[derive(Debug, Clone, Serialize)]
pub struct Exception {
    pub id: String,
    pub rule: String,
    pub child_id: Option<String>,
    pub conference_id: Option<String>,
    pub agency_id: Option<String>,
    pub reason: String,
    pub agreed_by: String,
    pub recorded_at: Instant,
}
