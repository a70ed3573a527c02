//! Incremental ticks give exactly what a full evaluation gives: random changes
//! written to PostgreSQL as an ETL would write them (with `updated_at`), and
//! time moving on past due dates, checked after every step against a fresh
//! full read and evaluation.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod common;

use chrono::Duration;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::postgres::PgPool;

use common::*;
use cpwatch::domain::case::Instant;
use cpwatch::domain::engine::Engine;
use cpwatch::service::incremental::Kept;
use cpwatch::service::metrics::{Metrics, Tally};
use cpwatch::store;

fn engine() -> Engine {
    Engine::load(None, None, None, "working-together-2010").expect("engine")
}

/// Everything a tick acts on, in one comparable form: the metrics as
/// Prometheus shows them, the open obligations whole, and the findings.
fn results(k: &Kept) -> (Vec<String>, Vec<String>, String) {
    let metrics = Metrics::new().expect("metrics");
    metrics.evaluated(&k.tally, &k.eval.findings, 0.0, k.eval.evaluated_at);
    let mut open = k.eval.obligations.clone();
    open.sort_by(|a, b| a.report_cmp(b));
    (
        metrics.render().lines().map(String::from).collect(),
        open.iter().map(|o| format!("{o:?}")).collect(),
        format!("{:?}", k.eval.findings),
    )
}

async fn ids(pool: &PgPool, sql: &str) -> Vec<String> {
    sqlx::query_scalar(sql).fetch_all(pool).await.expect("ids")
}

/// One change of the kinds an ETL makes, at a random row, stamped `updated_at = now()`.
async fn change(pool: &PgPool, rng: &mut ChaCha8Rng, now: Instant, n: usize, rules: &[String]) {
    let children = ids(pool, "SELECT id FROM children").await;
    let conferences = ids(pool, "SELECT id FROM conferences").await;
    let visits = ids(pool, "SELECT id FROM visits").await;
    let pick = |v: &[String], rng: &mut ChaCha8Rng| v.choose(rng).cloned().unwrap_or_default();
    // Around now, a few recorded ahead of it.
    let at = now + Duration::minutes(rng.gen_range(-60 * 24 * 20..60 * 6));
    let kind = rng.gen_range(0..14);
    let q = match kind {
        0 => sqlx::query("UPDATE visits SET visited_at = $1, updated_at = now() WHERE id = $2")
            .bind(at)
            .bind(pick(&visits, rng)),
        1 => sqlx::query(
            "INSERT INTO visits (id, child_id, visited_at, seen_alone) VALUES ($1, $2, $3, true)",
        )
        .bind(format!("V-NEW-{n}"))
        .bind(pick(&children, rng))
        .bind(at),
        2 => sqlx::query(
            "UPDATE conferences SET status = 'held', held_at = $1, updated_at = now() WHERE id = $2",
        )
        .bind(at)
        .bind(pick(&conferences, rng)),
        3 => sqlx::query(
            "UPDATE conferences SET minutes_circulated_at = $1, updated_at = now() WHERE id = $2",
        )
        .bind(at)
        .bind(pick(&conferences, rng)),
        4 => sqlx::query(
            "UPDATE invitations SET report_received_at = $1, updated_at = now() WHERE conference_id = $2",
        )
        .bind(at)
        .bind(pick(&conferences, rng)),
        // Two families' casework joined by one conference.
        5 => sqlx::query(
            "INSERT INTO conference_children (conference_id, child_id, outcome) VALUES ($1, $2, 'plan') ON CONFLICT DO NOTHING",
        )
        .bind(pick(&conferences, rng))
        .bind(pick(&children, rng)),
        6 => sqlx::query(
            "UPDATE conferences SET reconvenes_id = $1, updated_at = now() WHERE id = $2",
        )
        .bind(pick(&conferences, rng))
        .bind(pick(&conferences, rng)),
        7 => sqlx::query(
            "INSERT INTO exceptions (id, rule, child_id, reason, agreed_by, recorded_at) VALUES ($1, $2, $3, 'Agreed by the chair', 'Chair', $4)",
        )
        .bind(format!("EX-NEW-{n}"))
        .bind(pick(rules, rng))
        .bind(pick(&children, rng))
        .bind(at),
        // A row about a child the case tables do not hold.
        8 => sqlx::query(
            "INSERT INTO referrals (id, child_id, received_at, by_telephone) VALUES ($1, $2, $3, false)",
        )
        .bind(format!("R-NEW-{n}"))
        .bind(format!("NOBODY-{n}"))
        .bind(at),
        9 => sqlx::query(
            "UPDATE cp_plans SET ended_on = $1, updated_at = now() WHERE child_id = $2",
        )
        .bind(at.date_naive())
        .bind(pick(&children, rng)),
        10 => {
            let boards = ids(pool, "SELECT DISTINCT coalesce(board, '') FROM children ORDER BY 1").await;
            sqlx::query("UPDATE children SET board = nullif($1, ''), updated_at = now() WHERE id = $2")
                .bind(pick(&boards, rng))
                .bind(pick(&children, rng))
        }
        // A meeting recorded before it happens.
        11 => sqlx::query("INSERT INTO core_groups (id, child_id, held_at) VALUES ($1, $2, $3)")
            .bind(format!("CG-NEW-{n}"))
            .bind(pick(&children, rng))
            .bind(now + Duration::minutes(rng.gen_range(1..600))),
        // A row moved from one child to another.
        12 => sqlx::query("UPDATE visits SET child_id = $1, updated_at = now() WHERE id = $2")
            .bind(pick(&children, rng))
            .bind(pick(&visits, rng)),
        _ => sqlx::query(
            "UPDATE strategy_discussions SET conference_decided_at = $1, updated_at = now() WHERE child_id = $2",
        )
        .bind(at)
        .bind(pick(&children, rng)),
    };
    q.execute(pool).await.expect("change");
}

#[tokio::test]
async fn incremental_ticks_give_what_full_evaluations_give() {
    let db = TempDb::new("incremental").await;
    let store = store::connect(&db.url(), false).await.expect("postgres");
    store.migrate(false).await.expect("migrate");
    let start = t("2026-11-23T09:00:00Z");
    let engine = engine();
    let state = cpwatch::synthetic::demo::generate_with(11, 300, start, 3 * 365, &holidays())
        .expect("generate");
    store.replace_case_data(&state).await.expect("seed");
    let pool = PgPool::connect(&db.url()).await.expect("pool");
    let rules: Vec<String> = engine
        .rules
        .boards
        .values()
        .flatten()
        .flat_map(|b| b.rules.iter().map(|r| r.id.clone()))
        .collect();

    let (mut incremental, mut rounds, mut changes) = (0, 0, 0);
    for seed in [5, 6, 7] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut now = start;
        let mut kept = Kept::full(&engine, store.load_since(None).await.expect("load"), now);
        for round in 0..30 {
            rounds += 1;
            // Minutes to hours at a time, so due dates pass; now and then past midnight.
            now += Duration::minutes(rng.gen_range(1..400));
            let n = if round % 4 == 3 {
                0
            } else {
                rng.gen_range(1..8)
            };
            for _ in 0..n {
                changes += 1;
                change(&pool, &mut rng, now, changes, &rules).await;
            }
            let read = store.load_since(kept.watermark).await.expect("changes");
            match kept.update(&engine, read, now) {
                Ok(_) => incremental += 1,
                Err(_) => {
                    kept = Kept::full(&engine, store.load_since(None).await.expect("load"), now)
                }
            }
            let full = Kept::full(&engine, store.load_since(None).await.expect("load"), now);
            let at = format!("seed {seed} round {round} at {now}");
            let (a, b) = (results(&kept), results(&full));
            assert_eq!(a.0.len(), b.0.len(), "{at}: the metrics differ in number");
            for (x, y) in a.0.iter().zip(&b.0) {
                assert_eq!(x, y, "{at}: a metric differs");
            }
            assert!(kept.tally == full.tally, "{at}: the tally differs");
            assert_eq!(a.2, b.2, "{at}: the findings differ");
            assert_eq!(
                a.1.len(),
                b.1.len(),
                "{at}: open obligations differ in number"
            );
            for (x, y) in a.1.iter().zip(&b.1) {
                assert_eq!(x, y, "{at}: an open obligation differs");
            }
        }
    }
    assert!(
        incremental * 3 >= rounds * 2,
        "most rounds were incremental, not full: {incremental} of {rounds}"
    );
    pool.close().await;
    db.finish().await;
}

/// A full tick shares the counting and keeping out among its workers; what it
/// keeps (tally, open obligations, findings, and the instants that call for a
/// re-evaluation later in the day) is what one thread keeps.
#[test]
fn a_full_tick_on_several_threads_keeps_what_one_thread_keeps() {
    let start = t("2026-11-23T09:00:00Z");
    let state = cpwatch::synthetic::demo::generate_with(12, 300, start, 3 * 365, &holidays())
        .expect("generate");
    let kept = |threads: usize| {
        let mut engine = engine();
        engine.threads = threads;
        let loaded = store::Loaded {
            state: state.clone(),
            watermark: None,
        };
        let mut kept = Kept::full(&engine, loaded, start);
        let (tally, full) = (kept.tally.clone(), results(&kept));
        // Hours later with nothing read: what is re-evaluated comes from the kept instants.
        let empty = store::Loaded {
            state: Default::default(),
            watermark: None,
        };
        let update = kept
            .update(&engine, empty, start + Duration::hours(6))
            .expect("an incremental tick");
        (tally, full, results(&kept), update.children)
    };
    let one = kept(1);
    let mut counted = Tally::new(&state.agencies, start);
    let (engine, mut scratch) = (engine(), cpwatch::domain::evaluate::Scratch::default());
    for o in &engine.evaluate(&state, &mut scratch, start).obligations {
        counted.add(o);
    }
    assert!(
        one.0 == counted,
        "the tally differs from every obligation counted"
    );
    assert!(one.0.total > 1000, "the demo authority has obligations");
    assert!(one.3 > 0, "time passing re-evaluates some children");
    for threads in [2, 3, 8] {
        let many = kept(threads);
        assert!(many.0 == one.0, "{threads} threads: the tally differs");
        assert_eq!(many.1, one.1, "{threads} threads: the full tick differs");
        assert_eq!(many.2, one.2, "{threads} threads: the later tick differs");
        assert_eq!(
            many.3, one.3,
            "{threads} threads: other children re-evaluated"
        );
    }
}

/// An incremental read in SQLite compares instants written with different offsets as instants.
#[tokio::test]
async fn sqlite_reads_rows_changed_since_an_instant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let store = store::connect(&url, true).await.expect("sqlite");
    store.migrate(false).await.expect("migrate");
    let pool = sqlx::SqlitePool::connect(&url).await.expect("pool");
    for (id, at) in [
        ("T1", "2026-11-23T09:00:00Z"),
        ("T2", "2026-11-23T10:30:00+01:00"),
        ("T3", "2026-11-23T09:45:00-01:00"),
    ] {
        sqlx::query("INSERT INTO teams (id, name, updated_at) VALUES (?, 'Team', ?)")
            .bind(id)
            .bind(at)
            .execute(&pool)
            .await
            .expect("insert");
    }
    let all = store.load_since(None).await.expect("load");
    assert_eq!(all.state.teams.len(), 3);
    assert_eq!(
        all.watermark,
        Some(t("2026-11-23T10:45:00Z")),
        "T3, not the largest text"
    );
    let since = |at: &'static str| {
        let store = &store;
        async move {
            let read = store.load_since(Some(t(at))).await.expect("since");
            let mut got: Vec<String> = read.state.teams.iter().map(|t| t.id.to_string()).collect();
            got.sort();
            got
        }
    };
    assert_eq!(since("2026-11-23T09:15:00Z").await, ["T2", "T3"]);
    assert_eq!(
        since("2026-11-23T10:00:00Z").await,
        ["T3"],
        "T2 is 09:30Z, though its text sorts after 10:00Z"
    );
}

/// A row stamped far in the future must not hide the changes made after
/// it: the watermark never passes the database's clock at the read.
#[tokio::test]
async fn a_future_updated_at_does_not_freeze_incremental_ticks() {
    use sqlx::{Connection, Executor};
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("future.db").display());
    let store = cpwatch::store::connect(&url, true).await.expect("sqlite");
    store.migrate(false).await.expect("migrate");
    store
        .replace_case_data(&fixture("barnsley"))
        .await
        .expect("write");
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("raw");
    conn.execute("UPDATE children SET updated_at = '9999-12-31T00:00:00Z'")
        .await
        .expect("update");
    let engine = engine();
    let now = t("2027-01-20T09:00:00Z");
    let loaded = store.load_since(None).await.expect("load");
    assert!(
        loaded
            .state
            .load_findings
            .iter()
            .any(|f| f.kind == "updated_at_in_future" && f.table == "children" && f.row == "C1"),
        "the row is reported: {:?}",
        loaded.state.load_findings
    );
    let mut kept = Kept::full(&engine, loaded, now);
    let w = kept.watermark.expect("a watermark");
    assert!(
        w <= chrono::Utc::now(),
        "capped at the database's clock, not the row's year 9999: {w}"
    );
    // Minutes circulated after the first read, recorded with the time of the change.
    conn.execute(
        "UPDATE conferences SET minutes_circulated_at = '2027-01-20T09:02:00Z', \
         updated_at = '2027-01-20T09:02:00Z' WHERE id = 'CONF-1'",
    )
    .await
    .expect("update");
    conn.close().await.expect("close");
    let later = now + Duration::minutes(5);
    let read = store
        .load_since(kept.watermark.map(|w| w - Duration::minutes(5)))
        .await
        .expect("an incremental read");
    kept.update(&engine, read, later)
        .expect("an incremental tick");
    let minutes = kept
        .state
        .conferences
        .iter()
        .find(|c| &*c.id == "CONF-1")
        .and_then(|c| c.minutes_circulated_at);
    assert_eq!(
        minutes,
        Some(t("2027-01-20T09:02:00Z")),
        "the change is seen"
    );
}
