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
    /// Why the relay was taken to be down this round (refusing every
    /// recipient, or not answering), if it was; or why it is still paused.
    pub relay_down: Option<String>,
    /// The round stopped because this replica no longer holds the sender lock.
    pub lost_lock: bool,
}

/// What delivery remembers from one round to the next: how the relay has
/// been answering (a relay that refuses everyone or does not answer is
/// paused, with backoff, rather than tried message after message), and who
/// has had a digest today (read back from the log on the first round of a
/// day, so a restarted service sends nobody a second one).
#[derive(Debug, Default)]
pub struct Memory {
    /// Rounds in a row that found the relay down.
    down_rounds: i64,
    /// Nothing is tried before this instant.
    paused_until: Option<Instant>,
    /// Why it was paused.
    reason: String,
    /// Each recipient's last digest, by local date: one a day at most.
    digest_sent: HashMap<String, chrono::NaiveDate>,
    /// The day whose digests were read back from the log.
    digest_read: Option<chrono::NaiveDate>,
}

/// Recipients refused one after another (5xx), none accepted between, that
/// say the relay itself refuses: a recipient's own rejection comes among
/// accepted messages.
pub const REFUSED_IN_A_ROW: usize = 3;
/// Sends in one round that find the relay unreachable (no answer within the
/// timeout, connection refused) before it is taken to be down.
pub const UNREACHABLE_IN_A_ROUND: usize = 2;

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
/// for, and sends what may go now: one message per recipient, until the
/// round's time (`mail.smtp.delivery_budget_seconds`) is spent, the relay is
/// found down, or this replica stops being the sender.
pub async fn deliver(
    out: &Outbox<'_>,
    planned: Vec<Planned>,
    now: Instant,
    memory: &mut Memory,
    jitter: &mut (dyn FnMut() -> f64 + Send),
) -> Result<Delivery, StoreError> {
    let mut d = Delivery::default();
    let rows: Vec<NewNotification> = planned.iter().map(Planned::to_log).collect();
    d.recorded = out.store.log_planned(&rows, now).await?;
    let open = out.store.log_rows(Some("pending")).await?;
    let mut by_id: HashMap<String, Planned> =
        planned.into_iter().map(|p| (p.id.clone(), p)).collect();
    drop_gone(out, &open, &by_id, now, &mut d).await?;
    let today = out.calendar.local_date(now);
    if memory.digest_read != Some(today) {
        let since = out.calendar.start_of_day(today);
        for recipient in out.store.log_digested_since(since).await? {
            memory.digest_sent.insert(recipient, today);
        }
        memory.digest_read = Some(today);
    }
    let sendable = sendable(out, &open, &mut by_id, now, &memory.digest_sent, &mut d);
    if let Some(until) = memory.paused_until.filter(|u| now < *u) {
        d.waiting += sendable.len();
        d.relay_down = Some(format!("{}; paused until {until}", memory.reason));
        return Ok(d);
    }
    let from = out.config.from_mailbox().map_err(|e| StoreError::Query {
        url: "config".into(),
        what: "mail.from".into(),
        reason: e.to_string(),
    })?;
    let attempts: HashMap<String, i64> = sendable.iter().map(|(p, a)| (p.id.clone(), *a)).collect();
    let mut round = Round {
        out,
        now,
        attempts,
        refused: Vec::new(),
        unreachable: 0,
        digested: Vec::new(),
        d,
        jitter,
    };
    let budget = Duration::from_secs(out.config.mail.smtp.delivery_budget_seconds.max(1));
    let started = std::time::Instant::now();
    let mut groups = group(sendable.into_iter().map(|(p, _)| p).collect()).into_iter();
    for (recipient, group) in groups.by_ref() {
        // Another replica takes the lock when this one's session is lost,
        // and sends the same pending rows: stop before the next message.
        if !out.store.leadership().await? {
            round.d.lost_lock = true;
            round.d.waiting += group.len();
            break;
        }
        round.one(&from, &recipient, group).await?;
        if round.d.relay_down.is_some() || started.elapsed() >= budget {
            break;
        }
    }
    round.d.waiting += groups.map(|(_, g)| g.len()).sum::<usize>();
    round.settle_refused().await?;
    for recipient in std::mem::take(&mut round.digested) {
        memory.digest_sent.insert(recipient, today);
    }
    let mut d = round.d;
    match &d.relay_down {
        Some(why) => {
            let wait = backoff(out.config, memory.down_rounds, jitter());
            memory.down_rounds += 1;
            memory.paused_until = Some(
                now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::minutes(5)),
            );
            memory.reason.clone_from(why);
            tracing::warn!(reason = %why, retry_after_seconds = wait.as_secs(), "the mail relay is down; reminders wait");
        }
        None if d.sent > 0 => {
            memory.down_rounds = 0;
            memory.paused_until = None;
        }
        None => {}
    }
    if d.lost_lock {
        tracing::warn!(
            "this replica lost the sender lock while sending; the rest is left to the new sender"
        );
    }
    d.outcomes.retain(|_, n| *n > 0);
    Ok(d)
}

/// One round of sending: what it has done so far.
struct Round<'o, 'j> {
    out: &'o Outbox<'o>,
    now: Instant,
    attempts: HashMap<String, i64>,
    /// Messages refused (5xx) since the last one accepted, not yet recorded:
    /// failed if the relay accepts another, retried if it refuses everyone.
    refused: Vec<(Vec<Planned>, String, i64)>,
    unreachable: usize,
    /// Recipients sent a message with digest items this round.
    digested: Vec<String>,
    d: Delivery,
    jitter: &'j mut (dyn FnMut() -> f64 + Send),
}

impl Round<'_, '_> {
    /// Renders and sends one recipient's message, and records what happened.
    async fn one(
        &mut self,
        from: &lettre::message::Mailbox,
        recipient: &str,
        group: Vec<Planned>,
    ) -> Result<(), StoreError> {
        let ids: Vec<String> = group.iter().map(|p| p.id.clone()).collect();
        let mid = message_id(recipient, &ids);
        let tries = (ids.iter())
            .filter_map(|i| self.attempts.get(i))
            .copied()
            .max()
            .unwrap_or(0);
        let message = match render(self.out, from, recipient, &mid, &group) {
            Ok(m) => m,
            Err(e) => {
                // The templates, not the relay: this message can never go.
                tracing::error!(recipient = %recipient, error = %e, "a reminder could not be rendered");
                return self
                    .record(&group, LogUpdate::Failed { error: e }, "failed")
                    .await;
            }
        };
        match transmit(self.out, &message).await {
            Ok(()) => {
                self.unreachable = 0;
                if group.iter().any(|p| p.stage.digest()) {
                    self.digested.push(recipient.to_string());
                }
                // The relay accepts mail: the refusals before were the recipients'.
                self.settle_refused().await?;
                self.d.messages += 1;
                self.record(&group, LogUpdate::Sent { message_id: mid }, "sent")
                    .await
            }
            Err(SendError::Permanent(e)) => {
                tracing::warn!(recipient = %recipient, items = ids.len(), error = %e, "the relay refused a reminder");
                self.refused.push((group, e, tries));
                if self.refused.len() >= REFUSED_IN_A_ROW {
                    self.d.relay_down = Some(format!(
                        "the relay refused {} recipients in a row, the last with: {}",
                        self.refused.len(),
                        self.refused.last().map_or("", |r| r.1.as_str())
                    ));
                }
                Ok(())
            }
            Err(SendError::Unreachable(e)) => {
                tracing::warn!(recipient = %recipient, error = %e, "the relay did not answer");
                self.unreachable += 1;
                if self.unreachable >= UNREACHABLE_IN_A_ROUND {
                    self.d.relay_down = Some(format!("the relay did not answer: {e}"));
                }
                self.retry(&group, e, tries).await
            }
            Err(SendError::Transient(e)) => {
                tracing::warn!(recipient = %recipient, items = ids.len(), error = %e, "sending a reminder failed for now");
                self.retry(&group, e, tries).await
            }
        }
    }

    /// Records the refusals held back: as failures when the relay has since
    /// accepted mail (or the round ended without showing it refuses
    /// everyone), as retries when it refused every recipient in a row.
    async fn settle_refused(&mut self) -> Result<(), StoreError> {
        let relay_refuses = self.d.relay_down.is_some() && self.refused.len() >= REFUSED_IN_A_ROW;
        for (group, e, tries) in std::mem::take(&mut self.refused) {
            if relay_refuses {
                self.retry(
                    &group,
                    format!("the relay refused every recipient: {e}"),
                    tries,
                )
                .await?;
            } else {
                self.record(&group, LogUpdate::Failed { error: e }, "failed")
                    .await?;
            }
        }
        Ok(())
    }

    async fn retry(
        &mut self,
        group: &[Planned],
        error: String,
        tries: i64,
    ) -> Result<(), StoreError> {
        let wait = backoff(self.out.config, tries, (self.jitter)());
        let next_attempt_at =
            self.now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::seconds(60));
        self.record(
            group,
            LogUpdate::Retry {
                next_attempt_at,
                error,
            },
            "retry",
        )
        .await
    }

    async fn record(
        &mut self,
        group: &[Planned],
        update: LogUpdate,
        outcome: &'static str,
    ) -> Result<(), StoreError> {
        let ids: Vec<String> = group.iter().map(|p| p.id.clone()).collect();
        self.out.store.log_update(&ids, &update, self.now).await?;
        match outcome {
            "sent" => self.d.sent += ids.len(),
            "retry" => self.d.retried += ids.len(),
            _ => self.d.failed += ids.len(),
        }
        for p in group {
            *self.d.outcomes.entry((p.stage, outcome)).or_default() += 1;
        }
        Ok(())
    }
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
            "summary" => Stage::Summary,
            "resolved" => Stage::Resolved,
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
    digest_sent: &HashMap<String, chrono::NaiveDate>,
    d: &mut Delivery,
) -> Vec<(Planned, i64)> {
    let window = in_send_window(out.config, out.calendar, now);
    let digest = digest_open(out.config, out.calendar, now);
    let today = out.calendar.local_date(now);
    let mut sendable = Vec::new();
    for r in open {
        let Some(stage) = by_id.get(&r.id).map(|p| p.stage) else {
            continue;
        };
        let ready = r.next_attempt_at.is_none_or(|t| t <= now);
        // A recipient's digest goes once a day, whatever is added later.
        let digest_due = digest && digest_sent.get(&r.recipient) != Some(&today);
        if window && ready && (!stage.digest() || digest_due) {
            if let Some(p) = by_id.remove(&r.id) {
                sendable.push((p, r.attempts));
            }
        } else {
            d.waiting += 1;
        }
    }
    sendable
}

/// One recipient's message, rendered from the templates.
fn render(
    out: &Outbox<'_>,
    from: &lettre::message::Mailbox,
    recipient: &str,
    mid: &str,
    group: &[Planned],
) -> Result<lettre::Message, String> {
    let items: Vec<Item> = group.iter().map(|p| p.item.clone()).collect();
    out.templates
        .render(&items)
        .and_then(|(subject, text, html)| build_message(from, recipient, mid, &subject, text, html))
}

/// A message handed to the transport within the relay's timeout.
async fn transmit(out: &Outbox<'_>, message: &lettre::Message) -> Result<(), SendError> {
    let timeout = Duration::from_secs(out.config.mail.smtp.timeout_seconds.max(1));
    match tokio::time::timeout(timeout, out.transport.send(message)).await {
        Ok(r) => r,
        Err(_) => Err(SendError::Unreachable(format!(
            "no answer within {}s",
            timeout.as_secs()
        ))),
    }
}
