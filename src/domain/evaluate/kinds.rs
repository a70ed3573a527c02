//! The kinds of rule: one-off deadlines, recurring duties (each occurrence
//! from the event that met the last) and standards checked at the conference.

use super::board::*;
use super::obligation::*;
use crate::domain::case::*;
use crate::domain::rules::{Event, Rule, RuleKind};

impl<'e, 'a> BoardEval<'e, 'a> {
    /// The rule's one obligation for the subject, if it has one, handed to
    /// `out` (an obligation is built only once it is known to exist, and moved once).
    pub(super) fn one_off(
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

    pub(super) fn recurring(
        &mut self,
        rule: &'a Rule,
        ctx: &Ctx<'a>,
        out: &mut dyn FnMut(&Draft<'a>),
    ) {
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

    pub(super) fn standard(
        &mut self,
        rule: &'a Rule,
        ctx: &Ctx<'a>,
        out: &mut dyn FnMut(&Draft<'a>),
    ) {
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
            // The agency's report shared with the family before the conference.
            "report_shared" => {
                let shared = ctx
                    .invitation
                    .and_then(|i| i.report_shared_with_family_at)
                    .filter(|t| *t <= at);
                o.met_at = shared;
                shared.is_some()
            }
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
            // Judged at the conference: nothing afterwards changes it.
            o.status = Status::Missed;
        }
        out(&o);
    }

    pub(super) fn quorate(
        &self,
        spec: &crate::domain::rules::StandardSpec,
        conf: &Conference,
    ) -> bool {
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
