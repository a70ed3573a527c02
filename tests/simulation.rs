//! Three months of the demo authority, hour by hour: the service as it runs,
//! on an injected clock, with the case data loaded each night as a case
//! system would have held it, sending through a real SMTP server on
//! loopback. Counts what people receive.
#![allow(clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{Duration, Timelike};
use common::history::as_of;
use common::*;
use cpwatch::domain::case::Instant;
use cpwatch::domain::engine::Engine;
use cpwatch::service::clock::ManualClock;
use cpwatch::service::config::Config;
use cpwatch::service::daemon::{Daemon, Settings};
use cpwatch::service::notify::SmtpTransport;

/// The service's defaults, with each board's contacts and a plaintext relay on loopback.
fn config(url: &str, port: u16) -> Config {
    let mut c = service_config();
    c.database_url = url.into();
    // The case data changes once a night: one full read a day, then only
    // what changed. A simulated hour passes in a few real milliseconds, so
    // the overlap for late commits (real seconds) would reread the whole
    // night's load at every tick.
    c.schedule.full_every_seconds = 86_400;
    c.schedule.updated_at_overlap_seconds = 0;
    plaintext_loopback(&mut c, port);
    c
}

/// Over 13 weeks of the demo authority (ticks every hour, the case data
/// reloaded each night at 06:00): nobody gets more than one digest a day
/// (the weekly summary is part of it), nothing goes at a weekend, every
/// item was about a duty still open when it went (none lapsed: a report
/// after its conference, a standard already judged), every resolved notice
/// about one no longer open, and every message logged as sent arrived.
/// Prints the figures the README states.
#[tokio::test(flavor = "multi_thread")]
async fn thirteen_weeks_of_the_demo_authority_hour_by_hour() {
    let server = SmtpServer::start_on(free_port());
    let start = t("2026-09-01T00:00:00Z");
    let end = start + Duration::weeks(13);
    let holidays = holidays();
    let history = cpwatch::synthetic::demo::generate(1, 300, end, &holidays).expect("demo");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("cases.db").display());
    let store = cpwatch::store::connect(&url, true).await.expect("sqlite");
    store.migrate(false).await.expect("migrate");
    store
        .replace_case_data(&as_of(&history, start))
        .await
        .expect("load");
    let c = config(&url, server.port);
    let smtp = SmtpTransport::new(&c.mail.smtp, None).expect("transport");
    let engine = Engine::load(None, None, None, "working-together-2010").expect("engine");
    let clock = Arc::new(ManualClock::new(start));
    let d = Daemon::new(
        Settings::new(c, engine, Box::new(smtp)).expect("settings"),
        store,
        clock.clone(),
    )
    .expect("daemon");
    // The instant of each nightly load, by day.
    let mut loads: BTreeMap<chrono::NaiveDate, Instant> = BTreeMap::new();
    loads.insert(start.date_naive(), start);
    let mut now = start;
    while now < end {
        if now.hour() == 6 {
            d.store()
                .replace_case_data(&as_of(&history, now))
                .await
                .expect("nightly load");
            loads.insert(now.date_naive(), now);
        }
        let r = d.run_once().await.expect("tick");
        assert_eq!(
            (r.delivery.failed, r.delivery.retried),
            (0, 0),
            "{now}: {r:?}"
        );
        now += Duration::hours(1);
        clock.set(now);
    }

    let sent = d.store().log_rows(Some("sent")).await.expect("log");
    let cal = Engine::load(None, None, None, "working-together-2010")
        .expect("engine")
        .default_calendar(chrono_tz::Europe::London)
        .expect("calendar");
    // Messages by Message-ID: recipient, local day, whether a digest.
    let mut messages: BTreeMap<&str, (&str, chrono::NaiveDate, bool)> = BTreeMap::new();
    for r in &sent {
        let day = cal.local_date(r.sent_at.expect("sent_at"));
        let e = messages
            .entry(r.message_id.as_deref().expect("message id"))
            .or_insert((&r.recipient, day, false));
        e.2 |= r.stage != "overdue";
    }
    let received = server.received();
    assert_eq!(received.len(), messages.len(), "every message sent arrived");
    let mut digests: BTreeMap<(&str, chrono::NaiveDate), usize> = BTreeMap::new();
    for (who, day, digest) in messages.values() {
        assert!(cal.is_working_day(*day).expect("day"), "{who} on {day}");
        if *digest {
            *digests.entry((who, *day)).or_default() += 1;
        }
    }
    let most = digests.iter().max_by_key(|(_, n)| **n).expect("digests");
    assert_eq!(*most.1, 1, "at most one digest a day: {most:?}");

    // Each item against the evaluation of that tick's case data at that instant.
    let engine = Engine::load(None, None, None, "working-together-2010").expect("engine");
    let mut by_tick: BTreeMap<Instant, Vec<&cpwatch::store::LogRow>> = BTreeMap::new();
    for r in &sent {
        by_tick
            .entry(r.sent_at.expect("sent_at"))
            .or_default()
            .push(r);
    }
    let (mut items, mut open_items, mut resolved) = (0usize, 0usize, 0usize);
    for (at, rows) in &by_tick {
        let load = loads
            .range(..=at.date_naive())
            .next_back()
            .map(|(_, l)| *l)
            .expect("a load");
        let state = as_of(&history, load);
        let mut scratch = cpwatch::domain::evaluate::Scratch::default();
        let eval = engine.evaluate(&state, &mut scratch, *at);
        let status: HashMap<String, cpwatch::domain::evaluate::Status> = eval
            .obligations
            .iter()
            .map(|o| (o.key(), o.status))
            .collect();
        for r in rows {
            let s = status.get(&r.obligation_key).copied();
            if r.stage == "resolved" {
                resolved += 1;
                assert!(s.is_none_or(|s| !still_open(s)), "{at}: {r:?} is {s:?}");
            } else {
                items += 1;
                let open = s.is_some_and(still_open);
                assert!(open, "{at}: an item about a duty that is {s:?}: {r:?}");
                open_items += usize::from(open);
            }
        }
    }

    let recipients: BTreeSet<&str> = messages.values().map(|m| m.0).collect();
    let weeks = 13.0;
    let per_week: Vec<f64> = recipients
        .iter()
        .map(|who| messages.values().filter(|m| m.0 == *who).count() as f64 / weeks)
        .collect();
    let mean = per_week.iter().sum::<f64>() / per_week.len() as f64;
    let max = per_week.iter().copied().fold(0.0, f64::max);
    let mut stages: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &sent {
        *stages.entry(&r.stage).or_default() += 1;
    }
    eprintln!(
        "13 weeks from {}: {} messages to {} recipients; per recipient per week mean {mean:.1}, most {max:.1}; \
         most digests to one recipient in a day {}; {items} items, {open_items} about a duty still open ({:.0}%); \
         {resolved} resolved notices; by stage {stages:?}",
        start.date_naive(),
        messages.len(),
        recipients.len(),
        most.1,
        100.0 * open_items as f64 / items.max(1) as f64,
    );
    assert!(
        items > 500 && resolved > 0,
        "a simulation that sends: {stages:?}"
    );
}

/// The whole history is the state, and nothing later than an instant is known at it.
#[test]
fn the_history_as_it_stood() {
    let end = t("2026-12-01T09:00:00Z");
    let s = cpwatch::synthetic::demo::generate(3, 120, end, &holidays()).expect("demo");
    let whole = as_of(&s, end + Duration::days(3650));
    assert_eq!(format!("{:?}", whole.children), format!("{:?}", s.children));
    assert_eq!(
        format!("{:?}", whole.conferences),
        format!("{:?}", s.conferences)
    );
    assert_eq!(
        format!("{:?}", whole.invitations),
        format!("{:?}", s.invitations)
    );
    let at = t("2026-10-01T12:00:00Z");
    let then = as_of(&s, at);
    assert!(then.children.len() < s.children.len());
    assert!(then.referrals.iter().all(|r| r.received_at <= at));
    assert!(then
        .conferences
        .iter()
        .all(|c| c.held_at.is_none_or(|h| h <= at)
            && c.minutes_circulated_at.is_none_or(|m| m <= at)));
    assert!(then
        .invitations
        .iter()
        .all(|i| i.report_received_at.is_none_or(|r| r <= at)));
    assert!(then
        .conferences
        .iter()
        .any(|c| c.status == "scheduled" && c.scheduled_at.is_some_and(|x| x > at)));
}
