//! Pure evaluation on one thread (no database) of synthetic case state at 500, 5,000 and
//! 50,000 children: `cargo bench --bench evaluate`.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::time::Duration;

use chrono::{TimeZone, Utc};
use cpwatch::domain::engine::Engine;
use cpwatch::domain::evaluate::Scratch;
use cpwatch::synthetic::demo::generate_with;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn evaluation(c: &mut Criterion) {
    let mut engine =
        Engine::load(None, None, None, "working-together-2010").expect("built-in rules");
    // The target is for one core; the service shares evaluation out among all of them.
    engine.threads = 1;
    let at = Utc
        .with_ymd_and_hms(2026, 11, 23, 9, 0, 0)
        .single()
        .expect("instant");
    let mut group = c.benchmark_group("evaluate");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for children in [500usize, 5_000, 50_000] {
        let state =
            generate_with(1, children, at, 3 * 365, &engine.holidays).expect("synthetic data");
        group.throughput(Throughput::Elements(children as u64));
        group.bench_with_input(BenchmarkId::from_parameter(children), &state, |b, s| {
            b.iter(|| {
                let mut scratch = Scratch::default();
                engine.evaluate(s, &mut scratch, at).obligations.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, evaluation);
criterion_main!(benches);
