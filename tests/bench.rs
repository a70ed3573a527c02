//! The end-to-end benchmark runs, at sizes CI can afford, and its numbers are
//! sane. Its timing targets are judged by `cargo bench --bench end_to_end`
//! (BENCHMARKS.md), never here: this debug build on a shared machine times
//! nothing reliably.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod common;
#[path = "../benches/harness/mod.rs"]
mod harness;

use chrono::{TimeZone, Utc};
use common::http_get;
use harness::{drop_database, machine, markdown, measure, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_runs_and_its_figures_are_consistent() {
    let opts = Options {
        admin_url: common::admin_url(),
        database_prefix: "cpwatch_benchtest".into(),
        binary: env!("CARGO_BIN_EXE_cpwatch").into(),
        at: Utc
            .with_ymd_and_hms(2026, 11, 23, 9, 0, 0)
            .single()
            .expect("instant"),
        runs: 1,
        service: true,
    };
    let small = measure(&opts, 500).await.expect("500 children");
    let large = measure(&opts, 2_000).await.expect("2,000 children");
    for n in [500, 2_000] {
        drop_database(&opts, n)
            .await
            .expect("drop the test's database");
    }
    eprintln!("{small:?}\n{large:?}");
    assert!(
        large.rows > 3 * small.rows && large.obligations > 3 * small.obligations,
        "the sizes differ: {small:?} {large:?}"
    );
    // Every figure was measured: a reading that failed is zero or missing.
    for m in [&small, &large] {
        assert!(
            m.floor > 0.0 && m.copy_floor > 0.0 && m.copy2_floor > 0.0,
            "{m:?}"
        );
        assert!(m.load > 0.0 && m.full >= m.load, "{m:?}");
        assert!(m.evaluate > 0.0 && m.evaluate_unkept > 0.0, "{m:?}");
        assert!(
            m.floor_server_cpu.is_some_and(|s| s > 0.0)
                && m.copy_floor_server_cpu.is_some_and(|s| s > 0.0)
                && m.copy2_floor_server_cpu.is_some_and(|s| s > 0.0),
            "the backends' CPU: {m:?}"
        );
        assert!(m.service_peak_mib.is_some_and(|p| p > 1.0), "{m:?}");
        assert!(m.scrape_ms.is_some() && m.export.is_some(), "{m:?}");
        assert_eq!(m.commands.len(), 7, "{m:?}");
        for c in &m.commands {
            assert!(c.wall > 0.0 && c.peak_mib > 1.0, "{c:?}");
            assert!(c.bytes > 0 || c.command.starts_with("export"), "{c:?}");
        }
    }
    // An incremental tick after 1% of children changed re-evaluates those
    // children and what is linked to them, not everyone.
    assert!(
        large.reevaluated >= 20 && large.reevaluated < 200,
        "the incremental tick re-evaluated {} of 2,000 children after 20 changed",
        large.reevaluated
    );
    let least = large.least_ratio(2).expect("a least ratio");
    assert!(least > 0.0 && least <= large.ratio(), "{large:?}");
    let md = markdown(
        &[small.clone(), large.clone()],
        &machine(&opts.admin_url).await,
        opts.at,
        "cargo test",
    );
    assert!(
        md.contains(&format!(
            "| {:.2} | {:.2} |",
            large.evaluate, large.evaluate_unkept
        )),
        "{md}"
    );
    assert!(
        md.contains(&format!(
            "| `cpwatch import cin-census` of {} children ≤ 10 s and ≤ 500 MiB |",
            large.children
        )),
        "{md}"
    );
    // Where one-core evaluation's time went is explained exactly when its target is missed.
    let explained = md.contains(&format!(
        "keeping them took the other {:.2} s. Kept, the {} obligations",
        (large.evaluate - large.evaluate_unkept).max(0.0),
        large.obligations
    ));
    assert_eq!(explained, large.evaluate > 0.5, "{md}");
}
