//! The Standard Safeguarding Dataset both ways: its own PostgreSQL table
//! definitions loaded into the PostgreSQL on loopback and filled with
//! synthetic rows, read live through cpwatch's views, and the same rows as
//! CSV extracts imported; both must give the same obligations.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap
)]

mod common;

use std::path::Path;

use chrono::{Duration, NaiveDate, NaiveDateTime};
use common::{cpwatch, stderr, stdout, TempDb};
use sqlx::{Connection, Executor, PgConnection};

/// One SSD table: its name, columns and rows (None is NULL; timestamps as
/// `YYYY-MM-DD HH:MM:SS`).
struct Table {
    name: &'static str,
    columns: &'static [&'static str],
    rows: Vec<Vec<Option<String>>>,
}

fn ts(t: NaiveDateTime) -> Option<String> {
    Some(t.format("%Y-%m-%d %H:%M:%S").to_string())
}

fn s(v: impl ToString) -> Option<String> {
    Some(v.to_string())
}

/// Synthetic SSD rows for `n` people: adults the child protection tables do
/// not name, unborn children, enquiries closed with no further action,
/// conferences not yet held, transfers in, the authority's own target dates
/// (some wrong), plans with reviews and visits, open and closed involvements.
fn synthetic(n: usize) -> Vec<Table> {
    let day = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").expect("date");
    let at = |d: NaiveDate, h: u32, m: u32| d.and_hms_opt(h, m, 0).expect("time");
    let mut person = Vec::new();
    let mut cin = Vec::new();
    let mut s47 = Vec::new();
    let mut icpc = Vec::new();
    let mut plans = Vec::new();
    let mut reviews = Vec::new();
    let mut visits = Vec::new();
    let mut invo = Vec::new();
    let categories = [
        "Neglect",
        "Physical abuse",
        "Emotional abuse",
        "Sexual abuse",
        "Multiple",
        "NEG",
    ];
    for i in 1..=n {
        let id = format!("P{i:04}");
        let unborn = i % 17 == 0;
        let dob = (!unborn).then(|| day("2010-01-01") + Duration::days((i * 37 % 4000) as i64));
        let expected = unborn.then(|| day("2026-05-01") + Duration::days(i as i64 % 90));
        person.push(vec![
            s(&id),
            Some(format!("Forename{i}")),
            dob.map(|d| at(d, 0, 0)).and_then(ts),
            expected.map(|d| at(d, 0, 0)).and_then(ts),
        ]);
        let referral = day("2025-06-02") + Duration::days((i * 3 % 280) as i64);
        invo.push(vec![
            Some(format!("INV{i}-a")),
            Some(format!("PR{}", i % 15)),
            Some(format!("Team {}", i % 4)),
            s(&id),
            ts(at(referral, 9, 0)),
            None,
        ]);
        invo.push(vec![
            Some(format!("INV{i}-b")),
            Some(format!("PR{}", (i + 3) % 15)),
            Some(format!("Team {}", (i + 1) % 4)),
            s(&id),
            ts(at(referral - Duration::days(30), 9, 0)),
            ts(at(referral, 8, 0)),
        ]);
        if i % 10 == 0 {
            // An adult: in ssd_person and involvements only.
            continue;
        }
        cin.push(vec![Some(format!("R{i}")), s(&id), ts(at(referral, 9, 15))]);
        let start = referral + Duration::days(1);
        let nfa = match i % 7 {
            0 => None,
            1 | 4 => s("Y"),
            _ => s("N"),
        };
        s47.push(vec![
            Some(format!("S{i}")),
            s(&id),
            ts(at(start, if i % 2 == 0 { 14 } else { 0 }, 0)),
            nfa.clone(),
        ]);
        if nfa.as_deref() == Some("Y") || i % 4 == 3 {
            continue;
        }
        let held = start + Duration::days(10 + (i % 16) as i64);
        let target = start + Duration::days(if i % 3 == 0 { 21 } else { 23 });
        let plan = i % 3 != 0;
        icpc.push(vec![
            Some(format!("{i}")),
            s(&id),
            s(if i % 23 == 0 { "Y" } else { "N" }),
            ts(at(target, 0, 0)),
            (i % 11 != 0).then(|| at(held, 10, 0)).and_then(ts),
            s(if plan { "Y" } else { "N" }),
        ]);
        if !plan || i % 11 == 0 {
            continue;
        }
        let ended = (i % 2 == 0).then(|| held + Duration::days(200));
        plans.push(vec![
            Some(format!("PL{i}")),
            s(&id),
            ts(at(held, 0, 0)),
            ended.map(|d| at(d, 0, 0)).and_then(ts),
            s(categories[i % 6]),
            (i % 5 == 0).then(|| "emotional abuse".to_string()),
        ]);
        // Review ids collide with conference ids on purpose: the views and
        // the import must keep them apart.
        let first = held + Duration::days(85 + (i % 20) as i64);
        reviews.push(vec![
            Some(format!("{i}")),
            s(&id),
            Some(format!("PL{i}")),
            ts(at(held + Duration::days(91), 0, 0)),
            ts(at(first, 11, 30)),
            s("Y"),
        ]);
        reviews.push(vec![
            Some(format!("{i}-2")),
            s(&id),
            Some(format!("PL{i}")),
            ts(at(first + Duration::days(182), 0, 0)),
            (i % 4 == 0)
                .then(|| at(first + Duration::days(170 + (i % 30) as i64), 11, 0))
                .and_then(ts),
            match i % 3 {
                0 => None,
                1 => s("N"),
                _ => s("Y"),
            },
        ]);
        for k in 0..4 {
            visits.push(vec![
                Some(format!("V{i}-{k}")),
                s(&id),
                ts(at(
                    held + Duration::days(10 * (k + 1) + (i % 3) as i64),
                    16,
                    0,
                )),
                match (i + k as usize) % 3 {
                    0 => None,
                    1 => s("Y"),
                    _ => s("N"),
                },
            ]);
        }
    }
    let professionals = (0..14)
        .map(|k| vec![Some(format!("PR{k}")), Some(format!("Worker {k}"))])
        .collect();
    vec![
        Table {
            name: "ssd_person",
            columns: &[
                "pers_person_id",
                "pers_forename",
                "pers_dob",
                "pers_expected_dob",
            ],
            rows: person,
        },
        Table {
            name: "ssd_cin_episodes",
            columns: &["cine_referral_id", "cine_person_id", "cine_referral_date"],
            rows: cin,
        },
        Table {
            name: "ssd_s47_enquiry",
            columns: &[
                "s47e_s47_enquiry_id",
                "s47e_person_id",
                "s47e_s47_start_date",
                "s47e_s47_nfa",
            ],
            rows: s47,
        },
        Table {
            name: "ssd_initial_cp_conference",
            columns: &[
                "icpc_icpc_id",
                "icpc_person_id",
                "icpc_icpc_transfer_in",
                "icpc_icpc_target_date",
                "icpc_icpc_date",
                "icpc_icpc_outcome_cp_flag",
            ],
            rows: icpc,
        },
        Table {
            name: "ssd_cp_plans",
            columns: &[
                "cppl_cp_plan_id",
                "cppl_person_id",
                "cppl_cp_plan_start_date",
                "cppl_cp_plan_end_date",
                "cppl_cp_plan_initial_category",
                "cppl_cp_plan_latest_category",
            ],
            rows: plans,
        },
        Table {
            name: "ssd_cp_reviews",
            columns: &[
                "cppr_cp_review_id",
                "cppr_person_id",
                "cppr_cp_plan_id",
                "cppr_cp_review_due",
                "cppr_cp_review_date",
                "cppr_cp_review_outcome_continue_cp",
            ],
            rows: reviews,
        },
        Table {
            name: "ssd_cp_visits",
            columns: &[
                "cppv_cp_visit_id",
                "cppv_person_id",
                "cppv_cp_visit_date",
                "cppv_cp_visit_seen_alone",
            ],
            rows: visits,
        },
        Table {
            name: "ssd_involvements",
            columns: &[
                "invo_involvements_id",
                "invo_professional_id",
                "invo_professional_team",
                "invo_person_id",
                "invo_involvement_start_date",
                "invo_involvement_end_date",
            ],
            rows: invo,
        },
        Table {
            name: "ssd_professionals",
            columns: &["prof_professional_id", "prof_professional_name"],
            rows: professionals,
        },
    ]
}

/// The rows as INSERT statements.
fn inserts(tables: &[Table]) -> String {
    let mut sql = String::new();
    for t in tables {
        for row in &t.rows {
            let values: Vec<String> = row
                .iter()
                .map(|v| match v {
                    Some(v) => format!("'{}'", v.replace('\'', "''")),
                    None => "NULL".into(),
                })
                .collect();
            sql.push_str(&format!(
                "INSERT INTO {} ({}) VALUES ({});\n",
                t.name,
                t.columns.join(", "),
                values.join(", ")
            ));
        }
    }
    sql
}

/// The rows as the CSV extracts SQL Server's tools write: timestamps with
/// milliseconds on every other row, NULL written out on every third.
fn extracts(tables: &[Table], dir: &Path) {
    for t in tables {
        let mut w = csv::Writer::from_path(dir.join(format!("{}.csv", t.name))).expect("csv");
        w.write_record(t.columns.iter().map(|c| c.to_ascii_uppercase()))
            .expect("header");
        for (n, row) in t.rows.iter().enumerate() {
            let fields: Vec<String> = row
                .iter()
                .map(|v| match v {
                    Some(v) if n % 2 == 0 && v.len() == 19 && v.as_bytes()[10] == b' ' => {
                        format!("{v}.000")
                    }
                    Some(v) => v.clone(),
                    None if n % 3 == 0 => "NULL".into(),
                    None => String::new(),
                })
                .collect();
            w.write_record(&fields).expect("row");
        }
        w.flush().expect("flush");
    }
}

/// As at the end of September 2026, Barnsley's rules (which time pre-birth
/// conferences apart from initial ones) for children of no board.
fn at_sept(dir: &Path, db: &str) -> serde_json::Value {
    common::check_json(
        dir,
        db,
        "2026-09-30T12:00:00Z",
        &["--default-board", "barnsley"],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn views_over_the_ssd_and_its_csv_extracts_give_the_same_obligations() {
    let db = TempDb::new("ssd").await;
    let tables = synthetic(400);
    let ddl = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ssd/ssd_cp_tables_postgres.sql"),
    )
    .expect("the SSD's definitions");
    {
        let mut c = PgConnection::connect(&db.url()).await.expect("connect");
        c.execute("CREATE SCHEMA ssd; SET search_path TO ssd;")
            .await
            .expect("schema");
        sqlx::raw_sql(&ddl)
            .execute(&mut c)
            .await
            .expect("SSD tables");
        sqlx::raw_sql(&inserts(&tables))
            .execute(&mut c)
            .await
            .expect("rows");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let o = cpwatch(
        dir.path(),
        &[
            "import",
            "ssd-views",
            "--ssd-schema",
            "ssd",
            "--database",
            &db.url(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("children"), "{}", stdout(&o));
    let views = format!("{}?options=-c%20search_path%3Dcpwatch_ssd", db.url());
    let live = at_sept(dir.path(), &views);

    let csv = dir.path().join("extracts");
    std::fs::create_dir(&csv).expect("dir");
    extracts(&tables, &csv);
    let o = cpwatch(
        dir.path(),
        &["import", "ssd", "extracts", "--database", "sqlite://ssd.db"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("; 0 rejected"), "{}", stdout(&o));
    let imported = at_sept(dir.path(), "sqlite://ssd.db");
    // The same extracts again: the same state (ids are the SSD's own).
    let o = cpwatch(
        dir.path(),
        &["import", "ssd", "extracts", "--database", "sqlite://ssd.db"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(at_sept(dir.path(), "sqlite://ssd.db"), imported);

    let obligations = live["obligations"].as_array().expect("obligations");
    assert!(obligations.len() > 500, "{}", obligations.len());
    assert_eq!(live["obligations"], imported["obligations"]);
    assert_eq!(live["findings"], imported["findings"]);
    assert_eq!(live["summary"], imported["summary"]);
    // What the data holds is judged: held on time and late, void where the
    // enquiry needed no conference, reviews, and the authority's own dates.
    let count = |rule: &str, status: &str| {
        obligations
            .iter()
            .filter(|o| o["rule"] == rule && o["status"] == status)
            .count()
    };
    for (rule, status) in [
        ("icpc-timeliness", "met"),
        ("icpc-timeliness", "met_late"),
        ("icpc-timeliness", "void"),
        ("icpc-timeliness", "overdue"),
        ("first-review", "met"),
        ("subsequent-review", "overdue"),
        ("pre-birth-conference", "met"),
    ] {
        assert!(
            count(rule, status) > 0,
            "{rule} {status}: {:?}",
            obligations
                .iter()
                .filter(|o| o["rule"] == rule)
                .map(|o| o["status"].as_str())
                .collect::<Vec<_>>()
        );
    }
    let findings = live["findings"].as_array().expect("findings");
    let kinds = |k: &str| findings.iter().filter(|f| f["kind"] == k).count();
    assert!(kinds("target_differs") > 0);
    assert!(
        findings.iter().any(|f| f["kind"] == "target_differs"
            && f["row"].as_str().is_some_and(|r| r.starts_with("review/"))),
        "a review's due date is checked too"
    );
    assert!(kinds("not_recorded") > 0);
    // No names leave: the child is its SSD person id.
    assert!(!serde_json::to_string(&live)
        .expect("json")
        .contains("Forename"));
    db.finish().await;
}

#[test]
fn an_extract_row_that_cannot_be_read_is_placed_and_the_rest_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let x = dir.path();
    std::fs::write(
        x.join("ssd_person.csv"),
        "pers_person_id,pers_dob\nC1,2015-03-01\nC2,01/02/2016\n",
    )
    .expect("write");
    std::fs::write(
        x.join("ssd_s47_enquiry.csv"),
        "s47e_s47_enquiry_id,s47e_person_id,s47e_s47_start_date,s47e_s47_nfa\n\
         S1,C1,2026-01-05 10:00:00,N\n\
         S2,C2,yesterday,N\n\
         S3,C2,2026-01-06,maybe\n\
         S1,C2,2026-01-07,N\n\
         S4,C9,2026-01-07,N\n",
    )
    .expect("write");
    let o = cpwatch(x, &["import", "ssd", ".", "--database", "sqlite://x.db"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for placed in [
        "ssd_s47_enquiry.csv: line 3, column s47e_s47_start_date: \"yesterday\" is not a date or time",
        "ssd_s47_enquiry.csv: line 4, column s47e_s47_nfa: \"maybe\" is not Y or N",
        "ssd_s47_enquiry.csv: line 5, column s47e_s47_enquiry_id: \"S1\" is the id of an earlier row",
        "ssd_s47_enquiry S4: person \"C9\" is not in ssd_person.csv",
    ] {
        assert!(stderr(&o).contains(placed), "{placed}\n{}", stderr(&o));
    }
    assert!(
        stdout(&o).contains("imported 1 children") && stdout(&o).contains("4 rejected"),
        "{}",
        stdout(&o)
    );
    let o = cpwatch(
        x,
        &["import", "ssd", "nowhere", "--database", "sqlite://x.db"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no ssd_person.csv"), "{}", stderr(&o));
}
