//! `cpwatch snooze`: stopping reminders by agreement, with a reason, who
//! agreed it and an expiry; listing snoozes and their history; ending one early.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context};
use chrono::{NaiveDate, Utc};
use clap::{ArgGroup, Args, Subcommand};
use rand::Rng;

use super::{open, parse_instant, DatabaseArgs};
use crate::domain::case::Instant;
use crate::domain::snooze::{key_parts, Scope, Snooze};
use crate::report::Printable;
use crate::store::{literal, Store};

/// The longest a snooze may last: one left for longer is a forgotten one.
pub const MAX_DAYS: i64 = 92;

#[derive(Subcommand)]
pub enum SnoozeCommand {
    /// Stops reminders and escalations about a child, a conference, an
    /// agency's report or one obligation until an expiry. The duties still
    /// count as late in every figure; an agreed change to the timescale
    /// itself is an `exceptions` row.
    Add(AddArgs),
    /// Lists the snoozes in force (with --all, every snooze ever made).
    List {
        #[command(flatten)]
        db: DatabaseArgs,
        /// Every snooze, expired and ended ones included: the history.
        #[arg(long)]
        all: bool,
        /// As at this instant (RFC 3339) instead of now.
        #[arg(long, value_parser = parse_instant)]
        at: Option<Instant>,
    },
    /// Ends a snooze before its expiry: reminders resume at the next tick.
    Expire {
        #[command(flatten)]
        db: DatabaseArgs,
        /// The snooze's id, as `snooze add` and `snooze list` show it.
        id: String,
        /// Who ended it.
        #[arg(long)]
        by: String,
        /// As at this instant (RFC 3339) instead of now.
        #[arg(long, value_parser = parse_instant)]
        at: Option<Instant>,
    },
}

#[derive(Args)]
#[command(group(ArgGroup::new("what").required(true).args(["child", "conference", "obligation"])))]
#[command(group(ArgGroup::new("expiry").required(true).args(["until", "for_"])))]
pub struct AddArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Every duty about the child with this case reference.
    #[arg(long)]
    pub child: Option<String>,
    /// Every duty of this conference (with --agency, only that agency's report).
    #[arg(long)]
    pub conference: Option<String>,
    /// With --conference: only this agency's report duties.
    #[arg(long, requires = "conference")]
    pub agency: Option<String>,
    /// One obligation, by its key (`check --format json` shows it).
    #[arg(long)]
    pub obligation: Option<String>,
    /// The last day of the snooze (YYYY-MM-DD, to the end of that day, UK
    /// time), or an RFC 3339 instant.
    #[arg(long)]
    pub until: Option<String>,
    /// How long it lasts: days or weeks, e.g. 10d or 2w.
    #[arg(long = "for", id = "for_", value_name = "DURATION")]
    pub for_: Option<String>,
    /// Why reminders stop (shown in `explain` and the audit export).
    #[arg(long)]
    pub reason: String,
    /// Who agreed it.
    #[arg(long)]
    pub agreed_by: String,
    /// Made as at this instant (RFC 3339) instead of now.
    #[arg(long, value_parser = parse_instant)]
    pub at: Option<Instant>,
}

pub async fn run(c: SnoozeCommand) -> anyhow::Result<ExitCode> {
    match c {
        SnoozeCommand::Add(a) => add(a).await,
        SnoozeCommand::List { db, all, at } => {
            list(&db.database, all, at.unwrap_or_else(Utc::now)).await
        }
        SnoozeCommand::Expire { db, id, by, at } => {
            let store = open(&db.database, false).await?;
            if by.trim().is_empty() {
                bail!("--by is empty: say who ended the snooze");
            }
            if !store
                .snooze_end(&id, by.trim(), at.unwrap_or_else(Utc::now))
                .await?
            {
                bail!("no snooze {id:?} is in force (see `cpwatch snooze list --all`)");
            }
            println!(
                "snooze {id} ended; reminders about its duties resume at the service's next tick"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn add(a: AddArgs) -> anyhow::Result<ExitCode> {
    let now = a.at.unwrap_or_else(Utc::now);
    let expires_at = expiry(a.until.as_deref(), a.for_.as_deref(), now)?;
    if expires_at <= now {
        bail!(
            "the snooze would end at {expires_at}, which is not after {now}: give a later --until"
        );
    }
    if expires_at - now > chrono::Duration::days(MAX_DAYS) {
        bail!("a snooze lasts at most {MAX_DAYS} days (until {}): add a new one when it ends, or record an exception if the timescale itself was changed", (now + chrono::Duration::days(MAX_DAYS)).format("%Y-%m-%d"));
    }
    for (flag, v) in [("--reason", &a.reason), ("--agreed-by", &a.agreed_by)] {
        if v.trim().is_empty() {
            bail!("{flag} is empty: a snooze needs a reason and who agreed it");
        }
    }
    let (scope, target) = match (&a.child, &a.conference, &a.obligation) {
        (Some(c), _, _) => (Scope::Child, c.clone()),
        (_, Some(c), _) if a.agency.is_some() => (Scope::Report, c.clone()),
        (_, Some(c), _) => (Scope::Conference, c.clone()),
        (_, _, Some(k)) => (Scope::Obligation, k.clone()),
        _ => bail!("say what to snooze: --child, --conference or --obligation"),
    };
    let store = open(&a.db.database, false).await?;
    exists(&*store, scope, &target, a.agency.as_deref()).await?;
    let id: String = (0..8)
        .map(|_| char::from_digit(rand::thread_rng().gen_range(0..16), 16).unwrap_or('0'))
        .collect();
    let s = Snooze {
        id,
        scope,
        target,
        agency: a.agency.clone(),
        reason: a.reason.trim().to_string(),
        agreed_by: a.agreed_by.trim().to_string(),
        created_at: now,
        expires_at,
        ended_at: None,
        ended_by: None,
    };
    store.snooze_add(&s).await?;
    println!(
        "snooze {}: reminders about {} stop until {}; its duties still count as late. End it early with `cpwatch snooze expire {} --by NAME`.",
        s.id,
        what(&s),
        s.expires_at.format("%a %-d %b %Y %H:%M UTC"),
        s.id
    );
    Ok(ExitCode::SUCCESS)
}

/// When a snooze ends: the end of an `--until` day in UK time (or that
/// instant), or `--for` days or weeks from now.
fn expiry(until: Option<&str>, for_: Option<&str>, now: Instant) -> anyhow::Result<Instant> {
    if let Some(u) = until {
        if let Ok(t) = parse_instant(u) {
            return Ok(t);
        }
        let day = NaiveDate::parse_from_str(u, "%Y-%m-%d").with_context(|| {
            format!("--until {u:?} is neither a date (2027-01-08) nor an RFC 3339 instant")
        })?;
        let next = day
            .succ_opt()
            .context("--until is the last date chrono knows")?;
        return Ok(crate::domain::calendar::local_instant(
            chrono_tz::Europe::London,
            next,
            chrono::NaiveTime::MIN,
        ));
    }
    let f = for_.unwrap_or_default().trim();
    let (n, unit) = f.split_at(f.len().saturating_sub(1));
    let n: i64 = n
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .with_context(|| format!("--for {f:?} is not a duration such as 10d or 2w"))?;
    match unit {
        "d" => Ok(now + chrono::Duration::days(n.min(100_000))),
        "w" => Ok(now + chrono::Duration::weeks(n.min(10_000))),
        _ => bail!("--for {f:?} is not a duration such as 10d or 2w (days or weeks)"),
    }
}

/// Refuses a snooze of something the case data does not hold: a mistyped
/// reference would otherwise silence nothing, and say nothing.
async fn exists(
    store: &dyn Store,
    scope: Scope,
    target: &str,
    agency: Option<&str>,
) -> anyhow::Result<()> {
    let (child, conference, agency) = match scope {
        Scope::Obligation => {
            let s = key_parts(target).with_context(|| {
                format!("{target:?} is not an obligation key (board:rule:child:conference:agency:occurrence, as `check --format json` shows)")
            })?;
            (s.child, s.conference, s.agency)
        }
        Scope::Child => (Some(target), None, None),
        Scope::Conference | Scope::Report => (None, Some(target), agency),
    };
    let mut checks = Vec::new();
    if let Some(c) = child {
        checks.push((
            format!("SELECT id FROM children WHERE reference = {}", literal(c)),
            format!("no child has the reference {c:?}"),
        ));
    }
    if let Some(c) = conference {
        checks.push((
            format!("SELECT id FROM conferences WHERE id = {}", literal(c)),
            format!("no conference has the id {c:?}"),
        ));
    }
    if let (Some(c), Some(a)) = (conference, agency) {
        checks.push((
            format!(
                "SELECT agency_id FROM invitations WHERE conference_id = {} AND agency_id = {}",
                literal(c),
                literal(a)
            ),
            format!("agency {a:?} was not invited to conference {c:?}"),
        ));
    }
    for (sql, missing) in checks {
        if store.ids(&sql).await?.is_empty() {
            bail!(
                "{missing} in {}: check it against `cpwatch check` or `cpwatch explain`",
                store.describe()
            );
        }
    }
    Ok(())
}

fn what(s: &Snooze) -> String {
    match (s.scope, &s.agency) {
        (Scope::Child, _) => format!("child {}", s.target),
        (Scope::Report, Some(a)) => format!("agency {a}'s report to conference {}", s.target),
        (Scope::Conference | Scope::Report, _) => format!("conference {}", s.target),
        (Scope::Obligation, _) => format!("obligation {}", s.target),
    }
}

async fn list(url: &str, all: bool, now: Instant) -> anyhow::Result<ExitCode> {
    let store = open(url, false).await?;
    let snoozes = store.snoozes().await?;
    let mut out = Printable::new(std::io::BufWriter::new(std::io::stdout().lock()));
    let one_line = |s: &str| s.replace(['\n', '\t'], " ");
    let time = |t: Instant| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut shown = 0;
    for s in snoozes.iter().filter(|s| all || s.active(now)) {
        let state = match s.ended_at {
            _ if s.active(now) => "active".to_string(),
            Some(e) if e < s.expires_at && e <= now => format!(
                "ended {} by {}",
                time(e),
                one_line(s.ended_by.as_deref().unwrap_or(""))
            ),
            _ if now < s.created_at => "not yet".to_string(),
            _ => "expired".to_string(),
        };
        writeln!(
            out,
            "{}\t{}\t{}\tuntil {}\tagreed by {}\t{}\t{}",
            s.id,
            state,
            one_line(&what(s)),
            time(s.expires_at),
            one_line(&s.agreed_by),
            one_line(&s.reason),
            time(s.created_at),
        )?;
        shown += 1;
    }
    out.flush()?;
    eprintln!("{shown} snoozes{}", if all { "" } else { " in force" });
    Ok(ExitCode::SUCCESS)
}
