//! Sharing out: each board version's children and conferences cut into jobs
//! that workers take in turn, each worker handing its obligations to a sink.

use rustc_hash::FxHashMap as HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::NaiveDate;

use super::board::*;
use super::index::*;
use super::obligation::*;
use super::*;
use crate::domain::calendar::{Calendar, CalendarError};
use crate::domain::case::*;
use crate::domain::rules::Board;

/// One board version's evaluation of some of its children and conferences.
pub(super) struct Job<'j, 'a> {
    pub(super) board: &'a Board,
    pub(super) cal: Arc<Calendar>,
    pub(super) window: (Option<NaiveDate>, Option<NaiveDate>),
    pub(super) children: &'j [&'a Child],
    pub(super) conferences: &'j [&'a Conference],
}

/// `n` consecutive pieces of `items`, some perhaps empty.
pub(super) fn pieces_of<'s, T>(items: &'s [T], n: usize) -> impl Iterator<Item = &'s [T]> + 's {
    let mut chunks = items.chunks(items.len().div_ceil(n.max(1)).max(1));
    (0..n.max(1)).map(move |_| chunks.next().unwrap_or(&[]))
}

/// What one worker met besides obligations.
#[derive(Default)]
pub(super) struct Worked {
    pub(super) calendar_errors: HashMap<String, CalendarError>,
    /// Conferences whose authority's target differs from cpwatch's deadline.
    pub(super) findings: Vec<Finding>,
}

/// Takes jobs until none are left; returns the calendar errors and target
/// differences met.
pub(super) fn work<'a>(
    jobs: &[Job<'_, 'a>],
    next: &AtomicUsize,
    idx: &Index<'a>,
    now: Instant,
    sink: &mut dyn FnMut(&Draft<'a>),
) -> Worked {
    let mut reasons = Reasons::default();
    let mut worked = Worked::default();
    while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
        let board = job.board;
        let targets = Targets::new(board, idx, &job.cal);
        let findings = &mut worked.findings;
        BoardEval {
            idx,
            board,
            refs: board.refs(),
            reasons: &mut reasons,
            cal: &job.cal,
            now,
            today: job.cal.local_date(now),
            window: job.window,
            calendar_errors: &mut worked.calendar_errors,
            per_rule: Vec::new(),
            exceptions: Vec::new(),
            current: 0,
        }
        .run(job.children, job.conferences, &mut |o| {
            targets.check(o, findings);
            sink(o)
        });
    }
    worked
}

/// The authority's own target date for a conference (`target_on`) against
/// cpwatch's deadline for holding it: the rules met by holding the
/// obligation's own conference, and those met by the next review (whose
/// target is the review's that met it).
struct Targets<'t, 'a> {
    rules: rustc_hash::FxHashSet<usize>,
    reviews: rustc_hash::FxHashSet<usize>,
    idx: &'t Index<'a>,
    cal: &'t Calendar,
    board: &'t Board,
}

impl<'t, 'a> Targets<'t, 'a> {
    /// The child's review conference that met the obligation.
    fn review_met(&self, o: &Draft<'_>) -> Option<&'a Conference> {
        let met = o.met_at?;
        let child = self.idx.children.get(o.child_id?.as_str())?;
        let confs = self.idx.child_confs.get(self.idx.child(child))?;
        confs
            .iter()
            .map(|(c, _)| *c)
            .find(|c| c.kind == "review" && c.held_at == Some(met))
    }

    fn new(board: &'t Board, idx: &'t Index<'a>, cal: &'t Calendar) -> Self {
        let met_by = |e: crate::domain::rules::Event| {
            (board.rules.iter().zip(board.refs()))
                .filter(|(r, _)| r.met_by == Some(e))
                .map(|(_, x)| Arc::as_ptr(x) as usize)
                .collect()
        };
        Targets {
            rules: met_by(crate::domain::rules::Event::ConferenceHeldAt),
            reviews: met_by(crate::domain::rules::Event::NextReviewConferenceHeldAt),
            idx,
            cal,
            board,
        }
    }

    fn check(&self, o: &Draft<'_>, findings: &mut Vec<Finding>) {
        let rule = Arc::as_ptr(o.of) as usize;
        let held = if self.rules.contains(&rule) {
            o.conference
                .and_then(|c| self.idx.conferences.get(c.as_str()).copied())
        } else if self.reviews.contains(&rule) {
            self.review_met(o)
        } else {
            return;
        };
        let Some((conf, target)) = held.and_then(|c| Some((&c.id, c.target_on?))) else {
            return;
        };
        let due = self.cal.local_date(o.due_at);
        if due == target {
            return;
        }
        let (lo, hi) = (due.min(target), due.max(target));
        let mut days = 0;
        let mut d = lo;
        while d < hi {
            d = d.succ_opt().unwrap_or(hi);
            if self.cal.is_working_day(d).unwrap_or(false) {
                days += 1;
            }
        }
        let fmt = |d: NaiveDate| d.format("%a %-d %b %Y").to_string();
        findings.push(Finding::new(
            "target_differs",
            "conferences",
            conf.as_str(),
            format!(
                "the authority's target for holding it, {}, is {days} working day{} {} cpwatch's deadline for {} ({}), {}",
                fmt(target),
                if days == 1 { "" } else { "s" },
                if target > due { "after" } else { "before" },
                o.of.rule,
                self.board.name,
                fmt(due)
            ),
        ));
    }
}

/// The jobs on one worker per sink, the first on this thread; returns what
/// the workers met besides obligations.
pub(super) fn split<'a, S: Sink<'a>>(
    jobs: &[Job<'_, 'a>],
    next: &AtomicUsize,
    idx: &Index<'a>,
    now: Instant,
    sinks: &mut [S],
) -> Worked {
    let Some((first, rest)) = sinks.split_first_mut() else {
        return Worked::default();
    };
    std::thread::scope(|s| {
        let others: Vec<_> = rest
            .iter_mut()
            .map(|sink| {
                s.spawn(move || {
                    let worked = work(jobs, next, idx, now, &mut |o| sink.put(o));
                    sink.finish();
                    worked
                })
            })
            .collect();
        let mut all = work(jobs, next, idx, now, &mut |o| first.put(o));
        first.finish();
        for w in others {
            match w.join() {
                Ok(worked) => {
                    for (k, e) in worked.calendar_errors {
                        all.calendar_errors.entry(k).or_insert(e);
                    }
                    all.findings.extend(worked.findings);
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    })
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
