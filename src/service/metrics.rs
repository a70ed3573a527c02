//! Prometheus metrics: what the last evaluation saw, how ticks and
//! notifications went, and the health of the database and mail relay.
//! Labels carry boards, rules, statuses, agencies and teams — never a child,
//! case, conference or person.

use std::collections::HashMap;

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::domain::case::Instant;
use crate::domain::evaluate::{Draft, Finding, Name, Obligation, Status};
use crate::domain::rules::{AuditBy, RuleKind, RuleSet};

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
    evaluations: IntCounterVec,
    notifications: IntCounterVec,
    unresolved: IntGaugeVec,
    pub database_up: IntGauge,
    pub smtp_up: IntGauge,
    pub notifications_failed: IntGauge,
    pub snoozes_active: IntGauge,
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
                opts("on_time_ratio", "Share of obligations due in the window (30 or 90 days) that were met on time, of those met, met late, overdue or missed."),
                &["board", "rule", "window"],
            )?,
            findings: IntGaugeVec::new(opts("data_quality_findings", "Data-quality findings in the last evaluation, by kind."), &["kind"])?,
            evaluation_seconds: Histogram::with_opts(
                HistogramOpts::new("evaluation_duration_seconds", "Time to load the case state and evaluate it.").namespace("cpwatch").buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            )?,
            last_success: Gauge::with_opts(opts("last_successful_evaluation_timestamp_seconds", "When the last evaluation succeeded (Unix time)."))?,
            last_tick: Gauge::with_opts(opts("last_tick_timestamp_seconds", "When the scheduler last started a tick (Unix time)."))?,
            ticks: IntCounterVec::new(opts("ticks_total", "Evaluation ticks by result."), &["result"])?,
            evaluations: IntCounterVec::new(opts("evaluations_total", "Successful evaluations by scope: full (everything read and evaluated) or incremental (only what changed)."), &["scope"])?,
            notifications: IntCounterVec::new(opts("notifications_total", "Notifications by stage and outcome (sent, retry, failed, dropped)."), &["stage", "outcome"])?,
            unresolved: IntGaugeVec::new(opts("unresolved_recipients", "Reminders a rule calls for that have no address in the case data or config, by board and recipient role."), &["board", "recipient"])?,
            database_up: IntGauge::with_opts(opts("database_up", "1 when the last read of the case database succeeded."))?,
            smtp_up: IntGauge::with_opts(opts("smtp_up", "1 when the relay last accepted mail (or none was due); 0 while it refuses every recipient or does not answer."))?,
            notifications_failed: IntGauge::with_opts(opts("notifications_failed", "Notifications in the log that failed permanently and will not be retried unless requeued (`cpwatch notifications requeue`)."))?,
            snoozes_active: IntGauge::with_opts(opts("snoozes_active", "Snoozes in force (`cpwatch snooze list`): reminders stopped by agreement; their duties still count as late."))?,
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
            Box::new(m.evaluations.clone()),
            Box::new(m.notifications.clone()),
            Box::new(m.unresolved.clone()),
            Box::new(m.database_up.clone()),
            Box::new(m.smtp_up.clone()),
            Box::new(m.notifications_failed.clone()),
            Box::new(m.snoozes_active.clone()),
            Box::new(m.leader.clone()),
            Box::new(m.exports.clone()),
            Box::new(m.rules_loaded.clone()),
        ] {
            m.registry.register(c)?;
        }
        m.smtp_up.set(1);
        // Known label values start at zero, so "none yet" is a 0 rather than a missing series.
        for stage in [
            "upcoming",
            "due",
            "overdue",
            "escalation",
            "summary",
            "resolved",
        ] {
            for outcome in ["sent", "retry", "failed", "dropped"] {
                m.notifications.with_label_values(&[stage, outcome]);
            }
        }
        for result in ["ok", "error"] {
            m.ticks.with_label_values(&[result]);
        }
        for scope in ["full", "incremental"] {
            m.evaluations.with_label_values(&[scope]);
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

    /// Updates the gauges from a tally of an evaluation and its findings.
    pub fn evaluated(&self, tally: &Tally, findings: &[Finding], seconds: f64, now: Instant) {
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
        for (k, n) in &tally.counts {
            self.obligations
                .with_label_values(&[&*k.board, &*k.rule, k.label])
                .set(*n);
        }
        for (k, n) in &tally.overdue {
            self.overdue
                .with_label_values(&[&*k.board, &*k.rule, &*k.agency, &*k.group, &*k.team])
                .set(*n);
        }
        let share = |&(met, all): &OnTime| met as f64 / all as f64;
        for (k, v) in &tally.ratio {
            self.on_time_ratio
                .with_label_values(&[&*k.board, &*k.rule, k.label])
                .set(share(v));
        }
        for (k, v) in &tally.by_agency {
            self.on_time_by_agency
                .with_label_values(&[&*k.board, &*k.rule, &*k.agency, &*k.group, k.label])
                .set(share(v));
        }
        for (k, v) in &tally.by_team {
            self.on_time_by_team
                .with_label_values(&[&*k.board, &*k.rule, &*k.team, k.label])
                .set(share(v));
        }
        let mut kinds: HashMap<&str, i64> = HashMap::new();
        for f in findings {
            *kinds.entry(&f.kind).or_default() += 1;
        }
        for (k, n) in kinds {
            self.findings.with_label_values(&[k]).set(n);
        }
    }

    pub fn evaluation(&self, scope: &str) {
        self.evaluations.with_label_values(&[scope]).inc();
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

/// The metrics' figures, counted one obligation at a time so the service need
/// not keep every obligation of an evaluation; an incremental tick takes out
/// what the children it re-evaluates counted before and adds what they count
/// now. Labels share the obligations' names; `groups` maps agency ids to
/// professional groups.
#[derive(Debug, Clone, PartialEq)]
pub struct Tally {
    groups: Map<Name, Name>,
    now: Instant,
    /// Where each of `WINDOWS` starts: worked out once, not for every obligation.
    window_starts: [Instant; WINDOWS.len()],
    empty: Name,
    pub total: usize,
    /// By board, rule and status.
    counts: Map<Labels, i64>,
    /// By board, rule, agency, professional group and team.
    overdue: Map<Labels, i64>,
    /// By board, rule and window.
    ratio: Map<Labels, OnTime>,
    /// By board, rule, agency, professional group and window.
    by_agency: Map<Labels, OnTime>,
    /// By board, rule, team and window.
    by_team: Map<Labels, OnTime>,
}

/// A kind of obligation as the tally tells them apart: its rule, agency and
/// team by address, how it is audited, its status and where its deadline
/// falls (`Tally::class`).
type Kind = (usize, usize, usize, Option<AuditBy>, Status, u8);

/// Obligations counted by kind before they reach a tally: a full tick counts
/// millions, and hashing three addresses is cheaper than finding up to seven
/// series by their names' text. Each kind holds its first obligation, so an
/// address names one string for as long as the batch lasts.
#[derive(Default)]
pub struct Batch {
    /// Each kind's first obligation, and how many of the kind were counted.
    kinds: rustc_hash::FxHashMap<Kind, (Obligation, i64)>,
}

impl Batch {
    /// Counts an obligation, as `tally` will (its instant and windows).
    pub fn add(&mut self, tally: &Tally, o: &Draft<'_>) {
        let at = |n: Option<&Name>| n.map_or(0, |n| n.as_ptr() as usize);
        let kind = (
            std::sync::Arc::as_ptr(o.of) as usize,
            at(o.agency),
            at(o.team),
            o.audit_by,
            o.status,
            tally.class(o.due_at),
        );
        self.kinds.entry(kind).or_insert_with(|| (o.owned(), 0)).1 += 1;
    }
}

/// Tally's maps: keyed by shared names, hashed for every obligation counted.
type Map<K, V> = hashbrown::HashMap<K, V, rustc_hash::FxBuildHasher>;

/// (met on time, counted).
type OnTime = (i64, i64);

/// One series' labels: the names it counts under (empty where its metric has
/// no such label) and a status or window (empty for overdue counts).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Labels {
    board: Name,
    rule: Name,
    /// `RuleRef::names_hash` of the board and rule.
    names_hash: u64,
    agency: Name,
    group: Name,
    team: Name,
    label: &'static str,
}

/// The same labels borrowed from an obligation: a series is found without
/// cloning its names (an atomic increment and decrement each, for millions
/// of obligations), which are cloned only for a series not yet counted.
struct LabelsRef<'a> {
    board: &'a Name,
    rule: &'a Name,
    names_hash: u64,
    agency: &'a Name,
    group: &'a Name,
    team: &'a Name,
    label: &'static str,
}

// Both hash alike: the board and rule by the hash of their names made once
// per rule (`names_hash`), the rest by their text.
impl std::hash::Hash for Labels {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.borrowed().hash(h)
    }
}

impl std::hash::Hash for LabelsRef<'_> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u64(self.names_hash);
        (&**self.agency, &**self.group, &**self.team, self.label).hash(h)
    }
}

impl hashbrown::Equivalent<Labels> for LabelsRef<'_> {
    fn equivalent(&self, k: &Labels) -> bool {
        // Names are shared, so the series found is mostly the same allocations: pointers first.
        fn same(a: &Name, b: &Name) -> bool {
            Name::ptr_eq(a, b) || a == b
        }
        self.label == k.label
            && same(self.rule, &k.rule)
            && same(self.board, &k.board)
            && same(self.agency, &k.agency)
            && same(self.group, &k.group)
            && same(self.team, &k.team)
    }
}

impl LabelsRef<'_> {
    fn owned(&self) -> Labels {
        Labels {
            board: self.board.clone(),
            rule: self.rule.clone(),
            names_hash: self.names_hash,
            agency: self.agency.clone(),
            group: self.group.clone(),
            team: self.team.clone(),
            label: self.label,
        }
    }
}

impl Labels {
    fn borrowed(&self) -> LabelsRef<'_> {
        LabelsRef {
            board: &self.board,
            rule: &self.rule,
            names_hash: self.names_hash,
            agency: &self.agency,
            group: &self.group,
            team: &self.team,
            label: self.label,
        }
    }
}

/// Adds `by` to a count, dropping it at zero so a series nothing counts any
/// more disappears as it would from a fresh tally.
fn bump(map: &mut Map<Labels, i64>, key: LabelsRef, by: i64) {
    match map.get_mut(&key) {
        Some(n) => {
            *n += by;
            if *n == 0 {
                map.remove(&key);
            }
        }
        None => {
            map.insert(key.owned(), by);
        }
    }
}

fn add_on_time(map: &mut Map<Labels, OnTime>, key: LabelsRef, (met, counted): OnTime) {
    match map.get_mut(&key) {
        Some(v) => {
            v.0 += met;
            v.1 += counted;
            if v.1 == 0 {
                map.remove(&key);
            }
        }
        None => {
            map.insert(key.owned(), (met, counted));
        }
    }
}

/// The on-time windows: obligations due in the last 30 and 90 days.
pub const WINDOWS: [(&str, i64); 2] = [("30d", 30), ("90d", 90)];

/// The instants the on-time windows ending at `now` start at.
fn window_starts(now: Instant) -> [Instant; WINDOWS.len()] {
    WINDOWS.map(|(_, days)| now - chrono::Duration::days(days))
}

impl Tally {
    pub fn new(agencies: &[crate::domain::case::Agency], now: Instant) -> Self {
        Tally {
            groups: agencies
                .iter()
                .map(|a| (a.id.shared(), a.professional_group.shared()))
                .collect(),
            now,
            window_starts: window_starts(now),
            empty: Name::from(""),
            total: 0,
            counts: Map::default(),
            overdue: Map::default(),
            ratio: Map::default(),
            by_agency: Map::default(),
            by_team: Map::default(),
        }
    }

    /// The instant the on-time windows end at, for what is counted next.
    pub fn set_now(&mut self, now: Instant) {
        self.now = now;
        self.window_starts = window_starts(now);
    }

    pub fn add(&mut self, o: &Draft<'_>) {
        self.count(o, 1);
    }

    /// Adds what another tally at the same instant counted (a worker's share
    /// of one evaluation).
    pub fn merge(&mut self, other: Tally) {
        self.total += other.total;
        for (k, n) in &other.counts {
            bump(&mut self.counts, k.borrowed(), *n);
        }
        for (k, n) in &other.overdue {
            bump(&mut self.overdue, k.borrowed(), *n);
        }
        for (k, v) in &other.ratio {
            add_on_time(&mut self.ratio, k.borrowed(), *v);
        }
        for (k, v) in &other.by_agency {
            add_on_time(&mut self.by_agency, k.borrowed(), *v);
        }
        for (k, v) in &other.by_team {
            add_on_time(&mut self.by_team, k.borrowed(), *v);
        }
    }

    /// Takes out an obligation added before (at the same instant).
    pub fn remove(&mut self, o: &Draft<'_>) {
        self.count(o, -1);
    }

    /// Counts an obligation `by` times (-1 takes one out).
    fn count(&mut self, o: &Draft<'_>, by: i64) {
        let class = self.class(o.due_at);
        let by_size = isize::try_from(by).unwrap_or(if by < 0 { isize::MIN } else { isize::MAX });
        self.total = self.total.saturating_add_signed(by_size);
        let empty = &self.empty;
        let agency = match (o.agency, o.audit_by) {
            (Some(a), Some(AuditBy::Agency)) => a,
            _ => empty,
        };
        let group = self.groups.get(&**agency).unwrap_or(empty);
        let team = match (o.team, o.audit_by) {
            (Some(t), Some(AuditBy::Team)) => t,
            _ => empty,
        };
        let labels = |label| LabelsRef {
            board: &o.of.board,
            rule: &o.of.rule,
            names_hash: o.of.names_hash,
            agency: empty,
            group: empty,
            team: empty,
            label,
        };
        bump(&mut self.counts, labels(o.status.as_str()), by);
        if o.status == Status::Overdue {
            let key = LabelsRef {
                agency,
                group,
                team,
                ..labels("")
            };
            bump(&mut self.overdue, key, by);
        }
        if o.of.kind == RuleKind::Notice
            || !matches!(
                o.status,
                Status::Met | Status::MetLate | Status::Overdue | Status::Missed
            )
            || class & 1 != 0
        {
            return;
        }
        let on_time = (i64::from(o.status == Status::Met) * by, by);
        for (i, (window, _)) in WINDOWS.iter().enumerate() {
            if class & (2 << i) == 0 {
                continue;
            }
            add_on_time(&mut self.ratio, labels(window), on_time);
            if !agency.is_empty() {
                let key = LabelsRef {
                    agency,
                    group,
                    ..labels(window)
                };
                add_on_time(&mut self.by_agency, key, on_time);
            }
            if !team.is_empty() {
                let key = LabelsRef {
                    team,
                    ..labels(window)
                };
                add_on_time(&mut self.by_team, key, on_time);
            }
        }
    }

    /// Where a deadline falls for the counts: bit 0 after `now`, bit 1 + i
    /// in on-time window i.
    fn class(&self, due: Instant) -> u8 {
        let mut class = u8::from(due > self.now);
        for (i, start) in self.window_starts.iter().enumerate() {
            if due >= *start {
                class |= 2 << i;
            }
        }
        class
    }

    /// Counts what `batch` gathered: each kind once, by its first obligation.
    pub fn count_batch(&mut self, batch: Batch) {
        for (first, n) in batch.kinds.into_values() {
            self.count(&first.draft(), n);
        }
    }

    /// The boards that had obligations.
    pub fn boards(&self) -> std::collections::BTreeSet<&str> {
        self.counts.keys().map(|k| &*k.board).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::evaluate::{Occurrence, RuleRef};
    use crate::domain::rules::Event;
    use chrono::{Duration, TimeZone, Utc};

    fn due(at: Instant, rule: &std::sync::Arc<RuleRef>, status: Status) -> Obligation {
        Obligation {
            of: rule.clone(),
            child: Some(Name::from("REF-1")),
            child_id: Some(Name::from("C1")),
            conference: None,
            // One string each for every obligation, as evaluation shares names:
            // the batch tells kinds apart by the names' addresses.
            agency: Some(arcstr::literal!("AG1")),
            team: Some(arcstr::literal!("T1")),
            occurrence: Occurrence::new(None, None),
            starts_at: at - Duration::days(10),
            due_at: at,
            met_at: Some(at),
            status,
            late_working_days: None,
            exception_reason: None,
            audit_by: Some(AuditBy::Agency),
            start_event: Event::ConferenceHeldAt,
            offset: None,
            capped_by: None,
        }
    }

    /// The on-time windows end at `now` and start 30 and 90 days before it,
    /// both ends counted; a batch counts what the tally counts one by one,
    /// several obligations of a kind included.
    #[test]
    fn windows_count_from_their_first_instant_to_now_and_batches_count_alike() {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 23, 9, 0, 0)
            .single()
            .expect("instant");
        let rule = std::sync::Arc::new(RuleRef::new(
            "r".into(),
            "R".into(),
            RuleKind::Deadline,
            "b".into(),
            "1".into(),
        ));
        let second = Duration::seconds(1);
        let obligations = [
            due(now, &rule, Status::Met),
            due(now + second, &rule, Status::Met),
            due(now - Duration::days(30), &rule, Status::Met),
            due(now - Duration::days(30) - second, &rule, Status::MetLate),
            due(now - Duration::days(90), &rule, Status::Overdue),
            due(now - Duration::days(90) - second, &rule, Status::Met),
            // Five of one kind, with one of another among them.
            due(now - Duration::days(10), &rule, Status::Met),
            due(now - Duration::days(11), &rule, Status::Met),
            due(now - Duration::days(12), &rule, Status::Met),
            due(now - Duration::days(100), &rule, Status::Met),
            due(now - Duration::days(13), &rule, Status::Met),
            due(now - Duration::days(14), &rule, Status::Met),
        ];
        let mut one_by_one = Tally::new(&[], now);
        let mut batch = Batch::default();
        for o in &obligations {
            one_by_one.add(&o.draft());
            batch.add(&one_by_one, &o.draft());
        }
        let window = |label| {
            one_by_one
                .ratio
                .iter()
                .find(|(k, _)| k.label == label)
                .map(|(_, v)| *v)
        };
        // 30d: due now, due exactly 30 days ago and the five due 10 to 14 days ago, all met on time.
        assert_eq!(window("30d"), Some((7, 7)));
        // 90d: those, the one met late and the one overdue since exactly 90 days ago.
        assert_eq!(window("90d"), Some((7, 9)));
        let mut batched = Tally::new(&[], now);
        batched.count_batch(batch);
        assert!(batched == one_by_one, "{batched:#?}\n{one_by_one:#?}");
        assert_eq!(batched.total, obligations.len());
    }
}
