//! Ofsted's Annex A (the workbook an authority produces for an inspection):
//! List 5 (section 47 enquiries and initial conferences), List 6 (children
//! in need) and List 7 (children on plans, with the last statutory visit and
//! the latest review), each found by its header text wherever it is in the
//! workbook, and mapped onto the case-state contract. The mapping is in
//! `docs/import.md`.

use std::collections::HashMap;
use std::path::Path;

use calamine::{open_workbook_auto, Data, DataType, Range, Reader};
use chrono::NaiveDate;

use super::{at, category, child_at, held, Imported, Rejected};
use crate::domain::case::*;

/// The lists read, in the order their facts are preferred (a child's team
/// from its plan before its enquiry before its episode of need).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum List {
    Seven,
    Five,
    Six,
}

impl List {
    fn name(self) -> &'static str {
        match self {
            List::Five => "List 5",
            List::Six => "List 6",
            List::Seven => "List 7",
        }
    }

    /// The header that tells the list apart from the others (as words, see `norm`).
    fn marker(self) -> &'static [&'static str] {
        match self {
            List::Five => &["section 47", "start"],
            List::Six => &["cin start date"],
            List::Seven => &["protection plan start date"],
        }
    }
}

/// A header cell as words: lower case, punctuation dropped, spaces (the
/// non-breaking ones too) collapsed, so "Child  Unique ID:" is "child unique id".
fn norm(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect();
    mapped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The column whose header holds every one of `words` and none of `not`.
fn column(headers: &[String], words: &[&str], not: &[&str]) -> Option<usize> {
    headers
        .iter()
        .position(|h| words.iter().all(|w| h.contains(w)) && !not.iter().any(|w| h.contains(w)))
}

/// Rows above a list's headers that a title or notes may take.
const HEADER_SEARCH: usize = 20;

/// One sheet's list: its headers' row and the columns found.
struct Found {
    list: List,
    header_row: usize,
    columns: HashMap<&'static str, usize>,
    headers: Vec<String>,
}

/// The columns each list is read by, as (field, header words, words the header must not hold).
fn wanted(
    list: List,
) -> &'static [(
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
)] {
    const COMMON: [(&str, &[&str], &[&str]); 4] = [
        ("id", &["child", "id"], &[]),
        ("dob", &["date", "birth"], &[]),
        ("team", &["allocated team"], &[]),
        ("worker", &["allocated worker"], &[]),
    ];
    const FIVE: [(&str, &[&str], &[&str]); 8] = [
        COMMON[0],
        COMMON[1],
        COMMON[2],
        COMMON[3],
        ("s47", &["section 47", "start"], &["number"]),
        ("unnecessary", &["unnecessary"], &[]),
        (
            "icpc",
            &["date", "initial child protection conference"],
            &["number"],
        ),
        ("plan", &["result", "plan"], &[]),
    ];
    const SIX: [(&str, &[&str], &[&str]); 5] = [
        COMMON[0],
        COMMON[1],
        COMMON[2],
        COMMON[3],
        ("cin_start", &["cin start date"], &[]),
    ];
    const SEVEN: [(&str, &[&str], &[&str]); 11] = [
        COMMON[0],
        COMMON[1],
        COMMON[2],
        COMMON[3],
        ("start", &["plan start date"], &[]),
        ("initial_category", &["initial category"], &[]),
        ("latest_category", &["latest category"], &[]),
        ("visit", &["last statutory visit"], &[]),
        ("seen_alone", &["seen alone"], &[]),
        ("review", &["latest review"], &[]),
        ("end", &["plan end date"], &[]),
    ];
    match list {
        List::Five => &FIVE,
        List::Six => &SIX,
        List::Seven => &SEVEN,
    }
}

/// The fields without which a row of the list means nothing.
fn required(list: List) -> &'static [&'static str] {
    match list {
        List::Five => &["id", "s47"],
        List::Six => &["id"],
        List::Seven => &["id", "start"],
    }
}

/// The list a sheet holds, found by the headers of one of its first rows.
fn find(range: &Range<Data>) -> Option<Found> {
    for (i, row) in range.rows().take(HEADER_SEARCH).enumerate() {
        let headers: Vec<String> = row.iter().map(|c| norm(&text(c))).collect();
        for list in [List::Five, List::Seven, List::Six] {
            if column(&headers, list.marker(), &["number"]).is_none() {
                continue;
            }
            let columns: HashMap<&'static str, usize> = wanted(list)
                .iter()
                .filter_map(|(field, words, not)| Some((*field, column(&headers, words, not)?)))
                .collect();
            if required(list).iter().all(|f| columns.contains_key(f)) {
                return Some(Found {
                    list,
                    header_row: i,
                    columns,
                    headers,
                });
            }
        }
    }
    None
}

/// A cell as text: a whole number without its decimal point (an id typed as a number).
fn text(c: &Data) -> String {
    match c {
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        Data::Empty => String::new(),
        other => other.as_string().unwrap_or_default().trim().to_string(),
    }
}

/// A date as Excel keeps it (a date cell, or a serial number) or as text in
/// the shapes authorities type.
fn date(c: &Data) -> Result<Option<NaiveDate>, String> {
    let serial = |f: f64| {
        calamine::ExcelDateTime::new(f, calamine::ExcelDateTimeType::DateTime, false)
            .as_datetime()
            .map(|d| d.date())
    };
    match c {
        Data::Empty => Ok(None),
        Data::DateTime(d) => Ok(d.as_datetime().map(|d| d.date())),
        Data::Float(f) if *f > 0.0 => Ok(serial(*f)),
        Data::Int(n) if *n > 0 => Ok(serial(*n as f64)),
        other => {
            let t = text(other);
            let t = t.trim();
            if t.is_empty() {
                return Ok(None);
            }
            // A date written with its time: only the date counts.
            let day = t.split(['T', ' ']).next().unwrap_or(t);
            const SHAPES: [&str; 5] = ["%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y", "%d/%m/%y"];
            SHAPES
                .iter()
                .find_map(|f| NaiveDate::parse_from_str(day, f).ok())
                .or_else(|| {
                    ["%d %b %Y", "%d %B %Y", "%d-%b-%Y", "%d-%b-%y"]
                        .iter()
                        .find_map(|f| NaiveDate::parse_from_str(t, f).ok())
                })
                .map(Some)
                .ok_or_else(|| format!("{t:?} is not a date (a date cell, or dd/mm/yyyy)"))
        }
    }
}

/// Yes or no as Annex A writes it: "Yes", "Y", "a) Yes", "b) No", TRUE, 1.
fn yes_no(c: &Data) -> Result<Option<bool>, String> {
    if let Data::Bool(b) = c {
        return Ok(Some(*b));
    }
    let t = text(c);
    let mut v = t.trim();
    // The lettered choices of the workbook's drop-down lists: "a) Yes".
    if let Some((prefix, rest)) = v.split_once(')') {
        if prefix.trim().chars().all(|c| c.is_ascii_alphabetic()) && prefix.trim().len() == 1 {
            v = rest.trim();
        }
    }
    match v.to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "yes" | "y" | "true" | "1" => Ok(Some(true)),
        "no" | "n" | "false" | "0" => Ok(Some(false)),
        _ => Err(format!("{t:?} is not yes or no")),
    }
}

/// Excel's name of a column: A, B, … Z, AA.
fn letter(mut col: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + u8::try_from(col % 26).unwrap_or(0));
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    s.reverse();
    String::from_utf8_lossy(&s).into_owned()
}

#[derive(Debug, Default)]
struct S47 {
    start: NaiveDate,
    unnecessary: Option<bool>,
    icpc: Option<NaiveDate>,
    plan: Option<bool>,
}

#[derive(Debug, Default)]
struct PlanRow {
    start: NaiveDate,
    end: Option<NaiveDate>,
    category: Option<String>,
    visit: Option<NaiveDate>,
    seen_alone: Option<bool>,
    review: Option<NaiveDate>,
}

#[derive(Debug, Default)]
struct ChildRows {
    dob: Option<NaiveDate>,
    /// (list, team, worker): the team and worker of each list that names one.
    allocation: Vec<(List, String, String)>,
    s47: Vec<S47>,
    cin: Vec<NaiveDate>,
    plans: Vec<PlanRow>,
    /// Where each record was first read, by its key, to place a repeat.
    places: HashMap<String, String>,
}

/// What the reader needs besides the file.
pub struct Options<'a> {
    pub file: &'a str,
    pub board: Option<&'a str>,
    /// Called with each sheet's name as it is read, for a progress display.
    pub progress: &'a mut dyn FnMut(&str),
}

/// Reads Lists 5, 6 and 7 of a workbook. A row whose values cannot be read
/// is rejected with its sheet, row and column, and the rest are read; a
/// workbook with none of the three lists is refused whole.
pub fn read(path: &Path, o: Options<'_>) -> Result<Imported, String> {
    let mut wb = open_workbook_auto(path).map_err(|e| {
        format!(
            "{}: cannot be read as a workbook (xlsx, xls or ods): {e}",
            o.file
        )
    })?;
    let mut out = Imported::default();
    let mut order: Vec<String> = Vec::new();
    let mut children: HashMap<String, ChildRows> = HashMap::new();
    let mut lists = Vec::new();
    for sheet in wb.sheet_names() {
        (o.progress)(&sheet);
        let range = wb
            .worksheet_range(&sheet)
            .map_err(|e| format!("{}: sheet {sheet:?} cannot be read: {e}", o.file))?;
        let Some(found) = find(&range) else { continue };
        lists.push(found.list);
        let (top, left) = range.start().unwrap_or((0, 0));
        for (i, row) in range.rows().enumerate().skip(found.header_row + 1) {
            if row.iter().all(|c| text(c).is_empty()) {
                continue;
            }
            out.read += 1;
            let place = format!("{}: sheet {sheet:?}, row {}", o.file, top as usize + i + 1);
            let cell = |field: &str| {
                found
                    .columns
                    .get(field)
                    .and_then(|&c| row.get(c).map(|v| (c, v)))
            };
            let at_cell = |field: &str, why: String| {
                let (c, _) = cell(field).unwrap_or((0, &Data::Empty));
                Rejected {
                    place: format!(
                        "{place}, column {} ({})",
                        letter(left as usize + c),
                        found.headers.get(c).map_or("", String::as_str)
                    ),
                    reason: why,
                }
            };
            let get = |field: &str| cell(field).map_or(Data::Empty, |(_, v)| v.clone());
            let read_date = |field: &str| date(&get(field)).map_err(|e| at_cell(field, e));
            let read_yes_no = |field: &str| yes_no(&get(field)).map_err(|e| at_cell(field, e));
            let id = text(&get("id"));
            if id.is_empty() {
                out.rejected
                    .push(at_cell("id", "the child's id is missing".into()));
                continue;
            }
            let parsed: Result<(Option<NaiveDate>, Record), Rejected> = (|| {
                let dob = read_date("dob")?;
                let record = match found.list {
                    List::Five => {
                        let start = read_date("s47")?.ok_or_else(|| {
                            at_cell("s47", "the enquiry's start date is missing".into())
                        })?;
                        Record::S47(S47 {
                            start,
                            unnecessary: read_yes_no("unnecessary")?,
                            icpc: read_date("icpc")?,
                            plan: read_yes_no("plan")?,
                        })
                    }
                    List::Six => Record::Cin(read_date("cin_start")?),
                    List::Seven => {
                        let start = read_date("start")?.ok_or_else(|| {
                            at_cell("start", "the plan's start date is missing".into())
                        })?;
                        let category = [get("latest_category"), get("initial_category")]
                            .iter()
                            .map(text)
                            .find(|t| !t.is_empty())
                            .map(|t| category(&t));
                        Record::Plan(PlanRow {
                            start,
                            end: read_date("end")?,
                            category,
                            visit: read_date("visit")?,
                            seen_alone: read_yes_no("seen_alone")?,
                            review: read_date("review")?,
                        })
                    }
                };
                Ok((dob, record))
            })();
            let (dob, record) = match parsed {
                Ok(x) => x,
                Err(r) => {
                    out.rejected.push(r);
                    continue;
                }
            };
            let c = children.entry(id.clone()).or_insert_with(|| {
                order.push(id.clone());
                ChildRows::default()
            });
            let key = record.key(found.list);
            if let Some(first) = c.places.get(&key) {
                out.rejected.push(Rejected {
                    place,
                    reason: format!(
                        "child {id:?} has this {} row already (at {first}); the first is kept",
                        found.list.name()
                    ),
                });
                continue;
            }
            c.places.insert(key, place);
            c.dob = c.dob.or(dob);
            let team = text(&get("team"));
            let worker = text(&get("worker"));
            if !team.is_empty() {
                c.allocation.push((found.list, team, worker));
            }
            match record {
                Record::S47(s) => c.s47.push(s),
                Record::Cin(Some(d)) => c.cin.push(d),
                Record::Cin(None) => {}
                Record::Plan(p) => c.plans.push(p),
            }
        }
    }
    if lists.is_empty() {
        return Err(format!(
            "{}: no sheet has the headers of Annex A's List 5, 6 or 7 (a \"Child Unique ID\" column with \"Strategy discussion initiating Section 47 Enquiry Start Date\", \"CIN Start Date\" or \"Child Protection Plan Start Date\") in its first {HEADER_SEARCH} rows",
            o.file
        ));
    }
    for id in order {
        if let Some(c) = children.remove(&id) {
            rows(&id, c, o.board, &mut out.state);
        }
    }
    Ok(out)
}

enum Record {
    S47(S47),
    Cin(Option<NaiveDate>),
    Plan(PlanRow),
}

impl Record {
    /// What makes a row the same record as another of the child's.
    fn key(&self, list: List) -> String {
        match self {
            Record::S47(s) => format!("{list:?}/{}", s.start),
            Record::Cin(d) => format!("{list:?}/{d:?}"),
            Record::Plan(p) => format!("{list:?}/{}", p.start),
        }
    }
}

/// The child's rows, added to `s`. Ids are the child's id and the dates of
/// its records, so the same workbook imported twice gives the same rows.
fn rows(id: &str, c: ChildRows, board: Option<&str>, s: &mut CaseState) {
    let worker = c
        .allocation
        .iter()
        .min_by_key(|(l, _, _)| *l)
        .map(|(_, team, worker)| {
            let worker = if worker.is_empty() {
                "(unallocated)"
            } else {
                worker
            };
            (team.clone(), format!("{team}/{worker}"), worker.to_string())
        });
    if let Some((team, worker_id, name)) = &worker {
        if !s.teams.iter().any(|t| t.id == team.as_str()) {
            s.teams.push(Team {
                id: team.as_str().into(),
                name: team.as_str().into(),
                manager_email: None,
            });
        }
        if !s.workers.iter().any(|w| w.id == worker_id.as_str()) {
            s.workers.push(Worker {
                id: worker_id.as_str().into(),
                name: name.as_str().into(),
                email: None,
                team_id: team.as_str().into(),
            });
        }
    }
    for d in &c.cin {
        s.referrals.push(Referral {
            id: format!("{id}/cin/{d}").into(),
            child_id: id.into(),
            received_at: at(*d),
            by_telephone: false,
            written_confirmation_at: None,
            acknowledged_at: None,
            next_steps_recorded_at: None,
            concern: None,
        });
    }
    for p in &c.plans {
        let plan = format!("{id}/cpp/{}", p.start);
        if let Some(d) = p.review {
            let conf = format!("{plan}/review/{d}");
            s.conferences.push(held(&conf, "review", d));
            let outcome = if Some(d) == p.end {
                "plan_ended"
            } else {
                "plan_continues"
            };
            s.conference_children
                .push(child_at(&conf, id, outcome, p.category.clone()));
        }
        if let Some(d) = p.visit {
            s.visits.push(Visit {
                id: format!("{plan}/visit/{d}").into(),
                child_id: id.into(),
                visited_at: at(d),
                seen_alone: p.seen_alone,
            });
        }
        s.cp_plans.push(CpPlan {
            id: plan.into(),
            child_id: id.into(),
            started_on: p.start,
            ended_on: p.end,
            end_reason: None,
            category: p.category.as_deref().map(Text::from),
            visit_interval_working_days: None,
        });
    }
    for x in &c.s47 {
        let sd = format!("{id}/s47/{}", x.start);
        let not_required = x.unnecessary == Some(true);
        s.strategy_discussions.push(StrategyDiscussion {
            id: sd.as_str().into(),
            child_id: id.into(),
            held_at: at(x.start),
            s47_initiated: true,
            concern: None,
            child_seen_at: None,
            // As for the census: no date of the decision is kept.
            conference_decided_at: (!not_required).then(|| at(x.start)),
            record_circulated_at: None,
            conference_not_required: not_required,
        });
        if let Some(d) = x.icpc {
            let conf = format!("{sd}/icpc");
            let unborn = c.dob.is_some_and(|b| d < b);
            s.conferences
                .push(held(&conf, if unborn { "pre_birth" } else { "initial" }, d));
            let plan = c.plans.iter().find(|p| p.start == d);
            let outcome = match x.plan {
                Some(true) => "plan",
                Some(false) => "no_plan",
                None if plan.is_some() => "plan",
                None => "no_plan",
            };
            s.conference_children.push(child_at(
                &conf,
                id,
                outcome,
                plan.and_then(|p| p.category.clone()),
            ));
        }
    }
    s.children.push(Child {
        id: id.into(),
        reference: id.into(),
        board: board.map(Text::from),
        date_of_birth: c.dob,
        expected_due_date: None,
        allocated_worker_id: worker.map(|(_, w, _)| w.into()),
        looked_after: false,
    });
}
