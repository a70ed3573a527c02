//! Evaluation: case state, rules, calendars and an instant in; obligations and
//! data-quality findings out. Pure: no I/O, no clock, no panics on bad data.

use rustc_hash::FxHashMap as HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use crate::domain::calendar::{Calendar, CalendarError, HolidayData, Offset, ShownOffset};
use crate::domain::case::*;
use crate::domain::rules::{AuditBy, Board, Event, Rule, RuleKind, RuleSet, Subject, Void};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Overdue,
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
/// [`Sink`], and `check`, `export` and `explain` keep drafts
/// ([`evaluate_kept`]), so the millions of a national evaluation cost no
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
    fn map<'s, M, Q>(
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
    fn map<'s, M>(&'s self, f: impl FnOnce(&'s N) -> M) -> Occurrence<M> {
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
struct Reasons(rustc_hash::FxHashSet<Name>);

impl Reasons {
    fn get(&mut self, s: String) -> Name {
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
    /// The evaluation with its obligations borrowed, as [`evaluate_kept`] gives one.
    pub fn borrowed(&self) -> Evaluation<Draft<'_>> {
        Evaluation {
            evaluated_at: self.evaluated_at,
            obligations: self.obligations.iter().map(Obligation::draft).collect(),
            findings: self.findings.clone(),
        }
    }
}

/// What an evaluation's obligations borrow besides the case state and the
/// rules: its corrected copies of the few rows that record happenings after
/// the instant evaluated at. The caller holds it, for as long as it keeps
/// the obligations.
#[derive(Default)]
pub struct Scratch(Option<Fixed>);

pub struct Options<'a> {
    /// The board of children whose `board` is null.
    pub default_board: &'a str,
    /// Threads to evaluate on (boards and their children are shared out among them).
    pub threads: usize,
}

/// Evaluates every board's rules against the case state at `now`.
pub fn evaluate(
    state: &CaseState,
    rules: &RuleSet,
    holidays: &Arc<HolidayData>,
    now: Instant,
    opts: &Options,
) -> Evaluation {
    let mut obligations = Vec::new();
    let findings = evaluate_each(state, rules, holidays, now, opts, &mut |o| {
        obligations.push(o)
    });
    Evaluation {
        evaluated_at: now,
        obligations,
        findings,
    }
}

/// The same evaluation, handing each obligation to `sink` as soon as it is
/// made rather than keeping them all: the service keeps only what it
/// acts on, so its memory does not grow with years of settled history.
/// Returns the findings, sorted.
pub fn evaluate_each(
    state: &CaseState,
    rules: &RuleSet,
    holidays: &Arc<HolidayData>,
    now: Instant,
    opts: &Options,
    sink: &mut dyn FnMut(Obligation),
) -> Vec<Finding> {
    let threads = opts.threads.max(1);
    let mut scratch = Scratch::default();
    let (findings, ()) = evaluate_with(
        state,
        rules,
        holidays,
        now,
        opts,
        threads,
        &mut scratch,
        |jobs, next, idx| {
            let errors = if threads == 1 || jobs.len() < 2 {
                work(jobs, next, idx, now, &mut |o| sink(o.owned()))
            } else {
                in_parallel(jobs, next, idx, now, threads, sink)
            };
            (errors, ())
        },
    );
    findings
}

/// The evaluation keeping the obligations `keep` selects, each borrowing its
/// names and rule from the case state, the rules and `scratch`: keeping
/// millions takes no reference count on any name (a national `check` or
/// `export` keeps 1.9 million). Obligations in no particular order.
pub fn evaluate_kept<'a>(
    state: &'a CaseState,
    rules: &'a RuleSet,
    holidays: &Arc<HolidayData>,
    now: Instant,
    opts: &Options,
    scratch: &'a mut Scratch,
    keep: &(dyn Fn(&Draft<'a>) -> bool + Sync),
) -> Evaluation<Draft<'a>> {
    let threads = opts.threads.max(1);
    let (findings, obligations) = evaluate_with(
        state,
        rules,
        holidays,
        now,
        opts,
        threads,
        scratch,
        |jobs, next, idx| {
            // One keeper works on this thread; more each on a thread of their own.
            let workers = if jobs.len() < 2 { 1 } else { threads };
            let mut keepers: Vec<Keeper> = (0..workers).map(|_| Keeper(Vec::new(), keep)).collect();
            let errors = split(jobs, next, idx, now, &mut keepers);
            let all = keepers.into_iter().map(|k| k.0).reduce(|mut all, v| {
                all.extend(v);
                all
            });
            (errors, all.unwrap_or_default())
        },
    );
    Evaluation {
        evaluated_at: now,
        obligations,
        findings,
    }
}

/// One worker's obligations of [`evaluate_kept`], and what it keeps.
struct Keeper<'a, 'k>(Vec<Draft<'a>>, &'k (dyn Fn(&Draft<'a>) -> bool + Sync));

impl<'a> Sink<'a> for Keeper<'a, '_> {
    fn put(&mut self, o: &Draft<'a>) {
        if (self.1)(o) {
            self.0.push(o.clone());
        }
    }
}

/// Where a worker of [`evaluate_split`] puts the obligations it makes.
pub trait Sink<'a>: Send {
    /// The obligation, borrowed: [`Draft::owned`] makes one to keep.
    fn put(&mut self, o: &Draft<'a>);

    /// Called once the worker has made its last obligation, on its thread.
    fn finish(&mut self) {}
}

/// The same evaluation on one thread per sink, each worker handing its
/// obligations to a sink of its own: what the sinks do with them (count,
/// keep) is shared out too, with no queue between threads. The sinks, not
/// `opts.threads`, say how many threads. Returns the findings, sorted.
pub fn evaluate_split<S: for<'a> Sink<'a>>(
    state: &CaseState,
    rules: &RuleSet,
    holidays: &Arc<HolidayData>,
    now: Instant,
    opts: &Options,
    sinks: &mut [S],
) -> Vec<Finding> {
    let threads = sinks.len();
    let mut scratch = Scratch::default();
    let (findings, ()) = evaluate_with(
        state,
        rules,
        holidays,
        now,
        opts,
        threads,
        &mut scratch,
        |jobs, next, idx| (split(jobs, next, idx, now, sinks), ()),
    );
    findings
}

/// Checks and indexes the state, cuts the evaluation into jobs for `threads`
/// workers and has `run` do them; returns the findings, sorted.
#[allow(clippy::too_many_arguments)]
fn evaluate_with<'a, T>(
    state: &'a CaseState,
    rules: &'a RuleSet,
    holidays: &Arc<HolidayData>,
    now: Instant,
    opts: &Options,
    threads: usize,
    scratch: &'a mut Scratch,
    run: impl FnOnce(&[Job<'_, 'a>], &AtomicUsize, &Index<'a>) -> (HashMap<String, CalendarError>, T),
) -> (Vec<Finding>, T) {
    let mut findings = state.load_findings.clone();
    let fixed: &'a Fixed = scratch
        .0
        .insert(sanitize(state, now, &mut findings, threads));
    let clean = fixed.view(state, threads);
    inconsistencies(&clean, &mut findings);
    let idx = Index::new(&clean, &mut findings, threads);

    // A table whose rows all have ids of their own (the usual case) needs no
    // lookup of each row to find it is the one kept under its id.
    let all_children = idx.children.len() == clean.children.len();
    let mut children_by_board: ByBoard<&Child> = ByBoard::default();
    for c in clean
        .children
        .iter()
        .filter(|c| all_children || kept(&idx.children, &c.id, c))
    {
        children_by_board.push(c.board.as_deref().unwrap_or(opts.default_board), c);
    }
    for (board, children) in children_by_board.take_unknown(rules) {
        for c in children {
            findings.push(Finding::new(
                "unknown_board",
                "children",
                &c.id,
                format!(
                    "board {board:?} has no rule file (known: {})",
                    rules.boards.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    let all_conferences = idx.conferences.len() == clean.conferences.len();
    let mut conferences_by_board: ByBoard<&Conference> = ByBoard::default();
    for &conf in clean
        .conferences
        .iter()
        .filter(|c| all_conferences || kept(&idx.conferences, &c.id, c))
    {
        match idx.first_child(conf) {
            Some(c) => {
                conferences_by_board.push(c.board.as_deref().unwrap_or(opts.default_board), conf)
            }
            None => findings.push(Finding::new(
                "conference_without_children",
                "conferences",
                &conf.id,
                "no conference_children row names a known child for this conference",
            )),
        }
    }
    // A conference of an unknown board's children is reported through its children.
    conferences_by_board.take_unknown(rules);

    // Each version of each board, its children and conferences cut into pieces
    // that workers take in turn: subjects are independent of one another.
    let threads = threads.max(1);
    let mut jobs = Vec::new();
    for (board_id, versions) in &rules.boards {
        let children = children_by_board.of(board_id);
        let conferences = conferences_by_board.of(board_id);
        if children.is_empty() && conferences.is_empty() {
            continue;
        }
        for board in versions {
            let cal = match Calendar::new(holidays.clone(), &board.calendar, board.time_zone) {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    findings.push(Finding::new(
                        "calendar_missing",
                        "children",
                        "*",
                        format!("board {}: {e}", board.id),
                    ));
                    continue;
                }
            };
            let pieces = if threads > 1 { threads * 4 } else { 1 };
            for (children, conferences) in
                pieces_of(children, pieces).zip(pieces_of(conferences, pieces))
            {
                jobs.push(Job {
                    board,
                    cal: cal.clone(),
                    window: rules.window(board),
                    children,
                    conferences,
                });
            }
        }
    }
    let (calendar_errors, made) = run(&jobs, &AtomicUsize::new(0), &idx);
    for (what, e) in calendar_errors {
        findings.push(Finding::new(
            "calendar_not_covered",
            "-",
            &what,
            e.to_string(),
        ));
    }
    sort_findings(&mut findings);
    (findings, made)
}

/// Rows by board. A deployment has a handful of boards and a national state
/// millions of rows, so a row's board is found by comparing it with the
/// last one's (mostly the same shared text) rather than by hashing it.
struct ByBoard<'a, T>(Vec<(&'a str, Vec<T>)>);

impl<T> Default for ByBoard<'_, T> {
    fn default() -> Self {
        ByBoard(Vec::new())
    }
}

impl<'a, T> ByBoard<'a, T> {
    fn push(&mut self, board: &'a str, row: T) {
        let same = |b: &str| std::ptr::eq(b, board) || b == board;
        if !self.0.last().is_some_and(|(b, _)| same(b)) {
            // The board just used is kept last, where the next row looks first.
            match self.0.iter().position(|(b, _)| same(b)) {
                Some(at) => {
                    let last = self.0.len() - 1;
                    self.0.swap(at, last);
                }
                None => self.0.push((board, Vec::new())),
            }
        }
        if let Some((_, rows)) = self.0.last_mut() {
            rows.push(row);
        }
    }

    /// Takes out the boards with no rule file, with their rows.
    fn take_unknown(&mut self, rules: &RuleSet) -> Vec<(&'a str, Vec<T>)> {
        let (known, unknown) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|(b, _)| rules.boards.contains_key(*b));
        self.0 = known;
        unknown
    }

    fn of(&self, board: &str) -> &[T] {
        self.0
            .iter()
            .find(|(b, _)| *b == board)
            .map_or(&[], |(_, rows)| rows.as_slice())
    }
}

/// Findings in report order (by table, row, kind, message), each once.
pub fn sort_findings(findings: &mut Vec<Finding>) {
    findings.sort_by(|a, b| {
        (&a.table, &a.row, &a.kind, &a.message).cmp(&(&b.table, &b.row, &b.kind, &b.message))
    });
    findings.dedup();
}

// --------------------------------------------------------------- sharing out

/// One board version's evaluation of some of its children and conferences.
struct Job<'j, 'a> {
    board: &'a Board,
    cal: Arc<Calendar>,
    window: (Option<NaiveDate>, Option<NaiveDate>),
    children: &'j [&'a Child],
    conferences: &'j [&'a Conference],
}

/// `n` consecutive pieces of `items`, some perhaps empty.
fn pieces_of<'s, T>(items: &'s [T], n: usize) -> impl Iterator<Item = &'s [T]> + 's {
    let mut chunks = items.chunks(items.len().div_ceil(n.max(1)).max(1));
    (0..n.max(1)).map(move |_| chunks.next().unwrap_or(&[]))
}

/// Takes jobs until none are left; returns the calendar errors met.
fn work<'a>(
    jobs: &[Job<'_, 'a>],
    next: &AtomicUsize,
    idx: &Index<'a>,
    now: Instant,
    sink: &mut dyn FnMut(&Draft<'a>),
) -> HashMap<String, CalendarError> {
    let mut reasons = Reasons::default();
    let mut calendar_errors = HashMap::default();
    while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
        let board = job.board;
        BoardEval {
            idx,
            board,
            refs: board.refs(),
            reasons: &mut reasons,
            cal: &job.cal,
            now,
            today: job.cal.local_date(now),
            window: job.window,
            calendar_errors: &mut calendar_errors,
            per_rule: Vec::new(),
            exceptions: Vec::new(),
            current: 0,
        }
        .run(job.children, job.conferences, sink);
    }
    calendar_errors
}

/// The jobs on one worker per sink, the first on this thread; returns the
/// calendar errors met.
fn split<'a, S: Sink<'a>>(
    jobs: &[Job<'_, 'a>],
    next: &AtomicUsize,
    idx: &Index<'a>,
    now: Instant,
    sinks: &mut [S],
) -> HashMap<String, CalendarError> {
    let Some((first, rest)) = sinks.split_first_mut() else {
        return HashMap::default();
    };
    std::thread::scope(|s| {
        let others: Vec<_> = rest
            .iter_mut()
            .map(|sink| {
                s.spawn(move || {
                    let errors = work(jobs, next, idx, now, &mut |o| sink.put(o));
                    sink.finish();
                    errors
                })
            })
            .collect();
        let mut calendar_errors = work(jobs, next, idx, now, &mut |o| first.put(o));
        first.finish();
        for w in others {
            match w.join() {
                Ok(errors) => {
                    for (k, e) in errors {
                        calendar_errors.entry(k).or_insert(e);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        calendar_errors
    })
}

/// A worker's obligations on their way to a sink on another thread, in
/// batches through a bounded queue (so a slow sink holds the workers back
/// rather than letting obligations pile up). The last batch goes on drop.
struct Batcher {
    batch: Vec<Obligation>,
    tx: std::sync::mpsc::SyncSender<Vec<Obligation>>,
}

impl Batcher {
    const SIZE: usize = 4096;
}

impl Sink<'_> for Batcher {
    fn put(&mut self, o: &Draft<'_>) {
        self.batch.push(o.owned());
        if self.batch.len() == Self::SIZE {
            let full = std::mem::replace(&mut self.batch, Vec::with_capacity(Self::SIZE));
            // The receiver only goes when the evaluation ends, after every worker.
            let _ = self.tx.send(full);
        }
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        let _ = self.tx.send(std::mem::take(&mut self.batch));
    }
}

/// The jobs on `threads` workers, their obligations handed to `sink` on this thread.
fn in_parallel<'a>(
    jobs: &[Job<'_, 'a>],
    next: &AtomicUsize,
    idx: &Index<'a>,
    now: Instant,
    threads: usize,
    sink: &mut dyn FnMut(Obligation),
) -> HashMap<String, CalendarError> {
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel(threads * 4);
        let mut batchers: Vec<Batcher> = (0..threads)
            .map(|_| Batcher {
                batch: Vec::with_capacity(Batcher::SIZE),
                tx: tx.clone(),
            })
            .collect();
        drop(tx);
        let workers = s.spawn(move || split(jobs, next, idx, now, &mut batchers));
        for batch in rx {
            batch.into_iter().for_each(&mut *sink);
        }
        match workers.join() {
            Ok(errors) => errors,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

// ------------------------------------------------------------------ sanitise

/// An instant in messages: RFC 3339, whole seconds.
fn stamp(t: Instant) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn future(
    findings: &mut Vec<Finding>,
    table: &str,
    row: &str,
    column: &str,
    t: Instant,
    now: Instant,
) -> bool {
    if t > now {
        findings.push(Finding::new(
            "recorded_in_future",
            table,
            row,
            // Not naming the instant evaluated at: a finding reads the same from tick to tick.
            format!(
                "{column} {} is later than the evaluation instant; treated as not yet happened",
                stamp(t),
            ),
        ));
        true
    } else {
        false
    }
}

fn clear_future(
    findings: &mut Vec<Finding>,
    table: &str,
    row: &str,
    column: &str,
    v: &mut Option<Instant>,
    now: Instant,
) {
    if let Some(t) = *v {
        if future(findings, table, row, column, t, now) {
            *v = None;
        }
    }
}

/// Corrected copies of the few rows that record happenings after `now`, by
/// position; `None` leaves the row out. Rows needing no correction are not
/// copied: evaluation reads them where they were loaded.
struct Fixes<T>(Vec<(usize, Option<T>)>);

impl<T: Clone> Fixes<T> {
    fn of(rows: &[T], needs: impl Fn(&T) -> bool, mut fix: impl FnMut(&mut T) -> bool) -> Self {
        Fixes(
            rows.iter()
                .enumerate()
                .filter(|(_, r)| needs(r))
                .map(|(i, r)| {
                    let mut copy = r.clone();
                    let keep = fix(&mut copy);
                    (i, keep.then_some(copy))
                })
                .collect(),
        )
    }

    fn view<'a>(&'a self, rows: &'a [T]) -> Vec<&'a T> {
        // The usual case, a table with nothing to correct: a copy of the addresses, no test a row.
        if self.0.is_empty() {
            return rows.iter().collect();
        }
        let mut out = Vec::with_capacity(rows.len());
        let mut fixes = self.0.iter().peekable();
        for (i, r) in rows.iter().enumerate() {
            match fixes.next_if(|(j, _)| *j == i) {
                Some((_, fixed)) => out.extend(fixed.as_ref()),
                None => out.push(r),
            }
        }
        out
    }
}

fn any_after(now: Instant, ts: &[Option<Instant>]) -> bool {
    ts.iter().flatten().any(|t| *t > now)
}

/// The corrections `sanitize` made, to be viewed through `Clean`.
struct Fixed {
    referrals: Fixes<Referral>,
    strategy_discussions: Fixes<StrategyDiscussion>,
    assessments: Fixes<Assessment>,
    conferences: Fixes<Conference>,
    conference_children: Fixes<ConferenceChild>,
    invitations: Fixes<Invitation>,
    cp_plans: Fixes<CpPlan>,
    core_groups: Fixes<CoreGroup>,
    visits: Fixes<Visit>,
    cin_reviews: Fixes<CinReview>,
}

/// The case state as evaluation sees it: without happenings recorded after `now`.
struct Clean<'a> {
    agencies: &'a [Agency],
    teams: &'a [Team],
    workers: &'a [Worker],
    children: &'a [Child],
    referrals: Vec<&'a Referral>,
    strategy_discussions: Vec<&'a StrategyDiscussion>,
    assessments: Vec<&'a Assessment>,
    conferences: Vec<&'a Conference>,
    conference_children: Vec<&'a ConferenceChild>,
    invitations: Vec<&'a Invitation>,
    cp_plans: Vec<&'a CpPlan>,
    core_groups: Vec<&'a CoreGroup>,
    visits: Vec<&'a Visit>,
    cin_reviews: Vec<&'a CinReview>,
    exceptions: &'a [Exception],
    child_slots: Slots<Child>,
    conference_slots: Slots<Conference>,
}

impl Fixed {
    fn view<'a>(&'a self, s: &'a CaseState, threads: usize) -> Clean<'a> {
        // The two largest tables beside the rest, as `sanitize` checks them.
        let ((core_groups, visits), clean) = both(
            threads,
            || {
                (
                    self.core_groups.view(&s.core_groups),
                    self.visits.view(&s.visits),
                )
            },
            || Clean {
                agencies: &s.agencies,
                teams: &s.teams,
                workers: &s.workers,
                children: &s.children,
                referrals: self.referrals.view(&s.referrals),
                strategy_discussions: self.strategy_discussions.view(&s.strategy_discussions),
                assessments: self.assessments.view(&s.assessments),
                conferences: self.conferences.view(&s.conferences),
                conference_children: self.conference_children.view(&s.conference_children),
                invitations: self.invitations.view(&s.invitations),
                cp_plans: self.cp_plans.view(&s.cp_plans),
                core_groups: Vec::new(),
                visits: Vec::new(),
                cin_reviews: self.cin_reviews.view(&s.cin_reviews),
                exceptions: &s.exceptions,
                child_slots: Slots::new(&s.children, std::iter::empty()),
                conference_slots: Slots::new(
                    &s.conferences,
                    self.conferences
                        .0
                        .iter()
                        .filter_map(|(i, c)| Some((addr(c.as_ref()?), *i))),
                ),
            },
        );
        Clean {
            core_groups,
            visits,
            ..clean
        }
    }
}

/// Leaves out happenings recorded after `now` (each one a finding) and reports
/// dates that contradict each other.
fn sanitize(state: &CaseState, now: Instant, f: &mut Vec<Finding>, threads: usize) -> Fixed {
    let today = now.date_naive();
    // The two largest tables, a half of a national state's rows, beside the rest.
    let ((core_groups, visits, found), rest) = both(
        threads,
        || {
            let mut f = Vec::new();
            let core_groups = Fixes::of(
                &state.core_groups,
                |g| g.held_at > now,
                |g| !future(&mut f, "core_groups", &g.id, "held_at", g.held_at, now),
            );
            let visits = Fixes::of(
                &state.visits,
                |v| v.visited_at > now,
                |v| !future(&mut f, "visits", &v.id, "visited_at", v.visited_at, now),
            );
            (core_groups, visits, f)
        },
        || sanitize_rest(state, now, today),
    );
    let (mut fixed, rest_found) = rest;
    fixed.core_groups = core_groups;
    fixed.visits = visits;
    f.extend(rest_found);
    f.extend(found);
    fixed
}

/// What [`sanitize`] corrects in the tables other than core groups and visits.
fn sanitize_rest(state: &CaseState, now: Instant, today: NaiveDate) -> (Fixed, Vec<Finding>) {
    let mut findings = Vec::new();
    let f = &mut findings;
    let referrals = Fixes::of(
        &state.referrals,
        |r| {
            r.received_at > now
                || any_after(
                    now,
                    &[
                        r.written_confirmation_at,
                        r.acknowledged_at,
                        r.next_steps_recorded_at,
                    ],
                )
        },
        |r| {
            if future(f, "referrals", &r.id, "received_at", r.received_at, now) {
                return false;
            }
            for (col, v) in [
                ("written_confirmation_at", &mut r.written_confirmation_at),
                ("acknowledged_at", &mut r.acknowledged_at),
                ("next_steps_recorded_at", &mut r.next_steps_recorded_at),
            ] {
                clear_future(f, "referrals", &r.id, col, v, now);
            }
            true
        },
    );
    let strategy_discussions = Fixes::of(
        &state.strategy_discussions,
        |d| d.held_at > now || any_after(now, &[d.child_seen_at, d.conference_decided_at]),
        |d| {
            if future(f, "strategy_discussions", &d.id, "held_at", d.held_at, now) {
                return false;
            }
            for (col, v) in [
                ("child_seen_at", &mut d.child_seen_at),
                ("conference_decided_at", &mut d.conference_decided_at),
            ] {
                clear_future(f, "strategy_discussions", &d.id, col, v, now);
            }
            true
        },
    );
    let assessments = Fixes::of(
        &state.assessments,
        |a| a.completed_on.is_some_and(|d| d > today),
        |a| {
            if let Some(done) = a.completed_on {
                f.push(Finding::new("recorded_in_future", "assessments", &a.id, format!("completed_on {done} is later than the evaluation date; treated as not yet completed")));
                a.completed_on = None;
            }
            true
        },
    );
    let conferences = Fixes::of(
        &state.conferences,
        |c| {
            any_after(
                now,
                &[
                    c.held_at,
                    c.requested_at,
                    c.transfer_notified_at,
                    c.chair_liaison_at,
                    c.decision_circulated_at,
                    c.plan_circulated_at,
                    c.plan_hard_copy_sent_at,
                    c.summary_circulated_at,
                    c.minutes_circulated_at,
                ],
            )
        },
        |c| {
            let id = c.id.clone();
            for (col, v) in [
                ("held_at", &mut c.held_at),
                ("requested_at", &mut c.requested_at),
                ("transfer_notified_at", &mut c.transfer_notified_at),
                ("chair_liaison_at", &mut c.chair_liaison_at),
                ("decision_circulated_at", &mut c.decision_circulated_at),
                ("plan_circulated_at", &mut c.plan_circulated_at),
                ("plan_hard_copy_sent_at", &mut c.plan_hard_copy_sent_at),
                ("summary_circulated_at", &mut c.summary_circulated_at),
                ("minutes_circulated_at", &mut c.minutes_circulated_at),
            ] {
                clear_future(f, "conferences", &id, col, v, now);
            }
            true
        },
    );
    let conference_children = Fixes::of(
        &state.conference_children,
        |cc| any_after(now, &[cc.workbook_received_at]),
        |cc| {
            let row = format!("{}/{}", cc.conference_id, cc.child_id);
            let col = "workbook_received_at";
            clear_future(
                f,
                "conference_children",
                &row,
                col,
                &mut cc.workbook_received_at,
                now,
            );
            true
        },
    );
    let invitations = Fixes::of(
        &state.invitations,
        |i| {
            any_after(
                now,
                &[
                    i.report_received_at,
                    i.report_shared_with_family_at,
                    i.report_authorised_at,
                ],
            )
        },
        |i| {
            let row = format!("{}/{}", i.conference_id, i.agency_id);
            for (col, v) in [
                ("report_received_at", &mut i.report_received_at),
                (
                    "report_shared_with_family_at",
                    &mut i.report_shared_with_family_at,
                ),
                ("report_authorised_at", &mut i.report_authorised_at),
            ] {
                clear_future(f, "invitations", &row, col, v, now);
            }
            true
        },
    );
    let cp_plans = Fixes::of(
        &state.cp_plans,
        |p| p.started_on > today || p.ended_on.is_some_and(|d| d > today),
        |p| {
            if p.started_on > today {
                f.push(Finding::new(
                    "recorded_in_future",
                    "cp_plans",
                    &p.id,
                    format!(
                        "started_on {} is later than the evaluation date",
                        p.started_on
                    ),
                ));
                return false;
            }
            if let Some(end) = p.ended_on {
                f.push(Finding::new(
                    "recorded_in_future",
                    "cp_plans",
                    &p.id,
                    format!("ended_on {end} is later than the evaluation date; treated as open"),
                ));
                p.ended_on = None;
            }
            true
        },
    );
    let cin_reviews = Fixes::of(
        &state.cin_reviews,
        |r| r.held_on > today,
        |r| {
            f.push(Finding::new(
                "recorded_in_future",
                "cin_reviews",
                &r.id,
                format!("held_on {} is later than the evaluation date", r.held_on),
            ));
            false
        },
    );
    let fixed = Fixed {
        referrals,
        strategy_discussions,
        assessments,
        conferences,
        conference_children,
        invitations,
        cp_plans,
        core_groups: Fixes(Vec::new()),
        visits: Fixes(Vec::new()),
        cin_reviews,
    };
    (fixed, findings)
}

/// `a` and `b`, with `a` on a thread of its own when there are threads to spare.
pub(crate) fn both<A: Send, B>(
    threads: usize,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B,
) -> (A, B) {
    if threads < 2 {
        return (a(), b());
    }
    std::thread::scope(|scope| {
        let a = scope.spawn(a);
        let b = b();
        match a.join() {
            Ok(a) => (a, b),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Dates and statuses that contradict each other, in the state as evaluated.
fn inconsistencies(s: &Clean, f: &mut Vec<Finding>) {
    for a in &s.assessments {
        if let Some(done) = a.completed_on.filter(|d| *d < a.started_on) {
            f.push(Finding::new(
                "inconsistent_dates",
                "assessments",
                &a.id,
                format!("completed_on {done} is before started_on {}", a.started_on),
            ));
        }
    }
    for c in &s.conferences {
        let held_status = matches!(c.status.as_str(), "held" | "adjourned" | "deferred");
        if held_status && c.held_at.is_none() {
            f.push(Finding::new(
                "inconsistent_status",
                "conferences",
                &c.id,
                format!(
                    "status is {} but held_at is empty (or in the future)",
                    c.status
                ),
            ));
        }
        if !held_status && c.held_at.is_some() {
            f.push(Finding::new(
                "inconsistent_status",
                "conferences",
                &c.id,
                format!("held_at is set but status is {}", c.status),
            ));
        }
    }
    for p in &s.cp_plans {
        if let Some(end) = p.ended_on.filter(|d| *d < p.started_on) {
            f.push(Finding::new(
                "inconsistent_dates",
                "cp_plans",
                &p.id,
                format!("ended_on {end} is before started_on {}", p.started_on),
            ));
        }
    }
}

// -------------------------------------------------------------------- index

/// A row's address: rows outlive the evaluation, so an address names one row,
/// and hashing it costs a multiply, where hashing an id reads the id's bytes
/// (at national size, a cache miss or two for every lookup).
type Addr = usize;

fn addr<T>(row: &T) -> Addr {
    std::ptr::from_ref(row) as usize
}

/// The case state by what evaluation looks things up by. Ids are resolved to
/// their rows once, here; the rows of a child or a conference are then found
/// by the child's or conference's slot.
struct Index<'a> {
    children: HashMap<&'a str, &'a Child>,
    child_slots: Slots<Child>,
    conference_slots: Slots<Conference>,
    /// Each child's team (of its allocated worker), by slot.
    child_teams: Vec<Option<&'a Text>>,
    /// Each conference's children (rows naming a known child) with the child, in order of child id.
    conf_children: Grouped<(&'a ConferenceChild, &'a Child)>,
    /// Each child's conferences, in date order.
    child_confs: Grouped<(&'a Conference, &'a ConferenceChild)>,
    /// Each conference's invitations, with the agency invited.
    invitations: Grouped<(&'a Invitation, &'a Agency)>,
    referrals: Grouped<&'a Referral>,
    sds: Grouped<&'a StrategyDiscussion>,
    assessments: Grouped<&'a Assessment>,
    plans: Grouped<&'a CpPlan>,
    core_groups: Grouped<Instant>,
    visits: Grouped<Instant>,
    cin_reviews: Grouped<NaiveDate>,
    reconvened_by: HashMap<Addr, Vec<&'a Conference>>,
    /// Agreed exceptions by rule, then by the id that finds them.
    exceptions: HashMap<&'a str, Exceptions<'a>>,
    conferences: HashMap<&'a str, &'a Conference>,
}

/// One rule's exceptions, each filed under the narrowest id it names (its
/// conference, else its child, else its agency), so matching an obligation
/// looks at the few that could apply rather than every one of the rule.
#[derive(Default)]
struct Exceptions<'a> {
    by_conference: HashMap<&'a str, Vec<&'a Exception>>,
    by_child: HashMap<&'a str, Vec<&'a Exception>>,
    by_agency: HashMap<&'a str, Vec<&'a Exception>>,
}

impl<'a> Exceptions<'a> {
    fn file(&mut self, e: &'a Exception) {
        let (map, key) = match (&e.conference_id, &e.child_id, &e.agency_id) {
            (Some(c), _, _) => (&mut self.by_conference, c),
            (None, Some(c), _) => (&mut self.by_child, c),
            (None, None, Some(a)) => (&mut self.by_agency, a),
            (None, None, None) => return,
        };
        map.entry(key.as_str()).or_default().push(e);
    }
}

/// Rows by id. Of rows sharing an id (a view over tables without keys can
/// give them) the first read is kept and each other is a finding, so a row
/// is never evaluated twice, nor its children's rows shared out between copies.
fn by_id<'a, R>(
    rows: impl IntoIterator<Item = &'a R>,
    table: &str,
    id: impl Fn(&'a R) -> &'a Text,
    f: &mut Vec<Finding>,
) -> HashMap<&'a str, &'a R> {
    let rows = rows.into_iter();
    let mut by: HashMap<&'a str, &'a R> = sized(rows.size_hint().0);
    for r in rows {
        match by.entry(id(r).as_str()) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(r);
            }
            std::collections::hash_map::Entry::Occupied(o) => f.push(Finding::new(
                "duplicate_id",
                table,
                o.key(),
                "another row has the same id; only the first row read is evaluated",
            )),
        }
    }
    by
}

/// An empty map with room for `n` entries.
fn sized<K, V>(n: usize) -> HashMap<K, V> {
    HashMap::with_capacity_and_hasher(n, Default::default())
}

/// Whether `row` is the one kept under its id by [`by_id`].
fn kept<R>(by: &HashMap<&str, &R>, id: &str, row: &R) -> bool {
    by.get(id).is_some_and(|k| std::ptr::eq(*k, row))
}

/// A row's place in its table: a child's or a conference's rows are then
/// found by indexing a vector, where hashing a key cost a cache miss or two a
/// lookup at national size.
type Slot = usize;

/// The slot of no row: every lookup of it finds nothing.
const NO_SLOT: Slot = usize::MAX;

/// The slots of one table's rows: a row's place in the state's slice, found
/// from its address, or for one of the few corrected copies (`Fixes`) the
/// place of the row it replaces.
#[derive(Clone)]
struct Slots<T> {
    base: Addr,
    len: usize,
    copies: HashMap<Addr, Slot>,
    of: std::marker::PhantomData<fn(&T)>,
}

impl<T> Slots<T> {
    fn new(rows: &[T], copies: impl Iterator<Item = (Addr, Slot)>) -> Self {
        Slots {
            base: rows.as_ptr() as Addr,
            len: rows.len(),
            copies: copies.collect(),
            of: std::marker::PhantomData,
        }
    }

    fn of(&self, row: &T) -> Slot {
        let size = std::mem::size_of::<T>().max(1);
        match addr(row).checked_sub(self.base).map(|off| off / size) {
            Some(slot) if slot < self.len => slot,
            _ => self.copies.get(&addr(row)).copied().unwrap_or(NO_SLOT),
        }
    }
}

/// Rows grouped by the child or conference they belong to: the rows in one
/// vector, each group a range of it found by its slot, so an index of
/// national size is a few allocations to build and to free, and a lookup is
/// an index into a vector. Ranges are `u32`: a table of four billion rows is
/// far beyond what a load can hold.
struct Grouped<V> {
    /// By slot: the group's range of `rows` (empty for none).
    ranges: Vec<(u32, u32)>,
    rows: Vec<V>,
}

impl<V: Copy> Grouped<V> {
    /// From the rows in the order read and the runs they came in (a group's
    /// slot with the run's range of `rows`), for `slots` slots. A group read
    /// in more than one run is gathered into one range, its runs in the order read.
    fn from_runs(rows: Vec<V>, mut runs: Vec<(Slot, usize, usize)>, slots: usize) -> Self {
        runs.retain(|&(k, a, b)| k < slots && a < b && b <= rows.len());
        let mut ranges = vec![(0u32, 0u32); slots];
        let as_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let mut one_run_each = true;
        for &(k, a, b) in &runs {
            if let Some(r) = ranges.get_mut(k) {
                one_run_each &= r.0 == r.1;
                *r = (as_u32(a), as_u32(b));
            }
        }
        if one_run_each {
            return Grouped { ranges, rows };
        }
        // Stable, so each group's runs stay in the order read.
        runs.sort_by_key(|r| r.0);
        ranges.fill((0, 0));
        let mut gathered = Vec::with_capacity(rows.len());
        for group in runs.chunk_by(|a, b| a.0 == b.0) {
            let start = gathered.len();
            for &(_, a, b) in group {
                gathered.extend_from_slice(rows.get(a..b).unwrap_or_default());
            }
            if let Some(r) = group.first().and_then(|&(k, _, _)| ranges.get_mut(k)) {
                *r = (as_u32(start), as_u32(gathered.len()));
            }
        }
        Grouped {
            ranges,
            rows: gathered,
        }
    }

    /// From (slot, row) pairs in the order read.
    fn from_pairs(pairs: impl Iterator<Item = (Slot, V)>, slots: usize) -> Self {
        let mut rows = Vec::with_capacity(pairs.size_hint().0);
        let mut runs: Vec<(Slot, usize, usize)> = Vec::new();
        for (k, v) in pairs {
            match runs.last_mut() {
                Some(run) if run.0 == k => run.2 += 1,
                _ => runs.push((k, rows.len(), rows.len() + 1)),
            }
            rows.push(v);
        }
        Grouped::from_runs(rows, runs, slots)
    }
}

impl<V> Grouped<V> {
    /// The group's rows; none for a slot with no rows.
    fn get(&self, slot: Slot) -> Option<&[V]> {
        let &(a, b) = self.ranges.get(slot)?;
        self.rows
            .get(a as usize..b as usize)
            .filter(|g| !g.is_empty())
    }

    /// Each group with its rows, by slot.
    fn iter(&self) -> impl Iterator<Item = (Slot, &[V])> {
        (0..self.ranges.len()).filter_map(|k| Some((k, self.get(k)?)))
    }

    /// Each group's rows, to sort or check in place.
    fn for_each_mut(&mut self, mut f: impl FnMut(&mut [V])) {
        for &(a, b) in &self.ranges {
            if let Some(group) = self.rows.get_mut(a as usize..b as usize) {
                if !group.is_empty() {
                    f(group);
                }
            }
        }
    }
}

/// A table's rows by child, each child's in the order read, with a finding
/// for each row naming no child. Tables are mostly written child by child, so
/// rows come in runs of one child, and a run costs one lookup, not one a row.
fn by_child<'a, R: 'a, V: Copy>(
    rows: &[&'a R],
    table: &str,
    children: &HashMap<&str, &'a Child>,
    slots: &Slots<Child>,
    f: &mut Vec<Finding>,
    // The row's child, its id and what is kept of it.
    read: impl Fn(&&'a R) -> (&'a Text, &'a Text, V),
) -> Grouped<V> {
    let mut kept = Vec::with_capacity(rows.len());
    let mut runs = Vec::with_capacity(children.len().min(rows.len()));
    for run in rows.chunk_by(|a, b| read(a).0 == read(b).0) {
        let Some(first) = run.first() else { continue };
        let child = read(first).0.as_str();
        match children.get(child) {
            Some(c) => {
                let start = kept.len();
                kept.extend(run.iter().map(|r| read(r).2));
                runs.push((slots.of(c), start, kept.len()));
            }
            None => {
                for r in run {
                    f.push(Finding::new(
                        "unknown_reference",
                        table,
                        read(r).1,
                        format!("child_id {child:?} names no child"),
                    ));
                }
            }
        }
    }
    Grouped::from_runs(kept, runs, slots.len)
}

/// Each child's rows of the tables that belong to one child.
struct PerChild<'a> {
    referrals: Grouped<&'a Referral>,
    sds: Grouped<&'a StrategyDiscussion>,
    assessments: Grouped<&'a Assessment>,
    plans: Grouped<&'a CpPlan>,
    core_groups: Grouped<Instant>,
    visits: Grouped<Instant>,
    cin_reviews: Grouped<NaiveDate>,
}

impl<'a> PerChild<'a> {
    fn new(s: &Clean<'a>, children: &HashMap<&'a str, &'a Child>, f: &mut Vec<Finding>) -> Self {
        let slots = &s.child_slots;
        let referrals = by_child(&s.referrals, "referrals", children, slots, f, |r| {
            (&r.child_id, &r.id, *r)
        });
        let mut sds = by_child(
            &s.strategy_discussions,
            "strategy_discussions",
            children,
            slots,
            f,
            |r| (&r.child_id, &r.id, *r),
        );
        let mut assessments = by_child(&s.assessments, "assessments", children, slots, f, |r| {
            (&r.child_id, &r.id, *r)
        });
        let mut plans = by_child(&s.cp_plans, "cp_plans", children, slots, f, |r| {
            (&r.child_id, &r.id, *r)
        });
        let mut core_groups = by_child(&s.core_groups, "core_groups", children, slots, f, |r| {
            (&r.child_id, &r.id, r.held_at)
        });
        let mut visits = by_child(&s.visits, "visits", children, slots, f, |r| {
            (&r.child_id, &r.id, r.visited_at)
        });
        let mut cin_reviews = by_child(&s.cin_reviews, "cin_reviews", children, slots, f, |r| {
            (&r.child_id, &r.id, r.held_on)
        });

        sds.for_each_mut(|v| v.sort_by(|a, b| (a.held_at, &a.id).cmp(&(b.held_at, &b.id))));
        plans.for_each_mut(|v| {
            v.sort_by(|a, b| (a.started_on, &a.id).cmp(&(b.started_on, &b.id)));
            let open: Vec<&str> = v
                .iter()
                .filter(|p| p.ended_on.is_none())
                .map(|p| p.id.as_str())
                .collect();
            if let Some(second) = open.get(1) {
                f.push(Finding::new(
                    "two_open_plans",
                    "cp_plans",
                    second,
                    format!(
                        "child {:?} has {} open plans: {}",
                        v.first().map_or("", |p| {
                            children
                                .get(p.child_id.as_str())
                                .map_or(p.child_id.as_str(), |c| c.reference.as_str())
                        }),
                        open.len(),
                        open.join(", ")
                    ),
                ));
            }
        });
        assessments.for_each_mut(|v| {
            v.sort_by(|a, b| (a.started_on, &a.id).cmp(&(b.started_on, &b.id)));
        });
        core_groups.for_each_mut(<[Instant]>::sort);
        visits.for_each_mut(<[Instant]>::sort);
        cin_reviews.for_each_mut(<[NaiveDate]>::sort);
        PerChild {
            referrals,
            sds,
            assessments,
            plans,
            core_groups,
            visits,
            cin_reviews,
        }
    }
}

/// Each conference's invitations, with the agency invited.
fn invitations<'a>(
    s: &Clean<'a>,
    conferences: &HashMap<&'a str, &'a Conference>,
    f: &mut Vec<Finding>,
) -> Grouped<(&'a Invitation, &'a Agency)> {
    let conf_slots = &s.conference_slots;
    let agencies: HashMap<&str, &Agency> = s.agencies.iter().map(|a| (a.id.as_str(), a)).collect();
    // A load shares one text per value, so an agency's invitations mostly
    // name it by one address: found by that, its text is hashed and compared once.
    let mut by_address: HashMap<(usize, usize), Option<&Agency>> = HashMap::default();
    let mut invitations = Vec::with_capacity(s.invitations.len());
    let mut invitation_runs = Vec::with_capacity(conferences.len());
    // Written conference by conference, so a run of one conference costs one lookup of it.
    for run in s
        .invitations
        .chunk_by(|a, b| a.conference_id == b.conference_id)
    {
        let conf = run
            .first()
            .and_then(|i| conferences.get(i.conference_id.as_str()).copied());
        let start = invitations.len();
        for i in run.iter().copied() {
            let row = || format!("{}/{}", i.conference_id, i.agency_id);
            let id = i.agency_id.as_str();
            let found = by_address
                .entry((id.as_ptr() as usize, id.len()))
                .or_insert_with(|| agencies.get(id).copied());
            let Some(agency) = *found else {
                f.push(Finding::new(
                    "unknown_agency",
                    "invitations",
                    &row(),
                    format!("agency_id {:?} names no agency", i.agency_id),
                ));
                continue;
            };
            match conf {
                Some(_) => invitations.push((i, agency)),
                None => f.push(Finding::new(
                    "unknown_reference",
                    "invitations",
                    &row(),
                    format!("conference_id {:?} names no conference", i.conference_id),
                )),
            }
        }
        if let Some(conf) = conf {
            invitation_runs.push((conf_slots.of(conf), start, invitations.len()));
        }
    }
    Grouped::from_runs(invitations, invitation_runs, conf_slots.len)
}

/// Everything else that ties rows together but invitations: children's teams,
/// conferences with their children, reconvened conferences, exceptions.
struct Links<'a> {
    child_teams: Vec<Option<&'a Text>>,
    conf_children: Grouped<(&'a ConferenceChild, &'a Child)>,
    child_confs: Grouped<(&'a Conference, &'a ConferenceChild)>,
    reconvened_by: HashMap<Addr, Vec<&'a Conference>>,
    exceptions: HashMap<&'a str, Exceptions<'a>>,
}

impl<'a> Links<'a> {
    fn new(
        s: &Clean<'a>,
        children: &HashMap<&'a str, &'a Child>,
        conferences: &HashMap<&'a str, &'a Conference>,
        f: &mut Vec<Finding>,
    ) -> Self {
        let (child_slots, conf_slots) = (&s.child_slots, &s.conference_slots);
        let workers: HashMap<&str, &Worker> =
            s.workers.iter().map(|w| (w.id.as_str(), w)).collect();
        let teams: HashMap<&str, &Team> = s.teams.iter().map(|t| (t.id.as_str(), t)).collect();

        for w in s.workers {
            if !teams.contains_key(w.team_id.as_str()) {
                f.push(Finding::new(
                    "unknown_reference",
                    "workers",
                    &w.id,
                    format!("team_id {:?} names no team", w.team_id),
                ));
            }
        }
        // By slot: looked up once here, not for every subject about the child.
        let child_teams = (s.children.iter())
            .map(|c| {
                let w = c.allocated_worker_id.as_ref()?;
                let worker = workers.get(w.as_str());
                if worker.is_none() {
                    f.push(Finding::new(
                        "unknown_reference",
                        "children",
                        &c.id,
                        format!("allocated_worker_id {w:?} names no worker"),
                    ));
                }
                worker.map(|w| &w.team_id)
            })
            .collect();
        let mut links = Vec::with_capacity(s.conference_children.len());
        for cc in s.conference_children.iter().copied() {
            let row = || format!("{}/{}", cc.conference_id, cc.child_id);
            let conf = conferences.get(cc.conference_id.as_str());
            if conf.is_none() {
                f.push(Finding::new(
                    "unknown_reference",
                    "conference_children",
                    &row(),
                    format!("conference_id {:?} names no conference", cc.conference_id),
                ));
            }
            let Some(child) = children.get(cc.child_id.as_str()).copied() else {
                f.push(Finding::new(
                    "unknown_reference",
                    "conference_children",
                    &row(),
                    format!("child_id {:?} names no child", cc.child_id),
                ));
                continue;
            };
            if let Some(conf) = conf {
                links.push((*conf, cc, child));
            }
        }
        let mut conf_children = Grouped::from_pairs(
            links
                .iter()
                .map(|&(conf, cc, child)| (conf_slots.of(conf), (cc, child))),
            conf_slots.len,
        );
        conf_children.for_each_mut(|v| v.sort_by(|a, b| a.0.child_id.cmp(&b.0.child_id)));
        // By child: a child's links are spread over the conferences read, so gathered by sorting (stably).
        links.sort_by_key(|&(_, _, child)| child_slots.of(child));
        let mut child_confs = Grouped::from_pairs(
            links
                .iter()
                .map(|&(conf, cc, child)| (child_slots.of(child), (conf, cc))),
            child_slots.len,
        );
        drop(links);
        child_confs.for_each_mut(|v| {
            v.sort_by(|a, b| (a.0.date(), &a.0.id).cmp(&(b.0.date(), &b.0.id)));
        });
        let mut reconvened_by: HashMap<Addr, Vec<&Conference>> = HashMap::default();
        for c in s
            .conferences
            .iter()
            .copied()
            .filter(|c| kept(conferences, &c.id, c))
        {
            if let Some(r) = &c.reconvenes_id {
                if let Some(reconvened) = conferences.get(r.as_str()) {
                    reconvened_by.entry(addr(*reconvened)).or_default().push(c);
                } else {
                    f.push(Finding::new(
                        "missing_reconvened_conference",
                        "conferences",
                        &c.id,
                        format!("reconvenes_id {r:?} names no conference"),
                    ));
                }
            }
        }

        // Ties are broken by id (here and in PerChild), so results never depend on the order rows were read in.
        for v in reconvened_by.values_mut() {
            v.sort_by(|a, b| (a.date(), &a.id).cmp(&(b.date(), &b.id)));
        }
        let mut exceptions = HashMap::<&str, Exceptions>::default();
        for e in s.exceptions {
            exceptions.entry(e.rule.as_str()).or_default().file(e);
        }
        for e in s.exceptions {
            if e.child_id.is_none() && e.conference_id.is_none() && e.agency_id.is_none() {
                f.push(Finding::new(
                    "exception_unmatched",
                    "exceptions",
                    &e.id,
                    "names no child, conference or agency, so it applies to nothing",
                ));
            }
        }

        Links {
            child_teams,
            conf_children,
            child_confs,
            reconvened_by,
            exceptions,
        }
    }
}

impl<'a> Index<'a> {
    /// Indexes the state; with `threads` above one, the per-child tables and
    /// the invitations each on a thread of its own meanwhile (they need only
    /// the children and conferences by id, and each takes about as long as
    /// the rest), their findings added after.
    fn new(s: &Clean<'a>, f: &mut Vec<Finding>, threads: usize) -> Self {
        let children = by_id(s.children, "children", |c| &c.id, f);
        let conferences = by_id(s.conferences.iter().copied(), "conferences", |c| &c.id, f);
        let (((per_child, per_child_found), (invitations, invitations_found)), links) = both(
            threads,
            || {
                both(
                    threads,
                    || {
                        let mut found = Vec::new();
                        (PerChild::new(s, &children, &mut found), found)
                    },
                    || {
                        let mut found = Vec::new();
                        (invitations(s, &conferences, &mut found), found)
                    },
                )
            },
            || Links::new(s, &children, &conferences, f),
        );
        f.extend(per_child_found);
        f.extend(invitations_found);
        let idx = Index {
            children,
            child_slots: s.child_slots.clone(),
            conference_slots: s.conference_slots.clone(),
            child_teams: links.child_teams,
            conf_children: links.conf_children,
            child_confs: links.child_confs,
            invitations,
            referrals: per_child.referrals,
            sds: per_child.sds,
            assessments: per_child.assessments,
            plans: per_child.plans,
            core_groups: per_child.core_groups,
            visits: per_child.visits,
            cin_reviews: per_child.cin_reviews,
            reconvened_by: links.reconvened_by,
            exceptions: links.exceptions,
            conferences,
        };
        idx.cross_checks(f);
        idx
    }

    /// A child's case reference (what people look children up by), for messages.
    fn reference<'r>(&'r self, child: &'r str) -> &'r str {
        self.children
            .get(child)
            .map_or(child, |c| c.reference.as_str())
    }

    /// Contradictions that need several tables at once.
    fn cross_checks(&self, f: &mut Vec<Finding>) {
        for (child, confs) in self.child_confs.iter() {
            // For a finding's message only: looked up when there is one.
            let reference = || {
                confs
                    .first()
                    .map_or("", |(_, cc)| self.reference(&cc.child_id))
            };
            let s47: Vec<&&StrategyDiscussion> = self
                .sds
                .get(child)
                .map(|v| v.iter().filter(|d| d.s47_initiated).collect())
                .unwrap_or_default();
            for (conf, _) in confs {
                let Some(held) = conf.took_place() else {
                    continue;
                };
                if matches!(conf.kind.as_str(), "initial" | "pre_birth")
                    && conf.reconvenes_id.is_none()
                    && !s47.is_empty()
                    && s47.iter().all(|d| d.held_at > held)
                {
                    f.push(Finding::new(
                        "conference_before_strategy_discussion",
                        "conferences",
                        &conf.id,
                        format!("initial conference held {} before child {:?}'s first section 47 strategy discussion ({})", stamp(held), reference(), s47.first().map(|d| stamp(d.held_at)).unwrap_or_default()),
                    ));
                }
                if conf.kind == "review" {
                    let day = held.date_naive();
                    let on_plan = self.plans.get(child).is_some_and(|ps| {
                        ps.iter()
                            .any(|p| p.started_on <= day && p.ended_on.is_none_or(|e| e >= day))
                    });
                    if !on_plan {
                        f.push(Finding::new("review_without_plan", "conferences", &conf.id, format!("review conference about child {:?}, who has no child protection plan on {day}", reference())));
                    }
                }
            }
        }
    }

    fn took_place_confs(
        &self,
        child: &Child,
    ) -> impl Iterator<Item = (&'a Conference, &'a ConferenceChild, Instant)> + '_ {
        self.child_confs
            .get(self.child(child))
            .into_iter()
            .flatten()
            .filter_map(|(c, cc)| c.took_place().map(|t| (*c, *cc, t)))
    }

    /// The child's plan at a date: the one covering it, else the next to start.
    fn plan_at(&self, child: &Child, day: NaiveDate) -> Option<&'a CpPlan> {
        let plans = self.plans.get(self.child(child))?;
        plans
            .iter()
            .rev()
            .find(|p| p.started_on <= day && p.ended_on.is_none_or(|e| e >= day))
            .or_else(|| plans.iter().find(|p| p.started_on >= day))
            .copied()
    }

    /// The conference's children, in order of child id.
    fn children_of(&self, conf: &Conference) -> &[(&'a ConferenceChild, &'a Child)] {
        self.conf_children
            .get(self.conference(conf))
            .unwrap_or_default()
    }

    fn child(&self, child: &Child) -> Slot {
        self.child_slots.of(child)
    }

    fn conference(&self, conf: &Conference) -> Slot {
        self.conference_slots.of(conf)
    }

    /// The child a conference is counted under (its board's, its team's): its first by id.
    fn first_child(&self, conf: &Conference) -> Option<&'a Child> {
        self.children_of(conf).first().map(|(_, c)| *c)
    }

    fn team_of(&self, child: Option<&Child>) -> Option<&'a Text> {
        self.child_teams.get(self.child(child?)).copied().flatten()
    }
}

// ---------------------------------------------------------------- obligations

#[derive(Clone, Copy, Default)]
struct Ctx<'a> {
    child: Option<&'a Child>,
    conference: Option<&'a Conference>,
    cc: Option<&'a ConferenceChild>,
    invitation: Option<&'a Invitation>,
    agency: Option<&'a Agency>,
    referral: Option<&'a Referral>,
    sd: Option<&'a StrategyDiscussion>,
    plan: Option<&'a CpPlan>,
    /// The team of the child's allocated worker, looked up once per subject.
    team: Option<&'a Text>,
    /// An initial conference decided on but not yet arranged.
    awaiting: bool,
}

struct BoardEval<'e, 'a> {
    idx: &'e Index<'a>,
    board: &'a Board,
    /// What every obligation of each rule has in common, in the board's order of rules.
    refs: &'a [Arc<RuleRef>],
    reasons: &'e mut Reasons,
    cal: &'e Calendar,
    now: Instant,
    /// The local date of `now`.
    today: NaiveDate,
    window: (Option<NaiveDate>, Option<NaiveDate>),
    calendar_errors: &'e mut HashMap<String, CalendarError>,
    /// What was last worked out for each rule, in the board's order of rules.
    per_rule: Vec<PerRule>,
    /// The agreed exceptions to each rule, in the board's order of rules:
    /// found once, not by the rule's id for every obligation.
    exceptions: Vec<Option<&'e Exceptions<'a>>>,
    /// The place in `per_rule` of the rule being evaluated.
    current: usize,
}

/// What was last worked out for a rule: the invitations of one conference
/// come one after another and share their start, offset and deadline, so
/// each is worked out once.
#[derive(Default)]
struct PerRule {
    /// The last deadline: its start, offset and the deadline (none when the calendar could not give one).
    last_due: Option<(Instant, Offset, Option<Instant>)>,
    /// The last pending status: its deadline and the status.
    last_pending: Option<(Instant, Status)>,
}

// A child's happenings are sorted while indexing, and recurring rules ask for
// the next one after each occurrence: found by binary search, not by a scan
// from the first, which grows with the square of a long plan's history.

/// The first of sorted instants at or after `t`.
fn first_from(sorted: &[Instant], t: Instant) -> Option<Instant> {
    sorted.get(sorted.partition_point(|x| *x < t)).copied()
}

/// The first of sorted instants after `t`.
fn first_after(sorted: &[Instant], t: Instant) -> Option<Instant> {
    sorted.get(sorted.partition_point(|x| *x <= t)).copied()
}

fn age_on(dob: NaiveDate, day: NaiveDate) -> i32 {
    let mut age = day.year() - dob.year();
    if (day.month(), day.day()) < (dob.month(), dob.day()) {
        age -= 1;
    }
    age
}

/// Each of the children's rows of a per-child table as a subject, with its child.
fn each_row<'a, R>(
    idx: &Index<'a>,
    children: &[&'a Child],
    rows: &Grouped<&'a R>,
    f: &mut dyn FnMut(Ctx<'a>),
    with: impl Fn(Ctx<'a>, &'a R) -> Ctx<'a>,
) {
    for c in children {
        for r in rows.get(idx.child(c)).into_iter().flatten() {
            f(with(
                Ctx {
                    child: Some(c),
                    ..Ctx::default()
                },
                r,
            ));
        }
    }
}

/// Hands `f` every subject of a kind among these children and conferences.
fn each_subject<'a>(
    idx: &Index<'a>,
    subject: Subject,
    children: &[&'a Child],
    conferences: &[&'a Conference],
    f: &mut dyn FnMut(Ctx<'a>),
) {
    match subject {
        Subject::Referral => each_row(idx, children, &idx.referrals, f, |ctx, r| Ctx {
            referral: Some(r),
            ..ctx
        }),
        Subject::StrategyDiscussion => each_row(idx, children, &idx.sds, f, |ctx, d| Ctx {
            sd: Some(d),
            ..ctx
        }),
        Subject::Plan => each_row(idx, children, &idx.plans, f, |ctx, p| Ctx {
            plan: Some(p),
            ..ctx
        }),
        Subject::Conference => {
            for conf in conferences {
                let child = idx.first_child(conf);
                f(Ctx {
                    conference: Some(conf),
                    child,
                    ..Ctx::default()
                });
            }
        }
        Subject::Invitation => {
            for conf in conferences {
                let child = idx.first_child(conf);
                for &(inv, agency) in idx
                    .invitations
                    .get(idx.conference(conf))
                    .into_iter()
                    .flatten()
                    .filter(|(i, _)| i.report_expected)
                {
                    f(Ctx {
                        conference: Some(conf),
                        child,
                        invitation: Some(inv),
                        agency: Some(agency),
                        ..Ctx::default()
                    });
                }
            }
        }
        Subject::ChildConference => {
            for conf in conferences {
                for &(cc, child) in idx.children_of(conf) {
                    f(Ctx {
                        conference: Some(conf),
                        cc: Some(cc),
                        child: Some(child),
                        ..Ctx::default()
                    });
                }
            }
        }
    }
}

impl<'e, 'a> BoardEval<'e, 'a> {
    fn run(
        mut self,
        children: &[&'a Child],
        conferences: &[&'a Conference],
        out: &mut dyn FnMut(&Draft<'a>),
    ) {
        let board = self.board;
        let idx = self.idx;
        self.per_rule = board.rules.iter().map(|_| PerRule::default()).collect();
        self.exceptions = (board.rules.iter())
            .map(|r| idx.exceptions.get(r.id.as_str()))
            .collect();
        // Each subject once, with every rule about it: its rows are read while
        // they are in cache, where a sweep of every subject per rule would read
        // a national state from memory once for each rule.
        let mut by_subject: Vec<(Subject, Vec<(usize, &'a Rule)>)> = Vec::new();
        for (at, rule) in board.rules.iter().enumerate() {
            match by_subject.iter_mut().find(|(s, _)| *s == rule.subject) {
                Some((_, rules)) => rules.push((at, rule)),
                None => by_subject.push((rule.subject, vec![(at, rule)])),
            }
        }
        for (subject, rules) in &by_subject {
            each_subject(idx, *subject, children, conferences, &mut |mut ctx| {
                ctx.team = idx.team_of(ctx.child);
                for &(at, rule) in rules {
                    if self.matches(rule, &ctx) {
                        self.current = at;
                        self.obligations(rule, &ctx, out);
                    }
                }
            });
        }
        for (at, rule) in board.rules.iter().enumerate().filter(|(_, r)| {
            r.subject == Subject::ChildConference && r.filter.include_awaiting == Some(true)
        }) {
            self.current = at;
            for c in children {
                if let Some(sd) = self.awaiting_conference(rule, c) {
                    let ctx = Ctx {
                        child: Some(c),
                        team: idx.team_of(Some(c)),
                        sd: Some(sd),
                        awaiting: true,
                        ..Ctx::default()
                    };
                    if self.matches(rule, &ctx) {
                        self.obligations(rule, &ctx, out);
                    }
                }
            }
        }
    }

    /// The child's last s47 strategy discussion, when it decided on a conference
    /// and no conference of the rule's kinds has been arranged after it.
    fn awaiting_conference(&self, rule: &'a Rule, child: &Child) -> Option<&'a StrategyDiscussion> {
        let last = self
            .idx
            .sds
            .get(self.idx.child(child))?
            .iter()
            .rev()
            .find(|d| d.s47_initiated)?;
        last.conference_decided_at?;
        let kinds = rule.filter.conference_kind.as_deref().unwrap_or(&[]);
        let arranged = self
            .idx
            .child_confs
            .get(self.idx.child(child))
            .into_iter()
            .flatten()
            .any(|(c, _)| {
                (kinds.is_empty() || kinds.iter().any(|k| c.kind == *k))
                    && c.date()
                        .or(c.requested_at)
                        .is_none_or(|d| d >= last.held_at)
            });
        (!arranged).then_some(*last)
    }

    fn matches(&self, rule: &'a Rule, ctx: &Ctx<'a>) -> bool {
        let f = &rule.filter;
        let in_list = |list: &Option<Vec<String>>, v: Option<&str>| {
            list.as_ref()
                .is_none_or(|l| v.is_some_and(|v| l.iter().any(|x| x == v)))
        };
        let flag = |want: Option<bool>, have: bool| want.is_none_or(|w| w == have);
        // For a fact that costs a lookup: only worked out when the rule asks.
        let lazy = |want: Option<bool>, have: &dyn Fn() -> bool| want.is_none_or(|w| w == have());
        if !ctx.awaiting {
            if let Some(conf) = ctx.conference {
                if !in_list(&f.conference_kind, Some(&conf.kind))
                    || !in_list(&f.conference_status, Some(&conf.status))
                {
                    return false;
                }
                if !flag(f.chair_overruled, conf.chair_overruled)
                    || !lazy(f.reconvened, &|| {
                        self.idx.reconvened_by.contains_key(&addr(conf))
                    })
                    || !flag(f.reconvenes, conf.reconvenes_id.is_some())
                {
                    return false;
                }
                // The conference's children: a lookup, made only for rules that ask.
                if f.plan_made.is_some() || f.outcome.is_some() {
                    let ccs = self.idx.children_of(conf);
                    if !flag(
                        f.plan_made,
                        ccs.iter()
                            .any(|(cc, _)| cc.outcome.as_deref() == Some("plan")),
                    ) {
                        return false;
                    }
                    if let Some(outcomes) = &f.outcome {
                        let ok = match ctx.cc {
                            Some(cc) => cc
                                .outcome
                                .as_ref()
                                .is_some_and(|o| outcomes.iter().any(|x| *o == *x)),
                            None => ccs.iter().any(|(cc, _)| {
                                cc.outcome
                                    .as_ref()
                                    .is_some_and(|o| outcomes.iter().any(|x| *o == *x))
                            }),
                        };
                        if !ok {
                            return false;
                        }
                    }
                }
                if f.first_review.is_some() {
                    let first = ctx.child.is_some_and(|c| self.is_first_review(c, conf));
                    if !flag(f.first_review, first) {
                        return false;
                    }
                }
            } else if f.conference_kind.is_some()
                || f.conference_status.is_some()
                || f.outcome.is_some()
            {
                return false;
            }
        }
        if f.agency_group.is_some() || f.agency_group_not.is_some() {
            let group = ctx.agency.map(|a| a.professional_group.as_str());
            if !in_list(&f.agency_group, group) {
                return false;
            }
            if let (Some(not), Some(g)) = (&f.agency_group_not, group) {
                if not.iter().any(|x| x == g) {
                    return false;
                }
            }
        }
        if let Some(concerns) = &f.concern {
            let concern = ctx
                .referral
                .and_then(|r| r.concern.as_ref())
                .or(ctx.sd.and_then(|d| d.concern.as_ref()));
            if !concern.is_some_and(|c| concerns.iter().any(|x| *c == *x)) {
                return false;
            }
        }
        if let Some(r) = ctx.referral {
            if !flag(f.by_telephone, r.by_telephone) {
                return false;
            }
        }
        if let Some(d) = ctx.sd.filter(|_| !ctx.awaiting) {
            if !flag(f.s47_initiated, d.s47_initiated)
                || !flag(f.conference_decided, d.conference_decided_at.is_some())
            {
                return false;
            }
        }
        if let Some(p) = ctx.plan {
            if !flag(f.plan_ended, p.ended_on.is_some()) {
                return false;
            }
        }
        if f.age_from.is_some() || f.age_to.is_some() {
            let day = ctx
                .conference
                .and_then(Conference::date)
                .unwrap_or(self.now);
            let day = self.cal.local_date(day);
            let Some(dob) = ctx
                .child
                .and_then(|c| c.date_of_birth)
                .filter(|d| *d <= day)
            else {
                return false;
            };
            let age = age_on(dob, day);
            if f.age_from.is_some_and(|a| age < a as i32)
                || f.age_to.is_some_and(|a| age > a as i32)
            {
                return false;
            }
        }
        true
    }

    /// A review conference with no other review between it and the conference that made the plan.
    fn is_first_review(&self, child: &Child, conf: &Conference) -> bool {
        let Some(at) = conf.took_place() else {
            return false;
        };
        let mut previous_reviews = 0;
        for (c, _, t) in self.idx.took_place_confs(child) {
            if t >= at {
                break;
            }
            match c.kind.as_str() {
                "review" => previous_reviews += 1,
                _ => previous_reviews = 0,
            }
        }
        previous_reviews == 0
    }

    // ----------------------------------------------------------------- events

    fn date_event(&self, d: NaiveDate) -> Instant {
        self.cal.start_of_day(d)
    }

    /// The instant of a named event for a subject; "first X" events look from `after`.
    fn event(&self, ev: Event, ctx: &Ctx<'a>, after: Option<Instant>) -> Option<Instant> {
        let idx = self.idx;
        let child = ctx.child.map(|c| idx.child(c));
        let after_t = after.unwrap_or(Instant::MIN_UTC);
        match ev {
            Event::ReferralReceivedAt => ctx.referral.map(|r| r.received_at),
            Event::ReferralWrittenReceivedAt => ctx.referral.and_then(|r| {
                if r.by_telephone {
                    r.written_confirmation_at
                } else {
                    Some(r.received_at)
                }
            }),
            Event::ReferralWrittenConfirmationAt => ctx.referral?.written_confirmation_at,
            Event::ReferralAcknowledgedAt => ctx.referral?.acknowledged_at,
            Event::ReferralNextStepsRecordedAt => ctx.referral?.next_steps_recorded_at,
            Event::NextStrategyDiscussionHeldAt => {
                let sds = idx.sds.get(child?)?;
                sds.get(sds.partition_point(|d| d.held_at < after_t))
                    .map(|d| d.held_at)
            }
            Event::InitialAssessmentCompletedOn | Event::CoreAssessmentCompletedOn => {
                let kind = if ev == Event::InitialAssessmentCompletedOn {
                    "initial"
                } else {
                    "core"
                };
                let from = self.cal.local_date(after_t);
                let a = idx
                    .assessments
                    .get(child?)?
                    .iter()
                    .find(|a| a.kind == kind && a.started_on >= from)?;
                a.completed_on.map(|d| self.date_event(d))
            }
            Event::StrategyDiscussionHeldAt => ctx.sd.map(|d| d.held_at),
            Event::StrategyDiscussionChildSeenAt => ctx.sd?.child_seen_at,
            Event::StrategyDiscussionConferenceDecidedAt => ctx.sd?.conference_decided_at,
            Event::NextInitialConferenceRequestedAt | Event::NextInitialConferenceHeldAt => {
                let sd_at = ctx.sd?.held_at;
                let conf = idx
                    .child_confs
                    .get(child?)?
                    .iter()
                    .map(|(c, _)| *c)
                    .find(|c| {
                        matches!(c.kind.as_str(), "initial" | "pre_birth")
                            && !c.is_cancelled()
                            && c.reconvenes_id.is_none()
                            && c.date().or(c.requested_at).is_none_or(|d| d >= sd_at)
                    })?;
                if ev == Event::NextInitialConferenceRequestedAt {
                    conf.requested_at
                } else {
                    conf.took_place()
                }
            }
            Event::LastS47StrategyDiscussionHeldAt => {
                let before = ctx
                    .conference
                    .and_then(Conference::date)
                    .unwrap_or(self.now);
                idx.sds
                    .get(child?)?
                    .iter()
                    .rev()
                    .find(|d| d.s47_initiated && d.held_at <= before)
                    .map(|d| d.held_at)
            }
            Event::ConferenceRequestedAt => ctx.conference?.requested_at,
            Event::ConferenceTransferNotifiedAt => ctx.conference?.transfer_notified_at,
            Event::ConferenceDate => ctx.conference?.date(),
            Event::ConferenceHeldAt => ctx.conference?.took_place(),
            Event::ConferenceChairLiaisonAt => ctx.conference?.chair_liaison_at,
            Event::ConferenceDecisionCirculatedAt => ctx.conference?.decision_circulated_at,
            Event::ConferencePlanCirculatedAt => ctx.conference?.plan_circulated_at,
            Event::ConferencePlanHardCopySentAt => ctx.conference?.plan_hard_copy_sent_at,
            Event::ConferenceSummaryCirculatedAt => ctx.conference?.summary_circulated_at,
            Event::ConferenceMinutesCirculatedAt => ctx.conference?.minutes_circulated_at,
            Event::ReconveningConferenceHeldAt => {
                let conf = ctx.conference?;
                let direct = idx
                    .reconvened_by
                    .get(&addr(conf))
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.took_place())
                    .min();
                direct.or_else(|| {
                    let from = conf.date()?;
                    idx.children_of(conf)
                        .iter()
                        .flat_map(|(_, c)| idx.took_place_confs(c))
                        .filter(|(c, _, t)| c.id != conf.id && *t > from)
                        .map(|(_, _, t)| t)
                        .min()
                })
            }
            Event::FirstCoreGroupHeldAt => {
                let first = |c: &Child| first_from(idx.core_groups.get(idx.child(c))?, after_t);
                // A child's own (of a conference or a plan), else the first among the conference's children.
                if ctx.cc.is_some() || ctx.plan.is_some() {
                    first(ctx.child?)
                } else {
                    idx.children_of(ctx.conference?)
                        .iter()
                        .filter_map(|(_, c)| first(c))
                        .min()
                }
            }
            Event::NextReviewConferenceHeldAt => {
                let own = ctx.conference.map(|c| c.id.as_str());
                idx.took_place_confs(ctx.child?)
                    .find(|(c, _, t)| {
                        c.kind == "review" && Some(c.id.as_str()) != own && *t > after_t
                    })
                    .map(|(_, _, t)| t)
            }
            Event::InvitationReportReceivedAt => ctx.invitation?.report_received_at,
            Event::InvitationReportSharedWithFamilyAt => {
                ctx.invitation?.report_shared_with_family_at
            }
            Event::InvitationReportAuthorisedAt => ctx.invitation?.report_authorised_at,
            Event::ConferenceChildWorkbookReceivedAt => ctx.cc?.workbook_received_at,
            Event::ChildExpectedDueDate => ctx.child?.expected_due_date.map(|d| self.date_event(d)),
            Event::ChildEighteenthBirthday => {
                let plan = ctx.plan?;
                let birthday =
                    crate::domain::calendar::add_months(ctx.child?.date_of_birth?, 18 * 12);
                let window_start = crate::domain::calendar::add_months(birthday, -3);
                let covers =
                    plan.started_on <= birthday && plan.ended_on.is_none_or(|e| e >= window_start);
                covers.then(|| self.date_event(birthday))
            }
            Event::PlanStartedOn => ctx.plan.map(|p| self.date_event(p.started_on)),
            Event::PlanEndedOn => ctx.plan?.ended_on.map(|d| self.date_event(d)),
            Event::CoreGroupOrConferenceHeldAt => {
                let cg = idx
                    .core_groups
                    .get(child?)
                    .and_then(|v| first_after(v, after_t));
                let conf = idx
                    .took_place_confs(ctx.child?)
                    .map(|(_, _, t)| t)
                    .find(|t| *t > after_t);
                [cg, conf].into_iter().flatten().min()
            }
            Event::VisitVisitedAt => first_after(idx.visits.get(child?)?, after_t),
            Event::CinReviewHeldOn => {
                let days = idx.cin_reviews.get(child?)?;
                days.get(days.partition_point(|d| self.date_event(*d) <= after_t))
                    .map(|d| self.date_event(*d))
            }
        }
    }

    // --------------------------------------------------------- obligations

    fn in_window(&self, start: Instant) -> bool {
        // A board with one version has no window: then no local date is needed.
        if self.window == (None, None) {
            return true;
        }
        let day = self.cal.local_date(start);
        self.window.0.is_none_or(|from| day >= from) && self.window.1.is_none_or(|to| day < to)
    }

    // `current` is always the index of a rule of the board, and `per_rule`
    // and `refs` hold one entry a rule (`run` sets all three).
    #[allow(clippy::indexing_slicing)]
    fn deadline(&mut self, start: Instant, offset: &Offset, what: &str) -> Option<Instant> {
        if let Some((s, o, due)) = &self.per_rule[self.current].last_due {
            if *s == start && o == offset {
                return *due;
            }
        }
        let due = match self.cal.deadline(start, offset) {
            Ok(d) => Some(d),
            Err(e) => {
                let key = match &e {
                    CalendarError::YearNotCovered { year, .. } => {
                        format!("{}:{year}", self.board.id)
                    }
                    _ => format!("{}:{what}", self.board.id),
                };
                self.calendar_errors.entry(key).or_insert(e);
                None
            }
        };
        self.per_rule[self.current].last_due = Some((start, offset.clone(), due));
        due
    }

    /// The reason of an agreed exception matching this obligation: every id the
    /// exception names must be the obligation's (a child named on a conference-wide
    /// obligation must be one of the conference's children).
    fn exception(&self, rule: &'a Rule, ctx: &Ctx<'a>) -> Option<String> {
        let of_rule = self.exceptions.get(self.current).copied().flatten()?;
        let names_child = !matches!(rule.subject, Subject::Conference | Subject::Invitation);
        let conf_children = || ctx.conference.map_or(&[][..], |c| self.idx.children_of(c));
        let child_ok = |want: &str| {
            if names_child {
                ctx.child.is_some_and(|c| c.id == want)
            } else {
                conf_children().iter().any(|(cc, _)| cc.child_id == want)
            }
        };
        fn found<'m, 'x>(
            map: &'m HashMap<&'x str, Vec<&'x Exception>>,
            key: Option<&str>,
        ) -> impl Iterator<Item = &'x Exception> + 'm {
            key.and_then(|k| map.get(k)).into_iter().flatten().copied()
        }
        let by_child: Vec<&Exception> = if names_child {
            found(&of_rule.by_child, ctx.child.map(|c| c.id.as_str())).collect()
        } else {
            conf_children()
                .iter()
                .flat_map(|(cc, _)| found(&of_rule.by_child, Some(cc.child_id.as_str())))
                .collect()
        };
        found(
            &of_rule.by_conference,
            ctx.conference.map(|c| c.id.as_str()),
        )
        .chain(by_child)
        .chain(found(&of_rule.by_agency, ctx.agency.map(|a| a.id.as_str())))
        .filter(|e| {
            e.child_id.as_deref().is_none_or(child_ok)
                && e.conference_id
                    .as_deref()
                    .is_none_or(|w| ctx.conference.is_some_and(|c| c.id == w))
                && e.agency_id
                    .as_deref()
                    .is_none_or(|w| ctx.agency.is_some_and(|a| a.id == w))
        })
        // The earliest agreed exception gives the reason, whatever order the rows came in.
        .min_by(|a, b| (a.recorded_at, &a.id).cmp(&(b.recorded_at, &b.id)))
        .map(|e| e.reason.to_string())
    }

    #[allow(clippy::indexing_slicing)] // `current`: see `deadline`
    fn base(&self, rule: &'a Rule, ctx: &Ctx<'a>, occurrence: Occurrence<&'a Name>) -> Draft<'a> {
        // Obligations about a conference as a whole or an agency's report name no child.
        let names_child = !matches!(rule.subject, Subject::Conference | Subject::Invitation);
        let child = ctx.child.filter(|_| names_child);
        let refs = self.refs;
        Obligation {
            of: &refs[self.current],
            child: child.map(|c| c.reference.name()),
            child_id: child.map(|c| c.id.name()),
            conference: ctx.conference.map(|c| c.id.name()),
            agency: ctx.agency.map(|a| a.id.name()),
            team: ctx.team.map(Text::name),
            occurrence,
            starts_at: self.now,
            due_at: self.now,
            met_at: None,
            status: Status::Pending,
            late_working_days: None,
            exception_reason: None,
            audit_by: rule.audit_by,
            start_event: rule.starts.unwrap_or(Event::ConferenceHeldAt),
            offset: None,
            capped_by: None,
        }
    }

    fn occurrence(&self, rule: &'a Rule, ctx: &Ctx<'a>) -> Occurrence<&'a Name> {
        let from = if ctx.awaiting {
            ctx.sd.map(|d| (CountedFrom::Awaiting, &d.id))
        } else {
            match rule.subject {
                Subject::Referral => ctx.referral.map(|r| (CountedFrom::Referral, &r.id)),
                Subject::StrategyDiscussion => {
                    ctx.sd.map(|d| (CountedFrom::StrategyDiscussion, &d.id))
                }
                Subject::Plan => ctx.plan.map(|p| (CountedFrom::Plan, &p.id)),
                _ => None,
            }
        };
        Occurrence::new(from.map(|(what, id)| (what, id.name())), None)
    }

    fn obligations(&mut self, rule: &'a Rule, ctx: &Ctx<'a>, out: &mut dyn FnMut(&Draft<'a>)) {
        match rule.kind {
            RuleKind::Standard => self.standard(rule, ctx, out),
            RuleKind::Recurring => self.recurring(rule, ctx, out),
            RuleKind::Deadline | RuleKind::Notice => {
                self.one_off(rule, ctx, out);
            }
        }
    }

    fn offset_for(&self, rule: &'a Rule, ctx: &Ctx<'a>) -> Option<Offset> {
        let offset = rule.offset_for(ctx.conference.map(|c| c.kind.as_str()))?;
        offset.resolve(ctx.plan.and_then(|p| p.visit_interval_working_days))
    }

    /// The rule's one obligation for the subject, if it has one, handed to
    /// `out` (an obligation is built only once it is known to exist, and moved once).
    fn one_off(
        &mut self,
        rule: &'a Rule,
        ctx: &Ctx<'a>,
        out: &mut dyn FnMut(&Draft<'a>),
    ) -> Option<()> {
        let start = self.event(rule.starts?, ctx, None)?;
        if !self.in_window(start) {
            return None;
        }
        let offset = self.offset_for(rule, ctx)?;
        let mut due = self.deadline(start, &offset, &rule.id)?;
        let met_from = match &rule.met_window {
            Some(w) => self
                .deadline(start, w, &rule.id)
                .map(|t| self.cal.start_of_day(self.cal.local_date(t))),
            None => Some(start),
        };
        // A windowed duty (the review around the 18th birthday) exists once its window opens.
        if rule.met_window.is_some() && met_from.is_none_or(|from| from > self.now) {
            return None;
        }
        let occurrence = self.occurrence(rule, ctx);
        let mut o = self.base(rule, ctx, occurrence);
        o.starts_at = start;
        o.offset = offset.shown();
        if let Some(cap) = &rule.cap {
            if let Some(c) = self.event(*cap, ctx, Some(start)).filter(|c| *c < due) {
                due = c;
                o.capped_by = Some(*cap);
            }
        }
        o.due_at = due;
        o.met_at = rule.met_by.and_then(|m| self.event(m, ctx, met_from));
        if rule.kind == RuleKind::Notice {
            o.status = if self.now > due {
                Status::Void
            } else {
                self.pending(rule, due)
            };
        } else {
            self.settle(rule, ctx, &mut o);
        }
        out(&o);
        Some(())
    }

    /// Status, lateness and exception for a deadline obligation whose dates are set.
    fn settle(&mut self, rule: &'a Rule, ctx: &Ctx<'a>, o: &mut Draft<'a>) {
        let due = o.due_at;
        if rule.void_when.contains(&Void::ConferenceCancelled)
            && ctx.conference.is_some_and(Conference::is_cancelled)
        {
            o.status = Status::Void;
            return;
        }
        if o.met_at.is_some_and(|m| m <= due) {
            o.status = Status::Met;
            o.late_working_days = Some(0);
            return;
        }
        if let Some(reason) = self.exception(rule, ctx) {
            o.status = Status::Excepted;
            o.exception_reason = Some(self.reasons.get(reason));
            return;
        }
        if let Some(m) = o.met_at {
            o.status = Status::MetLate;
            o.late_working_days = self.late(due, m);
            return;
        }
        if rule.void_when.contains(&Void::PlanEndedBeforeDeadline)
            && self.plan_ended_before(ctx, due)
        {
            o.status = Status::Void;
            return;
        }
        if self.now > due {
            o.status = Status::Overdue;
            o.late_working_days = self.late(due, self.now);
        } else {
            o.status = self.pending(rule, due);
        }
    }

    fn late(&mut self, due: Instant, at: Instant) -> Option<i32> {
        match self.cal.working_days_late(due, at) {
            // An i32 holds eight million years of working days; beyond that it saturates.
            Ok(n) => Some(i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX })),
            Err(e) => {
                let key = format!("{}:late", self.board.id);
                self.calendar_errors.entry(key).or_insert(e);
                None
            }
        }
    }

    #[allow(clippy::indexing_slicing)] // `current`: see `deadline`
    fn pending(&mut self, rule: &'a Rule, due: Instant) -> Status {
        if let Some((d, status)) = self.per_rule[self.current].last_pending {
            if d == due {
                return status;
            }
        }
        let lead = rule.remind_before.as_ref().unwrap_or(&self.board.due_soon);
        let status = match self.cal.shift_date(self.cal.local_date(due), lead) {
            Ok(from) if self.today >= from => Status::DueSoon,
            _ => Status::Pending,
        };
        self.per_rule[self.current].last_pending = Some((due, status));
        status
    }

    fn plan_ended_before(&self, ctx: &Ctx<'a>, due: Instant) -> bool {
        let due_day = self.cal.local_date(due);
        let plan = ctx.plan.or_else(|| {
            let child = ctx.child?;
            let day = self.cal.local_date(
                ctx.conference
                    .and_then(Conference::date)
                    .unwrap_or(self.now),
            );
            self.idx.plan_at(child, day)
        });
        plan.and_then(|p| p.ended_on)
            .is_some_and(|end| end < due_day)
    }

    fn recurring(&mut self, rule: &'a Rule, ctx: &Ctx<'a>, out: &mut dyn FnMut(&Draft<'a>)) {
        let Some(mut anchor) = rule.starts.as_ref().and_then(|s| self.event(*s, ctx, None)) else {
            return;
        };
        let Some(offset) = self.offset_for(rule, ctx) else {
            return;
        };
        let Some(met_by) = rule.met_by.as_ref() else {
            return;
        };
        // The chain ends with the plan, or (for a child-in-need plan) at the child's next conference.
        let end = match ctx.plan {
            Some(p) => p.ended_on.map(|d| self.cal.end_of_day(d)),
            None => ctx.child.and_then(|c| {
                let from = ctx.conference.and_then(Conference::took_place)?;
                self.idx
                    .took_place_confs(c)
                    .map(|(_, _, t)| t)
                    .find(|t| *t > from)
            }),
        };
        let prefix = self.occurrence(rule, ctx);
        let shown = offset.shown();
        for n in 0..=Occurrence::<&Name>::MAX_N {
            if end.is_some_and(|e| anchor >= e) {
                break;
            }
            let Some(due) = self.deadline(anchor, &offset, &rule.id) else {
                break;
            };
            let occurrence = prefix.at(n);
            let mut o = self.base(rule, ctx, occurrence);
            o.starts_at = anchor;
            o.due_at = due;
            o.offset = shown;
            if n > 0 {
                o.start_event = *met_by;
            }
            o.met_at = self
                .event(*met_by, ctx, Some(anchor))
                .filter(|m| end.is_none_or(|e| *m <= e));
            let next = o.met_at;
            if self.in_window(anchor) {
                if o.met_at.is_none() && end.is_some_and(|e| e < due) {
                    o.status = Status::Void;
                } else {
                    self.settle(rule, ctx, &mut o);
                }
                out(&o);
            }
            match next {
                Some(m) if m > anchor => anchor = m,
                _ => break,
            }
        }
    }

    fn standard(&mut self, rule: &'a Rule, ctx: &Ctx<'a>, out: &mut dyn FnMut(&Draft<'a>)) {
        let Some(spec) = &rule.standard else { return };
        let idx = self.idx;
        let (at, held) = match (ctx.plan, ctx.conference) {
            (Some(p), _) => match p.ended_on {
                Some(end) => (self.cal.end_of_day(end), true),
                None => return,
            },
            (None, Some(conf)) => match (conf.took_place(), conf.date()) {
                (Some(t), _) => (t, true),
                (None, Some(d)) => (d, false),
                (None, None) => return,
            },
            _ => return,
        };
        if !self.in_window(at) {
            return;
        }
        let occurrence = self.occurrence(rule, ctx);
        let mut o = self.base(rule, ctx, occurrence);
        o.starts_at = ctx.plan.map_or(at, |p| self.date_event(p.started_on));
        o.due_at = at;
        o.start_event = if ctx.plan.is_some() {
            Event::PlanEndedOn
        } else {
            Event::ConferenceHeldAt
        };
        if ctx.conference.is_some_and(Conference::is_cancelled) {
            o.status = Status::Void;
            out(&o);
            return;
        }
        if !held {
            o.status = self.pending(rule, at);
            out(&o);
            return;
        }
        let met = match spec.check.as_str() {
            "quoracy" => ctx.conference.is_some_and(|conf| self.quorate(spec, conf)),
            "advocacy_offered" => ctx.cc.is_some_and(|cc| cc.advocacy_offered == Some(true)),
            "exception_recorded" => false,
            "core_assessment_completed" => {
                let Some(end) = ctx.plan.and_then(|p| p.ended_on) else {
                    return;
                };
                let done = ctx
                    .child
                    .and_then(|c| idx.assessments.get(idx.child(c)))
                    .and_then(|v| {
                        v.iter()
                            .rev()
                            .find(|a| a.kind == "core" && a.started_on <= end)
                    })
                    .and_then(|a| a.completed_on)
                    .filter(|d| *d <= end);
                o.met_at = done.map(|d| self.date_event(d));
                done.is_some()
            }
            _ => false,
        };
        if met {
            o.status = Status::Met;
            if o.met_at.is_none() {
                o.met_at = Some(at);
            }
        } else if let Some(reason) = self.exception(rule, ctx) {
            o.status = Status::Excepted;
            o.exception_reason = Some(self.reasons.get(reason));
        } else {
            o.status = Status::Overdue;
        }
        out(&o);
    }

    fn quorate(&self, spec: &crate::domain::rules::StandardSpec, conf: &Conference) -> bool {
        let idx = self.idx;
        // Counted in one pass, with nothing collected: this runs for every conference.
        let attended = || {
            idx.invitations
                .get(idx.conference(conf))
                .into_iter()
                .flatten()
                .filter(|(i, _)| i.attended == Some(true))
                .map(|(_, a)| *a)
        };
        let (mut csc, mut others, mut total) = (false, 0u32, 0u32);
        for a in attended() {
            total += 1;
            if a.professional_group == "childrens_social_care" {
                csc = true;
            } else {
                others += 1;
            }
        }
        if spec.require_social_care == Some(true) && !csc {
            return false;
        }
        if spec.min_other_agencies.is_some_and(|m| others < m)
            || spec.min_agencies.is_some_and(|m| total < m)
        {
            return false;
        }
        if let Some(group) = &spec.unborn_requires {
            let day = conf.date().map(|t| self.cal.local_date(t));
            let unborn = conf.kind == "pre_birth"
                || idx.children_of(conf).iter().any(|(_, c)| {
                    c.expected_due_date.is_some()
                        && c.date_of_birth
                            .is_none_or(|dob| day.is_some_and(|d| dob > d))
                });
            if unborn && !attended().any(|a| &a.professional_group == group) {
                return false;
            }
        }
        true
    }
}
