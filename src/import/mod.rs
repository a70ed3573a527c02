//! Reading the data authorities already hold in public formats into the
//! case-state contract, and writing an import all or nothing, refusing to
//! mix with case data it did not write.

pub mod cin_census;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::domain::case::CaseState;
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
