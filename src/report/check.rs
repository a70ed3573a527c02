//! Presenting an evaluation: the person's table, and the JSON and CSV that
//! scripts read (a public interface, documented in docs/json-output.md).

use std::collections::BTreeMap;
use std::io::Write;

use chrono::SecondsFormat;
use chrono_tz::Tz;
use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use serde::Serialize;

use crate::domain::case::Instant;
use crate::domain::evaluate::{Draft, Evaluation, Finding, Name, Status};
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

/// One obligation as the JSON and CSV outputs write it.
#[derive(Debug, Serialize)]
pub struct ObligationRecord {
    pub key: String,
    pub rule: Name,
    pub title: Name,
    pub kind: &'static str,
    pub board: Name,
    pub board_version: Name,
    pub child: Option<Name>,
    pub conference: Option<Name>,
    pub agency: Option<Name>,
    pub team: Option<Name>,
    pub occurrence: String,
    pub starts_at: String,
    pub due_at: String,
    pub met_at: Option<String>,
    pub status: Status,
    pub late_working_days: Option<i64>,
    pub exception_reason: Option<Name>,
}

impl ObligationRecord {
    pub fn new(o: &Draft<'_>, z: &Zones) -> Self {
        ObligationRecord {
            key: o.key(),
            rule: o.of.rule.clone(),
            title: o.of.title.clone(),
            kind: o.of.kind.as_str(),
            board: o.of.board.clone(),
            board_version: o.of.board_version.clone(),
            child: o.child.cloned(),
            conference: o.conference.cloned(),
            agency: o.agency.cloned(),
            team: o.team.cloned(),
            occurrence: o.occurrence.to_string(),
            starts_at: z.rfc3339(&o.of.board, o.starts_at),
            due_at: z.rfc3339(&o.of.board, o.due_at),
            met_at: o.met_at.map(|t| z.rfc3339(&o.of.board, t)),
            status: o.status,
            late_working_days: o.late_working_days.map(i64::from),
            exception_reason: o.exception_reason.clone(),
        }
    }
}

#[derive(Serialize)]
struct JsonOut<'a, 'o, 'd> {
    evaluated_at: String,
    obligations: Records<'a, 'o, 'd>,
    findings: &'a [Finding],
}

/// The obligations in report order, each made into its record only as it
/// is written: a national output never holds every record at once.
struct Records<'a, 'o, 'd>(&'a [&'o Draft<'d>], &'a Zones);

impl Serialize for Records<'_, '_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for o in self.0 {
            seq.serialize_element(&ObligationRecord::new(o, self.1))?;
        }
        seq.end()
    }
}

pub fn write_json(
    w: &mut dyn Write,
    eval: &Evaluation<Draft<'_>>,
    obligations: &[&Draft<'_>],
    z: &Zones,
) -> anyhow::Result<()> {
    let ordered = report_order(obligations);
    let out = JsonOut {
        evaluated_at: z.default_rfc3339(eval.evaluated_at),
        obligations: Records(&ordered, z),
        findings: &eval.findings,
    };
    let mut chunked = Chunked::new(w);
    serde_json::to_writer_pretty(&mut chunked, &out)?;
    writeln!(chunked)?;
    chunked.flush()?;
    Ok(())
}

/// A writer that gathers what a serializer writes, a token at a time, in a
/// buffer of its own and hands it on in large pieces: the serializer's many
/// small writes then cost a copy each rather than a call through `dyn Write`.
struct Chunked<'w> {
    buf: Vec<u8>,
    out: &'w mut dyn Write,
}

impl<'w> Chunked<'w> {
    const SIZE: usize = 1 << 16;

    fn new(out: &'w mut dyn Write) -> Self {
        Chunked {
            buf: Vec::with_capacity(Self::SIZE + 4096),
            out,
        }
    }
}

impl Write for Chunked<'_> {
    #[inline]
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= Self::SIZE {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(b.len())
    }

    #[inline]
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.write(b).map(|_| ())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.out.flush()
    }
}

/// One obligation a line, in report order, for `jq` and log pipelines: the
/// records of the JSON output's `obligations`, compact.
pub fn write_jsonl(w: &mut dyn Write, obligations: &[&Draft<'_>], z: &Zones) -> anyhow::Result<()> {
    let mut chunked = Chunked::new(w);
    for o in report_order(obligations) {
        serde_json::to_writer(&mut chunked, &ObligationRecord::new(o, z))?;
        writeln!(chunked)?;
    }
    chunked.flush()?;
    Ok(())
}

pub fn write_csv(w: &mut dyn Write, obligations: &[&Draft<'_>], z: &Zones) -> anyhow::Result<()> {
    let mut csv = csv::Writer::from_writer(Chunked::new(w));
    for o in report_order(obligations) {
        csv.serialize(ObligationRecord::new(o, z))?;
    }
    csv.flush()?;
    Ok(())
}

/// By deadline, then by identity: the order of the JSON and CSV output.
fn report_order<'o, 'a>(obligations: &[&'o Draft<'a>]) -> Vec<&'o Draft<'a>> {
    let mut v = obligations.to_vec();
    v.sort_unstable_by(|a, b| a.report_cmp(b));
    v
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
