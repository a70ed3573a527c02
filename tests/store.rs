//! The store against a real SQLite file and the PostgreSQL on loopback
//! (`CPWATCH_TEST_PG_URL`, default postgres://postgres@127.0.0.1:5432/postgres):
//! both must give the same evaluation, also through views a SELECT-only role reads.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod common;

use common::*;
use cpwatch::domain::case::CaseState;
use cpwatch::report::check::Zones;
use cpwatch::report::stream;
use cpwatch::store;
use sqlx::{Connection, Executor, PgConnection};

const NOW: &str = "2026-11-23T09:00:00Z";

fn json_of(state: &CaseState) -> String {
    let rules = built_in_rules();
    let owned = eval_with(state, &rules, NOW);
    let e = owned.borrowed();
    let z = Zones::new(&rules, "working-together-2010");
    let all: Vec<_> = e.obligations.iter().collect();
    let mut out = Vec::new();
    stream::write(
        &mut out,
        stream::Shape::Json,
        all.iter().copied(),
        e.evaluated_at,
        &e.findings,
        &z,
        2,
    )
    .expect("json");
    String::from_utf8(out).expect("utf8")
}

fn demo_state() -> CaseState {
    cpwatch::synthetic::demo::generate(3, 150, t(NOW), &holidays()).expect("demo")
}

/// A fresh PostgreSQL database migrated and holding `state`, with a store on it.
async fn pg_holding(tag: &str, state: &CaseState) -> (TempDb, Box<dyn store::Store>) {
    let db = TempDb::new(tag).await;
    let pg = store::connect(&db.url(), false).await.expect("postgres");
    pg.migrate(false).await.expect("migrate");
    pg.replace_case_data(state).await.expect("write");
    (db, pg)
}

/// A new SQLite database holding `state`, and its URL.
async fn sqlite_holding(state: &CaseState) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("cases.db").display());
    let s = store::connect(&url, true).await.expect("sqlite");
    s.migrate(false).await.expect("migrate");
    s.replace_case_data(state).await.expect("write");
    (dir, url)
}

async fn sqlite_roundtrip(state: &CaseState) -> (tempfile::TempDir, CaseState) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("cases.db").display());
    let s = store::connect(&url, true).await.expect("sqlite");
    s.migrate(false).await.expect("migrate");
    s.replace_case_data(state).await.expect("write");
    let loaded = s.load().await.expect("load");
    (dir, loaded)
}

#[tokio::test]
async fn sqlite_and_postgres_give_the_same_evaluation() {
    let state = demo_state();
    let direct = json_of(&state);
    let (_dir, from_sqlite) = sqlite_roundtrip(&state).await;
    assert_eq!(
        json_of(&from_sqlite),
        direct,
        "SQLite round trip changed the evaluation"
    );

    let db = TempDb::new("same").await;
    let pg = store::connect(&db.url(), false).await.expect("postgres");
    let applied = pg.migrate(false).await.expect("migrate");
    assert_eq!(applied.len(), 7);
    assert!(
        pg.migrate(false).await.expect("again").is_empty(),
        "migrations run once"
    );
    pg.replace_case_data(&state).await.expect("write");
    let from_pg = pg.load().await.expect("load");
    assert_eq!(from_pg.children.len(), 150);
    assert_eq!(
        json_of(&from_pg),
        direct,
        "PostgreSQL round trip changed the evaluation"
    );
    db.finish().await;
}

#[tokio::test]
async fn rows_of_children_and_conferences_interleaved_load_as_written() {
    // A load shares a child's or conference's id along each run of rows
    // naming it; written out of order, rows come in runs of one.
    let mut state = demo_state();
    fn scatter<R>(rows: &mut [R], id: impl Fn(&R) -> String) {
        rows.sort_by_key(|r| id(r).chars().rev().collect::<String>());
    }
    scatter(&mut state.referrals, |r| r.id.to_string());
    scatter(&mut state.strategy_discussions, |r| r.id.to_string());
    scatter(&mut state.assessments, |r| r.id.to_string());
    scatter(&mut state.cp_plans, |r| r.id.to_string());
    scatter(&mut state.core_groups, |r| r.id.to_string());
    scatter(&mut state.visits, |r| r.id.to_string());
    scatter(&mut state.cin_reviews, |r| r.id.to_string());
    scatter(&mut state.conference_children, |r| {
        format!("{}{}", r.child_id, r.conference_id)
    });
    scatter(&mut state.invitations, |r| {
        format!("{}{}", r.agency_id, r.conference_id)
    });
    let changes = |ids: Vec<&str>| ids.windows(2).filter(|w| w[0] != w[1]).count();
    let visits: Vec<&str> = state.visits.iter().map(|v| v.child_id.as_str()).collect();
    assert!(
        changes(visits) * 2 > state.visits.len(),
        "visits not scattered"
    );

    let direct = json_of(&state);
    let (_dir, from_sqlite) = sqlite_roundtrip(&state).await;
    let (db, pg) = pg_holding("scattered", &state).await;
    let from_pg = pg.load().await.expect("load");
    for (loaded, from) in [(&from_sqlite, "SQLite"), (&from_pg, "PostgreSQL")] {
        let pairs = |s: &CaseState| {
            let mut v: Vec<(String, String)> = (s.visits.iter())
                .map(|v| (v.id.to_string(), v.child_id.to_string()))
                .chain(
                    (s.invitations.iter())
                        .map(|i| (i.agency_id.to_string(), i.conference_id.to_string())),
                )
                .chain(
                    (s.conference_children.iter())
                        .map(|c| (c.conference_id.to_string(), c.child_id.to_string())),
                )
                .collect();
            v.sort();
            v
        };
        let (got, want) = (pairs(loaded), pairs(&state));
        let wrong = got.iter().zip(&want).find(|(g, w)| g != w);
        assert!(
            got.len() == want.len() && wrong.is_none(),
            "{from}: {} rows, {} written; first wrong (loaded, written): {wrong:?}",
            got.len(),
            want.len()
        );
        assert_eq!(json_of(loaded), direct, "{from}");
    }
    db.finish().await;
}

#[tokio::test]
async fn the_canonical_case_round_trips_through_both() {
    for board in ["barnsley", "cwm-taf-morgannwg"] {
        let state = fixture(board);
        let direct = json_of(&state);
        let (_dir, from_sqlite) = sqlite_roundtrip(&state).await;
        assert_eq!(json_of(&from_sqlite), direct);
        let (db, pg) = pg_holding("canon", &state).await;
        assert_eq!(json_of(&pg.load().await.expect("load")), direct);
        db.finish().await;
    }
}

#[tokio::test]
async fn loading_works_through_views_with_a_select_only_role() {
    let state = demo_state();
    let (db, owner) = pg_holding("views", &state).await;
    drop(owner);

    let role = format!("{}_reader", db.name);
    let mut admin = PgConnection::connect(&db.url()).await.expect("admin");
    admin
        .execute("CREATE SCHEMA cms_views")
        .await
        .expect("schema");
    for (table, _) in store::TABLES {
        admin
            .execute(
                format!("CREATE VIEW cms_views.{table} AS SELECT * FROM public.{table}").as_str(),
            )
            .await
            .expect("view");
    }
    admin
        .execute(format!("DROP ROLE IF EXISTS {role}").as_str())
        .await
        .expect("drop role");
    admin
        .execute(format!("CREATE ROLE {role} LOGIN").as_str())
        .await
        .expect("role");
    admin
        .execute(format!("GRANT CONNECT ON DATABASE {} TO {role}", db.name).as_str())
        .await
        .expect("grant");
    admin.execute(format!("REVOKE ALL ON SCHEMA public FROM PUBLIC; GRANT USAGE ON SCHEMA cms_views TO {role}").as_str()).await.expect("grant");
    admin
        .execute(format!("GRANT SELECT ON ALL TABLES IN SCHEMA cms_views TO {role}").as_str())
        .await
        .expect("grant");
    admin
        .execute(
            format!(
                "ALTER ROLE {role} IN DATABASE {} SET search_path = cms_views",
                db.name
            )
            .as_str(),
        )
        .await
        .expect("path");
    admin.close().await.expect("close");

    let reader = store::connect(&url_for(&db.name, Some(&role)), false)
        .await
        .expect("reader connects");
    let loaded = reader.load().await.expect("load through views");
    assert_eq!(json_of(&loaded), json_of(&state));
    // The role really can only read.
    assert!(
        reader.replace_case_data(&state).await.is_err(),
        "a SELECT-only role must not be able to write"
    );
    drop(reader);

    db.finish().await;
    let mut admin = PgConnection::connect(&admin_url()).await.expect("admin");
    admin
        .execute(format!("DROP ROLE IF EXISTS {role}").as_str())
        .await
        .expect("drop role");
}

/// A plain table is read by COPY of the table itself; an ETL's partitioned
/// table, or table with rows in inheritance children, must be read whole
/// through its SELECT all the same (COPY of the table would refuse the one
/// and leave out the children's rows of the other).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_and_inherited_case_tables_load_whole() {
    let state = demo_state();
    let (db, pg) = pg_holding("partitioned", &state).await;
    let mut admin = PgConnection::connect(&db.url()).await.expect("admin");
    for sql in [
        // visits: partitioned, its rows in two partitions.
        "ALTER TABLE visits RENAME TO visits_plain",
        "CREATE TABLE visits (LIKE visits_plain INCLUDING DEFAULTS) PARTITION BY HASH (id)",
        "CREATE TABLE visits_old PARTITION OF visits FOR VALUES WITH (MODULUS 2, REMAINDER 0)",
        "CREATE TABLE visits_new PARTITION OF visits FOR VALUES WITH (MODULUS 2, REMAINDER 1)",
        "INSERT INTO visits SELECT * FROM visits_plain",
        "DROP TABLE visits_plain",
        // invitations: half its rows moved to a child table that inherits it.
        "CREATE TABLE invitations_archive () INHERITS (invitations)",
        "WITH moved AS (DELETE FROM ONLY invitations WHERE md5(conference_id || agency_id) < '8' RETURNING *) \
         INSERT INTO invitations_archive SELECT * FROM moved",
    ] {
        admin.execute(sql).await.expect(sql);
    }
    for (table, parent_only) in [
        ("visits_old", "SELECT count(*) FROM visits_old"),
        (
            "invitations_archive",
            "SELECT count(*) FROM invitations_archive",
        ),
        ("invitations", "SELECT count(*) FROM ONLY invitations"),
    ] {
        let n: i64 = sqlx::query_scalar(parent_only)
            .fetch_one(&mut admin)
            .await
            .expect(table);
        assert!(n > 0, "{table} holds none of the rows: the test needs some");
    }
    admin.close().await.expect("close");
    let loaded = pg.load().await.expect("load");
    assert_eq!(loaded.visits.len(), state.visits.len());
    assert_eq!(loaded.invitations.len(), state.invitations.len());
    assert_eq!(json_of(&loaded), json_of(&state));
    drop(pg);
    db.finish().await;
}

#[tokio::test]
async fn unreadable_values_become_findings_and_the_rest_loads() {
    let (_dir, url) = sqlite_holding(&fixture("bolton")).await;
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("raw");
    conn.execute("UPDATE conferences SET minutes_circulated_at = '25/01/2027' WHERE id = 'CONF-1'")
        .await
        .expect("update");
    conn.execute("UPDATE core_groups SET held_at = 'last Tuesday' WHERE id = 'CG1'")
        .await
        .expect("update");
    conn.execute("UPDATE referrals SET concern = 'bullying' WHERE id = 'R1'")
        .await
        .expect("update");
    conn.close().await.expect("close");
    let s = store::connect(&url, false).await.expect("sqlite");
    let state = s.load().await.expect("load");
    let e = eval(&state, NOW);
    let kinds: Vec<(&str, &str, &str)> = e
        .findings
        .iter()
        .map(|f| (f.kind.as_str(), f.table.as_str(), f.row.as_str()))
        .collect();
    assert!(
        kinds.contains(&("unreadable_value", "conferences", "CONF-1")),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("unreadable_value", "core_groups", "CG1")),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("missing_value", "core_groups", "CG1")),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("unknown_value", "referrals", "R1")),
        "{kinds:?}"
    );
    assert_eq!(
        state.conferences.len(),
        3,
        "the row with a bad value is kept"
    );
    assert!(
        state.core_groups.is_empty(),
        "a row without its one timestamp is left out"
    );
}

/// PostgreSQL's `infinity` fits a timestamptz column but names no instant: a
/// finding, as any unreadable value is, not a failed load.
#[tokio::test]
async fn infinite_timestamps_in_postgres_become_findings() {
    let (db, s) = pg_holding("infinity", &fixture("bolton")).await;
    let mut conn = PgConnection::connect(&db.url()).await.expect("raw");
    conn.execute("UPDATE conferences SET minutes_circulated_at = 'infinity' WHERE id = 'CONF-1'")
        .await
        .expect("update");
    conn.execute("UPDATE core_groups SET held_at = '-infinity' WHERE id = 'CG1'")
        .await
        .expect("update");
    conn.close().await.expect("close");
    let state = s.load().await.expect("load");
    let kinds: Vec<(&str, &str, &str)> = state
        .load_findings
        .iter()
        .map(|f| (f.kind.as_str(), f.table.as_str(), f.row.as_str()))
        .collect();
    for expected in [
        ("unreadable_value", "conferences", "CONF-1"),
        ("unreadable_value", "core_groups", "CG1"),
        ("missing_value", "core_groups", "CG1"),
    ] {
        assert!(kinds.contains(&expected), "{expected:?} in {kinds:?}");
    }
    let said = state
        .load_findings
        .iter()
        .find(|f| f.kind == "unreadable_value" && f.row == "CONF-1")
        .map(|f| f.message.as_str());
    assert_eq!(
        said,
        Some("minutes_circulated_at: a timestamp out of range (infinity?); treated as empty")
    );
    assert_eq!(
        state.conferences.len(),
        3,
        "the row with a bad value is kept"
    );
    let fixed = state
        .conferences
        .iter()
        .find(|c| c.id.as_str() == "CONF-1")
        .expect("CONF-1");
    assert_eq!(fixed.minutes_circulated_at, None, "treated as empty");
    drop(s);
    db.finish().await;
}

/// An ETL's tables or views may give a column another type than the
/// contract's. One that reads as the contract's (BIGINT for INTEGER, VARCHAR
/// for TEXT) loads as if it were; one that does not is a finding that names
/// the type, and the rest of the row and the load go on.
#[tokio::test]
async fn columns_of_other_types_in_postgres_are_read_or_reported() {
    let state = demo_state();
    let (db, s) = pg_holding("types", &state).await;
    let mut conn = PgConnection::connect(&db.url()).await.expect("raw");
    conn.execute(
        "ALTER TABLE cp_plans ALTER COLUMN visit_interval_working_days TYPE BIGINT; \
         ALTER TABLE workers ALTER COLUMN email TYPE VARCHAR(200)",
    )
    .await
    .expect("alter");
    // Several loads, so that every connection of the pool has read every
    // table before a type changes under it.
    for _ in 0..4 {
        let loaded = s.load().await.expect("load");
        assert_eq!(json_of(&loaded), json_of(&state));
        assert!(
            loaded.load_findings.is_empty(),
            "{:?}",
            loaded.load_findings
        );
    }

    conn.execute("ALTER TABLE core_groups ALTER COLUMN held_at TYPE TEXT")
        .await
        .expect("alter");
    let loaded = s.load().await.expect("load");
    assert!(!state.core_groups.is_empty());
    assert!(
        loaded.core_groups.is_empty(),
        "no core group has its one timestamp"
    );
    let said: Vec<&str> = loaded
        .load_findings
        .iter()
        .filter(|f| f.kind == "unreadable_value" && f.table == "core_groups")
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(said.len(), state.core_groups.len());
    assert!(
        said.iter()
            .all(|m| m.starts_with("held_at: ") && m.contains("TEXT") && m.contains("timestamptz")),
        "{said:?}"
    );
    assert_eq!(loaded.conferences.len(), state.conferences.len());
    conn.close().await.expect("close");
    drop(s);
    db.finish().await;
}

#[tokio::test]
async fn migrations_can_leave_the_case_tables_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("own.db").display());
    let s = store::connect(&url, true).await.expect("sqlite");
    let applied = s.migrate(true).await.expect("migrate");
    assert_eq!(
        applied,
        vec![
            "migration 0002_cpwatch_state".to_string(),
            "migration 0003_cpwatch_notifications".to_string(),
            "migration 0005_cpwatch_snoozes".to_string()
        ]
    );
    drop(s);
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("raw");
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .fetch_all(&mut conn)
            .await
            .expect("tables");
    assert!(
        tables.iter().all(|t| t.starts_with("cpwatch_")),
        "{tables:?}"
    );
}

#[tokio::test]
async fn a_missing_database_says_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("absent.db").display());
    let e = store::connect(&url, false)
        .await
        .err()
        .expect("no such file");
    let text = e.to_string();
    assert!(
        text.contains("absent.db") && text.contains("cpwatch demo"),
        "{text}"
    );
    assert!(store::connect("mysql://x", false).await.is_err());
    assert_eq!(
        store::redact("postgres://cp:s3cret@db.example:5432/cases"),
        "postgres://cp:***@db.example:5432/cases"
    );
}

/// The commonest error of a first start: the case tables, or one of their
/// columns, are not there. The error says which and what to do (fails if a
/// missing table or column reads as any other failed query).
#[tokio::test]
async fn missing_case_tables_and_columns_say_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("own.db").display());
    let s = store::connect(&url, true).await.expect("sqlite");
    s.migrate(true).await.expect("cpwatch's own tables");
    let text = s.load().await.expect_err("no case tables").to_string();
    assert!(
        text.contains("no such table")
            && text.contains("what to do")
            && text.contains(&format!("cpwatch migrate --database {url}"))
            && !text.contains("search_path"),
        "{text}"
    );

    let db = TempDb::new("missing").await;
    let pg = store::connect(&db.url(), false).await.expect("postgres");
    pg.migrate(true).await.expect("cpwatch's own tables");
    let text = pg.load().await.expect_err("no case tables").to_string();
    assert!(
        text.contains("does not exist")
            && text.contains("what to do")
            && text.contains("cpwatch migrate --database postgres://")
            && text.contains("search_path"),
        "{text}"
    );
    pg.migrate(false).await.expect("the case tables");
    let mut conn = PgConnection::connect(&db.url()).await.expect("connect");
    conn.execute("ALTER TABLE visits DROP COLUMN visited_at")
        .await
        .expect("drop a column");
    let text = pg.load().await.expect_err("a missing column").to_string();
    assert!(
        text.contains("visited_at")
            && text.contains("add the column")
            && text.contains("migrations/postgres/"),
        "{text}"
    );
    conn.close().await.expect("close");
    drop(pg);
    db.finish().await;
}

/// `state` as a database without the columns added to the contract after
/// its first version gives it: each as NULL.
fn without_added(state: &CaseState) -> CaseState {
    let mut s = state.clone();
    for d in &mut s.strategy_discussions {
        d.record_circulated_at = None;
    }
    for c in &mut s.conferences {
        c.chair_concern = false;
        c.chair_escalated_at = None;
    }
    for cc in &mut s.conference_children {
        cc.dissent_recorded = false;
    }
    s
}

/// An authority's tables or views written against the contract's first
/// version lack the columns added since: they load, each such column read
/// as NULL, in SQLite, in PostgreSQL tables (read by COPY of the table) and
/// through PostgreSQL views (fails if a load names a column the database
/// lacks).
#[tokio::test]
async fn a_database_without_the_added_columns_still_loads() {
    let state = demo_state();
    assert!(
        state
            .strategy_discussions
            .iter()
            .any(|d| d.record_circulated_at.is_some())
            && state.conferences.iter().any(|c| c.chair_concern)
            && state.conference_children.iter().any(|c| c.dissent_recorded),
        "the demo fills the added columns"
    );
    let expected = json_of(&without_added(&state));
    assert_ne!(
        expected,
        json_of(&state),
        "the added columns change obligations"
    );

    let (_dir, url) = sqlite_holding(&state).await;
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
    for &(table, column, _) in store::ADDED {
        conn.execute(format!("ALTER TABLE {table} DROP COLUMN {column}").as_str())
            .await
            .expect("drop an added column");
    }
    conn.close().await.expect("close");
    let s = store::connect(&url, false).await.expect("sqlite");
    assert_eq!(json_of(&s.load().await.expect("sqlite load")), expected);

    let (db, pg) = pg_holding("added", &state).await;
    let mut admin = PgConnection::connect(&db.url()).await.expect("admin");
    admin
        .execute("CREATE SCHEMA old_views")
        .await
        .expect("schema");
    for (table, columns) in store::TABLES {
        let first: Vec<&str> = columns
            .iter()
            .copied()
            .filter(|c| !store::ADDED.iter().any(|(t, a, _)| t == table && a == c))
            .collect();
        admin
            .execute(
                format!(
                    "CREATE VIEW old_views.{table} AS SELECT {}, updated_at FROM public.{table}",
                    first.join(", ")
                )
                .as_str(),
            )
            .await
            .expect("view");
    }
    let viewer = store::connect(
        &format!("{}?options=-csearch_path%3Dold_views", db.url()),
        false,
    )
    .await
    .expect("postgres through views");
    assert_eq!(json_of(&viewer.load().await.expect("view load")), expected);
    drop(viewer);
    for &(table, column, _) in store::ADDED {
        admin
            .execute(format!("ALTER TABLE public.{table} DROP COLUMN {column}").as_str())
            .await
            .expect("drop an added column");
    }
    assert_eq!(json_of(&pg.load().await.expect("table load")), expected);
    admin.close().await.expect("close");
    drop(pg);
    db.finish().await;
}

/// `cpwatch migrate` over SQLite case tables an authority made from the
/// current contract, added columns and all: the migration that adds them
/// leaves them be (SQLite has no `ADD COLUMN IF NOT EXISTS`).
#[tokio::test]
async fn migrating_tables_that_already_have_the_added_columns_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("own.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc"))
        .await
        .expect("sqlite");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["0001_case_tables.sql", "0004_contract_additions.sql"] {
        let sql = std::fs::read_to_string(root.join("migrations/sqlite").join(file)).expect("sql");
        sqlx::raw_sql(&sql).execute(&mut conn).await.expect(file);
    }
    conn.close().await.expect("close");
    let s = store::connect(&url, false).await.expect("sqlite");
    let applied = s.migrate(false).await.expect("migrate");
    assert!(
        applied.iter().any(|m| m.contains("contract_additions")),
        "{applied:?}"
    );
    let state = demo_state();
    s.replace_case_data(&state).await.expect("write");
    assert_eq!(json_of(&s.load().await.expect("load")), json_of(&state));
}

/// `explain` of one child as it reads it: the rows `rows` selects.
fn explained(state: &CaseState, reference: &str) -> String {
    let rules = built_in_rules();
    let mut scratch = cpwatch::domain::evaluate::Scratch::default();
    let holidays = holidays();
    let engine = cpwatch::domain::engine::Engine::load(None, None, None, "working-together-2010")
        .expect("engine");
    let eval = engine.evaluate(state, &mut scratch, t(NOW));
    let mut out = Vec::new();
    cpwatch::report::explain::explain(
        &mut out,
        state,
        &eval,
        &cpwatch::report::explain::Context {
            rules: &rules,
            holidays: &holidays,
            zones: &Zones::new(&rules, "working-together-2010"),
            snoozes: &Default::default(),
        },
        reference,
    )
    .expect("explain");
    String::from_utf8(out).expect("utf8")
}

/// The demo with two children conferenced together, each with conferences
/// of their own: a link `explain` must follow.
fn with_siblings() -> CaseState {
    let mut state = demo_state();
    let mut at_conferences = state
        .children
        .iter()
        .filter(|c| {
            state
                .conference_children
                .iter()
                .any(|cc| cc.child_id == c.id)
        })
        .map(|c| c.id.clone());
    let (a, b) = (
        at_conferences.next().expect("a child at a conference"),
        at_conferences.next().expect("another"),
    );
    let shared = state
        .conference_children
        .iter()
        .find(|cc| cc.child_id == a)
        .expect("a conference")
        .clone();
    state
        .conference_children
        .push(cpwatch::domain::case::ConferenceChild {
            child_id: b,
            ..shared
        });
    state
}

/// `explain` reads only the child's linked rows, and `export --board` only
/// the board's: each gives what it gives from every row, in SQLite and in
/// PostgreSQL (fails if a linked child, conference or row is left out).
#[tokio::test]
async fn one_childs_rows_and_one_boards_rows_give_what_all_rows_give() {
    let state = with_siblings();
    let (_dir, url) = sqlite_holding(&state).await;
    let sqlite = store::connect(&url, false).await.expect("sqlite");
    let (db, pg) = pg_holding("scoped", &state).await;
    for s in [sqlite.as_ref(), pg.as_ref()] {
        let all = s.load().await.expect("all");
        for child in state.children.iter().take(40) {
            let linked = s.linked(&child.reference).await.expect("linked");
            assert!(linked.children.contains(child.id.as_str()));
            let few = s
                .load_rows(&store::Rows::Linked(linked))
                .await
                .expect("linked rows")
                .state;
            assert!(few.children.len() < all.children.len());
            assert_eq!(
                explained(&few, &child.reference),
                explained(&all, &child.reference),
                "{}",
                child.reference
            );
        }
        let shared = state.conference_children.last().expect("the shared one");
        let other = (state.conference_children.iter())
            .find(|cc| cc.conference_id == shared.conference_id && cc.child_id != shared.child_id)
            .expect("the first child");
        let reference = |id: &str| {
            let c = state.children.iter().find(|c| c.id == id).expect("child");
            c.reference.to_string()
        };
        let linked = s
            .linked(&reference(&shared.child_id))
            .await
            .expect("linked");
        assert!(
            linked.children.contains(other.child_id.as_str()),
            "{linked:?}"
        );
        let few = s
            .load_rows(&store::Rows::Linked(linked))
            .await
            .expect("linked rows")
            .state;
        for id in [&shared.child_id, &other.child_id] {
            assert_eq!(
                explained(&few, &reference(id)),
                explained(&all, &reference(id))
            );
        }

        let rules = built_in_rules();
        let calendar = cpwatch::domain::calendar::Calendar::new(
            holidays(),
            "england-and-wales",
            chrono_tz::Europe::London,
        )
        .expect("calendar");
        for board in ["barnsley", "working-together-2010"] {
            let rows = store::Rows::Board {
                board: board.into(),
                default: board == "working-together-2010",
            };
            let few = s.load_rows(&rows).await.expect("board rows").state;
            assert!(few.children.len() < all.children.len(), "{board}");
            let report = |state: &CaseState| {
                let e = eval_with(state, &rules, NOW);
                format!(
                    "{:?}",
                    cpwatch::report::export::build(&cpwatch::report::export::Input {
                        eval: &e.borrowed(),
                        state,
                        rules: &rules,
                        calendar: &calendar,
                        board,
                        default_board: "working-together-2010",
                        from: d("2025-06-01"),
                        to: d("2026-11-22"),
                        generated_at: t(NOW),
                        snoozes: &Default::default(),
                    })
                )
            };
            assert_eq!(report(&few), report(&all), "{board}");
        }
    }
    drop(pg);
    db.finish().await;
}

/// A load reads the tables on two connections sharing one snapshot: a
/// transaction committed meanwhile must be seen whole or not at all (fails if
/// the second connection takes a snapshot of its own).
#[tokio::test]
async fn a_load_sees_each_concurrent_transaction_whole() {
    let (db, pg) = pg_holding("snapshot", &demo_state()).await;

    // Each transaction adds a row to tables of every size, so the two
    // connections of a load each read some of them.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (url, stop) = (db.url(), stop.clone());
        tokio::spawn(async move {
            let mut conn = PgConnection::connect(&url).await.expect("writer");
            let mut k = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                k += 1;
                let mut tx = conn.begin().await.expect("begin");
                for sql in [
                    "INSERT INTO visits (id, child_id, visited_at) VALUES ($1, 'w', now())",
                    "INSERT INTO invitations (conference_id, agency_id) VALUES ('w', $1)",
                    "INSERT INTO core_groups (id, child_id, held_at) VALUES ($1, 'w', now())",
                    "INSERT INTO cin_reviews (id, child_id, held_on) VALUES ($1, 'w', now())",
                    "INSERT INTO teams (id, name) VALUES ($1, 'w')",
                ] {
                    sqlx::query(sql)
                        .bind(format!("w{k}"))
                        .execute(&mut *tx)
                        .await
                        .expect("insert");
                }
                tx.commit().await.expect("commit");
            }
            k
        })
    };
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let s = pg.load().await.expect("load");
        let counts = [
            s.visits.iter().filter(|v| v.child_id == "w").count(),
            s.invitations
                .iter()
                .filter(|i| i.conference_id == "w")
                .count(),
            s.core_groups.iter().filter(|g| g.child_id == "w").count(),
            s.cin_reviews.iter().filter(|r| r.child_id == "w").count(),
            s.teams.iter().filter(|t| t.name == "w").count(),
        ];
        assert!(
            counts.iter().all(|&n| n == counts[0]),
            "one load saw parts of a transaction: {counts:?}"
        );
        seen.insert(counts[0]);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.expect("writer");
    assert!(
        written > 30 && seen.len() > 10,
        "the writer must commit while the loads run ({written} transactions, {} different states seen)",
        seen.len()
    );
    db.finish().await;
}

/// A role the database allows one connection still loads everything: a load
/// asks for a second connection and, refused, reads on the one it has.
#[tokio::test]
async fn a_role_allowed_one_connection_still_loads() {
    let state = demo_state();
    let (db, owner) = pg_holding("onecon", &state).await;
    drop(owner);

    let role = format!("{}_one", db.name);
    let mut admin = PgConnection::connect(&db.url()).await.expect("admin");
    for sql in [
        format!("DROP ROLE IF EXISTS {role}"),
        format!("CREATE ROLE {role} LOGIN CONNECTION LIMIT 1"),
        format!("GRANT CONNECT ON DATABASE {} TO {role}", db.name),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"),
    ] {
        admin.execute(sql.as_str()).await.expect(&sql);
    }
    admin.close().await.expect("close");

    let reader = store::connect(&url_for(&db.name, Some(&role)), false)
        .await
        .expect("reader connects");
    let loaded = reader.load().await.expect("a load on one connection");
    assert_eq!(json_of(&loaded), json_of(&state));
    drop(reader);

    db.finish().await;
    let mut admin = PgConnection::connect(&admin_url()).await.expect("admin");
    admin
        .execute(format!("DROP ROLE IF EXISTS {role}").as_str())
        .await
        .expect("drop role");
}

/// A load reads the tables on two connections, each decoding on its own task:
/// a table whose rows cannot be read fails the load with its name, whichever
/// connection took it, and leaves the store able to load again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_that_cannot_be_read_fails_the_load_whichever_connection_reads_it() {
    let state = demo_state();
    let (db, pg) = pg_holding("unreadable", &state).await;
    let mut admin = PgConnection::connect(&db.url()).await.expect("admin");
    for table in ["visits", "teams"] {
        // A view in the table's place whose rows fail as they are read (the
        // newest updated_at, read first, still works).
        let cols = cpwatch::store::TABLES
            .iter()
            .find(|(t, _)| *t == table)
            .map(|(_, cols)| cols.iter().copied())
            .expect("a case table");
        let select = cols
            .map(|c| match c {
                "id" => "CASE WHEN id IS NULL THEN id ELSE (1 / 0)::text END AS id".to_string(),
                c => c.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        for sql in [
            format!("ALTER TABLE {table} RENAME TO {table}_away"),
            format!("CREATE VIEW {table} AS SELECT {select}, updated_at FROM {table}_away"),
        ] {
            admin.execute(sql.as_str()).await.expect(&sql);
        }
        for _ in 0..3 {
            let err = pg
                .load()
                .await
                .expect_err("a load of failing rows")
                .to_string();
            assert!(
                err.contains(&format!("reading {table}")) && err.contains("division by zero"),
                "{err}"
            );
        }
        for sql in [
            format!("DROP VIEW {table}"),
            format!("ALTER TABLE {table}_away RENAME TO {table}"),
        ] {
            admin.execute(sql.as_str()).await.expect(&sql);
        }
        let loaded = pg.load().await.expect("a load once the table is back");
        assert_eq!(json_of(&loaded), json_of(&state));
    }
    admin.close().await.expect("close");
    drop(pg);
    db.finish().await;
}

/// `updated_at` in SQLite's own form (an ETL writing CURRENT_TIMESTAMP) reads
/// as the instant it is; one SQLite cannot read is a finding about its row,
/// and neither stops a full or an incremental read.
#[tokio::test]
async fn sqlite_reads_its_own_timestamps_and_reports_unreadable_ones() {
    let (_dir, url) = sqlite_holding(&fixture("bolton")).await;
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("raw");
    for (table, _) in store::TABLES {
        conn.execute(format!("UPDATE {table} SET updated_at = '2020-12-04 19:00:00'").as_str())
            .await
            .expect("update");
    }
    for sql in [
        "UPDATE children SET updated_at = '2020-12-04 20:30:00'",
        "UPDATE core_groups SET updated_at = 'yesterday'",
    ] {
        conn.execute(sql).await.expect("update");
    }
    conn.close().await.expect("close");
    let s = store::connect(&url, false).await.expect("sqlite");
    let full = s.load_since(None).await.expect("a full read");
    assert_eq!(
        full.watermark,
        Some(t("2020-12-04T20:30:00Z")),
        "SQLite's own form, read as UTC"
    );
    let unreadable: Vec<&str> = full
        .state
        .load_findings
        .iter()
        .filter(|f| f.kind == "unreadable_updated_at" && f.table == "core_groups")
        .map(|f| f.row.as_str())
        .collect();
    assert!(!unreadable.is_empty(), "{:?}", full.state.load_findings);
    assert_eq!(
        unreadable.len(),
        full.state.core_groups.len(),
        "every core group, once"
    );
    assert!(!full.state.core_groups.is_empty(), "the rows still load");
    // An incremental read after the watermark sees nothing new and fails not.
    let later = s
        .load_since(full.watermark)
        .await
        .expect("an incremental read");
    assert!(
        later.state.children.is_empty(),
        "{:?}",
        later.state.children
    );
}

/// With SQLite only one instance sends: a second one reaching the same file
/// by another path (a symbolic link) is refused as well.
#[tokio::test]
async fn one_sqlite_sender_whatever_path_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let real = dir.path().join("a.db");
    let link = dir.path().join("b.db");
    let first = store::connect(&format!("sqlite://{}", real.display()), true)
        .await
        .expect("sqlite");
    first.migrate(false).await.expect("migrate");
    std::os::unix::fs::symlink(&real, &link).expect("link");
    let second = store::connect(&format!("sqlite://{}", link.display()), false)
        .await
        .expect("sqlite through the link");
    assert!(first.leadership().await.expect("the first sends"));
    match second.leadership().await {
        Err(store::StoreError::AlreadyRunning(why)) => {
            assert!(why.contains("another cpwatch is already running"), "{why}")
        }
        other => panic!("the second instance must not send: {other:?}"),
    }
}

/// PostgreSQL reports a row stamped in the future as SQLite does.
#[tokio::test]
async fn a_future_updated_at_is_reported_in_postgres() {
    let (db, s) = pg_holding("future", &fixture("barnsley")).await;
    let mut conn = PgConnection::connect(&db.url()).await.expect("connect");
    conn.execute("UPDATE conferences SET updated_at = '9999-12-31T00:00:00Z' WHERE id = 'CONF-1'")
        .await
        .expect("update");
    conn.close().await.expect("close");
    let loaded = s.load_since(None).await.expect("load");
    assert!(
        loaded
            .state
            .load_findings
            .iter()
            .any(|f| f.kind == "updated_at_in_future"
                && f.table == "conferences"
                && f.row == "CONF-1"),
        "{:?}",
        loaded.state.load_findings
    );
    drop(s);
    db.finish().await;
}

/// Whether each connection that gives `application` as its name is
/// encrypted, as the server sees it.
async fn sessions_of(admin: &mut PgConnection, application: &str) -> Vec<bool> {
    sqlx::query_scalar(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = $1",
    )
    .bind(application)
    .fetch_all(admin)
    .await
    .expect("pg_stat_ssl")
}

/// The case database is reached over TLS as the URL's `sslmode` asks
/// (PostgreSQL's own names). The server on loopback has TLS on, as Debian
/// sets it up, with a certificate for `localhost`: `require` encrypts every
/// connection, `disable` none, and `verify-full` to 127.0.0.1 is refused
/// with what to do about the certificate.
#[tokio::test]
async fn the_database_is_reached_over_tls_as_the_url_asks() {
    let state = demo_state();
    let (db, owner) = pg_holding("tls", &state).await;
    drop(owner);
    let mut admin = PgConnection::connect(&admin_url()).await.expect("admin");
    let ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&mut admin)
        .await
        .expect("SHOW ssl");
    assert_eq!(ssl, "on", "the PostgreSQL on loopback must have TLS on");

    for (mode, encrypted) in [("require", true), ("disable", false)] {
        let application = format!("{}_{mode}", db.name);
        let url = format!("{}?sslmode={mode}&application_name={application}", db.url());
        let store = store::connect(&url, false).await.expect(mode);
        let loaded = store.load().await.expect(mode);
        assert_eq!(json_of(&loaded), json_of(&state), "{mode}");
        let seen = sessions_of(&mut admin, &application).await;
        assert!(
            !seen.is_empty() && seen.iter().all(|s| *s == encrypted),
            "sslmode={mode}: connections encrypted {seen:?}"
        );
    }

    let refused = |query: String| {
        let url = format!("{}?{query}", db.url());
        async move {
            store::connect(&url, false)
                .await
                .err()
                .expect("refused")
                .to_string()
        }
    };
    let text = refused("sslmode=verify-full".into()).await;
    assert!(
        text.contains("certificate") && text.contains("sslrootcert=PATH"),
        "{text}"
    );
    // As a user meets it, from a command and from the SSD import's own connection.
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("{}?sslmode=verify-full", db.url());
    for args in [
        vec!["check", "--database", &url],
        vec![
            "import",
            "ssd-views",
            "--ssd-schema",
            "ssd",
            "--database",
            &url,
        ],
    ] {
        let o = cpwatch(dir.path(), &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&o).contains("the server's certificate was not accepted"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    // A server that answers the TLS request with PostgreSQL's "no".
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = plain.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = plain.accept().await.expect("accept");
        let mut request = [0u8; 8];
        socket.read_exact(&mut request).await.expect("SSLRequest");
        socket.write_all(b"N").await.expect("answer");
    });
    let e = store::connect(
        &format!("postgres://cpwatch@127.0.0.1:{port}/cases?sslmode=require"),
        false,
    )
    .await
    .err()
    .expect("refused")
    .to_string();
    assert!(e.contains("the server offers no TLS"), "{e}");
    server.await.expect("server");
    let missing = "/nonexistent/cpwatch-ca.pem";
    let text = refused(format!("sslmode=verify-full&sslrootcert={missing}")).await;
    assert!(
        text.contains(&format!("sslrootcert={missing} cannot be read")),
        "{text}"
    );
    db.finish().await;
}
