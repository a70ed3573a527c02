//! Evaluation: case state, rules, calendars and an instant in; obligations and
//! data-quality findings out. Pure: no I/O, no clock, no panics on bad data.
//!
//! Along its seams: the obligation and finding types (`obligation`), the
//! checks that correct or report contradictory rows first (`sanitize`), the
//! index of the clean state (`index`), the sharing out of boards and their
//! subjects among threads (`parallel`), and the board evaluator that makes
//! each rule's obligations (`board`: when a rule applies), with the events
//! rules count from and are met by (`events`), deadlines and settling
//! (`deadlines`), and the one-off, recurring and standard kinds (`kinds`).

mod board;
mod deadlines;
mod events;
mod index;
mod kinds;
mod obligation;
mod parallel;
mod sanitize;

pub use obligation::*;
pub(crate) use parallel::both;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use crate::domain::calendar::{Calendar, HolidayData};
use crate::domain::case::*;
use crate::domain::rules::RuleSet;
use index::*;
use parallel::*;
use sanitize::*;

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

/// The evaluation keeping the obligations `keep` selects, each borrowing its
/// names and rule from the case state, the rules and `scratch`: keeping
/// millions takes no reference count on any name (a national `check` or
/// `export` keeps 1.9 million). Obligations in no particular order. One
/// keeper a thread, each a sink of [`evaluate_split`].
pub fn evaluate_kept<'a>(
    state: &'a CaseState,
    rules: &'a RuleSet,
    holidays: &Arc<HolidayData>,
    now: Instant,
    opts: &Options,
    scratch: &'a mut Scratch,
    keep: &(dyn Fn(&Draft<'a>) -> bool + Sync),
) -> Evaluation<Draft<'a>> {
    evaluate_parts(state, rules, holidays, now, opts, scratch, keep, &|_| true).joined(now)
}

/// What [`evaluate_parts`] kept.
pub struct Kept<'a> {
    /// The obligations kept, in pieces of at most [`PIECE`] made whole as
    /// they filled: a list grown by doubling would leave each of its
    /// earlier homes behind as heap the allocator keeps.
    pub parts: Vec<Vec<Draft<'a>>>,
    /// How many obligations `counted` admitted, by status (in the order of
    /// [`Status::ALL`]), kept or not.
    pub tally: Vec<(Status, usize)>,
    pub findings: Vec<Finding>,
}

/// Obligations in one piece of [`Kept::parts`] (a MiB of them).
pub const PIECE: usize = (1 << 20) / std::mem::size_of::<Draft<'static>>();

impl<'a> Kept<'a> {
    /// The kept obligations in one list, as the evaluation at `at`: each
    /// piece freed as it is moved, so the two copies never coexist whole.
    pub fn joined(self, at: Instant) -> Evaluation<Draft<'a>> {
        let mut obligations = Vec::with_capacity(self.parts.iter().map(Vec::len).sum());
        for part in self.parts {
            obligations.extend(part);
        }
        Evaluation {
            evaluated_at: at,
            obligations,
            findings: self.findings,
        }
    }
}

/// The obligations `counted` admits counted by status, and those of them
/// `keep` also admits kept, in the pieces the workers kept them in: not joined into one
/// list, for a reader that takes them in an order of its own, so that no
/// moment holds two copies of a national evaluation. Each worker counts on
/// its own, so counting costs no traffic between cores.
#[allow(clippy::too_many_arguments)] // evaluate_kept's, and the two questions
pub fn evaluate_parts<'a>(
    state: &'a CaseState,
    rules: &'a RuleSet,
    holidays: &Arc<HolidayData>,
    now: Instant,
    opts: &Options,
    scratch: &'a mut Scratch,
    counted: &(dyn Fn(&Draft<'a>) -> bool + Sync),
    keep: &(dyn Fn(&Draft<'a>) -> bool + Sync),
) -> Kept<'a> {
    let mut keepers: Vec<Keeper> = (0..opts.threads.max(1))
        .map(|_| Keeper {
            kept: Vec::new(),
            counted,
            keep,
            tally: [0; Status::ALL.len()],
        })
        .collect();
    let findings = evaluate_split(state, rules, holidays, now, opts, scratch, &mut keepers);
    let tally = Status::ALL
        .iter()
        .map(|s| {
            let n = keepers
                .iter()
                .map(|k| k.tally.get(*s as usize).copied().unwrap_or(0))
                .sum();
            (*s, n)
        })
        .collect();
    Kept {
        parts: keepers.into_iter().flat_map(|k| k.kept).collect(),
        tally,
        findings,
    }
}

/// One worker's obligations of [`evaluate_parts`]: what it counts and keeps.
/// Aligned to cache lines of its own (see [`Sink`]): its tally changes with
/// every obligation.
#[repr(align(128))]
struct Keeper<'a, 'k> {
    kept: Vec<Vec<Draft<'a>>>,
    counted: &'k (dyn Fn(&Draft<'a>) -> bool + Sync),
    keep: &'k (dyn Fn(&Draft<'a>) -> bool + Sync),
    /// By status, indexed by the status's discriminant.
    tally: [usize; Status::ALL.len()],
}

impl<'a> Sink<'a> for Keeper<'a, '_> {
    fn put(&mut self, o: &Draft<'a>) {
        if (self.counted)(o) {
            if let Some(n) = self.tally.get_mut(o.status as usize) {
                *n += 1;
            }
            if (self.keep)(o) {
                match self.kept.last_mut() {
                    Some(piece) if piece.len() < PIECE => piece.push(o.clone()),
                    _ => {
                        let mut piece = Vec::with_capacity(PIECE);
                        piece.push(o.clone());
                        self.kept.push(piece);
                    }
                }
            }
        }
    }
}

/// Where a worker of [`evaluate_split`] puts the obligations it makes.
///
/// The sinks lie side by side in one slice, each written by its own thread:
/// a sink that changes its own fields for most obligations (a count, a
/// list's length) should be `#[repr(align(128))]`, or the cores pass the
/// cache line two sinks share back and forth millions of times.
pub trait Sink<'a>: Send {
    /// The obligation, borrowed: [`Draft::owned`] makes one to keep.
    fn put(&mut self, o: &Draft<'a>);

    /// Called once the worker has made its last obligation, on its thread.
    fn finish(&mut self) {}
}

/// Evaluates every board's rules against the case state at `now`: the one
/// entry point. Each worker hands the obligations it makes to a sink of its
/// own, one thread per sink (the first on this thread), so what the sinks do
/// with them (count, keep) is shared out too, with no queue between threads.
/// The sinks, not `opts.threads`, say how many threads. Obligations borrow
/// from `state`, `rules` and `scratch`. Returns the findings, sorted.
pub fn evaluate_split<'a, S: Sink<'a>>(
    state: &'a CaseState,
    rules: &'a RuleSet,
    holidays: &Arc<HolidayData>,
    now: Instant,
    opts: &Options,
    scratch: &'a mut Scratch,
    sinks: &mut [S],
) -> Vec<Finding> {
    let threads = sinks.len().max(1);
    let mut findings = state.load_findings.clone();
    let fixed: &'a Fixed = scratch
        .0
        .insert(sanitize(state, now, &mut findings, threads));
    let clean = fixed.view(state, threads);
    inconsistencies(&clean, &mut findings);
    let idx = Index::new(&clean, &mut findings, threads);
    let (children, conferences) = by_board(&clean, &idx, rules, opts.default_board, &mut findings);
    let jobs = jobs(
        &children,
        &conferences,
        rules,
        holidays,
        threads,
        &mut findings,
    );
    let worked = split(&jobs, &AtomicUsize::new(0), &idx, now, sinks);
    findings.extend(worked.findings);
    for (what, e) in worked.calendar_errors {
        findings.push(Finding::new(
            "calendar_not_covered",
            "-",
            &what,
            e.to_string(),
        ));
    }
    sort_findings(&mut findings);
    findings
}

/// The children and conferences to evaluate by board, with findings for
/// those of no board with a rule file.
type ByBoards<'s, 'a> = (ByBoard<'s, &'a Child>, ByBoard<'s, &'a Conference>);

fn by_board<'s, 'a: 's>(
    clean: &Clean<'a>,
    idx: &Index<'a>,
    rules: &RuleSet,
    default_board: &'s str,
    findings: &mut Vec<Finding>,
) -> ByBoards<'s, 'a> {
    // A table whose rows all have ids of their own (the usual case) needs no
    // lookup of each row to find it is the one kept under its id.
    let all_children = idx.children.len() == clean.children.len();
    let mut children_by_board: ByBoard<&Child> = ByBoard::default();
    for c in clean
        .children
        .iter()
        .filter(|c| all_children || kept(&idx.children, &c.id, c))
    {
        children_by_board.push(c.board.as_deref().unwrap_or(default_board), c);
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
            Some(c) => conferences_by_board.push(c.board.as_deref().unwrap_or(default_board), conf),
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
    (children_by_board, conferences_by_board)
}

/// The evaluation cut into jobs for `threads` workers.
fn jobs<'j, 'a>(
    children_by_board: &'j ByBoard<'_, &'a Child>,
    conferences_by_board: &'j ByBoard<'_, &'a Conference>,
    rules: &'a RuleSet,
    holidays: &Arc<HolidayData>,
    threads: usize,
    findings: &mut Vec<Finding>,
) -> Vec<Job<'j, 'a>> {
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
    jobs
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
