//! Box-drawn tables for a person, in comfy-table's `UTF8_FULL_CONDENSED`
//! look. At a terminal comfy-table draws them, wrapping the columns to the
//! screen; anywhere else (a pager, a file) nothing wraps, and the table is
//! written straight from its cells as comfy-table would draw it: a national
//! `check` lists tens of thousands of rows, which took comfy-table a tenth
//! of a second and a cell object for each cell.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};

use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement};
use unicode_width::UnicodeWidthStr;

/// A table of `N` columns, its cells' text kept in one string.
pub struct Table<const N: usize> {
    header: [&'static str; N],
    text: String,
    /// Where each cell's text ends in `text`, row after row.
    ends: Vec<usize>,
    /// Each column's widest line, as comfy-table measures it.
    widths: [usize; N],
}

impl<const N: usize> Table<N> {
    pub fn new(header: [&'static str; N]) -> Self {
        let mut widths = [0; N];
        for (w, h) in widths.iter_mut().zip(header) {
            *w = width(h);
        }
        Table {
            header,
            text: String::new(),
            ends: Vec::new(),
            widths,
        }
    }

    /// Room for `rows` rows of about `bytes` bytes each.
    pub fn reserve(&mut self, rows: usize, bytes: usize) {
        self.ends.reserve(rows * N);
        self.text.reserve(rows * bytes);
    }

    /// The next cell, its text written by `write` (a row is `N` cells).
    pub fn cell(&mut self, write: impl FnOnce(&mut String)) {
        let start = self.ends.last().copied().unwrap_or(0);
        write(&mut self.text);
        let column = self.ends.len() % N;
        let text = self.text.get(start..).unwrap_or_default();
        if let Some(w) = self.widths.get_mut(column) {
            *w = (*w).max(width(text));
        }
        self.ends.push(self.text.len());
    }

    /// The next cell, as `value` displays.
    pub fn cell_of(&mut self, value: impl std::fmt::Display) {
        self.cell(|s| {
            // Writing to a String cannot fail.
            let _ = write!(s, "{value}");
        });
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn rows(&self) -> impl Iterator<Item = [&str; N]> {
        self.ends.chunks_exact(N).scan(0, |start, ends| {
            let mut row = [""; N];
            for (cell, &end) in row.iter_mut().zip(ends) {
                *cell = self.text.get(*start..end).unwrap_or_default();
                *start = end;
            }
            Some(row)
        })
    }

    /// The table and a newline; nothing for a table of no rows.
    pub fn write(&self, w: &mut dyn Write) -> std::io::Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        if std::io::stdout().is_terminal() {
            return writeln!(w, "{}", self.comfy());
        }
        self.write_unwrapped(w)
    }

    /// The table as comfy-table draws it, wrapped to the terminal if there is one.
    fn comfy(&self) -> comfy_table::Table {
        let mut table = comfy_table::Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(self.header);
        for row in self.rows() {
            table.add_row(row);
        }
        table
    }

    /// The table drawn as comfy-table draws it when nothing wraps.
    fn write_unwrapped(&self, w: &mut dyn Write) -> std::io::Result<()> {
        // comfy-table's widths: at least one, at most what a u16 holds (a
        // line wider than that, which comfy-table would wrap, is left whole).
        let widths = self.widths.map(|n| n.clamp(1, usize::from(u16::MAX)));
        let mut line = String::new();
        let rule = |line: &mut String, [left, fill, cross, right]: [char; 4]| {
            line.push(left);
            for (i, n) in widths.iter().enumerate() {
                if i > 0 {
                    line.push(cross);
                }
                line.extend(std::iter::repeat_n(fill, n + 2));
            }
            line.push(right);
            line.push('\n');
        };
        rule(&mut line, ['┌', '─', '┬', '┐']);
        row_lines(&mut line, &self.header, &widths);
        rule(&mut line, ['╞', '═', '╪', '╡']);
        for row in self.rows() {
            row_lines(&mut line, &row, &widths);
            if line.len() >= 1 << 16 {
                w.write_all(line.as_bytes())?;
                line.clear();
            }
        }
        rule(&mut line, ['└', '─', '┴', '┘']);
        w.write_all(line.as_bytes())
    }
}

/// A cell's width as comfy-table measures it: that of its widest line.
fn width(text: &str) -> usize {
    text.split('\n').map(str::width).max().unwrap_or(0)
}

/// One row, a line for each line of its tallest cell.
fn row_lines<const N: usize>(out: &mut String, row: &[&str; N], widths: &[usize; N]) {
    let mut lines = row.map(|c| c.split('\n'));
    let height = row.iter().map(|c| c.split('\n').count()).max().unwrap_or(1);
    for _ in 0..height {
        out.push('│');
        for (i, (cell, n)) in lines.iter_mut().zip(widths).enumerate() {
            if i > 0 {
                out.push('┆');
            }
            let text = cell.next().unwrap_or_default();
            out.push(' ');
            out.push_str(text);
            out.extend(std::iter::repeat_n(' ', n.saturating_sub(text.width()) + 1));
        }
        out.push_str("│\n");
    }
}

#[cfg(test)]
mod tests {
    use super::Table;

    /// Cells that exercise what a width depends on: empty, wide (CJK,
    /// emoji), combining and control characters, several lines, and one
    /// wider than its header.
    const CELLS: [&str; 12] = [
        "",
        "overdue",
        "Thu 14 Jan 2027 23:59",
        "王小明",
        "👩‍👧 family",
        "e\u{301}te\u{301}",
        "BAR-1\u{1b}[2J",
        "two\nlines",
        "\nstarts on the second line",
        "tab\there",
        "excepted: agreed with the chair, who was told on the 3rd\nand again",
        "757",
    ];

    fn drawn_both_ways(rows: &[[&str; 3]]) -> (String, String) {
        let mut t = Table::new(["status", "a much longer header", "x"]);
        for row in rows {
            for c in row {
                t.cell_of(c);
            }
        }
        let mut comfy = t.comfy();
        comfy.force_no_tty();
        let mut ours = Vec::new();
        t.write_unwrapped(&mut ours).expect("write");
        (format!("{comfy}\n"), String::from_utf8(ours).expect("utf8"))
    }

    #[test]
    fn drawn_as_comfy_table_draws_it() {
        // Each pair of cells beside and above each other, so that each
        // sets a column's width against each other; then all of them.
        for a in CELLS {
            for b in CELLS {
                let (comfy, ours) = drawn_both_ways(&[[a, b, a], [b, a, b]]);
                assert_eq!(ours, comfy, "{a:?} and {b:?}");
            }
        }
        let rows: Vec<[&str; 3]> = (0..CELLS.len() * CELLS.len())
            .map(|n| {
                let (a, b) = (n / CELLS.len(), n % CELLS.len());
                [CELLS[a], CELLS[b], CELLS[(a + b) % CELLS.len()]]
            })
            .collect();
        let (comfy, ours) = drawn_both_ways(&rows);
        assert_eq!(ours, comfy);
    }

    #[test]
    fn a_table_of_no_rows_is_not_drawn() {
        let t = Table::new(["status"]);
        let mut out = Vec::new();
        t.write(&mut out).expect("write");
        assert!(out.is_empty());
    }
}
