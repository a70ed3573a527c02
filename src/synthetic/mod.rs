//! Synthetic case data: the demo authority (`cpwatch demo`) and casework of
//! any size (`cpwatch seed`), each reproducible from its seed and instant,
//! and writing them into a store.

pub mod census;
pub mod demo;

use anyhow::bail;

use crate::store::Store;

/// Writes synthetic case data, refusing to replace case data that cpwatch did not make.
pub async fn write(
    url: &str,
    state: &crate::domain::case::CaseState,
    force: bool,
    made_by: serde_json::Value,
) -> anyhow::Result<Box<dyn Store>> {
    let store = crate::store::connect(url, true).await?;
    store.migrate(false).await?;
    let existing = store.count_children().await?;
    let made_here = store
        .get_state("demo")
        .await?
        .is_some_and(|v| !v.is_empty());
    if existing > 0 && !made_here && !force {
        let whose = match crate::import::provenance_of(&*store).await? {
            Some(p) => format!("imported from {}", p.file),
            None => "that cpwatch did not create".to_string(),
        };
        bail!(
            "{} already holds {existing} children {whose}; it will not replace them. Use another --database, or --force to replace them",
            store.describe()
        );
    }
    store.replace_case_data(state).await?;
    store.set_state("demo", &made_by.to_string()).await?;
    // No longer an import's data: the rules its source could not tell apply again.
    if store.get_state(crate::import::STATE_KEY).await?.is_some() {
        store.set_state(crate::import::STATE_KEY, "").await?;
    }
    Ok(store)
}
