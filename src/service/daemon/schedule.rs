//! Running the service: the HTTP server, ticks on the cron schedule
//! (coalesced), systemd's readiness and watchdog, and shutdown.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::{mpsc, watch};
use tokio_cron_scheduler::{Job, JobScheduler};

use super::*;

impl Daemon {
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
        let http = self.start_http(&settings, stop_rx.clone()).await?;
        // Ticks are coalesced: a tick requested while one runs (or one is queued) is one tick.
        let (tick_tx, mut tick_rx) = mpsc::channel::<()>(1);
        let scheduler = start_scheduler(&settings, tick_tx.clone()).await?;
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

impl Daemon {
    /// The HTTP endpoints, on a task of their own until `stop`.
    async fn start_http(
        &self,
        settings: &Settings,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
        let addr = settings.config.listen()?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("http.listen: cannot listen on {addr}"))?;
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
        let app = router(self.metrics.clone(), self.health.clone());
        let http = &settings.config.http;
        let limits = Limits {
            max_connections: usize::try_from(http.max_connections).unwrap_or(usize::MAX),
            header_timeout: std::time::Duration::from_secs(http.header_timeout_seconds.max(1)),
            lifetime: std::time::Duration::from_secs(60),
        };
        let mut stop = stop;
        Ok(tokio::spawn(async move {
            serve(
                listener,
                app,
                limits,
                async move { stopped(&mut stop).await },
            )
            .await;
            Ok(())
        }))
    }
}

/// The cron schedule (`schedule.evaluate`, in the configured time zone),
/// asking for a tick on `tick` each time it fires.
async fn start_scheduler(
    settings: &Settings,
    tick: mpsc::Sender<()>,
) -> anyhow::Result<JobScheduler> {
    let scheduler = JobScheduler::new()
        .await
        .context("starting the scheduler")?;
    let job = Job::new_async_tz(
        settings.config.schedule.evaluate.as_str(),
        settings.config.time_zone()?,
        move |_, _| {
            let tx = tick.clone();
            Box::pin(async move {
                let _ = tx.try_send(());
            })
        },
    )
    .map_err(|e| anyhow::anyhow!("schedule.evaluate: {e}"))?;
    scheduler.add(job).await.context("scheduling evaluation")?;
    scheduler.start().await.context("starting the scheduler")?;
    Ok(scheduler)
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
