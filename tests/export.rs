//! The audit export: every sheet from one obligation list, period bounds,
//! the national comparison worked by hand, owner-only files, LibreOffice
//! opening the workbook, and the command on SQLite and PostgreSQL.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;
use cpwatch::domain::calendar::Calendar;
use cpwatch::domain::case::CaseState;
use cpwatch::domain::evaluate::{Evaluation, Status};
use cpwatch::report::export::{self, Report};

const AT: &str = "2026-11-23T09:00:00Z";

fn report(state: &CaseState, eval: &Evaluation, board: &str, from: &str, to: &str) -> Report {
    let rules = built_in_rules();
    let calendar = Calendar::new(holidays(), "england-and-wales", chrono_tz::Europe::London)
        .expect("calendar");
    export::build(&export::Input {
        eval: &eval.borrowed(),
        state,
        rules: &rules,
        calendar: &calendar,
        board,
        default_board: "working-together-2010",
        from: d(from),
        to: d(to),
        generated_at: t(AT),
        snoozes: &Default::default(),
    })
}

fn demo() -> (CaseState, Evaluation) {
    let state = cpwatch::synthetic::demo::generate(21, 400, t(AT), &holidays()).expect("demo");
    let e = eval(&state, AT);
    (state, e)
}

#[test]
fn every_sheet_is_computed_from_the_same_obligations() {
    let (state, e) = demo();
    for board in ["barnsley", "bolton", "pan-dorset"] {
        let r = report(&state, &e, board, "2025-11-01", "2026-10-31");
        assert!(r.obligations.len() > 200, "{board}");
        // The obligations are exactly the board's, due in the period, that `check` reports.
        let cal = Calendar::new(holidays(), "england-and-wales", chrono_tz::Europe::London)
            .expect("calendar");
        let expected: Vec<&cpwatch::domain::evaluate::Obligation> = e
            .obligations
            .iter()
            .filter(|o| {
                &*o.of.board == board
                    && o.of.kind != cpwatch::domain::rules::RuleKind::Notice
                    && (d("2025-11-01")..=d("2026-10-31")).contains(&cal.local_date(o.due_at))
            })
            .collect();
        assert_eq!(r.obligations.len(), expected.len());
        let mut by_status: BTreeMap<&str, u32> = BTreeMap::new();
        for o in &expected {
            *by_status.entry(o.status.as_str()).or_default() += 1;
        }
        let mut rows_by_status: BTreeMap<&str, u32> = BTreeMap::new();
        for o in &r.obligations {
            *rows_by_status.entry(o.status.as_str()).or_default() += 1;
        }
        assert_eq!(by_status, rows_by_status);

        // Summary = obligations, per rule and in total.
        let total: u32 = r.summary.iter().map(|s| s.counts.due + s.counts.void).sum();
        assert_eq!(total as usize, r.obligations.len());
        for s in &r.summary {
            let rows: Vec<_> = r
                .obligations
                .iter()
                .filter(|o| *o.rule == *s.rule)
                .collect();
            assert_eq!(
                (s.counts.due + s.counts.void) as usize,
                rows.len(),
                "{board} {}",
                s.rule
            );
            assert_eq!(
                s.counts.met_on_time as usize,
                rows.iter().filter(|o| o.status == Status::Met).count()
            );
            // By month adds up to the summary.
            let months: Vec<_> = r.by_month.iter().filter(|m| m.rule == s.rule).collect();
            assert_eq!(
                months.iter().map(|m| m.counts.due).sum::<u32>(),
                s.counts.due,
                "{board} {} by month",
                s.rule
            );
            assert_eq!(
                months.iter().map(|m| m.counts.met_late).sum::<u32>(),
                s.counts.met_late
            );
            // By agency and by team add up to the summary for the rules audited that way.
            let agencies: Vec<_> = r.by_agency.iter().filter(|a| a.rule == s.rule).collect();
            let teams: Vec<_> = r.by_team.iter().filter(|a| a.rule == s.rule).collect();
            if !agencies.is_empty() {
                assert_eq!(
                    agencies.iter().map(|a| a.counts.due).sum::<u32>(),
                    s.counts.due,
                    "{board} {} by agency",
                    s.rule
                );
                assert_eq!(
                    agencies.iter().map(|a| a.counts.outstanding).sum::<u32>(),
                    s.counts.outstanding
                );
            }
            if !teams.is_empty() {
                assert_eq!(
                    teams.iter().map(|a| a.counts.due).sum::<u32>(),
                    s.counts.due,
                    "{board} {} by team",
                    s.rule
                );
            }
            assert!(
                agencies.is_empty() || teams.is_empty(),
                "a rule is audited one way"
            );
            if let Some(share) = s.counts.on_time_share {
                let judged = s.counts.met_on_time
                    + s.counts.met_late
                    + s.counts.outstanding
                    + s.counts.missed;
                assert!(
                    (share - f64::from(s.counts.met_on_time) / f64::from(judged)).abs() < 1e-12
                );
            }
        }
        // Barnsley's report standards are audit information by agency, the authorisation by team.
        if board == "barnsley" {
            assert!(r.by_agency.iter().any(|a| a.rule == "report-to-unit"));
            assert!(r.by_team.iter().any(|a| a.rule == "sw-report-authorised"));
        }
        // Exceptions are the excepted obligations.
        let mut csv = Vec::new();
        r.write_csv_table("exceptions", &mut csv).expect("csv");
        let lines = String::from_utf8(csv).expect("utf8").lines().count();
        assert_eq!(
            lines - 1,
            r.obligations
                .iter()
                .filter(|o| o.status == Status::Excepted)
                .count()
        );
    }
}

#[test]
fn the_period_is_inclusive_in_board_local_dates() {
    let mut s = fixture("barnsley");
    conf_mut(&mut s, "CONF-1").minutes_circulated_at = None;
    let e = eval(&s, "2027-03-01T12:00:00Z");
    // The minutes were due by 23:59 on Wednesday 3 February 2027.
    let r = report(&s, &e, "barnsley", "2027-02-03", "2027-02-03");
    let minutes: Vec<_> = r
        .obligations
        .iter()
        .filter(|o| &*o.rule == "minutes-circulated")
        .collect();
    assert_eq!(minutes.len(), 1);
    assert_eq!(
        (minutes[0].status, minutes[0].working_days_late),
        (Status::Overdue, Some(18))
    );
    assert_eq!(minutes[0].deadline.to_string(), "2027-02-03 23:59:59");
    assert!(report(&s, &e, "barnsley", "2027-02-04", "2027-02-28")
        .obligations
        .iter()
        .all(|o| &*o.rule != "minutes-circulated"));
    assert!(
        report(&s, &e, "bolton", "2027-01-01", "2027-03-01")
            .obligations
            .is_empty(),
        "another board's obligations stay out"
    );
}

#[test]
fn initial_conferences_beside_the_national_figures() {
    // Strategy discussion Monday 21 December 2026, conference Wednesday 13 January 2027:
    // 14 working days (Christmas, the Boxing Day substitute and New Year's Day are not working days).
    let s = fixture("pan-dorset");
    let e = eval(&s, "2027-03-01T12:00:00Z");
    let r = report(&s, &e, "pan-dorset", "2027-01-01", "2027-01-31");
    assert_eq!(r.national.conferences, 1);
    let bands: Vec<(&str, u32)> = r
        .national
        .bands
        .iter()
        .map(|b| (b.band.as_str(), b.conferences))
        .collect();
    assert_eq!(
        bands,
        vec![("0-10", 0), ("11-15", 1), ("16-20", 0), ("21 or more", 0)]
    );
    assert_eq!(
        (r.national.within_15_share, r.national.median_working_days),
        (Some(1.0), Some(14.0))
    );
    let mut csv = Vec::new();
    r.write_csv_table("national_comparison", &mut csv)
        .expect("csv");
    let text = String::from_utf8(csv).expect("utf8");
    assert!(
        text.contains("initial conferences,1,72100") && text.contains("median working days,14,14"),
        "{text}"
    );
    // The Department counts the conferences held in its period, whenever
    // their deadline fell: held late on Wednesday 3 February, the
    // conference is February's (29 working days), not January's.
    let mut late = fixture("pan-dorset");
    conf_mut(&mut late, "CONF-1").held_at = Some(t("2027-02-03T10:00:00Z"));
    let e = eval(&late, "2027-03-01T12:00:00Z");
    let january = report(&late, &e, "pan-dorset", "2027-01-01", "2027-01-31");
    assert_eq!(january.national.conferences, 0);
    let february = report(&late, &e, "pan-dorset", "2027-02-01", "2027-02-28");
    assert_eq!(
        (
            february.national.conferences,
            february.national.median_working_days
        ),
        (1, Some(29.0))
    );
}

#[test]
fn files_are_for_their_owner_and_never_replaced_unasked() {
    let (state, e) = demo();
    let r = report(&state, &e, "bolton", "2025-11-01", "2026-10-31");
    let dir = tempfile::tempdir().expect("tempdir");
    let xlsx = dir.path().join("bolton.xlsx");
    r.write_xlsx(&xlsx, false).expect("write");
    assert_eq!(
        std::fs::metadata(&xlsx).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    let e2 = r.write_xlsx(&xlsx, false).expect_err("exists").to_string();
    assert!(e2.contains("exists") && e2.contains("--force"), "{e2}");
    r.write_xlsx(&xlsx, true).expect("forced");
    let csv = dir.path().join("bolton-csv");
    r.write_csv_dir(&csv, false).expect("csv");
    assert_eq!(
        std::fs::metadata(&csv).expect("meta").permissions().mode() & 0o777,
        0o700
    );
    let mut names: Vec<String> = std::fs::read_dir(&csv)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "by_agency.csv",
            "by_month.csv",
            "by_team.csv",
            "data_quality.csv",
            "exceptions.csv",
            "national_comparison.csv",
            "obligations.csv",
            "summary.csv"
        ]
    );
    for n in &names {
        assert_eq!(
            std::fs::metadata(csv.join(n))
                .expect("meta")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    // The documented, stable column names.
    let head = |f: &str| {
        std::fs::read_to_string(csv.join(f))
            .expect("read")
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(head("summary.csv"), "rule,title,due,met_on_time,met_late,outstanding,missed,excepted,void,on_time_share,median_working_days_late,worst_working_days_late");
    assert_eq!(head("by_agency.csv"), "rule,agency,agency_name,professional_group,due,met_on_time,met_late,outstanding,missed,excepted,void,on_time_share,median_working_days_late,worst_working_days_late");
    assert_eq!(head("by_team.csv"), "rule,team,team_name,due,met_on_time,met_late,outstanding,missed,excepted,void,on_time_share,median_working_days_late,worst_working_days_late");
    assert_eq!(head("by_month.csv"), "rule,month,due,met_on_time,met_late,outstanding,missed,excepted,void,on_time_share,median_working_days_late,worst_working_days_late");
    assert_eq!(head("obligations.csv"), "rule,title,child,conference,agency,agency_name,professional_group,team,team_name,starts,deadline,met,status,outcome,working_days_late,exception_reason,snoozed");
    assert_eq!(head("data_quality.csv"), "kind,table,row,message");
    assert!(r.write_csv_dir(&csv, false).is_err());
    assert!(r
        .write_csv_file("nonsense", &dir.path().join("x.csv"), false)
        .is_err());
}

#[test]
fn the_workbook_opens_in_libreoffice_with_every_sheet() {
    let (state, e) = demo();
    let r = report(&state, &e, "barnsley", "2025-11-01", "2026-10-31");
    let dir = tempfile::tempdir().expect("tempdir");
    let xlsx = dir.path().join("audit.xlsx");
    r.write_xlsx(&xlsx, false).expect("write");
    let profile = dir.path().join("lo-profile");
    let out = Command::new("soffice")
        .arg(format!(
            "-env:UserInstallation=file://{}",
            profile.display()
        ))
        .args([
            "--headless",
            "--convert-to",
            "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,-1",
            "--outdir",
        ])
        .arg(dir.path())
        .arg(&xlsx)
        .output()
        .expect("LibreOffice (apt-get install libreoffice-calc-nogui; .ci/run does)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sheet = |name: &str| {
        std::fs::read_to_string(dir.path().join(format!("audit-{name}.csv")))
            .unwrap_or_else(|_| panic!("sheet {name} missing"))
    };
    for name in [
        "Summary",
        "By agency",
        "By team",
        "By month",
        "Obligations",
        "Exceptions",
        "Data quality",
        "National comparison",
    ] {
        assert!(!sheet(name).is_empty(), "{name}");
    }
    assert!(sheet("Summary").contains("Barnsley Safeguarding Children Board (barnsley)"));
    assert_eq!(
        sheet("Obligations").lines().count(),
        r.obligations.len() + 1
    );
    assert!(sheet("National comparison").contains("72100"));
    // Dates are real dates LibreOffice reads back, percentages are percentages.
    assert!(sheet("Obligations")
        .lines()
        .nth(1)
        .is_some_and(|l| l.contains("2025-") || l.contains("2026-")));
    assert!(sheet("Summary").contains('%'));

    // The obligations sheet is written row by row (constant memory), and still
    // is an Excel table with a frozen header and columns as wide as their longest value.
    let py = "import sys, zipfile, re\n\
z = zipfile.ZipFile(sys.argv[1])\n\
names = re.findall(r'<sheet name=\"([^\"]+)\"', z.read('xl/workbook.xml').decode())\n\
x = z.read('xl/worksheets/sheet%d.xml' % (names.index('Obligations') + 1)).decode()\n\
print('table' if '<tablePart ' in x else 'no table')\n\
print('frozen' if 'state=\"frozen\"' in x else 'not frozen')\n\
print(re.search(r'<col min=\"1\" max=\"[0-9]+\" width=\"([0-9.]+)\"', x).group(1))\n";
    let out = Command::new("python3")
        .args(["-c", py])
        .arg(&xlsx)
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.get(..2),
        Some(&["table", "frozen"][..]),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let longest_rule = r
        .obligations
        .iter()
        .map(|o| o.rule.len())
        .max()
        .unwrap_or(0);
    let width: f64 = lines.get(2).and_then(|w| w.parse().ok()).unwrap_or(0.0);
    assert!(
        width >= longest_rule as f64,
        "the Rule column is {width} wide for rule ids of up to {longest_rule} characters"
    );
}

#[tokio::test]
async fn the_command_on_the_demo_database_and_on_postgresql() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(
        cpwatch(dir.path(), &["demo", "--at", AT, "--children", "150"])
            .status
            .success()
    );
    let args = [
        "export",
        "--board",
        "pan-dorset",
        "--from",
        "2025-11-01",
        "--to",
        "2026-10-31",
        "--at",
        AT,
    ];
    let o = cpwatch(dir.path(), &args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(dir
        .path()
        .join("cpwatch-pan-dorset-2025-11-01-2026-10-31.xlsx")
        .exists());
    let o = cpwatch(dir.path(), &args);
    assert_eq!(o.status.code(), Some(2), "no overwrite without --force");
    // A temporary directory that cannot be written: told what to do, and
    // neither a file left behind nor the existing one replaced.
    let unwritable = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cpwatch"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("CPWATCH_DATABASE_URL")
            .env("TMPDIR", dir.path().join("no-such-dir"))
            .output()
            .expect("cpwatch")
    };
    let o = unwritable(&[&args[..], &["--out", "new.xlsx"]].concat());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("set TMPDIR to a writable directory"), "{err}");
    assert!(
        !dir.path().join("new.xlsx").exists(),
        "an empty file was left"
    );
    let kept = dir
        .path()
        .join("cpwatch-pan-dorset-2025-11-01-2026-10-31.xlsx");
    let before = std::fs::read(&kept).expect("the first export");
    let o = unwritable(&[&args[..], &["--force"]].concat());
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read(&kept).expect("still there"), before);
    let o = cpwatch(
        dir.path(),
        &[
            &args[..],
            &["--format", "csv", "--table", "summary", "--out", "lite.csv"],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let db = TempDb::new("export").await;
    assert!(cpwatch(
        dir.path(),
        &[
            "demo",
            "--at",
            AT,
            "--children",
            "150",
            "--database",
            &db.url()
        ]
    )
    .status
    .success());
    let o = cpwatch(
        dir.path(),
        &[
            &args[..],
            &[
                "--format",
                "csv",
                "--table",
                "summary",
                "--out",
                "pg.csv",
                "--database",
                &db.url(),
            ],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("pg.csv")).expect("pg"),
        std::fs::read_to_string(dir.path().join("lite.csv")).expect("lite")
    );
    let o = cpwatch(
        dir.path(),
        &[&args[..], &["--database", &db.url(), "--out", "pg.xlsx"]].concat(),
    );
    assert!(o.status.success());
    let o = cpwatch(
        dir.path(),
        &[
            "export",
            "--board",
            "nowhere",
            "--from",
            "2025-11-01",
            "--to",
            "2026-10-31",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    db.finish().await;
}

/// Replacing a file (`--force`) leaves one for its owner only, and never
/// writes through a symbolic link to whatever it points at.
#[test]
fn a_forced_export_replaces_the_name_for_its_owner_only() {
    let (state, e) = demo();
    let r = report(&state, &e, "bolton", "2025-11-01", "2026-10-31");
    let dir = tempfile::tempdir().expect("tempdir");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    // An older export someone made readable to all.
    let old = dir.path().join("old.csv");
    std::fs::write(&old, "old").expect("write");
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    r.write_csv_file("summary", &old, true).expect("forced");
    assert_eq!(mode(&old), 0o600);
    assert!(std::fs::read_to_string(&old)
        .expect("read")
        .starts_with("rule,title"));
    // A link to a file elsewhere: refused unasked, replaced (not followed) with --force.
    let target = dir.path().join("elsewhere.txt");
    std::fs::write(&target, "keep me").expect("write");
    let link = dir.path().join("link.xlsx");
    std::os::unix::fs::symlink(&target, &link).expect("link");
    assert!(r.write_xlsx(&link, false).is_err());
    r.write_xlsx(&link, true).expect("forced");
    assert_eq!(std::fs::read_to_string(&target).expect("read"), "keep me");
    assert!(!std::fs::symlink_metadata(&link)
        .expect("meta")
        .file_type()
        .is_symlink());
    assert_eq!(mode(&link), 0o600);
    // Nothing is left behind beside them.
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Case data that a spreadsheet would run as a formula is written to CSV as
/// text; the same value is plain text in the workbook.
#[test]
fn csv_cells_from_case_data_are_never_formulas() {
    let (mut state, _) = demo();
    let agency = state
        .agencies
        .iter_mut()
        .find(|a| a.id.as_str() == "AG-POL")
        .expect("police");
    agency.name = "=HYPERLINK(\"http://example.invalid\",\"click\")".into();
    let e = eval_with(&state, &built_in_rules(), "2026-11-23T09:00:00Z");
    let r = report(&state, &e, "bolton", "2025-11-01", "2026-10-31");
    for table in ["obligations", "by_agency"] {
        let mut out = Vec::new();
        r.write_csv_table(table, &mut out).expect("csv");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains("'=HYPERLINK("), "{table}");
        assert!(
            !text.contains(",=HYPERLINK(") && !text.contains(",\"=HYPERLINK("),
            "{table}"
        );
    }
}

/// A case value longer than a spreadsheet cell holds (32,767 characters)
/// is cut, with a note, and the workbook is written (fails if one long
/// reference refuses the whole workbook).
#[test]
fn a_value_longer_than_a_cell_is_cut_not_fatal() {
    let mut state = fixture("bolton");
    let long = format!("TEST-{}", "9".repeat(40_000));
    state.children[0].reference = long.clone().into();
    let e = eval(&state, "2027-11-30T12:00:00Z");
    let r = report(&state, &e, "bolton", "2027-01-01", "2027-11-30");
    assert!(r
        .obligations
        .iter()
        .any(|o| o.child.as_deref() == Some(long.as_str())));
    let dir = tempfile::tempdir().expect("tempdir");
    let xlsx = dir.path().join("long.xlsx");
    r.write_xlsx(&xlsx, false)
        .expect("a workbook despite the long reference");
    assert!(std::fs::metadata(&xlsx).expect("written").len() > 0);
}
