//! Presenting an evaluation to a person: the table, the summary line, and
//! the boards' time zones every output writes instants in. The JSON and CSV
//! that scripts read are `report::stream`'s.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::SecondsFormat;
use chrono_tz::Tz;
use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};

use crate::domain::case::Instant;
use crate::domain::evaluate::{Draft, Evaluation, Name, Status};
use crate::domain::rules::RuleSet;

/// Time zones of the boards, for writing instants with the local offset.
pub struct Zones {
    zones: BTreeMap<String, Tz>,
    default: Tz,
}

impl Zones {
    pub fn new(rules: &RuleSet, default_board: &str) -> Self {
        let zones: BTreeMap<String, Tz> = rules
            .boards
            .iter()
            .filter_map(|(id, v)| v.last().map(|b| (id.clone(), b.time_zone)))
            .collect();
        let default = zones
            .get(default_board)
            .copied()
            .unwrap_or(Tz::Europe__London);
        Zones { zones, default }
    }

    pub fn of(&self, board: &str) -> Tz {
        self.zones.get(board).copied().unwrap_or(self.default)
    }

    pub fn rfc3339(&self, board: &str, t: Instant) -> String {
        t.with_timezone(&self.of(board))
            .to_rfc3339_opts(SecondsFormat::Secs, false)
    }

    pub fn default_rfc3339(&self, t: Instant) -> String {
        t.with_timezone(&self.default)
            .to_rfc3339_opts(SecondsFormat::Secs, false)
    }

    /// `Thu 14 Jan 2027 23:59` in the board's time zone.
    pub fn human(&self, board: &str, t: Instant) -> String {
        t.with_timezone(&self.of(board))
            .format("%a %-d %b %Y %H:%M")
            .to_string()
    }
}

/// Overdue first, then by deadline.
pub fn person_order(obligations: &mut [&Draft<'_>]) {
    obligations.sort_by(|a, b| {
        (a.status != Status::Overdue)
            .cmp(&(b.status != Status::Overdue))
            .then_with(|| a.report_cmp(b))
    });
}

pub fn write_table(
    w: &mut dyn Write,
    eval: &Evaluation<Draft<'_>>,
    obligations: &[&Draft<'_>],
    z: &Zones,
) -> anyhow::Result<()> {
    let mut sorted: Vec<&Draft<'_>> = obligations.to_vec();
    person_order(&mut sorted);
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header([
        "status",
        "due",
        "late (wd)",
        "board",
        "rule",
        "child",
        "conference",
        "agency",
        "met",
    ]);
    for o in &sorted {
        table.add_row([
            o.status.as_str().to_string(),
            z.human(&o.of.board, o.due_at),
            o.late_working_days
                .filter(|n| *n > 0)
                .map(|n| n.to_string())
                .unwrap_or_default(),
            o.of.board.to_string(),
            o.of.rule.to_string(),
            o.child.map(Name::as_str).unwrap_or_default().to_string(),
            o.conference
                .map(Name::as_str)
                .unwrap_or_default()
                .to_string(),
            o.agency.map(Name::as_str).unwrap_or_default().to_string(),
            o.met_at
                .map(|t| z.human(&o.of.board, t))
                .or_else(|| {
                    o.exception_reason
                        .as_ref()
                        .map(|r| format!("{}: {r}", o.status.as_str()))
                })
                .unwrap_or_default(),
        ]);
    }
    if !sorted.is_empty() {
        writeln!(w, "{table}")?;
    }
    write_summary(w, eval, obligations, z)
}

/// `N obligations at T: n pending, n due_soon, …`
pub fn summary_line(eval: &Evaluation<Draft<'_>>, obligations: &[&Draft<'_>], z: &Zones) -> String {
    let mut counts: BTreeMap<Status, usize> = BTreeMap::new();
    for o in obligations {
        *counts.entry(o.status).or_default() += 1;
    }
    summary_of(&counts, eval.evaluated_at, z)
}

/// The summary line from counts by status: what `check` prints when it
/// kept only the obligations it lists.
pub fn summary_of(counts: &BTreeMap<Status, usize>, at: Instant, z: &Zones) -> String {
    let parts: Vec<String> = Status::ALL
        .iter()
        .map(|s| format!("{} {}", counts.get(s).copied().unwrap_or(0), s.as_str()))
        .collect();
    format!(
        "{} obligations at {}: {}",
        counts.values().sum::<usize>(),
        z.default_rfc3339(at),
        parts.join(", ")
    )
}

pub fn write_summary(
    w: &mut dyn Write,
    eval: &Evaluation<Draft<'_>>,
    obligations: &[&Draft<'_>],
    z: &Zones,
) -> anyhow::Result<()> {
    writeln!(w, "{}", summary_line(eval, obligations, z))?;
    if !eval.findings.is_empty() {
        writeln!(w, "\n{} data-quality findings:", eval.findings.len())?;
        for f in &eval.findings {
            writeln!(w, "  {} {}: [{}] {}", f.table, f.row, f.kind, f.message)?;
        }
    }
    Ok(())
}
