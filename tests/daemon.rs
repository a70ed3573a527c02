//! The service: reminder stages and recipients, the send window and digest,
//! the notification log (once only, nothing lost, dropped when met), real SMTP
//! over TCP to a server on loopback, metrics, and the HTTP endpoints — all on
//! a controllable clock.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod common;

use common::http_get;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Duration;
use common::*;
use cpwatch::domain::case::CaseState;
use cpwatch::domain::engine::Engine;
use cpwatch::domain::snooze::{Scope, Snooze};
use cpwatch::service::clock::ManualClock;
use cpwatch::service::config::{Config, TlsMode};
use cpwatch::service::daemon::{Daemon, Settings};
use cpwatch::service::notify::{self, FileTransport, SmtpTransport, Stage, Transport};
use cpwatch::store::LogRow;

fn config() -> Config {
    let mut c = service_config();
    c.schedule.digest_at = "09:00".into();
    c.reminders.send_window = "08:00-18:00".into();
    c
}

/// A daemon on the given case data whose reminders go to .eml files in the returned directory.
async fn daemon_to_outbox(
    state: &CaseState,
    clock: Arc<ManualClock>,
    tweak: impl FnOnce(&mut Config),
) -> (Daemon, tempfile::TempDir, tempfile::TempDir) {
    let out = tempfile::tempdir().expect("outbox");
    let (d, db) = daemon(
        state,
        clock,
        Box::new(FileTransport {
            dir: out.path().into(),
        }),
        tweak,
    )
    .await;
    (d, db, out)
}

fn engine() -> Engine {
    Engine::load(None, None, None, "working-together-2010").expect("engine")
}

async fn daemon(
    state: &CaseState,
    clock: Arc<ManualClock>,
    transport: Box<dyn Transport>,
    tweak: impl FnOnce(&mut Config),
) -> (Daemon, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("cases.db").display());
    let store = cpwatch::store::connect(&url, true).await.expect("sqlite");
    store.migrate(false).await.expect("migrate");
    store.replace_case_data(state).await.expect("write");
    drop(store);
    (daemon_on(&url, clock, transport, tweak).await, dir)
}

/// A daemon on an existing database: the service started (or restarted) on it.
async fn daemon_on(
    url: &str,
    clock: Arc<ManualClock>,
    transport: Box<dyn Transport>,
    tweak: impl FnOnce(&mut Config),
) -> Daemon {
    let store = cpwatch::store::connect(url, false).await.expect("sqlite");
    store.migrate(false).await.expect("migrate");
    let mut c = config();
    c.database_url = url.into();
    tweak(&mut c);
    Daemon::new(
        Settings::new(c, engine(), transport).expect("settings"),
        store,
        clock,
    )
    .expect("daemon")
}

/// The canonical case with the minutes of CONF-1 never circulated: Barnsley's
/// 15 working days from Wednesday 13 January 2027 end on Wednesday 3 February.
fn minutes_missing() -> CaseState {
    let mut s = fixture("barnsley");
    conf_mut(&mut s, "CONF-1").minutes_circulated_at = None;
    s
}

fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn minutes_rows(rows: &[LogRow]) -> Vec<&LogRow> {
    rows.iter()
        .filter(|r| r.rule == "minutes-circulated" && r.obligation_key.contains("CONF-1"))
        .collect()
}

#[test]
fn stages_and_recipients_follow_the_rule() {
    let s = minutes_missing();
    let rules = built_in_rules();
    let holidays = holidays();
    let c = config();
    let ctx = notify::Context {
        snoozes: &Default::default(),
        state: &s,
        rules: &rules,
        holidays: &holidays,
        config: &c,
    };
    let stage_at = |at: &str| {
        let e = eval(&s, at);
        let (planned, _) = notify::plan(&e.borrowed(), &ctx, t(at));
        planned
            .into_iter()
            .filter(|p| p.item.rule == "minutes-circulated" && p.obligation_key.contains("CONF-1"))
            .map(|p| (p.stage, p.recipient, p.occurrence))
            .collect::<Vec<_>>()
    };
    // Three working days before (Monday 1 February): upcoming, to the conference service; then due,
    // overdue, and from two working days overdue escalated to the safeguarding manager, again every five.
    for (at, stage, to, occurrence) in [
        (
            "2027-02-01T10:00:00Z",
            Stage::Upcoming,
            "cs@barnsley.test",
            0,
        ),
        ("2027-02-03T10:00:00Z", Stage::Due, "cs@barnsley.test", 0),
        (
            "2027-02-04T10:00:00Z",
            Stage::Overdue,
            "cs@barnsley.test",
            0,
        ),
        (
            "2027-02-05T10:00:00Z",
            Stage::Escalation,
            "sm@barnsley.test",
            0,
        ),
        (
            "2027-02-11T10:00:00Z",
            Stage::Escalation,
            "sm@barnsley.test",
            0,
        ),
        (
            "2027-02-12T10:00:00Z",
            Stage::Escalation,
            "sm@barnsley.test",
            1,
        ),
    ] {
        assert_eq!(
            stage_at(at),
            vec![(stage, to.to_string(), occurrence)],
            "{at}"
        );
    }
    // Nothing for a met obligation.
    assert!(stage_at("2027-01-20T10:00:00Z").is_empty());

    // An agency's report: the invitation's own address comes before the agency's.
    let mut s = fixture("barnsley");
    let inv = inv_mut(&mut s, "CONF-1", "AG-POL");
    inv.report_received_at = None;
    inv.email = Some("pol.duty@police.test".into());
    let e = eval(&s, "2027-01-11T09:00:00Z");
    let ctx = notify::Context {
        snoozes: &Default::default(),
        state: &s,
        rules: &rules,
        holidays: &holidays,
        config: &c,
    };
    let (planned, _) = notify::plan(&e.borrowed(), &ctx, t("2027-01-11T09:00:00Z"));
    let report: Vec<_> = planned
        .iter()
        .filter(|p| p.item.rule == "report-to-unit" && p.item.agency.as_deref() == Some("AG-POL"))
        .collect();
    assert_eq!(report.len(), 1);
    assert_eq!(
        (report[0].stage, report[0].recipient.as_str()),
        (Stage::Due, "pol.duty@police.test")
    );
    assert_eq!(
        report[0].item.deadline,
        "by 23:59 on Mon 11 Jan 2027, today"
    );

    // A role with no address is reported, not guessed.
    let mut c2 = config();
    c2.boards.clear();
    let ctx = notify::Context {
        snoozes: &Default::default(),
        state: &s,
        rules: &rules,
        holidays: &holidays,
        config: &c2,
    };
    let (_, unresolved) = notify::plan(
        &eval(&minutes_missing(), "2027-02-01T10:00:00Z").borrowed(),
        &ctx,
        t("2027-02-01T10:00:00Z"),
    );
    assert!(unresolved
        .iter()
        .any(|u| u.recipient == "conference_service"));
}

#[tokio::test]
async fn quiet_hours_the_digest_and_once_only() {
    let clock = Arc::new(ManualClock::new(t("2027-02-03T07:00:00Z")));
    let (d, _db, out) = daemon_to_outbox(&minutes_missing(), clock.clone(), |_| {}).await;
    // 07:00: before the send window. Recorded, not sent.
    let r = d.run_once().await.expect("tick");
    assert!(
        r.delivery.recorded > 0 && r.delivery.sent == 0 && r.delivery.waiting > 0,
        "{r:?}"
    );
    let rows = d.store().log_rows(None).await.expect("log");
    assert_eq!(minutes_rows(&rows)[0].status, "pending");
    // 08:30: the window is open but the digest (09:00) is not: a "due" reminder waits.
    clock.set(t("2027-02-03T08:30:00Z"));
    d.run_once().await.expect("tick");
    assert_eq!(
        minutes_rows(&d.store().log_rows(None).await.expect("log"))[0].status,
        "pending"
    );
    // 09:30: it goes, once.
    clock.set(t("2027-02-03T09:30:00Z"));
    let r = d.run_once().await.expect("tick");
    assert!(r.delivery.sent > 0, "{r:?}");
    let rows = d.store().log_rows(None).await.expect("log");
    let m = minutes_rows(&rows);
    assert_eq!((m[0].status.as_str(), m[0].stage.as_str()), ("sent", "due"));
    let files = eml_files(out.path());
    let sent_before = files.len();
    let mail = std::fs::read_to_string(
        files
            .iter()
            .find(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains("To: cs@barnsley.test")))
            .expect("a message to the conference service"),
    )
    .expect("read");
    assert!(mail.contains("Subject: Due today"), "{mail}");
    let text = plain_text(&mail);
    assert!(
        text.contains("Minutes distributed within 15 working days")
            && text.contains("by 23:59 on Wed 3 Feb 2027, today"),
        "{text}"
    );
    assert!(mail.contains(&format!(
        "Message-ID: {}",
        m[0].message_id.clone().expect("message id")
    )));
    clock.set(t("2027-02-03T10:30:00Z"));
    let r = d.run_once().await.expect("tick");
    assert_eq!(r.delivery.sent, 0, "nothing twice: {r:?}");
    assert_eq!(eml_files(out.path()).len(), sent_before);
}

#[tokio::test]
async fn weekends_wait_and_a_reminder_met_before_it_goes_is_dropped() {
    // Saturday 6 February 2027: the minutes are escalated (2 working days overdue), but not at a weekend.
    let clock = Arc::new(ManualClock::new(t("2027-02-06T10:00:00Z")));
    let (d, _db, out) = daemon_to_outbox(&minutes_missing(), clock.clone(), |_| {}).await;
    let r = d.run_once().await.expect("tick");
    assert_eq!(r.delivery.sent, 0, "{r:?}");
    let pending: Vec<LogRow> = d.store().log_rows(Some("pending")).await.expect("log");
    assert!(pending
        .iter()
        .any(|r| r.rule == "minutes-circulated" && r.stage == "escalation"));
    // The minutes go out on Sunday; by Monday's tick the escalation is no longer wanted.
    let mut s = minutes_missing();
    conf_mut(&mut s, "CONF-1").minutes_circulated_at = Some(t("2027-02-07T12:00:00Z"));
    d.store().replace_case_data(&s).await.expect("update");
    clock.set(t("2027-02-08T10:00:00Z"));
    let r = d.run_once().await.expect("tick");
    assert!(r.delivery.dropped > 0, "{r:?}");
    let rows = d.store().log_rows(None).await.expect("log");
    let m = minutes_rows(&rows);
    assert!(m.iter().all(|r| r.status == "dropped"), "{m:?}");
    assert!(eml_files(out.path())
        .iter()
        .all(|f| !std::fs::read_to_string(f)
            .unwrap_or_default()
            .contains("Minutes distributed")));
}

/// Ticks every hour across a clock change: every notification goes once, in the window, on a working day.
async fn hourly_across(from: &str, hours: i64) {
    let start = t(from);
    let state = cpwatch::synthetic::demo::generate(11, 60, start, &holidays()).expect("demo");
    let clock = Arc::new(ManualClock::new(start));
    let (d, _db, out) = daemon_to_outbox(&state, clock.clone(), |_| {}).await;
    let mut sent = 0;
    for _ in 0..hours {
        sent += d.run_once().await.expect("tick").delivery.sent;
        clock.advance(Duration::hours(1));
    }
    assert!(sent > 0);
    let rows = d.store().log_rows(Some("sent")).await.expect("log");
    assert_eq!(rows.len(), sent, "each notification sent once");
    let cal = engine()
        .default_calendar(chrono_tz::Europe::London)
        .expect("calendar");
    for r in &rows {
        let at = r.sent_at.expect("sent_at");
        let local = cal.local(at);
        assert!(
            cal.is_working_day(local.date_naive()).expect("covered"),
            "sent on a non-working day: {local}"
        );
        assert!(
            local.time() >= chrono::NaiveTime::from_hms_opt(8, 0, 0).expect("t")
                && local.time() < chrono::NaiveTime::from_hms_opt(18, 0, 0).expect("t"),
            "sent outside the window: {local}"
        );
    }
    let mut ids: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.message_id.as_deref())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        eml_files(out.path()).len(),
        ids.len(),
        "one file per message"
    );
}

#[tokio::test]
async fn across_the_autumn_clock_change() {
    hourly_across("2026-10-23T00:30:00Z", 24 * 4).await;
}

#[tokio::test]
async fn across_the_spring_clock_change() {
    hourly_across("2026-03-27T00:30:00Z", 24 * 4).await;
}

/// A duty left unmet for weeks is escalated `reminders.max_escalations`
/// times, then only counted in the escalation contact's weekly summary
/// (grouped by rule and team, with the oldest); and whatever the caseload,
/// a recipient has at most one digest (reminders, escalations, summary) a
/// day. Fails if escalations repeat without end or digests come more often.
#[tokio::test]
async fn escalation_is_bounded_and_a_digest_comes_once_a_day() {
    let start = t("2027-02-04T07:00:00Z");
    let clock = Arc::new(ManualClock::new(start));
    let (d, _db, out) = daemon_to_outbox(&minutes_missing(), clock.clone(), |_| {}).await;
    // Every three hours for ten weeks.
    for _ in 0..(10 * 7 * 8) {
        d.run_once().await.expect("tick");
        clock.advance(Duration::hours(3));
    }
    let rows = d.store().log_rows(Some("sent")).await.expect("log");
    let minutes: Vec<&LogRow> = minutes_rows(&rows);
    let escalations: std::collections::BTreeSet<i64> = minutes
        .iter()
        .filter(|r| r.stage == "escalation" && r.recipient == "sm@barnsley.test")
        .map(|r| r.occurrence)
        .collect();
    assert_eq!(
        escalations,
        [0, 1, 2].into(),
        "three escalations, then no more"
    );
    let weeks: Vec<i64> = minutes
        .iter()
        .filter(|r| r.stage == "summary" && r.recipient == "sm@barnsley.test")
        .map(|r| r.occurrence)
        .collect();
    assert!(weeks.len() >= 6, "a summary each week after: {weeks:?}");
    let mut distinct = weeks.clone();
    distinct.dedup();
    assert_eq!(distinct, weeks, "one summary a week");
    let cal = engine()
        .default_calendar(chrono_tz::Europe::London)
        .expect("calendar");
    let mut per_day: std::collections::BTreeMap<
        (String, chrono::NaiveDate),
        std::collections::BTreeSet<String>,
    > = std::collections::BTreeMap::new();
    for r in rows.iter().filter(|r| r.stage != "overdue") {
        let day = cal.local_date(r.sent_at.expect("sent_at"));
        per_day
            .entry((r.recipient.clone(), day))
            .or_default()
            .insert(r.message_id.clone().expect("message id"));
    }
    for ((who, day), messages) in &per_day {
        assert_eq!(messages.len(), 1, "{who} on {day}: {messages:?}");
    }
    let text = eml_files(out.path())
        .into_iter()
        .map(|p| plain_text(&std::fs::read_to_string(p).expect("eml")))
        .find(|m| m.contains("Weekly summary") && m.contains("- Minutes distributed"))
        .expect("a weekly summary of the minutes");
    assert!(
        text.contains("- Minutes distributed within 15 working days (Barnsley Safeguarding Children Board, T1): 1; the oldest was due by 23:59 on Wed 3 Feb 2027"),
        "{text}"
    );
}

/// When a duty escalated to someone is met, they are told once, in their
/// next digest; a board can turn that off (fails if the notice never comes,
/// comes twice, or comes where the board said no).
#[tokio::test]
async fn an_escalated_duty_met_is_told_once_where_the_board_wants_it() {
    for notices in [true, false] {
        // Friday 12 February 2027: the minutes (due 3 February) are escalated.
        let clock = Arc::new(ManualClock::new(t("2027-02-12T10:00:00Z")));
        let (d, _db, out) = daemon_to_outbox(&minutes_missing(), clock.clone(), |c| {
            if let Some(b) = c.boards.get_mut("barnsley") {
                b.met_notices = Some(notices);
            }
        })
        .await;
        d.run_once().await.expect("tick");
        let escalated = minutes_rows(&d.store().log_rows(Some("sent")).await.expect("log"))
            .iter()
            .any(|r| r.stage == "escalation" && r.recipient == "sm@barnsley.test");
        assert!(escalated, "the minutes were escalated");
        // Still open at the next tick: nothing to tell.
        clock.set(t("2027-02-12T11:00:00Z"));
        d.run_once().await.expect("tick");
        let early = d.store().log_rows(None).await.expect("log");
        assert!(
            !early.iter().any(|r| r.stage == "resolved"),
            "a duty still open is not resolved: {early:?}"
        );
        let mut s = minutes_missing();
        conf_mut(&mut s, "CONF-1").minutes_circulated_at = Some(t("2027-02-12T12:00:00Z"));
        d.store()
            .replace_case_data(&s)
            .await
            .expect("the minutes recorded");
        // The next working days' digests.
        for day in ["2027-02-15T10:00:00Z", "2027-02-16T10:00:00Z"] {
            clock.set(t(day));
            d.run_once().await.expect("tick");
        }
        let told: Vec<String> = eml_files(out.path())
            .into_iter()
            .map(|p| plain_text(&std::fs::read_to_string(p).expect("eml")))
            .filter(|m| m.contains("No longer open since they were escalated to you"))
            .collect();
        let sent = d.store().log_rows(Some("sent")).await.expect("log");
        let resolved: Vec<&LogRow> = minutes_rows(&sent)
            .into_iter()
            .filter(|r| r.stage == "resolved")
            .collect();
        if notices {
            assert_eq!(resolved.len(), 1, "told once: {resolved:?}");
            assert_eq!(resolved[0].recipient, "sm@barnsley.test");
            assert!(
                told.iter().any(|m| m
                    .contains("- conference CONF-1: Minutes distributed within 15 working days")),
                "{told:?}"
            );
        } else {
            assert!(resolved.is_empty() && told.is_empty(), "{resolved:?}");
        }
    }
}

/// Snoozes, missed duties and resolved notices, against a real SMTP server
/// and through restarts of the service: a snoozed duty is not mailed while
/// the snooze is in force (restart or not) and is again once it is ended; a
/// report the conference went ahead without is never mailed; a restarted
/// service sends nobody a second digest the same day; and the escalation
/// contact hears once that the snoozed duty was met.
#[tokio::test]
async fn snoozes_missed_duties_and_met_notices_hold_through_restarts() {
    let server = SmtpServer::start_on(free_port());
    let mut s = minutes_missing();
    // The police report never came: missed at the conference of 13 January.
    inv_mut(&mut s, "CONF-1", "AG-POL").report_received_at = None;
    let minutes = eval(&s, "2027-02-12T10:00:00Z")
        .obligations
        .iter()
        .find(|o| &*o.of.rule == "minutes-circulated" && o.conference.as_deref() == Some("CONF-1"))
        .expect("the minutes duty")
        .key();
    let clock = Arc::new(ManualClock::new(t("2027-02-12T10:00:00Z")));
    let port = server.port;
    let tweak = move |c: &mut Config| plaintext_loopback(c, port);
    let (d, db) = daemon(&s, clock.clone(), smtp_to(port), tweak).await;
    let url = format!("sqlite://{}", db.path().join("cases.db").display());
    d.store()
        .snooze_add(&Snooze {
            id: "agreed1".into(),
            scope: Scope::Obligation,
            target: minutes.clone(),
            agency: None,
            reason: "minute-taker off sick; chair agreed a new date".into(),
            agreed_by: "Safeguarding Unit manager".into(),
            created_at: t("2027-02-11T09:00:00Z"),
            expires_at: t("2027-02-26T00:00:00Z"),
            ended_at: None,
            ended_by: None,
        })
        .await
        .expect("snooze");
    let mail_to = |who: &str| -> Vec<String> {
        server
            .received()
            .into_iter()
            .filter(|(to, _)| to.iter().any(|t| t == who))
            .map(|(_, raw)| plain_text(&raw))
            .collect()
    };
    let about_minutes = |m: &String| m.contains("Minutes distributed within 15 working days");
    let r = d.run_once().await.expect("tick");
    assert_eq!(r.delivery.failed, 0, "{r:?}");
    assert!(
        !mail_to("sm@barnsley.test").iter().any(about_minutes),
        "snoozed"
    );
    // Restarted: the snooze still holds.
    drop(d);
    clock.set(t("2027-02-15T10:00:00Z"));
    let d = daemon_on(&url, clock.clone(), smtp_to(port), tweak).await;
    d.run_once().await.expect("tick");
    assert!(
        !mail_to("sm@barnsley.test").iter().any(about_minutes),
        "still snoozed"
    );
    // Ended early: the escalation goes at the next digest.
    assert!(d
        .store()
        .snooze_end(
            "agreed1",
            "Safeguarding Unit manager",
            t("2027-02-15T12:00:00Z")
        )
        .await
        .expect("end"));
    clock.set(t("2027-02-16T10:00:00Z"));
    d.run_once().await.expect("tick");
    let escalated = mail_to("sm@barnsley.test");
    assert_eq!(
        escalated.iter().filter(|m| about_minutes(m)).count(),
        1,
        "{escalated:?}"
    );
    // The minutes go out and the decision turns out never to have: restarted
    // the same day, the service keeps the decision for tomorrow's digest.
    s.conferences
        .iter_mut()
        .filter(|c| c.id == "CONF-1")
        .for_each(|c| {
            c.minutes_circulated_at = Some(t("2027-02-16T11:00:00Z"));
            c.decision_circulated_at = None;
        });
    d.store().replace_case_data(&s).await.expect("write");
    drop(d);
    clock.set(t("2027-02-16T13:00:00Z"));
    let d = daemon_on(&url, clock.clone(), smtp_to(port), tweak).await;
    d.run_once().await.expect("tick");
    assert_eq!(
        mail_to("sm@barnsley.test").len(),
        escalated.len(),
        "one digest a day"
    );
    clock.set(t("2027-02-17T10:00:00Z"));
    d.run_once().await.expect("tick");
    clock.set(t("2027-02-18T10:00:00Z"));
    d.run_once().await.expect("tick");
    let after: Vec<String> = mail_to("sm@barnsley.test").split_off(escalated.len());
    let resolved = |m: &&String| {
        m.contains("No longer open since they were escalated to you") && about_minutes(m)
    };
    assert_eq!(
        after.iter().filter(resolved).count(),
        1,
        "told once: {after:?}"
    );
    assert!(
        after
            .iter()
            .any(|m| m.contains("Decisions and recommendations distributed")),
        "{after:?}"
    );
    // The missed report was never mailed to anyone.
    let log = d.store().log_rows(None).await.expect("log");
    assert!(!log.is_empty());
    assert!(
        log.iter().all(|r| !r.obligation_key.contains(":AG-POL:")),
        "{:?}",
        log.iter()
            .filter(|r| r.obligation_key.contains(":AG-POL:"))
            .collect::<Vec<_>>()
    );
}

/// The demo authority on Friday 4 December 2026, one tick: every item of
/// every message is about a duty still open, none about a report or a
/// standard whose conference has been held; the Pan-Dorset conference
/// service hears nothing of CONF-00302's reports, missed in July 2025.
#[tokio::test]
async fn the_demo_mails_nothing_about_duties_that_can_no_longer_be_met() {
    let at = "2026-12-04T10:00:00Z";
    let state = cpwatch::synthetic::demo::generate(1, 300, t(at), &holidays()).expect("demo");
    let e = eval(&state, at);
    let status: std::collections::HashMap<String, cpwatch::domain::evaluate::Status> =
        e.obligations.iter().map(|o| (o.key(), o.status)).collect();
    let missed_302 = e
        .obligations
        .iter()
        .filter(|o| {
            o.conference.as_deref() == Some("CONF-00302")
                && o.agency.is_some()
                && o.status == cpwatch::domain::evaluate::Status::Missed
        })
        .count();
    assert!(missed_302 > 0, "CONF-00302 went ahead without a report");
    let clock = Arc::new(ManualClock::new(t(at)));
    let (d, _db, _out) = daemon_to_outbox(&state, clock, |_| {}).await;
    let r = d.run_once().await.expect("tick");
    assert!(r.delivery.sent > 100, "{r:?}");
    let log = d.store().log_rows(None).await.expect("log");
    for row in &log {
        let s = status.get(&row.obligation_key).copied();
        assert!(s.is_some_and(still_open), "{row:?} is {s:?}");
    }
    assert!(
        !log.iter()
            .any(|r| r.obligation_key.contains(":CONF-00302:")
                && r.recipient == "cs@pan-dorset.test"),
        "nothing to the Pan-Dorset conference service about CONF-00302"
    );
}

// ------------------------------------------------------------------- SMTP

fn smtp_to(port: u16) -> Box<dyn Transport> {
    let c = cpwatch::service::config::Smtp {
        host: "127.0.0.1".into(),
        port,
        tls: TlsMode::None,
        allow_plaintext: true,
        username: None,
        timeout_seconds: 5,
        delivery_budget_seconds: 120,
    };
    Box::new(SmtpTransport::new(&c, None).expect("transport"))
}

/// Two overdue agency reports and the missing minutes, Thursday 4 February 2027.
fn several_recipients() -> CaseState {
    let mut s = minutes_missing();
    conf_mut(&mut s, "CONF-1").decision_circulated_at = None;
    s
}

#[tokio::test]
async fn smtp_delivers_one_message_per_recipient_with_the_items() {
    let server = SmtpServer::start_on(free_port());
    // Friday 12 February 2027: the decision (due 14 January) and the minutes (due 3 February)
    // are both escalated to Barnsley's safeguarding manager.
    let clock = Arc::new(ManualClock::new(t("2027-02-12T10:00:00Z")));
    let (d, _db) = daemon(
        &several_recipients(),
        clock.clone(),
        smtp_to(server.port),
        |c| {
            plaintext_loopback(c, server.port);
            // Every item listed, none yet in the weekly summary.
            c.reminders.max_escalations = 100;
        },
    )
    .await;
    let r = d.run_once().await.expect("tick");
    assert!(
        r.delivery.sent >= 2 && r.delivery.failed == 0 && r.delivery.retried == 0,
        "{r:?}"
    );
    let got = server.received();
    assert_eq!(got.len(), r.delivery.messages);
    let to_sm: Vec<&(Vec<String>, String)> = got
        .iter()
        .filter(|(to, _)| to == &vec!["sm@barnsley.test".to_string()])
        .collect();
    assert_eq!(to_sm.len(), 1, "one message for the safeguarding manager");
    let raw = &to_sm[0].1;
    assert!(raw.contains("Subject: Escalation: "), "{raw}");
    let text = plain_text(raw);
    let decision = text
        .find("Decisions and recommendations distributed")
        .expect("decision item");
    let minutes = text
        .find("Minutes distributed within 15 working days")
        .expect("minutes item");
    assert!(decision < minutes, "items in deadline order: {text}");
    // Each item cites its procedure by name and section, not by file.
    assert!(
        text.contains("Source: Minimum Standards for Child Protection Conferences (Barnsley Safeguarding Children Board, undated), section \u{201c}9. Reviewing Period\u{201d}: \u{201c}"),
        "{text}"
    );
    assert!(
        text.contains("was due by 23:59 on Wed 3 Feb 2027, 7 working days overdue"),
        "{text}"
    );
    assert!(
        !text.contains("Worker one") && !text.contains("Team one"),
        "no names of people in mail"
    );
    let rows = d.store().log_rows(Some("sent")).await.expect("log");
    assert_eq!(rows.len(), r.delivery.sent);
    assert!(
        rows.iter().all(|r| got
            .iter()
            .any(|(_, m)| m.contains(r.message_id.as_deref().unwrap_or("?")))),
        "every logged Message-ID arrived"
    );
}

#[tokio::test]
async fn smtp_down_then_up_loses_nothing() {
    let port = free_port();
    let clock = Arc::new(ManualClock::new(t("2027-02-04T10:00:00Z")));
    let (d, _db) = daemon(&several_recipients(), clock.clone(), smtp_to(port), |c| {
        plaintext_loopback(c, port)
    })
    .await;
    // Nothing listens: the relay is unreachable. After two tries the rest
    // wait, and the relay is left alone until its backoff ends.
    let r = d.run_once().await.expect("tick");
    assert!(
        r.delivery.sent == 0
            && r.delivery.retried > 0
            && r.delivery.waiting > 0
            && r.delivery.relay_down.is_some(),
        "{r:?}"
    );
    assert!(d.metrics.render().contains("cpwatch_smtp_up 0"));
    let pending = d.store().log_rows(Some("pending")).await.expect("log");
    let tried: Vec<_> = pending.iter().filter(|r| r.attempts > 0).collect();
    assert!(
        tried.len() == r.delivery.retried
            && tried.iter().all(|r| r.attempts == 1
                && r.last_error.is_some()
                && r.next_attempt_at
                    .is_some_and(|n| n > t("2027-02-04T10:00:00Z"))),
        "{pending:?}"
    );
    // The server comes up; before the backoff ends nothing is tried, after it everything goes.
    let server = SmtpServer::start_on(port);
    clock.advance(Duration::seconds(5));
    assert_eq!(d.run_once().await.expect("tick").delivery.sent, 0);
    clock.advance(Duration::hours(2));
    let r = d.run_once().await.expect("tick");
    assert_eq!(r.delivery.sent, pending.len(), "{r:?}");
    assert!(d.metrics.render().contains("cpwatch_smtp_up 1"));
    assert_eq!(server.received().len(), r.delivery.messages);
    assert!(d
        .store()
        .log_rows(Some("pending"))
        .await
        .expect("log")
        .is_empty());
}

#[tokio::test]
async fn smtp_4xx_is_retried_and_5xx_is_recorded_and_not_retried() {
    let server = SmtpServer::start_on(free_port());
    server.set_mode("tempfail 100");
    let clock = Arc::new(ManualClock::new(t("2027-02-04T10:00:00Z")));
    let (d, _db) = daemon(
        &several_recipients(),
        clock.clone(),
        smtp_to(server.port),
        |c| {
            plaintext_loopback(c, server.port);
            // Overdue reminders go at once; escalations wait for the digest.
            c.reminders.escalate_after_working_days = 1000;
        },
    )
    .await;
    let r = d.run_once().await.expect("tick");
    assert!(r.delivery.retried > 0 && r.delivery.sent == 0, "{r:?}");
    assert!(d
        .store()
        .log_rows(Some("pending"))
        .await
        .expect("log")
        .iter()
        .all(|r| r.last_error.as_deref().is_some_and(|e| e.contains("451"))));
    server.set_mode("accept");
    clock.advance(Duration::hours(2));
    let r = d.run_once().await.expect("tick");
    assert!(r.delivery.sent > 0 && r.delivery.retried == 0, "{r:?}");

    // A new overdue item meets a server that rejects it.
    let mut s = several_recipients();
    s.strategy_discussions[1].record_circulated_at = None;
    d.store().replace_case_data(&s).await.expect("update");
    server.set_mode("reject");
    let r = d.run_once().await.expect("tick");
    assert!(r.delivery.failed > 0, "{r:?}");
    let failed = d.store().log_rows(Some("failed")).await.expect("log");
    assert!(
        !failed.is_empty()
            && failed
                .iter()
                .all(|r| r.last_error.as_deref().is_some_and(|e| e.contains("550"))),
        "{failed:?}"
    );
    assert!(d
        .metrics
        .render()
        .contains("cpwatch_notifications_total{outcome=\"failed\""));
    server.set_mode("accept");
    clock.advance(Duration::hours(3));
    let r = d.run_once().await.expect("tick");
    assert_eq!(
        (r.delivery.failed, r.delivery.retried),
        (0, 0),
        "a permanent failure is not retried: {r:?}"
    );
    assert_eq!(
        d.store().log_rows(Some("failed")).await.expect("log").len(),
        failed.len()
    );
}

/// A synthetic authority with reminders for many recipients, on a Monday
/// morning inside the send window and after the digest hour.
fn busy() -> (CaseState, chrono::DateTime<chrono::Utc>) {
    let now = t("2026-11-23T10:00:00Z");
    let s = cpwatch::synthetic::demo::generate(5, 120, now, &holidays()).expect("demo");
    (s, now)
}

/// A daemon on [`busy`] data sending through the relay on loopback `port`.
async fn busy_daemon(
    port: u16,
    tweak: impl FnOnce(&mut Config),
) -> (Daemon, tempfile::TempDir, Arc<ManualClock>) {
    let (state, now) = busy();
    let clock = Arc::new(ManualClock::new(now));
    let (d, db) = daemon(&state, clock.clone(), smtp_to(port), |c| {
        plaintext_loopback(c, port);
        tweak(c);
    })
    .await;
    (d, db, clock)
}

/// The tick sent nothing, left the rest waiting and paused the relay, saying `why`.
fn paused(r: &cpwatch::service::daemon::TickReport, why: &str) -> bool {
    r.delivery.sent == 0
        && r.delivery.waiting > 0
        && r.delivery
            .relay_down
            .as_deref()
            .is_some_and(|w| w.contains(why))
}

/// A relay that answers 550 to everything is down, not every recipient
/// gone: after a few refusals in a row the round stops, what was refused
/// waits to be retried, nothing is marked failed, `cpwatch_smtp_up` is 0;
/// once it accepts again, everything goes (fails if the refusals are
/// recorded as permanent failures).
#[tokio::test]
async fn a_relay_refusing_everyone_is_paused_and_nothing_is_lost() {
    let server = SmtpServer::start_on(free_port());
    server.set_mode("reject");
    let (d, _db, clock) = busy_daemon(server.port, |_| {}).await;
    let r = d.run_once().await.expect("tick");
    assert!(
        r.delivery.failed == 0 && paused(&r, "refused 3 recipients in a row"),
        "{r:?}"
    );
    let metrics = d.metrics.render();
    assert!(metrics.contains("cpwatch_smtp_up 0"), "{metrics}");
    assert!(
        metrics.contains("cpwatch_notifications_failed 0"),
        "{metrics}"
    );
    let pending = d.store().log_rows(Some("pending")).await.expect("log");
    assert!(pending.iter().any(|r| r
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("refused every recipient"))));
    let total = pending.len();

    // Fixed: while the pause lasts nothing is tried; after it, all goes.
    server.set_mode("accept");
    clock.advance(Duration::seconds(5));
    let r = d.run_once().await.expect("tick");
    assert_eq!((r.delivery.sent, r.delivery.failed), (0, 0), "{r:?}");
    clock.advance(Duration::hours(2));
    let r = d.run_once().await.expect("tick");
    assert_eq!((r.delivery.sent, r.delivery.failed), (total, 0), "{r:?}");
    assert!(d.metrics.render().contains("cpwatch_smtp_up 1"));
}

/// One recipient refused among accepted messages is that recipient's
/// permanent failure: recorded as failed, counted by
/// `cpwatch_notifications_failed`, and sent after `cpwatch notifications
/// requeue` once the address is fixed.
#[tokio::test]
async fn a_refused_recipient_fails_alone_and_can_be_requeued() {
    let server = SmtpServer::start_on(free_port());
    let (d, db, clock) = busy_daemon(server.port, |_| {}).await;
    let gone = "reports@ag-pol.cpwatch.example";
    server.set_mode(&format!("reject-to {gone}"));
    let r = d.run_once().await.expect("tick");
    assert!(
        r.delivery.relay_down.is_none() && r.delivery.sent > 0,
        "{r:?}"
    );
    let failed = d.store().log_rows(Some("failed")).await.expect("log");
    assert!(
        !failed.is_empty() && failed.iter().all(|f| f.recipient == gone),
        "{failed:?} {:?}",
        server
            .received()
            .iter()
            .map(|m| m.0.clone())
            .collect::<Vec<_>>()
    );
    assert!(d
        .metrics
        .render()
        .contains(&format!("cpwatch_notifications_failed {}", failed.len())));

    server.set_mode("accept");
    let url = format!("sqlite://{}", db.path().join("cases.db").display());
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cpwatch"))
        .args([
            "notifications",
            "requeue",
            "--database",
            &url,
            "--recipient",
            gone,
        ])
        .output()
        .expect("cpwatch");
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success()
            && said.contains(&format!(
                "{} failed notifications put back to pending",
                failed.len()
            )),
        "{said}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    clock.advance(Duration::minutes(5));
    let r = d.run_once().await.expect("tick");
    assert_eq!(r.delivery.sent, failed.len(), "{r:?}");
    assert!(d
        .store()
        .log_rows(Some("failed"))
        .await
        .expect("log")
        .is_empty());
    assert!(d
        .metrics
        .render()
        .contains("cpwatch_notifications_failed 0"));
}

/// A relay that takes the connection and never answers: a tick tries it
/// twice (each within `mail.smtp.timeout_seconds`), leaves the rest
/// pending, still evaluates, and does not try again until the pause ends
/// (fails if every recipient is tried in turn).
#[tokio::test]
async fn a_silent_relay_is_tried_twice_then_left_alone() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(stream);
        }
    });
    let (d, _db, clock) = busy_daemon(port, |c| c.mail.smtp.timeout_seconds = 1).await;
    let r = d.run_once().await.expect("tick");
    let tries = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        tries <= 2 && r.obligations > 0 && paused(&r, "no answer within 1s"),
        "{tries} connections: {r:?}"
    );
    assert!(d.metrics.render().contains("cpwatch_smtp_up 0"));
    clock.advance(Duration::seconds(10));
    let r = d.run_once().await.expect("tick");
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        tries,
        "paused: {r:?}"
    );
    assert!(r.delivery.relay_down.is_some(), "{r:?}");
}

/// A slow relay: one tick sends only for `mail.smtp.delivery_budget_seconds`
/// and leaves the rest pending for the next (fails if a tick sends all).
#[tokio::test]
async fn a_tick_sends_only_for_its_delivery_budget() {
    let server = SmtpServer::start_on(free_port());
    server.set_mode("delay 1");
    let (d, _db, _clock) =
        busy_daemon(server.port, |c| c.mail.smtp.delivery_budget_seconds = 1).await;
    let r = d.run_once().await.expect("tick");
    assert!(
        (1..=2).contains(&r.delivery.messages) && r.delivery.waiting > 0 && r.delivery.failed == 0,
        "{r:?}"
    );
    server.set_mode("accept");
    let before = r.delivery.sent;
    let r = d.run_once().await.expect("tick");
    assert!(r.delivery.sent > 0, "the rest goes at the next tick: {r:?}");
    assert_eq!(
        d.store().log_rows(Some("sent")).await.expect("log").len(),
        before + r.delivery.sent
    );
}

// --------------------------------------------------------- metrics, HTTP

#[tokio::test]
async fn metrics_parse_and_carry_no_identifiers() {
    let now = t("2026-11-23T09:00:00Z");
    let state = cpwatch::synthetic::demo::generate(5, 200, now, &holidays()).expect("demo");
    let (d, _db, _out) = daemon_to_outbox(&state, Arc::new(ManualClock::new(now)), |_| {}).await;
    d.run_once().await.expect("tick");
    let text = d.metrics.render();
    let allowed_labels = [
        "board",
        "rule",
        "status",
        "agency",
        "professional_group",
        "team",
        "window",
        "kind",
        "stage",
        "outcome",
        "result",
        "recipient",
        "scope",
        "version",
        "le",
    ];
    let mut forbidden: Vec<String> = Vec::new();
    forbidden.extend(
        state
            .children
            .iter()
            .flat_map(|c| [c.id.to_string(), c.reference.to_string()]),
    );
    forbidden.extend(state.conferences.iter().map(|c| c.id.to_string()));
    forbidden.extend(state.workers.iter().flat_map(|w| {
        [w.id.to_string(), w.name.to_string()]
            .into_iter()
            .chain(w.email.as_deref().map(String::from))
    }));
    forbidden.extend(
        state
            .teams
            .iter()
            .filter_map(|t| t.manager_email.as_deref().map(String::from)),
    );
    let mut samples = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        assert!(
            value.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&value),
            "{line}"
        );
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        assert!(
            name.starts_with("cpwatch_")
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').expect("label pair");
            assert!(allowed_labels.contains(&k), "label {k} in {line}");
            let v = v.trim_matches('"');
            assert!(
                !forbidden.iter().any(|f| f == v),
                "identifier {v} in {line}"
            );
        }
        samples += 1;
    }
    assert!(samples > 100);
    for name in [
        "cpwatch_obligations{",
        "cpwatch_overdue_obligations{",
        "cpwatch_on_time_ratio{",
        "cpwatch_data_quality_findings{",
        "cpwatch_evaluation_duration_seconds_bucket",
        "cpwatch_last_successful_evaluation_timestamp_seconds ",
        "cpwatch_notifications_total{",
        "cpwatch_database_up 1",
        "cpwatch_smtp_up 1",
        "cpwatch_rules_loaded{",
        "cpwatch_build_info{",
        "cpwatch_ticks_total{result=\"ok\"} 1",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
}

#[tokio::test]
async fn serves_health_readiness_and_metrics_and_stops_when_told() {
    let port = free_port();
    let clock = Arc::new(ManualClock::new(t("2027-02-04T10:00:00Z")));
    let (d, _db, _out) = daemon_to_outbox(&minutes_missing(), clock.clone(), |c| {
        c.http.listen = format!("127.0.0.1:{port}")
    })
    .await;
    let d = Arc::new(d);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(d.clone().serve(async move {
        let _ = stopped.await;
    }));
    let mut ready = None;
    for _ in 0..100 {
        if let Some((200, body)) = tokio::task::spawn_blocking(move || http_get(port, "/readyz"))
            .await
            .expect("join")
        {
            ready = Some(body);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(ready.as_deref(), Some("ready\n"));
    let (code, body) = tokio::task::spawn_blocking(move || http_get(port, "/healthz"))
        .await
        .expect("join")
        .expect("healthz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let (code, body) = tokio::task::spawn_blocking(move || http_get(port, "/metrics"))
        .await
        .expect("join")
        .expect("metrics");
    assert!(
        code == 200 && body.contains("cpwatch_database_up 1"),
        "{body}"
    );
    // No tick for longer than stale_after_seconds: the scheduler has stalled, and readiness says so.
    clock.advance(Duration::hours(1));
    let (code, body) = tokio::task::spawn_blocking(move || http_get(port, "/readyz"))
        .await
        .expect("join")
        .expect("readyz");
    assert!(code == 503 && body.contains("stalled"), "{code} {body}");
    let _ = stop.send(());
    tokio::time::timeout(std::time::Duration::from_secs(10), task)
        .await
        .expect("stops promptly")
        .expect("join")
        .expect("clean stop");
}

#[test]
fn configuration_from_file_environment_and_secret_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cpwatch.toml");
    std::fs::write(&path, "database_url = \"postgres://cpwatch@db.internal/cases\"\n[mail]\ntransport = \"smtp\"\nfrom = \"cpwatch <cp@council.example>\"\n[mail.smtp]\nhost = \"relay.council.example\"\n[boards.barnsley]\nconference_service = \"cpu@barnsley.example\"\n").expect("write");
    let secret_file = dir.path().join("db-password");
    std::fs::write(&secret_file, "s3cr:t\n").expect("write");
    let env = |name: &str| match name {
        "CPWATCH_MAIL_SMTP_PORT" => Some("2525".to_string()),
        "CPWATCH_BOARDS_BOLTON_SAFEGUARDING_MANAGER" => Some("sm@bolton.example".to_string()),
        "CPWATCH_DATABASE_PASSWORD_FILE" => Some(secret_file.display().to_string()),
        _ => None,
    };
    let c = Config::load(&path, true, &env).expect("loads");
    assert_eq!(c.mail.smtp.port, 2525);
    assert_eq!(
        c.boards["bolton"].safeguarding_manager.as_deref(),
        Some("sm@bolton.example")
    );
    assert_eq!(
        c.database_url_with_secret(&env).expect("url"),
        "postgres://cpwatch:s3cr%3At@db.internal/cases"
    );
    let none = |_: &str| None;
    // Secrets do not belong in the file; plain text mail only to loopback, and only when allowed.
    for (text, key) in [
        ("database_url = \"postgres://u:pw@h/db\"\n", "database_url"),
        ("[mail.smtp]\npassword = \"x\"\n", "mail.smtp.password"),
        (
            "[mail]\ntransport = \"smtp\"\n[mail.smtp]\nhost = \"relay.example\"\ntls = \"none\"\n",
            "mail.smtp.tls",
        ),
        (
            "[schedule]\nevaluate = \"every five minutes\"\n",
            "schedule.evaluate",
        ),
        (
            "[reminders]\nsend_window = \"18:00-08:00\"\n",
            "reminders.send_window",
        ),
        (
            "[boards.bolton]\nconference_service = \"not an address\"\n",
            "boards.bolton.conference_service",
        ),
    ] {
        std::fs::write(&path, text).expect("write");
        let e = Config::load(&path, true, &none)
            .expect_err(text)
            .to_string();
        assert!(e.starts_with(key), "{text}: {e}");
    }
    std::fs::write(&path, "[mail]\ntransprot = \"file\"\n").expect("write");
    let e = Config::load(&path, true, &none)
        .expect_err("unknown key")
        .to_string();
    assert!(e.contains("transprot"), "{e}");
    assert!(Config::load(&dir.path().join("absent.toml"), true, &none).is_err());
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/cpwatch.example.toml");
    let c = Config::load(&example, true, &none).expect("the shipped example is valid");
    assert_eq!(c.mail.smtp.tls, TlsMode::Starttls);
    assert!(Config::load(&dir.path().join("absent.toml"), false, &none).is_ok());
}

// ------------------------------------------------- replicas, one instance

#[tokio::test]
async fn two_replicas_on_postgresql_one_sends_and_the_other_takes_over() {
    let db = TempDb::new("ha").await;
    let setup = cpwatch::store::connect(&db.url(), false)
        .await
        .expect("postgres");
    setup.migrate(false).await.expect("migrate");
    setup
        .replace_case_data(&several_recipients())
        .await
        .expect("write");
    let out = tempfile::tempdir().expect("outbox");
    let clock = Arc::new(ManualClock::new(t("2027-02-04T10:00:00Z")));
    let replica = |clock: Arc<ManualClock>| {
        let url = db.url();
        let dir = out.path().to_path_buf();
        async move {
            let store = cpwatch::store::connect(&url, false)
                .await
                .expect("postgres");
            let mut c = config();
            c.database_url = url;
            Daemon::new(
                Settings::new(c, engine(), Box::new(FileTransport { dir })).expect("settings"),
                store,
                clock,
            )
            .expect("daemon")
        }
    };
    let a = replica(clock.clone()).await;
    let b = replica(clock.clone()).await;
    let ra = a.run_once().await.expect("tick a");
    let rb = b.run_once().await.expect("tick b");
    assert!(
        ra.delivery.sent > 0,
        "the first replica takes the lock and sends: {ra:?}"
    );
    assert_eq!(
        (rb.delivery.sent, rb.delivery.recorded),
        (0, 0),
        "the second only evaluates: {rb:?}"
    );
    assert!(
        a.metrics.render().contains("cpwatch_leader 1")
            && b.metrics.render().contains("cpwatch_leader 0")
    );
    assert!(
        b.metrics.render().contains("cpwatch_obligations{"),
        "the standby still serves metrics"
    );
    let sent_before = setup.log_rows(Some("sent")).await.expect("log").len();

    // The sender dies; new work appears; the standby takes over at its next tick.
    drop(a);
    let mut s = several_recipients();
    s.strategy_discussions[1].record_circulated_at = None;
    setup.replace_case_data(&s).await.expect("update");
    clock.advance(Duration::minutes(5));
    let rb = b.run_once().await.expect("tick b");
    // Its recipient had today's digest from the old sender: it waits for tomorrow's.
    assert!(
        rb.delivery.sent == 0 && rb.delivery.waiting > 0,
        "one digest a day, whichever replica sends: {rb:?}"
    );
    clock.set(t("2027-02-05T10:00:00Z"));
    let rb = b.run_once().await.expect("tick b");
    assert!(rb.delivery.sent > 0, "{rb:?}");
    let sent = setup.log_rows(Some("sent")).await.expect("log");
    assert_eq!(
        sent.len(),
        sent_before + rb.delivery.sent,
        "nothing sent twice"
    );
    let mut ids: Vec<&str> = sent.iter().map(|r| r.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), sent.len());
    drop(b);
    drop(setup);
    db.finish().await;
}

/// The sender's lock session is terminated while it sends to a slow relay,
/// and the other replica takes over: the old sender stops before its next
/// message, so at most the one message in flight goes twice (fails if the
/// old sender finishes its list while the new one sends the same rows).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sender_that_loses_its_lock_stops_sending() {
    let db = TempDb::new("lostlock").await;
    let setup = cpwatch::store::connect(&db.url(), false)
        .await
        .expect("postgres");
    setup.migrate(false).await.expect("migrate");
    let (state, now) = busy();
    setup.replace_case_data(&state).await.expect("write");
    let server = SmtpServer::start_on(free_port());
    server.set_mode("delay 0.3");
    let clock = Arc::new(ManualClock::new(now));
    let replica = |clock: Arc<ManualClock>| {
        let url = db.url();
        let port = server.port;
        async move {
            let store = cpwatch::store::connect(&url, false)
                .await
                .expect("postgres");
            let mut c = config();
            c.database_url = url;
            plaintext_loopback(&mut c, port);
            Arc::new(
                Daemon::new(
                    Settings::new(c, engine(), smtp_to(port)).expect("settings"),
                    store,
                    clock,
                )
                .expect("daemon"),
            )
        }
    };
    let a = replica(clock.clone()).await;
    let b = replica(clock.clone()).await;
    let sending = tokio::spawn({
        let a = a.clone();
        async move { a.run_once().await.expect("tick a") }
    });
    // Once the first message has arrived, the sender's lock session goes.
    for _ in 0..200 {
        if !server.received().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!server.received().is_empty(), "the first replica sends");
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&admin_url())
        .await
        .expect("admin");
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_stat_activity s ON s.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND s.datname = $1",
    )
    .bind(&db.name)
    .fetch_all(&mut admin)
    .await
    .expect("terminate the lock session");
    assert_eq!(killed, vec![true], "one session held the lock");
    let rb = b.run_once().await.expect("tick b");
    let ra = sending.await.expect("tick a finished");
    assert!(ra.delivery.lost_lock, "{ra:?}");
    assert!(
        rb.delivery.sent > 0,
        "the new sender sends the rest: {rb:?}"
    );
    let got = server.received();
    let mut per_message: std::collections::HashMap<String, usize> =
        std::collections::HashMap::new();
    for (_, raw) in &got {
        let id = raw
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
            .expect("a Message-ID")
            .to_string();
        *per_message.entry(id).or_default() += 1;
    }
    let twice = per_message.values().filter(|n| **n > 1).count();
    assert!(
        twice <= 1 && per_message.values().all(|n| *n <= 2),
        "{twice} messages went more than once: {ra:?} {rb:?}"
    );
    let pending = setup.log_rows(Some("pending")).await.expect("log");
    assert!(pending.is_empty(), "nothing left behind: {pending:?}");
    drop((a, b, setup));
    admin.close().await.expect("close");
    db.finish().await;
}

#[tokio::test]
async fn a_second_instance_on_one_sqlite_database_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("one.db").display());
    let first = cpwatch::store::connect(&url, true).await.expect("sqlite");
    assert!(first.leadership().await.expect("first instance"));
    let second = cpwatch::store::connect(&url, false).await.expect("sqlite");
    let e = second
        .leadership()
        .await
        .expect_err("second instance")
        .to_string();
    assert!(
        e.contains("another cpwatch is already running") && e.contains("PostgreSQL"),
        "{e}"
    );
    drop(first);
    assert!(
        second.leadership().await.expect("free again"),
        "the lock goes with the process that held it"
    );
}

#[tokio::test]
async fn a_reload_keeps_the_old_rules_when_the_new_ones_are_broken() {
    let clock = Arc::new(ManualClock::new(t("2027-02-04T10:00:00Z")));
    let (d, _db, out) = daemon_to_outbox(&minutes_missing(), clock, |_| {}).await;
    assert!(!d.reload(Err(anyhow::anyhow!("rules/local.toml:3:1: broken"))));
    assert_eq!(d.settings().engine.rules.boards.len(), 6);
    let rules_dir = tempfile::tempdir().expect("rules");
    for (name, text) in cpwatch::domain::rules::BUILT_IN {
        std::fs::write(rules_dir.path().join(name), text).expect("copy");
    }
    std::fs::write(rules_dir.path().join("local.toml"), "[board]\nid = \"local\"\nname = \"Local\"\nextends = \"working-together-2010\"\nversion = \"1\"\neffective_from = 2024-01-01\nsource = \"local.txt\"\n").expect("write");
    let engine =
        Engine::load(Some(rules_dir.path()), None, None, "working-together-2010").expect("engine");
    assert!(d.reload(Settings::new(
        config(),
        engine,
        Box::new(FileTransport {
            dir: out.path().into()
        })
    )));
    assert_eq!(d.settings().engine.rules.boards.len(), 7);
    assert!(d
        .metrics
        .render()
        .contains("cpwatch_rules_loaded{board=\"local\"}"));
}

#[tokio::test]
async fn the_database_going_away_and_coming_back() {
    use sqlx::{Connection, Executor};
    let db = TempDb::new("outage").await;
    let setup = cpwatch::store::connect(&db.url(), false)
        .await
        .expect("postgres");
    setup.migrate(false).await.expect("migrate");
    setup
        .replace_case_data(&several_recipients())
        .await
        .expect("write");
    drop(setup);
    let out = tempfile::tempdir().expect("outbox");
    // Saturday: notifications are recorded but wait for Monday.
    let clock = Arc::new(ManualClock::new(t("2027-02-06T10:00:00Z")));
    let store = cpwatch::store::connect(&db.url(), false)
        .await
        .expect("postgres");
    let mut c = config();
    c.database_url = db.url();
    let d = Daemon::new(
        Settings::new(
            c,
            engine(),
            Box::new(FileTransport {
                dir: out.path().into(),
            }),
        )
        .expect("settings"),
        store,
        clock.clone(),
    )
    .expect("daemon");
    let r = d.run_once().await.expect("tick");
    assert!(r.delivery.recorded > 0 && r.delivery.sent == 0, "{r:?}");
    assert!(d.health.ready().is_ok());

    let mut admin = sqlx::PgConnection::connect(&admin_url())
        .await
        .expect("admin");
    admin
        .execute(format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", db.name).as_str())
        .await
        .expect("block");
    admin
        .execute(
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
                db.name
            )
            .as_str(),
        )
        .await
        .expect("terminate");
    clock.set(t("2027-02-08T10:00:00Z"));
    assert!(
        d.run_once().await.is_err(),
        "the tick fails while the database is away"
    );
    let text = d.metrics.render();
    assert!(
        text.contains("cpwatch_database_up 0")
            && text.contains("cpwatch_ticks_total{result=\"error\"} 1"),
        "{text}"
    );
    assert!(d.health.ready().is_err_and(|why| why.contains("database")));

    admin
        .execute(format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", db.name).as_str())
        .await
        .expect("unblock");
    clock.advance(Duration::minutes(5));
    let r = d.run_once().await.expect("recovers by itself");
    assert!(
        r.delivery.sent > 0,
        "what was recorded before the outage goes now: {r:?}"
    );
    assert!(d.metrics.render().contains("cpwatch_database_up 1") && d.health.ready().is_ok());
    assert!(d
        .store()
        .log_rows(Some("pending"))
        .await
        .expect("log")
        .is_empty());
    drop(d);
    db.finish().await;
}

#[tokio::test]
async fn the_previous_months_export_is_written_once_from_the_first_working_day() {
    use std::os::unix::fs::PermissionsExt;
    let exports = tempfile::tempdir().expect("exports");
    let dir = exports.path().join("monthly");
    let clock = Arc::new(ManualClock::new(t("2027-01-01T10:00:00Z")));
    let (d, _db, _out) = daemon_to_outbox(&fixture("barnsley"), clock.clone(), |c| {
        c.export.directory = Some(dir.clone())
    })
    .await;
    // Friday 1 January 2027 is New Year's Day: the first working day is Monday 4 January.
    d.run_once().await.expect("tick");
    assert!(!dir.join("barnsley-2026-12.xlsx").exists());
    clock.set(t("2027-01-04T10:00:00Z"));
    d.run_once().await.expect("tick");
    let file = dir.join("barnsley-2026-12.xlsx");
    assert!(file.exists());
    assert_eq!(
        std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    let first = std::fs::read(&file).expect("read");
    clock.set(t("2027-01-05T10:00:00Z"));
    d.run_once().await.expect("tick");
    assert_eq!(
        std::fs::read(&file).expect("read"),
        first,
        "an existing export is left alone"
    );
    assert!(d
        .metrics
        .render()
        .contains("cpwatch_exports_total{result=\"written\"} 1"));
}

/// The series of one rule and status in the metrics, or 0.
fn obligations_metric(d: &Daemon, rule: &str, status: &str) -> f64 {
    let series =
        format!("cpwatch_obligations{{board=\"barnsley\",rule=\"{rule}\",status=\"{status}\"}} ");
    d.metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .map_or(0.0, |v| v.parse().expect("a number"))
}

#[tokio::test]
async fn ticks_between_full_reads_read_only_what_changed() {
    use cpwatch::service::daemon::Scope;
    let clock = Arc::new(ManualClock::new(t("2027-02-01T10:00:00Z")));
    // The default overlap: every row, inserted just now, is read again at
    // each tick, and only the ones that differ count as changed.
    let (d, db, _out) = daemon_to_outbox(&minutes_missing(), clock.clone(), |_| {}).await;
    let first = d.run_once().await.expect("tick");
    assert_eq!(first.scope, Scope::Full, "the first tick reads everything");
    assert_eq!(obligations_metric(&d, "minutes-circulated", "met"), 0.0);

    // The ETL records the minutes; the next tick reads that row alone and sees it.
    let url = format!("sqlite://{}", db.path().join("cases.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("pool");
    sqlx::query("UPDATE conferences SET minutes_circulated_at = '2027-02-01T09:30:00Z', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+1 second') WHERE id = 'CONF-1'")
        .execute(&pool)
        .await
        .expect("update");
    clock.advance(Duration::minutes(5));
    let second = d.run_once().await.expect("tick");
    assert_eq!(second.scope, Scope::Incremental);
    assert_eq!(obligations_metric(&d, "minutes-circulated", "met"), 1.0);
    assert_eq!(second.obligations, first.obligations);

    // An agency's change reaches every conference it is invited to: a full tick.
    sqlx::query("UPDATE agencies SET email = 'new@police.test', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+2 seconds')")
        .execute(&pool)
        .await
        .expect("update");
    clock.advance(Duration::minutes(5));
    assert_eq!(d.run_once().await.expect("tick").scope, Scope::Full);
    clock.advance(Duration::minutes(5));
    assert_eq!(d.run_once().await.expect("tick").scope, Scope::Incremental);
    // A new day starts with a full read.
    clock.set(t("2027-02-02T00:00:30Z"));
    assert_eq!(d.run_once().await.expect("tick").scope, Scope::Full);
    let render = d.metrics.render();
    assert!(
        render.contains("cpwatch_evaluations_total{scope=\"full\"} 3"),
        "{render}"
    );
    assert!(render.contains("cpwatch_evaluations_total{scope=\"incremental\"} 2"));
    pool.close().await;
}

#[tokio::test]
async fn incremental_ticks_can_be_turned_off() {
    use cpwatch::service::daemon::Scope;
    let clock = Arc::new(ManualClock::new(t("2027-02-01T10:00:00Z")));
    let (d, _db, _out) = daemon_to_outbox(&minutes_missing(), clock.clone(), |c| {
        c.schedule.incremental = false;
    })
    .await;
    for _ in 0..3 {
        assert_eq!(d.run_once().await.expect("tick").scope, Scope::Full);
        clock.advance(Duration::minutes(5));
    }
}

/// Plain-text SMTP only to an address on loopback: a name that merely starts
/// like one is refused.
#[test]
fn plaintext_mail_goes_only_to_a_loopback_address() {
    let with_host = |host: &str| {
        let mut c = config();
        c.mail.transport = cpwatch::service::config::TransportKind::Smtp;
        c.mail.smtp.host = host.into();
        c.mail.smtp.tls = TlsMode::None;
        c.mail.smtp.allow_plaintext = true;
        c.validate()
    };
    for host in ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost"] {
        assert!(with_host(host).is_ok(), "{host}");
    }
    for host in [
        "127.attacker.example",
        "localhost.example",
        "10.0.0.1",
        "relay.example",
    ] {
        let e = with_host(host).expect_err(host).to_string();
        assert!(e.contains("mail.smtp.tls"), "{host}: {e}");
    }
}

/// A password in the database URL's parameters is refused, like one after
/// the user, and never shown.
#[test]
fn a_password_in_the_database_url_is_refused_wherever_it_is() {
    for url in [
        "postgres://cp:hunter2@db.example/cases",
        "postgres://cp@db.example/cases?password=hunter2",
        "postgres://cp@db.example/cases?sslmode=require&PASSWORD=hunter2",
    ] {
        let mut c = config();
        c.database_url = url.into();
        let e = c.validate().expect_err(url).to_string();
        assert!(e.contains("database_url") && !e.contains("hunter2"), "{e}");
        assert!(!cpwatch::store::redact(url).contains("hunter2"), "{url}");
    }
    assert_eq!(
        cpwatch::store::redact("postgres://cp@db.example/cases?sslmode=require&password=x"),
        "postgres://cp@db.example/cases?sslmode=require&password=***"
    );
}
