//! The long-running service: a tick (load, evaluate, update metrics, plan and
//! deliver reminders) in `tick`, the scheduler that starts ticks and the
//! shutdown in `schedule`, the HTTP endpoints in `http`. Every tick is
//! idempotent, so a scheduler that fires twice, late or not at all for a
//! while never sends twice or loses a reminder.

mod http;
mod schedule;
mod tick;

pub use http::{router, serve, Health, Limits};

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::domain::calendar::Calendar;
use crate::domain::engine::Engine;
use crate::service::clock::Clock;
use crate::service::config::Config;
use crate::service::incremental::Kept;
use crate::service::metrics::Metrics;
use crate::service::notify::{Delivery, Memory, Templates, Transport};
use crate::store::Store;

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
    /// What delivery remembers from one tick to the next.
    memory: tokio::sync::Mutex<Memory>,
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
            memory: tokio::sync::Mutex::new(Memory::default()),
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
}
