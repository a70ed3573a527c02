//! The long-running service: a tick (load, evaluate, update metrics, plan and
//! deliver reminders), the scheduler that starts ticks, the HTTP endpoints,
//! and shutdown. Every tick is idempotent, so a scheduler that fires twice,
//! late or not at all for a while never sends twice or loses a reminder.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context as _;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use chrono::Datelike;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, watch};
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::domain::calendar::Calendar;
use crate::domain::engine::Engine;
use crate::service::clock::Clock;
use crate::service::config::Config;
use crate::service::incremental::{Kept, NeedFull};
use crate::service::metrics::Metrics;
use crate::service::notify::{self, Delivery, Templates, Transport};
use crate::store::Store;

/// What the readiness check looks at.
pub struct Health {
    database_ok: AtomicBool,
    last_tick: AtomicI64,
    stale_after_seconds: AtomicI64,
    clock: Arc<dyn Clock>,
}

impl Health {
    /// Ready: the database answered at the last tick, and ticks are not stale.
    pub fn ready(&self) -> Result<(), String> {
        if !self.database_ok.load(Ordering::SeqCst) {
            return Err("the case database did not answer at the last tick".into());
        }
        self.ticking()
    }

    /// Ticks keep coming: the scheduler has not stalled.
    pub fn ticking(&self) -> Result<(), String> {
        let last = self.last_tick.load(Ordering::SeqCst);
        let age = self.clock.now().timestamp() - last;
        let limit = self.stale_after_seconds.load(Ordering::SeqCst);
        if last == 0 || age > limit {
            return Err(format!(
                "no tick for {age} s (more than {limit} s): the scheduler has stalled"
            ));
        }
        Ok(())
    }
}

/// How much a tick read and evaluated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    Full,
    Incremental,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Full => "full",
            Scope::Incremental => "incremental",
        }
    }
}

/// What one tick did, for the log line and for tests.
#[derive(Debug, Clone, Default)]
pub struct TickReport {
    /// Whether the tick read and evaluated everything or only what changed.
    pub scope: Scope,
    pub obligations: usize,
    pub overdue: usize,
    pub findings: usize,
    pub delivery: Delivery,
    pub seconds: f64,
}

/// What a reload (SIGHUP) replaces: the configuration and all that is built from it.
/// The database, the HTTP address and the schedule stay as they were at start.
pub struct Settings {
    pub config: Config,
    pub engine: Engine,
    transport: Box<dyn Transport>,
    templates: Templates,
    calendar: Calendar,
}

impl Settings {
    pub fn new(
        config: Config,
        engine: Engine,
        transport: Box<dyn Transport>,
    ) -> anyhow::Result<Settings> {
        let templates = Templates::load(config.reminders.templates_dir.as_deref())
            .map_err(|e| anyhow::anyhow!("reminders.templates_dir: {e}"))?;
        let calendar = engine.default_calendar(config.time_zone()?)?;
        Ok(Settings {
            config,
            engine,
            transport,
            templates,
            calendar,
        })
    }
}

pub struct Daemon {
    settings: RwLock<Arc<Settings>>,
    store: Box<dyn Store>,
    clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    rng: Mutex<ChaCha8Rng>,
    /// The last evaluation and the settings it was made with, for incremental ticks.
    kept: tokio::sync::Mutex<Option<(Kept, Arc<Settings>)>>,
}

impl Daemon {
    pub fn new(
        settings: Settings,
        store: Box<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Daemon> {
        let metrics = Arc::new(Metrics::new()?);
        metrics.rules(&settings.engine.rules);
        let health = Arc::new(Health {
            database_ok: AtomicBool::new(false),
            last_tick: AtomicI64::new(0),
            stale_after_seconds: AtomicI64::new(
                settings.config.schedule.stale_after_seconds as i64,
            ),
            clock: clock.clone(),
        });
        let seed = clock.now().timestamp_nanos_opt().unwrap_or(0) as u64;
        Ok(Daemon {
            settings: RwLock::new(Arc::new(settings)),
            store,
            clock,
            metrics,
            health,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
            kept: tokio::sync::Mutex::new(None),
        })
    }

    /// The settings in force; a tick keeps the ones it started with.
    pub fn settings(&self) -> Arc<Settings> {
        match self.settings.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts new settings in force, or keeps the old ones (and says why) when they failed to load.
    pub fn reload(&self, next: anyhow::Result<Settings>) -> bool {
        match next {
            Ok(next) => {
                self.metrics.rules(&next.engine.rules);
                self.health.stale_after_seconds.store(
                    next.config.schedule.stale_after_seconds as i64,
                    Ordering::SeqCst,
                );
                match self.settings.write() {
                    Ok(mut s) => *s = Arc::new(next),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(next),
                }
                tracing::info!("reloaded the configuration and rules");
                true
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "reload failed: keeping the configuration and rules in force");
                false
            }
        }
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// One tick: load the case state, evaluate, update the metrics, and deliver reminders.
    pub async fn run_once(&self) -> anyhow::Result<TickReport> {
        let now = self.clock.now();
        self.metrics.tick_started(now);
        self.health
            .last_tick
            .store(now.timestamp(), Ordering::SeqCst);
        let started = std::time::Instant::now();
        let result = self.tick(now, started).await;
        self.metrics.tick_finished(result.is_ok());
        match &result {
            Ok(r) => tracing::info!(
                scope = r.scope.as_str(),
                obligations = r.obligations,
                overdue = r.overdue,
                findings = r.findings,
                recorded = r.delivery.recorded,
                sent = r.delivery.sent,
                messages = r.delivery.messages,
                retried = r.delivery.retried,
                failed = r.delivery.failed,
                dropped = r.delivery.dropped,
                waiting = r.delivery.waiting,
                seconds = r.seconds,
                "tick"
            ),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "tick failed; the next tick will try again")
            }
        }
        result
    }

    async fn tick(
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
        let ctx = notify::Context {
            state,
            rules: &settings.engine.rules,
            holidays: &settings.engine.holidays,
            config: &settings.config,
        };
        let (planned, unresolved) = notify::plan(&eval.borrowed(), &ctx, now);
        let mut missing: HashMap<(String, String), i64> = HashMap::new();
        for u in &unresolved {
            let board = u.obligation_key.split(':').next().unwrap_or("").to_string();
            *missing.entry((board, u.recipient.clone())).or_default() += 1;
        }
        self.metrics.unresolved(&missing);
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
            let outbox = notify::Outbox {
                store: self.store.as_ref(),
                transport: settings.transport.as_ref(),
                templates: &settings.templates,
                config: &settings.config,
                calendar: &settings.calendar,
            };
            let mut jitter = || self.rng.lock().map(|mut r| r.gen::<f64>()).unwrap_or(0.5);
            match notify::deliver(&outbox, planned, now, &mut jitter).await {
                Ok(d) => d,
                Err(e) => {
                    self.metrics.database_up.set(0);
                    self.health.database_ok.store(false, Ordering::SeqCst);
                    return Err(e).context("recording notifications");
                }
            }
        } else {
            Delivery::default()
        };
        if leader {
            self.monthly_exports(&settings, state, &boards, now);
        }
        let attempted = delivery.sent + delivery.retried + delivery.failed;
        if attempted > 0 {
            self.metrics
                .smtp_up
                .set(i64::from(delivery.sent > 0 || delivery.retried == 0));
        }
        for ((stage, outcome), n) in &delivery.outcomes {
            self.metrics.notification(stage.as_str(), outcome, *n);
        }
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

    /// Serves HTTP and runs ticks on the schedule until `shutdown` completes.
    /// A tick in progress at shutdown is abandoned: its pending notifications
    /// stay pending in the log and go at the next start.
    pub async fn serve(
        self: Arc<Self>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let settings = self.settings();
        let addr = settings.config.listen()?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("http.listen: cannot listen on {addr}"))?;
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
        let app = router(self.metrics.clone(), self.health.clone());
        let mut http_stop = stop_rx.clone();
        let http = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stopped(&mut http_stop).await })
                .await
        });

        // Ticks are coalesced: a tick requested while one runs (or one is queued) is one tick.
        let (tick_tx, mut tick_rx) = mpsc::channel::<()>(1);
        let scheduler = JobScheduler::new()
            .await
            .context("starting the scheduler")?;
        let tx = tick_tx.clone();
        let job = Job::new_async_tz(
            settings.config.schedule.evaluate.as_str(),
            settings.config.time_zone()?,
            move |_, _| {
                let tx = tx.clone();
                Box::pin(async move {
                    let _ = tx.try_send(());
                })
            },
        )
        .map_err(|e| anyhow::anyhow!("schedule.evaluate: {e}"))?;
        scheduler.add(job).await.context("scheduling evaluation")?;
        scheduler.start().await.context("starting the scheduler")?;
        let _ = tick_tx.try_send(());

        let watchdog = self.watchdog(stop_rx.clone());
        let mut stop = stop_rx.clone();
        let mut stop_mid_tick = stop_rx.clone();
        let mut ready_sent = false;
        loop {
            tokio::select! {
                _ = stopped(&mut stop) => break,
                Some(()) = tick_rx.recv() => {
                    tokio::select! {
                        r = self.run_once() => {
                            // systemd: ready once the first evaluation has worked.
                            if r.is_ok() && !ready_sent {
                                systemd(&[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status("evaluating")]);
                                ready_sent = true;
                            }
                        }
                        _ = stopped(&mut stop_mid_tick) => {
                            tracing::info!("shutting down during a tick: abandoned; pending reminders stay pending");
                            break;
                        }
                    }
                }
            }
        }
        systemd(&[sd_notify::NotifyState::Stopping]);
        if let Some(w) = watchdog {
            w.abort();
        }
        let mut scheduler = scheduler;
        if let Err(e) = scheduler.shutdown().await {
            tracing::warn!(error = %e, "stopping the scheduler");
        }
        http.await
            .context("the HTTP server task")?
            .context("the HTTP server")?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Tells systemd (when it started us with Type=notify) how we are; a no-op otherwise.
fn systemd(states: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

impl Daemon {
    /// When systemd asks for a watchdog, pings it at half its interval while ticks keep coming.
    fn watchdog(
        self: &Arc<Self>,
        stop: watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let mut usec = 0;
        if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
            return None;
        }
        let every = std::time::Duration::from_micros(usec / 2);
        let health = self.health.clone();
        Some(tokio::spawn(async move {
            let mut stop = stop;
            let mut interval = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = stopped(&mut stop) => break,
                    _ = interval.tick() => match health.ticking() {
                        Ok(()) => systemd(&[sd_notify::NotifyState::Watchdog]),
                        Err(why) => tracing::error!(%why, "not pinging the systemd watchdog"),
                    },
                }
            }
        }))
    }
}

/// Completes once shutdown is asked for (the watch guard is dropped here, not held across awaits).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

#[derive(Clone)]
struct HttpState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

pub fn router(metrics: Arc<Metrics>, health: Arc<Health>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(s): State<HttpState>| async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    s.metrics.render(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(s): State<HttpState>| async move {
                match s.health.ready() {
                    Ok(()) => (StatusCode::OK, "ready\n".to_string()),
                    Err(why) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: {why}\n"),
                    ),
                }
            }),
        )
        .with_state(HttpState { metrics, health })
}
