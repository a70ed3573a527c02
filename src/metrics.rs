//! Prometheus metrics: what the last evaluation saw, how ticks and
//! notifications went, and the health of the database and mail relay.
//! Labels carry boards, rules, statuses, agencies and teams — never a child,
//! case, conference or person.

use std::collections::HashMap;

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::case::Instant;
use crate::evaluate::{Evaluation, Status};
use crate::rules::{AuditBy, RuleKind, RuleSet};

pub struct Metrics {
    registry: Registry,
    obligations: IntGaugeVec,
    overdue: IntGaugeVec,
    on_time_ratio: GaugeVec,
    on_time_by_agency: GaugeVec,
    on_time_by_team: GaugeVec,
    findings: IntGaugeVec,
    evaluation_seconds: Histogram,
    last_success: Gauge,
    last_tick: Gauge,
    ticks: IntCounterVec,
    notifications: IntCounterVec,
    unresolved: IntGaugeVec,
    pub database_up: IntGauge,
    pub smtp_up: IntGauge,
    pub leader: IntGauge,
    exports: IntCounterVec,
    rules_loaded: IntGaugeVec,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("cpwatch")
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let m = Metrics {
            obligations: IntGaugeVec::new(opts("obligations", "Obligations in the last evaluation, by board, rule and status."), &["board", "rule", "status"])?,
            overdue: IntGaugeVec::new(
                opts("overdue_obligations", "Overdue obligations by board and rule, with the agency and its professional group (agency duties) or the team (social care duties) responsible."),
                &["board", "rule", "agency", "professional_group", "team"],
            )?,
            on_time_by_agency: GaugeVec::new(
                opts("on_time_ratio_by_agency", "On-time share of agency duties due in the window, by agency and professional group."),
                &["board", "rule", "agency", "professional_group", "window"],
            )?,
            on_time_by_team: GaugeVec::new(opts("on_time_ratio_by_team", "On-time share of social care duties due in the window, by team."), &["board", "rule", "team", "window"])?,
            on_time_ratio: GaugeVec::new(
                opts("on_time_ratio", "Share of obligations due in the window (30 or 90 days) that were met on time, of those met, met late or overdue."),
                &["board", "rule", "window"],
            )?,
            findings: IntGaugeVec::new(opts("data_quality_findings", "Data-quality findings in the last evaluation, by kind."), &["kind"])?,
            evaluation_seconds: Histogram::with_opts(
                HistogramOpts::new("evaluation_duration_seconds", "Time to load the case state and evaluate it.").namespace("cpwatch").buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            )?,
            last_success: Gauge::with_opts(opts("last_successful_evaluation_timestamp_seconds", "When the last evaluation succeeded (Unix time)."))?,
            last_tick: Gauge::with_opts(opts("last_tick_timestamp_seconds", "When the scheduler last started a tick (Unix time)."))?,
            ticks: IntCounterVec::new(opts("ticks_total", "Evaluation ticks by result."), &["result"])?,
            notifications: IntCounterVec::new(opts("notifications_total", "Notifications by stage and outcome (sent, retry, failed, dropped)."), &["stage", "outcome"])?,
            unresolved: IntGaugeVec::new(opts("unresolved_recipients", "Reminders a rule calls for that have no address in the case data or config, by board and recipient role."), &["board", "recipient"])?,
            database_up: IntGauge::with_opts(opts("database_up", "1 when the last read of the case database succeeded."))?,
            smtp_up: IntGauge::with_opts(opts("smtp_up", "1 when the last attempt to send mail succeeded (or none was due)."))?,
            exports: IntCounterVec::new(opts("exports_total", "Scheduled monthly audit exports, by result (written, failed)."), &["result"])?,
            leader: IntGauge::with_opts(opts("leader", "1 when this replica holds the sender lock: it sends mail and writes the notification log."))?,
            rules_loaded: IntGaugeVec::new(opts("rules_loaded", "Rules in force per board."), &["board"])?,
            registry,
        };
        let build = IntGaugeVec::new(
            opts("build_info", "Build information; always 1."),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        m.registry.register(Box::new(build))?;
        for c in [
            Box::new(m.obligations.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.overdue.clone()),
            Box::new(m.on_time_ratio.clone()),
            Box::new(m.on_time_by_agency.clone()),
            Box::new(m.on_time_by_team.clone()),
            Box::new(m.findings.clone()),
            Box::new(m.evaluation_seconds.clone()),
            Box::new(m.last_success.clone()),
            Box::new(m.last_tick.clone()),
            Box::new(m.ticks.clone()),
            Box::new(m.notifications.clone()),
            Box::new(m.unresolved.clone()),
            Box::new(m.database_up.clone()),
            Box::new(m.smtp_up.clone()),
            Box::new(m.leader.clone()),
            Box::new(m.exports.clone()),
            Box::new(m.rules_loaded.clone()),
        ] {
            m.registry.register(c)?;
        }
        m.smtp_up.set(1);
        // Known label values start at zero, so "none yet" is a 0 rather than a missing series.
        for stage in ["upcoming", "due", "overdue", "escalation"] {
            for outcome in ["sent", "retry", "failed", "dropped"] {
                m.notifications.with_label_values(&[stage, outcome]);
            }
        }
        for result in ["ok", "error"] {
            m.ticks.with_label_values(&[result]);
        }
        for result in ["written", "failed"] {
            m.exports.with_label_values(&[result]);
        }
        Ok(m)
    }

    pub fn rules(&self, rules: &RuleSet) {
        self.rules_loaded.reset();
        for (board, versions) in &rules.boards {
            if let Some(b) = versions.last() {
                self.rules_loaded
                    .with_label_values(&[board.as_str()])
                    .set(b.rules.len() as i64);
            }
        }
    }

    pub fn tick_started(&self, now: Instant) {
        self.last_tick.set(now.timestamp() as f64);
    }

    pub fn tick_finished(&self, ok: bool) {
        self.ticks
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
    }

    /// Updates the gauges from an evaluation; `groups` maps agency ids to professional groups.
    pub fn evaluated(
        &self,
        eval: &Evaluation,
        groups: &HashMap<&str, &str>,
        seconds: f64,
        now: Instant,
    ) {
        self.evaluation_seconds.observe(seconds);
        self.last_success.set(now.timestamp() as f64);
        for v in [
            &self.on_time_ratio,
            &self.on_time_by_agency,
            &self.on_time_by_team,
        ] {
            v.reset();
        }
        self.obligations.reset();
        self.overdue.reset();
        self.findings.reset();
        let mut counts: HashMap<[&str; 3], i64> = HashMap::new();
        let mut overdue: HashMap<[&str; 5], i64> = HashMap::new();
        // (met on time, counted), by labels.
        let mut ratio: HashMap<[&str; 3], (u32, u32)> = HashMap::new();
        let mut by_agency: HashMap<[&str; 5], (u32, u32)> = HashMap::new();
        let mut by_team: HashMap<[&str; 4], (u32, u32)> = HashMap::new();
        for o in &eval.obligations {
            *counts
                .entry([&o.board, &o.rule, o.status.as_str()])
                .or_default() += 1;
            let agency = if o.audit_by == Some(AuditBy::Agency) {
                o.agency.as_deref().unwrap_or("")
            } else {
                ""
            };
            let group = groups.get(agency).copied().unwrap_or("");
            let team = if o.audit_by == Some(AuditBy::Team) {
                o.team.as_deref().unwrap_or("")
            } else {
                ""
            };
            if o.status == Status::Overdue {
                *overdue
                    .entry([&o.board, &o.rule, agency, group, team])
                    .or_default() += 1;
            }
            if o.kind == RuleKind::Notice
                || !matches!(o.status, Status::Met | Status::MetLate | Status::Overdue)
                || o.due_at > now
            {
                continue;
            }
            let met = u32::from(o.status == Status::Met);
            for (window, days) in [("30d", 30), ("90d", 90)] {
                if o.due_at < now - chrono::Duration::days(days) {
                    continue;
                }
                let add = |e: &mut (u32, u32)| {
                    e.0 += met;
                    e.1 += 1;
                };
                add(ratio.entry([&o.board, &o.rule, window]).or_default());
                if !agency.is_empty() {
                    add(by_agency
                        .entry([&o.board, &o.rule, agency, group, window])
                        .or_default());
                }
                if !team.is_empty() {
                    add(by_team
                        .entry([&o.board, &o.rule, team, window])
                        .or_default());
                }
            }
        }
        for (labels, n) in counts {
            self.obligations.with_label_values(&labels).set(n);
        }
        for (labels, n) in overdue {
            self.overdue.with_label_values(&labels).set(n);
        }
        let share = |(met, all): (u32, u32)| f64::from(met) / f64::from(all);
        for (labels, v) in ratio {
            self.on_time_ratio.with_label_values(&labels).set(share(v));
        }
        for (labels, v) in by_agency {
            self.on_time_by_agency
                .with_label_values(&labels)
                .set(share(v));
        }
        for (labels, v) in by_team {
            self.on_time_by_team
                .with_label_values(&labels)
                .set(share(v));
        }
        let mut kinds: HashMap<&str, i64> = HashMap::new();
        for f in &eval.findings {
            *kinds.entry(&f.kind).or_default() += 1;
        }
        for (k, n) in kinds {
            self.findings.with_label_values(&[k]).set(n);
        }
    }

    pub fn export(&self, result: &str) {
        self.exports.with_label_values(&[result]).inc();
    }

    pub fn notification(&self, stage: &str, outcome: &str, n: u64) {
        self.notifications
            .with_label_values(&[stage, outcome])
            .inc_by(n);
    }

    pub fn unresolved(&self, counts: &HashMap<(String, String), i64>) {
        self.unresolved.reset();
        for ((board, role), n) in counts {
            self.unresolved
                .with_label_values(&[board.as_str(), role.as_str()])
                .set(*n);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "encoding metrics");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}
