//! The DfE Children in Need census (XML, every schema year from 2017),
//! read as a stream one `Child` at a time and mapped onto the case-state
//! contract. The mapping is in `docs/import.md`.

use std::collections::HashMap;
use std::io::BufRead;

use chrono::NaiveDate;
use quick_xml::events::Event as Xml;
use quick_xml::reader::Reader;

use super::{at, category, child_at, held, Imported, Rejected};
use crate::domain::case::*;

/// One leaf value of the file and where it was.
#[derive(Debug, Clone, Default)]
struct Value {
    text: String,
    path: String,
}

#[derive(Debug, Default)]
struct Section47 {
    start: Option<Value>,
    target: Option<Value>,
    icpc: Option<Value>,
    not_required: Option<Value>,
}

#[derive(Debug, Default)]
struct Plan {
    start: Option<Value>,
    end: Option<Value>,
    category: Option<Value>,
    initial_category: Option<Value>,
    reviews: Vec<Value>,
}

#[derive(Debug, Default)]
struct Cin {
    referral: Option<Value>,
    /// `DateOfInitialCPC` directly under `CINdetails` (the older schemas).
    icpc: Option<Value>,
    s47: Vec<Section47>,
    plans: Vec<Plan>,
}

#[derive(Debug, Default)]
struct ChildRecord {
    /// "Child[12]", for messages.
    place: String,
    id: Option<Value>,
    birth: Option<Value>,
    expected_birth: Option<Value>,
    cin: Vec<Cin>,
}

/// What the reader needs besides the file.
pub struct Options<'a> {
    pub file: &'a str,
    pub board: Option<&'a str>,
    /// Called with the bytes read so far, now and then, for a progress bar.
    pub progress: &'a mut dyn FnMut(u64),
}

/// Reads a census file. Malformed XML stops the whole read (nothing after it
/// can be trusted); a child whose values cannot be read is rejected with its
/// place, and the rest are read.
pub fn read(input: impl BufRead, o: Options<'_>) -> Result<Imported, String> {
    let mut r = Reader::from_reader(input);
    r.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut counts: Vec<HashMap<String, usize>> = vec![HashMap::new()];
    let mut text = String::new();
    let mut child: Option<ChildRecord> = None;
    let mut out = Imported::default();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut children = 0usize;
    loop {
        let event = r.read_event_into(&mut buf).map_err(|e| {
            format!(
                "{}: byte {}: the XML cannot be read: {e}",
                o.file,
                r.error_position()
            )
        })?;
        match event {
            Xml::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let n = counts.last_mut().map_or(1, |c| {
                    let n = c.entry(name.clone()).or_default();
                    *n += 1;
                    *n
                });
                counts.push(HashMap::new());
                stack.push(format!("{name}[{n}]"));
                text.clear();
                open(&name, &stack, &mut child, &mut children);
            }
            Xml::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                stack.push(name.clone());
                leaf(&name, "", &stack, &mut child);
                stack.pop();
            }
            Xml::Text(t) => {
                text = t
                    .unescape()
                    .map_err(|e| format!("{}: byte {}: {e}", o.file, r.buffer_position()))?
                    .into_owned();
            }
            Xml::CData(c) => text = String::from_utf8_lossy(&c).into_owned(),
            Xml::End(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                leaf(&name, &text, &stack, &mut child);
                text.clear();
                stack.pop();
                counts.pop();
                if name == "Child" {
                    if let Some(c) = child.take() {
                        out.read += 1;
                        let id = c.id.as_ref().map(|v| v.text.clone()).unwrap_or_default();
                        if let Some(first) = seen.get(&id).filter(|_| !id.is_empty()) {
                            out.rejected.push(Rejected {
                                place: format!("{}: {}", o.file, c.place),
                                reason: format!("LAchildID {id:?} appears twice (first at {first}); the first is kept"),
                            });
                        } else {
                            match rows(&c, o.board, &mut out.state) {
                                Ok(id) => {
                                    seen.insert(id, c.place.clone());
                                }
                                Err((place, reason)) => out.rejected.push(Rejected {
                                    place: format!("{}: {place}", o.file),
                                    reason,
                                }),
                            }
                        }
                    }
                    (o.progress)(r.buffer_position());
                }
            }
            Xml::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if children == 0 {
        return Err(format!(
            "{}: no <Child> element: not a Children in Need census file",
            o.file
        ));
    }
    Ok(out)
}

/// An element opens: a new child, or a new repeated part of one.
fn open(name: &str, stack: &[String], child: &mut Option<ChildRecord>, children: &mut usize) {
    let parent = stack.len().checked_sub(2).and_then(|i| stack.get(i));
    let c = match (name, child.as_mut()) {
        ("Child", _) => {
            *children += 1;
            *child = Some(ChildRecord {
                place: stack.join("/"),
                ..ChildRecord::default()
            });
            return;
        }
        (_, Some(c)) => c,
        _ => return,
    };
    match name {
        "CINdetails" => c.cin.push(Cin::default()),
        "Section47" => {
            if let Some(cin) = c.cin.last_mut() {
                cin.s47.push(Section47::default());
            }
        }
        "ChildProtectionPlans" if parent.is_some_and(|p| p.starts_with("CINdetails")) => {
            if let Some(cin) = c.cin.last_mut() {
                cin.plans.push(Plan::default());
            }
        }
        _ => {}
    }
}

/// A leaf element closes with its text.
fn leaf(name: &str, text: &str, stack: &[String], child: &mut Option<ChildRecord>) {
    let Some(c) = child.as_mut() else { return };
    let parent = stack
        .len()
        .checked_sub(2)
        .and_then(|i| stack.get(i))
        .map(|p| p.split('[').next().unwrap_or(p));
    let v = || {
        Some(Value {
            text: text.trim().to_string(),
            path: stack.join("/"),
        })
    };
    let cin = c.cin.last_mut();
    match (parent, name) {
        (Some("ChildIdentifiers"), "LAchildID") => c.id = v(),
        (Some("ChildIdentifiers"), "PersonBirthDate") => c.birth = v(),
        (Some("ChildIdentifiers"), "ExpectedPersonBirthDate") => c.expected_birth = v(),
        (Some("CINdetails"), "CINreferralDate") => {
            if let Some(cin) = cin {
                cin.referral = v();
            }
        }
        (Some("CINdetails"), "DateOfInitialCPC") => {
            if let Some(cin) = cin {
                cin.icpc = v();
            }
        }
        (Some("Section47"), field) => {
            if let Some(s) = cin.and_then(|x| x.s47.last_mut()) {
                match field {
                    "S47ActualStartDate" => s.start = v(),
                    "InitialCPCtarget" => s.target = v(),
                    "DateOfInitialCPC" => s.icpc = v(),
                    "ICPCnotRequired" => s.not_required = v(),
                    _ => {}
                }
            }
        }
        (Some("ChildProtectionPlans"), field) => {
            if let Some(p) = cin.and_then(|x| x.plans.last_mut()) {
                match field {
                    "CPPstartDate" => p.start = v(),
                    "CPPendDate" => p.end = v(),
                    "LatestCategoryOfAbuse" => p.category = v(),
                    "InitialCategoryOfAbuse" => p.initial_category = v(),
                    _ => {}
                }
            }
        }
        (Some("Reviews"), "CPPreviewDate") => {
            if let (Some(p), Some(x)) = (cin.and_then(|x| x.plans.last_mut()), v()) {
                p.reviews.push(x);
            }
        }
        _ => {}
    }
}

/// (place, reason) of a value that cannot be read.
type Bad = (String, String);

fn date(v: &Value) -> Result<NaiveDate, Bad> {
    // xs:date may carry a time zone (2022-05-01Z, 2022-05-01+01:00): the date is the first ten characters.
    let d = v.text.get(..10).unwrap_or(&v.text);
    let zone_ok = v.text.len() <= 10
        || matches!(v.text.get(10..), Some("Z"))
        || v.text.get(10..11).is_some_and(|s| s == "+" || s == "-");
    NaiveDate::parse_from_str(d, "%Y-%m-%d")
        .ok()
        .filter(|_| zone_ok)
        .ok_or_else(|| {
            (
                v.path.clone(),
                format!("{:?} is not a date (YYYY-MM-DD)", v.text),
            )
        })
}

fn opt_date(v: &Option<Value>) -> Result<Option<NaiveDate>, Bad> {
    v.as_ref()
        .filter(|v| !v.text.is_empty())
        .map(date)
        .transpose()
}

/// The census writes yes/no as true/false, TRUE/FALSE, 1/0 (and some
/// systems as Yes/No).
fn yes_no(v: &Value) -> Result<bool, Bad> {
    match v.text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" => Ok(true),
        "false" | "0" | "no" | "n" => Ok(false),
        _ => Err((
            v.path.clone(),
            format!("{:?} is not yes or no (true/false, 1/0)", v.text),
        )),
    }
}

/// The child's rows, added to `s`; its LAchildID. Nothing is added when a value cannot be read.
fn rows(c: &ChildRecord, board: Option<&str>, s: &mut CaseState) -> Result<String, Bad> {
    let id =
        c.id.as_ref()
            .map(|v| v.text.clone())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| (c.place.clone(), "LAchildID is missing".to_string()))?;
    let birth = opt_date(&c.birth)?;
    let expected = opt_date(&c.expected_birth)?;
    let mut out = CaseState::default();
    for (k, cin) in c.cin.iter().enumerate() {
        let k = k + 1;
        if let Some(referral) = opt_date(&cin.referral)? {
            out.referrals.push(Referral {
                id: format!("{id}/cin{k}/referral").into(),
                child_id: id.as_str().into(),
                received_at: at(referral),
                by_telephone: false,
                written_confirmation_at: None,
                acknowledged_at: None,
                next_steps_recorded_at: None,
                concern: None,
            });
        }
        let mut plans = Vec::new();
        for (m, p) in cin.plans.iter().enumerate() {
            let start = p.start.as_ref().map(date).transpose()?.ok_or_else(|| {
                (
                    format!(
                        "{}/CINdetails[{k}]/ChildProtectionPlans[{}]",
                        c.place,
                        m + 1
                    ),
                    "CPPstartDate is missing".to_string(),
                )
            })?;
            let end = opt_date(&p.end)?;
            let cat = p.category.as_ref().or(p.initial_category.as_ref());
            let plan_id = format!("{id}/cin{k}/cpp{}", m + 1);
            for (r, review) in p.reviews.iter().enumerate() {
                let d = date(review)?;
                let conf = format!("{plan_id}/review{}", r + 1);
                out.conferences.push(held(&conf, "review", d));
                out.conference_children.push(child_at(
                    &conf,
                    &id,
                    if Some(d) == end {
                        "plan_ended"
                    } else {
                        "plan_continues"
                    },
                    cat.map(|c| category(&c.text)),
                ));
            }
            plans.push((start, cat.map(|c| category(&c.text))));
            out.cp_plans.push(CpPlan {
                id: plan_id.into(),
                child_id: id.as_str().into(),
                started_on: start,
                ended_on: end,
                end_reason: None,
                category: cat.map(|c| category(&c.text).into()),
                visit_interval_working_days: None,
            });
        }
        // An initial conference is the one the section 47 enquiry led to,
        // or (the older schemas) the one recorded against the episode.
        let mut icpcs: Vec<(String, NaiveDate, Option<NaiveDate>)> = Vec::new();
        for (j, x) in cin.s47.iter().enumerate() {
            let sd = format!("{id}/cin{k}/s47-{}", j + 1);
            let start = x.start.as_ref().map(date).transpose()?.ok_or_else(|| {
                (
                    format!("{}/CINdetails[{k}]/Section47[{}]", c.place, j + 1),
                    "S47ActualStartDate is missing".to_string(),
                )
            })?;
            let not_required = x.not_required.as_ref().map(yes_no).transpose()? == Some(true);
            let target = opt_date(&x.target)?;
            let icpc = opt_date(&x.icpc)?;
            out.strategy_discussions.push(StrategyDiscussion {
                id: sd.as_str().into(),
                child_id: id.as_str().into(),
                held_at: at(start),
                s47_initiated: true,
                concern: None,
                child_seen_at: None,
                // The census records no date of the decision: an enquiry that
                // did not conclude a conference is unnecessary awaits one from
                // its start, as the Department's measure counts it.
                conference_decided_at: (!not_required).then(|| at(start)),
                record_circulated_at: None,
                conference_not_required: not_required,
            });
            if let Some(d) = icpc {
                icpcs.push((format!("{sd}/icpc"), d, target));
            }
        }
        // The episode's own date only where no enquiry carries one: the
        // same conference, recorded twice in the years that have both.
        if let Some(d) = opt_date(&cin.icpc)? {
            if icpcs.is_empty() {
                icpcs.push((format!("{id}/cin{k}/icpc"), d, None));
            }
        }
        for (conf, d, target) in icpcs {
            let unborn = birth.map_or(expected.is_some(), |b| d < b);
            let kind = if unborn { "pre_birth" } else { "initial" };
            out.conferences.push(Conference {
                target_on: target,
                ..held(&conf, kind, d)
            });
            let plan = plans.iter().find(|(start, _)| *start == d);
            out.conference_children.push(child_at(
                &conf,
                &id,
                if plan.is_some() { "plan" } else { "no_plan" },
                plan.and_then(|(_, c)| c.clone()),
            ));
        }
    }
    s.children.push(Child {
        id: id.as_str().into(),
        reference: id.as_str().into(),
        board: board.map(Text::from),
        date_of_birth: birth,
        expected_due_date: expected,
        allocated_worker_id: None,
        looked_after: false,
    });
    s.referrals.append(&mut out.referrals);
    s.strategy_discussions.append(&mut out.strategy_discussions);
    s.conferences.append(&mut out.conferences);
    s.conference_children.append(&mut out.conference_children);
    s.cp_plans.append(&mut out.cp_plans);
    Ok(id)
}
