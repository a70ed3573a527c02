//! Audit exports for a board's quality-assurance team: the obligations of one
//! board whose deadline falls in a period, and every figure built from that
//! one list (summary, by agency, by team, by month, national comparison), as
//! an xlsx workbook or RFC 4180 CSV files. Files hold case references, so
//! they are written for their owner only and never over an existing file
//! unless asked.

mod csv;
mod xlsx;

pub use self::csv::TABLES;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use rust_xlsxwriter::XlsxError;
use serde::Serialize;

use crate::domain::calendar::Calendar;
use crate::domain::case::{CaseState, Instant};
use crate::domain::evaluate::{Draft, Evaluation, Finding, Name, Status};
use crate::domain::rules::{AuditBy, RuleKind, RuleSet};
use crate::domain::snooze::{Snoozes, Subject};

/// The latest national figures (Department for Education, Children in Need
/// statistics 2024–25) beside which a board sees its initial conferences.
pub const NATIONAL_YEAR: &str = "2024-25";
pub const NATIONAL_INITIAL_CONFERENCES: u32 = 72_100;
pub const NATIONAL_WITHIN_15: f64 = 0.81;
pub const NATIONAL_MEDIAN_WORKING_DAYS: f64 = 14.0;
/// The bands the statistics publish, in working days from the strategy discussion.
pub const BANDS: &[(&str, i64, i64)] = &[
    ("0-10", 0, 10),
    ("11-15", 11, 15),
    ("16-20", 16, 20),
    ("21 or more", 21, i64::MAX),
];

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0} exists: choose another --out, or --force to replace it")]
    Exists(String),
    // Not `source`: the message says it already, and a source would repeat it.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("writing the workbook: {0}")]
    Xlsx(XlsxError),
    #[error("cannot make the workbook's temporary file in {dir}: {error}; set TMPDIR to a writable directory")]
    TempDir { dir: String, error: std::io::Error },
    #[error("writing CSV: {0}")]
    Csv(#[from] ::csv::Error),
    #[error("unknown table {0:?} (summary, by_agency, by_team, by_month, obligations, exceptions, data_quality, national_comparison)")]
    UnknownTable(String),
}

impl From<XlsxError> for ExportError {
    fn from(e: XlsxError) -> Self {
        match e {
            XlsxError::TempFileError(dir, error) => ExportError::TempDir {
                dir: dir.display().to_string(),
                error,
            },
            e => ExportError::Xlsx(e),
        }
    }
}

/// What the export covers and how it was made, for its header.
#[derive(Debug, Clone, Serialize)]
pub struct Header {
    pub board: String,
    pub board_name: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub generated_at: String,
    pub cpwatch_version: String,
    pub rules_digest: String,
}

/// One obligation, as the Obligations sheet shows it. Text from case data
/// is written to CSV as a cell no spreadsheet takes for a formula.
#[derive(Debug, Clone, Serialize)]
pub struct ObligationRow {
    pub rule: Name,
    #[serde(serialize_with = "cell::text")]
    pub title: Name,
    #[serde(serialize_with = "cell::opt")]
    pub child: Option<Name>,
    #[serde(serialize_with = "cell::opt")]
    pub conference: Option<Name>,
    #[serde(serialize_with = "cell::opt")]
    pub agency: Option<Name>,
    #[serde(serialize_with = "cell::opt")]
    pub agency_name: Option<String>,
    #[serde(serialize_with = "cell::opt")]
    pub professional_group: Option<String>,
    #[serde(serialize_with = "cell::opt")]
    pub team: Option<Name>,
    #[serde(serialize_with = "cell::opt")]
    pub team_name: Option<String>,
    pub starts: NaiveDateTime,
    pub deadline: NaiveDateTime,
    pub met: Option<NaiveDateTime>,
    pub status: Status,
    pub outcome: &'static str,
    pub working_days_late: Option<i64>,
    #[serde(serialize_with = "cell::opt")]
    pub exception_reason: Option<Name>,
    /// Reminders stopped by a snooze in force when the export was made (open duties only).
    #[serde(serialize_with = "cell::opt")]
    pub snoozed: Option<String>,
    #[serde(skip)]
    audit_by: Option<AuditBy>,
}

/// Text cells of a CSV export. A spreadsheet opening a CSV file runs a cell
/// beginning with `=`, `+`, `-` or `@` (or a tab or carriage return) as a
/// formula; case data must never do that, so such a cell is written with a
/// leading `'`, which spreadsheets show as text.
pub(crate) mod cell {
    use serde::Serializer;

    /// The text as it is safe to write.
    pub fn safe(v: &str) -> std::borrow::Cow<'_, str> {
        match v.chars().next() {
            Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{v}").into(),
            _ => v.into(),
        }
    }

    pub fn text<S: Serializer, T: AsRef<str>>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&safe(v.as_ref()))
    }

    pub fn opt<S: Serializer, T: AsRef<str>>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&safe(v.as_ref())),
            None => s.serialize_none(),
        }
    }
}

/// Counts of outcomes, and lateness, for one group of obligations.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Counts {
    pub due: u32,
    pub met_on_time: u32,
    pub met_late: u32,
    pub outstanding: u32,
    /// Lapsed unmet: breaches that can no longer be met.
    pub missed: u32,
    pub excepted: u32,
    pub void: u32,
    /// Met on time ÷ (met on time + met late + outstanding + missed); empty when none.
    pub on_time_share: Option<f64>,
    pub median_working_days_late: Option<f64>,
    pub worst_working_days_late: Option<i64>,
}

/// The CSV columns of a group's counts, after the group's own columns.
const COUNT_COLUMNS: &[&str] = &[
    "due",
    "met_on_time",
    "met_late",
    "outstanding",
    "missed",
    "excepted",
    "void",
    "on_time_share",
    "median_working_days_late",
    "worst_working_days_late",
];

impl Counts {
    fn fields(&self) -> Vec<String> {
        let opt = |v: Option<String>| v.unwrap_or_default();
        vec![
            self.due.to_string(),
            self.met_on_time.to_string(),
            self.met_late.to_string(),
            self.outstanding.to_string(),
            self.missed.to_string(),
            self.excepted.to_string(),
            self.void.to_string(),
            opt(self.on_time_share.map(|x| format!("{x:.4}"))),
            opt(self.median_working_days_late.map(|x| x.to_string())),
            opt(self.worst_working_days_late.map(|x| x.to_string())),
        ]
    }

    fn of<'a>(rows: impl Iterator<Item = &'a ObligationRow>) -> Counts {
        let mut c = Counts::default();
        let mut late = Vec::new();
        for r in rows {
            match r.status {
                Status::Met => c.met_on_time += 1,
                Status::MetLate => c.met_late += 1,
                Status::Overdue | Status::Pending | Status::DueSoon => c.outstanding += 1,
                Status::Missed => c.missed += 1,
                Status::Excepted => c.excepted += 1,
                Status::Void => c.void += 1,
            }
            if matches!(r.status, Status::MetLate | Status::Overdue | Status::Missed) {
                if let Some(n) = r.working_days_late {
                    late.push(n);
                }
            }
        }
        c.due = c.met_on_time + c.met_late + c.outstanding + c.missed + c.excepted;
        let judged = c.met_on_time + c.met_late + c.outstanding + c.missed;
        c.on_time_share = (judged > 0).then(|| f64::from(c.met_on_time) / f64::from(judged));
        late.sort_unstable();
        c.median_working_days_late = median(&late);
        c.worst_working_days_late = late.last().copied();
        c
    }
}

fn median(sorted: &[i64]) -> Option<f64> {
    let n = sorted.len();
    let upper = *sorted.get(n / 2)?;
    if n % 2 == 1 {
        Some(upper as f64)
    } else {
        Some((sorted.get(n / 2 - 1)? + upper) as f64 / 2.0)
    }
}

/// A count as the sheets keep it.
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[derive(Debug, Clone)]
pub struct SummaryRow {
    pub rule: String,
    pub title: String,
    pub counts: Counts,
}

#[derive(Debug, Clone)]
pub struct AgencyRow {
    pub rule: String,
    pub agency: String,
    pub agency_name: String,
    pub professional_group: String,
    pub counts: Counts,
}

#[derive(Debug, Clone)]
pub struct TeamRow {
    pub rule: String,
    pub team: String,
    pub team_name: String,
    pub counts: Counts,
}

#[derive(Debug, Clone)]
pub struct MonthRow {
    pub rule: String,
    pub month: String,
    pub counts: Counts,
}

#[derive(Debug, Clone, Serialize)]
pub struct BandRow {
    pub band: String,
    pub conferences: u32,
    pub share: Option<f64>,
}

/// Initial conferences by working days from the strategy discussion, beside England's figures.
#[derive(Debug, Clone, Serialize)]
pub struct National {
    pub bands: Vec<BandRow>,
    pub conferences: u32,
    pub within_15_share: Option<f64>,
    pub median_working_days: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub header: Header,
    pub obligations: Vec<ObligationRow>,
    pub summary: Vec<SummaryRow>,
    pub by_agency: Vec<AgencyRow>,
    pub by_team: Vec<TeamRow>,
    pub by_month: Vec<MonthRow>,
    pub findings: Vec<Finding>,
    pub national: National,
}

pub struct Input<'a> {
    pub eval: &'a Evaluation<Draft<'a>>,
    pub state: &'a CaseState,
    pub rules: &'a RuleSet,
    pub calendar: &'a Calendar,
    pub board: &'a str,
    /// The board of children whose `board` is empty.
    pub default_board: &'a str,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub generated_at: Instant,
    /// The snoozes in force at `generated_at`.
    pub snoozes: &'a Snoozes,
}

fn outcome(s: Status) -> &'static str {
    match s {
        Status::Met => "met on time",
        Status::MetLate => "met late",
        Status::Overdue => "outstanding (overdue)",
        Status::Missed => "missed (lapsed unmet)",
        Status::Pending | Status::DueSoon => "outstanding (not yet due)",
        Status::Excepted => "excepted",
        Status::Void => "void",
    }
}

/// The obligations of the board due in the period, and every figure from them.
pub fn build(input: &Input) -> Report {
    let cal = input.calendar;
    let mut selected: Vec<&Draft<'_>> = input
        .eval
        .obligations
        .iter()
        .filter(|o| *o.of.board == *input.board && o.of.kind != RuleKind::Notice)
        .filter(|o| (input.from..=input.to).contains(&cal.local_date(o.due_at)))
        .collect();
    selected.sort_unstable_by(|a, b| a.report_cmp(b));
    let obligations = obligation_rows(input, &selected);
    let (by_agency, by_team, by_month) = groups(&obligations);
    let board_name = input
        .rules
        .latest(input.board)
        .map(|b| b.name.clone())
        .unwrap_or_default();
    Report {
        header: Header {
            board: input.board.to_string(),
            board_name,
            from: input.from,
            to: input.to,
            generated_at: cal
                .local(input.generated_at)
                .format("%Y-%m-%d %H:%M %Z")
                .to_string(),
            cpwatch_version: env!("CARGO_PKG_VERSION").to_string(),
            rules_digest: input.rules.digest.clone(),
        },
        summary: summary(&obligations),
        obligations,
        by_agency,
        by_team,
        by_month,
        findings: board_findings(input, &selected),
        national: national(input),
    }
}

/// The selected obligations as the Obligations sheet shows them.
fn obligation_rows(input: &Input, selected: &[&Draft<'_>]) -> Vec<ObligationRow> {
    let cal = input.calendar;
    let local = |t: Instant| cal.local(t).naive_local();
    let agencies: BTreeMap<&str, &crate::domain::case::Agency> = input
        .state
        .agencies
        .iter()
        .map(|a| (a.id.as_str(), a))
        .collect();
    let teams: BTreeMap<&str, &crate::domain::case::Team> = input
        .state
        .teams
        .iter()
        .map(|t| (t.id.as_str(), t))
        .collect();
    selected
        .iter()
        .map(|o| {
            let agency = o.agency.map(Name::as_str).and_then(|a| agencies.get(a));
            ObligationRow {
                rule: o.of.rule.clone(),
                title: o.of.title.clone(),
                child: o.child.cloned(),
                conference: o.conference.cloned(),
                agency: o.agency.cloned(),
                agency_name: agency.map(|a| a.name.to_string()),
                professional_group: agency.map(|a| a.professional_group.to_string()),
                team: o.team.cloned(),
                team_name: o
                    .team
                    .map(Name::as_str)
                    .and_then(|t| teams.get(t))
                    .map(|t| t.name.to_string()),
                starts: local(o.starts_at),
                deadline: local(o.due_at),
                met: o.met_at.map(local),
                status: o.status,
                outcome: outcome(o.status),
                working_days_late: o.late_working_days.map(i64::from),
                exception_reason: o.exception_reason.clone(),
                snoozed: o
                    .status
                    .is_open()
                    .then(|| {
                        let key = o.key();
                        let s = input.snoozes.covering(&Subject::of(o, &key))?;
                        Some(format!("{} (snooze {})", s.describe(), s.id))
                    })
                    .flatten(),
                audit_by: o.audit_by,
            }
        })
        .collect()
}

/// Per rule.
fn summary(obligations: &[ObligationRow]) -> Vec<SummaryRow> {
    let titles: BTreeMap<&str, &str> = obligations.iter().map(|r| (&*r.rule, &*r.title)).collect();
    titles
        .iter()
        .map(|(rule, title)| SummaryRow {
            rule: rule.to_string(),
            title: title.to_string(),
            counts: Counts::of(obligations.iter().filter(|r| *r.rule == **rule)),
        })
        .collect()
}

/// Per rule and agency (agency duties), team (social care duties) and month.
fn groups(obligations: &[ObligationRow]) -> (Vec<AgencyRow>, Vec<TeamRow>, Vec<MonthRow>) {
    let mut agency_groups: BTreeMap<(&str, &str), Vec<&ObligationRow>> = BTreeMap::new();
    let mut team_groups: BTreeMap<(&str, &str), Vec<&ObligationRow>> = BTreeMap::new();
    let mut month_groups: BTreeMap<(&str, String), Vec<&ObligationRow>> = BTreeMap::new();
    for r in obligations {
        match r.audit_by {
            Some(AuditBy::Agency) => agency_groups
                .entry((&r.rule, r.agency.as_deref().unwrap_or("")))
                .or_default()
                .push(r),
            Some(AuditBy::Team) => team_groups
                .entry((&r.rule, r.team.as_deref().unwrap_or("")))
                .or_default()
                .push(r),
            None => {}
        }
        month_groups
            .entry((
                &r.rule,
                format!("{:04}-{:02}", r.deadline.year(), r.deadline.month()),
            ))
            .or_default()
            .push(r);
    }
    let by_agency = agency_groups
        .into_iter()
        .map(|((rule, agency), rows)| AgencyRow {
            rule: rule.to_string(),
            agency: agency.to_string(),
            agency_name: rows
                .first()
                .and_then(|r| r.agency_name.clone())
                .unwrap_or_default(),
            professional_group: rows
                .first()
                .and_then(|r| r.professional_group.clone())
                .unwrap_or_default(),
            counts: Counts::of(rows.into_iter()),
        })
        .collect();
    let by_team = team_groups
        .into_iter()
        .map(|((rule, team), rows)| TeamRow {
            rule: rule.to_string(),
            team: team.to_string(),
            team_name: rows
                .first()
                .and_then(|r| r.team_name.clone())
                .unwrap_or_default(),
            counts: Counts::of(rows.into_iter()),
        })
        .collect();
    let by_month = month_groups
        .into_iter()
        .map(|((rule, month), rows)| MonthRow {
            rule: rule.to_string(),
            month,
            counts: Counts::of(rows.into_iter()),
        })
        .collect();
    (by_agency, by_team, by_month)
}

/// The findings about the board's children and the selected obligations' conferences.
fn board_findings(input: &Input, selected: &[&Draft<'_>]) -> Vec<Finding> {
    let board_of_child: BTreeMap<&str, &str> = input
        .state
        .children
        .iter()
        .map(|c| {
            (
                c.id.as_str(),
                c.board
                    .as_deref()
                    .unwrap_or(input.eval.obligations.first().map_or("", |_| "")),
            )
        })
        .collect();
    let conferences: std::collections::HashSet<&str> = selected
        .iter()
        .filter_map(|o| o.conference.map(Name::as_str))
        .collect();
    input
        .eval
        .findings
        .iter()
        .filter(|f| {
            // Link-table rows are `conference_id/other_id`; a conference id may hold a slash.
            let conference = f.row.rsplit_once('/').map_or(f.row.as_str(), |(c, _)| c);
            match f.table.as_str() {
                "children" => board_of_child.get(f.row.as_str()) == Some(&input.board),
                "conferences" => conferences.contains(f.row.as_str()),
                "invitations" | "conference_children" => conferences.contains(conference),
                // The rules an import's source cannot tell, `board/rule`.
                "rules" => f.row.split('/').next() == Some(input.board),
                _ => false,
            }
        })
        .cloned()
        .collect()
}

/// Initial conferences held in the period, by working days from the
/// section 47 strategy discussion: the Department's method, which counts
/// the conferences of its collection year (1 April to 31 March), whenever
/// their deadline fell.
fn national(input: &Input) -> National {
    let cal = input.calendar;
    let period = input.from..=input.to;
    let mut days: Vec<i64> = (input.eval.obligations.iter())
        .filter(|o| {
            *o.of.board == *input.board
                && &*o.of.rule == "icpc-timeliness"
                && o.conference.is_some()
                && matches!(o.status, Status::Met | Status::MetLate)
                && o.met_at
                    .is_some_and(|m| period.contains(&cal.local_date(m)))
        })
        .filter_map(|o| {
            let (from, to) = (cal.local_date(o.starts_at), cal.local_date(o.met_at?));
            let mut n = 0;
            let mut d = from;
            while d < to {
                d = d.succ_opt()?;
                if cal.is_working_day(d).ok()? {
                    n += 1;
                }
            }
            Some(n)
        })
        .collect();
    days.sort_unstable();
    let total = count(days.len());
    let share = |n: u32| (total > 0).then(|| f64::from(n) / f64::from(total));
    let bands = BANDS
        .iter()
        .map(|(name, lo, hi)| {
            let n = count(days.iter().filter(|d| (*lo..=*hi).contains(*d)).count());
            BandRow {
                band: name.to_string(),
                conferences: n,
                share: share(n),
            }
        })
        .collect();
    National {
        bands,
        conferences: total,
        within_15_share: share(count(days.iter().filter(|d| **d <= 15).count())),
        median_working_days: median(&days),
    }
}

/// The error of an I/O operation on `path`.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError {
    let path = path.display().to_string();
    move |error| ExportError::Io { path, error }
}

/// Writes a file for its owner only, by `write`, complete before it is in
/// place: to a temporary file beside it, then moved there. Without `force`
/// an existing file (or link) is never replaced; with it, the move replaces
/// the name itself, so an existing file's wider permissions are not kept and
/// a symbolic link is replaced, not written through.
fn write_file(
    path: &Path,
    force: bool,
    write: impl FnOnce(&mut std::fs::File) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    use std::os::unix::fs::OpenOptionsExt;
    let exists = || std::fs::symlink_metadata(path).is_ok();
    if !force && exists() {
        return Err(ExportError::Exists(path.display().to_string()));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    let tmp = path.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    let written = write(&mut file).and_then(|()| file.sync_all().map_err(io(&tmp)));
    drop(file);
    let placed = written.and_then(|()| {
        if force {
            std::fs::rename(&tmp, path).map_err(io(path))
        } else {
            // A link fails if the name was taken meanwhile: nothing is replaced.
            std::fs::hard_link(&tmp, path).map_err(|error| match error.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    ExportError::Exists(path.display().to_string())
                }
                _ => io(path)(error),
            })
        }
    });
    let _ = std::fs::remove_file(&tmp);
    placed
}
