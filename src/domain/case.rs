//! Case state: the tables of the case-state contract (`docs/case-schema.md`) as
//! plain data, loaded by `store` and read by `evaluate`. Names follow the
//! contract column for column.

use arcstr::ArcStr;

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
    pub load_findings: Vec<crate::domain::evaluate::Finding>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agency {
    pub id: Text,
    pub name: Text,
    pub professional_group: Text,
    pub email: Option<Text>,
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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Team {
    pub id: Text,
    pub name: Text,
    pub manager_email: Option<Text>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Worker {
    pub id: Text,
    pub name: Text,
    pub email: Option<Text>,
    pub team_id: Text,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Child {
    pub id: Text,
    pub reference: Text,
    pub board: Option<Text>,
    pub date_of_birth: Option<NaiveDate>,
    pub expected_due_date: Option<NaiveDate>,
    pub allocated_worker_id: Option<Text>,
    pub looked_after: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Referral {
    pub id: Text,
    pub child_id: Text,
    pub received_at: Instant,
    pub by_telephone: bool,
    pub written_confirmation_at: Option<Instant>,
    pub acknowledged_at: Option<Instant>,
    pub next_steps_recorded_at: Option<Instant>,
    pub concern: Option<Text>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    pub id: Text,
    pub child_id: Text,
    pub kind: Text,
    pub started_on: NaiveDate,
    pub completed_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrategyDiscussion {
    pub id: Text,
    pub child_id: Text,
    pub held_at: Instant,
    pub s47_initiated: bool,
    pub concern: Option<Text>,
    pub child_seen_at: Option<Instant>,
    pub conference_decided_at: Option<Instant>,
    /// When the record of the discussion was circulated to its parties.
    pub record_circulated_at: Option<Instant>,
    /// The section 47 enquiry concluded that no initial conference is required.
    pub conference_not_required: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Conference {
    pub id: Text,
    pub kind: Text,
    pub status: Text,
    pub requested_at: Option<Instant>,
    pub transfer_notified_at: Option<Instant>,
    pub scheduled_at: Option<Instant>,
    pub held_at: Option<Instant>,
    pub reconvenes_id: Option<Text>,
    pub chair_email: Option<Text>,
    pub chair_liaison_at: Option<Instant>,
    pub chair_overruled: bool,
    pub decision_circulated_at: Option<Instant>,
    pub plan_circulated_at: Option<Instant>,
    pub plan_hard_copy_sent_at: Option<Instant>,
    pub summary_circulated_at: Option<Instant>,
    pub minutes_circulated_at: Option<Instant>,
    pub next_review_on: Option<NaiveDate>,
    /// The chair recorded a belief that the decision places a child at risk.
    pub chair_concern: bool,
    /// When the chair escalated that concern to the senior manager.
    pub chair_escalated_at: Option<Instant>,
    /// The authority's own target date for holding it (its case system's
    /// arithmetic), compared with cpwatch's deadline.
    pub target_on: Option<NaiveDate>,
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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConferenceChild {
    pub conference_id: Text,
    pub child_id: Text,
    pub outcome: Option<Text>,
    pub category: Option<Text>,
    pub advocacy_offered: Option<bool>,
    pub workbook_received_at: Option<Instant>,
    /// A dissent from the decision for this child was recorded.
    pub dissent_recorded: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Invitation {
    pub conference_id: Text,
    pub agency_id: Text,
    pub attended: Option<bool>,
    pub report_expected: bool,
    pub report_received_at: Option<Instant>,
    pub report_shared_with_family_at: Option<Instant>,
    pub report_authorised_at: Option<Instant>,
    pub email: Option<Text>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpPlan {
    pub id: Text,
    pub child_id: Text,
    pub started_on: NaiveDate,
    pub ended_on: Option<NaiveDate>,
    pub end_reason: Option<Text>,
    pub category: Option<Text>,
    pub visit_interval_working_days: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoreGroup {
    pub id: RowId,
    pub child_id: Text,
    pub held_at: Instant,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Visit {
    pub id: RowId,
    pub child_id: Text,
    pub visited_at: Instant,
    pub seen_alone: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CinReview {
    pub id: RowId,
    pub child_id: Text,
    pub held_on: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exception {
    pub id: Text,
    pub rule: Text,
    pub child_id: Option<Text>,
    pub conference_id: Option<Text>,
    pub agency_id: Option<Text>,
    pub reason: Text,
    pub agreed_by: Text,
    pub recorded_at: Instant,
}

/// The id of a row that no other row names (a core group, a visit, a CIN
/// review): read for findings and for writing the row back. A national load
/// reads a million of them, so `store` gathers a table's ids into blocks and
/// each id is a slice of its block: an allocation for some thousands of ids,
/// not one for each.
pub type RowId = arcstr::Substr;

/// Text of the case state. Shared rather than copied: a load gives every
/// mention of the same code or agency one allocation, and each run of rows
/// naming the same child or conference one (see `store`), which keeps
/// national-scale case state small; reads like a `String`. An `ArcStr` keeps
/// its length beside the text, so it is one pointer wide, not two as an
/// `Arc<str>` is: case rows and obligations hold many of them.
#[derive(Clone, Default, Eq, PartialOrd, Ord)]
pub struct Text(ArcStr);

// By the text, as `Borrow<str>` requires: maps keyed by `Text` are looked up by `&str`.
impl std::hash::Hash for Text {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_str().hash(h)
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        // A load shares one allocation along a run of rows naming the same
        // id, so equal texts are mostly one pointer: indexing compares
        // millions of neighbouring rows' ids.
        ArcStr::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared string itself: another holder, without a copy.
    pub fn shared(&self) -> ArcStr {
        self.0.clone()
    }

    /// The shared string, borrowed.
    pub fn name(&self) -> &ArcStr {
        &self.0
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Text {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(ArcStr::from(s))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(ArcStr::from(s))
    }
}

impl From<Text> for String {
    fn from(t: Text) -> Self {
        t.0.to_string()
    }
}

impl From<&Text> for String {
    fn from(t: &Text) -> Self {
        t.0.to_string()
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
