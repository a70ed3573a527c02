//! The `cpwatch` binary as a user runs it: demo, check, explain, migrate and
//! rules check, on the embedded database and on PostgreSQL.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod common;

use std::path::Path;
use std::process::Command;

use clap::CommandFactory;
use common::*;

const AT: &str = "2026-11-23T09:00:00Z";

#[test]
fn the_command_line_is_well_formed_and_every_command_says_what_it_does() {
    cpwatch::cli::Cli::command().debug_assert();
    let dir = tempfile::tempdir().expect("tempdir");
    let help = cpwatch(dir.path(), &["--help"]);
    assert!(help.status.success());
    for (cmd, words) in [
        (vec!["check", "--help"], "obligations"),
        (vec!["explain", "--help"], "timeline"),
        (vec!["demo", "--help"], "synthetic"),
        (vec!["migrate", "--help"], "tables"),
        (vec!["rules", "check", "--help"], "file:line:column"),
    ] {
        let o = cpwatch(dir.path(), &cmd);
        assert!(
            o.status.success() && stdout(&o).contains(words),
            "{cmd:?}: {}",
            stdout(&o)
        );
        assert!(stdout(&help).contains(cmd[0]));
    }
}

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    // As under systemd: stderr goes to journald, not a terminal.
    let dir = tempfile::tempdir().expect("tempdir");
    let o = Command::new(env!("CARGO_BIN_EXE_cpwatch"))
        .args(["demo", "--at", AT])
        .current_dir(dir.path())
        .env("CPWATCH_LOG", "debug")
        .env_remove("NO_COLOR")
        .output()
        .expect("run cpwatch");
    assert!(o.status.success(), "{}", stderr(&o));
    let log = stderr(&o);
    assert!(log.contains("DEBUG"), "no log lines to check: {log}");
    assert!(
        !log.contains('\x1b'),
        "escape codes in a piped log: {log:?}"
    );
}

#[test]
fn demo_then_check_and_explain_on_the_embedded_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = cpwatch(dir.path(), &["demo", "--at", AT]);
    assert!(demo.status.success(), "{}", stderr(&demo));
    let text = stdout(&demo);
    assert!(
        text.contains("overdue") && text.contains("data-quality findings"),
        "{text}"
    );
    assert!(
        dir.path().join("cpwatch.db").exists(),
        "the embedded default is a file in the working directory"
    );

    let json = cpwatch(dir.path(), &["check", "--format", "json", "--at", AT]);
    assert!(json.status.success(), "{}", stderr(&json));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("valid JSON");
    assert_eq!(v["evaluated_at"], "2026-11-23T09:00:00+00:00");
    let obligations = v["obligations"].as_array().expect("obligations");
    assert!(obligations.len() > 3000);
    // The table is for a person: what needs action, then a line about the rest.
    let table = stdout(&cpwatch(dir.path(), &["check", "--at", AT]));
    assert!(
        table.starts_with("What needs action now") && table.contains("In all: "),
        "{table}"
    );
    assert!(
        !table.contains(" met_late "),
        "settled obligations are summed up, not listed"
    );
    let all = stdout(&cpwatch(dir.path(), &["check", "--all", "--at", AT]));
    assert!(
        all.contains(" met_late ") && all.contains("--format csv"),
        "the whole table"
    );
    // JSON Lines: the same records, one a line, in the same order.
    let jsonl = cpwatch(dir.path(), &["check", "--format", "jsonl", "--at", AT]);
    assert!(jsonl.status.success(), "{}", stderr(&jsonl));
    let lines: Vec<serde_json::Value> = stdout(&jsonl)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object a line"))
        .collect();
    assert_eq!(&lines, obligations);
    for o in obligations.iter().take(500) {
        for field in [
            "rule",
            "board",
            "child",
            "conference",
            "agency",
            "starts_at",
            "due_at",
            "met_at",
            "status",
            "late_working_days",
            "exception_reason",
        ] {
            assert!(o.get(field).is_some(), "{field} missing in {o}");
        }
        let due = o["due_at"].as_str().expect("due_at");
        assert!(
            due.ends_with("+00:00") || due.ends_with("+01:00"),
            "{due} carries the local offset"
        );
    }
    // Obligations about a conference as a whole or one agency's report name no child.
    assert!(obligations
        .iter()
        .filter(|o| o["rule"] == "report-to-chair")
        .all(|o| o["child"].is_null() && o["agency"].is_string()));
    assert!(v["findings"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x["kind"] == "unknown_agency")));

    let filtered = cpwatch(
        dir.path(),
        &[
            "check",
            "--format",
            "json",
            "--at",
            AT,
            "--board",
            "bolton",
            "--status",
            "missed",
            "--rule",
            "report-to-chair",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&filtered.stdout).expect("json");
    let list = v["obligations"].as_array().expect("list");
    assert!(
        !list.is_empty()
            && list.iter().all(|o| o["board"] == "bolton"
                && o["status"] == "missed"
                && o["rule"] == "report-to-chair")
    );

    let csv = cpwatch(dir.path(), &["check", "--format", "csv", "--at", AT]);
    assert!(stdout(&csv).starts_with("key,rule,title,kind,board,board_version,child,conference,agency,team,occurrence,starts_at,due_at,met_at,status,late_working_days,exception_reason\n"));

    let table = cpwatch(dir.path(), &["check", "--at", AT, "--status", "overdue"]);
    let text = stdout(&table);
    assert!(
        text.lines().nth(3).is_some_and(|l| l.contains("overdue")),
        "{text}"
    );

    let reference = obligations
        .iter()
        .find(|o| o["rule"] == "icpc-timeliness" && o["status"] == "met")
        .and_then(|o| o["child"].as_str())
        .expect("a child");
    let explain = cpwatch(dir.path(), &["explain", reference, "--at", AT]);
    assert!(explain.status.success(), "{}", stderr(&explain));
    let text = stdout(&explain);
    assert!(
        text.contains("Timeline")
            && text.contains("icpc-timeliness: strategy discussion")
            && text.contains("source: ")
            && (text.contains(", paragraph ") || text.contains(", section \u{201c}"))
            && !text.contains(".txt"),
        "{text}"
    );

    let missing = cpwatch(dir.path(), &["explain", "NO-SUCH-CHILD"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("no child has the reference"));

    // The same seed and instant make the same data.
    let again = cpwatch(dir.path(), &["demo", "--at", AT]);
    assert_eq!(stdout(&again), stdout(&demo));
}

#[tokio::test]
async fn explain_words_a_deadline_as_a_qa_officer_would_check_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("case.db").display());
    let s = cpwatch::store::connect(&url, true).await.expect("sqlite");
    s.migrate(false).await.expect("migrate");
    s.replace_case_data(&fixture("pan-dorset"))
        .await
        .expect("write");
    let o = cpwatch(
        dir.path(),
        &[
            "explain",
            "TEST-1",
            "--database",
            &url,
            "--at",
            "2027-11-30T12:00:00Z",
        ],
    );
    let text = stdout(&o);
    assert!(
        text.contains("icpc-timeliness: strategy discussion Mon 21 Dec 2026 + 15 working days (skipping the bank holidays 25 Dec, 28 Dec and 1 Jan, and the weekends) = Thu 14 Jan 2027, 23:59; held Wed 13 Jan 2027, 10:00: met"),
        "{text}"
    );
    assert!(text.contains("report-to-chair: conference Wed 13 Jan 2027, 10:00 - 24 hours = Tue 12 Jan 2027, 10:00; received Fri 8 Jan 2027, 12:00: met"), "{text}");
    assert!(text.contains("report-to-chair: conference Wed 7 Apr 2027 - 5 working days (skipping the weekends) = Wed 31 Mar 2027, 23:59; received Tue 30 Mar 2027, 12:00: met"), "{text}");
    assert!(text.contains("\"all initial child protection conferences should take place within 15 working days of the strategy discussion"), "{text}");
}

/// Case values reach the terminal as text: an escape sequence in a
/// reference or a conference id is shown, not obeyed, by `check`'s table
/// and by `explain` (fails if either writes the ESC byte).
#[tokio::test]
async fn control_characters_in_case_values_are_shown_not_obeyed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("case.db").display());
    let s = cpwatch::store::connect(&url, true).await.expect("sqlite");
    s.migrate(false).await.expect("migrate");
    let mut state = fixture("pan-dorset");
    let evil = "TEST-1\x1b]0;owned\x07\x1b[2J";
    state.children[0].reference = evil.into();
    state.conferences[0].minutes_circulated_at = None;
    s.replace_case_data(&state).await.expect("write");
    for args in [
        vec![
            "check",
            "--all",
            "--database",
            &url,
            "--at",
            "2027-11-30T12:00:00Z",
        ],
        vec![
            "explain",
            evil,
            "--database",
            &url,
            "--at",
            "2027-11-30T12:00:00Z",
        ],
    ] {
        let o = cpwatch(dir.path(), &args);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = stdout(&o);
        assert!(
            !o.stdout.contains(&0x1b) && !o.stdout.contains(&0x07),
            "{text}"
        );
        assert!(text.contains("TEST-1\\u{1b}]0;owned\\u{7}"), "{text}");
    }
}

#[test]
fn rules_check_passes_the_shipped_rules_and_points_at_broken_ones() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ok = cpwatch(repo, &["rules", "check", "rules/"]);
    assert!(ok.status.success(), "{}{}", stdout(&ok), stderr(&ok));
    assert!(stdout(&ok).contains("rules OK: 6 boards"));

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        repo.join("rules/working-together-2010.toml"),
        dir.path().join("working-together-2010.toml"),
    )
    .expect("copy");
    let broken = std::fs::read_to_string(repo.join("rules/bolton.toml"))
        .expect("bolton")
        .replace(
            "offset = \"+15 working days\"",
            "offset = \"+15 wrking days\"",
        );
    std::fs::write(dir.path().join("bolton.toml"), &broken).expect("write");
    let bad = cpwatch(dir.path(), &["rules", "check", "."]);
    assert_eq!(bad.status.code(), Some(1));
    let line = broken
        .lines()
        .position(|l| l.contains("wrking"))
        .expect("line")
        + 1;
    assert!(
        stdout(&bad).contains(&format!(
            "bolton.toml:{line}:10: offset: offset \"+15 wrking days\": unknown unit"
        )),
        "{}",
        stdout(&bad)
    );

    // A command that needs the rules refuses to run on broken ones, with status 2.
    let check = cpwatch(dir.path(), &["check", "--rules", "."]);
    assert_eq!(check.status.code(), Some(2));
    assert!(stderr(&check).contains("wrking"), "{}", stderr(&check));
}

#[test]
fn user_errors_exit_2_with_a_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = cpwatch(dir.path(), &["check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cpwatch demo"), "{}", stderr(&o));
    let o = cpwatch(dir.path(), &["check", "--at", "next week"]);
    assert_eq!(o.status.code(), Some(2));
    let o = cpwatch(dir.path(), &["check", "--status", "late"]);
    assert_eq!(o.status.code(), Some(2));
    // It names every status there is, the newer ones too.
    assert!(
        stderr(&o).contains("overdue, missed, met"),
        "{}",
        stderr(&o)
    );
    let o = cpwatch(dir.path(), &["check", "--database", "oracle://x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a database URL"));
}

#[tokio::test]
async fn demo_will_not_replace_case_data_it_did_not_create() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("live.db").display());
    let s = cpwatch::store::connect(&url, true).await.expect("sqlite");
    s.migrate(false).await.expect("migrate");
    s.replace_case_data(&fixture("bolton"))
        .await
        .expect("write");
    let o = cpwatch(dir.path(), &["demo", "--database", &url]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("did not create"), "{}", stderr(&o));
    assert_eq!(
        s.count_children().await.expect("count"),
        1,
        "nothing was replaced"
    );
    let o = cpwatch(
        dir.path(),
        &["demo", "--database", &url, "--force", "--children", "40"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[tokio::test]
async fn check_and_explain_work_against_postgresql() {
    let db = TempDb::new("cli").await;
    let pg = db.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let m = cpwatch(dir.path(), &["migrate", "--database", &pg]);
    assert!(
        m.status.success() && stdout(&m).contains("applied migration 0001_case_tables"),
        "{}{}",
        stdout(&m),
        stderr(&m)
    );
    let d = cpwatch(
        dir.path(),
        &["demo", "--database", &pg, "--at", AT, "--children", "120"],
    );
    assert!(d.status.success(), "{}", stderr(&d));
    let on_pg = cpwatch(
        dir.path(),
        &["check", "--database", &pg, "--format", "json", "--at", AT],
    );
    assert!(on_pg.status.success(), "{}", stderr(&on_pg));
    let lite = cpwatch(dir.path(), &["demo", "--at", AT, "--children", "120"]);
    assert!(lite.status.success());
    let on_sqlite = cpwatch(dir.path(), &["check", "--format", "json", "--at", AT]);
    assert_eq!(
        stdout(&on_pg),
        stdout(&on_sqlite),
        "PostgreSQL and SQLite disagree"
    );
    let v: serde_json::Value = serde_json::from_slice(&on_pg.stdout).expect("json");
    let child = v["obligations"]
        .as_array()
        .and_then(|l| l.iter().find_map(|o| o["child"].as_str()))
        .expect("child")
        .to_string();
    let e = cpwatch(
        dir.path(),
        &["explain", &child, "--database", &pg, "--at", AT],
    );
    assert!(
        e.status.success() && stdout(&e).contains("Obligations"),
        "{}",
        stderr(&e)
    );
    db.finish().await;
}

#[test]
fn a_snooze_is_added_shown_exported_listed_and_ended() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(cpwatch(dir.path(), &["demo", "--at", AT]).status.success());
    let json = cpwatch(dir.path(), &["check", "--format", "json", "--at", AT]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("valid JSON");
    let overdue = v["obligations"]
        .as_array()
        .expect("obligations")
        .iter()
        .find(|o| o["status"] == "overdue" && o["child"].is_string())
        .expect("an overdue duty about a child")
        .clone();
    let child = overdue["child"].as_str().expect("child");
    let made = "2026-11-20T09:00:00Z";
    let add = |args: &[&str]| {
        let mut all = vec!["snooze", "add", "--at", made];
        all.extend_from_slice(args);
        cpwatch(dir.path(), &all)
    };
    // What it covers must exist; it needs a reason, who agreed it and an end.
    for (args, says) in [
        (
            vec![
                "--child",
                "NO-SUCH",
                "--for",
                "1w",
                "--reason",
                "r",
                "--agreed-by",
                "a",
            ],
            "no child has the reference",
        ),
        (
            vec![
                "--child",
                child,
                "--for",
                "1w",
                "--reason",
                " ",
                "--agreed-by",
                "a",
            ],
            "--reason is empty",
        ),
        (
            vec![
                "--child",
                child,
                "--for",
                "20w",
                "--reason",
                "r",
                "--agreed-by",
                "a",
            ],
            "at most 92 days",
        ),
        (
            vec![
                "--child",
                child,
                "--until",
                "2026-11-01",
                "--reason",
                "r",
                "--agreed-by",
                "a",
            ],
            "not after",
        ),
        (
            vec![
                "--child",
                child,
                "--for",
                "soon",
                "--reason",
                "r",
                "--agreed-by",
                "a",
            ],
            "10d or 2w",
        ),
        (
            vec![
                "--obligation",
                "nonsense",
                "--for",
                "1w",
                "--reason",
                "r",
                "--agreed-by",
                "a",
            ],
            "not an obligation key",
        ),
    ] {
        let o = add(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
    let o = add(&[
        "--child",
        child,
        "--until",
        "2026-12-04",
        "--reason",
        "family abroad until December",
        "--agreed-by",
        "Service manager",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o)
        .split_whitespace()
        .nth(1)
        .expect("id")
        .trim_end_matches(':')
        .to_string();
    // Shown in explain, for open duties only, and still overdue.
    let explain = stdout(&cpwatch(dir.path(), &["explain", child, "--at", AT]));
    assert!(
        explain.contains(&format!("reminders snoozed until Sat 5 Dec 2026 00:00 UTC, agreed by Service manager: family abroad until December (snooze {id})")),
        "{explain}"
    );
    assert!(explain.contains("overdue"), "{explain}");
    // The export shows it beside the duty, whose status is unchanged.
    let csv_dir = dir.path().join("csv");
    let board = overdue["board"].as_str().expect("board");
    let e = cpwatch(
        dir.path(),
        &[
            "export",
            "--board",
            board,
            "--from",
            "2020-01-01",
            "--to",
            "2026-11-23",
            "--format",
            "csv",
            "--out",
            csv_dir.to_str().expect("utf8"),
            "--at",
            AT,
        ],
    );
    assert!(e.status.success(), "{}", stderr(&e));
    let mut r = csv::Reader::from_path(csv_dir.join("obligations.csv")).expect("csv");
    let headers = r.headers().expect("headers").clone();
    let col = |n: &str| headers.iter().position(|h| h == n).expect(n);
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.expect("row")).collect();
    let snoozed: Vec<&csv::StringRecord> = rows
        .iter()
        .filter(|x| !x[col("snoozed")].is_empty())
        .collect();
    assert!(!snoozed.is_empty());
    for x in &snoozed {
        assert_eq!(&x[col("child")], child);
        assert!(
            ["overdue", "pending", "due_soon"].contains(&&x[col("status")]),
            "{x:?}"
        );
        assert!(x[col("snoozed")].contains(&id), "{x:?}");
    }
    assert!(
        rows.iter()
            .any(|x| &x[col("child")] == child && x[col("snoozed")].is_empty()),
        "settled duties are not marked"
    );
    // Listed while in force; ended early, it is history.
    let list = stdout(&cpwatch(dir.path(), &["snooze", "list", "--at", AT]));
    assert!(list.starts_with(&format!("{id}\tactive\tchild {child}\tuntil 2026-12-05T00:00:00Z\tagreed by Service manager\tfamily abroad until December")), "{list}");
    let expire = |at: &str| {
        cpwatch(
            dir.path(),
            &["snooze", "expire", &id, "--by", "Team manager", "--at", at],
        )
    };
    let end = expire("2026-11-24T10:00:00Z");
    assert!(end.status.success(), "{}", stderr(&end));
    let again = expire("2026-11-24T11:00:00Z");
    assert_eq!(again.status.code(), Some(2));
    let later = "2026-11-25T09:00:00Z";
    assert_eq!(
        stdout(&cpwatch(dir.path(), &["snooze", "list", "--at", later])),
        ""
    );
    let history = stdout(&cpwatch(
        dir.path(),
        &["snooze", "list", "--all", "--at", later],
    ));
    assert!(
        history.contains(&format!(
            "{id}\tended 2026-11-24T10:00:00Z by Team manager\tchild {child}"
        )),
        "{history}"
    );
    assert!(!stdout(&cpwatch(dir.path(), &["explain", child, "--at", later])).contains("snoozed"));
}
