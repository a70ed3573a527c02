//! Reminders and escalations: which notifications an evaluation calls for
//! (stages, recipients), when they may go (quiet hours, the daily digest),
//! grouping one message per recipient, the templates, and the transports.
//! Planning is pure; `deliver` records every notification in the log before
//! sending, so a crash never loses one.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{Datelike, NaiveTime};
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::calendar::{Calendar, HolidayData};
use crate::domain::case::{CaseState, Instant};
use crate::domain::evaluate::{Draft, Evaluation, Name, Status};
use crate::domain::rules::{Board, Event, Rule, RuleKind, RuleSet};
use crate::service::config::{BoardContacts, Config};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Upcoming,
    Due,
    Overdue,
    Escalation,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Upcoming => "upcoming",
            Stage::Due => "due",
            Stage::Overdue => "overdue",
            Stage::Escalation => "escalation",
        }
    }

    /// Upcoming and due reminders wait for the daily digest; the rest go at once.
    pub fn digest(self) -> bool {
        matches!(self, Stage::Upcoming | Stage::Due)
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
    escalate_after: i64,
    escalate_every: i64,
) -> Option<(Stage, i64)> {
    match o.status {
        Status::Overdue if o.of.kind != RuleKind::Standard => {
            let late = o.late_working_days.map_or(1, i64::from);
            if late >= escalate_after {
                Some((
                    Stage::Escalation,
                    (late - escalate_after) / escalate_every.max(1),
                ))
            } else {
                Some((Stage::Overdue, 0))
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
    let mut calendars: HashMap<(&str, &str), Calendar> = HashMap::new();
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
        let key = (board.id.as_str(), board.version.as_str());
        let cal = match calendars.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                match Calendar::new(ctx.holidays.clone(), &board.calendar, board.time_zone) {
                    Ok(cal) => v.insert(cal),
                    Err(_) => continue,
                }
            }
        };
        let cal = &*cal;
        let r = &ctx.config.reminders;
        let Some((stage, occurrence)) = stage_of(
            o,
            cal,
            now,
            r.escalate_after_working_days,
            r.escalate_every_working_days,
        ) else {
            continue;
        };
        let who = if stage == Stage::Escalation {
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
        let item = item(o, rule, board, cal, now, stage);
        let key = o.key();
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
        stage,
        due_at: o.due_at,
        deadline: deadline_words(o, cal, now),
        meets: meets(rule),
        source: format!(
            "{} ({}), {}: \u{201c}{}\u{201d}",
            board.name,
            src.file.as_deref().unwrap_or(&board.source),
            src.section,
            src.quote
        ),
    }
}

// ------------------------------------------------------------------ timing

/// Whether mail may go out at `now`: a working day (when required), inside the window.
pub fn in_send_window(config: &Config, cal: &Calendar, now: Instant) -> bool {
    let (from, to) = config
        .send_window()
        .unwrap_or((NaiveTime::MIN, NaiveTime::MIN));
    let local = cal.local(now).time();
    let day_ok = !config.reminders.working_days_only
        || cal.is_working_day(cal.local_date(now)).unwrap_or(false);
    day_ok && local >= from && local < to
}

/// Whether the day's digest may go out: the local time has reached `digest_at`.
pub fn digest_open(config: &Config, cal: &Calendar, now: Instant) -> bool {
    cal.local(now).time() >= config.digest_at()
}

/// Exponential backoff with jitter for the `attempts`th retry.
pub fn backoff(config: &Config, attempts: i64, jitter: f64) -> Duration {
    let base = config.reminders.backoff_seconds.max(1) as f64;
    let cap = config.reminders.max_backoff_seconds.max(1) as f64;
    let exp = base * 2f64.powi(attempts.clamp(0, 30) as i32);
    Duration::from_secs_f64(exp.min(cap) * (0.5 + jitter.clamp(0.0, 1.0) / 2.0))
}

// --------------------------------------------------------------- messages

/// The subject, plain text and HTML of a message, from built-in or deployment templates.
pub struct Templates {
    env: minijinja::Environment<'static>,
}

const SUBJECT: &str = include_str!("../../templates/subject.txt");
const BODY_TXT: &str = include_str!("../../templates/body.txt");
const BODY_HTML: &str = include_str!("../../templates/body.html");

impl Templates {
    /// The built-in templates, each replaced by a file of the same name in `dir`.
    pub fn load(dir: Option<&Path>) -> Result<Templates, String> {
        let mut env = minijinja::Environment::new();
        for (name, built_in) in [
            ("subject.txt", SUBJECT),
            ("body.txt", BODY_TXT),
            ("body.html", BODY_HTML),
        ] {
            let text = match dir.map(|d| d.join(name)).filter(|p| p.exists()) {
                Some(p) => {
                    std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?
                }
                None => built_in.to_string(),
            };
            env.add_template_owned(name.to_string(), text)
                .map_err(|e| format!("template {name}: {e}"))?;
        }
        Ok(Templates { env })
    }

    pub fn render(&self, items: &[Item]) -> Result<(String, String, String), String> {
        let top = items
            .iter()
            .map(|i| i.stage)
            .max()
            .unwrap_or(Stage::Upcoming);
        let ctx =
            minijinja::context! { items => items, count => items.len(), stage => top.as_str() };
        let get = |name: &str| {
            self.env
                .get_template(name)
                .and_then(|t| t.render(&ctx))
                .map_err(|e| format!("template {name}: {e}"))
        };
        Ok((
            get("subject.txt")?.trim().to_string(),
            get("body.txt")?,
            get("body.html")?,
        ))
    }
}

/// A deterministic Message-ID for a message carrying these notifications, so a
/// message sent twice (crash after the server accepted it) is recognisable.
pub fn message_id(recipient: &str, ids: &[String]) -> String {
    let mut sorted: Vec<&String> = ids.iter().collect();
    sorted.sort();
    let mut h = Sha256::new();
    h.update(recipient.as_bytes());
    for id in sorted {
        h.update(b"\n");
        h.update(id.as_bytes());
    }
    let hex: String = h
        .finalize()
        .iter()
        .take(20)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("<{hex}@cpwatch.invalid>")
}

pub fn build_message(
    from: &Mailbox,
    to: &str,
    id: &str,
    subject: &str,
    text: String,
    html: String,
) -> Result<lettre::Message, String> {
    let to: Mailbox = to
        .parse()
        .map_err(|e| format!("{to:?} is not an email address: {e}"))?;
    lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .message_id(Some(id.to_string()))
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(text),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html),
                ),
        )
        .map_err(|e| e.to_string())
}

// -------------------------------------------------------------- transports

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later (connection refused, timeout, 4xx).
    #[error("transient: {0}")]
    Transient(String),
    /// Do not retry (5xx): the server's reply is kept.
    #[error("permanent: {0}")]
    Permanent(String),
}

#[async_trait]
pub trait Transport: Send + Sync {
    async fn send(&self, message: &lettre::Message) -> Result<(), SendError>;
}

/// Writes each message as an .eml file named by its Message-ID.
pub struct FileTransport {
    pub dir: std::path::PathBuf,
}

#[async_trait]
impl Transport for FileTransport {
    async fn send(&self, message: &lettre::Message) -> Result<(), SendError> {
        let id = message
            .headers()
            .get_raw("Message-ID")
            .unwrap_or("<unknown>")
            .trim_matches(['<', '>'])
            .replace(['/', '\\'], "_");
        let path = self.dir.join(format!("{id}.eml"));
        let tmp = self.dir.join(format!(".{id}.eml.tmp"));
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| SendError::Transient(format!("{}: {e}", self.dir.display())))?;
        std::fs::write(&tmp, message.formatted())
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| SendError::Transient(format!("{}: {e}", path.display())))
    }
}

/// Logs each message's recipient, subject and size instead of sending it.
pub struct LogTransport;

#[async_trait]
impl Transport for LogTransport {
    async fn send(&self, message: &lettre::Message) -> Result<(), SendError> {
        let h = message.headers();
        tracing::info!(
            to = h.get_raw("To").unwrap_or(""),
            subject = h.get_raw("Subject").unwrap_or(""),
            bytes = message.formatted().len(),
            "reminder (log transport)"
        );
        Ok(())
    }
}

/// Groups sendable notifications: one message per recipient, items by deadline.
pub fn group(sendable: Vec<Planned>) -> BTreeMap<String, Vec<Planned>> {
    let mut by: BTreeMap<String, Vec<Planned>> = BTreeMap::new();
    for p in sendable {
        by.entry(p.recipient.clone()).or_default().push(p);
    }
    for v in by.values_mut() {
        v.sort_by(|a, b| (a.item.due_at, &a.id).cmp(&(b.item.due_at, &b.id)));
    }
    by
}

// ---------------------------------------------------------------- delivery

/// What one round of delivery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Notifications recorded in the log for the first time.
    pub recorded: usize,
    pub sent: usize,
    pub messages: usize,
    pub retried: usize,
    pub failed: usize,
    pub dropped: usize,
    /// Pending, but outside the send window, before the digest, or backing off.
    pub waiting: usize,
    /// (stage, outcome) counts, for the metrics.
    pub outcomes: BTreeMap<(Stage, &'static str), u64>,
}

/// What delivery needs besides the planned notifications.
pub struct Outbox<'a> {
    pub store: &'a dyn crate::store::Store,
    pub transport: &'a dyn Transport,
    pub templates: &'a Templates,
    pub config: &'a Config,
    /// The calendar that decides working days for the send window.
    pub calendar: &'a Calendar,
}

/// Records the planned notifications, drops pending ones no longer called
/// for, and sends what may go now: one message per recipient.
pub async fn deliver(
    out: &Outbox<'_>,
    planned: Vec<Planned>,
    now: Instant,
    jitter: &mut (dyn FnMut() -> f64 + Send),
) -> Result<Delivery, crate::store::StoreError> {
    use crate::store::{LogUpdate, NewNotification};
    let mut d = Delivery::default();
    let rows: Vec<NewNotification> = planned
        .iter()
        .map(|p| NewNotification {
            id: p.id.clone(),
            obligation_key: p.obligation_key.clone(),
            stage: p.stage.as_str().into(),
            recipient: p.recipient.clone(),
            occurrence: p.occurrence,
            board: p.item.board.clone(),
            rule: p.item.rule.clone(),
        })
        .collect();
    d.recorded = out.store.log_planned(&rows, now).await?;
    let open = out.store.log_rows(Some("pending")).await?;
    let mut by_id: HashMap<String, Planned> =
        planned.into_iter().map(|p| (p.id.clone(), p)).collect();

    // Pending notifications the evaluation no longer calls for: met, voided, excepted or superseded.
    let gone: Vec<String> = open
        .iter()
        .filter(|r| !by_id.contains_key(&r.id))
        .map(|r| r.id.clone())
        .collect();
    if !gone.is_empty() {
        out.store
            .log_update(&gone, &LogUpdate::Dropped, now)
            .await?;
        for r in open.iter().filter(|r| !by_id.contains_key(&r.id)) {
            let stage = match r.stage.as_str() {
                "upcoming" => Stage::Upcoming,
                "due" => Stage::Due,
                "overdue" => Stage::Overdue,
                _ => Stage::Escalation,
            };
            *d.outcomes.entry((stage, "dropped")).or_default() += 1;
        }
        d.dropped = gone.len();
    }

    let window = in_send_window(out.config, out.calendar, now);
    let digest = digest_open(out.config, out.calendar, now);
    let mut sendable = Vec::new();
    for r in &open {
        let Some(stage) = by_id.get(&r.id).map(|p| p.stage) else {
            continue;
        };
        let ready = r.next_attempt_at.is_none_or(|t| t <= now);
        if window && ready && (!stage.digest() || digest) {
            if let Some(p) = by_id.remove(&r.id) {
                sendable.push((p, r.attempts));
            }
        } else {
            d.waiting += 1;
        }
    }

    let from = out
        .config
        .from_mailbox()
        .map_err(|e| crate::store::StoreError::Query {
            url: "config".into(),
            what: "mail.from".into(),
            reason: e.to_string(),
        })?;
    let timeout = Duration::from_secs(out.config.mail.smtp.timeout_seconds.max(1));
    let attempts: HashMap<String, i64> = sendable.iter().map(|(p, a)| (p.id.clone(), *a)).collect();
    for (recipient, group) in group(sendable.into_iter().map(|(p, _)| p).collect()) {
        let ids: Vec<String> = group.iter().map(|p| p.id.clone()).collect();
        let items: Vec<Item> = group.iter().map(|p| p.item.clone()).collect();
        let mid = message_id(&recipient, &ids);
        let result = match out
            .templates
            .render(&items)
            .and_then(|(subject, text, html)| {
                build_message(&from, &recipient, &mid, &subject, text, html)
            }) {
            Err(e) => Err(SendError::Permanent(e)),
            Ok(message) => {
                match tokio::time::timeout(timeout, out.transport.send(&message)).await {
                    Ok(r) => r,
                    Err(_) => Err(SendError::Transient(format!(
                        "no answer within {}s",
                        timeout.as_secs()
                    ))),
                }
            }
        };
        let (update, outcome) = match &result {
            Ok(()) => (
                LogUpdate::Sent {
                    message_id: mid.clone(),
                },
                "sent",
            ),
            Err(SendError::Transient(e)) => {
                let tries = ids
                    .iter()
                    .filter_map(|i| attempts.get(i))
                    .copied()
                    .max()
                    .unwrap_or(0);
                let wait = backoff(out.config, tries, jitter());
                let next =
                    now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::seconds(60));
                (
                    LogUpdate::Retry {
                        next_attempt_at: next,
                        error: e.clone(),
                    },
                    "retry",
                )
            }
            Err(SendError::Permanent(e)) => (LogUpdate::Failed { error: e.clone() }, "failed"),
        };
        out.store.log_update(&ids, &update, now).await?;
        match outcome {
            "sent" => {
                d.sent += ids.len();
                d.messages += 1;
            }
            "retry" => d.retried += ids.len(),
            _ => d.failed += ids.len(),
        }
        if let Err(e) = &result {
            tracing::warn!(recipient = %recipient, items = ids.len(), error = %e, "sending a reminder failed");
        }
        for p in &group {
            *d.outcomes.entry((p.stage, outcome)).or_default() += 1;
        }
    }
    Ok(d)
}

/// Sends through an SMTP relay with lettre (STARTTLS, TLS, or plain text to loopback).
pub struct SmtpTransport {
    inner: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
}

impl SmtpTransport {
    pub fn new(
        config: &crate::service::config::Smtp,
        password: Option<String>,
    ) -> Result<SmtpTransport, String> {
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::{AsyncSmtpTransport, Tokio1Executor};
        let builder = match config.tls {
            crate::service::config::TlsMode::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                    .map_err(|e| e.to_string())?
            }
            crate::service::config::TlsMode::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                    .map_err(|e| e.to_string())?
            }
            crate::service::config::TlsMode::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            }
        };
        let mut builder = builder
            .port(config.port)
            .timeout(Some(Duration::from_secs(config.timeout_seconds.max(1))));
        if let Some(user) = &config.username {
            let pw = password
                .ok_or("mail.smtp.username is set but CPWATCH_SMTP_PASSWORD (or _FILE) is not")?;
            builder = builder.credentials(Credentials::new(user.clone(), pw));
        }
        Ok(SmtpTransport {
            inner: builder.build(),
        })
    }
}

#[async_trait]
impl Transport for SmtpTransport {
    async fn send(&self, message: &lettre::Message) -> Result<(), SendError> {
        use lettre::AsyncTransport;
        match self.inner.send(message.clone()).await {
            Ok(_) => Ok(()),
            // A 5xx reply will not change by trying again; anything else (refused, timeout, 4xx) may.
            Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Err(e) => Err(SendError::Transient(e.to_string())),
        }
    }
}
