//! Deadlines: the offset that applies, the deadline it gives (cached per
//! rule), the evaluation window, and settling an obligation: met, late,
//! overdue, due soon, void or excepted.

use super::board::*;
use super::obligation::*;
use crate::domain::calendar::{CalendarError, Offset};
use crate::domain::case::*;
use crate::domain::rules::{Rule, Void};

/// Why a conference's timeliness is void when the enquiry needed none.
const NOT_REQUIRED: &str =
    "the section 47 enquiry concluded that no initial conference is required";

impl<'e, 'a> BoardEval<'e, 'a> {
    pub(super) fn in_window(&self, start: Instant) -> bool {
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
    pub(super) fn deadline(
        &mut self,
        start: Instant,
        offset: &Offset,
        what: &str,
    ) -> Option<Instant> {
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

    pub(super) fn offset_for(&self, rule: &'a Rule, ctx: &Ctx<'a>) -> Option<Offset> {
        let offset = rule.offset_for(ctx.conference.map(|c| c.kind.as_str()))?;
        offset.resolve(ctx.plan.and_then(|p| p.visit_interval_working_days))
    }

    /// Status, lateness and exception for a deadline obligation whose dates are set.
    pub(super) fn settle(&mut self, rule: &'a Rule, ctx: &Ctx<'a>, o: &mut Draft<'a>) {
        let due = o.due_at;
        if rule.void_when.contains(&Void::ConferenceCancelled)
            && ctx.conference.is_some_and(Conference::is_cancelled)
        {
            o.status = Status::Void;
            return;
        }
        if rule.void_when.contains(&Void::ConferenceNotRequired)
            && ctx.awaiting
            && ctx.sd.is_some_and(|d| d.conference_not_required)
        {
            o.status = Status::Void;
            o.exception_reason = Some(self.reasons.get(NOT_REQUIRED.to_string()));
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
        // A duty whose moment has passed (the conference went ahead without
        // it) is a breach that can no longer be met: late as at that moment.
        if let Some(at) = (rule.lapses)
            .and_then(|ev| self.event(ev, ctx, None))
            .filter(|at| *at <= self.now)
        {
            o.status = Status::Missed;
            o.late_working_days = self.late(due, at.max(due)).map(|n| n.max(0));
            return;
        }
        if self.now > due {
            o.status = Status::Overdue;
            o.late_working_days = self.late(due, self.now);
        } else {
            o.status = self.pending(rule, due);
        }
    }

    pub(super) fn late(&mut self, due: Instant, at: Instant) -> Option<i32> {
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
    pub(super) fn pending(&mut self, rule: &'a Rule, due: Instant) -> Status {
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

    pub(super) fn plan_ended_before(&self, ctx: &Ctx<'a>, due: Instant) -> bool {
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
}
