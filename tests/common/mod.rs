//! A canonical case for tests: one child referred on Monday 14 December 2026,
//! a strategy discussion on Monday 21 December, an initial conference on
//! Wednesday 13 January 2027 that makes a plan, a first core group, and review
//! conferences in April and October 2027 — everything on time.
#![allow(dead_code)]

pub mod history;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child as Process, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use cpwatch::domain::calendar::HolidayData;
use cpwatch::domain::case::*;
use cpwatch::domain::evaluate::{evaluate_kept, Evaluation, Options, Scratch};
use cpwatch::domain::rules::{self, RuleSet};
use sqlx::{Connection, Executor, PgConnection};

#[path = "../../benches/harness/http.rs"]
mod http;
#[allow(unused_imports)]
pub use http::http_get;

pub fn t(s: &str) -> Instant {
    DateTime::parse_from_rfc3339(s)
        .expect("instant")
        .with_timezone(&Utc)
}

pub fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

pub fn built_in_rules() -> RuleSet {
    rules::built_in().expect("built-in rules")
}

pub fn holidays() -> Arc<HolidayData> {
    Arc::new(HolidayData::load(None).expect("holidays"))
}

pub fn eval_with(state: &CaseState, rules: &RuleSet, at: &str) -> Evaluation {
    eval_on(state, rules, t(at), 1)
}

/// An evaluation with the built-in holidays on `threads` threads.
pub fn eval_on(
    state: &CaseState,
    rules: &RuleSet,
    now: chrono::DateTime<chrono::Utc>,
    threads: usize,
) -> Evaluation {
    let opts = Options {
        default_board: "working-together-2010",
        threads,
    };
    let mut scratch = Scratch::default();
    evaluate_kept(state, rules, &holidays(), now, &opts, &mut scratch, &|_| {
        true
    })
    .owned()
}

pub fn eval(state: &CaseState, at: &str) -> Evaluation {
    eval_with(state, &built_in_rules(), at)
}

pub fn agency(id: &str, group: &str) -> Agency {
    Agency {
        id: id.into(),
        name: format!("{id} agency").into(),
        professional_group: group.into(),
        email: Some(format!("{}@cpwatch.example", id.to_lowercase()).into()),
    }
}

pub fn child(id: &str, reference: &str, board: &str, dob: Option<&str>) -> Child {
    Child {
        id: id.into(),
        reference: reference.into(),
        board: Some(board.into()),
        date_of_birth: dob.map(d),
        expected_due_date: None,
        allocated_worker_id: Some("W1".into()),
        looked_after: false,
    }
}

pub fn conference(id: &str, kind: &str, held: &str) -> Conference {
    Conference {
        id: id.into(),
        kind: kind.into(),
        status: "held".into(),
        held_at: Some(t(held)),
        scheduled_at: Some(t(held)),
        ..Conference::default()
    }
}

pub fn cc(conf: &str, child: &str, outcome: &str) -> ConferenceChild {
    ConferenceChild {
        conference_id: conf.into(),
        child_id: child.into(),
        outcome: Some(outcome.into()),
        category: None,
        advocacy_offered: Some(true),
        workbook_received_at: None,
        dissent_recorded: false,
    }
}

pub fn invitation(conf: &str, agency: &str, at: &str) -> Invitation {
    Invitation {
        conference_id: conf.into(),
        agency_id: agency.into(),
        attended: Some(true),
        report_expected: true,
        report_received_at: Some(t(at)),
        report_shared_with_family_at: Some(t(at)),
        report_authorised_at: (agency == "AG-CSC").then(|| t(at)),
        email: None,
    }
}

/// The baseline and the five boards.
pub const BOARDS: &[&str] = &[
    "working-together-2010",
    "pan-dorset",
    "hampshire-4lscb",
    "barnsley",
    "cwm-taf-morgannwg",
    "bolton",
];

pub const AGENCIES: &[&str] = &["AG-CSC", "AG-POL", "AG-HV", "AG-EDU"];

/// The canonical case, for one board.
pub fn fixture(board: &str) -> CaseState {
    let mut s = CaseState {
        agencies: vec![
            agency("AG-CSC", "childrens_social_care"),
            agency("AG-POL", "police"),
            agency("AG-HV", "health"),
            agency("AG-EDU", "education"),
            agency("AG-MW", "midwifery"),
        ],
        teams: vec![Team {
            id: "T1".into(),
            name: "Team one".into(),
            manager_email: Some("tm1@cpwatch.example".into()),
        }],
        workers: vec![Worker {
            id: "W1".into(),
            name: "Worker one".into(),
            email: Some("w1@cpwatch.example".into()),
            team_id: "T1".into(),
        }],
        children: vec![child("C1", "TEST-1", board, Some("2013-05-10"))],
        ..CaseState::default()
    };
    s.referrals.push(Referral {
        id: "R1".into(),
        child_id: "C1".into(),
        received_at: t("2026-12-14T10:00:00Z"),
        by_telephone: true,
        written_confirmation_at: Some(t("2026-12-15T09:00:00Z")),
        acknowledged_at: Some(t("2026-12-15T10:00:00Z")),
        next_steps_recorded_at: Some(t("2026-12-14T15:00:00Z")),
        concern: Some("physical_abuse".into()),
    });
    s.assessments.push(Assessment {
        id: "IA1".into(),
        child_id: "C1".into(),
        kind: "initial".into(),
        started_on: d("2026-12-14"),
        completed_on: Some(d("2026-12-22")),
    });
    s.assessments.push(Assessment {
        id: "CA1".into(),
        child_id: "C1".into(),
        kind: "core".into(),
        started_on: d("2026-12-21"),
        completed_on: Some(d("2027-02-01")),
    });
    s.strategy_discussions.push(StrategyDiscussion {
        id: "SD1".into(),
        child_id: "C1".into(),
        held_at: t("2026-12-14T14:00:00Z"),
        s47_initiated: false,
        concern: Some("physical_abuse".into()),
        child_seen_at: Some(t("2026-12-14T18:00:00Z")),
        conference_decided_at: None,
        record_circulated_at: Some(t("2026-12-15T10:00:00Z")),
        conference_not_required: false,
    });
    s.strategy_discussions.push(StrategyDiscussion {
        id: "SD2".into(),
        child_id: "C1".into(),
        held_at: t("2026-12-21T11:00:00Z"),
        s47_initiated: true,
        concern: Some("physical_abuse".into()),
        child_seen_at: Some(t("2026-12-21T16:00:00Z")),
        conference_decided_at: Some(t("2026-12-21T13:00:00Z")),
        record_circulated_at: Some(t("2026-12-22T10:00:00Z")),
        conference_not_required: false,
    });
    let mut c1 = conference("CONF-1", "initial", "2027-01-13T10:00:00Z");
    c1.requested_at = Some(t("2026-12-22T09:00:00Z"));
    c1.chair_liaison_at = Some(t("2027-01-05T12:00:00Z"));
    c1.decision_circulated_at = Some(t("2027-01-13T16:00:00Z"));
    c1.plan_circulated_at = Some(t("2027-01-14T12:00:00Z"));
    c1.plan_hard_copy_sent_at = Some(t("2027-01-15T12:00:00Z"));
    c1.summary_circulated_at = Some(t("2027-01-15T12:00:00Z"));
    c1.minutes_circulated_at = Some(t("2027-01-25T12:00:00Z"));
    s.conferences.push(c1);
    let mut x = cc("CONF-1", "C1", "plan");
    x.workbook_received_at = Some(t("2027-01-08T12:00:00Z"));
    s.conference_children.push(x);
    for a in AGENCIES {
        s.invitations
            .push(invitation("CONF-1", a, "2027-01-08T12:00:00Z"));
    }
    s.cp_plans.push(CpPlan {
        id: "P1".into(),
        child_id: "C1".into(),
        started_on: d("2027-01-13"),
        ended_on: None,
        end_reason: None,
        category: Some("physical_abuse".into()),
        visit_interval_working_days: Some(10),
    });
    s.core_groups.push(CoreGroup {
        id: "CG1".into(),
        child_id: "C1".into(),
        held_at: t("2027-01-20T10:00:00Z"),
    });
    for (id, conf, held, reports) in [
        (
            "CONF-2",
            "CONF-2",
            "2027-04-07T09:00:00Z",
            "2027-03-30T12:00:00+01:00",
        ),
        (
            "CONF-3",
            "CONF-3",
            "2027-10-05T09:00:00Z",
            "2027-09-27T12:00:00+01:00",
        ),
    ] {
        let mut c = conference(id, "review", held);
        c.decision_circulated_at = Some(t(held) + chrono::Duration::hours(4));
        c.minutes_circulated_at = Some(t(held) + chrono::Duration::days(5));
        s.conferences.push(c);
        s.conference_children.push(cc(conf, "C1", "plan_continues"));
        for a in AGENCIES {
            s.invitations.push(invitation(conf, a, reports));
        }
    }
    s
}

pub fn conf_mut<'a>(s: &'a mut CaseState, id: &str) -> &'a mut Conference {
    s.conferences
        .iter_mut()
        .find(|c| c.id == id)
        .expect("conference")
}

pub fn inv_mut<'a>(s: &'a mut CaseState, conf: &str, agency: &str) -> &'a mut Invitation {
    s.invitations
        .iter_mut()
        .find(|i| i.conference_id == conf && i.agency_id == agency)
        .expect("invitation")
}

pub fn exception(
    rule: &str,
    child: Option<&str>,
    conf: Option<&str>,
    agency: Option<&str>,
) -> Exception {
    Exception {
        id: format!("EX-{rule}").into(),
        rule: rule.into(),
        child_id: child.map(Text::from),
        conference_id: conf.map(Text::from),
        agency_id: agency.map(Text::from),
        reason: "Agreed by the chair: family bereavement".into(),
        agreed_by: "Chair".into(),
        recorded_at: t("2026-12-20T10:00:00Z"),
    }
}

// ------------------------------------------------ PostgreSQL on loopback

pub fn admin_url() -> String {
    std::env::var("CPWATCH_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn url_for(db: &str, user: Option<&str>) -> String {
    let admin = admin_url();
    let (head, _) = admin.rsplit_once('/').expect("url has a database");
    match user {
        None => format!("{head}/{db}"),
        Some(u) => {
            let rest = head.split_once('@').map_or(head, |(_, h)| h);
            let scheme = "postgres://";
            format!("{scheme}{u}@{}/{db}", rest.trim_start_matches(scheme))
        }
    }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A scratch database, dropped by `finish`.
pub struct TempDb {
    pub name: String,
}

impl TempDb {
    pub async fn new(tag: &str) -> TempDb {
        let name = format!(
            "cpwatch_t_{tag}_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin = PgConnection::connect(&admin_url())
            .await
            .expect("PostgreSQL on loopback (see README: tests need it)");
        admin
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await
            .expect("drop");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create");
        TempDb { name }
    }

    pub fn url(&self) -> String {
        url_for(&self.name, None)
    }

    pub async fn finish(self) {
        let mut admin = PgConnection::connect(&admin_url()).await.expect("admin");
        admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await
            .expect("drop");
    }
}

// ------------------------------------------------------------------ network

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

// ----------------------------------------------------------- SMTP on loopback

/// A real SMTP server on loopback (tests/smtp_server.py, aiosmtpd), stopped on drop.
pub struct SmtpServer {
    child: Process,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl SmtpServer {
    pub fn start_on(port: u16) -> SmtpServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with aiosmtpd (pip install aiosmtpd; .ci/run does)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        assert_eq!(line.trim(), "ready", "the test SMTP server did not start");
        SmtpServer { child, dir, port }
    }

    pub fn set_mode(&self, mode: &str) {
        std::fs::write(self.dir.path().join("mode"), mode).expect("mode");
    }

    /// (envelope recipients, message text) of each accepted message.
    pub fn received(&self) -> Vec<(Vec<String>, String)> {
        let mut out = Vec::new();
        for n in 1.. {
            let base = self.dir.path().join(n.to_string());
            let Ok(env) = std::fs::read_to_string(base.with_extension("json")) else {
                break;
            };
            let v: serde_json::Value = serde_json::from_str(&env).expect("envelope");
            let to = v["to"]
                .as_array()
                .expect("to")
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect();
            out.push((
                to,
                std::fs::read_to_string(base.with_extension("eml")).expect("eml"),
            ));
        }
        out
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The plain-text part of a message, decoded.
pub fn plain_text(raw: &str) -> String {
    let mail = mailparse::parse_mail(raw.as_bytes()).expect("a MIME message");
    let part = mail
        .subparts
        .iter()
        .find(|p| p.ctype.mimetype == "text/plain")
        .unwrap_or(&mail);
    part.get_body().expect("body")
}

/// Open as a person would judge it: not yet met and still able to be
/// (pending, due soon or overdue), named here rather than taken from the
/// code under test.
pub fn still_open(s: cpwatch::domain::evaluate::Status) -> bool {
    use cpwatch::domain::evaluate::Status;
    matches!(s, Status::Pending | Status::DueSoon | Status::Overdue)
}

// --------------------------------------------------------------- the binary

/// The `cpwatch` binary run in `dir` as a user runs it, with none of the
/// environment's database or rules settings.
pub fn cpwatch(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cpwatch"))
        .args(args)
        .current_dir(dir)
        .env_remove("CPWATCH_DATABASE_URL")
        .env_remove("CPWATCH_RULES_DIR")
        .output()
        .expect("run cpwatch")
}

/// `cpwatch check --format json` of `db` as at `at`, with `extra` arguments, parsed.
pub fn check_json(dir: &Path, db: &str, at: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["check", "--format", "json", "--database", db, "--at", at];
    args.extend_from_slice(extra);
    let o = cpwatch(dir, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("json")
}

pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

// ------------------------------------------------------ service configuration

/// The service's defaults with the default board, a sender, and each
/// board's conference service and safeguarding manager at `@<board>.test`.
pub fn service_config() -> cpwatch::service::config::Config {
    let mut c = cpwatch::service::config::Config {
        default_board: "working-together-2010".into(),
        ..Default::default()
    };
    c.mail.from = "cpwatch <cpwatch@test.cpwatch.example>".into();
    for &b in BOARDS {
        c.boards.insert(
            b.into(),
            cpwatch::service::config::BoardContacts {
                conference_service: Some(format!("cs@{b}.test")),
                safeguarding_manager: Some(format!("sm@{b}.test")),
                met_notices: None,
            },
        );
    }
    c
}

/// Mail to the test SMTP server on loopback, in plain text.
pub fn plaintext_loopback(c: &mut cpwatch::service::config::Config, port: u16) {
    c.mail.transport = cpwatch::service::config::TransportKind::Smtp;
    c.mail.smtp.host = "127.0.0.1".into();
    c.mail.smtp.port = port;
    c.mail.smtp.tls = cpwatch::service::config::TlsMode::None;
    c.mail.smtp.allow_plaintext = true;
    c.reminders.backoff_seconds = 60;
}
