//! The export as an xlsx workbook: one function a sheet, each writing the
//! same figures as the CSV table of the same name.

use std::io::Write;
use std::path::Path;

use rust_xlsxwriter::{
    Chart, ChartType, Format, Table, TableColumn, Workbook, Worksheet, XlsxError,
};

use super::{
    write_file, Counts, ExportError, Report, NATIONAL_INITIAL_CONFERENCES,
    NATIONAL_MEDIAN_WORKING_DAYS, NATIONAL_WITHIN_15, NATIONAL_YEAR,
};

/// The cell formats every sheet shares.
struct Formats {
    bold: Format,
    title: Format,
    pct: Format,
    date: Format,
}

/// A row number from a count of rows. A workbook holds about a million rows:
/// past that the write itself fails with the library's own error.
fn row(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// A column number, likewise.
fn col(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(u16::MAX)
}

impl Report {
    pub fn write_xlsx(&self, path: &Path, force: bool) -> Result<(), ExportError> {
        // Made whole before the file is touched: a failure leaves no empty
        // file (which would block the next try) and replaces nothing.
        let bytes = self.xlsx()?;
        write_file(path, force, |f| {
            f.write_all(&bytes).map_err(|error| ExportError::Io {
                path: path.display().to_string(),
                error,
            })
        })
    }

    /// The workbook's bytes.
    pub fn xlsx(&self) -> Result<Vec<u8>, XlsxError> {
        let mut wb = Workbook::new();
        let f = Formats {
            bold: Format::new().set_bold(),
            title: Format::new().set_bold().set_font_size(14),
            pct: Format::new().set_num_format("0.0%"),
            date: Format::new().set_num_format("yyyy-mm-dd hh:mm"),
        };
        self.summary_sheet(&mut wb, &f)?;
        self.agency_sheet(&mut wb, &f)?;
        self.team_sheet(&mut wb, &f)?;
        self.month_sheet(&mut wb, &f)?;
        self.obligations_sheet(&mut wb, &f)?;
        self.exceptions_sheet(&mut wb, &f)?;
        self.data_quality_sheet(&mut wb, &f)?;
        self.national_sheet(&mut wb, &f)?;
        // Printed (or turned into PDF), each sheet is landscape and one page wide.
        for ws in wb.worksheets_mut() {
            ws.set_landscape();
            ws.set_print_fit_to_pages(1, 0);
            ws.set_print_gridlines(true);
        }
        wb.save_to_buffer()
    }

    /// Per rule, with the header block: which board, period, when, version, rules.
    fn summary_sheet(&self, wb: &mut Workbook, f: &Formats) -> Result<(), XlsxError> {
        let ws = wb.add_worksheet().set_name("Summary")?;
        let h = &self.header;
        let heading = format!(
            "{} ({}): audit of child protection timescales",
            h.board_name, h.board
        );
        ws.write_with_format(0, 0, heading, &f.title)?;
        let meta = [
            (
                "Period",
                format!(
                    "{} to {} (deadlines in the period, board-local dates)",
                    h.from, h.to
                ),
            ),
            ("Generated", h.generated_at.clone()),
            ("cpwatch version", h.cpwatch_version.clone()),
            ("Rule files (digest)", h.rules_digest.clone()),
        ];
        for (i, (k, v)) in meta.iter().enumerate() {
            ws.write_with_format(1 + row(i), 0, *k, &f.bold)?;
            ws.write(1 + row(i), 1, v.as_str())?;
        }
        let top = 6;
        header_row_at(
            ws,
            top,
            &[&["Rule", "Title"][..], COUNT_HEADERS].concat(),
            &f.bold,
        )?;
        for (i, r) in self.summary.iter().enumerate() {
            let at = top + 1 + row(i);
            ws.write(at, 0, &*r.rule)?;
            ws.write(at, 1, r.title.as_str())?;
            counts_cells(ws, at, 2, &r.counts, &f.pct)?;
        }
        ws.set_freeze_panes(top + 1, 0)?;
        ws.autofit();
        ws.set_column_width(1, 60)?;
        Ok(())
    }

    fn agency_sheet(&self, wb: &mut Workbook, f: &Formats) -> Result<(), XlsxError> {
        let rows = self.by_agency.iter().map(|r| {
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
        let own = ["Rule", "Agency", "Agency name", "Professional group"];
        group_sheet(wb, "By agency", &own, rows, f)
    }

    fn team_sheet(&self, wb: &mut Workbook, f: &Formats) -> Result<(), XlsxError> {
        let rows = self.by_team.iter().map(|r| {
            (
                vec![r.rule.as_str(), r.team.as_str(), r.team_name.as_str()],
                &r.counts,
            )
        });
        group_sheet(wb, "By team", &["Rule", "Team", "Team name"], rows, f)
    }

    /// % on time, rules down and months across, and one small chart per rule.
    fn month_sheet(&self, wb: &mut Workbook, f: &Formats) -> Result<(), XlsxError> {
        let ws = wb.add_worksheet().set_name("By month")?;
        let mut months: Vec<&str> = self.by_month.iter().map(|r| r.month.as_str()).collect();
        months.sort_unstable();
        months.dedup();
        let rules: Vec<&str> = self.summary.iter().map(|r| r.rule.as_str()).collect();
        ws.write_with_format(0, 0, "% on time", &f.bold)?;
        for (c, m) in months.iter().enumerate() {
            ws.write_with_format(0, 1 + col(c), *m, &f.bold)?;
        }
        for (i, rule) in rules.iter().enumerate() {
            ws.write(1 + row(i), 0, *rule)?;
        }
        for r in &self.by_month {
            let (Some(at), Some(c)) = (
                rules.iter().position(|x| *x == r.rule),
                months.iter().position(|m| *m == r.month),
            ) else {
                continue;
            };
            if let Some(share) = r.counts.on_time_share {
                ws.write_with_format(1 + row(at), 1 + col(c), share, &f.pct)?;
            }
        }
        ws.set_freeze_panes(1, 1)?;
        ws.autofit();
        let last_col = col(months.len());
        for (i, rule) in rules.iter().enumerate().filter(|_| last_col > 0) {
            let at = 1 + row(i);
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
                .set_values(("By month", at, 1, at, last_col));
            chart.set_width(420).set_height(220);
            let at_row = row(rules.len()) + 2 + (row(i) / 3) * 12;
            ws.insert_chart_with_offset(at_row, 0, &chart, (row(i) % 3) * 430, 0)?;
        }
        Ok(())
    }

    /// One row an obligation, as an Excel table. At national size this sheet
    /// is most of the workbook, so its rows go to a temporary file as they
    /// are written rather than staying in memory: the table (which writes
    /// the header row) comes first, and the columns are sized from the
    /// longest value, as autofit would but from every row.
    fn obligations_sheet(&self, wb: &mut Workbook, f: &Formats) -> Result<(), XlsxError> {
        let ws = wb
            .add_worksheet_with_constant_memory()?
            .set_name("Obligations")?;
        let columns: Vec<TableColumn> = OBLIGATION_HEADERS
            .iter()
            .map(|c| TableColumn::new().set_header(*c))
            .collect();
        let last_row = row(self.obligations.len().max(1));
        let last_col = col(OBLIGATION_HEADERS.len() - 1);
        ws.add_table(
            0,
            0,
            last_row,
            last_col,
            &Table::new().set_columns(&columns),
        )?;
        ws.set_freeze_panes(1, 0)?;
        // Header text plus the table's filter button.
        let mut widest: Vec<usize> = OBLIGATION_HEADERS
            .iter()
            .map(|c| c.chars().count() + 3)
            .collect();
        let mut text = |ws: &mut Worksheet, row: u32, col: u16, v: Option<&str>| {
            let Some(v) = v else { return Ok(()) };
            if let Some(w) = widest.get_mut(usize::from(col)) {
                *w = (*w).max(v.chars().count());
            }
            ws.write(row, col, fit(v).as_ref()).map(|_| ())
        };
        for (i, r) in self.obligations.iter().enumerate() {
            let at = 1 + row(i);
            text(ws, at, 0, Some(&r.rule))?;
            text(ws, at, 1, r.child.as_deref())?;
            text(ws, at, 2, r.conference.as_deref())?;
            text(ws, at, 3, r.agency.as_deref())?;
            text(ws, at, 4, r.professional_group.as_deref())?;
            text(ws, at, 5, r.team.as_deref())?;
            ws.write_datetime_with_format(at, 6, r.starts, &f.date)?;
            ws.write_datetime_with_format(at, 7, r.deadline, &f.date)?;
            if let Some(m) = &r.met {
                ws.write_datetime_with_format(at, 8, m, &f.date)?;
            }
            text(ws, at, 9, Some(r.status.as_str()))?;
            text(ws, at, 10, Some(r.outcome))?;
            if let Some(n) = r.working_days_late {
                ws.write(at, 11, n as f64)?;
            }
            text(ws, at, 12, r.exception_reason.as_deref())?;
            text(ws, at, 13, r.snoozed.as_deref())?;
        }
        for (c, w) in widest.iter().enumerate() {
            let width = match c {
                6..=8 => 17.0,
                _ => (*w).min(60) as f64 * 1.1 + 1.0,
            };
            ws.set_column_width(col(c), width)?;
        }
        Ok(())
    }

    fn exceptions_sheet(&self, wb: &mut Workbook, f: &Formats) -> Result<(), XlsxError> {
        let ws = wb.add_worksheet().set_name("Exceptions")?;
        let cols = [
            "Rule",
            "Child",
            "Conference",
            "Agency",
            "Deadline",
            "Reason",
        ];
        header_row_at(ws, 0, &cols, &f.bold)?;
        for (i, r) in self.exceptions().iter().enumerate() {
            let at = 1 + row(i);
            ws.write(at, 0, r.rule)?;
            opt(ws, at, 1, r.child)?;
            opt(ws, at, 2, r.conference)?;
            opt(ws, at, 3, r.agency)?;
            ws.write_datetime_with_format(at, 4, r.deadline, &f.date)?;
            opt(ws, at, 5, r.exception_reason)?;
        }
        ws.autofit();
        Ok(())
    }

    fn data_quality_sheet(&self, wb: &mut Workbook, f: &Formats) -> Result<(), XlsxError> {
        let ws = wb.add_worksheet().set_name("Data quality")?;
        header_row_at(ws, 0, &["Kind", "Table", "Row", "What is wrong"], &f.bold)?;
        for (i, finding) in self.findings.iter().enumerate() {
            let at = 1 + row(i);
            ws.write(at, 0, finding.kind.as_str())?;
            ws.write(at, 1, finding.table.as_str())?;
            ws.write(at, 2, fit(&finding.row).as_ref())?;
            ws.write(at, 3, fit(&finding.message).as_ref())?;
        }
        ws.autofit();
        Ok(())
    }

    /// The bands, then the board beside England.
    fn national_sheet(&self, wb: &mut Workbook, f: &Formats) -> Result<(), XlsxError> {
        let ws = wb.add_worksheet().set_name("National comparison")?;
        let n = &self.national;
        let heading = format!("Initial conferences by working days from the strategy discussion, beside England {NATIONAL_YEAR}");
        ws.write_with_format(0, 0, heading, &f.title)?;
        let bands = ["Working days", "Initial conferences", "Share"];
        header_row_at(ws, 2, &bands, &f.bold)?;
        for (i, b) in n.bands.iter().enumerate() {
            let at = 3 + row(i);
            ws.write(at, 0, b.band.as_str())?;
            ws.write(at, 1, b.conferences)?;
            if let Some(s) = b.share {
                ws.write_with_format(at, 2, s, &f.pct)?;
            }
        }
        let base = 3 + row(n.bands.len()) + 1;
        let england = format!("England {NATIONAL_YEAR}");
        let cols = ["Measure", self.header.board.as_str(), &england];
        header_row_at(ws, base, &cols, &f.bold)?;
        ws.write(base + 1, 0, "Initial conferences")?;
        ws.write(base + 1, 1, n.conferences)?;
        ws.write(base + 1, 2, NATIONAL_INITIAL_CONFERENCES)?;
        ws.write(base + 2, 0, "Share within 15 working days")?;
        if let Some(s) = n.within_15_share {
            ws.write_with_format(base + 2, 1, s, &f.pct)?;
        }
        ws.write_with_format(base + 2, 2, NATIONAL_WITHIN_15, &f.pct)?;
        ws.write(base + 3, 0, "Median working days")?;
        if let Some(m) = n.median_working_days {
            ws.write(base + 3, 1, m)?;
        }
        ws.write(base + 3, 2, NATIONAL_MEDIAN_WORKING_DAYS)?;
        ws.autofit();
        Ok(())
    }
}

/// The Obligations sheet's columns.
const OBLIGATION_HEADERS: &[&str] = &[
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
    "Snoozed",
];

/// The workbook's headings of a group's counts, in `counts_cells` order.
const COUNT_HEADERS: &[&str] = &[
    "Due",
    "Met on time",
    "Met late",
    "Outstanding",
    "Missed",
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
    f: &Formats,
) -> Result<(), XlsxError> {
    let ws = wb.add_worksheet().set_name(name)?;
    header_row_at(ws, 0, &[own, COUNT_HEADERS].concat(), &f.bold)?;
    for (i, (cells, c)) in rows.enumerate() {
        let at = 1 + row(i);
        for (n, v) in cells.iter().enumerate() {
            ws.write(at, col(n), *v)?;
        }
        counts_cells(ws, at, col(own.len()), c, &f.pct)?;
    }
    ws.set_freeze_panes(1, 0)?;
    ws.autofit();
    Ok(())
}

fn header_row_at(
    ws: &mut Worksheet,
    at: u32,
    cols: &[&str],
    bold: &Format,
) -> Result<(), XlsxError> {
    for (c, h) in cols.iter().enumerate() {
        ws.write_with_format(at, col(c), *h, bold)?;
    }
    Ok(())
}

fn opt<S: AsRef<str>>(ws: &mut Worksheet, at: u32, c: u16, v: &Option<S>) -> Result<(), XlsxError> {
    if let Some(v) = v {
        ws.write(at, c, v.as_ref())?;
    }
    Ok(())
}

/// Due … worst, from column `from` on.
fn counts_cells(
    ws: &mut Worksheet,
    at: u32,
    from: u16,
    c: &Counts,
    pct: &Format,
) -> Result<(), XlsxError> {
    let counts = [
        c.due,
        c.met_on_time,
        c.met_late,
        c.outstanding,
        c.missed,
        c.excepted,
    ];
    for (i, n) in counts.iter().enumerate() {
        ws.write(at, from + col(i), *n)?;
    }
    if let Some(s) = c.on_time_share {
        ws.write_with_format(at, from + 6, s, pct)?;
    }
    if let Some(m) = c.median_working_days_late {
        ws.write(at, from + 7, m)?;
    }
    if let Some(w) = c.worst_working_days_late {
        ws.write(at, from + 8, w as f64)?;
    }
    Ok(())
}

/// The most characters a spreadsheet cell holds.
const CELL_CHARS: usize = 32_767;

/// Case text as a cell holds it: a value longer than a cell (a reference an
/// ETL filled with a whole document, say) is cut, and says so, rather than
/// refusing the whole workbook.
fn fit(v: &str) -> std::borrow::Cow<'_, str> {
    let n = v.chars().count();
    if n <= CELL_CHARS {
        return v.into();
    }
    let note = format!(" [cut: {n} characters]");
    let keep: String = v.chars().take(CELL_CHARS - note.chars().count()).collect();
    format!("{keep}{note}").into()
}
