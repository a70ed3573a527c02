//! Board rule files (`rules/*.toml`): parsing, `extends` and versions,
//! validation with `file:line:column` messages, and the small vocabulary the
//! files combine (subjects, events, filters, standards, recipients). The
//! numbers and sources live only in the files.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arcstr::ArcStr;
use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;

use crate::calendar::Offset;
use crate::case::{CONCERNS, CONFERENCE_KINDS, CONFERENCE_STATUSES, OUTCOMES, PROFESSIONAL_GROUPS};

/// The rule files shipped with cpwatch, used when no rules directory is given.
pub const BUILT_IN: &[(&str, &str)] = &[
    (
        "working-together-2010.toml",
        include_str!("../rules/working-together-2010.toml"),
    ),
    ("pan-dorset.toml", include_str!("../rules/pan-dorset.toml")),
    (
        "hampshire-4lscb.toml",
        include_str!("../rules/hampshire-4lscb.toml"),
    ),
    ("barnsley.toml", include_str!("../rules/barnsley.toml")),
    (
        "cwm-taf-morgannwg.toml",
        include_str!("../rules/cwm-taf-morgannwg.toml"),
    ),
    ("bolton.toml", include_str!("../rules/bolton.toml")),
];

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
    NextInitialConferenceRequestedAt = "next_initial_conference.requested_at": [StrategyDiscussion],
    NextInitialConferenceHeldAt = "next_initial_conference.held_at": [StrategyDiscussion],
    LastS47StrategyDiscussionHeldAt = "last_s47_strategy_discussion.held_at": [ChildConference],
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
    ReconveningConferenceHeldAt = "reconvening_conference.held_at": [Conference],
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
];

pub const VOID_WHEN: &[&str] = &["conference_cancelled", "plan_ended_before_deadline"];

/// When an obligation lapses rather than falls due (a rule's `void_when`):
/// read once with the rule, not compared as text for every obligation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Void {
    ConferenceCancelled,
    PlanEndedBeforeDeadline,
}

impl Void {
    fn parse(s: &str) -> Option<Void> {
        match s {
            "conference_cancelled" => Some(Void::ConferenceCancelled),
            "plan_ended_before_deadline" => Some(Void::PlanEndedBeforeDeadline),
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
    /// Seed file; defaults to the board's `source`.
    pub file: Option<String>,
    pub section: String,
    pub quote: String,
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
    pub remind: Vec<String>,
    pub escalate: Vec<String>,
    pub remind_before: Option<Offset>,
    pub audit_by: Option<AuditBy>,
    /// Which board file last set this rule.
    pub defined_in: String,
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
    pub file: String,
    /// Each rule's [`RuleRef`], in the order of `rules`.
    refs: Vec<Arc<RuleRef>>,
}

impl Board {
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// Each rule's [`RuleRef`], in the order of `rules`.
    pub fn refs(&self) -> &[Arc<RuleRef>] {
        &self.refs
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

struct SourceText {
    name: String,
    text: String,
}

impl SourceText {
    fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> RuleError {
        let at = span.map_or(0, |s| s.start).min(self.text.len());
        let before = &self.text[..at];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        RuleError {
            file: self.name.clone(),
            line,
            column,
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------- raw files

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    board: RawBoard,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
    #[serde(default, rename = "override")]
    overrides: Vec<Spanned<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoard {
    id: Spanned<String>,
    name: String,
    extends: Option<Spanned<String>>,
    version: String,
    effective_from: Spanned<toml::value::Datetime>,
    #[serde(default = "default_calendar")]
    calendar: Spanned<String>,
    #[serde(default = "default_tz")]
    time_zone: Spanned<String>,
    source: Spanned<String>,
    due_soon: Option<Spanned<String>>,
}

fn default_calendar() -> Spanned<String> {
    Spanned::new(0..0, "england-and-wales".to_string())
}

fn default_tz() -> Spanned<String> {
    Spanned::new(0..0, "Europe/London".to_string())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariant {
    conference_kind: Spanned<Vec<String>>,
    offset: Spanned<String>,
    source: Option<Spanned<Source>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<String>,
    title: Option<Spanned<String>>,
    kind: Option<Spanned<RuleKind>>,
    source: Option<Spanned<Source>>,
    applies_to: Option<Spanned<String>>,
    #[serde(rename = "where")]
    filter: Option<Spanned<Filter>>,
    starts: Option<Spanned<String>>,
    offset: Option<Spanned<String>>,
    variant: Option<Vec<Spanned<RawVariant>>>,
    met_by: Option<Spanned<String>>,
    met_window: Option<Spanned<String>>,
    cap: Option<Spanned<String>>,
    standard: Option<Spanned<StandardSpec>>,
    void_when: Option<Spanned<Vec<String>>>,
    remind: Option<Spanned<Vec<String>>>,
    escalate: Option<Spanned<Vec<String>>>,
    remind_before: Option<Spanned<String>>,
    audit_by: Option<Spanned<AuditBy>>,
}

macro_rules! overlay {
    ($base:expr, $top:expr, $($field:ident),*) => {
        $( if $top.$field.is_some() { $base.$field = $top.$field.clone(); } )*
    };
}

impl RawRule {
    fn overlay(&mut self, top: &RawRule) {
        overlay!(
            self,
            top,
            title,
            kind,
            source,
            applies_to,
            filter,
            starts,
            offset,
            variant,
            met_by,
            met_window,
            cap,
            standard,
            void_when,
            remind,
            escalate,
            remind_before,
            audit_by
        );
    }
}

struct ParsedFile {
    src: SourceText,
    raw: RawFile,
    effective_from: NaiveDate,
    tz: Tz,
}

// ------------------------------------------------------------------ loading

/// Loads every `*.toml` file of a directory.
pub fn load_dir(dir: &Path) -> Result<RuleSet, RuleErrors> {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) => {
            return Err(RuleErrors(vec![RuleError {
                file: dir.display().to_string(),
                line: 0,
                column: 0,
                message: format!("cannot read the rules directory: {e}"),
            }]))
        }
    };
    entries.sort();
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in entries {
        match std::fs::read_to_string(&path) {
            Ok(text) => files.push((path.display().to_string(), text)),
            Err(e) => errors.push(RuleError {
                file: path.display().to_string(),
                line: 0,
                column: 0,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    if files.is_empty() && errors.is_empty() {
        errors.push(RuleError {
            file: dir.display().to_string(),
            line: 0,
            column: 0,
            message: "no *.toml rule files in this directory".into(),
        });
    }
    if !errors.is_empty() {
        return Err(RuleErrors(errors));
    }
    load_texts(files)
}

/// The rule files built into the binary.
pub fn built_in() -> Result<RuleSet, RuleErrors> {
    load_texts(
        BUILT_IN
            .iter()
            .map(|(n, t)| (format!("<built-in>/{n}"), t.to_string()))
            .collect(),
    )
}

/// Parses, resolves and validates a set of rule files given as (name, text).
pub fn load_texts(files: Vec<(String, String)>) -> Result<RuleSet, RuleErrors> {
    let mut errors = Vec::new();
    let mut parsed = Vec::new();
    let mut digest_input = String::new();
    for (name, text) in files {
        digest_input.push_str(&name);
        digest_input.push_str(&text);
        let src = SourceText { name, text };
        match parse_file(&src) {
            Ok((raw, effective_from, tz)) => parsed.push(ParsedFile {
                src,
                raw,
                effective_from,
                tz,
            }),
            Err(e) => errors.extend(e),
        }
    }
    // (id, version) must be unique.
    let mut seen: HashMap<(String, String), String> = HashMap::new();
    for f in &parsed {
        let key = (
            f.raw.board.id.get_ref().clone(),
            f.raw.board.version.clone(),
        );
        if let Some(other) = seen.insert(key.clone(), f.src.name.clone()) {
            errors.push(f.src.error(
                Some(f.raw.board.id.span()),
                format!(
                    "board {:?} version {:?} is also defined in {other}",
                    key.0, key.1
                ),
            ));
        }
    }
    let ids: HashSet<String> = parsed
        .iter()
        .map(|f| f.raw.board.id.get_ref().clone())
        .collect();
    for f in &parsed {
        if let Some(parent) = &f.raw.board.extends {
            if !ids.contains(parent.get_ref()) {
                errors.push(f.src.error(
                    Some(parent.span()),
                    format!(
                        "extends unknown board {:?} (known: {})",
                        parent.get_ref(),
                        sorted_join(&ids)
                    ),
                ));
            }
        }
    }
    errors.extend(find_cycles(&parsed));
    if !errors.is_empty() {
        return Err(RuleErrors(errors));
    }

    let mut resolved: HashMap<usize, Vec<RawRule>> = HashMap::new();
    let mut boards: BTreeMap<String, Vec<Arc<Board>>> = BTreeMap::new();
    let order = resolution_order(&parsed);
    for i in order {
        let f = &parsed[i];
        let parent_rules = f.raw.board.extends.as_ref().and_then(|p| {
            parent_version(&parsed, p.get_ref(), f.effective_from)
                .and_then(|pi| resolved.get(&pi).cloned())
        });
        let (rules, errs) = resolve_file(f, parent_rules.unwrap_or_default());
        errors.extend(errs);
        match build_board(f, &rules) {
            Ok(board) => boards
                .entry(board.id.clone())
                .or_default()
                .push(Arc::new(board)),
            Err(e) => errors.extend(e),
        }
        resolved.insert(i, rules);
    }
    if !errors.is_empty() {
        errors.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        errors.dedup();
        return Err(RuleErrors(errors));
    }
    for versions in boards.values_mut() {
        versions.sort_by_key(|b| b.effective_from);
    }
    Ok(RuleSet {
        boards,
        digest: fnv_hex(&digest_input),
    })
}

fn sorted_join(ids: &HashSet<String>) -> String {
    let mut v: Vec<&str> = ids.iter().map(String::as_str).collect();
    v.sort_unstable();
    v.join(", ")
}

/// FNV-1a, 64 bit: a stable fingerprint of the rule files for reports.
pub fn fnv_hex(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn parse_file(src: &SourceText) -> Result<(RawFile, NaiveDate, Tz), Vec<RuleError>> {
    let raw: RawFile = toml::from_str(&src.text)
        .map_err(|e| vec![src.error(e.span(), e.message().trim().to_string())])?;
    let mut errors = Vec::new();
    let date_text = raw.board.effective_from.get_ref().to_string();
    let effective_from = match NaiveDate::parse_from_str(&date_text, "%Y-%m-%d") {
        Ok(d) => d,
        Err(_) => {
            errors.push(src.error(
                Some(raw.board.effective_from.span()),
                format!("effective_from {date_text:?} must be a date like 2024-06-03"),
            ));
            NaiveDate::MIN
        }
    };
    let tz: Tz = match raw.board.time_zone.get_ref().parse() {
        Ok(tz) => tz,
        Err(_) => {
            errors.push(src.error(
                Some(raw.board.time_zone.span()),
                format!(
                    "unknown time zone {:?} (an IANA name such as Europe/London)",
                    raw.board.time_zone.get_ref()
                ),
            ));
            Tz::Europe__London
        }
    };
    if raw.board.source.get_ref().trim().is_empty() {
        errors.push(src.error(
            Some(raw.board.source.span()),
            "board source (the procedure document) is empty",
        ));
    }
    if let Some(d) = &raw.board.due_soon {
        if let Err(e) = parse_lead(d.get_ref()) {
            errors.push(src.error(Some(d.span()), format!("due_soon: {e}")));
        }
    }
    let cal = raw.board.calendar.get_ref();
    if !["england-and-wales", "scotland", "northern-ireland"].contains(&cal.as_str()) {
        errors.push(src.error(
            Some(raw.board.calendar.span()),
            format!("unknown calendar {cal:?} (england-and-wales, scotland or northern-ireland)"),
        ));
    }
    let mut ids = HashSet::new();
    for r in raw.rule.iter().chain(raw.overrides.iter()) {
        let id = r.get_ref().id.get_ref();
        if !ids.insert(id.clone()) {
            errors.push(src.error(
                Some(r.get_ref().id.span()),
                format!("rule {id:?} appears twice in this file"),
            ));
        }
    }
    if errors.is_empty() {
        Ok((raw, effective_from, tz))
    } else {
        Err(errors)
    }
}

/// A lead time such as `3 working days` or `3 months` (counted back from a deadline).
pub fn parse_lead(text: &str) -> Result<Offset, String> {
    format!("-{}", text.trim()).parse::<Offset>()
}

fn find_cycles(parsed: &[ParsedFile]) -> Vec<RuleError> {
    let mut edges: HashMap<&str, &str> = HashMap::new();
    for f in parsed {
        if let Some(p) = &f.raw.board.extends {
            edges.insert(f.raw.board.id.get_ref(), p.get_ref());
        }
    }
    let mut errors = Vec::new();
    for f in parsed {
        let Some(parent) = &f.raw.board.extends else {
            continue;
        };
        let start = f.raw.board.id.get_ref().as_str();
        let mut chain = vec![start];
        let mut at = parent.get_ref().as_str();
        while let Some(next) = Some(at) {
            if chain.contains(&next) {
                if next == start {
                    chain.push(next);
                    errors.push(f.src.error(
                        Some(parent.span()),
                        format!("extends forms a cycle: {}", chain.join(" -> ")),
                    ));
                }
                break;
            }
            chain.push(next);
            match edges.get(next) {
                Some(n) => at = n,
                None => break,
            }
        }
    }
    errors
}

fn parent_version(parsed: &[ParsedFile], parent: &str, on: NaiveDate) -> Option<usize> {
    let mut candidates: Vec<(usize, NaiveDate)> = parsed
        .iter()
        .enumerate()
        .filter(|(_, f)| f.raw.board.id.get_ref() == parent)
        .map(|(i, f)| (i, f.effective_from))
        .collect();
    candidates.sort_by_key(|c| c.1);
    candidates
        .iter()
        .rev()
        .find(|c| c.1 <= on)
        .or_else(|| candidates.first())
        .map(|c| c.0)
}

fn resolution_order(parsed: &[ParsedFile]) -> Vec<usize> {
    fn depth(parsed: &[ParsedFile], i: usize, guard: usize) -> usize {
        match &parsed[i].raw.board.extends {
            Some(p) if guard < parsed.len() => {
                parent_version(parsed, p.get_ref(), parsed[i].effective_from)
                    .map_or(0, |pi| 1 + depth(parsed, pi, guard + 1))
            }
            _ => 0,
        }
    }
    let mut order: Vec<usize> = (0..parsed.len()).collect();
    order.sort_by_key(|&i| depth(parsed, i, 0));
    order
}

/// An entry whose source names no seed file quotes its own board's document.
fn with_source_file(entry: &RawRule, board_source: &str) -> RawRule {
    let mut e = entry.clone();
    if let Some(src) = e.source.as_mut() {
        let span = src.span();
        let mut value = src.get_ref().clone();
        value.file.get_or_insert_with(|| board_source.to_string());
        *src = Spanned::new(span, value);
    }
    for v in e.variant.iter_mut().flatten() {
        let span = v.span();
        let mut value = v.get_ref().clone();
        if let Some(s) = value.source.as_mut() {
            let sspan = s.span();
            let mut sv = s.get_ref().clone();
            sv.file.get_or_insert_with(|| board_source.to_string());
            *s = Spanned::new(sspan, sv);
        }
        *v = Spanned::new(span, value);
    }
    e
}

fn resolve_file(f: &ParsedFile, mut rules: Vec<RawRule>) -> (Vec<RawRule>, Vec<RuleError>) {
    let mut errors = Vec::new();
    let board_source = f.raw.board.source.get_ref();
    let parent_name = f
        .raw
        .board
        .extends
        .as_ref()
        .map_or("", |p| p.get_ref().as_str());
    for entry in &f.raw.rule {
        let entry = entry.get_ref();
        let id = entry.id.get_ref();
        if rules.iter().any(|r| r.id.get_ref() == id) {
            errors.push(f.src.error(
                Some(entry.id.span()),
                format!("rule {id:?} is inherited from {parent_name}: change it with [[override]], not [[rule]]"),
            ));
            continue;
        }
        let before = errors.len();
        validate_entry(&f.src, entry, entry, true, &mut errors);
        if errors.len() == before {
            rules.push(with_source_file(entry, board_source));
        }
    }
    for entry in &f.raw.overrides {
        let entry = entry.get_ref();
        let id = entry.id.get_ref();
        let Some(pos) = rules.iter().position(|r| r.id.get_ref() == id) else {
            let known: Vec<&str> = rules.iter().map(|r| r.id.get_ref().as_str()).collect();
            errors.push(f.src.error(
                Some(entry.id.span()),
                if parent_name.is_empty() {
                    format!("override of unknown rule {id:?}: this board extends nothing")
                } else {
                    format!("override of unknown rule {id:?}: {parent_name} has no such rule (it has: {})", known.join(", "))
                },
            ));
            continue;
        };
        let mut merged = rules[pos].clone();
        merged.overlay(&with_source_file(entry, board_source));
        merged.id = entry.id.clone();
        let before = errors.len();
        validate_entry(&f.src, entry, &merged, false, &mut errors);
        if errors.len() == before {
            rules[pos] = merged;
        }
    }
    (rules, errors)
}

fn check_list(
    src: &SourceText,
    field: &str,
    list: &Spanned<Vec<String>>,
    allowed: &[&str],
    errors: &mut Vec<RuleError>,
) {
    for v in list.get_ref() {
        if !allowed.contains(&v.as_str()) {
            errors.push(src.error(
                Some(list.span()),
                format!(
                    "{field}: unknown value {v:?} (expected one of: {})",
                    allowed.join(", ")
                ),
            ));
        }
    }
}

fn check_opt_list(
    src: &SourceText,
    span: Range<usize>,
    field: &str,
    list: &Option<Vec<String>>,
    allowed: &[&str],
    errors: &mut Vec<RuleError>,
) {
    if let Some(list) = list {
        check_list(
            src,
            field,
            &Spanned::new(span, list.clone()),
            allowed,
            errors,
        );
    }
}

fn check_offset(
    src: &SourceText,
    field: &str,
    s: &Spanned<String>,
    errors: &mut Vec<RuleError>,
) -> Option<Offset> {
    match s.get_ref().parse::<Offset>() {
        Ok(o) => Some(o),
        Err(e) => {
            errors.push(src.error(Some(s.span()), format!("{field}: {e}")));
            None
        }
    }
}

fn check_event(
    src: &SourceText,
    field: &str,
    s: &Spanned<String>,
    subject: Option<Subject>,
    errors: &mut Vec<RuleError>,
) {
    let name = s.get_ref();
    match Event::parse(name) {
        None => {
            let known: Vec<&str> = Event::ALL.iter().map(|e| e.name()).collect();
            errors.push(src.error(
                Some(s.span()),
                format!(
                    "{field}: unknown event {name:?} (known events: {})",
                    known.join(", ")
                ),
            ));
        }
        Some(event) => {
            if let Some(subject) = subject {
                if !event.subjects().contains(&subject) {
                    let fits: Vec<&str> = event.subjects().iter().map(|s| s.name()).collect();
                    errors.push(src.error(
                        Some(s.span()),
                        format!("{field}: event {name:?} has no meaning for applies_to = {:?} (it fits: {})", subject.name(), fits.join(", ")),
                    ));
                }
            }
        }
    }
}

/// Checks the fields an entry sets, in the context of the rule they produce.
fn validate_entry(
    src: &SourceText,
    entry: &RawRule,
    merged: &RawRule,
    is_new: bool,
    errors: &mut Vec<RuleError>,
) {
    let id_span = Some(entry.id.span());
    let id = entry.id.get_ref();
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        errors.push(src.error(
            id_span.clone(),
            format!("rule id {id:?} must be lower-case letters, digits and hyphens"),
        ));
    }
    let subject = merged.applies_to.as_ref().and_then(|a| {
        Subject::ALL
            .iter()
            .find(|(n, _)| n == a.get_ref())
            .map(|(_, s)| *s)
    });
    if let Some(a) = &entry.applies_to {
        if subject.is_none() {
            let known: Vec<&str> = Subject::ALL.iter().map(|(n, _)| *n).collect();
            errors.push(src.error(
                Some(a.span()),
                format!(
                    "applies_to: unknown subject {:?} (expected one of: {})",
                    a.get_ref(),
                    known.join(", ")
                ),
            ));
        }
    }
    let kind = merged
        .kind
        .as_ref()
        .map_or(RuleKind::Deadline, |k| *k.get_ref());
    if let Some(s) = &entry.source {
        let s = s.get_ref();
        if s.quote.trim().is_empty() || s.section.trim().is_empty() {
            errors.push(src.error(
                entry.source.as_ref().map(|s| s.span()),
                "source needs a section and a quote",
            ));
        }
    }
    for (field, ev) in [
        ("starts", &entry.starts),
        ("met_by", &entry.met_by),
        ("cap", &entry.cap),
    ] {
        if let Some(ev) = ev {
            check_event(src, field, ev, subject, errors);
        }
    }
    // A changed subject must still fit the events it inherits.
    if let (Some(a), Some(subject)) = (&entry.applies_to, subject) {
        for (field, inherited, own) in [
            ("starts", &merged.starts, &entry.starts),
            ("met_by", &merged.met_by, &entry.met_by),
            ("cap", &merged.cap, &entry.cap),
        ] {
            if let (None, Some(ev)) = (own, inherited) {
                let fits =
                    Event::parse(ev.get_ref()).is_some_and(|e| e.subjects().contains(&subject));
                if !fits {
                    errors.push(src.error(
                        Some(a.span()),
                        format!(
                            "applies_to = {:?} does not fit the inherited {field} event {:?}",
                            subject.name(),
                            ev.get_ref()
                        ),
                    ));
                }
            }
        }
    }
    if let Some(o) = &entry.offset {
        check_offset(src, "offset", o, errors);
    }
    if let Some(o) = &entry.met_window {
        check_offset(src, "met_window", o, errors);
    }
    if let Some(l) = &entry.remind_before {
        if let Err(e) = parse_lead(l.get_ref()) {
            errors.push(src.error(Some(l.span()), format!("remind_before: {e}")));
        }
    }
    if let Some(vs) = &entry.variant {
        for v in vs {
            let v = v.get_ref();
            check_list(
                src,
                "variant.conference_kind",
                &v.conference_kind,
                CONFERENCE_KINDS,
                errors,
            );
            check_offset(src, "variant.offset", &v.offset, errors);
        }
    }
    if let Some(f) = &entry.filter {
        let span = f.span();
        let w = f.get_ref();
        check_opt_list(
            src,
            span.clone(),
            "where.conference_kind",
            &w.conference_kind,
            CONFERENCE_KINDS,
            errors,
        );
        check_opt_list(
            src,
            span.clone(),
            "where.conference_status",
            &w.conference_status,
            CONFERENCE_STATUSES,
            errors,
        );
        check_opt_list(
            src,
            span.clone(),
            "where.agency_group",
            &w.agency_group,
            PROFESSIONAL_GROUPS,
            errors,
        );
        check_opt_list(
            src,
            span.clone(),
            "where.agency_group_not",
            &w.agency_group_not,
            PROFESSIONAL_GROUPS,
            errors,
        );
        check_opt_list(
            src,
            span.clone(),
            "where.outcome",
            &w.outcome,
            OUTCOMES,
            errors,
        );
        check_opt_list(
            src,
            span.clone(),
            "where.concern",
            &w.concern,
            CONCERNS,
            errors,
        );
    }
    if let Some(s) = &entry.standard {
        if !STANDARDS.contains(&s.get_ref().check.as_str()) {
            errors.push(src.error(
                Some(s.span()),
                format!(
                    "standard.check: unknown check {:?} (expected one of: {})",
                    s.get_ref().check,
                    STANDARDS.join(", ")
                ),
            ));
        }
        if let Some(g) = &s.get_ref().unborn_requires {
            if !PROFESSIONAL_GROUPS.contains(&g.as_str()) {
                errors.push(src.error(
                    Some(s.span()),
                    format!("standard.unborn_requires: unknown professional group {g:?}"),
                ));
            }
        }
    }
    if let Some(v) = &entry.void_when {
        check_list(src, "void_when", v, VOID_WHEN, errors);
    }
    for (field, list) in [("remind", &entry.remind), ("escalate", &entry.escalate)] {
        if let Some(list) = list {
            check_list(src, field, list, RECIPIENTS, errors);
        }
    }

    // What the resulting rule must have, reported at the entry that made it.
    let mut missing = Vec::new();
    if merged.title.is_none() {
        missing.push("title");
    }
    if merged.source.is_none() {
        missing.push("source");
    }
    if merged.applies_to.is_none() {
        missing.push("applies_to");
    }
    match kind {
        RuleKind::Standard => {
            if merged.standard.is_none() {
                missing.push("standard");
            }
        }
        RuleKind::Deadline | RuleKind::Recurring => {
            for (name, v) in [
                ("starts", merged.starts.is_some()),
                ("offset", merged.offset.is_some()),
                ("met_by", merged.met_by.is_some()),
            ] {
                if !v {
                    missing.push(name);
                }
            }
        }
        RuleKind::Notice => {
            for (name, v) in [
                ("starts", merged.starts.is_some()),
                ("offset", merged.offset.is_some()),
            ] {
                if !v {
                    missing.push(name);
                }
            }
        }
    }
    if !missing.is_empty() {
        let what = if is_new { "rule" } else { "overridden rule" };
        errors.push(src.error(
            id_span,
            format!("{what} {id:?} is missing {}", missing.join(", ")),
        ));
    }
}

fn build_board(f: &ParsedFile, rules: &[RawRule]) -> Result<Board, Vec<RuleError>> {
    let b = &f.raw.board;
    let due_soon = b
        .due_soon
        .as_ref()
        .map_or_else(|| parse_lead("3 working days"), |d| parse_lead(d.get_ref()));
    let mut errors = Vec::new();
    let mut built = Vec::new();
    for r in rules {
        match build_rule(r, &f.src.name) {
            Some(rule) => built.push(rule),
            None => errors.push(f.src.error(
                Some(r.id.span()),
                format!("rule {:?} could not be built", r.id.get_ref()),
            )),
        }
    }
    let due_soon = match due_soon {
        Ok(d) => d,
        Err(e) => {
            errors.push(f.src.error(b.due_soon.as_ref().map(|d| d.span()), e));
            return Err(errors);
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let (id, version) = (
        ArcStr::from(b.id.get_ref().as_str()),
        ArcStr::from(b.version.as_str()),
    );
    let refs = built
        .iter()
        .map(|r| {
            Arc::new(RuleRef::new(
                ArcStr::from(r.id.as_str()),
                ArcStr::from(r.title.as_str()),
                r.kind,
                id.clone(),
                version.clone(),
            ))
        })
        .collect();
    Ok(Board {
        id: b.id.get_ref().clone(),
        name: b.name.clone(),
        version: b.version.clone(),
        effective_from: f.effective_from,
        extends: b.extends.as_ref().map(|e| e.get_ref().clone()),
        calendar: b.calendar.get_ref().clone(),
        time_zone: f.tz,
        source: b.source.get_ref().clone(),
        due_soon,
        rules: built,
        file: f.src.name.clone(),
        refs,
    })
}

fn build_rule(r: &RawRule, file: &str) -> Option<Rule> {
    let subject = r.applies_to.as_ref().and_then(|a| {
        Subject::ALL
            .iter()
            .find(|(n, _)| n == a.get_ref())
            .map(|(_, s)| *s)
    })?;
    let source = r.source.as_ref()?.get_ref().clone();
    let offset = match &r.offset {
        Some(o) => Some(o.get_ref().parse::<Offset>().ok()?),
        None => None,
    };
    let variants = r
        .variant
        .iter()
        .flatten()
        .map(|v| {
            let v = v.get_ref();
            Some(Variant {
                conference_kind: v.conference_kind.get_ref().clone(),
                offset: v.offset.get_ref().parse().ok()?,
                source: v.source.as_ref().map(|s| s.get_ref().clone()),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Rule {
        id: r.id.get_ref().clone(),
        title: r.title.as_ref()?.get_ref().clone(),
        kind: r.kind.as_ref().map_or(RuleKind::Deadline, |k| *k.get_ref()),
        source,
        subject,
        filter: r
            .filter
            .as_ref()
            .map(|f| f.get_ref().clone())
            .unwrap_or_default(),
        starts: match &r.starts {
            Some(e) => Some(Event::parse(e.get_ref())?),
            None => None,
        },
        offset,
        variants,
        met_by: match &r.met_by {
            Some(e) => Some(Event::parse(e.get_ref())?),
            None => None,
        },
        met_window: match &r.met_window {
            Some(o) => Some(o.get_ref().parse().ok()?),
            None => None,
        },
        cap: match &r.cap {
            Some(e) => Some(Event::parse(e.get_ref())?),
            None => None,
        },
        standard: r.standard.as_ref().map(|s| s.get_ref().clone()),
        void_when: match &r.void_when {
            Some(v) => v
                .get_ref()
                .iter()
                .map(|w| Void::parse(w))
                .collect::<Option<_>>()?,
            None => Vec::new(),
        },
        remind: r
            .remind
            .as_ref()
            .map(|v| v.get_ref().clone())
            .unwrap_or_default(),
        escalate: r
            .escalate
            .as_ref()
            .map(|v| v.get_ref().clone())
            .unwrap_or_default(),
        remind_before: match &r.remind_before {
            Some(l) => Some(parse_lead(l.get_ref()).ok()?),
            None => None,
        },
        audit_by: r.audit_by.as_ref().map(|a| *a.get_ref()),
        defined_in: file.to_string(),
    })
}
