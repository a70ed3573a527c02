//! Validation of one rule entry against the vocabulary: every event fits
//! its subject, every offset parses, every filter value is known. Each
//! problem is a [`RuleError`] at its place in the file.

use std::ops::Range;

use toml::Spanned;

use super::load::*;
use super::model::*;
use crate::domain::calendar::Offset;
use crate::domain::case::{
    CONCERNS, CONFERENCE_KINDS, CONFERENCE_STATUSES, OUTCOMES, PROFESSIONAL_GROUPS,
};

pub(super) fn check_list(
    src: &SourceText,
    field: &str,
    list: &Spanned<Vec<String>>,
    allowed: &[&str],
    errors: &mut Vec<RuleError>,
) {
    for v in list.get_ref() {
        if !allowed.contains(&v.as_str()) {
            errors.push(src.error(
                Some(list.span()),
                format!(
                    "{field}: unknown value {v:?} (expected one of: {})",
                    allowed.join(", ")
                ),
            ));
        }
    }
}

pub(super) fn check_opt_list(
    src: &SourceText,
    span: Range<usize>,
    field: &str,
    list: &Option<Vec<String>>,
    allowed: &[&str],
    errors: &mut Vec<RuleError>,
) {
    if let Some(list) = list {
        check_list(
            src,
            field,
            &Spanned::new(span, list.clone()),
            allowed,
            errors,
        );
    }
}

pub(super) fn check_offset(
    src: &SourceText,
    field: &str,
    s: &Spanned<String>,
    errors: &mut Vec<RuleError>,
) -> Option<Offset> {
    match s.get_ref().parse::<Offset>() {
        Ok(o) => Some(o),
        Err(e) => {
            errors.push(src.error(Some(s.span()), format!("{field}: {e}")));
            None
        }
    }
}

pub(super) fn check_event(
    src: &SourceText,
    field: &str,
    s: &Spanned<String>,
    subject: Option<Subject>,
    errors: &mut Vec<RuleError>,
) {
    let name = s.get_ref();
    match Event::parse(name) {
        None => {
            let known: Vec<&str> = Event::ALL.iter().map(|e| e.name()).collect();
            errors.push(src.error(
                Some(s.span()),
                format!(
                    "{field}: unknown event {name:?} (known events: {})",
                    known.join(", ")
                ),
            ));
        }
        Some(event) => {
            if let Some(subject) = subject {
                if !event.subjects().contains(&subject) {
                    let fits: Vec<&str> = event.subjects().iter().map(|s| s.name()).collect();
                    errors.push(src.error(
                        Some(s.span()),
                        format!("{field}: event {name:?} has no meaning for applies_to = {:?} (it fits: {})", subject.name(), fits.join(", ")),
                    ));
                }
            }
        }
    }
}

/// Checks the fields an entry sets, in the context of the rule they produce.
pub(super) fn validate_entry(
    src: &SourceText,
    entry: &RawRule,
    merged: &RawRule,
    is_new: bool,
    errors: &mut Vec<RuleError>,
) {
    check_id(src, entry, errors);
    let subject = merged.applies_to.as_ref().and_then(|a| {
        Subject::ALL
            .iter()
            .find(|(n, _)| n == a.get_ref())
            .map(|(_, s)| *s)
    });
    if let Some(a) = &entry.applies_to {
        if subject.is_none() {
            let known: Vec<&str> = Subject::ALL.iter().map(|(n, _)| *n).collect();
            errors.push(src.error(
                Some(a.span()),
                format!(
                    "applies_to: unknown subject {:?} (expected one of: {})",
                    a.get_ref(),
                    known.join(", ")
                ),
            ));
        }
    }
    if let Some(s) = &entry.source {
        let s = s.get_ref();
        if s.quote.trim().is_empty() || s.section.trim().is_empty() {
            errors.push(src.error(
                entry.source.as_ref().map(|s| s.span()),
                "source needs a section and a quote",
            ));
        }
    }
    check_events(src, entry, merged, subject, errors);
    check_offsets(src, entry, errors);
    if let Some(f) = &entry.filter {
        check_filter(src, f, errors);
    }
    if let Some(s) = &entry.standard {
        check_standard(src, s, errors);
    }
    if let Some(v) = &entry.void_when {
        check_list(src, "void_when", v, VOID_WHEN, errors);
    }
    for (field, list) in [("remind", &entry.remind), ("escalate", &entry.escalate)] {
        if let Some(list) = list {
            check_list(src, field, list, RECIPIENTS, errors);
        }
    }
    check_complete(src, entry, merged, is_new, errors);
}

fn check_id(src: &SourceText, entry: &RawRule, errors: &mut Vec<RuleError>) {
    let id = entry.id.get_ref();
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        errors.push(src.error(
            Some(entry.id.span()),
            format!("rule id {id:?} must be lower-case letters, digits and hyphens"),
        ));
    }
}

/// The events an entry sets fit its subject, and a changed subject still
/// fits the events it inherits.
fn check_events(
    src: &SourceText,
    entry: &RawRule,
    merged: &RawRule,
    subject: Option<Subject>,
    errors: &mut Vec<RuleError>,
) {
    let lapses = entry.lapses.as_ref().filter(|l| l.get_ref() != "never");
    for (field, ev) in [
        ("starts", &entry.starts),
        ("met_by", &entry.met_by),
        ("cap", &entry.cap),
        ("lapses", &lapses.cloned()),
    ] {
        if let Some(ev) = ev {
            check_event(src, field, ev, subject, errors);
        }
    }
    let (Some(a), Some(subject)) = (&entry.applies_to, subject) else {
        return;
    };
    for (field, inherited, own) in [
        ("starts", &merged.starts, &entry.starts),
        ("met_by", &merged.met_by, &entry.met_by),
        ("cap", &merged.cap, &entry.cap),
    ] {
        if let (None, Some(ev)) = (own, inherited) {
            let fits = Event::parse(ev.get_ref()).is_some_and(|e| e.subjects().contains(&subject));
            if !fits {
                errors.push(src.error(
                    Some(a.span()),
                    format!(
                        "applies_to = {:?} does not fit the inherited {field} event {:?}",
                        subject.name(),
                        ev.get_ref()
                    ),
                ));
            }
        }
    }
}

/// Offsets, windows, reminder leads and variants parse.
fn check_offsets(src: &SourceText, entry: &RawRule, errors: &mut Vec<RuleError>) {
    if let Some(o) = &entry.offset {
        check_offset(src, "offset", o, errors);
    }
    if let Some(o) = &entry.met_window {
        check_offset(src, "met_window", o, errors);
    }
    if let Some(l) = &entry.remind_before {
        if let Err(e) = parse_lead(l.get_ref()) {
            errors.push(src.error(Some(l.span()), format!("remind_before: {e}")));
        }
    }
    for v in entry.variant.iter().flatten() {
        let v = v.get_ref();
        check_list(
            src,
            "variant.conference_kind",
            &v.conference_kind,
            CONFERENCE_KINDS,
            errors,
        );
        check_offset(src, "variant.offset", &v.offset, errors);
    }
}

/// A list's field, its values and the values it may hold.
type ListCheck<'w> = (
    &'static str,
    &'w Option<Vec<String>>,
    &'static [&'static str],
);

/// Every value of a `where` list is one the contract knows.
fn check_filter(src: &SourceText, f: &Spanned<Filter>, errors: &mut Vec<RuleError>) {
    let w = f.get_ref();
    let lists: [ListCheck; 6] = [
        (
            "where.conference_kind",
            &w.conference_kind,
            CONFERENCE_KINDS,
        ),
        (
            "where.conference_status",
            &w.conference_status,
            CONFERENCE_STATUSES,
        ),
        ("where.agency_group", &w.agency_group, PROFESSIONAL_GROUPS),
        (
            "where.agency_group_not",
            &w.agency_group_not,
            PROFESSIONAL_GROUPS,
        ),
        ("where.outcome", &w.outcome, OUTCOMES),
        ("where.concern", &w.concern, CONCERNS),
    ];
    for (field, values, known) in lists {
        check_opt_list(src, f.span(), field, values, known, errors);
    }
}

fn check_standard(src: &SourceText, s: &Spanned<StandardSpec>, errors: &mut Vec<RuleError>) {
    if !STANDARDS.contains(&s.get_ref().check.as_str()) {
        errors.push(src.error(
            Some(s.span()),
            format!(
                "standard.check: unknown check {:?} (expected one of: {})",
                s.get_ref().check,
                STANDARDS.join(", ")
            ),
        ));
    }
    if let Some(g) = &s.get_ref().unborn_requires {
        if !PROFESSIONAL_GROUPS.contains(&g.as_str()) {
            errors.push(src.error(
                Some(s.span()),
                format!("standard.unborn_requires: unknown professional group {g:?}"),
            ));
        }
    }
}

/// What the resulting rule must have, reported at the entry that made it.
fn check_complete(
    src: &SourceText,
    entry: &RawRule,
    merged: &RawRule,
    is_new: bool,
    errors: &mut Vec<RuleError>,
) {
    let kind = merged
        .kind
        .as_ref()
        .map_or(RuleKind::Deadline, |k| *k.get_ref());
    let needed: &[(&str, bool)] = match kind {
        RuleKind::Standard => &[("standard", merged.standard.is_some())],
        RuleKind::Deadline | RuleKind::Recurring => &[
            ("starts", merged.starts.is_some()),
            ("offset", merged.offset.is_some()),
            ("met_by", merged.met_by.is_some()),
        ],
        RuleKind::Notice => &[
            ("starts", merged.starts.is_some()),
            ("offset", merged.offset.is_some()),
        ],
    };
    let always = [
        ("title", merged.title.is_some()),
        ("source", merged.source.is_some()),
        ("applies_to", merged.applies_to.is_some()),
    ];
    let missing: Vec<&str> = always
        .iter()
        .chain(needed)
        .filter(|(_, has)| !has)
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() {
        let what = if is_new { "rule" } else { "overridden rule" };
        errors.push(src.error(
            Some(entry.id.span()),
            format!(
                "{what} {:?} is missing {}",
                entry.id.get_ref(),
                missing.join(", ")
            ),
        ));
    }
}
