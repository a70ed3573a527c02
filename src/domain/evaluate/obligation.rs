//! What evaluation makes: obligations (owned, or drafts borrowing their
//! names), their statuses and occurrences, findings, and an evaluation.

use std::sync::Arc;

use serde::Serialize;

use crate::domain::calendar::ShownOffset;
use crate::domain::case::*;
use crate::domain::rules::{AuditBy, Event};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Overdue,
    /// Lapsed unmet: a breach that can no longer be met (a report the
    /// conference went ahead without, a standard not met at the conference).
    Missed,
    DueSoon,
    Pending,
    MetLate,
    Met,
    Excepted,
    Void,
}

impl Status {
    pub const ALL: &'static [Status] = &[
        Status::Pending,
        Status::DueSoon,
        Status::Overdue,
        Status::Missed,
        Status::Met,
        Status::MetLate,
        Status::Void,
        Status::Excepted,
    ];

    /// Not yet settled: what reminders and escalations are about.
    pub fn is_open(self) -> bool {
        matches!(self, Status::Pending | Status::DueSoon | Status::Overdue)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::DueSoon => "due_soon",
            Status::Overdue => "overdue",
            Status::Missed => "missed",
            Status::Met => "met",
            Status::MetLate => "met_late",
            Status::Void => "void",
            Status::Excepted => "excepted",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Self::ALL.iter().copied().find(|st| st.as_str() == s)
    }
}

/// Shared text: an obligation's names are shared with the rule and the case
/// state it came from rather than copied, so millions of obligations cost no
/// allocation each.
pub type Name = arcstr::ArcStr;

pub use crate::domain::rules::RuleRef;

/// One duty of one rule for one subject (and, for recurring rules, one occurrence).
///
/// Owned, it holds its names (`N`) and its rule (`R`), as the service keeps
/// the few it acts on from tick to tick. Borrowed ([`Draft`]) it points at
/// them in the case state and the rules: evaluation hands drafts to a
/// [`Sink`](super::Sink), and `check`, `export` and `explain` keep drafts
/// ([`evaluate_kept`](super::evaluate_kept)), so the millions of a national evaluation cost no
/// reference count on any name.
#[derive(Debug, Clone, Serialize)]
#[serde(bound(serialize = "N: Serialize + std::fmt::Display, R: Serialize"))]
pub struct Obligation<N = Name, R = Arc<RuleRef>> {
    /// Its rule and board; serialised as the obligation's own first fields.
    #[serde(flatten)]
    pub of: R,
    /// The child's case reference; null for a conference as a whole or an agency's report.
    pub child: Option<N>,
    #[serde(skip)]
    pub child_id: Option<N>,
    pub conference: Option<N>,
    pub agency: Option<N>,
    pub team: Option<N>,
    pub occurrence: Occurrence<N>,
    pub starts_at: Instant,
    pub due_at: Instant,
    pub met_at: Option<Instant>,
    pub status: Status,
    pub late_working_days: Option<i32>,
    pub exception_reason: Option<Name>,
    pub audit_by: Option<AuditBy>,
    /// What the deadline was counted from, for `explain`.
    pub start_event: Event,
    pub offset: Option<ShownOffset>,
    /// For a capped rule: the event that brought the deadline forward.
    pub capped_by: Option<Event>,
}

/// An obligation as evaluation makes it: its names and rule borrowed.
pub type Draft<'a> = Obligation<&'a Name, &'a Arc<RuleRef>>;

impl<N, R> Obligation<N, R> {
    /// The same obligation with each of its names passed through `name` and its rule through `rule`.
    pub(super) fn map<'s, M, Q>(
        &'s self,
        name: impl Fn(&'s N) -> M,
        rule: impl FnOnce(&'s R) -> Q,
    ) -> Obligation<M, Q> {
        Obligation {
            of: rule(&self.of),
            child: self.child.as_ref().map(&name),
            child_id: self.child_id.as_ref().map(&name),
            conference: self.conference.as_ref().map(&name),
            agency: self.agency.as_ref().map(&name),
            team: self.team.as_ref().map(&name),
            occurrence: self.occurrence.map(&name),
            starts_at: self.starts_at,
            due_at: self.due_at,
            met_at: self.met_at,
            status: self.status,
            late_working_days: self.late_working_days,
            exception_reason: self.exception_reason.clone(),
            audit_by: self.audit_by,
            start_event: self.start_event,
            offset: self.offset,
            capped_by: self.capped_by,
        }
    }
}

impl Draft<'_> {
    /// The obligation holding its own names, to keep.
    pub fn owned(&self) -> Obligation {
        self.map(|n| Name::clone(n), |r| Arc::clone(r))
    }
}

impl Obligation {
    /// The obligation borrowed, as evaluation hands it out.
    pub fn draft(&self) -> Draft<'_> {
        self.map(|n| n, |r| r)
    }
}

impl<N, R> Obligation<N, R>
where
    N: std::borrow::Borrow<Name> + Ord + std::fmt::Display,
    R: std::borrow::Borrow<Arc<RuleRef>>,
{
    /// The obligation's identity, stable across evaluations:
    /// `board:rule:child reference:conference:agency:occurrence`, `-` for none.
    pub fn key(&self) -> String {
        fn text<N: std::borrow::Borrow<Name>>(n: &Option<N>) -> &str {
            n.as_ref().map_or("-", |n| n.borrow().as_str())
        }
        let of: &RuleRef = self.of.borrow();
        format!(
            "{}:{}:{}:{}:{}:{}",
            of.board,
            of.rule,
            text(&self.child),
            text(&self.conference),
            text(&self.agency),
            self.occurrence
        )
    }

    /// The order of a report: by due date, then by identity. Evaluation leaves
    /// its obligations unordered (the service needs no order); whatever shows
    /// them sorts what it shows with this.
    pub fn report_cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Names are shared, so equal names are usually one allocation: compare pointers first.
        fn name(a: &Name, b: &Name) -> std::cmp::Ordering {
            if Name::ptr_eq(a, b) {
                std::cmp::Ordering::Equal
            } else {
                a.cmp(b)
            }
        }
        fn opt<N: std::borrow::Borrow<Name>>(a: &Option<N>, b: &Option<N>) -> std::cmp::Ordering {
            match (a, b) {
                (Some(a), Some(b)) => name(a.borrow(), b.borrow()),
                _ => a.is_some().cmp(&b.is_some()),
            }
        }
        let (of, other_of): (&RuleRef, &RuleRef) = (self.of.borrow(), other.of.borrow());
        self.due_at
            .cmp(&other.due_at)
            .then_with(|| name(&of.board, &other_of.board))
            .then_with(|| name(&of.rule, &other_of.rule))
            .then_with(|| opt(&self.child, &other.child))
            .then_with(|| opt(&self.conference, &other.conference))
            .then_with(|| opt(&self.agency, &other.agency))
            .then_with(|| self.occurrence.cmp(&other.occurrence))
    }
}

/// Which instance of a rule for its subject: the referral, strategy discussion
/// or plan it is counted from (none for a conference or report), and for a
/// recurring rule its place in the chain. Shown as `referral/R1`, `plan/P1#2`, `0`.
///
/// Kept in 16 bytes (a national evaluation makes millions): the row's id, the
/// place in the chain plus one (0 for none), and the kind of row, each read
/// through [`Occurrence::from`] and [`Occurrence::n`]. Ordered as the pair
/// `(from, n)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence<N = Name> {
    id: Option<N>,
    n: Option<std::num::NonZeroU32>,
    of: Option<CountedFrom>,
}

/// The kind of row an occurrence is counted from, named as it is shown.
/// Declared in the order of the names, so occurrences sort by their text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CountedFrom {
    /// A strategy discussion that decided on a conference not yet requested.
    Awaiting,
    Plan,
    Referral,
    StrategyDiscussion,
}

impl CountedFrom {
    pub fn as_str(self) -> &'static str {
        match self {
            CountedFrom::Awaiting => "awaiting",
            CountedFrom::Plan => "plan",
            CountedFrom::Referral => "referral",
            CountedFrom::StrategyDiscussion => "strategy_discussion",
        }
    }
}

impl<N> Occurrence<N> {
    /// The largest place in a chain.
    pub const MAX_N: u32 = u32::MAX - 1;

    /// An occurrence counted from `from`, at place `n` of a chain (at most
    /// [`Occurrence::MAX_N`]; a chain stops before it).
    pub fn new(from: Option<(CountedFrom, N)>, n: Option<u32>) -> Self {
        let (of, id) = from.unzip();
        let first = Occurrence { id, n: None, of };
        match n {
            Some(n) => first.at(n),
            None => first,
        }
    }

    /// The same occurrence at place `n` of its chain.
    pub fn at(self, n: u32) -> Self {
        Occurrence {
            n: std::num::NonZeroU32::new(n.min(Self::MAX_N) + 1),
            ..self
        }
    }

    /// What it is counted from: the kind of row and the row's id.
    pub fn from(&self) -> Option<(CountedFrom, &N)> {
        self.of.zip(self.id.as_ref())
    }

    /// Its place in a recurring rule's chain.
    pub fn n(&self) -> Option<u32> {
        self.n.map(|n| n.get() - 1)
    }

    /// The same occurrence with its id passed through `f`.
    pub(super) fn map<'s, M>(&'s self, f: impl FnOnce(&'s N) -> M) -> Occurrence<M> {
        Occurrence {
            id: self.id.as_ref().map(f),
            n: self.n,
            of: self.of,
        }
    }
}

impl<N: Ord> PartialOrd for Occurrence<N> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<N: Ord> Ord for Occurrence<N> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.from(), self.n()).cmp(&(other.from(), other.n()))
    }
}

impl<N: std::fmt::Display> std::fmt::Display for Occurrence<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.from(), self.n()) {
            (Some((what, id)), None) => write!(f, "{}/{id}", what.as_str()),
            (Some((what, id)), Some(n)) => write!(f, "{}/{id}#{n}", what.as_str()),
            (None, Some(n)) => write!(f, "{n}"),
            (None, None) => f.write_str("0"),
        }
    }
}

impl<N: std::fmt::Display> Serialize for Occurrence<N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The reasons of exceptions, made during evaluation: one `Name` per
/// distinct reason, shared by the obligations it excuses.
#[derive(Default)]
pub(super) struct Reasons(rustc_hash::FxHashSet<Name>);

impl Reasons {
    pub(super) fn get(&mut self, s: String) -> Name {
        match self.0.get(s.as_str()) {
            Some(n) => n.clone(),
            None => {
                let n: Name = Name::from(s);
                self.0.insert(n.clone());
                n
            }
        }
    }
}

/// Case data that contradicts itself or the contract.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Finding {
    pub kind: String,
    pub table: String,
    pub row: String,
    pub message: String,
}

impl Finding {
    pub fn new(kind: &str, table: &str, row: &str, message: impl Into<String>) -> Self {
        Finding {
            kind: kind.into(),
            table: table.into(),
            row: row.into(),
            message: message.into(),
        }
    }
}

/// The obligations in no particular order (see `Obligation::report_cmp`) and
/// the findings sorted.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation<O = Obligation> {
    pub evaluated_at: Instant,
    pub obligations: Vec<O>,
    pub findings: Vec<Finding>,
}

impl Evaluation {
    /// The evaluation with its obligations borrowed, as [`evaluate_kept`](super::evaluate_kept) gives one.
    pub fn borrowed(&self) -> Evaluation<Draft<'_>> {
        Evaluation {
            evaluated_at: self.evaluated_at,
            obligations: self.obligations.iter().map(Obligation::draft).collect(),
            findings: self.findings.clone(),
        }
    }
}

impl Evaluation<Draft<'_>> {
    /// The evaluation with owned obligations, to keep beyond what it borrows from.
    pub fn owned(&self) -> Evaluation {
        Evaluation {
            evaluated_at: self.evaluated_at,
            obligations: self.obligations.iter().map(Draft::owned).collect(),
            findings: self.findings.clone(),
        }
    }
}
