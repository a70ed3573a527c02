//! `cpwatch explain`: one child's timeline, and for each obligation how its
//! deadline was derived, in words a quality-assurance officer can check by hand.

use std::io::Write;
use std::sync::Arc;

use crate::domain::calendar::{Calendar, HolidayData, Offset, Unit};
use crate::domain::case::{CaseState, Instant};
use crate::domain::evaluate::{Draft, Evaluation, Name, Status};
use crate::domain::rules::{Event, RuleKind, RuleSet};
use crate::domain::snooze::{Snoozes, Subject};
use crate::report::check::Zones;

fn start_label(event: &str) -> &str {
    match event {
        "referral.received_at" => "referral received",
        "referral.written_received_at" => "written referral received",
        "strategy_discussion.held_at" | "last_s47_strategy_discussion.held_at" => {
            "strategy discussion"
        }
        "strategy_discussion.conference_decided_at" => "decision that a conference is required",
        "conference.date" => "conference",
        "conference.held_at" => "conference held",
        "conference.transfer_notified_at" => "notification of the move",
        "conference.requested_at" => "request received",
        "conference.minutes_circulated_at" => "minutes circulated",
        "child.expected_due_date" => "expected date of delivery",
        "child.eighteenth_birthday" => "18th birthday",
        "plan.started_on" => "plan started",
        "plan.ended_on" => "plan ended",
        "core_group_or_conference.held_at" => "previous core group or conference",
        "visit.visited_at" => "previous visit",
        "cin_review.held_on" => "previous child in need review",
        other => other,
    }
}

fn met_label(event: &str) -> &'static str {
    let column = event.rsplit('.').next().unwrap_or(event);
    match column {
        "held_at" | "held_on" => "held",
        "report_received_at" | "written_confirmation_at" => "received",
        "report_shared_with_family_at" => "shared",
        "report_authorised_at" => "authorised",
        "acknowledged_at" => "acknowledged",
        "next_steps_recorded_at" | "chair_liaison_at" => "recorded",
        "child_seen_at" => "seen",
        "completed_on" => "completed",
        "requested_at" => "requested",
        "visited_at" => "visited",
        "workbook_received_at" => "received",
        "chair_escalated_at" => "escalated",
        _ => "circulated",
    }
}

fn day(z: &Zones, board: &str, t: Instant) -> String {
    t.with_timezone(&z.of(board))
        .format("%a %-d %b %Y")
        .to_string()
}

fn day_time(z: &Zones, board: &str, t: Instant) -> String {
    t.with_timezone(&z.of(board))
        .format("%a %-d %b %Y, %H:%M")
        .to_string()
}

fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// How a deadline was reached from its start, in words.
pub fn derivation(o: &Draft<'_>, cal: &Calendar, z: &Zones, met_by: Option<&str>) -> String {
    let b = &o.of.board;
    let mut s = format!("{}: ", o.of.rule);
    if o.of.kind == RuleKind::Standard {
        s.push_str(&format!(
            "standard checked at {} {}",
            start_label(o.start_event.name()),
            day(z, b, o.due_at)
        ));
    } else {
        let offset: Option<Offset> = o.offset.map(|s| s.offset());
        let start = if offset
            .as_ref()
            .is_some_and(|x| x.unit == Unit::Hours || x.at.is_some())
        {
            day_time(z, b, o.starts_at)
        } else {
            day(z, b, o.starts_at)
        };
        s.push_str(&format!("{} {start}", start_label(o.start_event.name())));
        if let Some(offset) = &offset {
            let text = offset.to_string();
            let (sign, rest) = text.split_at(1);
            s.push_str(&format!(" {sign} {rest}"));
            if offset.unit == Unit::WorkingDays {
                let d = cal.derivation(cal.local_date(o.starts_at), cal.local_date(o.due_at));
                let holidays: Vec<String> = d
                    .skipped_holidays
                    .iter()
                    .map(|(date, _)| date.format("%-d %b").to_string())
                    .collect();
                let mut skipping = Vec::new();
                if !holidays.is_empty() {
                    let noun = if holidays.len() == 1 {
                        "the bank holiday"
                    } else {
                        "the bank holidays"
                    };
                    skipping.push(format!("{noun} {}", list(&holidays)));
                }
                if d.skipped_weekend_days > 0 {
                    skipping.push("the weekends".to_string());
                }
                if !skipping.is_empty() {
                    s.push_str(&format!(" (skipping {})", skipping.join(", and ")));
                }
            }
        }
        s.push_str(&format!(" = {}", day_time(z, b, o.due_at)));
        if let Some(cap) = o.capped_by {
            s.push_str(&format!(
                " (brought forward: {} came sooner)",
                start_label(cap.name())
            ));
        }
    }
    let label = met_by.map_or("met", met_label);
    match o.met_at {
        Some(m) if o.of.kind != RuleKind::Standard => {
            s.push_str(&format!("; {label} {}", day_time(z, b, m)))
        }
        None if matches!(
            o.status,
            Status::Overdue | Status::Pending | Status::DueSoon
        ) && o.of.kind != RuleKind::Standard =>
        {
            s.push_str(&format!("; not yet {label}"))
        }
        _ => {}
    }
    s.push_str(&format!(": {}", o.status.as_str()));
    if let Some(n) = o.late_working_days.filter(|n| *n > 0) {
        s.push_str(&format!(
            " ({n} working day{} late)",
            if n == 1 { "" } else { "s" }
        ));
    }
    if let Some(r) = &o.exception_reason {
        if o.status == Status::Void {
            s.push_str(&format!(" ({r})"));
        } else {
            s.push_str(&format!(" (agreed exception: {r})"));
        }
    }
    s
}

/// When the duty lapses (or lapsed) unmet, for a rule whose duties do.
fn lapse(
    o: &Draft<'_>,
    rule: &crate::domain::rules::Rule,
    state: &CaseState,
    z: &Zones,
) -> Option<String> {
    if rule.kind == RuleKind::Standard {
        return Some(if o.status == Status::Missed {
            "missed: judged at the conference, and not met; nothing afterwards changes it".into()
        } else {
            "lapses: judged at the conference; not met then, it is missed".into()
        });
    }
    if rule.lapses? != Event::ConferenceHeldAt {
        return Some(format!("lapses: when {}", start_label(rule.lapses?.name())));
    }
    let held = (o.conference.as_ref())
        .and_then(|id| state.conferences.iter().find(|c| *c.id == **id))
        .and_then(crate::domain::case::Conference::took_place);
    Some(match (o.status, held) {
        (Status::Missed, Some(at)) => format!(
            "missed: the conference went ahead on {} without it; it can no longer be met",
            day_time(z, &o.of.board, at)
        ),
        _ => "lapses: when the conference is held, if not met by then".into(),
    })
}

/// Every recorded event about the child, in date order.
fn timeline(state: &CaseState, child_id: &str, cal: &Calendar) -> Vec<(Instant, String)> {
    let mut t: Vec<(Instant, String)> = Vec::new();
    referral_events(state, child_id, &mut t);
    assessment_events(state, child_id, cal, &mut t);
    strategy_discussion_events(state, child_id, &mut t);
    conference_events(state, child_id, &mut t);
    plan_events(state, child_id, cal, &mut t);
    t.sort();
    t
}

fn referral_events(state: &CaseState, child_id: &str, t: &mut Vec<(Instant, String)>) {
    for r in state.referrals.iter().filter(|r| r.child_id == child_id) {
        let how = if r.by_telephone {
            "by telephone"
        } else {
            "in writing"
        };
        t.push((
            r.received_at,
            format!(
                "referral {} received {how}{}",
                r.id,
                r.concern
                    .as_ref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            ),
        ));
        for (at, what) in [
            (r.written_confirmation_at, "confirmed in writing"),
            (r.acknowledged_at, "acknowledged"),
            (r.next_steps_recorded_at, "next steps recorded"),
        ] {
            if let Some(at) = at {
                t.push((at, format!("referral {} {what}", r.id)));
            }
        }
    }
}

fn assessment_events(
    state: &CaseState,
    child_id: &str,
    cal: &Calendar,
    t: &mut Vec<(Instant, String)>,
) {
    let start = |d: chrono::NaiveDate| Some(cal.start_of_day(d));
    for a in state.assessments.iter().filter(|a| a.child_id == child_id) {
        if let Some(at) = start(a.started_on) {
            t.push((at, format!("{} assessment {} started", a.kind, a.id)));
        }
        if let Some(at) = a.completed_on.and_then(start) {
            t.push((at, format!("{} assessment {} completed", a.kind, a.id)));
        }
    }
}

fn strategy_discussion_events(state: &CaseState, child_id: &str, t: &mut Vec<(Instant, String)>) {
    for d in state
        .strategy_discussions
        .iter()
        .filter(|d| d.child_id == child_id)
    {
        let s47 = match (d.s47_initiated, d.conference_not_required) {
            (true, true) => {
                ", section 47 enquiries initiated (they concluded no initial conference is required)"
            }
            (true, false) => ", section 47 enquiries initiated",
            _ => "",
        };
        t.push((d.held_at, format!("strategy discussion {} held{s47}", d.id)));
        if let Some(at) = d.child_seen_at {
            t.push((at, "child seen".to_string()));
        }
        if let Some(at) = d.conference_decided_at {
            t.push((
                at,
                format!(
                    "strategy discussion {} decided a conference is required",
                    d.id
                ),
            ));
        }
        if let Some(at) = d.record_circulated_at {
            t.push((
                at,
                format!("record of strategy discussion {} circulated", d.id),
            ));
        }
    }
}

/// The child's conferences, their records, and the invited agencies' reports.
fn conference_events(state: &CaseState, child_id: &str, t: &mut Vec<(Instant, String)>) {
    for cc in state
        .conference_children
        .iter()
        .filter(|cc| cc.child_id == child_id)
    {
        let Some(c) = state.conferences.iter().find(|c| c.id == cc.conference_id) else {
            continue;
        };
        let name = format!("{} conference {}", c.kind.replace('_', "-"), c.id);
        let entries = [
            (
                c.transfer_notified_at,
                format!("notified of the move ({name})"),
            ),
            (c.requested_at, format!("{name} requested")),
            (
                c.scheduled_at.filter(|_| c.held_at.is_none()),
                format!("{name} scheduled ({})", c.status),
            ),
            (
                c.held_at,
                format!(
                    "{name} {}{}{}{}",
                    c.status,
                    cc.outcome
                        .as_ref()
                        .map(|o| format!(", outcome {o}"))
                        .unwrap_or_default(),
                    if cc.dissent_recorded {
                        ", dissent recorded"
                    } else {
                        ""
                    },
                    if c.chair_concern {
                        ", the chair's concern that the decision leaves the child at risk recorded"
                    } else {
                        ""
                    },
                ),
            ),
            (
                c.chair_escalated_at,
                format!("chair of {} escalated the concern", c.id),
            ),
            (
                c.chair_liaison_at,
                format!("social worker liaised with the chair of {}", c.id),
            ),
            (
                c.decision_circulated_at,
                format!("decision of {} circulated", c.id),
            ),
            (
                c.plan_circulated_at,
                format!("plan from {} circulated", c.id),
            ),
            (
                c.plan_hard_copy_sent_at,
                format!("hard copy of the plan from {} sent", c.id),
            ),
            (
                c.summary_circulated_at,
                format!("summary of {} circulated", c.id),
            ),
            (
                c.minutes_circulated_at,
                format!("minutes of {} circulated", c.id),
            ),
            (
                cc.workbook_received_at,
                format!("workbook for {} received", c.id),
            ),
        ];
        t.extend(
            entries
                .into_iter()
                .filter_map(|(at, what)| at.map(|at| (at, what))),
        );
        for i in state.invitations.iter().filter(|i| i.conference_id == c.id) {
            for (at, what) in [
                (i.report_received_at, "report received"),
                (
                    i.report_shared_with_family_at,
                    "report shared with the family",
                ),
                (i.report_authorised_at, "report authorised"),
            ] {
                if let Some(at) = at {
                    t.push((at, format!("{} {what} for {}", i.agency_id, c.id)));
                }
            }
        }
    }
}

/// Plans, core groups, visits, child in need reviews and agreed exceptions.
fn plan_events(state: &CaseState, child_id: &str, cal: &Calendar, t: &mut Vec<(Instant, String)>) {
    let start = |d: chrono::NaiveDate| Some(cal.start_of_day(d));
    for p in state.cp_plans.iter().filter(|p| p.child_id == child_id) {
        if let Some(at) = start(p.started_on) {
            t.push((at, format!("child protection plan {} started", p.id)));
        }
        if let Some(at) = p.ended_on.and_then(start) {
            t.push((at, format!("child protection plan {} ended", p.id)));
        }
    }
    t.extend(
        state
            .core_groups
            .iter()
            .filter(|g| g.child_id == child_id)
            .map(|g| (g.held_at, "core group held".to_string())),
    );
    t.extend(
        state
            .visits
            .iter()
            .filter(|v| v.child_id == child_id)
            .map(|v| (v.visited_at, "visit".to_string())),
    );
    t.extend(
        state
            .cin_reviews
            .iter()
            .filter(|r| r.child_id == child_id)
            .filter_map(|r| {
                start(r.held_on).map(|at| (at, "child in need review held".to_string()))
            }),
    );
    t.extend(
        state
            .exceptions
            .iter()
            .filter(|e| e.child_id.as_deref() == Some(child_id))
            .map(|e| {
                (
                    e.recorded_at,
                    format!(
                        "exception to {} agreed by {}: {}",
                        e.rule, e.agreed_by, e.reason
                    ),
                )
            }),
    );
}

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("no child has the reference {0:?}")]
    NoSuchChild(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What `explain` reads besides the case state and its evaluation.
pub struct Context<'a> {
    pub rules: &'a RuleSet,
    pub holidays: &'a Arc<HolidayData>,
    pub zones: &'a Zones,
    /// The snoozes in force: a snoozed duty says so, and by whose agreement.
    pub snoozes: &'a Snoozes,
}

/// Writes the child's timeline and the derivation of each of its obligations.
pub fn explain(
    w: &mut dyn Write,
    state: &CaseState,
    eval: &Evaluation<Draft<'_>>,
    ctx: &Context<'_>,
    reference: &str,
) -> Result<(), ExplainError> {
    let (rules, holidays, z) = (ctx.rules, ctx.holidays, ctx.zones);
    let child = state
        .children
        .iter()
        .find(|c| c.reference == reference)
        .ok_or_else(|| ExplainError::NoSuchChild(reference.to_string()))?;
    let mine = obligations_of(state, eval, &child.id);
    let board = mine.first().map_or_else(
        || child.board.clone().unwrap_or_default(),
        |o| o.of.board.to_string().into(),
    );
    writeln!(
        w,
        "Child {reference} (board {board})\n\nTimeline ({}):",
        z.of(&board)
    )?;
    let latest = rules
        .latest(&board)
        .and_then(|b| Calendar::new(holidays.clone(), &b.calendar, b.time_zone).ok());
    for (at, what) in latest
        .map(|cal| timeline(state, &child.id, &cal))
        .unwrap_or_default()
    {
        writeln!(
            w,
            "  {}  {what}",
            at.with_timezone(&z.of(&board)).format("%a %-d %b %Y %H:%M")
        )?;
    }
    writeln!(w, "\nObligations ({}):", mine.len())?;
    for o in mine {
        write_obligation(w, o, state, ctx)?;
    }
    let removed = rules
        .latest(&board)
        .map_or(&[][..], |b| b.removed.as_slice());
    if !removed.is_empty() {
        writeln!(
            w,
"\nNot applied in this board (removed by its rule files, or not recorded by the data's source):"
        )?;
        for r in removed {
            writeln!(w, "  {}: {}", r.id, r.reason)?;
        }
    }
    Ok(())
}

/// The child's obligations, and those of its conferences as a whole and of
/// their agencies' reports, in report order.
fn obligations_of<'e, 'a>(
    state: &CaseState,
    eval: &'e Evaluation<Draft<'a>>,
    child_id: &str,
) -> Vec<&'e Draft<'a>> {
    let conferences: Vec<&str> = state
        .conference_children
        .iter()
        .filter(|cc| cc.child_id == child_id)
        .map(|cc| cc.conference_id.as_str())
        .collect();
    let mut mine: Vec<&Draft<'_>> = eval
        .obligations
        .iter()
        .filter(|o| {
            o.child_id.map(Name::as_str) == Some(child_id)
                || (o.child.is_none()
                    && o.conference
                        .map(Name::as_str)
                        .is_some_and(|c| conferences.contains(&c)))
        })
        .collect();
    mine.sort_unstable_by(|a, b| a.report_cmp(b));
    mine
}

/// One obligation: its derivation in words, what it is about, and its source.
fn write_obligation(
    w: &mut dyn Write,
    o: &Draft<'_>,
    state: &CaseState,
    ctx: &Context<'_>,
) -> Result<(), ExplainError> {
    let (rules, holidays, z) = (ctx.rules, ctx.holidays, ctx.zones);
    let Some(version) = rules
        .boards
        .get(&*o.of.board)
        .and_then(|v| v.iter().find(|b| *b.version == *o.of.board_version))
    else {
        return Ok(());
    };
    let Ok(cal) = Calendar::new(holidays.clone(), &version.calendar, version.time_zone) else {
        return Ok(());
    };
    let rule = version.rule(&o.of.rule);
    writeln!(
        w,
        "\n- {}",
        derivation(o, &cal, z, rule.and_then(|r| r.met_by).map(Event::name))
    )?;
    let mut about = Vec::new();
    if let Some(c) = &o.conference {
        about.push(format!("conference {c}"));
    }
    if let Some(a) = &o.agency {
        about.push(format!("agency {a}"));
    }
    if !about.is_empty() {
        writeln!(w, "  about: {}", about.join(", "))?;
    }
    if let Some(line) = rule.and_then(|r| lapse(o, r, state, z)) {
        writeln!(w, "  {line}")?;
    }
    if o.status.is_open() {
        let key = o.key();
        if let Some(s) = ctx.snoozes.covering(&Subject::of(o, &key)) {
            writeln!(
                w,
                "  reminders {} (snooze {}); a snooze stops mail, not the deadline",
                s.describe(),
                s.id
            )?;
        }
    }
    if let Some(rule) = rule {
        let kind = o
            .conference
            .as_ref()
            .and_then(|id| state.conferences.iter().find(|c| *c.id == **id))
            .map(|c| c.kind.as_str());
        let src = rule.source_for(kind);
        writeln!(
            w,
            "  source: {}; in force in {}, version {}: \"{}\"",
            src.citation(),
            version.name,
            version.version,
            src.quote
        )?;
    }
    Ok(())
}
