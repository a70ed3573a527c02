//! One tick: bring the evaluation up to date (incrementally when it can),
//! update the metrics, plan reminders and, on the replica that sends, deliver
//! them and write the monthly exports.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::Datelike;
use rand::Rng;

use crate::domain::calendar::Calendar;
use crate::domain::snooze::{key_parts, Snoozes};
use crate::service::incremental::{Kept, NeedFull};
use crate::service::notify::{self, Delivery};

use super::*;

impl Daemon {
    pub(super) async fn tick(
        &self,
        now: crate::domain::case::Instant,
        started: std::time::Instant,
    ) -> anyhow::Result<TickReport> {
        let settings = self.settings();
        let mut kept = self.kept.lock().await;
        let scope = match self.evaluate(&settings, &mut kept, now).await {
            Ok(scope) => scope,
            Err(e) => {
                self.metrics.database_up.set(0);
                self.health.database_ok.store(false, Ordering::SeqCst);
                return Err(e.into());
            }
        };
        self.metrics.database_up.set(1);
        self.health.database_ok.store(true, Ordering::SeqCst);
        let Some(Kept {
            state, tally, eval, ..
        }) = kept.as_ref().map(|k| &k.0)
        else {
            return Err(anyhow::anyhow!("no evaluation to act on"));
        };
        let seconds = started.elapsed().as_secs_f64();
        let obligations = tally.total;
        let boards: Vec<String> = tally.boards().into_iter().map(String::from).collect();
        self.metrics.evaluated(tally, &eval.findings, seconds, now);
        self.metrics.evaluation(scope.as_str());
        // Snoozes are agreements people made: without them, no reminders this tick.
        let snoozes = Snoozes::active(self.store.snoozes().await?, now);
        self.metrics.snoozes_active.set(snoozes.len() as i64);
        let ctx = context(&settings, state, &snoozes);
        let planned = self.plan(&ctx, eval, now);
        // Only the replica holding the sender lock sends and writes the log; the others evaluate and serve metrics.
        let leader = match self.store.leadership().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell whether this replica sends; not sending this tick");
                false
            }
        };
        self.metrics.leader.set(i64::from(leader));
        let delivery = if leader {
            let mut planned = planned;
            planned.extend(self.resolved(&ctx, eval, now).await);
            let delivery = self.deliver(&settings, planned, now).await?;
            self.monthly_exports(&settings, state, &snoozes, &boards, now);
            delivery
        } else {
            Delivery::default()
        };
        Ok(TickReport {
            scope,
            obligations,
            overdue: eval
                .obligations
                .iter()
                .filter(|o| o.status == crate::domain::evaluate::Status::Overdue)
                .count(),
            findings: eval.findings.len(),
            delivery,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// The reminders the evaluation calls for; roles with no address are counted in the metrics.
    fn plan(
        &self,
        ctx: &notify::Context<'_>,
        eval: &crate::domain::evaluate::Evaluation,
        now: crate::domain::case::Instant,
    ) -> Vec<notify::Planned> {
        let (planned, unresolved) = notify::plan(&eval.borrowed(), ctx, now);
        let mut missing: HashMap<(String, String), i64> = HashMap::new();
        for u in &unresolved {
            let board = u.obligation_key.split(':').next().unwrap_or("").to_string();
            *missing.entry((board, u.recipient.clone())).or_default() += 1;
        }
        self.metrics.unresolved(&missing);
        planned
    }

    /// Notices for the escalated duties open no longer. A log that cannot be
    /// read gives none this tick: the next tick tells them.
    async fn resolved(
        &self,
        ctx: &notify::Context<'_>,
        eval: &crate::domain::evaluate::Evaluation,
        now: crate::domain::case::Instant,
    ) -> Vec<notify::Planned> {
        let escalated = match self.store.log_escalated().await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read which duties were escalated");
                return Vec::new();
            }
        };
        if escalated.is_empty() {
            return Vec::new();
        }
        // Only the keys of the escalated duties' rules are made. (The log's
        // board column holds the board's name; its id leads the key.)
        let rules: std::collections::HashSet<(&str, &str)> = escalated
            .iter()
            .filter_map(|e| Some((key_parts(&e.obligation_key)?.board, e.rule.as_str())))
            .collect();
        let open: std::collections::HashSet<String> = (eval.obligations.iter())
            .filter(|o| o.status.is_open() && rules.contains(&(&*o.of.board, &*o.of.rule)))
            .map(|o| o.key())
            .collect();
        notify::resolved(escalated, &open, ctx, now)
    }

    /// Records and sends the planned reminders, and counts what happened.
    async fn deliver(
        &self,
        settings: &Settings,
        planned: Vec<notify::Planned>,
        now: crate::domain::case::Instant,
    ) -> anyhow::Result<Delivery> {
        let outbox = notify::Outbox {
            store: self.store.as_ref(),
            transport: settings.transport.as_ref(),
            templates: &settings.templates,
            config: &settings.config,
            calendar: &settings.calendar,
        };
        let mut jitter = || self.rng.lock().map(|mut r| r.gen::<f64>()).unwrap_or(0.5);
        let mut memory = self.memory.lock().await;
        let delivery = match notify::deliver(&outbox, planned, now, &mut memory, &mut jitter).await
        {
            Ok(d) => d,
            Err(e) => {
                self.metrics.database_up.set(0);
                self.health.database_ok.store(false, Ordering::SeqCst);
                return Err(e).context("recording notifications");
            }
        };
        let attempted = delivery.sent + delivery.retried + delivery.failed;
        if delivery.relay_down.is_some() {
            self.metrics.smtp_up.set(0);
        } else if attempted > 0 {
            self.metrics
                .smtp_up
                .set(i64::from(delivery.sent > 0 || delivery.retried == 0));
        }
        match self.store.log_count("failed").await {
            Ok(n) => self.metrics.notifications_failed.set(n),
            Err(e) => tracing::warn!(error = %e, "cannot count failed notifications"),
        }
        for ((stage, outcome), n) in &delivery.outcomes {
            self.metrics.notification(stage.as_str(), outcome, *n);
        }
        Ok(delivery)
    }

    /// Brings the kept evaluation up to `now`: only what changed when it can,
    /// everything when incremental ticks are off, the settings were reloaded,
    /// a day or `schedule.full_every_seconds` has passed, or the changes reach
    /// beyond the children they are about.
    async fn evaluate(
        &self,
        settings: &Arc<Settings>,
        kept: &mut Option<(Kept, Arc<Settings>)>,
        now: crate::domain::case::Instant,
    ) -> Result<Scope, crate::store::StoreError> {
        let schedule = &settings.config.schedule;
        let full_every = chrono::Duration::seconds(schedule.full_every_seconds as i64);
        let overlap = chrono::Duration::seconds(schedule.updated_at_overlap_seconds as i64);
        let why_full = match kept.as_ref() {
            None => Some("first tick".to_string()),
            Some(_) if !schedule.incremental => Some("incremental ticks are off".into()),
            Some((_, with)) if !Arc::ptr_eq(with, settings) => Some("settings reloaded".into()),
            Some((k, _)) if now >= k.until() => Some("a new day has begun".into()),
            Some((k, _)) if now - k.loaded_at >= full_every => {
                Some("schedule.full_every_seconds has passed".into())
            }
            Some(_) => None,
        };
        let why_full = match (why_full, kept.as_mut()) {
            (None, Some((k, _))) => {
                let since = k.watermark.map(|w| w - overlap);
                let changes = self.store.load_since(since).await?;
                match k.update(&settings.engine, changes, now) {
                    Ok(u) => {
                        tracing::debug!(rows = u.rows, children = u.children, "incremental tick");
                        return Ok(Scope::Incremental);
                    }
                    Err(NeedFull(why)) => why,
                }
            }
            (why, _) => why.unwrap_or_default(),
        };
        tracing::debug!(why = %why_full, "full tick");
        // The old state goes before the new one is read: never two in memory.
        *kept = None;
        let loaded = self.store.load_since(None).await?;
        *kept = Some((Kept::full(&settings.engine, loaded, now), settings.clone()));
        Ok(Scope::Full)
    }

    /// From the first working day of a month, the previous month's export for
    /// each board, unless its file is already there.
    fn monthly_exports(
        &self,
        settings: &Settings,
        state: &crate::domain::case::CaseState,
        snoozes: &Snoozes,
        boards: &[String],
        now: crate::domain::case::Instant,
    ) {
        let Some(dir) = &settings.config.export.directory else {
            return;
        };
        let cal = &settings.calendar;
        let today = cal.local_date(now);
        let Some(first) = today.with_day(1) else {
            return;
        };
        match cal.add_working_days(first, 0) {
            Ok(first_working) if today >= first_working => {}
            _ => return,
        }
        let to = first.pred_opt().unwrap_or(first);
        let Some(from) = to.with_day(1) else { return };
        let month = from.format("%Y-%m").to_string();
        let due: Vec<&String> = boards
            .iter()
            .filter(|b| !dir.join(format!("{b}-{month}.xlsx")).exists())
            .collect();
        if due.is_empty() {
            return;
        }
        // The export needs settled obligations too, which a tick does not keep.
        let mut scratch = crate::domain::evaluate::Scratch::default();
        let eval = &settings
            .engine
            .evaluate_where(state, &mut scratch, now, &|o| {
                due.iter().any(|b| **b == *o.of.board)
            });
        for board in due {
            let board = board.as_str();
            let path = dir.join(format!("{board}-{month}.xlsx"));
            let Some(version) = settings.engine.rules.latest(board) else {
                continue;
            };
            let written = Calendar::new(
                settings.engine.holidays.clone(),
                &version.calendar,
                version.time_zone,
            )
            .map_err(|e| e.to_string())
            .and_then(|board_cal| {
                let report = crate::report::export::build(&crate::report::export::Input {
                    eval,
                    state,
                    rules: &settings.engine.rules,
                    calendar: &board_cal,
                    board,
                    default_board: &settings.engine.default_board,
                    from,
                    to,
                    generated_at: now,
                    snoozes,
                });
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                report.write_xlsx(&path, false).map_err(|e| e.to_string())
            });
            match written {
                Ok(()) => {
                    self.metrics.export("written");
                    tracing::info!(board, file = %path.display(), "wrote the monthly audit export");
                }
                Err(e) => {
                    self.metrics.export("failed");
                    tracing::error!(board, file = %path.display(), error = %e, "monthly audit export failed; the next tick tries again");
                }
            }
        }
    }
}

/// What planning reads besides the evaluation.
fn context<'a>(
    settings: &'a Settings,
    state: &'a crate::domain::case::CaseState,
    snoozes: &'a Snoozes,
) -> notify::Context<'a> {
    notify::Context {
        snoozes,
        state,
        rules: &settings.engine.rules,
        holidays: &settings.engine.holidays,
        config: &settings.config,
    }
}
