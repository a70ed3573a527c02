//! The end-to-end benchmark against PostgreSQL on loopback at 500, 5,000 and
//! 50,000 children; writes BENCHMARKS.md at the top of the repository.
//! `cargo bench --bench end_to_end`; CPWATCH_BENCH_PG_URL names a database
//! whose user may create databases (default: the local `postgres`).
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

#[path = "harness/mod.rs"]
mod harness;
#[path = "harness/http.rs"]
mod http;

use http::http_get;

use chrono::{TimeZone, Utc};
use harness::{machine, markdown, measure, Options};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; nothing here takes arguments.
    // Without TLS: encryption is a deployment's choice, and on loopback it
    // protects nothing while it adds about a sixth to a national load.
    let admin_url = std::env::var("CPWATCH_BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".into());
    let sizes: Vec<usize> = std::env::var("CPWATCH_BENCH_SIZES")
        .unwrap_or_else(|_| "500,5000,50000".into())
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let at = Utc
        .with_ymd_and_hms(2026, 11, 23, 9, 0, 0)
        .single()
        .ok_or_else(|| anyhow::anyhow!("bad instant"))?;
    let opts = Options {
        admin_url: admin_url.clone(),
        database_prefix: "cpwatch_bench".into(),
        binary: env!("CARGO_BIN_EXE_cpwatch").into(),
        at,
        // Best of nine: single runs on a shared machine vary by a sixth or more.
        runs: 9,
        service: true,
    };
    let mut results = Vec::new();
    for n in &sizes {
        eprintln!("end to end: {n} children …");
        let m = measure(&opts, *n).await?;
        eprintln!("  {m:?}");
        results.push(m);
        harness::drop_database(&opts, *n).await?;
    }
    let md = markdown(
        &results,
        &machine(&admin_url).await,
        at,
        "cargo bench --bench end_to_end",
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md");
    std::fs::write(path, md)?;
    eprintln!("wrote {path}");
    Ok(())
}
