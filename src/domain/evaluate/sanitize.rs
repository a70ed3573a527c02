//! Before evaluation: rows that record happenings after the instant evaluated
//! at are corrected (as not yet happened), and contradictions are reported
//! as findings, so evaluation reads a clean view of the state.

use chrono::NaiveDate;

use super::index::*;
use super::obligation::*;
use super::parallel::both;
use crate::domain::case::*;

/// An instant in messages: RFC 3339, whole seconds.
pub(super) fn stamp(t: Instant) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(super) fn future(
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

pub(super) fn clear_future(
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
pub(super) struct Fixes<T>(Vec<(usize, Option<T>)>);

impl<T: Clone> Fixes<T> {
    pub(super) fn of(
        rows: &[T],
        needs: impl Fn(&T) -> bool,
        mut fix: impl FnMut(&mut T) -> bool,
    ) -> Self {
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

    pub(super) fn view<'a>(&'a self, rows: &'a [T]) -> Vec<&'a T> {
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

pub(super) fn any_after(now: Instant, ts: &[Option<Instant>]) -> bool {
    ts.iter().flatten().any(|t| *t > now)
}

/// The corrections `sanitize` made, to be viewed through `Clean`.
pub(super) struct Fixed {
    pub(super) referrals: Fixes<Referral>,
    pub(super) strategy_discussions: Fixes<StrategyDiscussion>,
    pub(super) assessments: Fixes<Assessment>,
    pub(super) conferences: Fixes<Conference>,
    pub(super) conference_children: Fixes<ConferenceChild>,
    pub(super) invitations: Fixes<Invitation>,
    pub(super) cp_plans: Fixes<CpPlan>,
    pub(super) core_groups: Fixes<CoreGroup>,
    pub(super) visits: Fixes<Visit>,
    pub(super) cin_reviews: Fixes<CinReview>,
}

/// The case state as evaluation sees it: without happenings recorded after `now`.
pub(super) struct Clean<'a> {
    pub(super) agencies: &'a [Agency],
    pub(super) teams: &'a [Team],
    pub(super) workers: &'a [Worker],
    pub(super) children: &'a [Child],
    pub(super) referrals: Vec<&'a Referral>,
    pub(super) strategy_discussions: Vec<&'a StrategyDiscussion>,
    pub(super) assessments: Vec<&'a Assessment>,
    pub(super) conferences: Vec<&'a Conference>,
    pub(super) conference_children: Vec<&'a ConferenceChild>,
    pub(super) invitations: Vec<&'a Invitation>,
    pub(super) cp_plans: Vec<&'a CpPlan>,
    pub(super) core_groups: Vec<&'a CoreGroup>,
    pub(super) visits: Vec<&'a Visit>,
    pub(super) cin_reviews: Vec<&'a CinReview>,
    pub(super) exceptions: &'a [Exception],
    pub(super) child_slots: Slots<Child>,
    pub(super) conference_slots: Slots<Conference>,
}

impl Fixed {
    pub(super) fn view<'a>(&'a self, s: &'a CaseState, threads: usize) -> Clean<'a> {
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
pub(super) fn sanitize(
    state: &CaseState,
    now: Instant,
    f: &mut Vec<Finding>,
    threads: usize,
) -> Fixed {
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
pub(super) fn sanitize_rest(
    state: &CaseState,
    now: Instant,
    today: NaiveDate,
) -> (Fixed, Vec<Finding>) {
    let mut findings = Vec::new();
    let f = &mut findings;
    let fixed = Fixed {
        referrals: fix_referrals(&state.referrals, now, f),
        strategy_discussions: fix_strategy_discussions(&state.strategy_discussions, now, f),
        assessments: fix_assessments(&state.assessments, today, f),
        conferences: fix_conferences(&state.conferences, now, f),
        conference_children: fix_conference_children(&state.conference_children, now, f),
        invitations: fix_invitations(&state.invitations, now, f),
        cp_plans: fix_cp_plans(&state.cp_plans, today, f),
        core_groups: Fixes(Vec::new()),
        visits: Fixes(Vec::new()),
        cin_reviews: fix_cin_reviews(&state.cin_reviews, today, f),
    };
    (fixed, findings)
}

/// The `referrals` rows to correct, and their findings.
fn fix_referrals(rows: &[Referral], now: Instant, f: &mut Vec<Finding>) -> Fixes<Referral> {
    Fixes::of(
        rows,
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
    )
}

/// The `strategy_discussions` rows to correct, and their findings.
fn fix_strategy_discussions(
    rows: &[StrategyDiscussion],
    now: Instant,
    f: &mut Vec<Finding>,
) -> Fixes<StrategyDiscussion> {
    Fixes::of(
        rows,
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
    )
}

/// The `assessments` rows to correct, and their findings.
fn fix_assessments(
    rows: &[Assessment],
    today: NaiveDate,
    f: &mut Vec<Finding>,
) -> Fixes<Assessment> {
    Fixes::of(
        rows,
        |a| a.completed_on.is_some_and(|d| d > today),
        |a| {
            if let Some(done) = a.completed_on {
                f.push(Finding::new("recorded_in_future", "assessments", &a.id, format!("completed_on {done} is later than the evaluation date; treated as not yet completed")));
                a.completed_on = None;
            }
            true
        },
    )
}

/// The `conferences` rows to correct, and their findings.
fn fix_conferences(rows: &[Conference], now: Instant, f: &mut Vec<Finding>) -> Fixes<Conference> {
    Fixes::of(
        rows,
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
    )
}

/// The `conference_children` rows to correct, and their findings.
fn fix_conference_children(
    rows: &[ConferenceChild],
    now: Instant,
    f: &mut Vec<Finding>,
) -> Fixes<ConferenceChild> {
    Fixes::of(
        rows,
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
    )
}

/// The `invitations` rows to correct, and their findings.
fn fix_invitations(rows: &[Invitation], now: Instant, f: &mut Vec<Finding>) -> Fixes<Invitation> {
    Fixes::of(
        rows,
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
    )
}

/// The `cp_plans` rows to correct, and their findings.
fn fix_cp_plans(rows: &[CpPlan], today: NaiveDate, f: &mut Vec<Finding>) -> Fixes<CpPlan> {
    Fixes::of(
        rows,
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
    )
}

/// The `cin_reviews` rows to correct, and their findings.
fn fix_cin_reviews(rows: &[CinReview], today: NaiveDate, f: &mut Vec<Finding>) -> Fixes<CinReview> {
    Fixes::of(
        rows,
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
    )
}

/// Dates and statuses that contradict each other, in the state as evaluated.
pub(super) fn inconsistencies(s: &Clean, f: &mut Vec<Finding>) {
    for p in &s.cp_plans {
        if let Some(v) = p
            .visit_interval_working_days
            .filter(|v| !crate::domain::calendar::FIELD_RANGE.contains(v))
        {
            f.push(Finding::new(
                "implausible_value",
                "cp_plans",
                &p.id,
                format!("visit_interval_working_days {v} is no visiting interval (1 to 261 working days, a year): the plan's visits are not timed"),
            ));
        }
    }
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
