//! Reading the data authorities already hold in public formats into the
//! case-state contract, and writing an import all or nothing, refusing to
//! mix with case data it did not write.

pub mod annex_a;
pub mod cin_census;
pub mod ssd;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use chrono::NaiveDate;

use crate::domain::case::{CaseState, Conference, ConferenceChild, Instant, Text};
pub use crate::domain::sources::Source;
use crate::store::Store;

/// The `cpwatch_state` key naming the source of imported case data.
pub const STATE_KEY: &str = "import";

/// What `cpwatch_state` keeps about the last import.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provenance {
    pub source: Source,
    pub file: String,
    pub imported_at: String,
    pub children: usize,
}

/// Where the case data in `store` came from, if an import wrote it.
pub async fn provenance_of(store: &dyn Store) -> anyhow::Result<Option<Provenance>> {
    let v = store.get_state(STATE_KEY).await?.unwrap_or_default();
    Ok(serde_json::from_str::<Provenance>(&v).ok())
}

/// The source of the case data in `store`, if an import wrote it.
pub async fn source_of(store: &dyn Store) -> anyhow::Result<Option<Source>> {
    Ok(provenance_of(store).await?.map(|p| p.source))
}

/// A record the import could not read, and where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub place: String,
    pub reason: String,
}

/// What a reader made of a file.
#[derive(Debug, Default)]
pub struct Imported {
    pub state: CaseState,
    /// Records (children) read, rejected ones included.
    pub read: usize,
    pub rejected: Vec<Rejected>,
}

/// Writes an import in one transaction, replacing the case data, unless the
/// database holds case data an import did not write (then only with
/// `replace`). The previous state stays whole if anything fails.
pub async fn write(
    store: &dyn Store,
    imported: &Imported,
    provenance: &Provenance,
    replace: bool,
) -> anyhow::Result<()> {
    let existing = store.count_children().await?;
    // Case data an import or the demo wrote is cpwatch's to replace.
    let mut ours = false;
    for key in [STATE_KEY, "demo"] {
        ours |= store.get_state(key).await?.is_some_and(|v| !v.is_empty());
    }
    if existing > 0 && !ours && !replace {
        bail!(
            "{} already holds {existing} children that no import wrote; an import replaces all case data, so it will not mix with them. Use another --database, or --replace to replace them",
            store.describe()
        );
    }
    store.replace_case_data(&imported.state).await?;
    store
        .set_state(STATE_KEY, &serde_json::to_string(provenance)?)
        .await?;
    // The case data is no longer the demo's: `cpwatch demo` must ask before replacing it.
    if store.get_state("demo").await?.is_some() {
        store.set_state("demo", "").await?;
    }
    Ok(())
}

/// The start of a day, UK time: the census and Annex A record days, not times.
fn at(d: NaiveDate) -> Instant {
    at_time(d, chrono::NaiveTime::MIN)
}

/// A time of day, UK time, as the SSD's TIMESTAMP columns hold it.
fn at_time(d: NaiveDate, t: chrono::NaiveTime) -> Instant {
    crate::domain::calendar::local_instant(chrono_tz::Europe::London, d, t)
}

/// A category of abuse as the census codes it (`NEG`) or as a workbook
/// writes it ("Physical abuse"), in the contract's words.
fn category(written: &str) -> String {
    let w = written.trim().to_ascii_lowercase();
    let has = |s: &str| w.contains(s);
    match w.as_str() {
        "neg" => "neglect".into(),
        "phy" => "physical_abuse".into(),
        "emo" => "emotional_abuse".into(),
        "sab" => "sexual_abuse".into(),
        "mul" => "multiple".into(),
        _ if has("multiple") => "multiple".into(),
        _ if has("neglect") => "neglect".into(),
        _ if has("physical") => "physical_abuse".into(),
        _ if has("emotional") => "emotional_abuse".into(),
        _ if has("sexual") => "sexual_abuse".into(),
        _ => w.split_whitespace().collect::<Vec<_>>().join("_"),
    }
}

/// A conference held on a day.
fn held(id: &str, kind: &str, d: NaiveDate) -> Conference {
    Conference {
        id: id.into(),
        kind: kind.into(),
        status: "held".into(),
        scheduled_at: Some(at(d)),
        held_at: Some(at(d)),
        ..Conference::default()
    }
}

/// A child's part in a conference, with its decision.
fn child_at(conf: &str, child: &str, outcome: &str, category: Option<String>) -> ConferenceChild {
    ConferenceChild {
        conference_id: conf.into(),
        child_id: child.into(),
        outcome: Some(outcome.into()),
        category: category.map(Text::from),
        advocacy_offered: None,
        workbook_received_at: None,
        dissent_recorded: false,
    }
}
