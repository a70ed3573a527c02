//! The `cpwatch` command line: argument parsing and the subcommands, each a
//! thin layer over the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};

mod import;
mod snooze;

use crate::domain::case::Instant;
use crate::domain::engine::Engine;
use crate::domain::evaluate::{Draft, Name, Scratch, Status};
use crate::domain::rules;
use crate::report::Printable;
use crate::report::{check, stream};
use crate::service::clock::{Clock, SystemClock};
use crate::service::config::{process_env, secret, BoardContacts, Config, TransportKind};
use crate::service::daemon::{Daemon, Settings};
use crate::service::notify::{FileTransport, LogTransport, SmtpTransport, Transport};
use crate::store::{self, Store};

#[derive(Parser)]
#[command(
    name = "cpwatch",
    version,
    about = "Watches the timescales of the child protection conference process: which obligations each board's procedures set, when each is due, and whether it was met."
)]
pub struct Cli {
    /// Log format on standard error.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "CPWATCH_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Evaluates every board's rules and lists the obligations, their deadlines and status.
    Check(CheckArgs),
    /// Shows one child's timeline and how each of its deadlines was worked out.
    Explain(ExplainArgs),
    /// Fills the embedded database with a synthetic local authority and shows what is overdue.
    Demo(DemoArgs),
    /// Creates or updates the database tables (the case tables and cpwatch's own).
    Migrate(MigrateArgs),
    /// Fills a database with synthetic casework of any size, for load tests and benchmarks.
    Seed(SeedArgs),
    /// Writes the audit export of one board for a period: an xlsx workbook or CSV files.
    Export(ExportArgs),
    /// Runs the service: evaluates on a schedule, sends reminders and escalations, serves metrics.
    Run(RunArgs),
    /// Works with the configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Works with board rule files.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Works with the notification log: what was sent, what waits, what failed.
    #[command(subcommand)]
    Notifications(NotificationsCommand),
    /// Stops reminders by agreement until an expiry, with a reason and who
    /// agreed it; lists snoozes and their history; ends one early.
    #[command(subcommand)]
    Snooze(snooze::SnoozeCommand),
    /// Imports case data from a file the authority already holds (the
    /// Children in Need census), replacing the case data in the database.
    #[command(subcommand)]
    Import(import::ImportCommand),
}

#[derive(Subcommand)]
pub enum NotificationsCommand {
    /// Lists the notification log, oldest first: planned, status, stage,
    /// recipient, board, rule, attempts, last error.
    List {
        #[command(flatten)]
        db: DatabaseArgs,
        /// Only notifications with this status (pending, sent, failed, dropped).
        #[arg(long, value_parser = ["pending", "sent", "failed", "dropped"])]
        status: Option<String>,
    },
    /// Puts failed notifications back to pending, so that the service sends
    /// them at its next tick: after a relay that refused them is fixed.
    Requeue {
        #[command(flatten)]
        db: DatabaseArgs,
        /// Only those to this address.
        #[arg(long)]
        recipient: Option<String>,
    },
}

#[derive(Args)]
pub struct DatabaseArgs {
    #[arg(long, env = "CPWATCH_DATABASE_URL", default_value = store::DEFAULT_URL)]
    pub database: String,
}

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Validates rule files and reports each problem as file:line:column: message.
    Check {
        /// Directory of *.toml rule files (default: the rules built into cpwatch).
        dir: Option<PathBuf>,
        /// Also check that every quote appears in its source document, read
        /// from this directory (the files the rule files' `source` names).
        #[arg(long, value_name = "DIR")]
        sources: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Checks the configuration: every key, the rules, the templates and the database.
    Check(RunArgs),
}

#[derive(Args)]
pub struct RunArgs {
    /// The configuration file (every key can also come from CPWATCH_… variables).
    #[arg(long, env = "CPWATCH_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Args, Clone)]
pub struct Common {
    /// Database URL: sqlite:///abs/path.db, sqlite://relative.db or postgres://user@host/db.
    #[arg(long, env = "CPWATCH_DATABASE_URL", default_value = store::DEFAULT_URL)]
    pub database: String,
    /// Directory of board rule files (default: the rules built into cpwatch).
    #[arg(long, env = "CPWATCH_RULES_DIR")]
    pub rules: Option<PathBuf>,
    /// A newer bank-holidays.json (gov.uk format) to use instead of the built-in one.
    #[arg(long, env = "CPWATCH_CALENDAR_FILE")]
    pub calendar: Option<PathBuf>,
    /// Extra closure days, one `YYYY-MM-DD description` a line.
    #[arg(long, env = "CPWATCH_CLOSURES_FILE")]
    pub closures: Option<PathBuf>,
    /// The board of children whose `board` column is empty.
    #[arg(
        long,
        env = "CPWATCH_DEFAULT_BOARD",
        default_value = "working-together-2010"
    )]
    pub default_board: String,
    /// Evaluate as at this instant (RFC 3339, e.g. 2027-01-14T09:00:00Z) instead of now.
    #[arg(long, value_parser = parse_instant)]
    pub at: Option<Instant>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    /// One obligation a line (JSON Lines).
    Jsonl,
    Csv,
}

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub common: Common,
    /// Only this board's obligations.
    #[arg(long)]
    pub board: Option<String>,
    /// Only these rules (repeatable).
    #[arg(long = "rule", id = "rule")]
    pub rule_ids: Vec<String>,
    /// Only this child's obligations (case reference).
    #[arg(long)]
    pub child: Option<String>,
    /// Only these statuses (repeatable): pending, due_soon, overdue, met, met_late, void, excepted.
    #[arg(long = "status", value_parser = parse_status)]
    pub statuses: Vec<Status>,
    /// In the table, every obligation selected, not only what needs action
    /// (overdue and due soon) with a summary of the rest.
    #[arg(long)]
    pub all: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Args)]
pub struct ExplainArgs {
    /// The child's case reference.
    pub reference: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub common: Common,
    /// Seed of the synthetic data: the same seed and --at give the same data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How many children.
    #[arg(long, default_value_t = 300)]
    pub children: usize,
    /// Replace case data that `cpwatch demo` did not create.
    #[arg(long)]
    pub force: bool,
    /// Then run the service on the demo data: reminder emails go to --outbox as .eml files.
    #[arg(long)]
    pub run: bool,
    /// Where `--run` writes the reminder emails.
    #[arg(long, default_value = "demo-outbox")]
    pub outbox: PathBuf,
    /// Where `--run` serves /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:9187")]
    pub listen: String,
}

#[derive(Args)]
pub struct SeedArgs {
    /// How many children.
    #[arg(long)]
    pub children: usize,
    /// Seed of the synthetic data: the same seed, size, years and --at give the same data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How many years of history (referrals spread over them, ending at --at).
    #[arg(long, default_value_t = 3)]
    pub years: i64,
    #[arg(long, env = "CPWATCH_DATABASE_URL", default_value = store::DEFAULT_URL)]
    pub database: String,
    /// The end of the history (RFC 3339); default now.
    #[arg(long, value_parser = parse_instant)]
    pub at: Option<Instant>,
    /// Replace case data that cpwatch did not create.
    #[arg(long)]
    pub force: bool,
    /// Write the casework as a Children in Need census return to this file
    /// instead of into the database (to try `cpwatch import cin-census`).
    #[arg(long, value_name = "FILE")]
    pub census: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ExportFormat {
    Xlsx,
    Csv,
}

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub common: Common,
    /// The board whose obligations to export.
    #[arg(long)]
    pub board: String,
    /// First day of the period (deadlines on or after it, board-local), YYYY-MM-DD.
    #[arg(long)]
    pub from: NaiveDate,
    /// Last day of the period (inclusive), YYYY-MM-DD.
    #[arg(long)]
    pub to: NaiveDate,
    #[arg(long, value_enum, default_value = "xlsx")]
    pub format: ExportFormat,
    /// The file (xlsx, or csv with --table) or directory (csv) to write.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// With --format csv: only this table, as one file.
    #[arg(long)]
    pub table: Option<String>,
    /// Replace an existing file or directory.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args)]
pub struct MigrateArgs {
    #[arg(long, env = "CPWATCH_DATABASE_URL", default_value = store::DEFAULT_URL)]
    pub database: String,
    /// Create only cpwatch's own tables (the case tables are someone else's, e.g. views).
    #[arg(long)]
    pub own_tables_only: bool,
}

fn parse_instant(s: &str) -> Result<Instant, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("{s:?} is not an RFC 3339 instant such as 2027-01-14T09:00:00Z"))
}

fn parse_status(s: &str) -> Result<Status, String> {
    Status::parse(s).ok_or_else(|| {
        let known: Vec<&str> = Status::ALL.iter().map(|st| st.as_str()).collect();
        format!("unknown status {s:?} ({})", known.join(", "))
    })
}

/// Runs the command line; errors the user must fix exit with status 2.
pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Check(a) => check(a).await,
        Command::Explain(a) => explain(a).await,
        Command::Demo(a) => demo(a).await,
        Command::Migrate(a) => migrate(a).await,
        Command::Rules(RulesCommand::Check { dir, sources }) => Ok(rules_check(dir, sources)),
        Command::Run(a) => run_service(a).await,
        Command::Export(a) => export(a).await,
        Command::Seed(a) => seed(a).await,
        Command::Config(ConfigCommand::Check(a)) => config_check(a).await,
        Command::Notifications(c) => notifications(c).await,
        Command::Snooze(c) => snooze::run(c).await,
        Command::Import(c) => import::run(c).await,
    };
    match result {
        Ok(code) => code,
        // A reader that stopped reading (`| head`) is not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cpwatch: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(BrokenPipe))
            || c.downcast_ref::<csv::Error>().is_some_and(
                |x| matches!(x.kind(), csv::ErrorKind::Io(io) if io.kind() == BrokenPipe),
            )
    })
}

impl Engine {
    fn from_args(c: &Common) -> anyhow::Result<Engine> {
        Engine::load(
            c.rules.as_deref(),
            c.calendar.as_deref(),
            c.closures.as_deref(),
            &c.default_board,
        )
    }
}

/// The snoozes in force, for `explain` and `export`. A database cpwatch's
/// own tables were never made in (no `run` or `migrate`) has none to show.
async fn snoozes_in_force(store: &dyn Store, now: Instant) -> crate::domain::snooze::Snoozes {
    match store.snoozes().await {
        Ok(all) => crate::domain::snooze::Snoozes::active(all, now),
        Err(e) => {
            eprintln!("cpwatch: snoozes are not shown: {e} (`cpwatch migrate --own-tables-only` creates their table)");
            Default::default()
        }
    }
}

async fn open(url: &str, create: bool) -> anyhow::Result<Box<dyn Store>> {
    Ok(store::connect(url, create).await?)
}

fn now_or(at: Option<Instant>) -> Instant {
    at.unwrap_or_else(Utc::now)
}

async fn check(a: CheckArgs) -> anyhow::Result<ExitCode> {
    let mut engine = Engine::from_args(&a.common)?;
    if let Some(b) = &a.board {
        engine.board(b)?;
    }
    let store = open(&a.common.database, false).await?;
    engine.for_source(crate::import::source_of(&*store).await?);
    // Never freed: a national state is millions of allocations, and
    // freeing them one by one just before the process exits takes time and
    // gives nothing back.
    let state = std::mem::ManuallyDrop::new(store.load().await?);
    // Only the selected obligations are kept: a national evaluation need not fit in memory whole.
    let wanted = |o: &Draft<'_>| {
        a.board.as_deref().is_none_or(|b| &*o.of.board == b)
            && (a.rule_ids.is_empty() || a.rule_ids.iter().any(|r| **r == *o.of.rule))
            && a.child
                .as_deref()
                .is_none_or(|c| o.child.map(Name::as_str) == Some(c))
            && (a.statuses.is_empty() || a.statuses.contains(&o.status))
    };
    let mut scratch = Scratch::default();
    let now = now_or(a.common.at);
    if a.format == Format::Table && !a.all && a.statuses.is_empty() {
        return check_for_a_person(&engine, &state, &mut scratch, now, &wanted);
    }
    let z = engine.zones();
    // Standard output is written a line at a time: buffered, a national
    // output goes in large writes rather than millions of small ones.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let shape = match a.format {
        Format::Table => {
            let eval = engine.evaluate_where(&state, &mut scratch, now, &wanted);
            let selected: Vec<&Draft<'_>> = eval.obligations.iter().collect();
            let mut out = Printable::new(&mut out);
            check::write_table(&mut out, &eval, &selected, &z)?;
            if selected.len() > 50 {
                writeln!(out, "\n{} obligations: --format csv, json or jsonl puts them in a spreadsheet or a script.", selected.len())?;
            }
            out.flush()?;
            return Ok(ExitCode::SUCCESS);
        }
        Format::Json => stream::Shape::Json,
        Format::Jsonl => stream::Shape::Jsonl,
        Format::Csv => stream::Shape::Csv,
    };
    // The obligations in the pieces they were kept in: never two copies at once.
    let kept = engine.evaluate_parts(&state, &mut scratch, now, &wanted, &|_| true);
    let (parts, findings) = (kept.parts, kept.findings);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    stream::write(
        &mut out,
        shape,
        parts.iter().flatten(),
        now,
        &findings,
        &z,
        threads,
    )?;
    if shape == stream::Shape::Jsonl && !findings.is_empty() {
        eprintln!(
            "cpwatch: {} data-quality finding(s), listed by --format json",
            findings.len()
        );
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `check` as a person runs it: what needs action (overdue and due soon) and
/// a line about the rest. Only those are kept; the rest are counted as
/// they are made, so a national evaluation needs no room for them.
fn check_for_a_person(
    engine: &Engine,
    state: &crate::domain::case::CaseState,
    scratch: &mut Scratch,
    now: Instant,
    wanted: &(dyn Fn(&Draft<'_>) -> bool + Sync),
) -> anyhow::Result<ExitCode> {
    // Every wanted obligation is counted by status; only what needs action is kept.
    let mut kept = engine.evaluate_parts(state, scratch, now, wanted, &|o| {
        matches!(o.status, Status::Overdue | Status::DueSoon)
    });
    let by_status: std::collections::BTreeMap<Status, usize> =
        std::mem::take(&mut kept.tally).into_iter().collect();
    let eval = kept.joined(now);
    let action: Vec<&Draft<'_>> = eval.obligations.iter().collect();
    let z = engine.zones();
    let mut out = Printable::new(std::io::BufWriter::with_capacity(
        1 << 16,
        std::io::stdout().lock(),
    ));
    writeln!(out, "What needs action now (overdue and due soon):")?;
    check::write_table(&mut out, &eval, &action, &z)?;
    writeln!(out, "\nIn all: {}", check::summary_of(&by_status, now, &z))?;
    writeln!(
        out,
        "Every obligation: --all, or --format csv, json or jsonl for a spreadsheet or a script."
    )?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

async fn explain(a: ExplainArgs) -> anyhow::Result<ExitCode> {
    let mut engine = Engine::from_args(&a.common)?;
    let store = open(&a.common.database, false).await?;
    engine.for_source(crate::import::source_of(&*store).await?);
    // Only the child's rows and those of every child and conference linked
    // to it: its evaluation reads nothing else.
    let linked = store.linked(&a.reference).await?;
    let state = store
        .load_rows(&crate::store::Rows::Linked(linked))
        .await?
        .state;
    let mut scratch = Scratch::default();
    let now = now_or(a.common.at);
    let eval = engine.evaluate(&state, &mut scratch, now);
    let snoozes = snoozes_in_force(&*store, now).await;
    let mut out = Printable::new(std::io::stdout().lock());
    let ctx = crate::report::explain::Context {
        rules: &engine.rules,
        holidays: &engine.holidays,
        zones: &engine.zones(),
        snoozes: &snoozes,
    };
    crate::report::explain::explain(&mut out, &state, &eval, &ctx, &a.reference).map_err(|e| {
        match e {
            crate::report::explain::ExplainError::Io(io) => anyhow::Error::from(io),
            other => other.into(),
        }
    })?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

async fn demo(a: DemoArgs) -> anyhow::Result<ExitCode> {
    let engine = Engine::from_args(&a.common)?;
    let now = now_or(a.common.at);
    let state = crate::synthetic::demo::generate(a.seed, a.children, now, &engine.holidays)
        .context("generating the demo data")?;
    let store = crate::synthetic::write(
        &a.common.database,
        &state,
        a.force,
        serde_json::json!({ "seed": a.seed, "children": a.children, "at": now.to_rfc3339() }),
    )
    .await?;
    let state = store.load().await?;
    let mut scratch = Scratch::default();
    let eval = engine.evaluate(&state, &mut scratch, now);
    let z = engine.zones();
    let action: Vec<&Draft<'_>> = eval
        .obligations
        .iter()
        .filter(|o| matches!(o.status, Status::Overdue | Status::DueSoon))
        .collect();
    let all: Vec<&Draft<'_>> = eval.obligations.iter().collect();
    let mut out = Printable::new(std::io::stdout().lock());
    writeln!(
        out,
        "Demo local authority written to {} ({} children, seed {}).\n",
        store.describe(),
        a.children,
        a.seed
    )?;
    writeln!(out, "What needs action now (overdue and due soon):")?;
    check::write_table(&mut out, &eval, &action, &z)?;
    writeln!(out)?;
    writeln!(out, "In all: {}", check::summary_line(&eval, &all, &z))?;
    let example = eval
        .obligations
        .iter()
        .filter(|o| &*o.of.rule == "icpc-timeliness" && o.status == Status::MetLate)
        .min_by(|a, b| a.report_cmp(b))
        .and_then(|o| o.child.cloned());
    writeln!(out, "\nNext: `cpwatch check --database {} --format json`, or `cpwatch explain {}` for one child's deadlines worked out by hand.", a.common.database, example.as_deref().unwrap_or("REFERENCE"))?;
    if !a.run {
        return Ok(ExitCode::SUCCESS);
    }
    drop(out);
    let config = demo_config(&a);
    println!(
        "\nRunning the service on the demo data: reminder emails go to {}/, metrics at http://{}/metrics. Ctrl-C stops it.",
        a.outbox.display(),
        config.http.listen
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let daemon = Daemon::new(
        Settings::new(
            config,
            engine,
            Box::new(FileTransport {
                dir: a.outbox.clone(),
            }),
        )?,
        store,
        clock,
    )?;
    daemon.store().leadership().await?;
    Arc::new(daemon).serve(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn seed(a: SeedArgs) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let holidays = std::sync::Arc::new(crate::domain::calendar::HolidayData::load(None)?);
    let now = now_or(a.at);
    let state = crate::synthetic::demo::generate_with(
        a.seed,
        a.children,
        now,
        a.years.saturating_mul(365),
        &holidays,
    )
    .context("generating synthetic data")?;
    let generated = started.elapsed();
    if let Some(path) = &a.census {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 16, file);
        crate::synthetic::census::write(&state, now.date_naive(), &mut w)
            .and_then(|()| w.flush())
            .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "{}: a census return of {} children (seed {}); generated in {:.1} s, written in {:.1} s",
            path.display(),
            a.children,
            a.seed,
            generated.as_secs_f64(),
            (started.elapsed() - generated).as_secs_f64()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: usize = crate::store::rows_of(&state).iter().map(Vec::len).sum();
    let store = crate::synthetic::write(&a.database, &state, a.force, serde_json::json!({ "seed": a.seed, "children": a.children, "years": a.years, "at": now.to_rfc3339() })).await?;
    println!(
        "{}: {} children, {rows} rows over {} years (seed {}); generated in {:.1} s, written in {:.1} s",
        store.describe(),
        a.children,
        a.years,
        a.seed,
        generated.as_secs_f64(),
        (started.elapsed() - generated).as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// The demo's service settings: files instead of mail, at any hour of any day.
fn demo_config(a: &DemoArgs) -> Config {
    let mut c = Config {
        database_url: a.common.database.clone(),
        default_board: a.common.default_board.clone(),
        ..Config::default()
    };
    c.http.listen = a.listen.clone();
    c.mail.transport = TransportKind::File;
    c.mail.from = "cpwatch demo <cpwatch@demo.cpwatch.example>".into();
    c.mail.directory = a.outbox.clone();
    c.schedule.evaluate = "0 * * * * *".into();
    c.schedule.digest_at = "00:00".into();
    c.reminders.send_window = "00:00-23:59".into();
    c.reminders.working_days_only = false;
    for (board, _) in crate::domain::rules::BUILT_IN {
        let id = board.trim_end_matches(".toml");
        c.boards.insert(
            id.to_string(),
            BoardContacts {
                conference_service: Some(format!("conferences@{id}.cpwatch.example")),
                safeguarding_manager: Some(format!("safeguarding.manager@{id}.cpwatch.example")),
                met_notices: None,
            },
        );
    }
    c
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM. The handlers are registered when
/// this is called, so a signal during start-up is not lost.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (term, int) => {
                let e = term
                    .err()
                    .or(int.err())
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                tracing::warn!(error = %e, "cannot listen for SIGTERM/SIGINT: stop with SIGKILL");
                std::future::pending::<()>().await;
            }
        }
        tracing::info!("shutdown requested");
    }
}

async fn export(a: ExportArgs) -> anyhow::Result<ExitCode> {
    let mut engine = Engine::from_args(&a.common)?;
    engine.board(&a.board)?;
    if a.from > a.to {
        bail!("--from {} is after --to {}", a.from, a.to);
    }
    let store = open(&a.common.database, false).await?;
    engine.for_source(crate::import::source_of(&*store).await?);
    let board = engine.board(&a.board)?;
    let calendar = crate::domain::calendar::Calendar::new(
        engine.holidays.clone(),
        &board.calendar,
        board.time_zone,
    )?;
    // Only the board's children, their conferences and the children at those.
    let rows = crate::store::Rows::Board {
        board: a.board.clone(),
        default: a.board == engine.default_board,
    };
    // Never freed, as `check`'s: the process ends after the export.
    let state = std::mem::ManuallyDrop::new(store.load_rows(&rows).await?.state);
    let now = now_or(a.common.at);
    let mut scratch = Scratch::default();
    let eval = engine.evaluate_where(&state, &mut scratch, now, &|o| *o.of.board == *a.board);
    let snoozes = snoozes_in_force(&*store, now).await;
    let report = crate::report::export::build(&crate::report::export::Input {
        eval: &eval,
        state: &state,
        rules: &engine.rules,
        calendar: &calendar,
        board: &a.board,
        default_board: &engine.default_board,
        from: a.from,
        to: a.to,
        generated_at: now,
        snoozes: &snoozes,
    });
    let stem = format!("cpwatch-{}-{}-{}", a.board, a.from, a.to);
    let out = match (a.format, &a.table) {
        (ExportFormat::Xlsx, Some(_)) => bail!("--table goes with --format csv"),
        (ExportFormat::Xlsx, None) => {
            let out = a
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{stem}.xlsx")));
            report.write_xlsx(&out, a.force)?;
            out
        }
        (ExportFormat::Csv, Some(t)) => {
            let out = a
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{stem}-{t}.csv")));
            report.write_csv_file(t, &out, a.force)?;
            out
        }
        (ExportFormat::Csv, None) => {
            let out = a
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{stem}-csv")));
            report.write_csv_dir(&out, a.force)?;
            out
        }
    };
    println!(
        "{}: {} obligations of {} due {} to {} ({} findings); the file holds case references: keep it where only the QA team can read it",
        out.display(),
        report.obligations.len(),
        a.board,
        a.from,
        a.to,
        report.findings.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn config_path(a: &RunArgs) -> PathBuf {
    a.config
        .clone()
        .unwrap_or_else(|| PathBuf::from("cpwatch.toml"))
}

/// The configuration and everything built from it; what SIGHUP reloads.
fn load_settings(a: &RunArgs, source: Option<crate::import::Source>) -> anyhow::Result<Settings> {
    let config = Config::load(&config_path(a), a.config.is_some(), &process_env)?;
    let mut engine = Engine::load(
        config.rules_dir.as_deref(),
        config.calendar_file.as_deref(),
        config.closures_file.as_deref(),
        &config.default_board,
    )?;
    engine.for_source(source);
    for board in config.boards.keys() {
        if !engine.rules.boards.contains_key(board) {
            bail!("boards.{board}: no rule file defines this board");
        }
    }
    let transport: Box<dyn Transport> = match config.mail.transport {
        TransportKind::File => Box::new(FileTransport {
            dir: config.mail.directory.clone(),
        }),
        TransportKind::Log => Box::new(LogTransport),
        TransportKind::Smtp => Box::new(
            SmtpTransport::new(
                &config.mail.smtp,
                secret("CPWATCH_SMTP_PASSWORD", &process_env)?,
            )
            .map_err(|e| anyhow::anyhow!("mail.smtp: {e}"))?,
        ),
    };
    Settings::new(config, engine, transport)
}

/// The database the configuration names, with cpwatch's own tables in place.
async fn service_store(config: &Config) -> anyhow::Result<Box<dyn Store>> {
    let url = config.database_url_with_secret(&process_env)?;
    let embedded = url.starts_with("sqlite:");
    let store = open(&url, embedded).await?;
    // cpwatch may create the case tables only in a database of its own.
    store.migrate(!embedded).await?;
    Ok(store)
}

async fn run_service(a: RunArgs) -> anyhow::Result<ExitCode> {
    let shutdown = shutdown_signal();
    let settings = load_settings(&a, None)?;
    let store = service_store(&settings.config).await?;
    // Imported case data: the rules its source cannot tell are taken out.
    let settings = match crate::import::source_of(&*store).await? {
        Some(source) => load_settings(&a, Some(source))?,
        None => settings,
    };
    tracing::info!(database = %store.describe(), transport = ?settings.config.mail.transport, "starting");
    if let Some(advice) = settings.config.database_advice() {
        tracing::warn!("{advice}");
    }
    let daemon = Arc::new(Daemon::new(settings, store, Arc::new(SystemClock))?);
    // With SQLite a second instance stops here; with PostgreSQL it waits its turn to send.
    daemon.store().leadership().await?;
    let reloader = daemon.clone();
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP: reload by restarting");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration and rules");
            let source = crate::import::source_of(reloader.store())
                .await
                .unwrap_or_default();
            reloader.reload(load_settings(&a, source));
        }
    });
    daemon.serve(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

async fn config_check(a: RunArgs) -> anyhow::Result<ExitCode> {
    let path = config_path(&a);
    if !path.is_file() {
        bail!(
            "no configuration file at {}: pass --config FILE (see deploy/cpwatch.example.toml)",
            path.display()
        );
    }
    let Settings { config, engine, .. } = load_settings(&a, None)?;
    // A check reads the database as it is: it creates nothing.
    let url = config.database_url_with_secret(&process_env)?;
    let store = open(&url, false).await?;
    let state = store.load().await?;
    let boards_without_contacts: Vec<&String> = engine
        .rules
        .boards
        .keys()
        .filter(|b| !config.boards.contains_key(*b))
        .collect();
    println!(
        "config OK: database {} ({} children), {} boards, mail by {:?}, HTTP on {}",
        store.describe(),
        state.children.len(),
        engine.rules.boards.len(),
        config.mail.transport,
        config.http.listen
    );
    if let Some(advice) = config.database_advice() {
        println!("note: {advice}");
    }
    if !boards_without_contacts.is_empty() {
        println!("note: no [boards.<id>] contacts for {}: their conference-service and safeguarding-manager reminders have no address", boards_without_contacts.iter().map(|b| b.as_str()).collect::<Vec<_>>().join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

async fn migrate(a: MigrateArgs) -> anyhow::Result<ExitCode> {
    let store = open(&a.database, true).await?;
    let applied = store.migrate(a.own_tables_only).await?;
    if applied.is_empty() {
        println!("{}: up to date", store.describe());
    }
    for m in applied {
        println!("{}: applied {m}", store.describe());
    }
    Ok(ExitCode::SUCCESS)
}

async fn notifications(c: NotificationsCommand) -> anyhow::Result<ExitCode> {
    match c {
        NotificationsCommand::List { db, status } => {
            let store = open(&db.database, false).await?;
            let rows = store.log_rows(status.as_deref()).await?;
            let mut out = Printable::new(std::io::BufWriter::new(std::io::stdout().lock()));
            let one_line = |s: &str| s.replace(['\n', '\t'], " ");
            for r in &rows {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    r.planned_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    r.status,
                    r.stage,
                    one_line(&r.recipient),
                    r.board,
                    r.rule,
                    r.attempts,
                    one_line(r.last_error.as_deref().unwrap_or(""))
                )?;
            }
            out.flush()?;
            eprintln!("{} notifications", rows.len());
        }
        NotificationsCommand::Requeue { db, recipient } => {
            let store = open(&db.database, false).await?;
            let n = store.log_requeue(recipient.as_deref(), Utc::now()).await?;
            println!(
                "{}: {n} failed notifications put back to pending; the service sends them at its next tick",
                store.describe()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A board version's rules: what it inherits, overrides, adds and removes.
fn print_lineage(set: &rules::RuleSet, b: &rules::Board) {
    println!(
        "  {} {} (from {}): {} rules, {}",
        b.id,
        b.version,
        b.effective_from,
        b.rules.len(),
        b.file
    );
    let l = set.lineage(b);
    if let Some(parent) = &l.parent {
        println!("    inherits from {parent}: {}", l.inherited.join(", "));
        println!("    overrides: {}", l.overridden.join(", "));
    }
    println!("    adds: {}", l.added.join(", "));
    for r in &l.removed {
        println!("    removes {}: {}", r.id, r.reason);
    }
}

fn rules_check(dir: Option<PathBuf>, sources: Option<PathBuf>) -> ExitCode {
    let result = match &dir {
        Some(d) => rules::load_dir(d),
        None => rules::built_in(),
    };
    match result {
        Ok(set) => {
            let versions: usize = set.boards.values().map(Vec::len).sum();
            let count: usize = set.boards.values().flatten().map(|b| b.rules.len()).sum();
            println!(
                "rules OK: {} boards, {versions} versions, {count} rules in force (digest {})",
                set.boards.len(),
                set.digest
            );
            for b in set.boards.values().flatten() {
                print_lineage(&set, b);
            }
            let Some(dir) = sources else {
                return ExitCode::SUCCESS;
            };
            let problems = rules::check_sources(&set, &dir);
            for p in &problems {
                println!("{p}");
            }
            if problems.is_empty() {
                println!(
                    "every quote found in its source document in {}",
                    dir.display()
                );
                ExitCode::SUCCESS
            } else {
                eprintln!("{} quote problem(s) found", problems.len());
                ExitCode::from(1)
            }
        }
        Err(errors) => {
            for e in &errors.0 {
                println!("{e}");
            }
            eprintln!("{} problem(s) found", errors.0.len());
            ExitCode::from(1)
        }
    }
}
