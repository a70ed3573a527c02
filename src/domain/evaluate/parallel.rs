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

/// Takes jobs until none are left; returns the calendar errors met.
pub(super) fn work<'a>(
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
pub(super) fn split<'a, S: Sink<'a>>(
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
