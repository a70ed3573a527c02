//! The export as RFC 4180 CSV files, one a table, with stable columns.

use std::io::Write;
use std::path::Path;

use chrono::NaiveDateTime;
use serde::Serialize;

use super::{
    cell, io, write_file, ExportError, Report, COUNT_COLUMNS, NATIONAL_INITIAL_CONFERENCES,
    NATIONAL_MEDIAN_WORKING_DAYS, NATIONAL_WITHIN_15,
};
use crate::domain::evaluate::{Name, Status};

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
    for (head, counts) in rows {
        let mut record: Vec<String> = head.iter().map(|h| cell::safe(h).into_owned()).collect();
        record.extend(counts);
        csv.write_record(&record)?;
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
    "snoozed",
];

#[derive(Serialize)]
pub(super) struct ExceptionRow<'a> {
    pub(super) rule: &'a str,
    #[serde(serialize_with = "cell::opt")]
    pub(super) child: &'a Option<Name>,
    #[serde(serialize_with = "cell::opt")]
    pub(super) conference: &'a Option<Name>,
    #[serde(serialize_with = "cell::opt")]
    pub(super) agency: &'a Option<Name>,
    pub(super) deadline: NaiveDateTime,
    #[serde(serialize_with = "cell::opt")]
    pub(super) exception_reason: &'a Option<Name>,
}

/// A data-quality finding as its CSV row: its row and message come from
/// case data.
#[derive(Serialize)]
struct FindingRow<'a> {
    kind: &'a str,
    table: &'a str,
    #[serde(serialize_with = "cell::text")]
    row: &'a str,
    #[serde(serialize_with = "cell::text")]
    message: &'a str,
}

#[derive(Serialize)]
struct NationalRow {
    measure: String,
    board: String,
    england: String,
}

impl Report {
    pub(super) fn exceptions(&self) -> Vec<ExceptionRow<'_>> {
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
            "data_quality" => {
                let rows: Vec<FindingRow> = self
                    .findings
                    .iter()
                    .map(|f| FindingRow {
                        kind: &f.kind,
                        table: &f.table,
                        row: &f.row,
                        message: &f.message,
                    })
                    .collect();
                write_rows(w, &["kind", "table", "row", "message"], &rows)
            }
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
            write_file(&tmp.join(format!("{t}.csv")), false, |f| {
                self.write_csv_table(t, f)
            })
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
        write_file(path, force, |f| self.write_csv_table(table, f))
    }
}
