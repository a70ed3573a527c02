//! Which notifications an evaluation calls for: each open obligation's stage
//! (upcoming, due, overdue, escalation, and the weekly summary once its
//! escalations are spent), its recipients from the case data and the
//! configuration, and the words of its item. Pure.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Datelike;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::calendar::{Calendar, HolidayData};
use crate::domain::case::{CaseState, Instant};
use crate::domain::evaluate::{Draft, Evaluation, Name, Status};
use crate::domain::rules::{Board, Event, Rule, RuleKind, RuleSet};
use crate::domain::snooze::{self, Snoozes};
use crate::service::config::{BoardContacts, Config};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Upcoming,
    Due,
    Overdue,
    Escalation,
    /// Still open after its last escalation: counted, with others of its
    /// rule and team or agency, in the escalation contact's weekly summary.
    Summary,
    /// Escalated, and open no longer: told to the escalation contact once.
    Resolved,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Upcoming => "upcoming",
            Stage::Due => "due",
            Stage::Overdue => "overdue",
            Stage::Escalation => "escalation",
            Stage::Summary => "summary",
            Stage::Resolved => "resolved",
        }
    }

    /// These wait for the daily digest hour, and a recipient has them at
    /// most once a day; an overdue reminder goes at once.
    pub fn digest(self) -> bool {
        !matches!(self, Stage::Overdue)
    }
}

/// One item of a message: what the recipient needs to know about one obligation.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub reference: String,
    pub title: String,
    pub rule: String,
    pub board: String,
    pub conference: Option<String>,
    pub agency: Option<String>,
    /// The team responsible (social care duties), for the weekly summary.
    pub team: Option<String>,
    pub stage: Stage,
    pub due_at: Instant,
    pub deadline: String,
    pub meets: String,
    pub source: String,
}

/// One notification the evaluation calls for.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Identity in the log: a digest of (obligation key, stage, recipient, occurrence).
    pub id: String,
    pub obligation_key: String,
    pub stage: Stage,
    pub recipient: String,
    pub occurrence: i64,
    pub item: Item,
}

/// A recipient a rule names but the case data or config has no address for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved {
    pub obligation_key: String,
    pub recipient: String,
}

pub fn notification_id(
    obligation_key: &str,
    stage: Stage,
    recipient: &str,
    occurrence: i64,
) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "{obligation_key}\n{}\n{recipient}\n{occurrence}",
        stage.as_str()
    ));
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The stage an open obligation is in at `now`, with its occurrence (escalations repeat).
pub fn stage_of(
    o: &Draft<'_>,
    cal: &Calendar,
    now: Instant,
    r: &crate::service::config::Reminders,
) -> Option<(Stage, i64)> {
    match o.status {
        Status::Overdue if o.of.kind != RuleKind::Standard => {
            let late = o.late_working_days.map_or(1, i64::from);
            if late < r.escalate_after_working_days {
                return Some((Stage::Overdue, 0));
            }
            let n = (late - r.escalate_after_working_days) / r.escalate_every_working_days.max(1);
            if n < r.max_escalations {
                Some((Stage::Escalation, n))
            } else {
                // Once a week: the occurrence is the week, counted in Mondays.
                let monday = chrono::NaiveDate::from_ymd_opt(1970, 1, 5).unwrap_or_default();
                let week = (cal.local_date(now) - monday).num_days().div_euclid(7);
                Some((Stage::Summary, week))
            }
        }
        Status::Pending | Status::DueSoon if o.of.kind != RuleKind::Standard => {
            if cal.local_date(now) == cal.local_date(o.due_at) {
                Some((Stage::Due, 0))
            } else if o.status == Status::DueSoon {
                Some((Stage::Upcoming, 0))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Everything planning needs besides the evaluation.
pub struct Context<'a> {
    pub state: &'a CaseState,
    pub rules: &'a RuleSet,
    pub holidays: &'a Arc<HolidayData>,
    pub config: &'a Config,
    /// The snoozes in force: their duties are not reminded.
    pub snoozes: &'a Snoozes,
}

/// The notifications an evaluation calls for at `now`. Overdue and escalation
/// stages include the ones already reached; the log makes each go once.
pub fn plan(
    eval: &Evaluation<Draft<'_>>,
    ctx: &Context,
    now: Instant,
) -> (Vec<Planned>, Vec<Unresolved>) {
    let lookup = Lookup::new(ctx.state);
    let mut planned = Vec::new();
    let mut unresolved = Vec::new();
    let mut calendars = Calendars::default();
    for o in &eval.obligations {
        // Met, excepted and void obligations call for nothing.
        if !o.status.is_open() {
            continue;
        }
        let Some(board) = ctx
            .rules
            .boards
            .get(&*o.of.board)
            .and_then(|v| v.iter().find(|b| *b.version == *o.of.board_version))
        else {
            continue;
        };
        let Some(rule) = board.rule(&o.of.rule) else {
            continue;
        };
        let Some(cal) = calendars.of(board, ctx.holidays) else {
            continue;
        };
        let Some((stage, occurrence)) = stage_of(o, cal, now, &ctx.config.reminders) else {
            continue;
        };
        let who = if stage >= Stage::Escalation {
            &rule.escalate
        } else {
            &rule.remind
        };
        // A notice (not a compliance measure) is only ever a reminder.
        if rule.kind == RuleKind::Notice && stage >= Stage::Overdue {
            continue;
        }
        let contacts = ctx
            .config
            .boards
            .get(&*o.of.board)
            .cloned()
            .unwrap_or_default();
        let key = o.key();
        if !ctx.snoozes.is_empty()
            && ctx
                .snoozes
                .covering(&snooze::Subject::of(o, &key))
                .is_some()
        {
            continue;
        }
        let item = item(o, rule, board, cal, now, stage);
        for role in who {
            let addresses = lookup.resolve(role, o, &contacts);
            if addresses.is_empty() {
                unresolved.push(Unresolved {
                    obligation_key: key.clone(),
                    recipient: role.clone(),
                });
            }
            for address in addresses {
                planned.push(Planned {
                    id: notification_id(&key, stage, &address, occurrence),
                    obligation_key: key.clone(),
                    stage,
                    recipient: address,
                    occurrence,
                    item: item.clone(),
                });
            }
        }
    }
    planned.sort_by(|a, b| {
        (&a.recipient, a.item.due_at, &a.id).cmp(&(&b.recipient, b.item.due_at, &b.id))
    });
    planned.dedup_by(|a, b| a.id == b.id);
    (planned, unresolved)
}

/// The notices for duties escalated to someone and open no longer (met,
/// excepted, voided or lapsed), one each, to the contact they were escalated
/// to; `open` holds the keys of the duties still open, at least of the
/// escalated ones' rules. Boards may turn them off (`met_notices = false`).
pub fn resolved(
    escalated: Vec<crate::store::NewNotification>,
    open: &std::collections::HashSet<String>,
    ctx: &Context,
    now: Instant,
) -> Vec<Planned> {
    escalated
        .into_iter()
        .filter(|e| !open.contains(&e.obligation_key))
        .filter_map(|e| {
            let wanted = (snooze::key_parts(&e.obligation_key))
                .and_then(|s| ctx.config.boards.get(s.board))
                .and_then(|b| b.met_notices)
                .unwrap_or(true);
            wanted.then_some(e)
        })
        .map(|e| {
            let s = snooze::key_parts(&e.obligation_key);
            let part = |f: for<'s> fn(&snooze::Subject<'s>) -> Option<&'s str>| {
                s.as_ref().and_then(f).map(String::from)
            };
            let (child, conference, agency) = (
                part(|s| s.child),
                part(|s| s.conference),
                part(|s| s.agency),
            );
            let board_id = s.map(|s| s.board).unwrap_or_default();
            let board = ctx.rules.latest(board_id);
            let title = (board.and_then(|b| b.rule(&e.rule)))
                .map_or_else(|| e.rule.clone(), |r| r.title.clone());
            Planned {
                id: notification_id(&e.obligation_key, Stage::Resolved, &e.recipient, 0),
                obligation_key: e.obligation_key.clone(),
                stage: Stage::Resolved,
                recipient: e.recipient.clone(),
                occurrence: 0,
                item: Item {
                    reference: child.unwrap_or_else(|| {
                        conference
                            .as_ref()
                            .map(|c| format!("conference {c}"))
                            .unwrap_or_default()
                    }),
                    title,
                    rule: e.rule,
                    board: board.map_or_else(|| e.board.clone(), |b| b.name.clone()),
                    conference,
                    agency,
                    team: None,
                    stage: Stage::Resolved,
                    due_at: now,
                    deadline: String::new(),
                    meets: String::new(),
                    source: String::new(),
                },
            }
        })
        .collect()
}

/// Each board version's calendar, made once per plan.
#[derive(Default)]
struct Calendars<'b>(HashMap<(&'b str, &'b str), Option<Calendar>>);

impl<'b> Calendars<'b> {
    fn of(&mut self, board: &'b Board, holidays: &Arc<HolidayData>) -> Option<&Calendar> {
        self.0
            .entry((board.id.as_str(), board.version.as_str()))
            .or_insert_with(|| {
                Calendar::new(holidays.clone(), &board.calendar, board.time_zone).ok()
            })
            .as_ref()
    }
}

/// The case rows recipients are found in, indexed once per plan.
struct Lookup<'a> {
    children: HashMap<&'a str, &'a crate::domain::case::Child>,
    workers: HashMap<&'a str, &'a crate::domain::case::Worker>,
    teams: HashMap<&'a str, &'a crate::domain::case::Team>,
    agencies: HashMap<&'a str, &'a crate::domain::case::Agency>,
    conferences: HashMap<&'a str, &'a crate::domain::case::Conference>,
    invitations: HashMap<&'a str, Vec<&'a crate::domain::case::Invitation>>,
    /// The first child (by id) of each conference, for duties about a conference as a whole.
    first_child: HashMap<&'a str, &'a str>,
}

impl<'a> Lookup<'a> {
    fn new(s: &'a CaseState) -> Self {
        let mut invitations: HashMap<&str, Vec<&crate::domain::case::Invitation>> = HashMap::new();
        for i in &s.invitations {
            invitations
                .entry(i.conference_id.as_str())
                .or_default()
                .push(i);
        }
        let mut first_child: HashMap<&str, &str> = HashMap::new();
        for cc in &s.conference_children {
            let e = first_child
                .entry(cc.conference_id.as_str())
                .or_insert(cc.child_id.as_str());
            if cc.child_id.as_str() < *e {
                *e = cc.child_id.as_str();
            }
        }
        Lookup {
            children: s.children.iter().map(|c| (c.id.as_str(), c)).collect(),
            workers: s.workers.iter().map(|w| (w.id.as_str(), w)).collect(),
            teams: s.teams.iter().map(|t| (t.id.as_str(), t)).collect(),
            agencies: s.agencies.iter().map(|a| (a.id.as_str(), a)).collect(),
            conferences: s.conferences.iter().map(|c| (c.id.as_str(), c)).collect(),
            invitations,
            first_child,
        }
    }

    fn child_of(&self, o: &Draft<'_>) -> Option<&'a crate::domain::case::Child> {
        let id = match &o.child_id {
            Some(id) => &**id,
            None => self
                .first_child
                .get(o.conference.map(Name::as_str)?)
                .copied()?,
        };
        self.children.get(id).copied()
    }

    fn worker_of(&self, o: &Draft<'_>) -> Option<&'a crate::domain::case::Worker> {
        let w = self.child_of(o)?.allocated_worker_id.as_deref()?;
        self.workers.get(w).copied()
    }

    /// The addresses a recipient role stands for, for one obligation.
    fn resolve(&self, role: &str, o: &Draft<'_>, contacts: &BoardContacts) -> Vec<String> {
        let conf = o
            .conference
            .map(Name::as_str)
            .and_then(|id| self.conferences.get(id));
        let one = |x: Option<&str>| x.map(String::from).into_iter().collect::<Vec<_>>();
        match role {
            "agency" => {
                let invited = o
                    .conference
                    .map(Name::as_str)
                    .and_then(|c| self.invitations.get(c))
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                let mut v: Vec<String> = invited
                    .iter()
                    .filter(|i| o.agency.map(Name::as_str).is_none_or(|a| i.agency_id == a))
                    .filter_map(|i| {
                        i.email.as_deref().map(String::from).or_else(|| {
                            self.agencies
                                .get(i.agency_id.as_str())
                                .and_then(|a| a.email.as_deref().map(String::from))
                        })
                    })
                    .collect();
                v.sort();
                v.dedup();
                v
            }
            "allocated_worker" => one(self.worker_of(o).and_then(|w| w.email.as_deref())),
            "team_manager" => one(self
                .worker_of(o)
                .and_then(|w| self.teams.get(w.team_id.as_str()))
                .and_then(|t| t.manager_email.as_deref())),
            "conference_chair" => one(conf.and_then(|c| c.chair_email.as_deref())),
            "conference_service" => one(contacts.conference_service.as_deref()),
            "safeguarding_manager" => one(contacts.safeguarding_manager.as_deref()),
            _ => Vec::new(),
        }
    }
}

/// What meets an obligation, in words for its recipient.
fn meets(rule: &Rule) -> String {
    let Some(event) = rule.met_by else {
        return match rule.kind {
            RuleKind::Notice => "a window to act in, not a deadline to meet".into(),
            _ => "the standard is met at the conference".into(),
        };
    };
    match event {
        Event::ConferenceHeldAt | Event::NextInitialConferenceHeldAt => {
            "the conference is held".into()
        }
        Event::ReconveningConferenceHeldAt => "the conference reconvenes".into(),
        Event::NextReviewConferenceHeldAt => "the review conference is held".into(),
        Event::FirstCoreGroupHeldAt => "the first core group meets".into(),
        Event::CoreGroupOrConferenceHeldAt => "a core group (or a conference) meets".into(),
        Event::VisitVisitedAt => "the child is visited".into(),
        Event::CinReviewHeldOn => "the child in need plan is reviewed".into(),
        Event::InvitationReportReceivedAt => "the agency's report is received".into(),
        Event::InvitationReportSharedWithFamilyAt => "the report is shared with the family".into(),
        Event::InvitationReportAuthorisedAt => "a manager authorises the report".into(),
        Event::ConferenceChildWorkbookReceivedAt => {
            "the child's conference workbook is received".into()
        }
        Event::ConferenceRequestedAt | Event::NextInitialConferenceRequestedAt => {
            "the conference is requested".into()
        }
        Event::ConferenceChairLiaisonAt => "the social worker has liaised with the chair".into(),
        Event::ConferenceDecisionCirculatedAt => "the decision is circulated".into(),
        Event::ConferencePlanCirculatedAt => "the plan is circulated".into(),
        Event::ConferencePlanHardCopySentAt => "the hard copy of the plan is sent".into(),
        Event::ConferenceSummaryCirculatedAt => {
            "the summary and outline plan are circulated".into()
        }
        Event::ConferenceMinutesCirculatedAt => "the minutes are circulated".into(),
        Event::ReferralWrittenConfirmationAt => "the referral is confirmed in writing".into(),
        Event::ReferralAcknowledgedAt => "the referral is acknowledged".into(),
        Event::ReferralNextStepsRecordedAt => "the next steps are recorded".into(),
        Event::InitialAssessmentCompletedOn => "the initial assessment is completed".into(),
        Event::CoreAssessmentCompletedOn => "the core assessment is completed".into(),
        Event::NextStrategyDiscussionHeldAt | Event::StrategyDiscussionHeldAt => {
            "the strategy discussion is held".into()
        }
        Event::StrategyDiscussionChildSeenAt => "the child is seen".into(),
        other => format!("{} is recorded", other.name()),
    }
}

fn plural(n: i64, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// "by 23:59 on Thu 14 Jan 2027, in 2 working days"
pub fn deadline_words(o: &Draft<'_>, cal: &Calendar, now: Instant) -> String {
    let local = cal.local(o.due_at);
    let when = format!(
        "{} on {}",
        local.format("%H:%M"),
        local.format("%a %-d %b %Y")
    );
    let (today, due) = (cal.local_date(now), cal.local_date(o.due_at));
    let between = |from: chrono::NaiveDate, to: chrono::NaiveDate| {
        let mut n = 0;
        let mut d = from;
        while d < to {
            d = d.succ_opt().unwrap_or(to);
            if cal
                .is_working_day(d)
                .unwrap_or(d.weekday().num_days_from_monday() < 5)
            {
                n += 1;
            }
        }
        n
    };
    if now > o.due_at {
        let late = o
            .late_working_days
            .map_or_else(|| between(due, today).max(1), i64::from);
        format!("was due by {when}, {} overdue", plural(late, "working day"))
    } else if today == due {
        format!("by {when}, today")
    } else {
        format!(
            "by {when}, in {}",
            plural(between(today, due), "working day")
        )
    }
}

fn item(
    o: &Draft<'_>,
    rule: &Rule,
    board: &Board,
    cal: &Calendar,
    now: Instant,
    stage: Stage,
) -> Item {
    let src = &rule.source;
    Item {
        reference: o.child.map(Name::as_str).map_or_else(
            || {
                o.conference
                    .map(Name::as_str)
                    .map(|c| format!("conference {c}"))
                    .unwrap_or_default()
            },
            String::from,
        ),
        title: rule.title.clone(),
        rule: rule.id.clone(),
        board: board.name.clone(),
        conference: o.conference.map(Name::as_str).map(String::from),
        agency: o.agency.map(Name::as_str).map(String::from),
        team: o.team.map(Name::as_str).map(String::from),
        stage,
        due_at: o.due_at,
        deadline: deadline_words(o, cal, now),
        meets: meets(rule),
        source: format!("{}: \u{201c}{}\u{201d}", src.citation(), src.quote),
    }
}
