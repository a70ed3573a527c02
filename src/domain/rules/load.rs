//! Reading rule files: TOML with positions, `extends` resolved against the
//! parent's version in force, overrides applied, every entry validated, and
//! the resolved boards built.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arcstr::ArcStr;
use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;

use super::model::*;
use super::validate::*;
use super::BUILT_IN;
use crate::domain::calendar::Offset;

pub(super) struct SourceText {
    pub(super) name: String,
    pub(super) text: String,
}

impl SourceText {
    pub(super) fn error(
        &self,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> RuleError {
        let at = span.map_or(0, |s| s.start).min(self.text.len());
        let before = &self.text[..at];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        RuleError {
            file: self.name.clone(),
            line,
            column,
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------- raw files

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub(super) board: RawBoard,
    #[serde(default)]
    pub(super) rule: Vec<Spanned<RawRule>>,
    #[serde(default, rename = "override")]
    pub(super) overrides: Vec<Spanned<RawRule>>,
    #[serde(default)]
    pub(super) remove: Vec<Spanned<RawRemove>>,
}

/// `[[remove]]`: an inherited rule this board does not have, and why.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRemove {
    pub(super) id: Spanned<String>,
    pub(super) reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBoard {
    pub(super) id: Spanned<String>,
    pub(super) name: String,
    pub(super) extends: Option<Spanned<String>>,
    pub(super) version: String,
    pub(super) effective_from: Spanned<toml::value::Datetime>,
    #[serde(default = "default_calendar")]
    pub(super) calendar: Spanned<String>,
    #[serde(default = "default_tz")]
    pub(super) time_zone: Spanned<String>,
    pub(super) source: Spanned<String>,
    /// The procedure as people cite it: title, publisher, date or version.
    pub(super) document: Option<String>,
    /// Where the procedure's text is reproduced, when `source` is a reproduction.
    pub(super) reproduced_in: Option<String>,
    pub(super) due_soon: Option<Spanned<String>>,
}

pub(super) fn default_calendar() -> Spanned<String> {
    Spanned::new(0..0, "england-and-wales".to_string())
}

pub(super) fn default_tz() -> Spanned<String> {
    Spanned::new(0..0, "Europe/London".to_string())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVariant {
    pub(super) conference_kind: Spanned<Vec<String>>,
    pub(super) offset: Spanned<String>,
    pub(super) source: Option<Spanned<Source>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub(super) id: Spanned<String>,
    pub(super) title: Option<Spanned<String>>,
    pub(super) kind: Option<Spanned<RuleKind>>,
    pub(super) source: Option<Spanned<Source>>,
    pub(super) applies_to: Option<Spanned<String>>,
    #[serde(rename = "where")]
    pub(super) filter: Option<Spanned<Filter>>,
    pub(super) starts: Option<Spanned<String>>,
    pub(super) offset: Option<Spanned<String>>,
    pub(super) variant: Option<Vec<Spanned<RawVariant>>>,
    pub(super) met_by: Option<Spanned<String>>,
    pub(super) met_window: Option<Spanned<String>>,
    pub(super) cap: Option<Spanned<String>>,
    pub(super) standard: Option<Spanned<StandardSpec>>,
    pub(super) void_when: Option<Spanned<Vec<String>>>,
    /// An event, or "never".
    pub(super) lapses: Option<Spanned<String>>,
    pub(super) remind: Option<Spanned<Vec<String>>>,
    pub(super) escalate: Option<Spanned<Vec<String>>>,
    pub(super) remind_before: Option<Spanned<String>>,
    pub(super) audit_by: Option<Spanned<AuditBy>>,
    /// The rule file that last set the rule (added or overrode it).
    #[serde(skip)]
    pub(super) defined_in: Option<String>,
}

macro_rules! overlay {
    ($base:expr, $top:expr, $($field:ident),*) => {
        $( if $top.$field.is_some() { $base.$field = $top.$field.clone(); } )*
    };
}

impl RawRule {
    pub(super) fn overlay(&mut self, top: &RawRule) {
        overlay!(
            self,
            top,
            title,
            kind,
            source,
            applies_to,
            filter,
            starts,
            offset,
            variant,
            met_by,
            met_window,
            cap,
            standard,
            void_when,
            lapses,
            remind,
            escalate,
            remind_before,
            audit_by
        );
    }
}

pub(super) struct ParsedFile {
    pub(super) src: SourceText,
    pub(super) raw: RawFile,
    pub(super) effective_from: NaiveDate,
    pub(super) tz: Tz,
}

// ------------------------------------------------------------------ loading

/// Loads every `*.toml` file of a directory.
pub fn load_dir(dir: &Path) -> Result<RuleSet, RuleErrors> {
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) => {
            return Err(RuleErrors(vec![RuleError {
                file: dir.display().to_string(),
                line: 0,
                column: 0,
                message: format!("cannot read the rules directory: {e}"),
            }]))
        }
    };
    entries.sort();
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in entries {
        match std::fs::read_to_string(&path) {
            Ok(text) => files.push((path.display().to_string(), text)),
            Err(e) => errors.push(RuleError {
                file: path.display().to_string(),
                line: 0,
                column: 0,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    if files.is_empty() && errors.is_empty() {
        errors.push(RuleError {
            file: dir.display().to_string(),
            line: 0,
            column: 0,
            message: "no *.toml rule files in this directory".into(),
        });
    }
    if !errors.is_empty() {
        return Err(RuleErrors(errors));
    }
    load_texts(files)
}

/// The rule files built into the binary.
pub fn built_in() -> Result<RuleSet, RuleErrors> {
    load_texts(
        BUILT_IN
            .iter()
            .map(|(n, t)| (format!("<built-in>/{n}"), t.to_string()))
            .collect(),
    )
}

/// Parses, resolves and validates a set of rule files given as (name, text).
pub fn load_texts(files: Vec<(String, String)>) -> Result<RuleSet, RuleErrors> {
    let mut errors = Vec::new();
    let mut parsed = Vec::new();
    let mut digest_input = String::new();
    for (name, text) in files {
        digest_input.push_str(&name);
        digest_input.push_str(&text);
        let src = SourceText { name, text };
        match parse_file(&src) {
            Ok((raw, effective_from, tz)) => parsed.push(ParsedFile {
                src,
                raw,
                effective_from,
                tz,
            }),
            Err(e) => errors.extend(e),
        }
    }
    errors.extend(check_boards(&parsed));
    errors.extend(find_cycles(&parsed));
    if !errors.is_empty() {
        return Err(RuleErrors(errors));
    }

    let mut resolved: HashMap<usize, (Vec<RawRule>, Vec<Removed>)> = HashMap::new();
    let mut boards: BTreeMap<String, Vec<Arc<Board>>> = BTreeMap::new();
    let order = resolution_order(&parsed);
    for i in order {
        let Some(f) = parsed.get(i) else { continue };
        let parent_rules = f.raw.board.extends.as_ref().and_then(|p| {
            parent_version(&parsed, p.get_ref(), f.effective_from)
                .and_then(|pi| resolved.get(&pi).cloned())
        });
        let (rules, removed) = parent_rules.unwrap_or_default();
        let (rules, removed, errs) = resolve_file(f, rules, removed);
        errors.extend(errs);
        match build_board(f, &rules, &removed) {
            Ok(board) => boards
                .entry(board.id.clone())
                .or_default()
                .push(Arc::new(board)),
            Err(e) => errors.extend(e),
        }
        resolved.insert(i, (rules, removed));
    }
    if !errors.is_empty() {
        errors.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        errors.dedup();
        return Err(RuleErrors(errors));
    }
    for versions in boards.values_mut() {
        versions.sort_by_key(|b| b.effective_from);
    }
    Ok(RuleSet {
        boards,
        digest: fnv_hex(&digest_input),
    })
}

/// Each board version is defined once, and every board a file extends exists.
fn check_boards(parsed: &[ParsedFile]) -> Vec<RuleError> {
    let mut errors = Vec::new();
    let mut seen: HashMap<(String, String), String> = HashMap::new();
    for f in parsed {
        let key = (
            f.raw.board.id.get_ref().clone(),
            f.raw.board.version.clone(),
        );
        if let Some(other) = seen.insert(key.clone(), f.src.name.clone()) {
            errors.push(f.src.error(
                Some(f.raw.board.id.span()),
                format!(
                    "board {:?} version {:?} is also defined in {other}",
                    key.0, key.1
                ),
            ));
        }
    }
    let ids: HashSet<String> = parsed
        .iter()
        .map(|f| f.raw.board.id.get_ref().clone())
        .collect();
    for f in parsed {
        if let Some(parent) = &f.raw.board.extends {
            if !ids.contains(parent.get_ref()) {
                errors.push(f.src.error(
                    Some(parent.span()),
                    format!(
                        "extends unknown board {:?} (known: {})",
                        parent.get_ref(),
                        sorted_join(&ids)
                    ),
                ));
            }
        }
    }
    errors
}

pub(super) fn sorted_join(ids: &HashSet<String>) -> String {
    let mut v: Vec<&str> = ids.iter().map(String::as_str).collect();
    v.sort_unstable();
    v.join(", ")
}

/// FNV-1a, 64 bit: a stable fingerprint of the rule files for reports.
pub fn fnv_hex(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

pub(super) fn parse_file(src: &SourceText) -> Result<(RawFile, NaiveDate, Tz), Vec<RuleError>> {
    let raw: RawFile = toml::from_str(&src.text)
        .map_err(|e| vec![src.error(e.span(), e.message().trim().to_string())])?;
    let mut errors = Vec::new();
    let date_text = raw.board.effective_from.get_ref().to_string();
    let effective_from = match NaiveDate::parse_from_str(&date_text, "%Y-%m-%d") {
        Ok(d) => d,
        Err(_) => {
            errors.push(src.error(
                Some(raw.board.effective_from.span()),
                format!("effective_from {date_text:?} must be a date like 2024-06-03"),
            ));
            NaiveDate::MIN
        }
    };
    let tz: Tz = match raw.board.time_zone.get_ref().parse() {
        Ok(tz) => tz,
        Err(_) => {
            errors.push(src.error(
                Some(raw.board.time_zone.span()),
                format!(
                    "unknown time zone {:?} (an IANA name such as Europe/London)",
                    raw.board.time_zone.get_ref()
                ),
            ));
            Tz::Europe__London
        }
    };
    if raw.board.source.get_ref().trim().is_empty() {
        errors.push(src.error(
            Some(raw.board.source.span()),
            "board source (the procedure document) is empty",
        ));
    }
    if let Some(d) = &raw.board.due_soon {
        if let Err(e) = parse_lead(d.get_ref()) {
            errors.push(src.error(Some(d.span()), format!("due_soon: {e}")));
        }
    }
    let cal = raw.board.calendar.get_ref();
    if !["england-and-wales", "scotland", "northern-ireland"].contains(&cal.as_str()) {
        errors.push(src.error(
            Some(raw.board.calendar.span()),
            format!("unknown calendar {cal:?} (england-and-wales, scotland or northern-ireland)"),
        ));
    }
    let mut ids = HashSet::new();
    for r in raw.rule.iter().chain(raw.overrides.iter()) {
        let id = r.get_ref().id.get_ref();
        if !ids.insert(id.clone()) {
            errors.push(src.error(
                Some(r.get_ref().id.span()),
                format!("rule {id:?} appears twice in this file"),
            ));
        }
    }
    if errors.is_empty() {
        Ok((raw, effective_from, tz))
    } else {
        Err(errors)
    }
}

/// A lead time such as `3 working days` or `3 months` (counted back from a deadline).
pub fn parse_lead(text: &str) -> Result<Offset, String> {
    format!("-{}", text.trim()).parse::<Offset>()
}

pub(super) fn find_cycles(parsed: &[ParsedFile]) -> Vec<RuleError> {
    let mut edges: HashMap<&str, &str> = HashMap::new();
    for f in parsed {
        if let Some(p) = &f.raw.board.extends {
            edges.insert(f.raw.board.id.get_ref(), p.get_ref());
        }
    }
    let mut errors = Vec::new();
    for f in parsed {
        let Some(parent) = &f.raw.board.extends else {
            continue;
        };
        let start = f.raw.board.id.get_ref().as_str();
        let mut chain = vec![start];
        let mut at = parent.get_ref().as_str();
        while let Some(next) = Some(at) {
            if chain.contains(&next) {
                if next == start {
                    chain.push(next);
                    errors.push(f.src.error(
                        Some(parent.span()),
                        format!("extends forms a cycle: {}", chain.join(" -> ")),
                    ));
                }
                break;
            }
            chain.push(next);
            match edges.get(next) {
                Some(n) => at = n,
                None => break,
            }
        }
    }
    errors
}

pub(super) fn parent_version(parsed: &[ParsedFile], parent: &str, on: NaiveDate) -> Option<usize> {
    let mut candidates: Vec<(usize, NaiveDate)> = parsed
        .iter()
        .enumerate()
        .filter(|(_, f)| f.raw.board.id.get_ref() == parent)
        .map(|(i, f)| (i, f.effective_from))
        .collect();
    candidates.sort_by_key(|c| c.1);
    candidates
        .iter()
        .rev()
        .find(|c| c.1 <= on)
        .or_else(|| candidates.first())
        .map(|c| c.0)
}

pub(super) fn resolution_order(parsed: &[ParsedFile]) -> Vec<usize> {
    pub(super) fn depth(parsed: &[ParsedFile], i: usize, guard: usize) -> usize {
        let Some(f) = parsed.get(i) else { return 0 };
        match &f.raw.board.extends {
            Some(p) if guard < parsed.len() => {
                parent_version(parsed, p.get_ref(), f.effective_from)
                    .map_or(0, |pi| 1 + depth(parsed, pi, guard + 1))
            }
            _ => 0,
        }
    }
    let mut order: Vec<usize> = (0..parsed.len()).collect();
    order.sort_by_key(|&i| depth(parsed, i, 0));
    order
}

/// An entry whose source names no seed file quotes its own board's document.
/// The entry with its sources completed from the board that sets it: the
/// procedure's file (when the source names none) and the document.
pub(super) fn with_source_file(entry: &RawRule, board: &RawBoard) -> RawRule {
    let document = board.document.as_ref().map(|title| Document {
        title: title.clone(),
        reproduced_in: board.reproduced_in.clone(),
    });
    let complete = |s: &mut Source| {
        s.file
            .get_or_insert_with(|| board.source.get_ref().to_string());
        s.document = document.clone();
    };
    let mut e = entry.clone();
    if let Some(src) = e.source.as_mut() {
        let span = src.span();
        let mut value = src.get_ref().clone();
        complete(&mut value);
        *src = Spanned::new(span, value);
    }
    for v in e.variant.iter_mut().flatten() {
        let span = v.span();
        let mut value = v.get_ref().clone();
        if let Some(s) = value.source.as_mut() {
            let sspan = s.span();
            let mut sv = s.get_ref().clone();
            complete(&mut sv);
            *s = Spanned::new(sspan, sv);
        }
        *v = Spanned::new(span, value);
    }
    e
}

pub(super) fn resolve_file(
    f: &ParsedFile,
    mut rules: Vec<RawRule>,
    mut removed: Vec<Removed>,
) -> (Vec<RawRule>, Vec<Removed>, Vec<RuleError>) {
    let mut errors = Vec::new();
    let parent_name = f
        .raw
        .board
        .extends
        .as_ref()
        .map_or("", |p| p.get_ref().as_str());
    for entry in &f.raw.remove {
        let entry = entry.get_ref();
        let id = entry.id.get_ref();
        let Some(pos) = rules.iter().position(|r| r.id.get_ref() == id) else {
            errors.push(f.src.error(
                Some(entry.id.span()),
                format!("remove of rule {id:?}, which is not inherited from {parent_name:?}"),
            ));
            continue;
        };
        if entry.reason.trim().is_empty() {
            errors.push(f.src.error(
                Some(entry.id.span()),
                format!("remove of rule {id:?} needs a reason, shown wherever the rule is missed"),
            ));
            continue;
        }
        rules.remove(pos);
        removed.push(Removed {
            id: id.clone(),
            reason: entry.reason.trim().to_string(),
            file: f.src.name.clone(),
        });
    }
    for entry in &f.raw.rule {
        let entry = entry.get_ref();
        let id = entry.id.get_ref();
        if rules.iter().any(|r| r.id.get_ref() == id) {
            errors.push(f.src.error(
                Some(entry.id.span()),
                format!("rule {id:?} is inherited from {parent_name}: change it with [[override]], not [[rule]]"),
            ));
            continue;
        }
        // A board may define afresh a rule its parent has, after removing it.
        removed.retain(|r| r.id != *id);
        let before = errors.len();
        validate_entry(&f.src, entry, entry, true, &mut errors);
        if errors.len() == before {
            let mut rule = with_source_file(entry, &f.raw.board);
            rule.defined_in = Some(f.src.name.clone());
            rules.push(rule);
        }
    }
    for entry in &f.raw.overrides {
        let entry = entry.get_ref();
        let id = entry.id.get_ref();
        let Some(pos) = rules.iter().position(|r| r.id.get_ref() == id) else {
            let known: Vec<&str> = rules.iter().map(|r| r.id.get_ref().as_str()).collect();
            errors.push(f.src.error(
                Some(entry.id.span()),
                if parent_name.is_empty() {
                    format!("override of unknown rule {id:?}: this board extends nothing")
                } else {
                    format!("override of unknown rule {id:?}: {parent_name} has no such rule (it has: {})", known.join(", "))
                },
            ));
            continue;
        };
        let Some(rule) = rules.get_mut(pos) else {
            continue;
        };
        let mut merged = rule.clone();
        merged.overlay(&with_source_file(entry, &f.raw.board));
        merged.id = entry.id.clone();
        merged.defined_in = Some(f.src.name.clone());
        let before = errors.len();
        validate_entry(&f.src, entry, &merged, false, &mut errors);
        if errors.len() == before {
            *rule = merged;
        }
    }
    (rules, removed, errors)
}

pub(super) fn build_board(
    f: &ParsedFile,
    rules: &[RawRule],
    removed: &[Removed],
) -> Result<Board, Vec<RuleError>> {
    let b = &f.raw.board;
    let due_soon = b
        .due_soon
        .as_ref()
        .map_or_else(|| parse_lead("3 working days"), |d| parse_lead(d.get_ref()));
    let mut errors = Vec::new();
    let mut built = Vec::new();
    for r in rules {
        match build_rule(r, &f.src.name) {
            Some(rule) => built.push(rule),
            None => errors.push(f.src.error(
                Some(r.id.span()),
                format!("rule {:?} could not be built", r.id.get_ref()),
            )),
        }
    }
    let due_soon = match due_soon {
        Ok(d) => d,
        Err(e) => {
            errors.push(f.src.error(b.due_soon.as_ref().map(|d| d.span()), e));
            return Err(errors);
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let (id, version) = (
        ArcStr::from(b.id.get_ref().as_str()),
        ArcStr::from(b.version.as_str()),
    );
    let refs = built
        .iter()
        .map(|r| {
            Arc::new(RuleRef::new(
                ArcStr::from(r.id.as_str()),
                ArcStr::from(r.title.as_str()),
                r.kind,
                id.clone(),
                version.clone(),
            ))
        })
        .collect();
    Ok(Board {
        id: b.id.get_ref().clone(),
        name: b.name.clone(),
        version: b.version.clone(),
        effective_from: f.effective_from,
        extends: b.extends.as_ref().map(|e| e.get_ref().clone()),
        calendar: b.calendar.get_ref().clone(),
        time_zone: f.tz,
        source: b.source.get_ref().clone(),
        due_soon,
        rules: built,
        removed: removed.to_vec(),
        file: f.src.name.clone(),
        refs,
    })
}

pub(super) fn build_rule(r: &RawRule, file: &str) -> Option<Rule> {
    let subject = r.applies_to.as_ref().and_then(|a| {
        Subject::ALL
            .iter()
            .find(|(n, _)| n == a.get_ref())
            .map(|(_, s)| *s)
    })?;
    let source = r.source.as_ref()?.get_ref().clone();
    let offset = match &r.offset {
        Some(o) => Some(o.get_ref().parse::<Offset>().ok()?),
        None => None,
    };
    let variants = r
        .variant
        .iter()
        .flatten()
        .map(|v| {
            let v = v.get_ref();
            Some(Variant {
                conference_kind: v.conference_kind.get_ref().clone(),
                offset: v.offset.get_ref().parse().ok()?,
                source: v.source.as_ref().map(|s| s.get_ref().clone()),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let kind = r.kind.as_ref().map_or(RuleKind::Deadline, |k| *k.get_ref());
    let starts = match &r.starts {
        Some(e) => Some(Event::parse(e.get_ref())?),
        None => None,
    };
    let lapses = match r.lapses.as_ref().map(|l| l.get_ref().as_str()) {
        Some("never") => None,
        Some(e) => Some(Event::parse(e)?),
        None => default_lapse(kind, starts, offset.as_ref()),
    };
    Some(Rule {
        id: r.id.get_ref().clone(),
        title: r.title.as_ref()?.get_ref().clone(),
        kind,
        source,
        subject,
        filter: r
            .filter
            .as_ref()
            .map(|f| f.get_ref().clone())
            .unwrap_or_default(),
        starts,
        offset,
        variants,
        met_by: match &r.met_by {
            Some(e) => Some(Event::parse(e.get_ref())?),
            None => None,
        },
        met_window: match &r.met_window {
            Some(o) => Some(o.get_ref().parse().ok()?),
            None => None,
        },
        cap: match &r.cap {
            Some(e) => Some(Event::parse(e.get_ref())?),
            None => None,
        },
        standard: r.standard.as_ref().map(|s| s.get_ref().clone()),
        void_when: match &r.void_when {
            Some(v) => v
                .get_ref()
                .iter()
                .map(|w| Void::parse(w))
                .collect::<Option<_>>()?,
            None => Vec::new(),
        },
        lapses,
        remind: r
            .remind
            .as_ref()
            .map(|v| v.get_ref().clone())
            .unwrap_or_default(),
        escalate: r
            .escalate
            .as_ref()
            .map(|v| v.get_ref().clone())
            .unwrap_or_default(),
        remind_before: match &r.remind_before {
            Some(l) => Some(parse_lead(l.get_ref()).ok()?),
            None => None,
        },
        audit_by: r.audit_by.as_ref().map(|a| *a.get_ref()),
        defined_in: r.defined_in.clone().unwrap_or_else(|| file.to_string()),
        latest_only: false,
    })
}

/// When a duty lapses if a rule file does not say: one due before a
/// conference (counted back from it) lapses when the conference is held,
/// since the conference then goes ahead without it; others can be met late
/// and never lapse.
fn default_lapse(kind: RuleKind, starts: Option<Event>, offset: Option<&Offset>) -> Option<Event> {
    let before = matches!(
        offset.map(|o| &o.amount),
        Some(crate::domain::calendar::Amount::Fixed(n)) if *n < 0
    );
    let from_conference = matches!(
        starts,
        Some(Event::ConferenceDate | Event::ConferenceHeldAt)
    );
    (kind == RuleKind::Deadline && before && from_conference).then_some(Event::ConferenceHeldAt)
}

/// Checks every quote of every rule in force against the source documents in
/// `dir` (each rule's `source.file`, as the rule files name them): the
/// quote must appear in its document, compared with runs of white space
/// folded, emphasis marks dropped and curly apostrophes made straight, as
/// documents converted to text differ in those. One message a problem.
pub fn check_sources(set: &RuleSet, dir: &Path) -> Vec<String> {
    let mut documents: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for b in set.boards.values().flatten() {
        for r in &b.rules {
            let sources = std::iter::once(&r.source)
                .chain(r.variants.iter().filter_map(|v| v.source.as_ref()));
            for s in sources {
                let file = s.file.as_deref().unwrap_or(&b.source);
                let text = documents.entry(file.to_string()).or_insert_with(|| {
                    std::fs::read_to_string(dir.join(file))
                        .ok()
                        .map(|t| quote_text(&t))
                });
                match text {
                    None => problems.push(format!(
                        "{}: {} {}: the source document {} is not in {}",
                        r.defined_in,
                        b.id,
                        r.id,
                        file,
                        dir.display()
                    )),
                    Some(t) if !t.contains(&quote_text(&s.quote)) => problems.push(format!(
                        "{}: {} {} ({}): the quote {:?} is not in {}",
                        r.defined_in, b.id, r.id, s.section, s.quote, file
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    problems.sort();
    problems.dedup();
    problems
}

/// Text as [`check_sources`] compares it.
fn quote_text(s: &str) -> String {
    let s = s.replace('*', "").replace(['\u{2019}', '\u{2018}'], "'");
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
