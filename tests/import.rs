//! Importing the files authorities already hold: the Children in Need
//! census of every schema year, read as a user runs `cpwatch import`.
#![allow(clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;

use common::{check_json, cpwatch, stderr, stdout};
use cpwatch::domain::case::CaseState;
use cpwatch::import::cin_census;

/// A census return: the 2017–2022 shape (`GenderCurrent`, yes/no as
/// true/false, the initial conference under `CINdetails`) or the current
/// one (`Sex`, yes/no as 0/1, the initial conference under `Section47`).
fn census(children: &[String]) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Message xmlns=\"http://www.dcsf.gov.uk/cin\">\n<Header><Collection><CollectionName>CIN</CollectionName><Year>2026</Year><ReferenceDate>2026-03-31</ReferenceDate></Collection></Header>\n<Children>\n{}\n</Children>\n</Message>\n",
        children.join("\n")
    )
}

fn child(id: &str, identifiers: &str, details: &[&str]) -> String {
    let cin: Vec<String> = details
        .iter()
        .map(|d| format!("<CINdetails>{d}<ReferralNFA>0</ReferralNFA></CINdetails>"))
        .collect();
    format!(
        "<Child><ChildIdentifiers><LAchildID>{id}</LAchildID>{identifiers}</ChildIdentifiers><ChildCharacteristics><Ethnicity>WBRI</Ethnicity></ChildCharacteristics>{}</Child>",
        cin.join("")
    )
}

/// Every shape the schema years take, and records with deliberate errors.
fn sample() -> String {
    census(&[
        // Current schema: Sex, 0/1, the conference under Section47, a plan
        // reviewed twice and ended on its second review.
        child(
            "NEW-1",
            "<PersonBirthDate>2016-02-01</PersonBirthDate><Sex>1</Sex>",
            &["<CINreferralDate>2025-09-01</CINreferralDate><ReferralSource>5A</ReferralSource>\
               <Section47><S47ActualStartDate>2025-09-03</S47ActualStartDate><InitialCPCtarget>2025-09-24</InitialCPCtarget><DateOfInitialCPC>2025-09-22</DateOfInitialCPC><ICPCnotRequired>0</ICPCnotRequired></Section47>\
               <ChildProtectionPlans><CPPstartDate>2025-09-22</CPPstartDate><CPPendDate>2026-03-10</CPPendDate><InitialCategoryOfAbuse>NEG</InitialCategoryOfAbuse><LatestCategoryOfAbuse>EMO</LatestCategoryOfAbuse><NumberOfPreviousCPP>0</NumberOfPreviousCPP>\
               <Reviews><CPPreviewDate>2025-12-10</CPPreviewDate><CPPreviewDate>2026-03-10</CPPreviewDate></Reviews></ChildProtectionPlans>"],
        ),
        // 2017 shape: GenderCurrent, true/false, DateOfInitialCPC under
        // CINdetails; two episodes; an enquiry that needed no conference.
        child(
            "OLD-1",
            "<PersonBirthDate>2012-05-05</PersonBirthDate><GenderCurrent>2</GenderCurrent>",
            &[
                "<CINreferralDate>2017-01-09</CINreferralDate><ReferralSource>1A</ReferralSource><DateOfInitialCPC>2017-01-30</DateOfInitialCPC>\
                 <Section47><S47ActualStartDate>2017-01-10</S47ActualStartDate><ICPCnotRequired>false</ICPCnotRequired></Section47>",
                "<CINreferralDate>2018-03-01</CINreferralDate><ReferralSource>1A</ReferralSource>\
                 <Section47><S47ActualStartDate>2018-03-02</S47ActualStartDate><ICPCnotRequired>TRUE</ICPCnotRequired></Section47>",
            ],
        ),
        // Unborn at the conference: a pre-birth conference.
        child(
            "UNBORN-1",
            "<ExpectedPersonBirthDate>2026-04-20</ExpectedPersonBirthDate><Sex>0</Sex>",
            &["<CINreferralDate>2026-01-05</CINreferralDate><ReferralSource>5A</ReferralSource>\
               <Section47><S47ActualStartDate>2026-01-06</S47ActualStartDate><DateOfInitialCPC>2026-02-02</DateOfInitialCPC><ICPCnotRequired>0</ICPCnotRequired></Section47>"],
        ),
        // Errors: a date that is not one, yes/no that is neither, a child
        // twice, a child with no LAchildID.
        child("BAD-1", "<Sex>1</Sex>", &["<CINreferralDate>2025-13-01</CINreferralDate><ReferralSource>5A</ReferralSource>"]),
        child("BAD-2", "<Sex>1</Sex>", &["<CINreferralDate>2025-10-01</CINreferralDate><ReferralSource>5A</ReferralSource><Section47><S47ActualStartDate>2025-10-02</S47ActualStartDate><ICPCnotRequired>maybe</ICPCnotRequired></Section47>"]),
        child("NEW-1", "<Sex>1</Sex>", &["<CINreferralDate>2025-10-01</CINreferralDate><ReferralSource>5A</ReferralSource>"]),
        child("", "<Sex>1</Sex>", &["<CINreferralDate>2025-10-01</CINreferralDate><ReferralSource>5A</ReferralSource>"]),
    ])
}

fn read(xml: &str) -> cpwatch::import::Imported {
    cin_census::read(
        xml.as_bytes(),
        cin_census::Options {
            file: "census.xml",
            board: Some("barnsley"),
            progress: &mut |_| {},
        },
    )
    .expect("readable")
}

fn outcome(s: &CaseState, conf: &str) -> String {
    s.conference_children
        .iter()
        .find(|c| c.conference_id == conf)
        .and_then(|c| c.outcome.as_deref())
        .unwrap_or("none")
        .to_string()
}

#[test]
fn every_schema_year_maps_onto_the_contract_and_errors_are_placed() {
    let i = read(&sample());
    let s = &i.state;
    assert_eq!(i.read, 7);
    let ids: Vec<&str> = s.children.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["NEW-1", "OLD-1", "UNBORN-1"]);
    assert!(s
        .children
        .iter()
        .all(|c| c.board.as_deref() == Some("barnsley")));
    // Referrals, enquiries (each a section 47 strategy discussion), conferences.
    assert_eq!(s.referrals.len(), 4);
    assert_eq!(s.strategy_discussions.len(), 4);
    assert!(s.strategy_discussions.iter().all(|d| d.s47_initiated));
    let kinds: Vec<(&str, &str)> = s
        .conferences
        .iter()
        .map(|c| (c.id.as_str(), c.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("NEW-1/cin1/cpp1/review1", "review"),
            ("NEW-1/cin1/cpp1/review2", "review"),
            ("NEW-1/cin1/s47-1/icpc", "initial"),
            ("OLD-1/cin1/icpc", "initial"),
            ("UNBORN-1/cin1/s47-1/icpc", "pre_birth"),
        ]
    );
    assert!(s
        .conferences
        .iter()
        .all(|c| c.status == "held" && c.held_at.is_some()));
    // London midnight at the start of the census date (BST in September).
    assert_eq!(
        s.conferences[2].held_at.map(|t| t.to_rfc3339()),
        Some("2025-09-21T23:00:00+00:00".to_string())
    );
    assert_eq!(outcome(s, "NEW-1/cin1/s47-1/icpc"), "plan");
    assert_eq!(outcome(s, "OLD-1/cin1/icpc"), "no_plan");
    assert_eq!(outcome(s, "NEW-1/cin1/cpp1/review1"), "plan_continues");
    assert_eq!(outcome(s, "NEW-1/cin1/cpp1/review2"), "plan_ended");
    let plan = &s.cp_plans[0];
    assert_eq!(
        (
            plan.started_on.to_string(),
            plan.ended_on.map(|d| d.to_string()),
            plan.category.as_deref()
        ),
        (
            "2025-09-22".into(),
            Some("2026-03-10".into()),
            Some("emotional_abuse")
        )
    );
    assert_eq!(
        s.children[2].expected_due_date.map(|d| d.to_string()),
        Some("2026-04-20".into())
    );
    let rejected: Vec<(String, String)> = i
        .rejected
        .iter()
        .map(|r| (r.place.clone(), r.reason.clone()))
        .collect();
    assert_eq!(
        rejected,
        [
            (
                "census.xml: Message[1]/Children[1]/Child[4]/CINdetails[1]/CINreferralDate[1]".to_string(),
                "\"2025-13-01\" is not a date (YYYY-MM-DD)".to_string()
            ),
            (
                "census.xml: Message[1]/Children[1]/Child[5]/CINdetails[1]/Section47[1]/ICPCnotRequired[1]".to_string(),
                "\"maybe\" is not yes or no (true/false, 1/0)".to_string()
            ),
            (
                "census.xml: Message[1]/Children[1]/Child[6]".to_string(),
                "LAchildID \"NEW-1\" appears twice (first at Message[1]/Children[1]/Child[1]); the first is kept".to_string()
            ),
            (
                "census.xml: Message[1]/Children[1]/Child[7]".to_string(),
                "LAchildID is missing".to_string()
            ),
        ]
    );
}

#[test]
fn malformed_xml_or_a_file_that_is_not_a_census_is_refused_whole() {
    for (xml, says) in [
        (
            sample().replace("</Children>", "</Child>"),
            "the XML cannot be read",
        ),
        (
            "<Message><Header/></Message>".to_string(),
            "not a Children in Need census",
        ),
    ] {
        let e = cin_census::read(
            xml.as_bytes(),
            cin_census::Options {
                file: "f.xml",
                board: None,
                progress: &mut |_| {},
            },
        )
        .expect_err("refused");
        assert!(e.starts_with("f.xml: ") && e.contains(says), "{e}");
    }
}

/// `cpwatch import KIND` of a public sample file into `sqlite://s.db`.
fn import_sample(dir: &Path, kind: &str, sample: &str) -> std::process::Output {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join(sample);
    let sample = sample.to_str().expect("utf8");
    cpwatch(
        dir,
        &["import", kind, sample, "--database", "sqlite://s.db"],
    )
}

/// A census of `children` imported into `sqlite://t.db` (with `extra`
/// arguments), and `check` of it.
fn imported(dir: &Path, children: &[String], extra: &[&str]) -> serde_json::Value {
    std::fs::write(dir.join("census.xml"), census(children)).expect("write");
    let mut args = vec![
        "import",
        "cin-census",
        "census.xml",
        "--database",
        "sqlite://t.db",
    ];
    args.extend_from_slice(extra);
    let o = cpwatch(dir, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    json_check(dir, "sqlite://t.db")
}

fn json_check(dir: &Path, db: &str) -> serde_json::Value {
    check_json(dir, db, "2026-03-31T12:00:00Z", &[])
}

#[test]
fn a_census_imported_as_a_user_runs_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("census.xml");
    std::fs::write(&file, sample()).expect("write");
    let db = "sqlite://cases.db";
    let import = |extra: &[&str]| {
        let mut args = vec![
            "import",
            "cin-census",
            "census.xml",
            "--database",
            db,
            "--board",
            "barnsley",
        ];
        args.extend_from_slice(extra);
        cpwatch(dir.path(), &args)
    };
    let o = import(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("imported 3 children") && stdout(&o).contains("4 rejected"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("rejected: census.xml: Message[1]/Children[1]/Child[4]/CINdetails[1]/CINreferralDate[1]: \"2025-13-01\" is not a date"),
        "{}",
        stderr(&o)
    );
    let first = json_check(dir.path(), db);
    // Rules whose events the census never records are not evaluated, and say so once per board.
    let rules: Vec<&str> = first["obligations"]
        .as_array()
        .expect("obligations")
        .iter()
        .map(|o| o["rule"].as_str().expect("rule"))
        .collect();
    assert!(rules.contains(&"icpc-timeliness"), "{rules:?}");
    for untellable in [
        "minutes-circulated",
        "strategy-discussion-record",
        "report-to-unit",
        "quoracy",
    ] {
        assert!(!rules.contains(&untellable), "{untellable}");
    }
    let not_recorded: Vec<&str> = first["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["kind"] == "not_recorded")
        .map(|f| f["row"].as_str().expect("row"))
        .collect();
    assert!(
        not_recorded.contains(&"barnsley/minutes-circulated"),
        "{not_recorded:?}"
    );
    let mut unique = not_recorded.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), not_recorded.len(), "once per board and rule");
    // The same file again: the same state.
    assert!(import(&[]).status.success());
    assert_eq!(json_check(dir.path(), db), first);
    // A newer file replaces the older one's rows.
    std::fs::write(
        &file,
        census(&[child(
            "NEWER-1",
            "<Sex>1</Sex>",
            &["<CINreferralDate>2026-01-05</CINreferralDate><ReferralSource>5A</ReferralSource>"],
        )]),
    )
    .expect("write");
    assert!(import(&[]).status.success());
    let o = cpwatch(dir.path(), &["explain", "NEW-1", "--database", db]);
    assert_eq!(o.status.code(), Some(2), "replaced: {}", stdout(&o));
    // Nothing readable: exit 2, and the database is as it was.
    let before = json_check(dir.path(), db);
    std::fs::write(
        &file,
        census(&[child(
            "X",
            "<Sex>1</Sex>",
            &["<CINreferralDate>soon</CINreferralDate>"],
        )]),
    )
    .expect("write");
    let o = import(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("none of the 1 records"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&file, "<Message><Children><Child>").expect("write");
    assert_eq!(import(&[]).status.code(), Some(2));
    assert_eq!(
        json_check(dir.path(), db),
        before,
        "a failed import changes nothing"
    );
    // The demo will not replace imported data unasked.
    let o = cpwatch(dir.path(), &["demo", "--database", db]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains(
            "already holds 1 children imported from census.xml; it will not replace them"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_import_will_not_mix_with_case_data_it_did_not_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("census.xml"), sample()).expect("write");
    // Case data someone else wrote (cpwatch's tables, filled by another tool).
    let db = "sqlite://theirs.db";
    assert!(cpwatch(dir.path(), &["demo", "--database", db])
        .status
        .success());
    let url = format!("sqlite://{}", dir.path().join("theirs.db").display());
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let s = cpwatch::store::connect(&url, false).await.expect("db");
            s.set_state("demo", "").await.expect("not the demo's");
        });
    let o = cpwatch(
        dir.path(),
        &["import", "cin-census", "census.xml", "--database", db],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--replace"), "{}", stderr(&o));
    let o = cpwatch(
        dir.path(),
        &[
            "import",
            "cin-census",
            "census.xml",
            "--database",
            db,
            "--replace",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Social Finance's public sample return (MIT licence, attribution in
/// tests/data/cin-census/), with its deliberate errors.
#[test]
fn the_public_sample_census_imports_with_its_errors_placed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = import_sample(
        dir.path(),
        "cin-census",
        "tests/data/cin-census/liia-tools-cin-2022.xml",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("imported 1 children")
            && stdout(&o)
                .contains("1 initial conferences, 1 plans, 1 review conferences); 2 rejected"),
        "{}",
        stdout(&o)
    );
    let err = stderr(&o);
    assert!(
        err.contains("Message[1]/Children[1]/Child[2]: LAchildID is missing"),
        "{err}"
    );
    assert!(
        err.contains("Message[1]/Children[1]/Child[3]/CINdetails[1]/Section47[1]/DateOfInitialCPC[1]: \"notadate\" is not a date"),
        "{err}"
    );
    // Its dates are in 1970, before the built-in calendar: said, not guessed.
    let v = json_check(dir.path(), "sqlite://s.db");
    let findings = v["findings"].as_array().expect("findings");
    assert!(
        findings.iter().any(|f| f["kind"] == "calendar_not_covered"
            && f["message"]
                .as_str()
                .is_some_and(|m| m.contains("1970 is not covered"))),
        "{findings:?}"
    );
}

/// The demo authority written as a census (`cpwatch seed --census`) reads
/// back whole: every child and plan, every section 47 enquiry, nothing rejected.
#[test]
fn synthetic_casework_written_as_a_census_reads_back_whole() {
    let at = common::t("2026-11-23T09:00:00Z");
    let s = cpwatch::synthetic::demo::generate(5, 300, at, &common::holidays()).expect("demo");
    let mut xml = Vec::new();
    cpwatch::synthetic::census::write(&s, at.date_naive(), &mut xml).expect("write");
    let i = read(&String::from_utf8(xml).expect("utf8"));
    assert!(i.rejected.is_empty(), "{:?}", i.rejected);
    assert_eq!(i.state.children.len(), s.children.len());
    assert_eq!(i.state.cp_plans.len(), s.cp_plans.len());
    assert_eq!(
        i.state.strategy_discussions.len(),
        s.strategy_discussions
            .iter()
            .filter(|d| d.s47_initiated)
            .count()
    );
    assert!(i.state.conferences.iter().any(|c| c.kind == "initial"));
    assert!(i.state.conferences.iter().any(|c| c.kind == "review"));
}

/// The census's own target date for an initial conference against
/// cpwatch's deadline: a difference is a finding naming both dates and the
/// working days between, in `check` and in the export's Data quality sheet.
#[test]
fn the_authoritys_own_target_dates_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Section 47 from Wednesday 3 September 2025: 15 working days end on
    // Wednesday 24 September; the case system said Friday 26th.
    let enquiry = |id: &str, target: &str| {
        child(
            id,
            "<PersonBirthDate>2016-02-01</PersonBirthDate><Sex>1</Sex>",
            &[&format!("<CINreferralDate>2025-09-01</CINreferralDate><ReferralSource>5A</ReferralSource>\
               <Section47><S47ActualStartDate>2025-09-03</S47ActualStartDate><InitialCPCtarget>{target}</InitialCPCtarget><DateOfInitialCPC>2025-09-22</DateOfInitialCPC><ICPCnotRequired>0</ICPCnotRequired></Section47>")],
        )
    };
    let v = imported(
        dir.path(),
        &[
            enquiry("RIGHT-1", "2025-09-24"),
            enquiry("WRONG-1", "2025-09-26"),
        ],
        &["--board", "bolton"],
    );
    let differs: Vec<&serde_json::Value> = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["kind"] == "target_differs")
        .collect();
    assert_eq!(differs.len(), 1, "{differs:?}");
    assert_eq!(differs[0]["row"], "WRONG-1/cin1/s47-1/icpc");
    assert_eq!(
        differs[0]["message"],
        "the authority's target for holding it, Fri 26 Sep 2025, is 2 working days after cpwatch's deadline for icpc-timeliness (Bolton Safeguarding Children Partnership), Wed 24 Sep 2025"
    );
    let out = dir.path().join("export");
    let e = cpwatch(
        dir.path(),
        &[
            "export",
            "--board",
            "bolton",
            "--from",
            "2025-04-01",
            "--to",
            "2026-03-31",
            "--format",
            "csv",
            "--out",
            out.to_str().expect("utf8"),
            "--database",
            "sqlite://t.db",
            "--at",
            "2026-03-31T12:00:00Z",
        ],
    );
    assert!(e.status.success(), "{}", stderr(&e));
    let dq = std::fs::read_to_string(out.join("data_quality.csv")).expect("csv");
    assert!(
        dq.contains("target_differs,conferences,WRONG-1/cin1/s47-1/icpc,"),
        "{dq}"
    );
    assert!(
        dq.contains("not_recorded,rules,bolton/minutes-circulated,"),
        "{dq}"
    );
    assert!(!dq.contains("RIGHT-1"), "{dq}");
}

/// `ICPCnotRequired`: an enquiry that concluded no conference is needed has
/// the conference's timeliness void, with the reason; one that did not, and
/// has no conference, is overdue 15 working days from its start.
#[test]
fn an_enquiry_that_needed_no_conference_is_void_not_overdue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let enquiry = |id: &str, not_required: &str| {
        child(
            id,
            "<PersonBirthDate>2016-02-01</PersonBirthDate><Sex>1</Sex>",
            &[&format!("<CINreferralDate>2026-01-05</CINreferralDate><ReferralSource>5A</ReferralSource>\
               <Section47><S47ActualStartDate>2026-01-06</S47ActualStartDate><ICPCnotRequired>{not_required}</ICPCnotRequired></Section47>")],
        )
    };
    let v = imported(
        dir.path(),
        &[enquiry("NOREQ-1", "1"), enquiry("WAIT-1", "0")],
        &[],
    );
    let timeliness = |child: &str| -> Vec<(String, serde_json::Value)> {
        v["obligations"]
            .as_array()
            .expect("obligations")
            .iter()
            .filter(|o| o["rule"] == "icpc-timeliness" && o["child"] == child)
            .map(|o| {
                (
                    o["status"].as_str().expect("status").to_string(),
                    o["exception_reason"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(
        timeliness("NOREQ-1"),
        [(
            "void".to_string(),
            serde_json::json!(
                "the section 47 enquiry concluded that no initial conference is required"
            )
        )]
    );
    assert_eq!(
        timeliness("WAIT-1"),
        [("overdue".to_string(), serde_json::Value::Null)]
    );
}

/// A cell of a test workbook: text, a number (an Excel serial date, or an
/// id typed as a number), a date cell, or nothing.
enum Cell<'a> {
    T(&'a str),
    N(f64),
    D(&'a str),
    E,
}

/// A workbook of sheets, each (name, rows).
fn workbook(path: &Path, sheets: &[(&str, Vec<Vec<Cell>>)]) {
    use rust_xlsxwriter::{Format, Workbook};
    let mut wb = Workbook::new();
    let date = Format::new().set_num_format("dd/mm/yyyy");
    for (name, rows) in sheets {
        let ws = wb.add_worksheet().set_name(*name).expect("name");
        for (r, row) in rows.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                let (r, c) = (
                    u32::try_from(r).expect("row"),
                    u16::try_from(c).expect("column"),
                );
                match cell {
                    Cell::T(s) => {
                        ws.write_string(r, c, *s).expect("write");
                    }
                    Cell::N(n) => {
                        ws.write_number(r, c, *n).expect("write");
                    }
                    Cell::D(d) => {
                        let d = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").expect("date");
                        ws.write_datetime_with_format(r, c, d, &date)
                            .expect("write");
                    }
                    Cell::E => {}
                }
            }
        }
    }
    wb.save(path).expect("save");
}

/// An Annex A as authorities make them: a title row above the headers,
/// headers spaced, cased and ordered their own way with extra columns,
/// blank rows, "a) Yes", dates as date cells, serial numbers and text; and
/// rows with deliberate errors.
fn annex_a(path: &Path) {
    use Cell::*;
    workbook(
        path,
        &[
            ("Contents", vec![vec![T("Annex A, as at 31 March 2026")]]),
            (
                "L5 s47",
                vec![
                    vec![T("List 5: Section 47 enquiries and ICPCs")],
                    vec![],
                    vec![
                        T("Child  unique ID:"),
                        T("Gender"),
                        T("Date of birth"),
                        T("Strategy discussion initiating Section 47 Enquiry Start Date"),
                        T("Was an Initial Child Protection Conference deemed unnecessary?"),
                        T("Date of Initial Child Protection Conference"),
                        T("Did the Initial Child Protection Conference Result in a Child Protection Plan"),
                        T("Number of ICPCs in the last 12 months"),
                        T("Allocated Team"),
                        T("Allocated Worker"),
                    ],
                    // Held on time, a plan; the start as a serial number (46028: 6 January 2026).
                    vec![N(1001.0), T("a) Male"), D("2016-02-01"), N(46028.0), T("b) No"), D("2026-01-26"), T("a) Yes"), N(1.0), T("Locality 1"), T("A Worker")],
                    vec![],
                    // Needed no conference: void, with the reason.
                    vec![T("1002"), T("b) Female"), T("01/02/2015"), T("06/01/2026"), T("a) Yes"), E, E, N(0.0), T("Locality 2"), E],
                    // Awaiting a conference, well past 15 working days.
                    vec![T("1003"), T("b) Female"), E, T("2026-01-06"), T("No"), E, E, N(0.0), T("Locality 2"), T("B Worker")],
                    // Errors: a date that is not one, yes/no that is neither, a repeat.
                    vec![T("1004"), T("a) Male"), E, T("31/02/2026"), T("No"), E, E, N(0.0), E, E],
                    vec![T("1005"), T("a) Male"), E, T("07/01/2026"), T("perhaps"), E, E, N(0.0), E, E],
                    vec![N(1001.0), T("a) Male"), D("2016-02-01"), N(46028.0), T("b) No"), D("2026-01-26"), T("a) Yes"), N(1.0), T("Locality 1"), T("A Worker")],
                ],
            ),
            (
                "List 6",
                vec![
                    vec![T("Child Unique ID"), T("CIN Start Date"), T("Primary Need Code"), T("Case Status")],
                    vec![T("1001"), D("2026-01-05"), T("N1"), T("c) Child protection plan")],
                ],
            ),
            (
                "List 7",
                vec![
                    vec![
                        T("CHILD UNIQUE ID"),
                        T("Date of Birth"),
                        T("Child Protection Plan Start Date"),
                        T("Initial Category of Abuse"),
                        T("Latest Category of Abuse"),
                        T("Date of the Last Statutory Visit"),
                        T("Was the Child Seen Alone?"),
                        T("Date of latest review conference"),
                        T("Child Protection Plan End Date"),
                        T("Allocated Team"),
                    ],
                    // A plan from the conference, its latest review in
                    // April: the next is due six months on.
                    vec![T("1001"), D("2016-02-01"), D("2026-01-26"), T("Neglect"), T("Emotional abuse"), D("2026-05-20"), T("a) Yes"), D("2026-04-20"), E, T("Locality 1")],
                ],
            ),
        ],
    );
}

#[test]
fn an_annex_a_workbook_imports_as_authorities_make_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    annex_a(&dir.path().join("annex-a.xlsx"));
    let db = "sqlite://a.db";
    let o = cpwatch(
        dir.path(),
        &[
            "import",
            "annex-a",
            "annex-a.xlsx",
            "--database",
            db,
            "--board",
            "bolton",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("imported 3 children")
            && stdout(&o).contains("3 section 47 enquiries, 1 initial conferences, 1 plans, 1 review conferences, 1 visits); 3 rejected"),
        "{}",
        stdout(&o)
    );
    for placed in [
        "rejected: annex-a.xlsx: sheet \"L5 s47\", row 8, column D (strategy discussion initiating section 47 enquiry start date): \"31/02/2026\" is not a date",
        "rejected: annex-a.xlsx: sheet \"L5 s47\", row 9, column E (was an initial child protection conference deemed unnecessary): \"perhaps\" is not yes or no",
        "rejected: annex-a.xlsx: sheet \"L5 s47\", row 10: child \"1001\" has this List 5 row already (at annex-a.xlsx: sheet \"L5 s47\", row 4)",
    ] {
        assert!(stderr(&o).contains(placed), "{placed}\n{}", stderr(&o));
    }
    let v = check_json(dir.path(), db, "2026-07-01T12:00:00Z", &[]);
    let of = |rule: &str, child: &str| -> Vec<(String, String)> {
        v["obligations"]
            .as_array()
            .expect("obligations")
            .iter()
            .filter(|o| o["rule"] == rule && o["child"] == child)
            .map(|o| {
                (
                    o["status"].as_str().expect("status").to_string(),
                    o["due_at"].as_str().expect("due").to_string(),
                )
            })
            .collect()
    };
    // 6 January (serial 46028) + 15 working days = 27 January.
    assert_eq!(of("icpc-timeliness", "1001")[0].0, "met");
    assert_eq!(of("icpc-timeliness", "1002")[0].0, "void");
    assert_eq!(of("icpc-timeliness", "1003")[0].0, "overdue");
    // The first review was met by a review the workbook does not keep, or
    // by the latest: it is not judged; the next is due from the latest.
    assert_eq!(of("first-review", "1001"), []);
    let next = of("subsequent-review", "1001");
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0].0, "pending");
    assert!(next[0].1.starts_with("2026-10-20"), "{next:?}");
    let kinds: Vec<(&str, &str)> = v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().expect("kind"),
                f["row"].as_str().expect("row"),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("latest_only", "bolton/subsequent-review")),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("not_recorded", "bolton/minutes-circulated")),
        "{kinds:?}"
    );
    // The child's team is its plan's: audit by team works on Annex A.
    let o = cpwatch(
        dir.path(),
        &[
            "explain",
            "1001",
            "--database",
            db,
            "--at",
            "2026-07-01T12:00:00Z",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("visit"), "{}", stdout(&o));
    // The same workbook again gives the same state.
    let again = cpwatch(
        dir.path(),
        &[
            "import",
            "annex-a",
            "annex-a.xlsx",
            "--database",
            db,
            "--board",
            "bolton",
        ],
    );
    assert!(again.status.success());
    let v2 = check_json(dir.path(), db, "2026-07-01T12:00:00Z", &[]);
    assert_eq!(v, v2);
}

#[test]
fn a_workbook_without_the_lists_or_anything_readable_changes_nothing() {
    use Cell::*;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = "sqlite://a.db";
    workbook(
        &dir.path().join("other.xlsx"),
        &[(
            "Sheet1",
            vec![vec![T("Name"), T("Amount")], vec![T("x"), N(1.0)]],
        )],
    );
    let o = cpwatch(
        dir.path(),
        &["import", "annex-a", "other.xlsx", "--database", db],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no sheet has the headers of Annex A's List 5, 6 or 7"),
        "{}",
        stderr(&o)
    );
    workbook(
        &dir.path().join("bad.xlsx"),
        &[(
            "List 7",
            vec![
                vec![T("Child Unique ID"), T("Child Protection Plan Start Date")],
                vec![T("1"), T("soon")],
            ],
        )],
    );
    let o = cpwatch(
        dir.path(),
        &["import", "annex-a", "bad.xlsx", "--database", db],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("none of the 1 records"),
        "{}",
        stderr(&o)
    );
    std::fs::write(dir.path().join("not.xlsx"), "not a workbook").expect("write");
    let o = cpwatch(
        dir.path(),
        &["import", "annex-a", "not.xlsx", "--database", db],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("cannot be read as a workbook"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_public_sample_annex_a_imports_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = import_sample(
        dir.path(),
        "annex-a",
        "tests/data/annex-a/liia-tools-annex-a.xlsx",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("imported 17 children")
            && stdout(&o).contains("5 section 47 enquiries, 3 initial conferences, 7 plans, 5 review conferences, 7 visits); 0 rejected"),
        "{}",
        stdout(&o)
    );
    let o = cpwatch(
        dir.path(),
        &[
            "check",
            "--database",
            "sqlite://s.db",
            "--all",
            "--at",
            "2021-03-31T12:00:00Z",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(
            "void: the section 47 enquiry concluded that no initial conference is required"
        ),
        "{}",
        stdout(&o)
    );
}
