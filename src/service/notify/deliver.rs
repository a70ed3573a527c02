//! Delivery through the notification log: when notifications may go (the
//! send window, the daily digest, backoff), grouping one message per
//! recipient, recording every notification before it is sent, and what a
//! send's outcome does to the log.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::NaiveTime;

use super::message::*;
use super::plan::*;
use super::transport::*;
use crate::domain::calendar::Calendar;
use crate::domain::case::Instant;
use crate::service::config::Config;
use crate::store::{LogRow, LogUpdate, NewNotification, StoreError};

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
) -> Result<Delivery, StoreError> {
    let mut d = Delivery::default();
    let rows: Vec<NewNotification> = planned.iter().map(Planned::to_log).collect();
    d.recorded = out.store.log_planned(&rows, now).await?;
    let open = out.store.log_rows(Some("pending")).await?;
    let mut by_id: HashMap<String, Planned> =
        planned.into_iter().map(|p| (p.id.clone(), p)).collect();
    drop_gone(out, &open, &by_id, now, &mut d).await?;
    let sendable = sendable(out, &open, &mut by_id, now, &mut d);
    let from = out.config.from_mailbox().map_err(|e| StoreError::Query {
        url: "config".into(),
        what: "mail.from".into(),
        reason: e.to_string(),
    })?;
    let attempts: HashMap<String, i64> = sendable.iter().map(|(p, a)| (p.id.clone(), *a)).collect();
    for (recipient, group) in group(sendable.into_iter().map(|(p, _)| p).collect()) {
        let ids: Vec<String> = group.iter().map(|p| p.id.clone()).collect();
        let mid = message_id(&recipient, &ids);
        let result = send(out, &from, &recipient, &mid, &group).await;
        let tries = ids.iter().filter_map(|i| attempts.get(i)).copied().max();
        let (update, outcome) =
            log_update(&result, mid, tries.unwrap_or(0), out.config, now, jitter);
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

impl Planned {
    /// The notification as the log records it.
    fn to_log(&self) -> NewNotification {
        NewNotification {
            id: self.id.clone(),
            obligation_key: self.obligation_key.clone(),
            stage: self.stage.as_str().into(),
            recipient: self.recipient.clone(),
            occurrence: self.occurrence,
            board: self.item.board.clone(),
            rule: self.item.rule.clone(),
        }
    }
}

/// Drops the pending notifications the evaluation no longer calls for: met,
/// voided, excepted or superseded.
async fn drop_gone(
    out: &Outbox<'_>,
    open: &[LogRow],
    by_id: &HashMap<String, Planned>,
    now: Instant,
    d: &mut Delivery,
) -> Result<(), StoreError> {
    let gone: Vec<&LogRow> = open.iter().filter(|r| !by_id.contains_key(&r.id)).collect();
    if gone.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = gone.iter().map(|r| r.id.clone()).collect();
    out.store.log_update(&ids, &LogUpdate::Dropped, now).await?;
    for r in &gone {
        let stage = match r.stage.as_str() {
            "upcoming" => Stage::Upcoming,
            "due" => Stage::Due,
            "overdue" => Stage::Overdue,
            _ => Stage::Escalation,
        };
        *d.outcomes.entry((stage, "dropped")).or_default() += 1;
    }
    d.dropped = gone.len();
    Ok(())
}

/// The pending notifications that may go now, with their attempts so far;
/// the rest wait (outside the send window, before the digest, backing off).
fn sendable(
    out: &Outbox<'_>,
    open: &[LogRow],
    by_id: &mut HashMap<String, Planned>,
    now: Instant,
    d: &mut Delivery,
) -> Vec<(Planned, i64)> {
    let window = in_send_window(out.config, out.calendar, now);
    let digest = digest_open(out.config, out.calendar, now);
    let mut sendable = Vec::new();
    for r in open {
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
    sendable
}

/// One recipient's message, rendered and handed to the transport within the relay's timeout.
async fn send(
    out: &Outbox<'_>,
    from: &lettre::message::Mailbox,
    recipient: &str,
    mid: &str,
    group: &[Planned],
) -> Result<(), SendError> {
    let items: Vec<Item> = group.iter().map(|p| p.item.clone()).collect();
    let message = out
        .templates
        .render(&items)
        .and_then(|(subject, text, html)| build_message(from, recipient, mid, &subject, text, html))
        .map_err(SendError::Permanent)?;
    let timeout = Duration::from_secs(out.config.mail.smtp.timeout_seconds.max(1));
    match tokio::time::timeout(timeout, out.transport.send(&message)).await {
        Ok(r) => r,
        Err(_) => Err(SendError::Transient(format!(
            "no answer within {}s",
            timeout.as_secs()
        ))),
    }
}

/// What a send's result writes to the log, and its outcome's name for the metrics.
fn log_update(
    result: &Result<(), SendError>,
    message_id: String,
    tries: i64,
    config: &Config,
    now: Instant,
    jitter: &mut (dyn FnMut() -> f64 + Send),
) -> (LogUpdate, &'static str) {
    match result {
        Ok(()) => (LogUpdate::Sent { message_id }, "sent"),
        Err(SendError::Transient(e)) => {
            let wait = backoff(config, tries, jitter());
            let next =
                now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::seconds(60));
            let update = LogUpdate::Retry {
                next_attempt_at: next,
                error: e.clone(),
            };
            (update, "retry")
        }
        Err(SendError::Permanent(e)) => (LogUpdate::Failed { error: e.clone() }, "failed"),
    }
}
