//! Every obligation as scripts read them (`check --format json`, `jsonl`,
//! `csv`; docs/json-output.md): in report order, each record written
//! straight into the output's bytes, with no record or string made a field,
//! in chunks made on every core and written in order. At a national scale
//! (two million obligations, over a gigabyte of JSON) this is most of the
//! command's time.

use std::io::Write;
use std::sync::mpsc;
use std::sync::Arc;

use chrono::{Datelike, Offset, SecondsFormat, Timelike};
use chrono_tz::Tz;
use rustc_hash::FxHashMap;

use super::check::Zones;
use crate::domain::case::Instant;
use crate::domain::evaluate::{Draft, Finding, Name};
use crate::domain::rules::RuleRef;

/// The shape of the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One pretty-printed document with the findings.
    Json,
    /// One compact record a line.
    Jsonl,
    /// RFC 4180 with a header line.
    Csv,
}

/// The fields of a record, in the order every shape writes them.
const FIELDS: [&str; 17] = [
    "key",
    "rule",
    "title",
    "kind",
    "board",
    "board_version",
    "child",
    "conference",
    "agency",
    "team",
    "occurrence",
    "starts_at",
    "due_at",
    "met_at",
    "status",
    "late_working_days",
    "exception_reason",
];

/// Records a chunk: small enough that the first bytes go out at once, large
/// enough that handing chunks between threads costs nothing measurable.
const CHUNK: usize = 4096;

/// Writes the obligations in report order in `shape`; for JSON, with the
/// evaluation's instant and findings around them.
pub fn write<'o, 'a: 'o>(
    w: &mut dyn Write,
    shape: Shape,
    obligations: impl Iterator<Item = &'o Draft<'a>> + Clone + Send + Sync,
    evaluated_at: Instant,
    findings: &[Finding],
    z: &Zones,
    threads: usize,
) -> anyhow::Result<()> {
    let ordered = Ordered::new(obligations, threads);
    match shape {
        Shape::Json => {
            write!(
                w,
                "{{\n  \"evaluated_at\": {},\n  \"obligations\": ",
                serde_json::to_string(&z.default_rfc3339(evaluated_at))?
            )?;
            if ordered.is_empty() {
                w.write_all(b"[]")?;
            } else {
                w.write_all(b"[\n")?;
                records(w, shape, &ordered, z, threads)?;
                w.write_all(b"\n  ]")?;
            }
            w.write_all(b",\n  \"findings\": ")?;
            // serde_json's own pretty form of the findings, indented one level.
            let text = serde_json::to_string_pretty(findings)?;
            for (i, line) in text.split('\n').enumerate() {
                if i > 0 {
                    w.write_all(b"\n  ")?;
                }
                w.write_all(line.as_bytes())?;
            }
            w.write_all(b"\n}\n")?;
        }
        Shape::Jsonl => records(w, shape, &ordered, z, threads)?,
        Shape::Csv => {
            if !ordered.is_empty() {
                let mut header = csv::Writer::from_writer(Vec::new());
                header.write_record(FIELDS)?;
                w.write_all(&header.into_inner().map_err(|e| e.into_error())?)?;
            }
            records(w, shape, &ordered, z, threads)?;
        }
    }
    w.flush()?;
    Ok(())
}

/// By deadline, then by identity ([`Draft::report_cmp`]): sorted by a
/// compact key made once an obligation (the deadline, and the ranks of its
/// board and rule, child, conference and agency), and by `report_cmp` only
/// where keys tie, so the sort rarely leaves the keys' array. Where a key
/// cannot hold them (a deadline with a fraction of a second, ranks beyond
/// their bits), by `report_cmp` alone. Two halves on two threads when
/// `threads` allows, merged as the outputs merge them.
pub fn report_order<'o, 'a: 'o>(
    obligations: impl Iterator<Item = &'o Draft<'a>> + Clone + Send + Sync,
    threads: usize,
) -> Vec<&'o Draft<'a>> {
    let ordered = Ordered::new(obligations, threads);
    let mut all = Vec::with_capacity(ordered.len());
    // A chunk at a time, as the outputs take them.
    for k0 in (0..ordered.len()).step_by(CHUNK) {
        ordered.range(k0, (k0 + CHUNK).min(ordered.len()), &mut all);
    }
    all
}

/// The obligations in report order, beside their keys: two halves, each
/// keyed and sorted on a thread of its own, merged a chunk at a time by
/// whichever thread formats the chunk. The outputs read them from here,
/// with no second list of them.
struct Ordered<'o, 'a> {
    halves: [Vec<Keyed<'o, 'a>>; 2],
}

impl<'o, 'a: 'o> Ordered<'o, 'a> {
    fn new(
        obligations: impl Iterator<Item = &'o Draft<'a>> + Clone + Send + Sync,
        threads: usize,
    ) -> Self {
        let ranks = Ranks::of(obligations.clone());
        let first = obligations.clone().map(|o| o.due_at.timestamp()).min();
        let n = obligations.clone().count();
        let mid = if threads > 1 { n / 2 } else { 0 };
        let half = |skip: usize, take: usize| {
            let these = obligations.clone().skip(skip).take(take);
            let mut memo = Memo::default();
            // Made at its size: a list grown by doubling leaves heap behind.
            let mut keyed = Vec::with_capacity(take);
            for o in these.clone() {
                match first.and_then(|first| ranks.key(o, first, &mut memo)) {
                    Some(key) => keyed.push((key, o)),
                    None => return (None, these),
                }
            }
            (Some(keyed), these)
        };
        let (a, b) = crate::domain::evaluate::both(threads, || half(0, mid), || half(mid, n - mid));
        let halves = match (a, b) {
            ((Some(mut a), _), (Some(mut b), _)) => {
                crate::domain::evaluate::both(
                    threads,
                    || a.sort_unstable_by(order),
                    || b.sort_unstable_by(order),
                );
                [a, b]
            }
            // Unkeyed, every key is equal and `report_cmp` alone orders them.
            ((_, a), (_, b)) => {
                let (a, b) = crate::domain::evaluate::both(threads, || unkeyed(a), || unkeyed(b));
                [a, b]
            }
        };
        Ordered { halves }
    }

    fn len(&self) -> usize {
        self.halves.iter().map(Vec::len).sum()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many of the first `k` in report order are in the first half
    /// (where the merge's path crosses the `k`th diagonal): ties go to the
    /// first half.
    fn in_first(&self, k: usize) -> usize {
        let [a, b] = &self.halves;
        let (mut lo, mut hi) = (k.saturating_sub(b.len()), k.min(a.len()));
        while lo < hi {
            let i = lo + (hi - lo) / 2;
            match (a.get(i), b.get(k - 1 - i)) {
                (Some(x), Some(y)) if order(x, y) == std::cmp::Ordering::Greater => hi = i,
                _ => lo = i + 1,
            }
        }
        lo
    }

    /// The `k0`th to the `k1`th obligation in report order, into `out`.
    fn range(&self, k0: usize, k1: usize, out: &mut Vec<&'o Draft<'a>>) {
        let [a, b] = &self.halves;
        let (i0, i1) = (self.in_first(k0), self.in_first(k1));
        let mut a = a.get(i0..i1).unwrap_or_default().iter().peekable();
        let mut b = b
            .get(k0 - i0..k1 - i1)
            .unwrap_or_default()
            .iter()
            .peekable();
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if order(x, y) == std::cmp::Ordering::Greater => b.next(),
                (Some(_), _) => a.next(),
                (None, _) => b.next(),
            };
            match next {
                Some((_, o)) => out.push(o),
                None => break,
            }
        }
    }
}

/// The obligations sorted by `report_cmp` alone, each with the same key.
fn unkeyed<'o, 'a>(these: impl Iterator<Item = &'o Draft<'a>>) -> Vec<Keyed<'o, 'a>> {
    let mut v: Vec<Keyed<'o, 'a>> = these.map(|o| ((0, 0), o)).collect();
    v.sort_unstable_by(order);
    v
}

/// Report order of two keyed obligations.
fn order(a: &Keyed<'_, '_>, b: &Keyed<'_, '_>) -> std::cmp::Ordering {
    a.0.cmp(&b.0).then_with(|| a.1.report_cmp(b.1))
}

/// An obligation and its sort key.
type Keyed<'o, 'a> = ((u64, u64), &'o Draft<'a>);

/// The rank of each name by its text (equal texts one rank), by the
/// address of the name's text: obligations share their names' text.
struct Ranks {
    rules: FxHashMap<usize, u64>,
    children: FxHashMap<usize, u64>,
    conferences: FxHashMap<usize, u64>,
    agencies: FxHashMap<usize, u64>,
}

impl Ranks {
    fn of<'o, 'a: 'o>(obligations: impl Iterator<Item = &'o Draft<'a>>) -> Self {
        let mut rules: FxHashMap<usize, (&str, &str)> = FxHashMap::default();
        let mut children: FxHashMap<usize, &str> = FxHashMap::default();
        let mut conferences: FxHashMap<usize, &str> = FxHashMap::default();
        let mut agencies: FxHashMap<usize, &str> = FxHashMap::default();
        // A subject's obligations come together: most names are the last one's.
        let mut last = 0;
        let mut last_name = [0; 3];
        for o in obligations {
            let p = Arc::as_ptr(o.of) as usize;
            if p != last {
                rules.insert(p, (o.of.board.as_str(), o.of.rule.as_str()));
                last = p;
            }
            for ((map, n), last) in [
                (&mut children, o.child),
                (&mut conferences, o.conference),
                (&mut agencies, o.agency),
            ]
            .into_iter()
            .zip(&mut last_name)
            {
                if let Some(n) = n {
                    let p = n.as_str().as_ptr() as usize;
                    if p != *last {
                        map.insert(p, n.as_str());
                        *last = p;
                    }
                }
            }
        }
        Ranks {
            rules: ranked(rules),
            children: ranked(children),
            conferences: ranked(conferences),
            agencies: ranked(agencies),
        }
    }

    /// (deadline's seconds from `first`: 32 bits, board and rule: 12,
    /// child: 20; conference: 40, agency: 24), none ranked 0.
    fn key(&self, o: &Draft<'_>, first: i64, memo: &mut Memo) -> Option<(u64, u64)> {
        if o.due_at.timestamp_subsec_nanos() != 0 {
            return None;
        }
        let due = u64::try_from(o.due_at.timestamp() - first).ok()?;
        let rank = |map: &FxHashMap<usize, u64>, n: Option<&Name>, last: &mut (usize, u64)| match n
        {
            None => Some(0),
            Some(n) => {
                let p = n.as_str().as_ptr() as usize;
                if p != last.0 {
                    *last = (p, map.get(&p)? + 1);
                }
                Some(last.1)
            }
        };
        let p = Arc::as_ptr(o.of) as usize;
        if p != memo.rule.0 {
            memo.rule = (p, *self.rules.get(&p)?);
        }
        let rule = memo.rule.1;
        let child = rank(&self.children, o.child, &mut memo.child)?;
        let conference = rank(&self.conferences, o.conference, &mut memo.conference)?;
        let agency = rank(&self.agencies, o.agency, &mut memo.agency)?;
        let fits = |v: u64, bits: u32| v < 1 << bits;
        (fits(due, 32)
            && fits(rule, 12)
            && fits(child, 20)
            && fits(conference, 40)
            && fits(agency, 24))
        .then_some((
            (due << 32) | (rule << 20) | child,
            (conference << 24) | agency,
        ))
    }
}

/// The ranks [`Ranks::key`] looked up last, by the address they were
/// looked up by: a subject's obligations come together.
#[derive(Default)]
struct Memo {
    rule: (usize, u64),
    child: (usize, u64),
    conference: (usize, u64),
    agency: (usize, u64),
}

/// Each key's rank by its value, equal values one rank.
fn ranked<K: std::hash::Hash + Eq + Copy, V: Ord + Copy>(
    map: FxHashMap<K, V>,
) -> FxHashMap<K, u64> {
    let mut v: Vec<(V, K)> = map.into_iter().map(|(k, v)| (v, k)).collect();
    v.sort_unstable_by_key(|a| a.0);
    let mut out = FxHashMap::default();
    let mut n = 0u64;
    let mut prev: Option<V> = None;
    for (value, k) in v {
        if prev.is_some_and(|p| p != value) {
            n += 1;
        }
        prev = Some(value);
        out.insert(k, n);
    }
    out
}

/// Writes the records, chunk by chunk in order, the chunks made by up to
/// `threads` threads while this one writes.
fn records(
    w: &mut dyn Write,
    shape: Shape,
    ordered: &Ordered<'_, '_>,
    z: &Zones,
    threads: usize,
) -> anyhow::Result<()> {
    let chunks = ordered.len().div_ceil(CHUNK);
    let threads = threads.clamp(1, chunks.max(1));
    std::thread::scope(|s| -> anyhow::Result<()> {
        let mut receivers = Vec::with_capacity(threads);
        for t in 0..threads {
            // Two chunks ahead of the writer at most: memory stays a few MiB.
            let (tx, rx) = mpsc::sync_channel::<anyhow::Result<Vec<u8>>>(2);
            receivers.push(rx);
            s.spawn(move || {
                let mut f = Formatter::new(z, shape);
                let mut these = Vec::with_capacity(CHUNK);
                for i in (t..chunks).step_by(threads) {
                    these.clear();
                    let k0 = i * CHUNK;
                    ordered.range(k0, (k0 + CHUNK).min(ordered.len()), &mut these);
                    if tx.send(f.chunk(&these, i == 0)).is_err() {
                        return;
                    }
                }
            });
        }
        for i in 0..chunks {
            let rx = receivers
                .get(i % threads)
                .ok_or_else(|| anyhow::anyhow!("no writer thread for chunk {i}"))?;
            let buf = rx
                .recv()
                .map_err(|_| anyhow::anyhow!("a thread formatting the output stopped"))??;
            // A closed pipe ends the command; the threads stop at their next send.
            w.write_all(&buf)?;
        }
        Ok(())
    })
}

/// `v` as a JSON string, as serde_json writes it. Most values need no
/// escaping and are copied as they are.
fn json_string(buf: &mut Vec<u8>, v: &str) -> serde_json::Result<()> {
    if v.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.push(b'"');
        buf.extend_from_slice(v.as_bytes());
        buf.push(b'"');
        return Ok(());
    }
    serde_json::to_writer(buf, v)
}

/// Where a record goes: JSON is written as bytes, CSV through its writer.
enum Out<'b> {
    Bytes(&'b mut Vec<u8>),
    Csv(&'b mut csv::Writer<Vec<u8>>),
}

/// One thread's record maker, with what it remembers between records.
struct Formatter<'z> {
    z: &'z Zones,
    shape: Shape,
    /// Each rule's time zone, by its [`RuleRef`].
    zones: FxHashMap<*const RuleRef, Tz>,
    /// The fields from `rule` to `board_version`, written once a rule.
    rule_fields: FxHashMap<*const RuleRef, Vec<u8>>,
    /// A zone's UTC offset in seconds over a quarter of an hour.
    offsets: FxHashMap<(Tz, i64), i32>,
    /// The quarter hour and offset each of `starts_at`, `due_at` and
    /// `met_at` had last: in report order the next is mostly the same.
    recent: [Option<(Tz, i64, i32)>; 3],
    key: String,
    occurrence: String,
    late: String,
}

impl<'z> Formatter<'z> {
    fn new(z: &'z Zones, shape: Shape) -> Self {
        Formatter {
            z,
            shape,
            zones: FxHashMap::default(),
            rule_fields: FxHashMap::default(),
            offsets: FxHashMap::default(),
            recent: [None; 3],
            key: String::new(),
            occurrence: String::new(),
            late: String::new(),
        }
    }

    fn zone(&mut self, o: &Draft<'_>) -> Tz {
        let z = self.z;
        *self
            .zones
            .entry(Arc::as_ptr(o.of))
            .or_insert_with(|| z.of(&o.of.board))
    }

    /// `t` as RFC 3339 with the zone's offset, to the second, as
    /// `DateTime::to_rfc3339_opts(SecondsFormat::Secs, false)` writes it.
    /// `slot` is the field's place among the three instants a record has.
    fn instant(&mut self, tz: Tz, t: Instant, slot: usize, out: &mut [u8; 32]) -> usize {
        let secs = t.timestamp();
        let quarter = secs.div_euclid(900);
        let recent = self.recent.get(slot).copied().flatten();
        let offset = match recent.filter(|r| r.0 == tz && r.1 == quarter) {
            Some((_, _, o)) => Some(o),
            None => {
                let at = |s: i64| {
                    chrono::DateTime::from_timestamp(s, 0)
                        .map(|d| d.with_timezone(&tz).offset().fix().local_minus_utc())
                };
                // Cached only where the offset holds for the whole quarter hour.
                let o = match self.offsets.get(&(tz, quarter)) {
                    Some(o) => Some(*o),
                    None => match (at(quarter * 900), at(quarter * 900 + 899)) {
                        (Some(a), Some(b)) if a == b => {
                            self.offsets.insert((tz, quarter), a);
                            Some(a)
                        }
                        _ => None,
                    },
                };
                if let (Some(r), Some(o)) = (self.recent.get_mut(slot), o) {
                    *r = Some((tz, quarter, o));
                }
                o
            }
        };
        let local = offset.and_then(|off| {
            (off % 60 == 0 && t.timestamp_subsec_nanos() < 1_000_000_000).then(|| {
                (
                    t.naive_utc() + chrono::Duration::seconds(i64::from(off)),
                    off,
                )
            })
        });
        match local.filter(|(l, _)| (0..=9999).contains(&l.year())) {
            Some((l, off)) => {
                let mut n = 0;
                let mut put = |b: u8| {
                    if let Some(x) = out.get_mut(n) {
                        *x = b;
                    }
                    n += 1;
                };
                let two = |put: &mut dyn FnMut(u8), v: u32| {
                    put(b'0' + u8::try_from(v / 10 % 10).unwrap_or(0));
                    put(b'0' + u8::try_from(v % 10).unwrap_or(0));
                };
                let year = u32::try_from(l.year()).unwrap_or(0);
                two(&mut put, year / 100);
                two(&mut put, year % 100);
                put(b'-');
                two(&mut put, l.month());
                put(b'-');
                two(&mut put, l.day());
                put(b'T');
                two(&mut put, l.hour());
                put(b':');
                two(&mut put, l.minute());
                put(b':');
                two(&mut put, l.second());
                put(if off < 0 { b'-' } else { b'+' });
                let m = off.unsigned_abs() / 60;
                two(&mut put, m / 60);
                put(b':');
                two(&mut put, m % 60);
                n
            }
            None => {
                let s = t
                    .with_timezone(&tz)
                    .to_rfc3339_opts(SecondsFormat::Secs, false);
                let n = s.len().min(out.len());
                if let (Some(o), Some(b)) = (out.get_mut(..n), s.as_bytes().get(..n)) {
                    o.copy_from_slice(b);
                }
                n
            }
        }
    }

    /// A chunk of records; `first` when it holds the output's first.
    fn chunk(&mut self, chunk: &[&Draft<'_>], first: bool) -> anyhow::Result<Vec<u8>> {
        let buf = Vec::with_capacity(chunk.len() * 700);
        if self.shape == Shape::Csv {
            let mut csv = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(buf);
            for o in chunk {
                self.record(&mut Out::Csv(&mut csv), o, false)?;
            }
            return csv.into_inner().map_err(|e| e.into_error().into());
        }
        let mut buf = buf;
        for (j, o) in chunk.iter().enumerate() {
            self.record(&mut Out::Bytes(&mut buf), o, first && j == 0)?;
        }
        Ok(buf)
    }

    /// One record, and before it what separates it from the last.
    fn record(&mut self, out: &mut Out<'_>, o: &Draft<'_>, first: bool) -> anyhow::Result<()> {
        use std::fmt::Write as _;
        let tz = self.zone(o);
        let (mut s, mut d, mut m) = ([0u8; 32], [0u8; 32], [0u8; 32]);
        let ns = self.instant(tz, o.starts_at, 0, &mut s);
        let nd = self.instant(tz, o.due_at, 1, &mut d);
        let nm = o.met_at.map(|t| self.instant(tz, t, 2, &mut m));
        let starts = std::str::from_utf8(s.get(..ns).unwrap_or_default())?;
        let due = std::str::from_utf8(d.get(..nd).unwrap_or_default())?;
        let met = nm
            .map(|n| std::str::from_utf8(m.get(..n).unwrap_or_default()))
            .transpose()?;
        fn text(n: Option<&Name>) -> &str {
            n.map_or("-", Name::as_str)
        }
        // As `Occurrence` and `Obligation::key` display them, without the formatting machinery.
        self.occurrence.clear();
        if let Some((what, id)) = o.occurrence.from() {
            self.occurrence.push_str(what.as_str());
            self.occurrence.push('/');
            self.occurrence.push_str(id.as_str());
            if let Some(n) = o.occurrence.n() {
                write!(self.occurrence, "#{n}")?;
            }
        } else {
            write!(self.occurrence, "{}", o.occurrence.n().unwrap_or(0))?;
        }
        self.key.clear();
        for part in [
            o.of.board.as_str(),
            o.of.rule.as_str(),
            text(o.child),
            text(o.conference),
            text(o.agency),
        ] {
            self.key.push_str(part);
            self.key.push(':');
        }
        self.key.push_str(&self.occurrence);
        self.late.clear();
        if let Some(n) = o.late_working_days {
            write!(self.late, "{n}")?;
        }
        let late = o.late_working_days.map(|_| self.late.as_str());
        fn name(n: Option<&Name>) -> Option<&str> {
            n.map(Name::as_str)
        }
        match out {
            Out::Csv(csv) => {
                fn bytes(v: Option<&str>) -> &[u8] {
                    v.map_or(b"", str::as_bytes)
                }
                csv.write_record([
                    self.key.as_bytes(),
                    o.of.rule.as_bytes(),
                    o.of.title.as_bytes(),
                    o.of.kind.as_str().as_bytes(),
                    o.of.board.as_bytes(),
                    o.of.board_version.as_bytes(),
                    bytes(name(o.child)),
                    bytes(name(o.conference)),
                    bytes(name(o.agency)),
                    bytes(name(o.team)),
                    self.occurrence.as_bytes(),
                    starts.as_bytes(),
                    due.as_bytes(),
                    bytes(met),
                    o.status.as_str().as_bytes(),
                    bytes(late),
                    bytes(name(o.exception_reason.as_ref())),
                ])?;
            }
            Out::Bytes(buf) => {
                let pretty = self.shape == Shape::Json;
                let (open, sep, close): (&[u8], &[u8], &[u8]) = if pretty {
                    (b"    {\n      ", b",\n      ", b"\n    }")
                } else {
                    (b"{", b",", b"}\n")
                };
                if pretty && !first {
                    buf.extend_from_slice(b",\n");
                }
                buf.extend_from_slice(open);
                let field = |buf: &mut Vec<u8>, name: &str, v: Option<&str>| {
                    buf.push(b'"');
                    buf.extend_from_slice(name.as_bytes());
                    buf.extend_from_slice(if pretty { b"\": " } else { b"\":" });
                    match v {
                        Some(v) => json_string(buf, v),
                        None => {
                            buf.extend_from_slice(b"null");
                            Ok(())
                        }
                    }
                };
                field(buf, "key", Some(&self.key))?;
                let of = Arc::as_ptr(o.of);
                let rule = match self.rule_fields.entry(of) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        let mut b = Vec::new();
                        for (f, v) in [
                            ("rule", o.of.rule.as_str()),
                            ("title", o.of.title.as_str()),
                            ("kind", o.of.kind.as_str()),
                            ("board", o.of.board.as_str()),
                            ("board_version", o.of.board_version.as_str()),
                        ] {
                            b.extend_from_slice(sep);
                            field(&mut b, f, Some(v))?;
                        }
                        e.insert(b)
                    }
                };
                buf.extend_from_slice(rule);
                for (f, v) in [
                    ("child", name(o.child)),
                    ("conference", name(o.conference)),
                    ("agency", name(o.agency)),
                    ("team", name(o.team)),
                    ("occurrence", Some(self.occurrence.as_str())),
                    ("starts_at", Some(starts)),
                    ("due_at", Some(due)),
                    ("met_at", met),
                    ("status", Some(o.status.as_str())),
                ] {
                    buf.extend_from_slice(sep);
                    field(buf, f, v)?;
                }
                buf.extend_from_slice(sep);
                buf.extend_from_slice(if pretty {
                    b"\"late_working_days\": "
                } else {
                    b"\"late_working_days\":"
                });
                buf.extend_from_slice(late.unwrap_or("null").as_bytes());
                buf.extend_from_slice(sep);
                field(buf, "exception_reason", name(o.exception_reason.as_ref()))?;
                buf.extend_from_slice(close);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for s in [
            "",
            "plain",
            "Café – ok",
            "a \"quote\"",
            "back\\slash",
            "line\nbreak\ttab\u{1}\u{1f}",
            "\u{7f}\u{2028}",
        ] {
            let mut buf = Vec::new();
            json_string(&mut buf, s).expect("written");
            assert_eq!(
                String::from_utf8(buf).expect("utf8"),
                serde_json::to_string(s).expect("json"),
                "{s:?}"
            );
        }
    }

    /// The fast instant is chrono's, in zones with whole-hour, half-hour and
    /// 45-minute offsets and daylight saving, across transitions, before
    /// standard time (London's -00:01:15) and at year boundaries.
    #[test]
    fn instants_are_written_as_chrono_writes_them() {
        let rules = crate::domain::rules::built_in().expect("rules");
        let z = Zones::new(&rules, "working-together-2010");
        let mut f = Formatter::new(&z, Shape::Json);
        let zones = [
            Tz::Europe__London,
            Tz::America__New_York,
            Tz::Asia__Kolkata,
            Tz::Australia__Lord_Howe,
            Tz::Pacific__Chatham,
            Tz::America__St_Johns,
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut instants: Vec<i64> = (0..20_000)
            .map(|_| -4_000_000_000 + i64::try_from(next() % 8_500_000_000).unwrap_or(0))
            .collect();
        // Every quarter hour around the UK's and New York's changes of 2026.
        for base in [
            1_774_746_000i64,
            1_792_890_000,
            1_773_036_000,
            1_793_599_200,
        ] {
            instants.extend((-16..16).map(|k| base + k * 450 - 1));
        }
        // Each field's memory of the last quarter hour tried too (its `slot`).
        for (i, secs) in instants.into_iter().enumerate() {
            for tz in zones {
                let t = chrono::DateTime::from_timestamp(secs, 0).expect("instant");
                let mut out = [0u8; 32];
                let n = f.instant(tz, t, i % 3, &mut out);
                assert_eq!(
                    std::str::from_utf8(out.get(..n).expect("written")).expect("utf8"),
                    t.with_timezone(&tz)
                        .to_rfc3339_opts(SecondsFormat::Secs, false),
                    "{secs} in {tz}"
                );
            }
        }
    }
}
