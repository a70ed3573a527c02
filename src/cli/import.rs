//! `cpwatch import`: case data from the files authorities already hold,
//! written into the database all or nothing.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{open, DatabaseArgs};
use crate::import::{annex_a, cin_census, ssd, write, Imported, Provenance, Source};

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Imports a Children in Need census return (XML, any schema year from
    /// 2017): referrals, section 47 enquiries, initial conferences, plans
    /// and their reviews. It replaces the case data in the database.
    CinCensus(ImportArgs),
    /// Imports Ofsted's Annex A workbook (xlsx): List 5 (section 47
    /// enquiries and initial conferences), List 6 (children in need) and
    /// List 7 (plans, with the last visit and latest review), found by
    /// their headers. It replaces the case data in the database.
    AnnexA(ImportArgs),
    /// Imports CSV extracts of the Standard Safeguarding Dataset's child
    /// protection tables (a directory with ssd_person.csv,
    /// ssd_s47_enquiry.csv, …, one file a table). It replaces the case data
    /// in the database.
    Ssd(ImportArgs),
    /// Creates the case tables as views over a Standard Safeguarding Dataset
    /// in PostgreSQL (deploy/ssd/contract-views.sql, in schema cpwatch_ssd),
    /// so the service reads the live SSD with no copy.
    SsdViews(ViewsArgs),
}

#[derive(Args)]
pub struct ViewsArgs {
    /// The PostgreSQL database that holds the SSD's tables.
    #[arg(long, env = "CPWATCH_DATABASE")]
    pub database: String,
    /// The schema of the SSD's tables.
    #[arg(long, default_value = "public")]
    pub ssd_schema: String,
}

/// The views of the contract over the SSD's tables.
const SSD_VIEWS: &str = include_str!("../../deploy/ssd/contract-views.sql");

/// Where the views are.
const VIEWS_SCHEMA: &str = "cpwatch_ssd";

#[derive(Args)]
pub struct ImportArgs {
    /// The file to import (for `ssd`, the directory of its CSV files).
    pub file: PathBuf,
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The board (rule file) of the imported children; without it, the
    /// default board of the commands that read them.
    #[arg(long)]
    pub board: Option<String>,
    /// Replace case data that no import wrote.
    #[arg(long)]
    pub replace: bool,
}

pub async fn run(c: ImportCommand) -> anyhow::Result<ExitCode> {
    let (source, a) = match c {
        ImportCommand::CinCensus(a) => (Source::CinCensus, a),
        ImportCommand::AnnexA(a) => (Source::AnnexA, a),
        ImportCommand::Ssd(a) => (Source::Ssd, a),
        ImportCommand::SsdViews(v) => return views(v).await,
    };
    if let Some(b) = &a.board {
        let rules = crate::domain::rules::built_in().map_err(|e| anyhow::anyhow!("{e}"))?;
        if !rules.boards.contains_key(b) {
            anyhow::bail!(
                "--board {b:?} has no rule file (known: {})",
                rules.boards.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    let name = a.file.display().to_string();
    let imported = match source {
        Source::CinCensus => census(&a, &name)?,
        Source::AnnexA => {
            // A workbook is read a sheet at a time: a spinner names the sheet.
            let size = std::fs::metadata(&a.file).map_or(0, |m| m.len());
            let spinner = worth_showing(size).then(|| {
                let s = indicatif::ProgressBar::new_spinner();
                s.enable_steady_tick(std::time::Duration::from_millis(200));
                s
            });
            let read = annex_a::read(
                &a.file,
                annex_a::Options {
                    file: &name,
                    board: a.board.as_deref(),
                    progress: &mut |sheet| {
                        if let Some(s) = &spinner {
                            s.set_message(format!("reading sheet {sheet:?}"));
                        }
                    },
                },
            )
            .map_err(anyhow::Error::msg)?;
            if let Some(s) = spinner {
                s.finish_and_clear();
            }
            read
        }
        Source::Ssd => {
            let bar = progress(ssd::size(&a.file));
            let mut tick = |read: u64| {
                if let Some(b) = &bar {
                    b.set_position(read);
                }
            };
            let read = ssd::read(
                &a.file,
                ssd::Options {
                    board: a.board.as_deref(),
                    progress: &mut tick,
                },
            )
            .map_err(anyhow::Error::msg)?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            read
        }
    };
    for r in &imported.rejected {
        eprintln!("rejected: {}: {}", r.place, r.reason);
    }
    let children = imported.state.children.len();
    if children == 0 {
        eprintln!(
            "cpwatch: none of the {} records in {name} could be imported; the database is unchanged",
            imported.read
        );
        return Ok(ExitCode::from(2));
    }
    let store = open(&a.db.database, true).await?;
    store.migrate(false).await?;
    write(
        &*store,
        &imported,
        &Provenance {
            source,
            file: name.clone(),
            imported_at: chrono::Utc::now().to_rfc3339(),
            children,
        },
        a.replace,
    )
    .await?;
    println!("{}", summary(&imported, &name, &store.describe()));
    Ok(ExitCode::SUCCESS)
}

/// Reads a census as a stream, with a progress bar on a terminal for a large file.
fn census(a: &ImportArgs, name: &str) -> anyhow::Result<Imported> {
    let file = std::fs::File::open(&a.file).with_context(|| format!("cannot open {name}"))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = progress(size);
    let mut tick = |read: u64| {
        if let Some(b) = &bar {
            b.set_position(read);
        }
    };
    let imported = cin_census::read(
        std::io::BufReader::with_capacity(1 << 16, file),
        cin_census::Options {
            file: name,
            board: a.board.as_deref(),
            progress: &mut tick,
        },
    )
    .map_err(anyhow::Error::msg)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(imported)
}

fn summary(i: &Imported, file: &str, db: &str) -> String {
    let s = &i.state;
    let initial = s.conferences.iter().filter(|c| c.kind != "review").count();
    let visits = match s.visits.len() {
        0 => String::new(),
        n => format!(", {n} visits"),
    };
    format!(
        "{file}: imported {} children into {db} ({} referrals, {} section 47 enquiries, {initial} initial conferences, {} plans, {} review conferences{visits}); {} rejected",
        s.children.len(),
        s.referrals.len(),
        s.strategy_discussions.len(),
        s.cp_plans.len(),
        s.conferences.len() - initial,
        i.rejected.len(),
    )
}

/// A progress bar on a terminal, for files large enough to wait for.
fn progress(size: u64) -> Option<indicatif::ProgressBar> {
    worth_showing(size).then(|| {
        let b = indicatif::ProgressBar::new(size);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    })
}

/// Creates the views, then cpwatch's own tables beside them, and records
/// that the case data is the SSD's (so the rules it cannot tell are left out).
async fn views(v: ViewsArgs) -> anyhow::Result<ExitCode> {
    use sqlx::Connection;
    if !v.database.starts_with("postgres") {
        anyhow::bail!("--database {}: the SSD's views need PostgreSQL (a postgres:// URL); for an SSD elsewhere, export its tables as CSV and use `cpwatch import ssd DIR`", crate::store::redact(&v.database));
    }
    let described = crate::store::redact(&v.database);
    let mut conn = sqlx::PgConnection::connect(&v.database)
        .await
        .map_err(|e| {
            let hint = crate::store::postgres::connect_hint(&v.database, &e);
            anyhow::anyhow!("cannot connect to {described}: {e}\n  what to do: {hint}")
        })?;
    let schema = v.ssd_schema.replace('"', "\"\"");
    let script = format!("SET search_path TO \"{schema}\";\n{SSD_VIEWS}");
    sqlx::raw_sql(&script).execute(&mut conn).await.with_context(|| {
        format!(
            "creating the views over the SSD in schema {:?} of {described} failed (are its tables there, and may this role create schema {VIEWS_SCHEMA}?)",
            v.ssd_schema
        )
    })?;
    conn.close().await.ok();
    let sep = if v.database.contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{sep}options=-c%20search_path%3D{VIEWS_SCHEMA}",
        v.database
    );
    let store = open(&url, false).await?;
    store.migrate(true).await?;
    let children = store.count_children().await?;
    store
        .set_state(
            crate::import::STATE_KEY,
            &serde_json::to_string(&Provenance {
                source: Source::Ssd,
                file: format!("views over schema {} (SSD)", v.ssd_schema),
                imported_at: chrono::Utc::now().to_rfc3339(),
                children: usize::try_from(children).unwrap_or(0),
            })?,
        )
        .await?;
    println!(
        "created the case tables as views over the SSD in schema {:?} ({children} children); point cpwatch at them with --database {}",
        v.ssd_schema,
        crate::store::redact(&url)
    );
    Ok(ExitCode::SUCCESS)
}

/// Whether progress is worth showing: on a terminal, for input over 8 MiB.
fn worth_showing(size: u64) -> bool {
    std::io::stderr().is_terminal() && size > 8 << 20
}
