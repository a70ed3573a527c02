//! Audit exports for a board's quality-assurance team: the obligations of one
//! board whose deadline falls in a period, and every figure built from that
//! one list (summary, by agency, by team, by month, national comparison), as
//! an xlsx workbook or RFC 4180 CSV files. Files hold case references, so
//! they are written for their owner only and never over an existing file
//! unless asked.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use rust_xlsxwriter::{
    Chart, ChartType, Format, Table, TableColumn, Workbook, Worksheet, XlsxError,
};
use serde::Serialize;

use crate::domain::calendar::Calendar;
use crate::domain::case::{CaseState, Instant};
use crate::domain::evaluate::{Draft, Evaluation, Finding, Name, Status};
use crate::domain::rules::{AuditBy, RuleKind, RuleSet};

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
    Csv(#[from] csv::Error),
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

/// One obligation, as the Obligations sheet shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ObligationRow {
    pub rule: Name,
    pub title: Name,
    pub child: Option<Name>,
    pub conference: Option<Name>,
    pub agency: Option<Name>,
    pub agency_name: Option<String>,
    pub professional_group: Option<String>,
    pub team: Option<Name>,
    pub team_name: Option<String>,
    pub starts: NaiveDateTime,
    pub deadline: NaiveDateTime,
    pub met: Option<NaiveDateTime>,
    pub status: Status,
    pub outcome: &'static str,
    pub working_days_late: Option<i64>,
    pub exception_reason: Option<Name>,
    #[serde(skip)]
    audit_by: Option<AuditBy>,
}

/// Counts of outcomes, and lateness, for one group of obligations.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Counts {
    pub due: u32,
    pub met_on_time: u32,
    pub met_late: u32,
    pub outstanding: u32,
    pub excepted: u32,
    pub void: u32,
    /// Met on time ÷ (met on time + met late + outstanding); empty when none.
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
                Status::Excepted => c.excepted += 1,
                Status::Void => c.void += 1,
            }
            if matches!(r.status, Status::MetLate | Status::Overdue) {
                if let Some(n) = r.working_days_late {
                    late.push(n);
                }
            }
        }
        c.due = c.met_on_time + c.met_late + c.outstanding + c.excepted;
        let judged = c.met_on_time + c.met_late + c.outstanding;
        c.on_time_share = (judged > 0).then(|| f64::from(c.met_on_time) / f64::from(judged));
        late.sort_unstable();
        c.median_working_days_late = median(&late);
        c.worst_working_days_late = late.last().copied();
        c
    }
}

fn median(sorted: &[i64]) -> Option<f64> {
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2] as f64),
        n => Some((sorted[n / 2 - 1] + sorted[n / 2]) as f64 / 2.0),
    }
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
}

fn outcome(s: Status) -> &'static str {
    match s {
        Status::Met => "met on time",
        Status::MetLate => "met late",
        Status::Overdue => "outstanding (overdue)",
        Status::Pending | Status::DueSoon => "outstanding (not yet due)",
        Status::Excepted => "excepted",
        Status::Void => "void",
    }
}

/// The obligations of the board due in the period, and every figure from them.
pub fn build(input: &Input) -> Report {
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
    let mut selected: Vec<&Draft<'_>> = input
        .eval
        .obligations
        .iter()
        .filter(|o| *o.of.board == *input.board && o.of.kind != RuleKind::Notice)
        .filter(|o| (input.from..=input.to).contains(&cal.local_date(o.due_at)))
        .collect();
    selected.sort_unstable_by(|a, b| a.report_cmp(b));
    let obligations: Vec<ObligationRow> = selected
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
                audit_by: o.audit_by,
            }
        })
        .collect();

    let titles: BTreeMap<&str, &str> = obligations.iter().map(|r| (&*r.rule, &*r.title)).collect();
    let summary = titles
        .iter()
        .map(|(rule, title)| SummaryRow {
            rule: rule.to_string(),
            title: title.to_string(),
            counts: Counts::of(obligations.iter().filter(|r| *r.rule == **rule)),
        })
        .collect();

    let mut agency_groups: BTreeMap<(&str, &str), Vec<&ObligationRow>> = BTreeMap::new();
    let mut team_groups: BTreeMap<(&str, &str), Vec<&ObligationRow>> = BTreeMap::new();
    let mut month_groups: BTreeMap<(&str, String), Vec<&ObligationRow>> = BTreeMap::new();
    for r in &obligations {
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

    // Findings about the board's children and conferences.
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
    let findings = input
        .eval
        .findings
        .iter()
        .filter(|f| {
            let first = f.row.split('/').next().unwrap_or("");
            match f.table.as_str() {
                "children" => board_of_child.get(f.row.as_str()) == Some(&input.board),
                "conferences" | "invitations" | "conference_children" => {
                    conferences.contains(first)
                }
                _ => false,
            }
        })
        .cloned()
        .collect();

    let national = national(&selected, cal);
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
        obligations,
        summary,
        by_agency,
        by_team,
        by_month,
        findings,
        national,
    }
}

/// Working days from the strategy discussion to the held initial conference, counted as the statistics count them.
fn national(selected: &[&Draft<'_>], cal: &Calendar) -> National {
    let mut days: Vec<i64> = selected
        .iter()
        .filter(|o| {
            &*o.of.rule == "icpc-timeliness"
                && o.conference.is_some()
                && matches!(o.status, Status::Met | Status::MetLate)
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
    let total = days.len() as u32;
    let share = |n: u32| (total > 0).then(|| f64::from(n) / f64::from(total));
    let bands = BANDS
        .iter()
        .map(|(name, lo, hi)| {
            let n = days.iter().filter(|d| (*lo..=*hi).contains(*d)).count() as u32;
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
        within_15_share: share(days.iter().filter(|d| **d <= 15).count() as u32),
        median_working_days: median(&days),
    }
}

// ------------------------------------------------------------------ files

/// Opens a file for its owner only, refusing to replace one unless `force`.
fn create(path: &Path, force: bool) -> Result<std::fs::File, ExportError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).mode(0o600);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    o.open(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::AlreadyExists => ExportError::Exists(path.display().to_string()),
        _ => ExportError::Io {
            path: path.display().to_string(),
            error,
        },
    })
}

pub const TABLES: &[&str] = &[
    "summary",
    "by_agency",
    "by_team",
    "by_month",
    "obligations",
    "exceptions",
    "data_quality",
    "national_comparison",
];

/// Rows of a grouped table: its own columns, then the counts.
fn write_groups(
    w: impl Write,
    own: &[&str],
    rows: impl Iterator<Item = (Vec<String>, Vec<String>)>,
) -> Result<(), ExportError> {
    let mut csv = csv::Writer::from_writer(w);
    csv.write_record(own.iter().chain(COUNT_COLUMNS))?;
    for (mut head, counts) in rows {
        head.extend(counts);
        csv.write_record(&head)?;
    }
    csv.flush().map_err(|error| ExportError::Io {
        path: "csv".into(),
        error,
    })
}

/// Rows serialised under a header that is written even when there are no rows.
fn write_rows<T: Serialize>(
    w: impl Write,
    headers: &[&str],
    rows: &[T],
) -> Result<(), ExportError> {
    let mut csv = csv::WriterBuilder::new().has_headers(false).from_writer(w);
    csv.write_record(headers)?;
    for r in rows {
        csv.serialize(r)?;
    }
    csv.flush().map_err(|error| ExportError::Io {
        path: "csv".into(),
        error,
    })
}

const OBLIGATION_COLUMNS: &[&str] = &[
    "rule",
    "title",
    "child",
    "conference",
    "agency",
    "agency_name",
    "professional_group",
    "team",
    "team_name",
    "starts",
    "deadline",
    "met",
    "status",
    "outcome",
    "working_days_late",
    "exception_reason",
];

#[derive(Serialize)]
struct ExceptionRow<'a> {
    rule: &'a str,
    child: &'a Option<Name>,
    conference: &'a Option<Name>,
    agency: &'a Option<Name>,
    deadline: NaiveDateTime,
    exception_reason: &'a Option<Name>,
}

#[derive(Serialize)]
struct NationalRow {
    measure: String,
    board: String,
    england: String,
}

impl Report {
    fn exceptions(&self) -> Vec<ExceptionRow<'_>> {
        self.obligations
            .iter()
            .filter(|r| r.status == Status::Excepted)
            .map(|r| ExceptionRow {
                rule: &r.rule,
                child: &r.child,
                conference: &r.conference,
                agency: &r.agency,
                deadline: r.deadline,
                exception_reason: &r.exception_reason,
            })
            .collect()
    }

    fn national_rows(&self) -> Vec<NationalRow> {
        let pct = |v: Option<f64>| v.map(|x| format!("{:.1}%", x * 100.0)).unwrap_or_default();
        let mut rows: Vec<NationalRow> = self
            .national
            .bands
            .iter()
            .map(|b| NationalRow {
                measure: format!("held {} working days after the strategy discussion", b.band),
                board: format!("{} ({})", b.conferences, pct(b.share)),
                england: String::new(),
            })
            .collect();
        rows.push(NationalRow {
            measure: "initial conferences".into(),
            board: self.national.conferences.to_string(),
            england: NATIONAL_INITIAL_CONFERENCES.to_string(),
        });
        rows.push(NationalRow {
            measure: "share within 15 working days".into(),
            board: pct(self.national.within_15_share),
            england: format!("about {}", pct(Some(NATIONAL_WITHIN_15))),
        });
        rows.push(NationalRow {
            measure: "median working days".into(),
            board: self
                .national
                .median_working_days
                .map(|m| format!("{m}"))
                .unwrap_or_default(),
            england: format!("{NATIONAL_MEDIAN_WORKING_DAYS}"),
        });
        rows
    }

    /// One table as CSV.
    pub fn write_csv_table(&self, table: &str, w: impl Write) -> Result<(), ExportError> {
        match table {
            "summary" => write_groups(
                w,
                &["rule", "title"],
                self.summary
                    .iter()
                    .map(|r| (vec![r.rule.clone(), r.title.clone()], r.counts.fields())),
            ),
            "by_agency" => write_groups(
                w,
                &["rule", "agency", "agency_name", "professional_group"],
                self.by_agency.iter().map(|r| {
                    (
                        vec![
                            r.rule.clone(),
                            r.agency.clone(),
                            r.agency_name.clone(),
                            r.professional_group.clone(),
                        ],
                        r.counts.fields(),
                    )
                }),
            ),
            "by_team" => write_groups(
                w,
                &["rule", "team", "team_name"],
                self.by_team.iter().map(|r| {
                    (
                        vec![r.rule.clone(), r.team.clone(), r.team_name.clone()],
                        r.counts.fields(),
                    )
                }),
            ),
            "by_month" => write_groups(
                w,
                &["rule", "month"],
                self.by_month
                    .iter()
                    .map(|r| (vec![r.rule.clone(), r.month.clone()], r.counts.fields())),
            ),
            "obligations" => write_rows(w, OBLIGATION_COLUMNS, &self.obligations),
            "exceptions" => write_rows(
                w,
                &[
                    "rule",
                    "child",
                    "conference",
                    "agency",
                    "deadline",
                    "exception_reason",
                ],
                &self.exceptions(),
            ),
            "data_quality" => write_rows(w, &["kind", "table", "row", "message"], &self.findings),
            "national_comparison" => {
                write_rows(w, &["measure", "board", "england"], &self.national_rows())
            }
            other => Err(ExportError::UnknownTable(other.into())),
        }
    }

    /// Every table as `<name>.csv` in a new directory (owner-only), put in
    /// place only once complete.
    pub fn write_csv_dir(&self, dir: &Path, force: bool) -> Result<(), ExportError> {
        use std::os::unix::fs::DirBuilderExt;
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |error| ExportError::Io { path, error }
        };
        if dir.exists() && !force {
            return Err(ExportError::Exists(dir.display().to_string()));
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "export".into());
        let tmp = dir.with_file_name(format!(".{name}.partial-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&tmp)
            .map_err(io(&tmp))?;
        let written = TABLES.iter().try_for_each(|t| {
            self.write_csv_table(t, create(&tmp.join(format!("{t}.csv")), false)?)
        });
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(io(dir))?;
        }
        std::fs::rename(&tmp, dir).map_err(io(dir))
    }

    pub fn write_csv_file(&self, table: &str, path: &Path, force: bool) -> Result<(), ExportError> {
        if !TABLES.contains(&table) {
            return Err(ExportError::UnknownTable(table.into()));
        }
        self.write_csv_table(table, create(path, force)?)
    }

    pub fn write_xlsx(&self, path: &Path, force: bool) -> Result<(), ExportError> {
        // Made whole before the file is touched: a failure leaves no empty
        // file (which would block the next try) and replaces nothing.
        let bytes = self.xlsx()?;
        let mut file = create(path, force)?;
        file.write_all(&bytes).map_err(|error| ExportError::Io {
            path: path.display().to_string(),
            error,
        })
    }

    /// The workbook's bytes.
    pub fn xlsx(&self) -> Result<Vec<u8>, XlsxError> {
        let mut wb = Workbook::new();
        let bold = Format::new().set_bold();
        let title = Format::new().set_bold().set_font_size(14);
        let pct = Format::new().set_num_format("0.0%");
        let date = Format::new().set_num_format("yyyy-mm-dd hh:mm");

        // Summary, with the header block.
        let ws = wb.add_worksheet().set_name("Summary")?;
        ws.write_with_format(
            0,
            0,
            format!(
                "{} ({}): audit of child protection timescales",
                self.header.board_name, self.header.board
            ),
            &title,
        )?;
        let meta = [
            (
                "Period",
                format!(
                    "{} to {} (deadlines in the period, board-local dates)",
                    self.header.from, self.header.to
                ),
            ),
            ("Generated", self.header.generated_at.clone()),
            ("cpwatch version", self.header.cpwatch_version.clone()),
            ("Rule files (digest)", self.header.rules_digest.clone()),
        ];
        for (i, (k, v)) in meta.iter().enumerate() {
            ws.write_with_format(1 + i as u32, 0, *k, &bold)?;
            ws.write(1 + i as u32, 1, v.as_str())?;
        }
        let top = 6;
        let headers = [&["Rule", "Title"][..], COUNT_HEADERS].concat();
        for (c, h) in headers.iter().enumerate() {
            ws.write_with_format(top, c as u16, *h, &bold)?;
        }
        for (i, r) in self.summary.iter().enumerate() {
            let row = top + 1 + i as u32;
            ws.write(row, 0, &*r.rule)?;
            ws.write(row, 1, r.title.as_str())?;
            counts_cells(ws, row, 2, &r.counts, &pct)?;
        }
        ws.set_freeze_panes(top + 1, 0)?;
        ws.autofit();
        ws.set_column_width(1, 60)?;

        // By agency, by team.
        let agency_rows = self.by_agency.iter().map(|r| {
            (
                vec![
                    r.rule.as_str(),
                    r.agency.as_str(),
                    r.agency_name.as_str(),
                    r.professional_group.as_str(),
                ],
                &r.counts,
            )
        });
        group_sheet(
            &mut wb,
            "By agency",
            &["Rule", "Agency", "Agency name", "Professional group"],
            agency_rows,
            &bold,
            &pct,
        )?;
        let team_rows = self.by_team.iter().map(|r| {
            (
                vec![r.rule.as_str(), r.team.as_str(), r.team_name.as_str()],
                &r.counts,
            )
        });
        group_sheet(
            &mut wb,
            "By team",
            &["Rule", "Team", "Team name"],
            team_rows,
            &bold,
            &pct,
        )?;

        // By month: % on time, rules down and months across, and one small chart per rule.
        let ws = wb.add_worksheet().set_name("By month")?;
        let months: Vec<&str> = {
            let mut m: Vec<&str> = self.by_month.iter().map(|r| r.month.as_str()).collect();
            m.sort_unstable();
            m.dedup();
            m
        };
        let rules: Vec<&str> = self.summary.iter().map(|r| r.rule.as_str()).collect();
        ws.write_with_format(0, 0, "% on time", &bold)?;
        for (c, m) in months.iter().enumerate() {
            ws.write_with_format(0, 1 + c as u16, *m, &bold)?;
        }
        for (i, rule) in rules.iter().enumerate() {
            ws.write(1 + i as u32, 0, *rule)?;
        }
        for r in &self.by_month {
            let (Some(row), Some(col)) = (
                rules.iter().position(|x| *x == r.rule),
                months.iter().position(|m| *m == r.month),
            ) else {
                continue;
            };
            if let Some(share) = r.counts.on_time_share {
                ws.write_with_format(1 + row as u32, 1 + col as u16, share, &pct)?;
            }
        }
        ws.set_freeze_panes(1, 1)?;
        ws.autofit();
        let last_col = months.len() as u16;
        for (i, rule) in rules.iter().enumerate().filter(|_| last_col > 0) {
            let row = 1 + i as u32;
            let mut chart = Chart::new(ChartType::Line);
            chart.title().set_name(*rule);
            chart.legend().set_hidden();
            chart
                .y_axis()
                .set_num_format("0%")
                .set_min(0.0)
                .set_max(1.0);
            chart
                .add_series()
                .set_categories(("By month", 0, 1, 0, last_col))
                .set_values(("By month", row, 1, row, last_col));
            chart.set_width(420).set_height(220);
            let at_row = rules.len() as u32 + 2 + (i as u32 / 3) * 12;
            ws.insert_chart_with_offset(at_row, 0, &chart, (i as u32 % 3) * 430, 0)?;
        }

        // Obligations: one row each, as an Excel table. At national size this
        // sheet is most of the workbook, so its rows go to a temporary file as
        // they are written rather than staying in memory: the table (which
        // writes the header row) comes first, and the columns are sized from
        // the longest value, as autofit would but from every row.
        let ws = wb
            .add_worksheet_with_constant_memory()?
            .set_name("Obligations")?;
        let cols = [
            "Rule",
            "Child",
            "Conference",
            "Agency",
            "Professional group",
            "Team",
            "Starts",
            "Deadline",
            "Met",
            "Status",
            "Outcome",
            "Working days late",
            "Exception reason",
        ];
        let columns: Vec<TableColumn> = cols
            .iter()
            .map(|c| TableColumn::new().set_header(*c))
            .collect();
        let last_row = self.obligations.len().max(1) as u32;
        ws.add_table(
            0,
            0,
            last_row,
            cols.len() as u16 - 1,
            &Table::new().set_columns(&columns),
        )?;
        ws.set_freeze_panes(1, 0)?;
        // Header text plus the table's filter button.
        let mut widest: Vec<usize> = cols.iter().map(|c| c.chars().count() + 3).collect();
        let mut text = |ws: &mut Worksheet, row: u32, col: u16, v: Option<&str>| {
            let Some(v) = v else { return Ok(()) };
            let w = &mut widest[usize::from(col)];
            *w = (*w).max(v.chars().count());
            ws.write(row, col, v).map(|_| ())
        };
        for (i, r) in self.obligations.iter().enumerate() {
            let row = 1 + i as u32;
            text(ws, row, 0, Some(&r.rule))?;
            text(ws, row, 1, r.child.as_deref())?;
            text(ws, row, 2, r.conference.as_deref())?;
            text(ws, row, 3, r.agency.as_deref())?;
            text(ws, row, 4, r.professional_group.as_deref())?;
            text(ws, row, 5, r.team.as_deref())?;
            ws.write_datetime_with_format(row, 6, r.starts, &date)?;
            ws.write_datetime_with_format(row, 7, r.deadline, &date)?;
            if let Some(m) = &r.met {
                ws.write_datetime_with_format(row, 8, m, &date)?;
            }
            text(ws, row, 9, Some(r.status.as_str()))?;
            text(ws, row, 10, Some(r.outcome))?;
            if let Some(n) = r.working_days_late {
                ws.write(row, 11, n as f64)?;
            }
            text(ws, row, 12, r.exception_reason.as_deref())?;
        }
        for (c, w) in widest.iter().enumerate() {
            let width = match c {
                6..=8 => 17.0,
                _ => (*w).min(60) as f64 * 1.1 + 1.0,
            };
            ws.set_column_width(c as u16, width)?;
        }

        // Exceptions, data quality, national comparison.
        let ws = wb.add_worksheet().set_name("Exceptions")?;
        header_row(
            ws,
            &[
                "Rule",
                "Child",
                "Conference",
                "Agency",
                "Deadline",
                "Reason",
            ],
            &bold,
        )?;
        for (i, r) in self.exceptions().iter().enumerate() {
            let row = 1 + i as u32;
            ws.write(row, 0, r.rule)?;
            opt(ws, row, 1, r.child)?;
            opt(ws, row, 2, r.conference)?;
            opt(ws, row, 3, r.agency)?;
            ws.write_datetime_with_format(row, 4, r.deadline, &date)?;
            opt(ws, row, 5, r.exception_reason)?;
        }
        ws.autofit();
        let ws = wb.add_worksheet().set_name("Data quality")?;
        header_row(ws, &["Kind", "Table", "Row", "What is wrong"], &bold)?;
        for (i, f) in self.findings.iter().enumerate() {
            let row = 1 + i as u32;
            ws.write(row, 0, f.kind.as_str())?;
            ws.write(row, 1, f.table.as_str())?;
            ws.write(row, 2, f.row.as_str())?;
            ws.write(row, 3, f.message.as_str())?;
        }
        ws.autofit();
        let ws = wb.add_worksheet().set_name("National comparison")?;
        ws.write_with_format(0, 0, format!("Initial conferences by working days from the strategy discussion, beside England {NATIONAL_YEAR}"), &title)?;
        header_row_at(
            ws,
            2,
            &["Working days", "Initial conferences", "Share"],
            &bold,
        )?;
        for (i, b) in self.national.bands.iter().enumerate() {
            let row = 3 + i as u32;
            ws.write(row, 0, b.band.as_str())?;
            ws.write(row, 1, b.conferences)?;
            if let Some(s) = b.share {
                ws.write_with_format(row, 2, s, &pct)?;
            }
        }
        let base = 3 + self.national.bands.len() as u32 + 1;
        header_row_at(
            ws,
            base,
            &[
                "Measure",
                self.header.board.as_str(),
                &format!("England {NATIONAL_YEAR}"),
            ],
            &bold,
        )?;
        ws.write(base + 1, 0, "Initial conferences")?;
        ws.write(base + 1, 1, self.national.conferences)?;
        ws.write(base + 1, 2, NATIONAL_INITIAL_CONFERENCES)?;
        ws.write(base + 2, 0, "Share within 15 working days")?;
        if let Some(s) = self.national.within_15_share {
            ws.write_with_format(base + 2, 1, s, &pct)?;
        }
        ws.write_with_format(base + 2, 2, NATIONAL_WITHIN_15, &pct)?;
        ws.write(base + 3, 0, "Median working days")?;
        if let Some(m) = self.national.median_working_days {
            ws.write(base + 3, 1, m)?;
        }
        ws.write(base + 3, 2, NATIONAL_MEDIAN_WORKING_DAYS)?;
        ws.autofit();
        // Printed (or turned into PDF), each sheet is landscape and one page wide.
        for ws in wb.worksheets_mut() {
            ws.set_landscape();
            ws.set_print_fit_to_pages(1, 0);
            ws.set_print_gridlines(true);
        }
        wb.save_to_buffer()
    }
}

/// The workbook's headings of a group's counts, in `counts_cells` order.
const COUNT_HEADERS: &[&str] = &[
    "Due",
    "Met on time",
    "Met late",
    "Outstanding",
    "Excepted",
    "% on time",
    "Median working days late",
    "Worst working days late",
];

/// A sheet of groups: the group's own columns, then its counts.
fn group_sheet<'r>(
    wb: &mut Workbook,
    name: &str,
    own: &[&str],
    rows: impl Iterator<Item = (Vec<&'r str>, &'r Counts)>,
    bold: &Format,
    pct: &Format,
) -> Result<(), XlsxError> {
    let ws = wb.add_worksheet().set_name(name)?;
    header_row(ws, &[own, COUNT_HEADERS].concat(), bold)?;
    for (i, (cells, c)) in rows.enumerate() {
        let row = 1 + i as u32;
        for (col, v) in cells.iter().enumerate() {
            ws.write(row, col as u16, *v)?;
        }
        counts_cells(ws, row, own.len() as u16, c, pct)?;
    }
    ws.set_freeze_panes(1, 0)?;
    ws.autofit();
    Ok(())
}

fn header_row(ws: &mut Worksheet, cols: &[&str], bold: &Format) -> Result<(), XlsxError> {
    header_row_at(ws, 0, cols, bold)
}

fn header_row_at(
    ws: &mut Worksheet,
    row: u32,
    cols: &[&str],
    bold: &Format,
) -> Result<(), XlsxError> {
    for (c, h) in cols.iter().enumerate() {
        ws.write_with_format(row, c as u16, *h, bold)?;
    }
    Ok(())
}

fn opt<S: AsRef<str>>(
    ws: &mut Worksheet,
    row: u32,
    col: u16,
    v: &Option<S>,
) -> Result<(), XlsxError> {
    if let Some(v) = v {
        ws.write(row, col, v.as_ref())?;
    }
    Ok(())
}

/// Due … worst, from `col` on.
fn counts_cells(
    ws: &mut Worksheet,
    row: u32,
    col: u16,
    c: &Counts,
    pct: &Format,
) -> Result<(), XlsxError> {
    for (i, n) in [c.due, c.met_on_time, c.met_late, c.outstanding, c.excepted]
        .iter()
        .enumerate()
    {
        ws.write(row, col + i as u16, *n)?;
    }
    if let Some(s) = c.on_time_share {
        ws.write_with_format(row, col + 5, s, pct)?;
    }
    if let Some(m) = c.median_working_days_late {
        ws.write(row, col + 6, m)?;
    }
    if let Some(w) = c.worst_working_days_late {
        ws.write(row, col + 7, w as f64)?;
    }
    Ok(())
}
