//! The board evaluator: for each subject and rule of a board version, whether
//! the rule applies, the events it counts from and is met by, the deadline,
//! and the obligations of its kind (one-off, recurring, standard).

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};

use super::index::*;
use super::obligation::*;
use crate::domain::calendar::{Calendar, CalendarError, Offset};
use crate::domain::case::*;
use crate::domain::rules::{Board, Event, Rule, RuleKind, Subject, Void};

#[derive(Clone, Copy, Default)]
pub(super) struct Ctx<'a> {
    pub(super) child: Option<&'a Child>,
    pub(super) conference: Option<&'a Conference>,
    pub(super) cc: Option<&'a ConferenceChild>,
    pub(super) invitation: Option<&'a Invitation>,
    pub(super) agency: Option<&'a Agency>,
    pub(super) referral: Option<&'a Referral>,
    pub(super) sd: Option<&'a StrategyDiscussion>,
    pub(super) plan: Option<&'a CpPlan>,
    /// The team of the child's allocated worker, looked up once per subject.
    pub(super) team: Option<&'a Text>,
    /// An initial conference decided on but not yet arranged.
    pub(super) awaiting: bool,
}

pub(super) struct BoardEval<'e, 'a> {
    pub(super) idx: &'e Index<'a>,
    pub(super) board: &'a Board,
    /// What every obligation of each rule has in common, in the board's order of rules.
    pub(super) refs: &'a [Arc<RuleRef>],
    pub(super) reasons: &'e mut Reasons,
    pub(super) cal: &'e Calendar,
    pub(super) now: Instant,
    /// The local date of `now`.
    pub(super) today: NaiveDate,
    pub(super) window: (Option<NaiveDate>, Option<NaiveDate>),
    pub(super) calendar_errors: &'e mut HashMap<String, CalendarError>,
    /// What was last worked out for each rule, in the board's order of rules.
    pub(super) per_rule: Vec<PerRule>,
    /// The agreed exceptions to each rule, in the board's order of rules:
    /// found once, not by the rule's id for every obligation.
    pub(super) exceptions: Vec<Option<&'e Exceptions<'a>>>,
    /// The place in `per_rule` of the rule being evaluated.
    pub(super) current: usize,
}

/// What was last worked out for a rule: the invitations of one conference
/// come one after another and share their start, offset and deadline, so
/// each is worked out once.
#[derive(Default)]
pub(super) struct PerRule {
    /// The last deadline: its start, offset and the deadline (none when the calendar could not give one).
    pub(super) last_due: Option<(Instant, Offset, Option<Instant>)>,
    /// The last pending status: its deadline and the status.
    pub(super) last_pending: Option<(Instant, Status)>,
}

// A child's happenings are sorted while indexing, and recurring rules ask for
// the next one after each occurrence: found by binary search, not by a scan
// from the first, which grows with the square of a long plan's history.

/// The first of sorted instants at or after `t`.
pub(super) fn first_from(sorted: &[Instant], t: Instant) -> Option<Instant> {
    sorted.get(sorted.partition_point(|x| *x < t)).copied()
}

/// The first of sorted instants after `t`.
pub(super) fn first_after(sorted: &[Instant], t: Instant) -> Option<Instant> {
    sorted.get(sorted.partition_point(|x| *x <= t)).copied()
}

pub(super) fn age_on(dob: NaiveDate, day: NaiveDate) -> i32 {
    let mut age = day.year() - dob.year();
    if (day.month(), day.day()) < (dob.month(), dob.day()) {
        age -= 1;
    }
    age
}

/// Each of the children's rows of a per-child table as a subject, with its child.
pub(super) fn each_row<'a, R>(
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
pub(super) fn each_subject<'a>(
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
    pub(super) fn run(
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
    pub(super) fn awaiting_conference(
        &self,
        rule: &'a Rule,
        child: &Child,
    ) -> Option<&'a StrategyDiscussion> {
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

    /// Whether the rule's `where` filters and subject admit this subject.
    // Long because the vocabulary is: one test a filter of `Filter`, so the
    // meaning of every filter a rule file may use reads in one place.
    pub(super) fn matches(&self, rule: &'a Rule, ctx: &Ctx<'a>) -> bool {
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
    pub(super) fn is_first_review(&self, child: &Child, conf: &Conference) -> bool {
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

    pub(super) fn date_event(&self, d: NaiveDate) -> Instant {
        self.cal.start_of_day(d)
    }

    /// The instant of a named event for a subject; "first X" events look from `after`.
    // Long because the vocabulary is: one arm an `Event`, so the meaning of
    // every event a rule file may name reads in one place.
    pub(super) fn event(
        &self,
        ev: Event,
        ctx: &Ctx<'a>,
        after: Option<Instant>,
    ) -> Option<Instant> {
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

    /// The reason of an agreed exception matching this obligation: every id the
    /// exception names must be the obligation's (a child named on a conference-wide
    /// obligation must be one of the conference's children).
    pub(super) fn exception(&self, rule: &'a Rule, ctx: &Ctx<'a>) -> Option<String> {
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
    pub(super) fn base(
        &self,
        rule: &'a Rule,
        ctx: &Ctx<'a>,
        occurrence: Occurrence<&'a Name>,
    ) -> Draft<'a> {
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

    pub(super) fn occurrence(&self, rule: &'a Rule, ctx: &Ctx<'a>) -> Occurrence<&'a Name> {
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

    pub(super) fn obligations(
        &mut self,
        rule: &'a Rule,
        ctx: &Ctx<'a>,
        out: &mut dyn FnMut(&Draft<'a>),
    ) {
        match rule.kind {
            RuleKind::Standard => self.standard(rule, ctx, out),
            RuleKind::Recurring => self.recurring(rule, ctx, out),
            RuleKind::Deadline | RuleKind::Notice => {
                self.one_off(rule, ctx, out);
            }
        }
    }

    pub(super) fn offset_for(&self, rule: &'a Rule, ctx: &Ctx<'a>) -> Option<Offset> {
        let offset = rule.offset_for(ctx.conference.map(|c| c.kind.as_str()))?;
        offset.resolve(ctx.plan.and_then(|p| p.visit_interval_working_days))
    }

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

    /// Status, lateness and exception for a deadline obligation whose dates are set.
    pub(super) fn settle(&mut self, rule: &'a Rule, ctx: &Ctx<'a>, o: &mut Draft<'a>) {
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
