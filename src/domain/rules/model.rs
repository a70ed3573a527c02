//! The vocabulary rule files are written in, and rules as evaluation reads
//! them once resolved: boards, their versions, and the errors loading reports.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arcstr::ArcStr;
use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::Deserialize;

use crate::domain::calendar::Offset;

// ---------------------------------------------------------------- vocabulary

/// What one obligation of a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    Referral,
    StrategyDiscussion,
    Conference,
    ChildConference,
    Invitation,
    Plan,
}

impl Subject {
    pub const ALL: &'static [(&'static str, Subject)] = &[
        ("referral", Subject::Referral),
        ("strategy_discussion", Subject::StrategyDiscussion),
        ("conference", Subject::Conference),
        ("child_conference", Subject::ChildConference),
        ("invitation", Subject::Invitation),
        ("plan", Subject::Plan),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, s)| *s == self)
            .map_or("?", |(n, _)| n)
    }
}

/// Declares the case events: the one vocabulary the rule files name and the
/// evaluation resolves, each with the subjects it has a meaning for.
macro_rules! events {
    ($($variant:ident = $name:literal : [$($subject:ident),*]),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Event {
            $($variant),*
        }

        impl Event {
            pub const ALL: &'static [Event] = &[$(Event::$variant),*];

            pub fn name(self) -> &'static str {
                match self {
                    $(Event::$variant => $name),*
                }
            }

            pub fn subjects(self) -> &'static [Subject] {
                match self {
                    $(Event::$variant => &[$(Subject::$subject),*]),*
                }
            }

            pub fn parse(name: &str) -> Option<Event> {
                Self::ALL.iter().copied().find(|e| e.name() == name)
            }
        }

        /// By its name in rule files.
        impl serde::Serialize for Event {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }
    };
}

events! {
    ReferralReceivedAt = "referral.received_at": [Referral],
    ReferralWrittenReceivedAt = "referral.written_received_at": [Referral],
    ReferralWrittenConfirmationAt = "referral.written_confirmation_at": [Referral],
    ReferralAcknowledgedAt = "referral.acknowledged_at": [Referral],
    ReferralNextStepsRecordedAt = "referral.next_steps_recorded_at": [Referral],
    NextStrategyDiscussionHeldAt = "next_strategy_discussion.held_at": [Referral],
    InitialAssessmentCompletedOn = "initial_assessment.completed_on": [Referral, StrategyDiscussion],
    CoreAssessmentCompletedOn = "core_assessment.completed_on": [Referral, StrategyDiscussion],
    StrategyDiscussionHeldAt = "strategy_discussion.held_at": [StrategyDiscussion],
    StrategyDiscussionChildSeenAt = "strategy_discussion.child_seen_at": [StrategyDiscussion],
    StrategyDiscussionConferenceDecidedAt = "strategy_discussion.conference_decided_at": [StrategyDiscussion],
    StrategyDiscussionRecordCirculatedAt = "strategy_discussion.record_circulated_at": [StrategyDiscussion],
    NextInitialConferenceRequestedAt = "next_initial_conference.requested_at": [StrategyDiscussion],
    NextInitialConferenceHeldAt = "next_initial_conference.held_at": [StrategyDiscussion],
    LastS47StrategyDiscussionHeldAt = "last_s47_strategy_discussion.held_at": [ChildConference],
    LastStrategyDiscussionHeldAt = "last_strategy_discussion.held_at": [ChildConference],
    ConferenceRequestedAt = "conference.requested_at": [Conference, ChildConference, Invitation],
    ConferenceTransferNotifiedAt = "conference.transfer_notified_at": [Conference, ChildConference, Invitation],
    ConferenceDate = "conference.date": [Conference, ChildConference, Invitation],
    ConferenceHeldAt = "conference.held_at": [Conference, ChildConference, Invitation],
    ConferenceChairLiaisonAt = "conference.chair_liaison_at": [Conference, ChildConference],
    ConferenceDecisionCirculatedAt = "conference.decision_circulated_at": [Conference],
    ConferencePlanCirculatedAt = "conference.plan_circulated_at": [Conference],
    ConferencePlanHardCopySentAt = "conference.plan_hard_copy_sent_at": [Conference],
    ConferenceSummaryCirculatedAt = "conference.summary_circulated_at": [Conference],
    ConferenceMinutesCirculatedAt = "conference.minutes_circulated_at": [Conference],
    ConferenceChairEscalatedAt = "conference.chair_escalated_at": [Conference],
    ReconveningConferenceHeldAt = "reconvening_conference.held_at": [Conference, ChildConference],
    FirstCoreGroupHeldAt = "first_core_group.held_at": [Conference, ChildConference, Plan],
    NextReviewConferenceHeldAt = "next_review_conference.held_at": [ChildConference, Plan],
    InvitationReportReceivedAt = "invitation.report_received_at": [Invitation],
    InvitationReportSharedWithFamilyAt = "invitation.report_shared_with_family_at": [Invitation],
    InvitationReportAuthorisedAt = "invitation.report_authorised_at": [Invitation],
    ConferenceChildWorkbookReceivedAt = "conference_child.workbook_received_at": [ChildConference],
    ChildExpectedDueDate = "child.expected_due_date": [ChildConference],
    ChildEighteenthBirthday = "child.eighteenth_birthday": [Plan],
    PlanStartedOn = "plan.started_on": [Plan],
    PlanEndedOn = "plan.ended_on": [Plan],
    CoreGroupOrConferenceHeldAt = "core_group_or_conference.held_at": [Plan],
    VisitVisitedAt = "visit.visited_at": [Plan],
    CinReviewHeldOn = "cin_review.held_on": [ChildConference],
}

pub const RECIPIENTS: &[&str] = &[
    "agency",
    "allocated_worker",
    "team_manager",
    "conference_chair",
    "conference_service",
    "safeguarding_manager",
];

pub const STANDARDS: &[&str] = &[
    "quoracy",
    "advocacy_offered",
    "exception_recorded",
    "core_assessment_completed",
    "report_shared",
];

pub const VOID_WHEN: &[&str] = &[
    "conference_cancelled",
    "plan_ended_before_deadline",
    "conference_not_required",
];

/// When an obligation lapses rather than falls due (a rule's `void_when`):
/// read once with the rule, not compared as text for every obligation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Void {
    ConferenceCancelled,
    PlanEndedBeforeDeadline,
    /// The section 47 enquiry concluded that no initial conference is required.
    ConferenceNotRequired,
}

impl Void {
    pub(super) fn parse(s: &str) -> Option<Void> {
        match s {
            "conference_cancelled" => Some(Void::ConferenceCancelled),
            "plan_ended_before_deadline" => Some(Void::PlanEndedBeforeDeadline),
            "conference_not_required" => Some(Void::ConferenceNotRequired),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// One deadline per subject.
    Deadline,
    /// A chain of deadlines, each counted from the event that met the last.
    Recurring,
    /// A standard checked at a conference.
    Standard,
    /// A reminder window that is not a compliance measure.
    Notice,
}

impl RuleKind {
    /// Its name in rule files and outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Deadline => "deadline",
            RuleKind::Recurring => "recurring",
            RuleKind::Standard => "standard",
            RuleKind::Notice => "notice",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditBy {
    Agency,
    Team,
}

/// Which subjects a rule applies to, beyond its subject kind.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub conference_kind: Option<Vec<String>>,
    pub conference_status: Option<Vec<String>>,
    pub agency_group: Option<Vec<String>>,
    pub agency_group_not: Option<Vec<String>>,
    pub outcome: Option<Vec<String>>,
    pub concern: Option<Vec<String>>,
    pub by_telephone: Option<bool>,
    pub s47_initiated: Option<bool>,
    pub conference_decided: Option<bool>,
    pub chair_overruled: Option<bool>,
    /// The chair recorded a concern that the decision leaves a child at risk.
    pub chair_concern: Option<bool>,
    /// A dissent from the decision was recorded (for the child; for a
    /// conference, for any of its children).
    pub dissent_recorded: Option<bool>,
    /// Age in whole years at the conference's date, inclusive bounds.
    pub age_from: Option<u32>,
    pub age_to: Option<u32>,
    /// The child's first review conference after the conference that made the plan.
    pub first_review: Option<bool>,
    /// Another conference reconvenes this one.
    pub reconvened: Option<bool>,
    /// This conference reconvenes another (`reconvenes_id` set).
    pub reconvenes: Option<bool>,
    /// At least one child was given a plan (`outcome = plan`).
    pub plan_made: Option<bool>,
    pub plan_ended: Option<bool>,
    /// Also an obligation for a child whose last s47 strategy discussion decided
    /// on a conference that has not been arranged yet (`conference` null).
    pub include_awaiting: Option<bool>,
}

/// The check a `standard` rule makes.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StandardSpec {
    pub check: String,
    /// Children's social care must be among those attending.
    pub require_social_care: Option<bool>,
    /// Distinct agencies attending besides children's social care.
    pub min_other_agencies: Option<u32>,
    /// Distinct agencies attending in all.
    pub min_agencies: Option<u32>,
    pub unborn_requires: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The procedure's text the quote is from; defaults to the board's `source`.
    pub file: Option<String>,
    pub section: String,
    pub quote: String,
    /// The document, as the rule file that set the quote names it (`[board]
    /// document`, and `reproduced_in` where the text is a reproduction).
    #[serde(skip)]
    pub document: Option<Document>,
}

/// A procedure as people cite it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Document {
    /// Title, publisher and date or version, e.g. "Working Together to
    /// Safeguard Children (2010)".
    pub title: String,
    /// Where the text quoted is reproduced, if it is not the original.
    pub reproduced_in: Option<String>,
}

impl Source {
    /// The source as a person reads it: "Working Together to Safeguard
    /// Children (2010), paragraph 2.87, as reproduced in the Pan-Dorset
    /// Inter-Agency Safeguarding Procedures (November 2010)". A numbered
    /// paragraph is a paragraph; any other section is named in quotes. With
    /// no document declared, the file the quote is from stands for it.
    pub fn citation(&self) -> String {
        let paragraph = !self.section.is_empty()
            && self.section.chars().all(|c| c.is_ascii_digit() || c == '.');
        let place = if paragraph {
            format!("paragraph {}", self.section)
        } else {
            format!("section \u{201c}{}\u{201d}", self.section)
        };
        match &self.document {
            Some(d) => match &d.reproduced_in {
                Some(r) => format!("{}, {place}, as reproduced in {r}", d.title),
                None => format!("{}, {place}", d.title),
            },
            None => format!(
                "{}, {place}",
                self.file.as_deref().unwrap_or("the procedure")
            ),
        }
    }
}

// ------------------------------------------------------------ resolved rules

#[derive(Debug, Clone)]
pub struct Variant {
    pub conference_kind: Vec<String>,
    pub offset: Offset,
    pub source: Option<Source>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub kind: RuleKind,
    pub source: Source,
    pub subject: Subject,
    pub filter: Filter,
    pub starts: Option<Event>,
    pub offset: Option<Offset>,
    pub variants: Vec<Variant>,
    pub met_by: Option<Event>,
    pub met_window: Option<Offset>,
    pub cap: Option<Event>,
    pub standard: Option<StandardSpec>,
    pub void_when: Vec<Void>,
    /// The event after which the duty, still unmet, can no longer be met
    /// and is `missed`: by default, for a duty before a conference, the
    /// conference being held. A standard lapses at the conference it is
    /// judged at, whatever this says.
    pub lapses: Option<Event>,
    pub remind: Vec<String>,
    pub escalate: Vec<String>,
    pub remind_before: Option<Offset>,
    pub audit_by: Option<AuditBy>,
    /// Which board file last set this rule.
    pub defined_in: String,
    /// The case data records only the latest event that meets the rule (an
    /// Annex A return's latest review): only obligations still unmet are
    /// judged, as an earlier one would be met by a later event. Set for
    /// imported data (`domain::sources`), never by a rule file.
    pub latest_only: bool,
}

impl Rule {
    /// The offset for a conference of this kind (a variant's, else the rule's).
    pub fn offset_for(&self, conference_kind: Option<&str>) -> Option<&Offset> {
        conference_kind
            .and_then(|k| {
                self.variants
                    .iter()
                    .find(|v| v.conference_kind.iter().any(|c| c == k))
            })
            .map(|v| &v.offset)
            .or(self.offset.as_ref())
    }

    pub fn source_for(&self, conference_kind: Option<&str>) -> &Source {
        conference_kind
            .and_then(|k| {
                self.variants
                    .iter()
                    .find(|v| v.conference_kind.iter().any(|c| c == k))
            })
            .and_then(|v| v.source.as_ref())
            .unwrap_or(&self.source)
    }
}

/// A board version's rules by where they come from ([`RuleSet::lineage`]).
#[derive(Debug, Default)]
pub struct Lineage<'b> {
    /// The board it extends, if any.
    pub parent: Option<String>,
    pub inherited: Vec<&'b str>,
    pub overridden: Vec<&'b str>,
    pub added: Vec<&'b str>,
    /// Removed by this board's own file (a parent's removals are inherited).
    pub removed: Vec<&'b Removed>,
}

/// An inherited rule a board removed (`[[remove]]`), and why: shown by
/// `rules check` and `explain`.
#[derive(Debug, Clone, PartialEq)]
pub struct Removed {
    pub id: String,
    pub reason: String,
    /// The rule file that removed it.
    pub file: String,
}

/// One version of one board's procedure, with the rules it inherits.
#[derive(Debug, Clone)]
pub struct Board {
    pub id: String,
    pub name: String,
    pub version: String,
    pub effective_from: NaiveDate,
    pub extends: Option<String>,
    pub calendar: String,
    pub time_zone: Tz,
    pub source: String,
    pub due_soon: Offset,
    pub rules: Vec<Rule>,
    /// Inherited rules this board (or a board it extends) removed, with why.
    pub removed: Vec<Removed>,
    pub file: String,
    /// Each rule's [`RuleRef`], in the order of `rules`.
    pub(super) refs: Vec<Arc<RuleRef>>,
}

impl Board {
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// Each rule's [`RuleRef`], in the order of `rules`.
    pub fn refs(&self) -> &[Arc<RuleRef>] {
        &self.refs
    }

    /// Takes out the rules `why` gives a reason for, keeping each rule's
    /// [`RuleRef`] beside it; returns the ids and reasons taken out.
    pub fn take_out(&mut self, why: impl Fn(&Rule) -> Option<String>) -> Vec<Removed> {
        let mut out = Vec::new();
        let mut rules = Vec::with_capacity(self.rules.len());
        let mut refs = Vec::with_capacity(self.refs.len());
        for (r, x) in self.rules.drain(..).zip(self.refs.drain(..)) {
            match why(&r) {
                Some(reason) => out.push(Removed {
                    id: r.id,
                    reason,
                    file: "(the import's source)".into(),
                }),
                None => {
                    rules.push(r);
                    refs.push(x);
                }
            }
        }
        self.rules = rules;
        self.refs = refs;
        self.removed.extend(out.iter().cloned());
        out
    }
}

/// What every obligation of one rule of one board version has in common:
/// made once per rule as the rules load, so an obligation carries one pointer
/// to it rather than a copy of each name, and can borrow it for as long as
/// the rules last.
#[derive(Debug, serde::Serialize)]
pub struct RuleRef {
    pub rule: ArcStr,
    pub title: ArcStr,
    pub kind: RuleKind,
    pub board: ArcStr,
    pub board_version: ArcStr,
    /// A hash of the board's and rule's names, by their text: the metrics
    /// tally finds every obligation's series by them, and hashes this once.
    #[serde(skip)]
    pub names_hash: u64,
}

impl RuleRef {
    pub fn new(
        rule: ArcStr,
        title: ArcStr,
        kind: RuleKind,
        board: ArcStr,
        board_version: ArcStr,
    ) -> Self {
        use std::hash::BuildHasher;
        let names_hash = rustc_hash::FxBuildHasher.hash_one((&*board, &*rule));
        RuleRef {
            rule,
            title,
            kind,
            board,
            board_version,
            names_hash,
        }
    }
}

/// Every board, each with its versions in order of `effective_from`.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub boards: BTreeMap<String, Vec<Arc<Board>>>,
    /// A digest of the rule files' text, so reports can say which rules they used.
    pub digest: String,
}

impl RuleSet {
    pub fn latest(&self, board: &str) -> Option<&Arc<Board>> {
        self.boards.get(board).and_then(|v| v.last())
    }

    /// The half-open range of dates a version is in force for.
    pub fn window(&self, board: &Board) -> (Option<NaiveDate>, Option<NaiveDate>) {
        let versions = match self.boards.get(&board.id) {
            Some(v) => v,
            None => return (None, None),
        };
        let pos = versions
            .iter()
            .position(|b| b.version == board.version && b.file == board.file);
        match pos {
            Some(i) => (
                if i == 0 {
                    None
                } else {
                    Some(board.effective_from)
                },
                versions.get(i + 1).map(|n| n.effective_from),
            ),
            None => (None, None),
        }
    }

    /// The version of `board` in force on `day` (the earliest covers the time before it).
    pub fn in_force(&self, board: &str, day: NaiveDate) -> Option<&Arc<Board>> {
        let versions = self.boards.get(board)?;
        versions
            .iter()
            .rev()
            .find(|b| b.effective_from <= day)
            .or_else(|| versions.first())
    }

    /// What a board version takes from the board it extends and what it does
    /// itself: the rules it inherits as they are, overrides, adds and removes.
    pub fn lineage<'b>(&self, board: &'b Board) -> Lineage<'b> {
        let parent = board
            .extends
            .as_deref()
            .and_then(|p| self.in_force(p, board.effective_from));
        let has = |id: &str| parent.is_some_and(|p| p.rule(id).is_some());
        let mut l = Lineage {
            parent: parent.map(|p| p.id.clone()),
            ..Lineage::default()
        };
        for r in &board.rules {
            let own = r.defined_in == board.file;
            let list = match (own, has(&r.id)) {
                (false, _) => &mut l.inherited,
                (true, true) => &mut l.overridden,
                (true, false) => &mut l.added,
            };
            list.push(r.id.as_str());
        }
        l.removed = board
            .removed
            .iter()
            .filter(|r| r.file == board.file)
            .collect();
        l
    }
}

// ------------------------------------------------------------------- errors

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// All the problems found in a set of rule files.
#[derive(Debug, Clone)]
pub struct RuleErrors(pub Vec<RuleError>);

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleErrors {}
