//! Evaluation scenarios: for each board and each deadline rule, the meeting
//! event on the deadline itself, one minute late, missing (overdue, and due
//! soon just before), excepted and void — with every deadline worked out by
//! hand below. Standards, recurring rules, versions and data-quality findings
//! follow.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod common;

use chrono::Duration;
use common::*;
use cpwatch::domain::case::*;
use cpwatch::domain::evaluate::{
    evaluate_kept, Evaluation, Finding, Obligation, Options, Scratch, Status,
};

const LATER: &str = "2027-11-30T12:00:00Z";

type Setter = fn(&mut CaseState, Option<Instant>);

#[derive(Clone, Copy)]
enum Target {
    Child,
    /// The child's obligation about one conference.
    ChildAt(&'static str),
    Conference(&'static str),
    Agency(&'static str, &'static str),
}

struct Scenario {
    boards: &'static [&'static str],
    rule: &'static str,
    /// The deadline, worked out by hand.
    due: &'static str,
    set: Setter,
    /// The meeting event is a date, not an instant.
    date_only: bool,
    target: Target,
    /// Occurrence to pick when a subject has several (e.g. one strategy discussion of two).
    occurrence: Option<&'static str>,
    void: Option<fn(&mut CaseState)>,
}

fn pick<'e>(e: &'e Evaluation, board: &str, sc: &Scenario) -> &'e Obligation {
    let found: Vec<&Obligation> = e
        .obligations
        .iter()
        .filter(|o| &*o.of.board == board && &*o.of.rule == sc.rule)
        .filter(|o| match sc.target {
            Target::Child => o.child.as_deref() == Some("TEST-1"),
            Target::ChildAt(c) => {
                o.child.as_deref() == Some("TEST-1") && o.conference.as_deref() == Some(c)
            }
            Target::Conference(c) => o.conference.as_deref() == Some(c) && o.agency.is_none(),
            Target::Agency(c, a) => {
                o.conference.as_deref() == Some(c) && o.agency.as_deref() == Some(a)
            }
        })
        .filter(|o| {
            sc.occurrence
                .is_none_or(|occ| o.occurrence.to_string().contains(occ))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{board} {}: expected one obligation, found {found:#?}",
        sc.rule
    );
    found[0]
}

fn met_value(sc: &Scenario, due: Instant, late: bool) -> Instant {
    if sc.date_only {
        // A date-only event stands for the start of its day.
        let day = due.with_timezone(&chrono_tz::Europe::London).date_naive()
            + Duration::days(i64::from(late));
        day.and_hms_opt(0, 0, 0)
            .and_then(|n| n.and_local_timezone(chrono_tz::Europe::London).single())
            .map(|x| x.with_timezone(&chrono::Utc))
            .expect("date")
    } else if late {
        due + Duration::minutes(1)
    } else {
        due
    }
}

fn run(sc: &Scenario) {
    let due = t(sc.due);
    let boards: Vec<&str> = if sc.boards.is_empty() {
        BOARDS.to_vec()
    } else {
        sc.boards.to_vec()
    };
    for board in boards {
        let ctx = format!("{board} {}", sc.rule);
        // On the deadline itself: met.
        let mut s = fixture(board);
        (sc.set)(&mut s, Some(met_value(sc, due, false)));
        let e = eval(&s, LATER);
        let o = pick(&e, board, sc);
        assert_eq!(o.due_at, due, "{ctx}: deadline");
        assert_eq!(
            (o.status, o.late_working_days),
            (Status::Met, Some(0)),
            "{ctx}: on the deadline"
        );

        // One minute (or, for a date, one day) late: met late by one working day.
        (sc.set)(&mut s, Some(met_value(sc, due, true)));
        let e = eval(&s, LATER);
        let o = pick(&e, board, sc);
        assert_eq!(
            (o.status, o.late_working_days),
            (Status::MetLate, Some(1)),
            "{ctx}: one minute late"
        );

        // Missing: overdue a minute after the deadline, due soon a minute before.
        (sc.set)(&mut s, None);
        let after = (due + Duration::minutes(1)).to_rfc3339();
        let e = eval(&s, &after);
        let o = pick(&e, board, sc);
        assert_eq!(
            (o.status, o.late_working_days, o.met_at),
            (Status::Overdue, Some(1), None),
            "{ctx}: missing"
        );
        let before = (due - Duration::minutes(1)).to_rfc3339();
        let e = eval(&s, &before);
        assert_eq!(
            pick(&e, board, sc).status,
            Status::DueSoon,
            "{ctx}: just before"
        );

        // An agreed exception: excepted, with its reason.
        let mut x = s.clone();
        x.exceptions.push(match sc.target {
            Target::Child => exception(sc.rule, Some("C1"), None, None),
            Target::ChildAt(c) => exception(sc.rule, Some("C1"), Some(c), None),
            Target::Conference(c) => exception(sc.rule, None, Some(c), None),
            Target::Agency(c, a) => exception(sc.rule, None, Some(c), Some(a)),
        });
        let e = eval(&x, LATER);
        let o = pick(&e, board, sc);
        assert_eq!(o.status, Status::Excepted, "{ctx}: excepted");
        assert_eq!(
            o.exception_reason.as_deref(),
            Some("Agreed by the chair: family bereavement")
        );

        // The case no longer needs it: void.
        if let Some(void) = sc.void {
            let mut v = s.clone();
            void(&mut v);
            let e = eval(&v, LATER);
            assert_eq!(pick(&e, board, sc).status, Status::Void, "{ctx}: void");
        }
    }
}

fn cancel_conf1(s: &mut CaseState) {
    let c = conf_mut(s, "CONF-1");
    c.status = "cancelled".into();
    c.held_at = None;
}

const ALL: &[&str] = &[];

fn scenarios() -> Vec<Scenario> {
    let sc = |boards, rule, due, set: Setter, target| Scenario {
        boards,
        rule,
        due,
        set,
        date_only: false,
        target,
        occurrence: None,
        void: None,
    };
    let not = |b: &'static [&'static str]| -> &'static [&'static str] {
        let v: Vec<&'static str> = BOARDS.iter().copied().filter(|x| !b.contains(x)).collect();
        Box::leak(v.into_boxed_slice())
    };
    vec![
        // Baseline rules, in every board that inherits them and does not change
        // them: Wales takes only the conference process, and England's 2010
        // assessments are not in Bolton's 2024 procedure.
        // Referral Monday 14 December 2026 10:00 by telephone: 48 hours is Wednesday 10:00.
        sc(
            not(&["cwm-taf-morgannwg"]),
            "referral-confirmed-in-writing",
            "2026-12-16T10:00:00Z",
            |s, v| s.referrals[0].written_confirmation_at = v,
            Target::Child,
        ),
        // Written referral Tuesday 15 December: one working day is the end of Wednesday 16.
        Scenario {
            set: |s, v| {
                s.referrals[0].acknowledged_at = v;
                s.referrals[0].written_confirmation_at = Some(t("2026-12-15T09:00:00Z"));
            },
            ..sc(
                not(&["cwm-taf-morgannwg"]),
                "referral-acknowledged",
                "2026-12-16T23:59:59Z",
                |_, _| {},
                Target::Child,
            )
        },
        sc(
            not(&["cwm-taf-morgannwg"]),
            "referral-decision",
            "2026-12-15T23:59:59Z",
            |s, v| s.referrals[0].next_steps_recorded_at = v,
            Target::Child,
        ),
        // 10 working days from Monday 14 December skip Christmas Day and the Boxing Day substitute (Monday 28).
        Scenario {
            date_only: true,
            ..sc(
                not(&["bolton", "cwm-taf-morgannwg"]),
                "initial-assessment",
                "2026-12-30T23:59:59Z",
                |s, v| s.assessments[0].completed_on = v.map(|t| t.date_naive()),
                Target::Child,
            )
        },
        // Pan-Dorset's notes. Physical abuse reported Monday 14 December: a strategy discussion the same working day.
        sc(
            &["pan-dorset"],
            "strategy-discussion-same-day",
            "2026-12-14T23:59:59Z",
            |s, v| match v {
                Some(v) => s.strategy_discussions[0].held_at = v,
                None => s.strategy_discussions.clear(),
            },
            Target::Child,
        ),
        // Strategy discussion Monday 21 December 11:00: the child seen within 24 hours.
        Scenario {
            occurrence: Some("SD2"),
            ..sc(
                &["pan-dorset"],
                "child-seen-24h",
                "2026-12-22T11:00:00Z",
                |s, v| s.strategy_discussions[1].child_seen_at = v,
                Target::Child,
            )
        },
        // Strategy discussion Monday 21 December 11:00: its record circulated by the end of Tuesday 22.
        Scenario {
            occurrence: Some("SD2"),
            ..sc(
                not(&["cwm-taf-morgannwg"]),
                "strategy-discussion-record",
                "2026-12-22T23:59:59Z",
                |s, v| s.strategy_discussions[1].record_circulated_at = v,
                Target::Child,
            )
        },
        // 35 working days from Monday 21 December 2026 (skipping 25 and 28 December and 1 January) = Thursday 11 February 2027.
        Scenario {
            date_only: true,
            ..sc(
                not(&["bolton", "cwm-taf-morgannwg"]),
                "core-assessment",
                "2027-02-11T23:59:59Z",
                |s, v| s.assessments[1].completed_on = v.map(|t| t.date_naive()),
                Target::Child,
            )
        },
        // The issue's worked example: 21 December 2026 + 15 working days = Thursday 14 January 2027.
        Scenario {
            void: Some(cancel_conf1),
            ..sc(
                ALL,
                "icpc-timeliness",
                "2027-01-14T23:59:59Z",
                |s, v| {
                    let c = conf_mut(s, "CONF-1");
                    c.held_at = v;
                    c.status = if v.is_some() { "held" } else { "scheduled" }.into();
                    c.scheduled_at = Some(v.unwrap_or(t("2027-01-20T10:00:00Z")));
                },
                Target::ChildAt("CONF-1"),
            )
        },
        // Conference Wednesday 13 January: decision circulated by the end of Thursday 14.
        sc(
            not(&["barnsley"]),
            "decision-circulated",
            "2027-01-14T23:59:59Z",
            |s, v| conf_mut(s, "CONF-1").decision_circulated_at = v,
            Target::Conference("CONF-1"),
        ),
        // First core group within 10 working days: Wednesday 27 January.
        Scenario {
            void: Some(|s| s.cp_plans[0].ended_on = Some(d("2027-01-20"))),
            ..sc(
                not(&["hampshire-4lscb"]),
                "first-core-group",
                "2027-01-27T23:59:59Z",
                |s, v| match v {
                    Some(v) => s.core_groups[0].held_at = v,
                    None => s.core_groups.clear(),
                },
                Target::Child,
            )
        },
        // First review within three months: 13 April 2027, 23:59:59 BST.
        Scenario {
            void: Some(|s| {
                s.cp_plans[0].ended_on = Some(d("2027-03-01"));
                s.conferences.retain(|c| c.id != "CONF-3");
            }),
            ..sc(
                ALL,
                "first-review",
                "2027-04-13T22:59:59Z",
                |s, v| {
                    let c = conf_mut(s, "CONF-2");
                    c.held_at = v;
                    c.status = if v.is_some() { "held" } else { "scheduled" }.into();
                    c.scheduled_at = Some(v.unwrap_or(t("2027-05-01T09:00:00Z")));
                },
                Target::Child,
            )
        },
        // Next review within six months of Wednesday 7 April: 7 October 2027, 23:59:59 BST.
        Scenario {
            void: Some(|s| s.cp_plans[0].ended_on = Some(d("2027-06-01"))),
            ..sc(
                ALL,
                "subsequent-review",
                "2027-10-07T22:59:59Z",
                |s, v| {
                    let c = conf_mut(s, "CONF-3");
                    c.held_at = v;
                    c.status = if v.is_some() { "held" } else { "scheduled" }.into();
                    c.scheduled_at = Some(v.unwrap_or(t("2027-10-20T09:00:00Z")));
                },
                Target::Conference("CONF-2"),
            )
        },
        // Pan-Dorset: initial conference 13 January 10:00 - 24 hours; review 7 April - 5 working days
        // (Tuesday 6, Monday 5, Friday 2, Thursday 1 April, Wednesday 31 March).
        Scenario {
            void: Some(cancel_conf1),
            ..sc(
                &["pan-dorset"],
                "report-to-chair",
                "2027-01-12T10:00:00Z",
                |s, v| inv_mut(s, "CONF-1", "AG-POL").report_received_at = v,
                Target::Agency("CONF-1", "AG-POL"),
            )
        },
        sc(
            &["pan-dorset"],
            "report-to-chair",
            "2027-03-31T22:59:59Z",
            |s, v| inv_mut(s, "CONF-2", "AG-POL").report_received_at = v,
            Target::Agency("CONF-2", "AG-POL"),
        ),
        Scenario {
            void: Some(cancel_conf1),
            ..sc(
                &["pan-dorset"],
                "report-shared-with-family",
                "2027-01-12T10:00:00Z",
                |s, v| inv_mut(s, "CONF-1", "AG-EDU").report_shared_with_family_at = v,
                Target::Agency("CONF-1", "AG-EDU"),
            )
        },
        sc(
            &["pan-dorset"],
            "report-shared-with-family",
            "2027-03-31T22:59:59Z",
            |s, v| inv_mut(s, "CONF-2", "AG-EDU").report_shared_with_family_at = v,
            Target::Agency("CONF-2", "AG-EDU"),
        ),
        // Minutes: 10 working days from 13 January = 27 January (Pan-Dorset, Hampshire); 15 = 3 February (Barnsley, Bolton); 20 = 10 February (Cwm Taf).
        sc(
            &["pan-dorset", "hampshire-4lscb"],
            "minutes-circulated",
            "2027-01-27T23:59:59Z",
            |s, v| conf_mut(s, "CONF-1").minutes_circulated_at = v,
            Target::Conference("CONF-1"),
        ),
        sc(
            &["barnsley", "bolton"],
            "minutes-circulated",
            "2027-02-03T23:59:59Z",
            |s, v| conf_mut(s, "CONF-1").minutes_circulated_at = v,
            Target::Conference("CONF-1"),
        ),
        sc(
            &["cwm-taf-morgannwg"],
            "minutes-circulated",
            "2027-02-10T23:59:59Z",
            |s, v| conf_mut(s, "CONF-1").minutes_circulated_at = v,
            Target::Conference("CONF-1"),
        ),
        // Hampshire: agencies 24 hours, the social worker 48 hours before Wednesday 13 January 10:00.
        Scenario {
            void: Some(cancel_conf1),
            ..sc(
                &["hampshire-4lscb"],
                "report-to-chair",
                "2027-01-12T10:00:00Z",
                |s, v| inv_mut(s, "CONF-1", "AG-HV").report_received_at = v,
                Target::Agency("CONF-1", "AG-HV"),
            )
        },
        Scenario {
            void: Some(cancel_conf1),
            ..sc(
                &["hampshire-4lscb"],
                "sw-report-to-chair",
                "2027-01-11T10:00:00Z",
                |s, v| inv_mut(s, "CONF-1", "AG-CSC").report_received_at = v,
                Target::Agency("CONF-1", "AG-CSC"),
            )
        },
        // Hampshire: the core group follows the conference directly (same working day).
        sc(
            &["hampshire-4lscb"],
            "first-core-group",
            "2027-01-13T23:59:59Z",
            |s, v| match v {
                Some(v) => s.core_groups[0].held_at = v,
                None => s.core_groups.clear(),
            },
            Target::Child,
        ),
        sc(
            &["hampshire-4lscb"],
            "plan-circulated",
            "2027-01-15T23:59:59Z",
            |s, v| conf_mut(s, "CONF-1").plan_circulated_at = v,
            Target::Conference("CONF-1"),
        ),
        sc(
            &["hampshire-4lscb"],
            "plan-hard-copy",
            "2027-01-18T23:59:59Z",
            |s, v| conf_mut(s, "CONF-1").plan_hard_copy_sent_at = v,
            Target::Conference("CONF-1"),
        ),
        // Barnsley: booked within 24 hours of the decision (Monday 21 December 13:00).
        sc(
            &["barnsley"],
            "conference-booked",
            "2026-12-22T13:00:00Z",
            |s, v| conf_mut(s, "CONF-1").requested_at = v,
            Target::Child,
        ),
        // Barnsley: a week before Wednesday 13 January is Wednesday 6 January.
        Scenario {
            void: Some(cancel_conf1),
            ..sc(
                &["barnsley"],
                "chair-liaison",
                "2027-01-06T23:59:59Z",
                |s, v| conf_mut(s, "CONF-1").chair_liaison_at = v,
                Target::Conference("CONF-1"),
            )
        },
        // Barnsley: two days before is Monday 11 January; two working days before at 10:00 is Monday 11 January 10:00.
        Scenario {
            void: Some(cancel_conf1),
            ..sc(
                &["barnsley"],
                "report-shared-with-family",
                "2027-01-11T23:59:59Z",
                |s, v| inv_mut(s, "CONF-1", "AG-POL").report_shared_with_family_at = v,
                Target::Agency("CONF-1", "AG-POL"),
            )
        },
        Scenario {
            void: Some(cancel_conf1),
            ..sc(
                &["barnsley"],
                "report-to-unit",
                "2027-01-11T23:59:59Z",
                |s, v| inv_mut(s, "CONF-1", "AG-EDU").report_received_at = v,
                Target::Agency("CONF-1", "AG-EDU"),
            )
        },
        Scenario {
            void: Some(cancel_conf1),
            ..sc(
                &["barnsley"],
                "sw-report-authorised",
                "2027-01-11T10:00:00Z",
                |s, v| inv_mut(s, "CONF-1", "AG-CSC").report_authorised_at = v,
                Target::Agency("CONF-1", "AG-CSC"),
            )
        },
        sc(
            &["barnsley"],
            "decision-circulated",
            "2027-01-14T10:00:00Z",
            |s, v| conf_mut(s, "CONF-1").decision_circulated_at = v,
            Target::Conference("CONF-1"),
        ),
        // Cwm Taf: two working days before = end of Monday 11 January; the day before = end of Tuesday 12.
        Scenario {
            void: Some(cancel_conf1),
            ..sc(
                &["cwm-taf-morgannwg"],
                "report-to-chair",
                "2027-01-11T23:59:59Z",
                |s, v| inv_mut(s, "CONF-1", "AG-POL").report_received_at = v,
                Target::Agency("CONF-1", "AG-POL"),
            )
        },
        Scenario {
            void: Some(cancel_conf1),
            ..sc(
                &["cwm-taf-morgannwg"],
                "report-shared-with-family",
                "2027-01-12T23:59:59Z",
                |s, v| inv_mut(s, "CONF-1", "AG-POL").report_shared_with_family_at = v,
                Target::Agency("CONF-1", "AG-POL"),
            )
        },
        // Cwm Taf: 5 working days (end of Wednesday 20 January) or the first core group (20 January 10:00), whichever is sooner.
        sc(
            &["cwm-taf-morgannwg"],
            "summary-circulated",
            "2027-01-20T10:00:00Z",
            |s, v| conf_mut(s, "CONF-1").summary_circulated_at = v,
            Target::Conference("CONF-1"),
        ),
        // Cwm Taf: the chair's concern about the decision of Wednesday 13
        // January escalated "immediately after conference": that working day.
        sc(
            &["cwm-taf-morgannwg"],
            "chair-escalation",
            "2027-01-13T23:59:59Z",
            |s, v| {
                let c = conf_mut(s, "CONF-1");
                c.chair_concern = true;
                c.chair_escalated_at = v;
            },
            Target::Conference("CONF-1"),
        ),
        // Bolton: requested within one working day of the recommendation (Monday 21 December).
        sc(
            &["bolton"],
            "conference-requested",
            "2026-12-22T23:59:59Z",
            |s, v| conf_mut(s, "CONF-1").requested_at = v,
            Target::Child,
        ),
        // Bolton: two working days before, for initial and review conferences (Easter Monday 29 March is long past by 5 April).
        Scenario {
            void: Some(cancel_conf1),
            ..sc(
                &["bolton"],
                "report-to-chair",
                "2027-01-11T23:59:59Z",
                |s, v| inv_mut(s, "CONF-1", "AG-HV").report_received_at = v,
                Target::Agency("CONF-1", "AG-HV"),
            )
        },
        sc(
            &["bolton"],
            "report-to-chair",
            "2027-04-05T22:59:59Z",
            |s, v| inv_mut(s, "CONF-2", "AG-HV").report_received_at = v,
            Target::Agency("CONF-2", "AG-HV"),
        ),
        Scenario {
            void: Some(cancel_conf1),
            ..sc(
                &["bolton"],
                "workbook-submitted",
                "2027-01-11T23:59:59Z",
                |s, v| s.conference_children[0].workbook_received_at = v,
                Target::ChildAt("CONF-1"),
            )
        },
    ]
}

#[test]
fn every_deadline_rule_on_time_on_the_deadline_late_missing_excepted_and_void() {
    let all = scenarios();
    assert!(all.len() > 30);
    for sc in &all {
        run(sc);
    }
}

#[test]
fn the_scenario_list_covers_every_deadline_rule_of_every_board() {
    let rules = built_in_rules();
    let covered: Vec<&str> = scenarios().iter().map(|s| s.rule).collect();
    // Rules with their own tests below (recurring, standards, other subjects).
    let elsewhere = [
        "transfer-in-conference",
        "cin-plan-review",
        "age-18-review",
        "quoracy",
        "reconvene-adjourned",
        "reconvene-overruled",
        "reconvene-discontinuation-dissent",
        "discontinued-at-first-review",
        "discontinued-without-core-assessment",
        "core-group-interval",
        "pre-birth-request",
        "pre-birth-conference",
        "advocacy-offered",
        "cp-visit-frequency",
        "reconvene-not-quorate",
        "reconvene-deferred",
        "minutes-amendments-window",
    ];
    for b in rules.boards.values().flatten() {
        for r in &b.rules {
            assert!(
                covered.contains(&r.id.as_str()) || elsewhere.contains(&r.id.as_str()),
                "{} {} has no scenario",
                b.id,
                r.id
            );
        }
    }
}

fn one<'e>(
    e: &'e Evaluation,
    board: &str,
    rule: &str,
    pred: impl Fn(&Obligation) -> bool,
) -> &'e Obligation {
    let v: Vec<&Obligation> = e
        .obligations
        .iter()
        .filter(|o| &*o.of.board == board && &*o.of.rule == rule && pred(o))
        .collect();
    assert_eq!(v.len(), 1, "{board} {rule}: {v:#?}");
    v[0]
}

/// Every obligation, as JSON, in report order.
fn obligations_json(e: &Evaluation) -> Vec<String> {
    let mut v: Vec<&Obligation> = e.obligations.iter().collect();
    v.sort_by(|a, b| a.report_cmp(b));
    v.iter()
        .map(|o| serde_json::to_string(o).expect("json"))
        .collect()
}

#[test]
fn rows_sharing_an_id_are_findings_and_the_first_is_evaluated_once() {
    let s = fixture("pan-dorset");
    let once = eval(&s, LATER);
    let mut twice = s.clone();
    // A view over tables without keys can repeat a child or a conference, differently.
    twice.children.push(Child {
        reference: "TEST-COPY".into(),
        ..twice.children[0].clone()
    });
    let mut copy = twice.conferences[0].clone();
    copy.minutes_circulated_at = None;
    let copied = copy.id.to_string();
    twice.conferences.push(copy);
    let e = eval(&twice, LATER);
    // The copies are reported and otherwise left out: nothing else is said about them.
    let mut expected = once.findings.clone();
    expected.push(Finding::new(
        "duplicate_id",
        "children",
        "C1",
        "another row has the same id; only the first row read is evaluated",
    ));
    expected.push(Finding::new(
        "duplicate_id",
        "conferences",
        &copied,
        "another row has the same id; only the first row read is evaluated",
    ));
    cpwatch::domain::evaluate::sort_findings(&mut expected);
    assert_eq!(e.findings, expected);
    assert_eq!(obligations_json(&e), obligations_json(&once));
}

/// A referral, strategy discussion, assessment or plan repeated (same id,
/// same child, different values) would double the obligations its id names:
/// each copy is a finding, and only the first row is evaluated (fails if the
/// copies give obligations of their own or go unreported).
#[test]
fn repeated_rows_of_a_child_are_findings_and_evaluated_once() {
    let s = fixture("pan-dorset");
    let once = eval(&s, LATER);
    let mut twice = s.clone();
    let mut r = twice.referrals[0].clone();
    r.acknowledged_at = None;
    twice.referrals.push(r);
    let mut d = twice.strategy_discussions[1].clone();
    d.record_circulated_at = None;
    twice.strategy_discussions.push(d);
    let mut a = twice.assessments[0].clone();
    a.completed_on = None;
    twice.assessments.push(a);
    let mut p = twice.cp_plans[0].clone();
    p.visit_interval_working_days = Some(3);
    twice.cp_plans.push(p);
    let e = eval(&twice, LATER);
    let mut expected = once.findings.clone();
    for (table, id) in [
        ("referrals", s.referrals[0].id.to_string()),
        (
            "strategy_discussions",
            s.strategy_discussions[1].id.to_string(),
        ),
        ("assessments", s.assessments[0].id.to_string()),
        ("cp_plans", s.cp_plans[0].id.to_string()),
    ] {
        expected.push(Finding::new(
            "duplicate_id",
            table,
            &id,
            "another row of this child has the same id; only the first row read is evaluated",
        ));
    }
    cpwatch::domain::evaluate::sort_findings(&mut expected);
    assert_eq!(e.findings, expected);
    assert_eq!(obligations_json(&e), obligations_json(&once));
}

#[test]
fn children_of_boards_without_rules_are_findings_and_leave_the_rest_as_it_was() {
    let s = fixture("pan-dorset");
    let once = eval(&s, LATER);
    let mut more = s.clone();
    // Children of boards with no rule file before and after the board's own,
    // one of them at a conference of its own.
    let stranger = |id: &str, board: &str| Child {
        id: id.into(),
        reference: format!("TEST-{id}").into(),
        board: Some(board.into()),
        ..s.children[0].clone()
    };
    more.children = vec![
        stranger("CX", "nowhere"),
        stranger("CY", "elsewhere"),
        s.children[0].clone(),
        stranger("CZ", "nowhere"),
    ];
    more.conferences
        .push(conference("CONF-X", "initial", "2026-12-01T10:00:00Z"));
    more.conference_children.push(cc("CONF-X", "CX", "plan"));
    let e = eval(&more, LATER);
    let unknown: Vec<(&str, &str)> = e
        .findings
        .iter()
        .filter(|f| f.kind == "unknown_board")
        .map(|f| {
            (
                f.row.as_str(),
                f.message.split(" has no").next().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        unknown,
        [
            ("CX", "board \"nowhere\""),
            ("CY", "board \"elsewhere\""),
            ("CZ", "board \"nowhere\"")
        ]
    );
    let others: Vec<&Finding> = e
        .findings
        .iter()
        .filter(|f| f.kind != "unknown_board")
        .collect();
    assert_eq!(others, once.findings.iter().collect::<Vec<_>>());
    assert_eq!(obligations_json(&e), obligations_json(&once));
}

#[test]
fn an_initial_conference_not_yet_arranged_is_still_watched() {
    let mut s = fixture("barnsley");
    s.conferences.retain(|c| c.id == "CONF-9");
    s.conference_children.clear();
    let e = eval(&s, "2027-01-15T09:00:00Z");
    let o = one(&e, "barnsley", "icpc-timeliness", |_| true);
    assert_eq!(
        (o.conference.as_deref(), o.status, o.due_at),
        (None, Status::Overdue, t("2027-01-14T23:59:59Z"))
    );
    assert_eq!(o.child.as_deref(), Some("TEST-1"));
    let e = eval(&s, "2027-01-08T09:00:00Z");
    assert_eq!(
        one(&e, "barnsley", "icpc-timeliness", |_| true).status,
        Status::Pending
    );
}

#[test]
fn icpc_counts_from_the_last_s47_strategy_discussion() {
    let mut s = fixture("pan-dorset");
    s.strategy_discussions[0].s47_initiated = true;
    let e = eval(&s, LATER);
    let o = one(&e, "pan-dorset", "icpc-timeliness", |o| {
        o.conference.as_deref() == Some("CONF-1")
    });
    assert_eq!(o.starts_at, t("2026-12-21T11:00:00Z"));
    // A discussion after the conference does not count.
    s.strategy_discussions.push(StrategyDiscussion {
        id: "SD3".into(),
        held_at: t("2027-02-01T10:00:00Z"),
        ..s.strategy_discussions[1].clone()
    });
    let e = eval(&s, LATER);
    assert_eq!(
        one(&e, "pan-dorset", "icpc-timeliness", |o| o
            .conference
            .as_deref()
            == Some("CONF-1"))
        .starts_at,
        t("2026-12-21T11:00:00Z")
    );
}

#[test]
fn transfer_in_conference_counts_from_the_notification_or_the_request() {
    let mut s = fixture("pan-dorset");
    let mut c = conference("CONF-T", "transfer_in", "2027-02-05T10:00:00Z");
    c.transfer_notified_at = Some(t("2027-01-15T10:00:00Z"));
    c.requested_at = Some(t("2027-01-18T10:00:00Z"));
    s.conferences.push(c);
    s.conference_children.push(cc("CONF-T", "C1", "plan"));
    // Notified Friday 15 January: 15 working days = Friday 5 February.
    let e = eval(&s, LATER);
    let o = one(&e, "pan-dorset", "transfer-in-conference", |_| true);
    assert_eq!(
        (o.due_at, o.status),
        (t("2027-02-05T23:59:59Z"), Status::Met)
    );
    // Barnsley counts from the request received (Monday 18 January): Monday 8 February.
    s.children[0].board = Some("barnsley".into());
    let e = eval(&s, LATER);
    let o = one(&e, "barnsley", "transfer-in-conference", |_| true);
    assert_eq!(
        (o.due_at, o.status),
        (t("2027-02-08T23:59:59Z"), Status::Met)
    );
    conf_mut(&mut s, "CONF-T").held_at = Some(t("2027-02-09T10:00:00Z"));
    let e = eval(&s, LATER);
    assert_eq!(
        one(&e, "barnsley", "transfer-in-conference", |_| true).status,
        Status::MetLate
    );
}

#[test]
fn pre_birth_conference_weeks_before_the_due_date() {
    let mut s = fixture("barnsley");
    s.children.push(Child {
        expected_due_date: Some(d("2027-06-30")),
        date_of_birth: None,
        ..child("C2", "TEST-2", "barnsley", None)
    });
    let mut c = conference("CONF-PB", "pre_birth", "2027-05-05T09:00:00Z");
    c.requested_at = Some(t("2027-04-07T09:00:00Z"));
    s.conferences.push(c);
    s.conference_children.push(cc("CONF-PB", "C2", "plan"));
    let e = eval(&s, LATER);
    // Due date Wednesday 30 June 2027: 12 weeks before is Wednesday 7 April, 8 weeks before Wednesday 5 May.
    let req = one(&e, "barnsley", "pre-birth-request", |_| true);
    assert_eq!(
        (req.due_at, req.status),
        (t("2027-04-07T22:59:59Z"), Status::Met)
    );
    let held = one(&e, "barnsley", "pre-birth-conference", |_| true);
    assert_eq!(
        (held.due_at, held.status),
        (t("2027-05-05T22:59:59Z"), Status::Met)
    );
    // The pre-birth conference also answers the initial-conference timescale, when there was a strategy discussion.
    assert!(
        e.obligations
            .iter()
            .all(|o| !(&*o.of.rule == "icpc-timeliness"
                && o.conference.as_deref() == Some("CONF-PB")))
    );
    conf_mut(&mut s, "CONF-PB").held_at = Some(t("2027-05-06T09:00:00Z"));
    let e = eval(&s, LATER);
    assert_eq!(
        one(&e, "barnsley", "pre-birth-conference", |_| true).status,
        Status::MetLate
    );
}

fn add_reconvening(s: &mut CaseState, original: &str, status: &str, held: Option<&str>) {
    conf_mut(s, original).status = status.into();
    if let Some(h) = held {
        let mut c = conference(&format!("{original}-R"), "initial", h);
        c.reconvenes_id = Some(original.into());
        s.conferences.push(c);
        s.conference_children
            .push(cc(&format!("{original}-R"), "C1", "plan"));
    }
}

#[test]
fn adjourned_and_deferred_conferences_reconvene_in_time() {
    // Adjourned Wednesday 13 January: Pan-Dorset 15 working days (Wednesday 3 February), Bolton 20 (Wednesday 10 February).
    for (board, rule, status, due) in [
        (
            "pan-dorset",
            "reconvene-adjourned",
            "adjourned",
            "2027-02-03T23:59:59Z",
        ),
        // Pan-Dorset's note treats deferring the decision as the same step.
        (
            "pan-dorset",
            "reconvene-adjourned",
            "deferred",
            "2027-02-03T23:59:59Z",
        ),
        (
            "bolton",
            "reconvene-not-quorate",
            "adjourned",
            "2027-02-10T23:59:59Z",
        ),
        (
            "bolton",
            "reconvene-deferred",
            "deferred",
            "2027-02-10T23:59:59Z",
        ),
    ] {
        let mut s = fixture(board);
        add_reconvening(&mut s, "CONF-1", status, Some("2027-02-03T10:00:00Z"));
        let e = eval(&s, LATER);
        let o = one(&e, board, rule, |o| {
            o.conference.as_deref() == Some("CONF-1")
        });
        assert_eq!(
            (o.due_at, o.status, o.met_at),
            (t(due), Status::Met, Some(t("2027-02-03T10:00:00Z"))),
            "{board} {rule}"
        );
        let mut s = fixture(board);
        add_reconvening(&mut s, "CONF-1", status, None);
        s.conferences.retain(|c| c.id == "CONF-1");
        let e = eval(&s, LATER);
        assert_eq!(
            one(&e, board, rule, |_| true).status,
            Status::Overdue,
            "{board} {rule} missing"
        );
    }
}

#[test]
fn overruled_and_dissent_reconvened_within_four_weeks() {
    let mut s = fixture("pan-dorset");
    conf_mut(&mut s, "CONF-1").chair_overruled = true;
    let mut c = conference("CONF-1-R", "initial", "2027-02-11T10:00:00Z");
    c.reconvenes_id = Some("CONF-1".into());
    s.conferences.push(c);
    s.conference_children.push(cc("CONF-1-R", "C1", "plan"));
    let e = eval(&s, LATER);
    // 13 January + 4 weeks = Wednesday 10 February: the further conference on the 11th is a day late.
    let o = one(&e, "pan-dorset", "reconvene-overruled", |_| true);
    assert_eq!(
        (o.due_at, o.status, o.late_working_days),
        (t("2027-02-10T23:59:59Z"), Status::MetLate, Some(1))
    );
    // Dissent: the review of 7 April ended the plan with a dissent recorded.
    // The duty exists from the dissent: overdue once four weeks pass with no
    // conference arranged, met when one is held in time.
    let mut s = fixture("pan-dorset");
    let ended = s
        .conference_children
        .iter_mut()
        .find(|x| x.conference_id == "CONF-2")
        .expect("cc");
    ended.outcome = Some("plan_ended".into());
    let e = eval(&s, LATER);
    assert!(
        !e.obligations
            .iter()
            .any(|o| &*o.of.rule == "reconvene-discontinuation-dissent"),
        "no dissent, no duty to reconvene"
    );
    s.conference_children
        .iter_mut()
        .find(|x| x.conference_id == "CONF-2")
        .expect("cc")
        .dissent_recorded = true;
    let e = eval(&s, "2027-06-01T09:00:00Z");
    let o = one(
        &e,
        "pan-dorset",
        "reconvene-discontinuation-dissent",
        |_| true,
    );
    assert_eq!(
        (o.due_at, o.status, o.child.as_deref()),
        (t("2027-05-05T22:59:59Z"), Status::Overdue, Some("TEST-1"))
    );
    let mut c = conference("CONF-2-R", "review", "2027-05-04T09:00:00Z");
    c.reconvenes_id = Some("CONF-2".into());
    s.conferences.push(c);
    s.conference_children
        .push(cc("CONF-2-R", "C1", "plan_continues"));
    let e = eval(&s, LATER);
    let o = one(
        &e,
        "pan-dorset",
        "reconvene-discontinuation-dissent",
        |_| true,
    );
    assert_eq!(
        (o.due_at, o.status),
        (t("2027-05-05T22:59:59Z"), Status::Met)
    );
}

#[test]
fn quoracy_standards_differ_by_board() {
    let at = LATER;
    let mut s = fixture("pan-dorset");
    let e = eval(&s, at);
    assert_eq!(
        one(&e, "pan-dorset", "quoracy", |o| o.conference.as_deref()
            == Some("CONF-1"))
        .status,
        Status::Met
    );
    // Only children's social care and one other agency attend: not quorate.
    for a in ["AG-HV", "AG-EDU"] {
        inv_mut(&mut s, "CONF-1", a).attended = Some(false);
    }
    let e = eval(&s, at);
    let o = one(&e, "pan-dorset", "quoracy", |o| {
        o.conference.as_deref() == Some("CONF-1")
    });
    assert_eq!((o.status, o.child.as_deref()), (Status::Missed, None));
    s.exceptions
        .push(exception("quoracy", None, Some("CONF-1"), None));
    let e = eval(&s, at);
    assert_eq!(
        one(&e, "pan-dorset", "quoracy", |o| o.conference.as_deref()
            == Some("CONF-1"))
        .status,
        Status::Excepted
    );
    // Cwm Taf counts three agencies in all, and wants midwifery for an unborn child.
    let mut s = fixture("cwm-taf-morgannwg");
    for a in ["AG-CSC", "AG-EDU"] {
        inv_mut(&mut s, "CONF-1", a).attended = Some(false);
    }
    let e = eval(&s, at);
    assert_eq!(
        one(&e, "cwm-taf-morgannwg", "quoracy", |o| o
            .conference
            .as_deref()
            == Some("CONF-1"))
        .status,
        Status::Missed
    );
    let mut s = fixture("cwm-taf-morgannwg");
    conf_mut(&mut s, "CONF-1").kind = "pre_birth".into();
    let e = eval(&s, at);
    assert_eq!(
        one(&e, "cwm-taf-morgannwg", "quoracy", |o| o
            .conference
            .as_deref()
            == Some("CONF-1"))
        .status,
        Status::Missed
    );
    s.invitations
        .push(invitation("CONF-1", "AG-MW", "2027-01-08T12:00:00Z"));
    let e = eval(&s, at);
    assert_eq!(
        one(&e, "cwm-taf-morgannwg", "quoracy", |o| o
            .conference
            .as_deref()
            == Some("CONF-1"))
        .status,
        Status::Met
    );
    // Attendance not recorded at all is not quorate.
    let mut s = fixture("bolton");
    s.invitations.iter_mut().for_each(|i| i.attended = None);
    let e = eval(&s, at);
    assert_eq!(
        one(&e, "bolton", "quoracy", |o| o.conference.as_deref()
            == Some("CONF-1"))
        .status,
        Status::Missed
    );
}

#[test]
fn advocacy_offered_by_age() {
    // Born 10 May 2013: 13 at the January 2027 conference.
    let s = fixture("barnsley");
    let e = eval(&s, LATER);
    assert_eq!(
        one(&e, "barnsley", "advocacy-offered", |o| o
            .conference
            .as_deref()
            == Some("CONF-1"))
        .status,
        Status::Met
    );
    let mut s = fixture("bolton");
    s.conference_children[0].advocacy_offered = Some(false);
    let e = eval(&s, LATER);
    assert_eq!(
        one(&e, "bolton", "advocacy-offered", |o| o
            .conference
            .as_deref()
            == Some("CONF-1"))
        .status,
        Status::Missed
    );
    // Twelve years old: Bolton's "over 13" does not apply, Barnsley's 11-15 does.
    let mut s = fixture("bolton");
    s.children[0].date_of_birth = Some(d("2014-06-01"));
    let e = eval(&s, LATER);
    assert!(!e
        .obligations
        .iter()
        .any(|o| &*o.of.rule == "advocacy-offered" && o.conference.as_deref() == Some("CONF-1")));
    s.children[0].board = Some("barnsley".into());
    let e = eval(&s, LATER);
    assert_eq!(
        one(&e, "barnsley", "advocacy-offered", |o| o
            .conference
            .as_deref()
            == Some("CONF-1"))
        .status,
        Status::Met
    );
    // A scheduled conference: pending; cancelled: void.
    let mut s = fixture("barnsley");
    let e = eval(&s, "2027-01-12T09:00:00Z");
    assert_eq!(
        one(&e, "barnsley", "advocacy-offered", |o| o
            .conference
            .as_deref()
            == Some("CONF-1"))
        .status,
        Status::DueSoon
    );
    cancel_conf1(&mut s);
    let e = eval(&s, LATER);
    assert_eq!(
        one(&e, "barnsley", "advocacy-offered", |o| o
            .conference
            .as_deref()
            == Some("CONF-1"))
        .status,
        Status::Void
    );
}

#[test]
fn discontinuation_audit_flags() {
    let mut s = fixture("pan-dorset");
    s.conference_children
        .iter_mut()
        .find(|x| x.conference_id == "CONF-2")
        .expect("cc")
        .outcome = Some("plan_ended".into());
    s.cp_plans[0].ended_on = Some(d("2027-04-07"));
    let e = eval(&s, LATER);
    let o = one(&e, "pan-dorset", "discontinued-at-first-review", |_| true);
    assert_eq!(o.status, Status::Missed);
    // The core assessment was completed on 1 February, before the plan ended.
    assert_eq!(
        one(
            &e,
            "pan-dorset",
            "discontinued-without-core-assessment",
            |_| true
        )
        .status,
        Status::Met
    );
    s.exceptions.push(exception(
        "discontinued-at-first-review",
        Some("C1"),
        Some("CONF-2"),
        None,
    ));
    s.assessments[1].completed_on = Some(d("2027-04-20"));
    let e = eval(&s, LATER);
    assert_eq!(
        one(&e, "pan-dorset", "discontinued-at-first-review", |_| true).status,
        Status::Excepted
    );
    assert_eq!(
        one(
            &e,
            "pan-dorset",
            "discontinued-without-core-assessment",
            |_| true
        )
        .status,
        Status::Missed
    );
    // The October review is a second review: ending the plan there raises no flag.
    let mut s = fixture("pan-dorset");
    s.conference_children
        .iter_mut()
        .find(|x| x.conference_id == "CONF-3")
        .expect("cc")
        .outcome = Some("plan_ended".into());
    let e = eval(&s, LATER);
    assert!(!e
        .obligations
        .iter()
        .any(|o| &*o.of.rule == "discontinued-at-first-review"));
}

#[test]
fn core_groups_every_six_weeks_in_hampshire() {
    let mut s = fixture("hampshire-4lscb");
    // First core group 20 January, then 24 February; review conferences on 7 April and 5 October.
    s.core_groups.push(CoreGroup {
        id: "CG2".into(),
        child_id: "C1".into(),
        held_at: t("2027-02-24T10:00:00Z"),
    });
    let e = eval(&s, "2027-06-30T12:00:00Z");
    let chain: Vec<(Instant, Status)> = e
        .obligations
        .iter()
        .filter(|o| &*o.of.rule == "core-group-interval")
        .map(|o| (o.due_at, o.status))
        .collect();
    assert_eq!(
        chain,
        vec![
            (t("2027-03-03T23:59:59Z"), Status::Met), // 20 Jan + 6 weeks, met 24 Feb
            (t("2027-04-07T22:59:59Z"), Status::Met), // 24 Feb + 6 weeks, met by the review conference on 7 April
            (t("2027-05-19T22:59:59Z"), Status::Overdue), // 7 April + 6 weeks: nothing since
        ]
    );
    // No first core group yet: no chain (first-core-group reports that).
    s.core_groups.clear();
    let e = eval(&s, "2027-06-30T12:00:00Z");
    assert!(!e
        .obligations
        .iter()
        .any(|o| &*o.of.rule == "core-group-interval"));
}

#[test]
fn visits_at_the_plans_interval_in_barnsley() {
    let mut s = fixture("barnsley");
    // Every 10 working days from Wednesday 13 January: 27 January; visit on 26 January; then 9 February.
    s.visits.push(Visit {
        id: "V1".into(),
        child_id: "C1".into(),
        visited_at: t("2027-01-26T11:00:00Z"),
        seen_alone: Some(true),
    });
    s.visits.push(Visit {
        id: "V2".into(),
        child_id: "C1".into(),
        visited_at: t("2027-02-10T11:00:00Z"),
        seen_alone: Some(true),
    });
    let e = eval(&s, "2027-02-26T12:00:00Z");
    let chain: Vec<(Instant, Status, Option<i32>)> = e
        .obligations
        .iter()
        .filter(|o| &*o.of.rule == "cp-visit-frequency")
        .map(|o| (o.due_at, o.status, o.late_working_days))
        .collect();
    assert_eq!(
        chain,
        vec![
            (t("2027-01-27T23:59:59Z"), Status::Met, Some(0)),
            (t("2027-02-09T23:59:59Z"), Status::MetLate, Some(1)),
            (t("2027-02-24T23:59:59Z"), Status::Overdue, Some(2)),
        ]
    );
    // No interval in the plan: no visiting obligation.
    s.cp_plans[0].visit_interval_working_days = None;
    let e = eval(&s, "2027-02-26T12:00:00Z");
    assert!(!e
        .obligations
        .iter()
        .any(|o| &*o.of.rule == "cp-visit-frequency"));
    // The plan ends: the chain stops, and an unmet visit due after the end is void.
    s.cp_plans[0].visit_interval_working_days = Some(10);
    s.cp_plans[0].ended_on = Some(d("2027-02-15"));
    let e = eval(&s, "2027-02-26T12:00:00Z");
    let last = e
        .obligations
        .iter()
        .rfind(|o| &*o.of.rule == "cp-visit-frequency")
        .expect("chain");
    assert_eq!(last.status, Status::Void);
}

#[test]
fn child_in_need_plan_reviews_recur() {
    let mut s = fixture("working-together-2010");
    s.conference_children[0].outcome = Some("no_plan_cin".into());
    s.conferences.retain(|c| c.id == "CONF-1");
    s.cp_plans.clear();
    s.cin_reviews.push(CinReview {
        id: "CIN1".into(),
        child_id: "C1".into(),
        held_on: d("2027-06-01"),
    });
    let e = eval(&s, LATER);
    let chain: Vec<(Instant, Status)> = e
        .obligations
        .iter()
        .filter(|o| &*o.of.rule == "cin-plan-review")
        .map(|o| (o.due_at, o.status))
        .collect();
    // 13 January + 6 months = 13 July (met 1 June); 1 June + 6 months = 1 December, still pending on 30 November.
    assert_eq!(
        chain,
        vec![
            (t("2027-07-13T22:59:59Z"), Status::Met),
            (t("2027-12-01T23:59:59Z"), Status::DueSoon)
        ]
    );
}

#[test]
fn review_around_the_eighteenth_birthday() {
    let mut s = fixture("working-together-2010");
    s.children[0].date_of_birth = Some(d("2009-09-15"));
    // Turns 18 on 15 September 2027; the October review is too late, so move one into the window.
    let e = eval(&s, "2027-05-01T12:00:00Z");
    assert!(
        !e.obligations.iter().any(|o| &*o.of.rule == "age-18-review"),
        "not before the 3-month window opens"
    );
    let e = eval(&s, "2027-07-01T12:00:00Z");
    let o = one(&e, "working-together-2010", "age-18-review", |_| true);
    assert_eq!(
        (o.due_at, o.status),
        (t("2027-09-15T22:59:59Z"), Status::DueSoon)
    );
    let e = eval(&s, "2027-09-20T12:00:00Z");
    assert_eq!(
        one(&e, "working-together-2010", "age-18-review", |_| true).status,
        Status::Overdue
    );
    conf_mut(&mut s, "CONF-3").held_at = Some(t("2027-09-01T09:00:00Z"));
    let e = eval(&s, "2027-09-20T12:00:00Z");
    assert_eq!(
        one(&e, "working-together-2010", "age-18-review", |_| true).status,
        Status::Met
    );
}

#[test]
fn the_minutes_amendment_window_is_a_notice_not_a_measure() {
    let s = fixture("bolton");
    // Minutes circulated Monday 25 January: 10 working days = Monday 8 February.
    let e = eval(&s, "2027-02-03T12:00:00Z");
    let o = one(&e, "bolton", "minutes-amendments-window", |o| {
        o.conference.as_deref() == Some("CONF-1")
    });
    assert_eq!(
        (o.due_at, o.status),
        (t("2027-02-08T23:59:59Z"), Status::DueSoon)
    );
    let e = eval(&s, "2027-02-09T12:00:00Z");
    assert_eq!(
        one(&e, "bolton", "minutes-amendments-window", |o| o
            .conference
            .as_deref()
            == Some("CONF-1"))
        .status,
        Status::Void
    );
}

#[test]
fn an_obligation_is_judged_by_the_version_in_force_when_it_started() {
    let mut files: Vec<(String, String)> = cpwatch::domain::rules::BUILT_IN
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    let v43 = cpwatch::domain::rules::BUILT_IN
        .iter()
        .find(|(n, _)| *n == "bolton.toml")
        .map(|(_, t)| t.to_string())
        .expect("bolton")
        .replace("version = \"v44\"", "version = \"v43\"")
        .replace("effective_from = 2024-06-03", "effective_from = 2020-01-01")
        .replace(
            "offset = \"+15 working days\"\nmet_by = \"conference.minutes_circulated_at\"",
            "offset = \"+20 working days\"\nmet_by = \"conference.minutes_circulated_at\"",
        );
    files.push(("bolton-v43.toml".into(), v43));
    let rules = cpwatch::domain::rules::load_texts(files).expect("both versions load");
    assert_eq!(rules.boards["bolton"].len(), 2);
    // A conference held on Wednesday 7 June 2023 is judged by v43 (20 working days: Wednesday 5 July).
    let mut s = fixture("bolton");
    let c = conf_mut(&mut s, "CONF-1");
    c.held_at = Some(t("2023-06-07T09:00:00Z"));
    c.scheduled_at = c.held_at;
    c.minutes_circulated_at = Some(t("2023-06-30T09:00:00Z"));
    let e = eval_with(&s, &rules, LATER);
    let o = one(&e, "bolton", "minutes-circulated", |o| {
        o.conference.as_deref() == Some("CONF-1")
    });
    assert_eq!(
        (&*o.of.board_version, o.due_at, o.status),
        ("v43", t("2023-07-05T22:59:59Z"), Status::Met)
    );
    // The same minutes after a 2025 conference are judged by v44 (15 working days).
    let e = eval_with(&fixture("bolton"), &rules, LATER);
    let o = one(&e, "bolton", "minutes-circulated", |o| {
        o.conference.as_deref() == Some("CONF-1")
    });
    assert_eq!(
        (&*o.of.board_version, o.due_at),
        ("v44", t("2027-02-03T23:59:59Z"))
    );
}

fn has(e: &Evaluation, kind: &str, table: &str, row: &str) -> bool {
    e.findings
        .iter()
        .any(|f| f.kind == kind && f.table == table && f.row == row)
}

#[test]
fn contradictory_data_is_reported_not_fatal() {
    let mut s = fixture("pan-dorset");
    // A conference held before the strategy discussion it answers.
    s.strategy_discussions.retain(|d| d.id == "SD2");
    s.strategy_discussions[0].held_at = t("2027-01-20T10:00:00Z");
    // A review about a child with no plan.
    s.children
        .push(child("C2", "TEST-2", "pan-dorset", Some("2015-01-01")));
    s.conferences
        .push(conference("CONF-X", "review", "2027-03-03T10:00:00Z"));
    s.conference_children
        .push(cc("CONF-X", "C2", "plan_continues"));
    // An invitation naming an unknown agency.
    s.invitations
        .push(invitation("CONF-1", "AG-NOPE", "2027-01-08T12:00:00Z"));
    // Minutes circulated after the evaluation instant.
    conf_mut(&mut s, "CONF-2").minutes_circulated_at = Some(t("2027-12-25T10:00:00Z"));
    // Two open plans.
    s.cp_plans.push(CpPlan {
        id: "P2".into(),
        ..s.cp_plans[0].clone()
    });
    // A reconvened conference pointing at a missing one.
    conf_mut(&mut s, "CONF-3").reconvenes_id = Some("CONF-GONE".into());
    // Rows pointing at children who do not exist.
    s.core_groups.push(CoreGroup {
        id: "CG9".into(),
        child_id: "C404".into(),
        held_at: t("2027-02-01T10:00:00Z"),
    });
    let e = eval(&s, LATER);
    assert!(
        has(
            &e,
            "conference_before_strategy_discussion",
            "conferences",
            "CONF-1"
        ),
        "{:#?}",
        e.findings
    );
    assert!(has(&e, "review_without_plan", "conferences", "CONF-X"));
    assert!(has(&e, "unknown_agency", "invitations", "CONF-1/AG-NOPE"));
    assert!(has(&e, "recorded_in_future", "conferences", "CONF-2"));
    assert!(
        has(&e, "two_open_plans", "cp_plans", "P2") || has(&e, "two_open_plans", "cp_plans", "P1")
    );
    assert!(has(
        &e,
        "missing_reconvened_conference",
        "conferences",
        "CONF-3"
    ));
    assert!(has(&e, "unknown_reference", "core_groups", "CG9"));
    // The future minutes count as not yet circulated.
    let o = one(&e, "pan-dorset", "minutes-circulated", |o| {
        o.conference.as_deref() == Some("CONF-2")
    });
    assert_eq!((o.status, o.met_at), (Status::Overdue, None));
    // A scheduled future conference is normal, not a finding.
    let mut s = fixture("pan-dorset");
    let c = conf_mut(&mut s, "CONF-3");
    c.status = "scheduled".into();
    c.held_at = None;
    c.decision_circulated_at = None;
    c.minutes_circulated_at = None;
    s.invitations.retain(|i| i.conference_id != "CONF-3");
    let e = eval(&s, "2027-06-01T12:00:00Z");
    assert!(
        !e.findings.iter().any(|f| f.row == "CONF-3"),
        "{:#?}",
        e.findings
    );
}

#[test]
fn obligations_carry_their_childs_team_and_an_unknown_worker_is_a_finding() {
    let mut s = fixture("pan-dorset");
    s.teams.push(Team {
        id: "T2".into(),
        name: "Team two".into(),
        manager_email: None,
    });
    s.workers.push(Worker {
        id: "W2".into(),
        name: "Worker two".into(),
        email: None,
        team_id: "T2".into(),
    });
    // A second child, in team two, and a third whose worker is not in the workers table.
    for (id, reference, worker) in [("C2", "TEST-2", "W2"), ("C3", "TEST-3", "W-GONE")] {
        s.children.push(Child {
            allocated_worker_id: Some(worker.into()),
            ..child(id, reference, "pan-dorset", Some("2015-01-01"))
        });
        for (n, visited) in ["2027-01-10T10:00:00Z", "2027-02-10T10:00:00Z"]
            .iter()
            .enumerate()
        {
            s.visits.push(Visit {
                id: format!("V-{id}-{n}").into(),
                child_id: id.into(),
                visited_at: t(visited),
                seen_alone: None,
            });
        }
        s.cp_plans.push(CpPlan {
            id: format!("P-{id}").into(),
            child_id: id.into(),
            ..s.cp_plans[0].clone()
        });
        s.referrals.push(Referral {
            id: format!("R-{id}").into(),
            child_id: id.into(),
            ..s.referrals[0].clone()
        });
    }
    for threads in [1, 2] {
        let e = eval_on(&s, &built_in_rules(), t(LATER), threads);
        assert!(
            has(&e, "unknown_reference", "children", "C3"),
            "{:#?}",
            e.findings
        );
        assert!(!e
            .findings
            .iter()
            .any(|f| f.table == "children" && f.row != "C3"));
        for (child, team) in [
            ("TEST-1", Some("T1")),
            ("TEST-2", Some("T2")),
            ("TEST-3", None),
        ] {
            let of_child: Vec<&Obligation> = (e.obligations.iter())
                .filter(|o| o.child.as_deref() == Some(child))
                .collect();
            assert!(of_child.len() > 3, "{child}: {}", of_child.len());
            assert!(
                of_child.iter().all(|o| o.team.as_deref() == team),
                "{child}: {:?}",
                of_child.iter().map(|o| &o.team).collect::<Vec<_>>()
            );
        }
        // A conference's own obligations are its first child's team's.
        let conf = one(&e, "pan-dorset", "minutes-circulated", |o| {
            o.conference.as_deref() == Some("CONF-2")
        });
        assert_eq!(conf.team.as_deref(), Some("T1"));
    }
}

#[test]
fn statuses_and_lateness_are_consistent_over_the_demo_authority() {
    let holidays = holidays();
    let rules = built_in_rules();
    let now = t("2026-11-23T09:00:00Z");
    let state = cpwatch::synthetic::demo::generate(7, 400, now, &holidays).expect("demo data");
    let e = eval_on(&state, &rules, now, 1);
    assert!(e.obligations.len() > 5_000);
    for o in &e.obligations {
        match o.status {
            Status::Met => assert!(
                o.met_at.is_some_and(|m| m <= o.due_at)
                    || o.of.kind == cpwatch::domain::rules::RuleKind::Standard,
                "{o:#?}"
            ),
            Status::MetLate => assert!(
                o.met_at.is_some_and(|m| m > o.due_at)
                    && o.late_working_days.is_some_and(|n| n >= 1),
                "{o:#?}"
            ),
            Status::Overdue => assert!(
                o.met_at.is_none()
                    && o.due_at < now
                    && o.of.kind != cpwatch::domain::rules::RuleKind::Standard,
                "{o:#?}"
            ),
            // Lapsed unmet: a standard not met at its conference, or a duty
            // before a conference that went ahead without it.
            Status::Missed => assert!(
                o.met_at.is_none()
                    && (o.of.kind == cpwatch::domain::rules::RuleKind::Standard
                        || o.late_working_days.is_some_and(|n| n >= 0) && o.conference.is_some()),
                "{o:#?}"
            ),
            Status::Pending | Status::DueSoon => {
                assert!(o.due_at >= now && o.met_at.is_none(), "{o:#?}")
            }
            Status::Excepted => assert!(o.exception_reason.is_some()),
            Status::Void => {}
        }
    }
    // Keys identify obligations: no two alike.
    let mut keys: Vec<String> = e.obligations.iter().map(|o| o.key()).collect();
    keys.sort_unstable();
    let before = keys.len();
    keys.dedup();
    assert_eq!(before, keys.len(), "duplicate obligation keys");
    // Every board is represented, with every status a QA officer expects.
    for b in [
        "barnsley",
        "bolton",
        "cwm-taf-morgannwg",
        "hampshire-4lscb",
        "pan-dorset",
    ] {
        assert!(e.obligations.iter().any(|o| &*o.of.board == b));
    }
    for st in [
        Status::Met,
        Status::MetLate,
        Status::Overdue,
        Status::Pending,
        Status::DueSoon,
        Status::Excepted,
        Status::Void,
    ] {
        assert!(e.obligations.iter().any(|o| o.status == st), "{st:?}");
    }
    // The same seed gives the same data.
    let again = cpwatch::synthetic::demo::generate(7, 400, now, &holidays).expect("demo data");
    assert_eq!(
        serde_json::to_string(&state).expect("json"),
        serde_json::to_string(&again).expect("json")
    );
}

/// Shared out among threads, an evaluation gives exactly what it gives on one:
/// every obligation, field by field, and the same findings.
/// Demo data evaluated at 20 December 2027 that meets calendar errors and
/// rows recorded after the evaluation, which evaluation reads corrected.
fn busy_state() -> (CaseState, Instant) {
    let holidays = common::holidays();
    let now = t("2027-12-20T09:00:00Z");
    let mut state =
        cpwatch::synthetic::demo::generate(11, 300, t("2026-11-23T09:00:00Z"), &holidays)
            .expect("demo data");
    // Conferences just held: their minutes are due in 2028, which the calendar does not cover,
    // so the workers meet calendar errors too.
    for c in state.conferences.iter_mut().take(20) {
        c.status = "held".into();
        c.held_at = Some(t("2027-12-17T10:00:00Z"));
        c.minutes_circulated_at = None;
    }
    // Rows recorded after the evaluation in the tables checked apart from the rest.
    state.visits[0].visited_at = t("2028-01-05T10:00:00Z");
    state.core_groups[0].held_at = t("2028-01-05T10:00:00Z");
    state.referrals[0].received_at = t("2028-01-05T10:00:00Z");
    (state, now)
}

/// An evaluation whose obligations borrow their names (what `check`,
/// `export` and `explain` take) keeps the same obligations and findings as
/// one that owns them, on any number of threads, with the rows recorded
/// after the evaluation corrected, and keeps only what it is asked to (fails
/// if a worker's obligations are lost or kept twice, or the filter ignored).
#[test]
fn a_borrowed_evaluation_keeps_what_an_owned_one_does() {
    let (state, now) = busy_state();
    let rules = built_in_rules();
    let holidays = common::holidays();
    let owned = eval_on(&state, &rules, now, 1);
    let mut expected: Vec<String> = owned.obligations.iter().map(|o| format!("{o:?}")).collect();
    expected.sort();
    assert!(owned
        .findings
        .iter()
        .any(|f| f.kind == "recorded_in_future" && f.table == "referrals"));
    for threads in [1, 2, 3] {
        let opts = Options {
            default_board: "working-together-2010",
            threads,
        };
        let mut scratch = Scratch::default();
        let e = evaluate_kept(&state, &rules, &holidays, now, &opts, &mut scratch, &|_| {
            true
        });
        let mut got: Vec<String> = e.obligations.iter().map(|o| format!("{o:?}")).collect();
        got.sort();
        assert_eq!(got.len(), expected.len(), "{threads} threads");
        assert!(got == expected, "{threads} threads");
        assert_eq!(e.findings, owned.findings, "{threads} threads");

        let mut scratch = Scratch::default();
        let bolton = evaluate_kept(&state, &rules, &holidays, now, &opts, &mut scratch, &|o| {
            &*o.of.board == "bolton"
        });
        let want = owned
            .obligations
            .iter()
            .filter(|o| &*o.of.board == "bolton")
            .count();
        assert!(want > 0 && want < owned.obligations.len());
        assert_eq!(bolton.obligations.len(), want, "{threads} threads");
    }
}

#[test]
fn threads_share_out_the_work_without_changing_the_result() {
    let (state, now) = busy_state();
    let rules = built_in_rules();
    let on = |threads| {
        let mut e = eval_on(&state, &rules, now, threads);
        e.obligations.sort_by(|a, b| a.report_cmp(b));
        let obligations: Vec<String> = e.obligations.iter().map(|o| format!("{o:?}")).collect();
        (obligations, e.findings)
    };
    let (one, one_findings) = on(1);
    assert!(one.len() > 5_000);
    assert!(one_findings
        .iter()
        .any(|f| f.kind == "calendar_not_covered"));
    for table in ["visits", "core_groups", "referrals"] {
        assert!(
            one_findings
                .iter()
                .any(|f| f.kind == "recorded_in_future" && f.table == table),
            "{table}"
        );
    }
    for threads in [2, 3, 8] {
        let (many, many_findings) = on(threads);
        assert_eq!(many.len(), one.len(), "{threads} threads");
        for (a, b) in many.iter().zip(&one) {
            assert_eq!(a, b, "{threads} threads");
        }
        assert_eq!(many_findings, one_findings, "{threads} threads");
    }
}

/// Every table's rows at even places, then those at odd places.
fn interleaved<T>(rows: &mut Vec<T>) {
    let (mut even, mut odd) = (Vec::new(), Vec::new());
    for (i, r) in rows.drain(..).enumerate() {
        if i % 2 == 0 {
            even.push(r);
        } else {
            odd.push(r);
        }
    }
    rows.extend(even);
    rows.extend(odd);
}

/// Rows are indexed by the child or conference they belong to. A table read
/// in another order, with each child's and each conference's rows split into
/// runs far apart (as an ETL that appends corrections gives), is the same
/// case state, and evaluates to the same obligations and findings.
#[test]
fn the_order_rows_are_read_in_does_not_change_the_result() {
    let holidays = common::holidays();
    let rules = built_in_rules();
    let now = t("2026-11-23T09:00:00Z");
    let state = cpwatch::synthetic::demo::generate(5, 300, now, &holidays).expect("demo data");
    let mut shuffled = state.clone();
    interleaved(&mut shuffled.children);
    interleaved(&mut shuffled.referrals);
    interleaved(&mut shuffled.assessments);
    interleaved(&mut shuffled.strategy_discussions);
    interleaved(&mut shuffled.conferences);
    interleaved(&mut shuffled.conference_children);
    interleaved(&mut shuffled.invitations);
    interleaved(&mut shuffled.cp_plans);
    interleaved(&mut shuffled.core_groups);
    interleaved(&mut shuffled.visits);
    interleaved(&mut shuffled.cin_reviews);
    interleaved(&mut shuffled.exceptions);
    let on = |s: &CaseState| {
        let mut e = eval_on(s, &rules, now, 1);
        e.obligations.sort_by(|a, b| a.report_cmp(b));
        let obligations: Vec<String> = e.obligations.iter().map(|o| format!("{o:?}")).collect();
        (obligations, e.findings)
    };
    let (read, read_findings) = on(&state);
    let (again, again_findings) = on(&shuffled);
    assert!(read.len() > 5_000);
    assert!(read.iter().any(|o| o.contains("Overdue")));
    assert_eq!(again.len(), read.len());
    for (a, b) in again.iter().zip(&read) {
        assert_eq!(a, b);
    }
    assert_eq!(again_findings, read_findings);
}

/// Collects what a sink is handed: each obligation as JSON, with its child's id
/// (which JSON leaves out), and the same obligation made owned.
#[derive(Default)]
struct Collect(Vec<(String, Option<String>, String)>);

impl cpwatch::domain::evaluate::Sink<'_> for Collect {
    fn put(&mut self, o: &cpwatch::domain::evaluate::Draft<'_>) {
        let owned = o.owned();
        self.0.push((
            serde_json::to_string(&o).expect("json"),
            o.child_id.map(|c| c.to_string()),
            serde_json::to_string(&owned).expect("json"),
        ));
    }
}

#[test]
fn sinks_are_handed_the_obligations_an_evaluation_keeps() {
    let holidays = holidays();
    let rules = built_in_rules();
    let now = t("2026-11-23T09:00:00Z");
    let state = cpwatch::synthetic::demo::generate(3, 300, now, &holidays).expect("demo data");
    let kept = eval_on(&state, &rules, now, 1);
    let opts = cpwatch::domain::evaluate::Options {
        default_board: "working-together-2010",
        threads: 2,
    };
    let mut sinks = [Collect::default(), Collect::default()];
    let mut scratch = cpwatch::domain::evaluate::Scratch::default();
    let findings = cpwatch::domain::evaluate::evaluate_split(
        &state,
        &rules,
        &holidays,
        now,
        &opts,
        &mut scratch,
        &mut sinks,
    );
    assert_eq!(findings, kept.findings);
    let mut handed: Vec<(String, Option<String>, String)> =
        sinks.into_iter().flat_map(|s| s.0).collect();
    let mut expected: Vec<(String, Option<String>, String)> = kept
        .obligations
        .iter()
        .map(|o| {
            let json = serde_json::to_string(o).expect("json");
            (
                json.clone(),
                o.child_id.as_deref().map(str::to_string),
                json,
            )
        })
        .collect();
    handed.sort();
    expected.sort();
    assert!(expected.len() > 3_000);
    assert_eq!(handed.len(), expected.len());
    for (h, e) in handed.iter().zip(&expected) {
        assert_eq!(h, e);
    }
    // Borrowed and back: every field, the child's id included.
    for o in &kept.obligations {
        let back = o.draft().owned();
        assert_eq!(back.child_id, o.child_id);
        assert_eq!(
            serde_json::to_string(&back).expect("json"),
            serde_json::to_string(o).expect("json")
        );
    }
}

/// An obligation is 128 bytes (`check` and `export` keep two million at
/// national size), and its occurrence fits its row's kind, id and place in
/// a chain in 16 of them without changing how occurrences show or sort: by
/// their kind's name, the row's id, then the place.
#[test]
fn occurrences_are_compact_and_show_and_sort_as_before() {
    use cpwatch::domain::evaluate::{CountedFrom, Name, Occurrence};
    assert_eq!(std::mem::size_of::<Obligation>(), 128);
    assert_eq!(std::mem::size_of::<Occurrence>(), 16);
    let places = [
        None,
        Some(0),
        Some(1),
        Some(12),
        Some(Occurrence::<Name>::MAX_N),
    ];
    let mut all: Vec<Occurrence> = places.iter().map(|n| Occurrence::new(None, *n)).collect();
    // Declared out of order here, so the sort below has work to do.
    for kind in [
        CountedFrom::StrategyDiscussion,
        CountedFrom::Referral,
        CountedFrom::Plan,
        CountedFrom::Awaiting,
    ] {
        for id in ["SD-2", "P1", "R10"] {
            for n in places {
                let o = Occurrence::new(Some((kind, Name::from(id))), n);
                assert_eq!(o.from().map(|(k, i)| (k, i.as_str())), Some((kind, id)));
                assert_eq!(o.n(), n);
                all.push(o);
            }
        }
    }
    let as_text = |o: &Occurrence| (o.from().map(|(k, id)| (k.as_str(), id.to_string())), o.n());
    let mut by_ord = all.clone();
    by_ord.sort();
    let mut by_text = all;
    by_text.sort_by_key(as_text);
    assert_eq!(by_ord, by_text);
    let shown: Vec<String> = [
        Occurrence::new(Some((CountedFrom::Plan, Name::from("P1"))), Some(2)),
        Occurrence::new(
            Some((CountedFrom::StrategyDiscussion, Name::from("SD1"))),
            None,
        ),
        Occurrence::new(Some((CountedFrom::Awaiting, Name::from("SD1"))), Some(0)),
        Occurrence::new(None, Some(3)),
        Occurrence::new(None, None),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        shown,
        [
            "plan/P1#2",
            "strategy_discussion/SD1",
            "awaiting/SD1#0",
            "3",
            "0"
        ]
    );
}

/// No board has obligations of a rule its procedure does not set: the
/// Pan-Dorset notes elsewhere, England's 2010 assessments in Bolton's 2024
/// procedure, Working Together's referral rules in Wales.
#[test]
fn boards_have_no_obligations_of_rules_they_do_not_inherit() {
    let now = t("2026-12-04T09:00:00Z");
    let state = cpwatch::synthetic::demo::generate(1, 300, now, &holidays()).expect("demo data");
    let e = eval_on(&state, &built_in_rules(), now, 1);
    let count = |board: &str, rule: &str| {
        e.obligations
            .iter()
            .filter(|o| *o.of.board == *board && *o.of.rule == *rule)
            .count()
    };
    for rule in ["strategy-discussion-same-day", "child-seen-24h"] {
        assert!(count("pan-dorset", rule) > 0, "{rule}");
        for board in BOARDS.iter().filter(|b| **b != "pan-dorset") {
            assert_eq!(count(board, rule), 0, "{board} {rule}");
        }
    }
    for rule in ["initial-assessment", "core-assessment"] {
        assert!(count("barnsley", rule) > 0, "{rule}");
        assert_eq!(count("bolton", rule), 0, "{rule}");
        assert_eq!(count("cwm-taf-morgannwg", rule), 0, "{rule}");
    }
    for rule in ["referral-acknowledged", "referral-decision"] {
        assert!(count("hampshire-4lscb", rule) > 0, "{rule}");
        assert_eq!(count("cwm-taf-morgannwg", rule), 0, "{rule}");
    }
}

/// Barnsley and Cwm Taf Morgannwg count the initial conference from "the last
/// Strategy Discussion" of any kind; Working Together (and the boards that
/// keep it) from the last one that initiated section 47 enquiries.
#[test]
fn the_initial_conference_counts_from_the_strategy_discussion_the_board_names() {
    for (board, starts, due) in [
        ("barnsley", "2027-01-04T11:00:00Z", "2027-01-25T23:59:59Z"),
        (
            "cwm-taf-morgannwg",
            "2027-01-04T11:00:00Z",
            "2027-01-25T23:59:59Z",
        ),
        (
            "hampshire-4lscb",
            "2026-12-21T11:00:00Z",
            "2027-01-14T23:59:59Z",
        ),
        ("pan-dorset", "2026-12-21T11:00:00Z", "2027-01-14T23:59:59Z"),
    ] {
        let mut s = fixture(board);
        // A later strategy meeting that did not initiate section 47 enquiries.
        s.strategy_discussions.push(StrategyDiscussion {
            id: "SD3".into(),
            child_id: "C1".into(),
            held_at: t("2027-01-04T11:00:00Z"),
            s47_initiated: false,
            concern: None,
            child_seen_at: None,
            conference_decided_at: None,
            record_circulated_at: None,
            conference_not_required: false,
        });
        let e = eval(&s, "2027-02-01T09:00:00Z");
        let o = one(&e, board, "icpc-timeliness", |_| true);
        assert_eq!(o.starts_at, t(starts), "{board}");
        assert_eq!(o.due_at, t(due), "{board}");
    }
}

/// Barnsley times a pre-birth conference from the expected date of delivery
/// (planned 8 weeks before it), not from the strategy discussion: held on its
/// planned day it is on time, and no initial-conference deadline applies.
#[test]
fn barnsley_pre_birth_conferences_are_timed_from_the_due_date_alone() {
    let mut s = fixture("barnsley");
    s.children[0].date_of_birth = None;
    s.children[0].expected_due_date = Some(d("2027-03-10"));
    conf_mut(&mut s, "CONF-1").kind = "pre_birth".into();
    let e = eval(&s, "2027-02-01T09:00:00Z");
    let icpc: Vec<&Obligation> = e
        .obligations
        .iter()
        .filter(|o| &*o.of.rule == "icpc-timeliness")
        .collect();
    assert!(icpc.is_empty(), "{icpc:#?}");
    let o = one(&e, "barnsley", "pre-birth-conference", |_| true);
    assert_eq!(o.status, Status::Met, "{o:#?}");
    // The baseline still counts a pre-birth conference as an initial one.
    let mut s = fixture("hampshire-4lscb");
    s.children[0].expected_due_date = Some(d("2027-03-10"));
    conf_mut(&mut s, "CONF-1").kind = "pre_birth".into();
    let e = eval(&s, "2027-02-01T09:00:00Z");
    one(&e, "hampshire-4lscb", "icpc-timeliness", |_| true);
}

/// Hampshire circulates the plan after every conference that makes or
/// continues one: a review that continues the plan revises it.
#[test]
fn hampshire_circulates_the_plan_after_reviews_that_continue_it() {
    let mut s = fixture("hampshire-4lscb");
    conf_mut(&mut s, "CONF-2").plan_circulated_at = Some(t("2027-04-08T12:00:00Z"));
    let e = eval(&s, "2027-11-01T09:00:00Z");
    for rule in ["plan-circulated", "plan-hard-copy"] {
        for conf in ["CONF-1", "CONF-2", "CONF-3"] {
            one(&e, "hampshire-4lscb", rule, |o| {
                o.conference.as_deref() == Some(conf)
            });
        }
    }
    let o = one(&e, "hampshire-4lscb", "plan-circulated", |o| {
        o.conference.as_deref() == Some("CONF-2")
    });
    assert_eq!(o.status, Status::Met, "{o:#?}");
}

/// Hampshire: each agency shares its report with the family before the
/// conference, with no time set: a standard checked at the conference.
#[test]
fn hampshire_reports_are_shared_with_the_family_before_the_conference() {
    let at = |s: &cpwatch::domain::case::CaseState, agency: &str| {
        let e = eval(s, "2027-02-01T09:00:00Z");
        let o = one(&e, "hampshire-4lscb", "report-shared-with-family", |o| {
            o.conference.as_deref() == Some("CONF-1") && o.agency.as_deref() == Some(agency)
        });
        (o.status, o.met_at, o.due_at)
    };
    let mut s = fixture("hampshire-4lscb");
    // Shared on Friday 8 January, before the conference (Wednesday 13 January 10:00).
    assert_eq!(
        at(&s, "AG-POL"),
        (
            Status::Met,
            Some(t("2027-01-08T12:00:00Z")),
            t("2027-01-13T10:00:00Z")
        )
    );
    inv_mut(&mut s, "CONF-1", "AG-POL").report_shared_with_family_at =
        Some(t("2027-01-13T15:00:00Z"));
    assert_eq!(at(&s, "AG-POL").0, Status::Missed, "shared only after it");
    inv_mut(&mut s, "CONF-1", "AG-POL").report_shared_with_family_at = None;
    assert_eq!(at(&s, "AG-POL").0, Status::Missed, "never shared");
    // Before the conference it is still to come.
    let e = eval(&s, "2027-01-11T09:00:00Z");
    let o = one(&e, "hampshire-4lscb", "report-shared-with-family", |o| {
        o.conference.as_deref() == Some("CONF-1") && o.agency.as_deref() == Some("AG-POL")
    });
    assert!(
        matches!(o.status, Status::Pending | Status::DueSoon),
        "{o:#?}"
    );
}

/// Working Together 2.141 sets the quorum for review conferences; Hampshire's
/// guidance adds nothing, so its initial conferences are not judged by it,
/// while boards whose procedures set it "at every conference" judge both.
#[test]
fn the_quorum_applies_to_the_conferences_each_procedure_names() {
    let quoracy = |board: &str, conf: &str| {
        let e = eval(&fixture(board), "2027-11-01T09:00:00Z");
        e.obligations
            .iter()
            .filter(|o| &*o.of.rule == "quoracy" && o.conference.as_deref() == Some(conf))
            .count()
    };
    assert_eq!(
        quoracy("hampshire-4lscb", "CONF-1"),
        0,
        "an initial conference"
    );
    assert_eq!(quoracy("hampshire-4lscb", "CONF-2"), 1, "a review");
    for board in ["pan-dorset", "barnsley", "bolton", "cwm-taf-morgannwg"] {
        assert_eq!(quoracy(board, "CONF-1"), 1, "{board}");
        assert_eq!(quoracy(board, "CONF-2"), 1, "{board}");
    }
}

/// Barnsley's pre-birth duties run from the decision that a conference is
/// needed, before any conference is arranged, so a request never made goes
/// overdue.
#[test]
fn barnsley_pre_birth_duties_exist_before_any_conference_is_arranged() {
    let mut s = fixture("barnsley");
    s.children[0].date_of_birth = None;
    s.children[0].expected_due_date = Some(d("2027-05-10"));
    s.conference_children.clear();
    s.invitations.clear();
    s.conferences.clear();
    s.cp_plans.clear();
    let e = eval(&s, "2027-02-20T09:00:00Z");
    // 12 weeks before Monday 10 May 2027 is Monday 15 February.
    let request = one(&e, "barnsley", "pre-birth-request", |_| true);
    assert_eq!(
        (request.status, request.due_at, request.conference.is_none()),
        (Status::Overdue, t("2027-02-15T23:59:59Z"), true),
        "{request:#?}"
    );
    let held = one(&e, "barnsley", "pre-birth-conference", |_| true);
    assert!(
        matches!(held.status, Status::Pending | Status::DueSoon),
        "{held:#?}"
    );
    // An unborn child awaits no initial conference in Barnsley.
    assert!(e
        .obligations
        .iter()
        .all(|o| &*o.of.rule != "icpc-timeliness"));

    // Once requested and held, the duties are the conference's, and met.
    let mut c = conference("CONF-PB", "pre_birth", "2027-03-15T10:00:00Z");
    c.requested_at = Some(t("2027-02-10T09:00:00Z"));
    s.conferences.push(c);
    s.conference_children.push(cc("CONF-PB", "C1", "plan"));
    let e = eval(&s, "2027-04-01T09:00:00Z");
    for rule in ["pre-birth-request", "pre-birth-conference"] {
        let o = one(&e, "barnsley", rule, |_| true);
        assert_eq!(
            (o.status, o.conference.as_deref()),
            (Status::Met, Some("CONF-PB")),
            "{o:#?}"
        );
    }
}

/// A plan's visiting interval that is no interval (zero, negative, absurd)
/// is a finding, and times no visits, rather than false deadlines.
#[test]
fn an_implausible_visiting_interval_is_a_finding_not_a_deadline() {
    let visits = |interval: Option<i64>| {
        let mut s = fixture("barnsley");
        s.cp_plans[0].visit_interval_working_days = interval;
        let e = eval(&s, "2027-03-01T09:00:00Z");
        let n = e
            .obligations
            .iter()
            .filter(|o| &*o.of.rule == "cp-visit-frequency")
            .count();
        let flagged = e
            .findings
            .iter()
            .any(|f| f.kind == "implausible_value" && f.table == "cp_plans" && f.row == "P1");
        (n, flagged)
    };
    let (n, flagged) = visits(Some(10));
    assert!(n > 0 && !flagged, "{n} {flagged}");
    for bad in [0, -5, 262, 1_000_000_000_000, i64::MIN, i64::MAX] {
        assert_eq!(visits(Some(bad)), (0, true), "{bad}");
    }
}

/// A second invitation of one agency, or a second row about one child at one
/// conference (as a view over tables without keys can give), is a finding;
/// obligations are not doubled.
#[test]
fn duplicate_invitations_and_links_are_findings_not_double_obligations() {
    let mut s = fixture("pan-dorset");
    let inv = s.invitations[1].clone();
    s.invitations.push(inv);
    let link = s.conference_children[0].clone();
    s.conference_children.push(link);
    let e = eval(&s, "2027-02-01T09:00:00Z");
    let mut keys: Vec<String> = e.obligations.iter().map(Obligation::key).collect();
    let all = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), all, "every obligation once");
    for table in ["invitations", "conference_children"] {
        assert!(
            e.findings
                .iter()
                .any(|f| f.kind == "duplicate_id" && f.table == table),
            "{table}: {:?}",
            e.findings
        );
    }
}

/// A conference's invitations read in three runs, apart from one another
/// (an ETL appending corrections), with the first run's agency invited again
/// in the last: the repeat is found through the runs between, and only it.
#[test]
fn a_repeated_invitation_is_found_across_runs_of_its_conference() {
    let mut s = fixture("pan-dorset");
    let once = eval(&s, "2027-02-01T09:00:00Z");
    let (first, rest): (Vec<Invitation>, Vec<Invitation>) = s
        .invitations
        .drain(..)
        .partition(|i| i.conference_id == "CONF-1");
    assert!(first.len() >= 2, "CONF-1 has invitations to split");
    let other = rest
        .first()
        .cloned()
        .expect("another conference's invitation");
    let (head, tail) = first.split_at(1);
    s.invitations.extend(head.iter().cloned());
    s.invitations.push(other.clone());
    s.invitations.extend(tail.iter().cloned());
    s.invitations.extend(rest.into_iter().skip(1));
    s.invitations.push(head[0].clone());
    let e = eval(&s, "2027-02-01T09:00:00Z");
    let repeats: Vec<&Finding> = e
        .findings
        .iter()
        .filter(|f| f.kind == "duplicate_id" && f.table == "invitations")
        .collect();
    assert_eq!(repeats.len(), 1, "{repeats:?}");
    assert_eq!(
        repeats[0].row,
        format!("CONF-1/{}", head[0].agency_id),
        "{repeats:?}"
    );
    assert_eq!(obligations_json(&e), obligations_json(&once));
}

/// Each child's earliest conference among those `pick` selects, by date.
fn earliest(
    s: &CaseState,
    pick: impl Fn(&str) -> bool,
) -> std::collections::HashMap<String, Option<Instant>> {
    let mut first = std::collections::HashMap::new();
    for cc in s
        .conference_children
        .iter()
        .filter(|cc| pick(&cc.conference_id))
    {
        let d = conference_date(s, &cc.conference_id);
        let e = first.entry(cc.child_id.to_string()).or_insert(d);
        *e = (*e).min(d);
    }
    first
}

/// The conferences of each child in `first` dated after its earliest, and
/// with `unpicked` every conference of the children not in `first`.
fn later_conferences(
    s: &CaseState,
    first: &std::collections::HashMap<String, Option<Instant>>,
    unpicked: bool,
) -> std::collections::HashSet<String> {
    s.conference_children
        .iter()
        .filter(|cc| match first.get(cc.child_id.as_str()) {
            Some(f) => conference_date(s, &cc.conference_id) > *f,
            None => unpicked,
        })
        .map(|cc| cc.conference_id.to_string())
        .collect()
}

fn conference_date(s: &CaseState, id: &str) -> Option<Instant> {
    s.conferences
        .iter()
        .find(|c| c.id == id)
        .and_then(|c| c.date())
}

/// The case state with nothing recorded that meets `rule`: the event its
/// `met_by` names (or the standard it checks) taken out of every subject,
/// the events rules count from left as they are.
fn unmet(state: &CaseState, rule: &cpwatch::domain::rules::Rule) -> CaseState {
    let mut s = state.clone();
    if let Some(spec) = &rule.standard {
        match spec.check.as_str() {
            "quoracy" => s
                .invitations
                .iter_mut()
                .for_each(|i| i.attended = Some(false)),
            "advocacy_offered" => {
                (s.conference_children.iter_mut()).for_each(|c| c.advocacy_offered = Some(false))
            }
            "report_shared" => {
                (s.invitations.iter_mut()).for_each(|i| i.report_shared_with_family_at = None)
            }
            "core_assessment_completed" => {
                s.assessments.iter_mut().for_each(|a| a.completed_on = None)
            }
            "exception_recorded" => s.exceptions.clear(),
            other => panic!("no way to leave the standard {other} unmet"),
        }
        return s;
    }
    let Some(met_by) = rule.met_by else { return s };
    // A recorded instant taken out of every row of a table.
    macro_rules! clear {
        ($rows:expr, $field:ident) => {
            $rows.iter_mut().for_each(|r| r.$field = None)
        };
    }
    match met_by.name() {
        "referral.written_confirmation_at" => clear!(s.referrals, written_confirmation_at),
        "referral.acknowledged_at" => clear!(s.referrals, acknowledged_at),
        "referral.next_steps_recorded_at" => clear!(s.referrals, next_steps_recorded_at),
        "next_strategy_discussion.held_at" => s.strategy_discussions.clear(),
        "initial_assessment.completed_on" | "core_assessment.completed_on" => {
            clear!(s.assessments, completed_on)
        }
        "strategy_discussion.child_seen_at" => clear!(s.strategy_discussions, child_seen_at),
        "strategy_discussion.record_circulated_at" => {
            clear!(s.strategy_discussions, record_circulated_at)
        }
        "next_initial_conference.requested_at" | "conference.requested_at" => {
            clear!(s.conferences, requested_at)
        }
        // Arranged, never held.
        "next_initial_conference.held_at" | "conference.held_at" => {
            for c in &mut s.conferences {
                c.held_at = None;
                c.status = "scheduled".into();
            }
        }
        "conference.chair_liaison_at" => clear!(s.conferences, chair_liaison_at),
        "conference.decision_circulated_at" => clear!(s.conferences, decision_circulated_at),
        "conference.plan_circulated_at" => clear!(s.conferences, plan_circulated_at),
        "conference.plan_hard_copy_sent_at" => clear!(s.conferences, plan_hard_copy_sent_at),
        "conference.summary_circulated_at" => clear!(s.conferences, summary_circulated_at),
        "conference.minutes_circulated_at" => clear!(s.conferences, minutes_circulated_at),
        "conference.chair_escalated_at" => clear!(s.conferences, chair_escalated_at),
        // Nothing follows a conference that must be reconvened.
        "reconvening_conference.held_at" => {
            let trigger = |id: &str| {
                s.conferences.iter().any(|c| {
                    c.id == id
                        && (matches!(c.status.as_str(), "adjourned" | "deferred")
                            || c.chair_overruled)
                }) || (s.conference_children.iter())
                    .any(|cc| cc.conference_id == id && cc.dissent_recorded)
            };
            let after = later_conferences(&s, &earliest(&s, trigger), false);
            s.conferences.retain(|c| !after.contains(c.id.as_str()));
        }
        "first_core_group.held_at" => s.core_groups.clear(),
        // The chain starts at the first core group: no meeting after it.
        "core_group_or_conference.held_at" => {
            let mut first: std::collections::HashMap<String, Instant> =
                std::collections::HashMap::new();
            for g in &s.core_groups {
                let e = first.entry(g.child_id.to_string()).or_insert(g.held_at);
                *e = (*e).min(g.held_at);
            }
            s.core_groups
                .retain(|g| first.get(g.child_id.as_str()) == Some(&g.held_at));
            s.conferences.retain(|c| c.kind != "review");
        }
        // A review that counts from a review keeps the child's first, and
        // loses every later one; otherwise no review is held.
        "next_review_conference.held_at" => {
            let from_review = (rule.filter.conference_kind.iter().flatten()).any(|k| k == "review");
            let review = |id: &str| {
                from_review
                    && s.conferences
                        .iter()
                        .any(|c| c.id == id && c.kind == "review")
            };
            let drop = later_conferences(&s, &earliest(&s, review), true);
            s.conferences
                .retain(|c| c.kind != "review" || !drop.contains(c.id.as_str()));
        }
        "invitation.report_received_at" => clear!(s.invitations, report_received_at),
        "invitation.report_shared_with_family_at" => {
            clear!(s.invitations, report_shared_with_family_at)
        }
        "invitation.report_authorised_at" => clear!(s.invitations, report_authorised_at),
        "conference_child.workbook_received_at" => {
            clear!(s.conference_children, workbook_received_at)
        }
        "visit.visited_at" => s.visits.clear(),
        "cin_review.held_on" => s.cin_reviews.clear(),
        other => panic!("no way to leave {other} unrecorded: add it here"),
    }
    s
}

/// No rule may be unable to go overdue, and none unable to be met: a rule
/// whose obligation exists only once the event that meets it is recorded
/// never reports a breach. Over synthetic histories of every board (and,
/// for the review at 18, which few histories reach, the canonical case of a
/// child turning 18 on a plan), every rule of every board is seen met (or,
/// for an audit flag met only by a recorded reason, excepted), and overdue
/// (or missed, where it has lapsed) once nothing that meets it is recorded.
/// Notices are reminders, not measures: they are never overdue.
#[test]
fn every_rule_of_every_board_can_go_overdue_and_be_met() {
    use cpwatch::domain::evaluate::Status;
    use cpwatch::domain::rules::RuleKind;
    use std::collections::{BTreeSet, HashMap};
    let rules = built_in_rules();
    let at = "2026-12-04T09:00:00Z";
    let mut cases: Vec<(CaseState, &str)> = (1..=2)
        .map(|seed| {
            let h = cpwatch::synthetic::demo::generate(seed, 2_000, t(at), &holidays())
                .expect("history");
            (h, at)
        })
        .collect();
    for board in BOARDS {
        let mut s = fixture(board);
        s.children[0].date_of_birth = Some(d("2009-06-01"));
        cases.push((s, LATER));
    }
    // (board, rule) pairs seen with a status, over the cases as they are
    // and, by what leaves a rule unmet, over the cases with it taken out.
    let seen = |cases: &[(CaseState, &str)], want: &dyn Fn(&Obligation) -> bool| {
        let mut pairs = BTreeSet::new();
        for (s, at) in cases {
            for o in eval_with(s, &rules, at)
                .obligations
                .iter()
                .filter(|o| want(o))
            {
                pairs.insert((o.of.board.to_string(), o.of.rule.to_string()));
            }
        }
        pairs
    };
    let by_reason = |r: &cpwatch::domain::rules::Rule| {
        r.standard
            .as_ref()
            .is_some_and(|x| x.check == "exception_recorded")
    };
    let met = seen(&cases, &|o| {
        matches!(o.status, Status::Met | Status::MetLate)
    });
    let excepted = seen(&cases, &|o| o.status == Status::Excepted);
    let mut overdue: HashMap<String, BTreeSet<(String, String)>> = HashMap::new();
    let mut never = Vec::new();
    for b in rules.boards.values().filter_map(|v| v.last()) {
        for r in b.rules.iter().filter(|r| r.kind != RuleKind::Notice) {
            let key = (b.id.to_string(), r.id.to_string());
            // Excepted counts as settled only for a flag a reason settles.
            if !(met.contains(&key) || by_reason(r) && excepted.contains(&key)) {
                never.push(format!("{} {}: never met", b.id, r.id));
            }
            // One unmet variant of the cases per way of leaving rules unmet.
            let way = format!(
                "{:?}/{:?}/{:?}",
                r.met_by.map(|e| e.name()),
                r.standard.as_ref().map(|x| &x.check),
                r.filter.conference_kind
            );
            let found = overdue.entry(way).or_insert_with(|| {
                let unmet_cases: Vec<(CaseState, &str)> =
                    cases.iter().map(|(s, at)| (unmet(s, r), *at)).collect();
                seen(&unmet_cases, &|o| {
                    matches!(o.status, Status::Overdue | Status::Missed)
                })
            });
            if !found.contains(&key) {
                never.push(format!("{} {}: never overdue", b.id, r.id));
            }
        }
    }
    assert!(never.is_empty(), "{never:#?}");
}

/// Any case values and any rule offset a rule file may hold: evaluation
/// gives obligations, findings or calendar errors, never a panic (a panic
/// stops the service). Instants anywhere in chrono's range, dates, visiting
/// intervals of any size, and unknown kinds, statuses and outcomes.
mod arbitrary {
    use super::*;
    use proptest::prelude::*;

    fn instant(secs: i64) -> Instant {
        chrono::DateTime::from_timestamp(secs, 0).expect("in range")
    }

    fn scrambled(board: &str, secs: &[i64], interval: i64, words: &[String]) -> CaseState {
        let mut s = fixture(board);
        let mut at = secs.iter().copied().cycle().map(instant);
        let mut next = || at.next().expect("cycle");
        let mut word = words.iter().cycle().cloned();
        for r in &mut s.referrals {
            r.received_at = next();
            r.written_confirmation_at = Some(next());
        }
        for d in &mut s.strategy_discussions {
            d.held_at = next();
            d.conference_decided_at = Some(next());
            d.record_circulated_at = Some(next());
        }
        for c in &mut s.conferences {
            c.held_at = Some(next());
            c.scheduled_at = Some(next());
            c.requested_at = Some(next());
            c.status = word.next().unwrap_or_default().into();
            c.kind = word.next().unwrap_or_default().into();
            c.next_review_on = Some(next().date_naive());
        }
        for cc in &mut s.conference_children {
            cc.outcome = word.next().map(Into::into);
        }
        for i in &mut s.invitations {
            i.report_received_at = Some(next());
        }
        for p in &mut s.cp_plans {
            p.started_on = next().date_naive();
            p.ended_on = Some(next().date_naive());
            p.visit_interval_working_days = Some(interval);
        }
        for c in &mut s.children {
            c.date_of_birth = Some(next().date_naive());
            c.expected_due_date = Some(next().date_naive());
            c.reference = word.next().unwrap_or_default().into();
        }
        for v in &mut s.visits {
            v.visited_at = next();
        }
        s
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_case_values_and_offsets_evaluate_without_a_panic(
            board in prop::sample::select(BOARDS.to_vec()),
            secs in prop::collection::vec(-62_000_000_000i64..250_000_000_000i64, 1..12),
            interval in any::<i64>(),
            words in prop::collection::vec(
                prop_oneof![
                    Just("held".to_string()),
                    Just("initial".to_string()),
                    Just("review".to_string()),
                    Just("plan".to_string()),
                    ".{0,12}",
                ],
                1..6,
            ),
            offset in prop_oneof![
                (0i64..100_000, prop::sample::select(vec!["working days", "hours", "days", "weeks", "months"]))
                    .prop_map(|(n, u)| format!("+{n} {u}")),
                (0i64..100_000).prop_map(|n| format!("-{n} working days")),
            ],
            rule_at in 0usize..40,
            now in -62_000_000_000i64..250_000_000_000i64,
        ) {
            let mut rules = built_in_rules();
            if let Ok(offset) = offset.parse::<cpwatch::domain::calendar::Offset>() {
                if let Some(latest) = rules.boards.get_mut(board).and_then(|v| v.last_mut()) {
                    let mut b = (**latest).clone();
                    let n = b.rules.len();
                    if let Some(r) = b.rules.get_mut(rule_at % n.max(1)) {
                        if r.offset.is_some() {
                            r.offset = Some(offset);
                        }
                    }
                    *latest = std::sync::Arc::new(b);
                }
            }
            let state = scrambled(board, &secs, interval, &words);
            let _ = eval_on(&state, &rules, instant(now), 1);
        }
    }
}

/// A report due before a conference that went ahead without it is missed:
/// overdue until the conference is held, then a breach that can no longer
/// be met, its lateness frozen at the conference, never reminded; `explain`
/// says when it lapsed. One that arrives after the conference was met late.
#[test]
fn a_report_the_conference_went_ahead_without_is_missed() {
    let mut s = fixture("pan-dorset");
    inv_mut(&mut s, "CONF-1", "AG-POL").report_received_at = None;
    let police = |e: &Evaluation| {
        one(e, "pan-dorset", "report-to-chair", |o| {
            o.agency.as_deref() == Some("AG-POL") && o.conference.as_deref() == Some("CONF-1")
        })
        .clone()
    };
    // 24 hours before Wednesday 13 January 10:00 is Tuesday 10:00.
    let before = police(&eval(&s, "2027-01-13T09:00:00Z"));
    assert_eq!(before.status, Status::Overdue);
    assert!(
        before.status.is_open(),
        "reminded while it can still be met"
    );
    for at in ["2027-01-13T10:00:00Z", LATER] {
        let o = police(&eval(&s, at));
        assert_eq!(
            (o.status, o.late_working_days, o.status.is_open()),
            (Status::Missed, Some(1), false),
            "{at}"
        );
    }
    let rules = built_in_rules();
    let engine = cpwatch::domain::engine::Engine::load(None, None, None, "working-together-2010")
        .expect("engine");
    let mut scratch = cpwatch::domain::evaluate::Scratch::default();
    let e = engine.evaluate(&s, &mut scratch, t(LATER));
    let mut out = Vec::new();
    cpwatch::report::explain::explain(
        &mut out,
        &s,
        &e,
        &cpwatch::report::explain::Context {
            rules: &rules,
            holidays: &holidays(),
            zones: &cpwatch::report::check::Zones::new(&rules, "working-together-2010"),
            snoozes: &Default::default(),
        },
        "TEST-1",
    )
    .expect("explain");
    let text = String::from_utf8(out).expect("utf8");
    assert!(
        text.contains("missed: the conference went ahead on Wed 13 Jan 2027, 10:00 without it; it can no longer be met"),
        "{text}"
    );
    inv_mut(&mut s, "CONF-1", "AG-POL").report_received_at = Some(t("2027-01-14T09:00:00Z"));
    assert_eq!(police(&eval(&s, LATER)).status, Status::MetLate);
}

/// A child awaiting an initial conference after a section 47 enquiry: due 15
/// working days on, and void with the reason when the enquiry concluded none
/// is required; a discussion that decided neither awaits nothing.
#[test]
fn an_enquiry_that_needs_no_conference_voids_its_timeliness_with_the_reason() {
    for board in ["pan-dorset", "bolton", "barnsley"] {
        let mut s = fixture(board);
        s.conferences.clear();
        s.conference_children.clear();
        s.invitations.clear();
        let awaiting = |e: &Evaluation| {
            e.obligations
                .iter()
                .filter(|o| &*o.of.rule == "icpc-timeliness")
                .map(|o| (o.status, o.exception_reason.as_deref().map(str::to_string)))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            awaiting(&eval(&s, "2027-02-01T09:00:00Z")),
            [(Status::Overdue, None)],
            "{board}"
        );
        let sd = &mut s.strategy_discussions[1];
        sd.conference_decided_at = None;
        assert_eq!(awaiting(&eval(&s, "2027-02-01T09:00:00Z")), [], "{board}");
        s.strategy_discussions[1].conference_not_required = true;
        assert_eq!(
            awaiting(&eval(&s, "2027-02-01T09:00:00Z")),
            [(
                Status::Void,
                Some(
                    "the section 47 enquiry concluded that no initial conference is required"
                        .to_string()
                )
            )],
            "{board}"
        );
    }
}

/// The outputs' order by compact keys is `report_cmp`'s order.
#[test]
fn report_order_by_keys_is_report_cmp_order() {
    let now = t("2026-12-04T09:00:00Z");
    let state = cpwatch::synthetic::demo::generate(2, 400, now, &holidays()).expect("demo data");
    let owned = eval_on(&state, &built_in_rules(), now, 2);
    let e = owned.borrowed();
    let all: Vec<_> = e.obligations.iter().collect();
    assert!(all.len() > 10_000, "{}", all.len());
    let keys =
        |v: &[&cpwatch::domain::evaluate::Draft]| v.iter().map(|o| o.key()).collect::<Vec<_>>();
    // Sorted whole, and in halves merged a chunk at a time, of an even and an odd count.
    for threads in [1, 2, 3] {
        for n in [all.len(), all.len() - 1] {
            let fast = cpwatch::report::stream::report_order(all.iter().take(n).copied(), threads);
            let mut slow: Vec<_> = all.iter().take(n).copied().collect();
            slow.sort_by(|a, b| a.report_cmp(b));
            assert_eq!(
                keys(&fast),
                keys(&slow),
                "{threads} threads, {n} obligations"
            );
        }
    }
    // A deadline with a fraction of a second fits no key: report_cmp alone orders them.
    let mut copies: Vec<_> = all.iter().map(|o| (*o).clone()).collect();
    if let Some(o) = copies.get_mut(all.len() / 3) {
        o.due_at += chrono::Duration::nanoseconds(1);
    }
    let mut slow: Vec<_> = copies.iter().collect();
    slow.sort_by(|a, b| a.report_cmp(b));
    for threads in [1, 2] {
        let fast = cpwatch::report::stream::report_order(copies.iter(), threads);
        assert_eq!(keys(&fast), keys(&slow), "unkeyed, {threads} threads");
    }
}
