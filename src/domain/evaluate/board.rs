//! The board evaluator: each subject of a board version (children,
//! conferences, their invitations, referrals, strategy discussions and
//! plans) against each rule; whether the rule applies (its subject and
//! `where` filters), agreed exceptions, and an obligation's identity. The
//! events it counts from are in `events`, deadlines and settling in
//! `deadlines`, and each kind's obligations in `kinds`.

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
    /// (or, for a rule void when none is required, concluded none was) and no
    /// initial or pre-birth conference has been arranged after it. An
    /// unborn child awaits a pre-birth conference and any other child an
    /// initial one: a rule for one kind only awaits none for the other.
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
        let not_required =
            last.conference_not_required && rule.void_when.contains(&Void::ConferenceNotRequired);
        if last.conference_decided_at.is_none() && !not_required {
            return None;
        }
        let kinds = rule.filter.conference_kind.as_deref().unwrap_or(&[]);
        let unborn = child.expected_due_date.is_some() && child.date_of_birth.is_none();
        let wants = |kind: &str| kinds.is_empty() || kinds.iter().any(|k| k == kind);
        if !wants(if unborn { "pre_birth" } else { "initial" }) {
            return None;
        }
        let arranged = self
            .idx
            .child_confs
            .get(self.idx.child(child))
            .into_iter()
            .flatten()
            .any(|(c, _)| {
                matches!(c.kind.as_str(), "initial" | "pre_birth")
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
                    || !flag(f.chair_concern, conf.chair_concern)
                    || !lazy(f.dissent_recorded, &|| match ctx.cc {
                        Some(cc) => cc.dissent_recorded,
                        None => {
                            (self.idx.children_of(conf).iter()).any(|(cc, _)| cc.dissent_recorded)
                        }
                    })
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
                || f.chair_concern.is_some()
                || f.dissent_recorded.is_some()
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

    // --------------------------------------------------------- obligations

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
        if rule.latest_only {
            // An obligation met by the latest recorded event may have been met
            // by an earlier one the data does not hold: only open ones are judged.
            let out = &mut |o: &Draft<'a>| {
                if o.met_at.is_none() {
                    out(o)
                }
            };
            return self.kinds(rule, ctx, out);
        }
        self.kinds(rule, ctx, out)
    }

    fn kinds(&mut self, rule: &'a Rule, ctx: &Ctx<'a>, out: &mut dyn FnMut(&Draft<'a>)) {
        match rule.kind {
            RuleKind::Standard => self.standard(rule, ctx, out),
            RuleKind::Recurring => self.recurring(rule, ctx, out),
            RuleKind::Deadline | RuleKind::Notice => {
                self.one_off(rule, ctx, out);
            }
        }
    }
}
