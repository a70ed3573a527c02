//! The `cpwatch` command line: argument parsing and the subcommands, each a
//! thin layer over the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::calendar::HolidayData;
use crate::case::Instant;
use crate::evaluate::{evaluate, Evaluation, Obligation, Options, Status};
use crate::report::{self, Zones};
use crate::rules::{self, RuleSet};
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
    /// Works with board rule files.
    #[command(subcommand)]
    Rules(RulesCommand),
}

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Validates rule files and reports each problem as file:line:column: message.
    Check {
        /// Directory of *.toml rule files (default: the rules built into cpwatch).
        dir: Option<PathBuf>,
    },
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
        format!("unknown status {s:?} (pending, due_soon, overdue, met, met_late, void, excepted)")
    })
}

/// Everything an evaluation needs besides the case state.
pub struct Engine {
    pub rules: RuleSet,
    pub holidays: Arc<HolidayData>,
    pub default_board: String,
}

impl Engine {
    pub fn load(c: &Common) -> anyhow::Result<Self> {
        let rules = match &c.rules {
            Some(dir) => rules::load_dir(dir),
            None => rules::built_in(),
        }
        .map_err(|e| anyhow!("the rule files have errors:\n{e}"))?;
        let mut holidays = HolidayData::load(c.calendar.as_deref())?;
        if let Some(f) = &c.closures {
            holidays.load_closures(f)?;
        }
        if !rules.boards.contains_key(&c.default_board) {
            bail!(
                "--default-board {:?} has no rule file (known: {})",
                c.default_board,
                rules.boards.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        for b in rules.boards.values().flatten() {
            holidays
                .check_division(&b.calendar)
                .with_context(|| format!("board {} ({})", b.id, b.file))?;
        }
        Ok(Engine {
            rules,
            holidays: Arc::new(holidays),
            default_board: c.default_board.clone(),
        })
    }

    pub fn evaluate(&self, state: &crate::case::CaseState, now: Instant) -> Evaluation {
        evaluate(
            state,
            &self.rules,
            &self.holidays,
            now,
            &Options {
                default_board: &self.default_board,
            },
        )
    }

    pub fn zones(&self) -> Zones {
        Zones::new(&self.rules, &self.default_board)
    }
}

/// Runs the command line; errors the user must fix exit with status 2.
pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Check(a) => check(a).await,
        Command::Explain(a) => explain(a).await,
        Command::Demo(a) => demo(a).await,
        Command::Migrate(a) => migrate(a).await,
        Command::Rules(RulesCommand::Check { dir }) => Ok(rules_check(dir)),
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

async fn open(url: &str, create: bool) -> anyhow::Result<Box<dyn Store>> {
    Ok(store::connect(url, create).await?)
}

fn now_or(at: Option<Instant>) -> Instant {
    at.unwrap_or_else(Utc::now)
}

async fn check(a: CheckArgs) -> anyhow::Result<ExitCode> {
    let engine = Engine::load(&a.common)?;
    if let Some(b) = &a.board {
        if !engine.rules.boards.contains_key(b) {
            bail!(
                "--board {b:?} has no rule file (known: {})",
                engine
                    .rules
                    .boards
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let store = open(&a.common.database, false).await?;
    let state = store.load().await?;
    let eval = engine.evaluate(&state, now_or(a.common.at));
    let selected: Vec<&Obligation> = eval
        .obligations
        .iter()
        .filter(|o| a.board.as_ref().is_none_or(|b| &o.board == b))
        .filter(|o| a.rule_ids.is_empty() || a.rule_ids.contains(&o.rule))
        .filter(|o| a.child.as_ref().is_none_or(|c| o.child.as_ref() == Some(c)))
        .filter(|o| a.statuses.is_empty() || a.statuses.contains(&o.status))
        .collect();
    let z = engine.zones();
    let mut out = std::io::stdout().lock();
    match a.format {
        Format::Table => report::write_table(&mut out, &eval, &selected, &z)?,
        Format::Json => report::write_json(&mut out, &eval, &selected, &z)?,
        Format::Csv => report::write_csv(&mut out, &selected, &z)?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

async fn explain(a: ExplainArgs) -> anyhow::Result<ExitCode> {
    let engine = Engine::load(&a.common)?;
    let store = open(&a.common.database, false).await?;
    let state = store.load().await?;
    let eval = engine.evaluate(&state, now_or(a.common.at));
    let mut out = std::io::stdout().lock();
    crate::explain::explain(
        &mut out,
        &state,
        &eval,
        &engine.rules,
        &engine.holidays,
        &a.reference,
        &engine.zones(),
    )
    .map_err(|e| match e {
        crate::explain::ExplainError::Io(io) => anyhow::Error::from(io),
        other => other.into(),
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn demo(a: DemoArgs) -> anyhow::Result<ExitCode> {
    let engine = Engine::load(&a.common)?;
    let now = now_or(a.common.at);
    let store = open(&a.common.database, true).await?;
    store.migrate(false).await?;
    let existing = store.count_children().await?;
    if existing > 0 && store.get_state("demo").await?.is_none() && !a.force {
        bail!(
            "{} already holds {existing} children that `cpwatch demo` did not create; it will not replace them. Use another --database, or --force to replace them",
            store.describe()
        );
    }
    let state = crate::demo::generate(a.seed, a.children, now, &engine.holidays)
        .context("generating the demo data")?;
    store.replace_case_data(&state).await?;
    store
        .set_state(
            "demo",
            &serde_json::json!({ "seed": a.seed, "children": a.children, "at": now.to_rfc3339() })
                .to_string(),
        )
        .await?;
    let state = store.load().await?;
    let eval = engine.evaluate(&state, now);
    let z = engine.zones();
    let action: Vec<&Obligation> = eval
        .obligations
        .iter()
        .filter(|o| matches!(o.status, Status::Overdue | Status::DueSoon))
        .collect();
    let all: Vec<&Obligation> = eval.obligations.iter().collect();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Demo local authority written to {} ({} children, seed {}).\n",
        store.describe(),
        a.children,
        a.seed
    )?;
    writeln!(out, "What needs action now (overdue and due soon):")?;
    report::write_table(&mut out, &eval, &action, &z)?;
    writeln!(out)?;
    writeln!(out, "In all: {}", report::summary_line(&eval, &all, &z))?;
    let example = eval
        .obligations
        .iter()
        .find(|o| o.rule == "icpc-timeliness" && o.status == Status::MetLate)
        .and_then(|o| o.child.clone());
    writeln!(out, "\nNext: `cpwatch check --database {} --format json`, or `cpwatch explain {}` for one child's deadlines worked out by hand.", a.common.database, example.as_deref().unwrap_or("REFERENCE"))?;
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

fn rules_check(dir: Option<PathBuf>) -> ExitCode {
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
            for (id, versions) in &set.boards {
                for b in versions {
                    println!(
                        "  {id} {} (from {}): {} rules, {}",
                        b.version,
                        b.effective_from,
                        b.rules.len(),
                        b.file
                    );
                }
            }
            ExitCode::SUCCESS
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
