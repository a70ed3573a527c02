//! `cpwatch seed`: synthetic casework with the shape of real casework, deterministic, for load tests.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use common::*;

#[test]
fn synthetic_casework_has_the_shape_of_real_casework() {
    let now = t("2026-11-23T09:00:00Z");
    let s = cpwatch::synthetic::demo::generate_with(3, 600, now, 3 * 365, &holidays())
        .expect("generate");
    let boards: BTreeSet<Option<&str>> = s.children.iter().map(|c| c.board.as_deref()).collect();
    assert!(
        boards.len() >= 6,
        "several boards (and the default) in one database: {boards:?}"
    );
    let mut sds: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &s.strategy_discussions {
        *sds.entry(d.child_id.as_str()).or_default() += 1;
    }
    assert!(sds.values().all(|n| (1..=3).contains(n)));
    assert!(
        sds.values().any(|n| *n == 3) && sds.values().any(|n| *n == 2),
        "one to three strategy discussions"
    );
    let mut invited: BTreeMap<&str, usize> = BTreeMap::new();
    for i in s.invitations.iter().filter(|i| i.agency_id != "AG-DENTAL") {
        *invited.entry(i.conference_id.as_str()).or_default() += 1;
    }
    assert!(
        invited.values().all(|n| (6..=10).contains(n)),
        "six to ten invited agencies"
    );
    for kind in ["initial", "review", "pre_birth", "transfer_in"] {
        assert!(s.conferences.iter().any(|c| c.kind == kind), "{kind}");
    }
    for status in ["held", "adjourned", "deferred", "cancelled", "scheduled"] {
        assert!(s.conferences.iter().any(|c| c.status == status), "{status}");
    }
    assert!(
        s.cp_plans.iter().any(|p| p.ended_on.is_some())
            && s.cp_plans.iter().any(|p| p.ended_on.is_none())
    );
    assert!(
        !s.exceptions.is_empty()
            && !s.visits.is_empty()
            && !s.core_groups.is_empty()
            && !s.cin_reviews.is_empty()
    );
    let earliest = s
        .referrals
        .iter()
        .map(|r| r.received_at)
        .min()
        .expect("referrals");
    assert!(
        now - earliest > chrono::Duration::days(2 * 365),
        "years of history"
    );
    // A realistic share of late and missed deadlines, not all or none.
    let e = eval(&s, "2026-11-23T09:00:00Z");
    let late = e
        .obligations
        .iter()
        .filter(|o| {
            matches!(
                o.status,
                cpwatch::domain::evaluate::Status::MetLate
                    | cpwatch::domain::evaluate::Status::Overdue
            )
        })
        .count();
    let share = late as f64 / e.obligations.len() as f64;
    assert!((0.05..0.4).contains(&share), "late or missed share {share}");
}

#[tokio::test]
async fn seed_writes_postgresql_and_is_deterministic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = TempDb::new("seed").await;
    let run = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_cpwatch"))
            .args([
                "seed",
                "--children",
                "1500",
                "--seed",
                "9",
                "--years",
                "2",
                "--at",
                "2026-11-23T09:00:00Z",
                "--database",
                url,
            ])
            .current_dir(dir.path())
            .output()
            .expect("seed")
    };
    let o = run(&db.url());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("1500 children"));
    let lite = format!("sqlite://{}", dir.path().join("seed.db").display());
    assert!(run(&lite).status.success());
    let check = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_cpwatch"))
            .args([
                "check",
                "--format",
                "json",
                "--at",
                "2026-11-23T09:00:00Z",
                "--database",
                url,
            ])
            .output()
            .expect("check")
            .stdout
    };
    assert_eq!(
        check(&db.url()),
        check(&lite),
        "the same seed gives the same data in both databases"
    );
    db.finish().await;
}
