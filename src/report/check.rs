//! Presenting an evaluation to a person: the table, the summary line, and
//! the boards' time zones every output writes instants in. The JSON and CSV
//! that scripts read are `report::stream`'s.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;

use chrono::format::StrftimeItems;
use chrono::SecondsFormat;
use chrono_tz::Tz;

use crate::domain::case::Instant;
use crate::domain::evaluate::{Draft, Evaluation, Name, Status};
use crate::domain::rules::RuleSet;
use crate::report::table::Table;

/// How the table writes an instant: `Thu 14 Jan 2027 23:59`, in the board's time zone.
const HUMAN: &str = "%a %-d %b %Y %H:%M";

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
    let mut table = Table::new([
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
    table.reserve(sorted.len(), 128);
    let human = StrftimeItems::new(HUMAN)
        .parse()
        .map_err(|e| anyhow::anyhow!("the table's time format: {e}"))?;
    fn name(n: Option<&Name>) -> &str {
        n.map(Name::as_str).unwrap_or_default()
    }
    // A national table's rows share a few thousand deadlines: each is written once.
    let mut shown: rustc_hash::FxHashMap<(Tz, i64), String> = Default::default();
    for o in &sorted {
        let tz = z.of(&o.of.board);
        let mut when = |s: &mut String, t: Instant| {
            let text = shown.entry((tz, t.timestamp())).or_insert_with(|| {
                t.with_timezone(&tz)
                    .format_with_items(human.iter())
                    .to_string()
            });
            s.push_str(text);
        };
        table.cell(|s| s.push_str(o.status.as_str()));
        table.cell(|s| when(s, o.due_at));
        match o.late_working_days.filter(|n| *n > 0) {
            Some(n) => table.cell_of(n),
            None => table.cell(|_| ()),
        }
        table.cell(|s| s.push_str(&o.of.board));
        table.cell(|s| s.push_str(&o.of.rule));
        table.cell(|s| s.push_str(name(o.child)));
        table.cell(|s| s.push_str(name(o.conference)));
        table.cell(|s| s.push_str(name(o.agency)));
        table.cell(|s| match (o.met_at, &o.exception_reason) {
            (Some(t), _) => when(s, t),
            (None, Some(r)) => {
                // Writing to a String cannot fail.
                let _ = write!(s, "{}: {r}", o.status.as_str());
            }
            (None, None) => {}
        });
    }
    table.write(w)?;
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
