//! Case data as it stood at an earlier instant: what a case system would
//! have held then. Replaying a history day by day drives the service
//! through weeks of an authority's life, as the reminder simulation does.

use std::collections::HashSet;

use chrono::NaiveDate;

use cpwatch::domain::case::{CaseState, Conference, Instant};

/// How long before its date a conference with no request time is taken to
/// be known (booked): the initial conference's 15 working days, about.
const BOOKED_DAYS_BEFORE: i64 = 21;

/// `state` as it stood at `t`: rows not yet made are left out, and events
/// after `t` are not yet recorded (a conference held later is still
/// scheduled, its outcome unknown). Dates are compared with `t`'s UTC date.
pub fn as_of(state: &CaseState, t: Instant) -> CaseState {
    let day: NaiveDate = t.date_naive();
    let by = |x: Option<Instant>| x.filter(|x| *x <= t);
    let by_day = |x: Option<NaiveDate>| x.filter(|x| *x <= day);
    let mut s = CaseState {
        agencies: state.agencies.clone(),
        teams: state.teams.clone(),
        workers: state.workers.clone(),
        ..CaseState::default()
    };
    s.referrals = (state.referrals.iter())
        .filter(|r| r.received_at <= t)
        .map(|r| {
            let mut r = r.clone();
            r.written_confirmation_at = by(r.written_confirmation_at);
            r.acknowledged_at = by(r.acknowledged_at);
            r.next_steps_recorded_at = by(r.next_steps_recorded_at);
            r
        })
        .collect();
    s.assessments = (state.assessments.iter())
        .filter(|a| a.started_on <= day)
        .map(|a| {
            let mut a = a.clone();
            a.completed_on = by_day(a.completed_on);
            a
        })
        .collect();
    s.strategy_discussions = (state.strategy_discussions.iter())
        .filter(|d| d.held_at <= t)
        .map(|d| {
            let mut d = d.clone();
            d.child_seen_at = by(d.child_seen_at);
            d.conference_decided_at = by(d.conference_decided_at);
            d.record_circulated_at = by(d.record_circulated_at);
            d
        })
        .collect();
    let known = |c: &Conference| {
        let booked = (c.requested_at.or(c.transfer_notified_at))
            .or_else(|| Some(c.date()? - chrono::Duration::days(BOOKED_DAYS_BEFORE)));
        booked.is_some_and(|b| b <= t)
    };
    let mut held = HashSet::new();
    s.conferences = (state.conferences.iter())
        .filter(|c| known(c))
        .map(|c| {
            let mut c = c.clone();
            if c.held_at.is_some_and(|h| h > t) {
                c.scheduled_at = c.scheduled_at.or(c.held_at);
                c.held_at = None;
                c.status = "scheduled".into();
                c.next_review_on = None;
                c.chair_overruled = false;
                c.chair_concern = false;
            } else if c.held_at.is_some() {
                held.insert(c.id.clone());
            }
            for x in [
                &mut c.chair_liaison_at,
                &mut c.decision_circulated_at,
                &mut c.plan_circulated_at,
                &mut c.plan_hard_copy_sent_at,
                &mut c.summary_circulated_at,
                &mut c.minutes_circulated_at,
                &mut c.chair_escalated_at,
            ] {
                *x = by(*x);
            }
            c
        })
        .collect();
    let conferences: HashSet<&str> = s.conferences.iter().map(|c| c.id.as_str()).collect();
    s.conference_children = (state.conference_children.iter())
        .filter(|x| conferences.contains(x.conference_id.as_str()))
        .map(|x| {
            let mut x = x.clone();
            x.workbook_received_at = by(x.workbook_received_at);
            if !held.contains(&x.conference_id) {
                x.outcome = None;
                x.category = None;
                x.advocacy_offered = None;
                x.dissent_recorded = false;
            }
            x
        })
        .collect();
    s.invitations = (state.invitations.iter())
        .filter(|i| conferences.contains(i.conference_id.as_str()))
        .map(|i| {
            let mut i = i.clone();
            i.report_received_at = by(i.report_received_at);
            i.report_shared_with_family_at = by(i.report_shared_with_family_at);
            i.report_authorised_at = by(i.report_authorised_at);
            if !held.contains(&i.conference_id) {
                i.attended = None;
            }
            i
        })
        .collect();
    s.cp_plans = (state.cp_plans.iter())
        .filter(|p| p.started_on <= day)
        .map(|p| {
            let mut p = p.clone();
            if p.ended_on.is_some_and(|e| e > day) {
                p.ended_on = None;
                p.end_reason = None;
            }
            p
        })
        .collect();
    s.core_groups = (state.core_groups.iter())
        .filter(|g| g.held_at <= t)
        .cloned()
        .collect();
    s.visits = (state.visits.iter())
        .filter(|v| v.visited_at <= t)
        .cloned()
        .collect();
    s.cin_reviews = (state.cin_reviews.iter())
        .filter(|r| r.held_on <= day)
        .cloned()
        .collect();
    s.exceptions = (state.exceptions.iter())
        .filter(|e| e.recorded_at <= t)
        .cloned()
        .collect();
    // A child is on the system once anything about them is.
    let mut present: HashSet<&str> = HashSet::new();
    present.extend(s.referrals.iter().map(|r| r.child_id.as_str()));
    present.extend(s.assessments.iter().map(|r| r.child_id.as_str()));
    present.extend(s.strategy_discussions.iter().map(|r| r.child_id.as_str()));
    present.extend(s.conference_children.iter().map(|r| r.child_id.as_str()));
    present.extend(s.cp_plans.iter().map(|r| r.child_id.as_str()));
    s.children = (state.children.iter())
        .filter(|c| present.contains(c.id.as_str()))
        .cloned()
        .collect();
    s
}
