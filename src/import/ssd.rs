//! Data to Insight's Standard Safeguarding Dataset (SSD): CSV extracts of its
//! child protection tables, one file a table named for it, mapped onto the
//! case-state contract exactly as `deploy/ssd/contract-views.sql` maps the
//! tables themselves. The mapping is in `docs/import.md`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use super::{category, Imported, Rejected};
use crate::domain::case::*;

/// The SSD tables read, in the order they are read: those that say who is a
/// child of the child protection process first, then `ssd_person`.
pub const TABLES: &[&str] = &[
    "ssd_cin_episodes",
    "ssd_s47_enquiry",
    "ssd_initial_cp_conference",
    "ssd_cp_plans",
    "ssd_cp_reviews",
    "ssd_cp_visits",
    "ssd_involvements",
    "ssd_professionals",
    "ssd_person",
];

/// One CSV row, its columns by lower-case header.
struct Row<'r> {
    place: &'r str,
    headers: &'r HashMap<String, usize>,
    record: &'r csv::StringRecord,
}

impl Row<'_> {
    fn text(&self, col: &str) -> Option<String> {
        let v = self.record.get(*self.headers.get(col)?)?.trim();
        (!v.is_empty() && !v.eq_ignore_ascii_case("null")).then(|| v.to_string())
    }

    fn bad(&self, col: &str, why: String) -> Rejected {
        Rejected {
            place: format!("{}, column {col}", self.place),
            reason: why,
        }
    }

    fn id(&self, col: &str) -> Result<String, Rejected> {
        self.text(col)
            .ok_or_else(|| self.bad(col, "the id is missing".into()))
    }

    /// A TIMESTAMP as the SSD's databases export it, in UK time.
    fn instant(&self, col: &str) -> Result<Option<Instant>, Rejected> {
        let Some(t) = self.text(col) else {
            return Ok(None);
        };
        timestamp(&t)
            .map(|d| Some(super::at_time(d.date(), d.time())))
            .ok_or_else(|| self.bad(col, format!("{t:?} is not a date or time")))
    }

    fn date(&self, col: &str) -> Result<Option<NaiveDate>, Rejected> {
        let Some(t) = self.text(col) else {
            return Ok(None);
        };
        timestamp(&t)
            .map(|d| Some(d.date()))
            .ok_or_else(|| self.bad(col, format!("{t:?} is not a date")))
    }

    /// A CHAR(1) flag: Y/N (or 1/0, T/F).
    fn flag(&self, col: &str) -> Result<Option<bool>, Rejected> {
        let Some(t) = self.text(col) else {
            return Ok(None);
        };
        match t.to_ascii_uppercase().as_str() {
            "Y" | "YES" | "1" | "T" | "TRUE" => Ok(Some(true)),
            "N" | "NO" | "0" | "F" | "FALSE" => Ok(Some(false)),
            _ => Err(self.bad(col, format!("{t:?} is not Y or N"))),
        }
    }
}

/// A timestamp as SQL Server and PostgreSQL write them (`2026-01-06`,
/// `2026-01-06 10:30:00`, `2026-01-06T10:30:00.000`), or as a spreadsheet
/// saves them (`06/01/2026`, `06/01/2026 10:30`).
fn timestamp(t: &str) -> Option<NaiveDateTime> {
    const WITH_TIME: [&str; 4] = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%d/%m/%Y %H:%M:%S",
        "%d/%m/%Y %H:%M",
    ];
    WITH_TIME
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
        .or_else(|| {
            ["%Y-%m-%d", "%d/%m/%Y"]
                .iter()
                .find_map(|f| NaiveDate::parse_from_str(t, f).ok())
                .map(|d| d.and_time(NaiveTime::MIN))
        })
}

/// What the reader needs besides the directory.
pub struct Options<'a> {
    pub board: Option<&'a str>,
    /// Called with the bytes read so far (of all the files), now and then, for a progress bar.
    pub progress: &'a mut dyn FnMut(u64),
}

/// The bytes of the tables' files in `dir`, for a progress bar.
pub fn size(dir: &Path) -> u64 {
    TABLES
        .iter()
        .filter_map(|t| std::fs::metadata(dir.join(format!("{t}.csv"))).ok())
        .map(|m| m.len())
        .sum()
}

/// An involvement of a professional with a person: (start, id, professional, team).
type Involvement = (Option<Instant>, String, String, Option<String>);

#[derive(Default)]
struct Tables {
    state: CaseState,
    /// Each person's open involvements.
    involvements: HashMap<String, Vec<Involvement>>,
    /// Each professional's latest involvement: (start, id, team).
    latest_team: HashMap<String, (Option<Instant>, String, Option<String>)>,
    professionals: HashMap<String, Option<String>>,
    /// Each person's initial conferences, to be typed once dates of birth are read.
    icpc_people: Vec<(usize, String)>,
    /// Where each row was read, by table and id, to place a repeated id.
    seen: HashMap<(&'static str, String), String>,
}

/// Reads the SSD's CSV extracts in `dir`. `ssd_person.csv` is required;
/// a table without its file has no rows. A row that cannot be read is
/// rejected with its file, line and column, and the rest are read.
pub fn read(dir: &Path, o: Options<'_>) -> Result<Imported, String> {
    let person = dir.join("ssd_person.csv");
    if !person.is_file() {
        return Err(format!(
            "{}: no ssd_person.csv: a directory of SSD extracts holds one CSV file a table, named for it (ssd_person.csv, ssd_s47_enquiry.csv, …)",
            dir.display()
        ));
    }
    let mut out = Imported::default();
    let mut t = Tables::default();
    let mut done = 0u64;
    for table in TABLES {
        let path = dir.join(format!("{table}.csv"));
        if !path.is_file() {
            continue;
        }
        let name = path.display().to_string();
        let mut r = csv::ReaderBuilder::new()
            .flexible(true)
            .from_path(&path)
            .map_err(|e| format!("{name}: cannot be read: {e}"))?;
        let headers: HashMap<String, usize> = r
            .headers()
            .map_err(|e| format!("{name}: no header line: {e}"))?
            .iter()
            .enumerate()
            .map(|(i, h)| {
                (
                    h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase(),
                    i,
                )
            })
            .collect();
        let mut record = csv::StringRecord::new();
        loop {
            match r.read_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    // A line the CSV reader cannot split: the file stops being trustworthy there.
                    return Err(format!("{name}: {e}"));
                }
            }
            let line = record.position().map_or(0, |p| p.line());
            let place = format!("{name}: line {line}");
            let row = Row {
                place: &place,
                headers: &headers,
                record: &record,
            };
            out.read += 1;
            if let Err(e) = t.row(table, &row) {
                out.rejected.push(e);
            }
            if out.read % 4096 == 0 {
                (o.progress)(done + record.position().map_or(0, |p| p.byte()));
            }
        }
        done += std::fs::metadata(&path).map_or(0, |m| m.len());
    }
    t.finish(o.board, &mut out);
    Ok(out)
}

impl Tables {
    /// Rejects a row whose id an earlier row of the table had.
    fn first(&mut self, table: &'static str, r: &Row<'_>) -> Result<(), Rejected> {
        let col = match table {
            "ssd_cin_episodes" => "cine_referral_id",
            "ssd_s47_enquiry" => "s47e_s47_enquiry_id",
            "ssd_initial_cp_conference" => "icpc_icpc_id",
            "ssd_cp_plans" => "cppl_cp_plan_id",
            "ssd_cp_reviews" => "cppr_cp_review_id",
            "ssd_cp_visits" => "cppv_cp_visit_id",
            "ssd_involvements" => "invo_involvements_id",
            "ssd_professionals" => "prof_professional_id",
            _ => "pers_person_id",
        };
        let id = r.id(col)?;
        match self.seen.entry((table, id)) {
            std::collections::hash_map::Entry::Occupied(e) => Err(r.bad(
                col,
                format!(
                    "{:?} is the id of an earlier row (at {}); the first is kept",
                    e.key().1,
                    e.get()
                ),
            )),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(r.place.to_string());
                Ok(())
            }
        }
    }

    fn row(&mut self, table: &'static str, r: &Row<'_>) -> Result<(), Rejected> {
        self.first(table, r)?;
        let s = &mut self.state;
        match table {
            "ssd_cin_episodes" => {
                let id = r.id("cine_referral_id")?;
                let child = r.id("cine_person_id")?;
                if let Some(at) = r.instant("cine_referral_date")? {
                    s.referrals.push(Referral {
                        id: id.into(),
                        child_id: child.into(),
                        received_at: at,
                        by_telephone: false,
                        written_confirmation_at: None,
                        acknowledged_at: None,
                        next_steps_recorded_at: None,
                        concern: None,
                    });
                }
            }
            "ssd_s47_enquiry" => {
                let id = r.id("s47e_s47_enquiry_id")?;
                let child = r.id("s47e_person_id")?;
                let nfa = r.flag("s47e_s47_nfa")? == Some(true);
                if let Some(at) = r.instant("s47e_s47_start_date")? {
                    s.strategy_discussions.push(StrategyDiscussion {
                        id: id.into(),
                        child_id: child.into(),
                        held_at: at,
                        s47_initiated: true,
                        concern: None,
                        child_seen_at: None,
                        // No date of the decision is kept: an enquiry not closed
                        // with no further action awaits a conference from its start.
                        conference_decided_at: (!nfa).then_some(at),
                        record_circulated_at: None,
                        conference_not_required: nfa,
                    });
                }
            }
            "ssd_initial_cp_conference" => {
                let id = r.id("icpc_icpc_id")?;
                let child = r.id("icpc_person_id")?;
                let transfer = r.flag("icpc_icpc_transfer_in")? == Some(true);
                let target = r.date("icpc_icpc_target_date")?;
                let plan = r.flag("icpc_icpc_outcome_cp_flag")?;
                if let Some(at) = r.instant("icpc_icpc_date")? {
                    let conf = format!("icpc/{id}");
                    self.icpc_people.push((s.conferences.len(), child.clone()));
                    s.conferences.push(Conference {
                        id: conf.as_str().into(),
                        kind: if transfer { "transfer_in" } else { "initial" }.into(),
                        status: "held".into(),
                        scheduled_at: Some(at),
                        held_at: Some(at),
                        target_on: target,
                        ..Conference::default()
                    });
                    s.conference_children.push(cc(
                        &conf,
                        &child,
                        plan.map(|p| if p { "plan" } else { "no_plan" }),
                    ));
                }
            }
            "ssd_cp_plans" => {
                let id = r.id("cppl_cp_plan_id")?;
                let child = r.id("cppl_person_id")?;
                let start = r.date("cppl_cp_plan_start_date")?.ok_or_else(|| {
                    r.bad(
                        "cppl_cp_plan_start_date",
                        "the plan's start date is missing".into(),
                    )
                })?;
                let category = r
                    .text("cppl_cp_plan_latest_category")
                    .or_else(|| r.text("cppl_cp_plan_initial_category"))
                    .map(|c| category(&c));
                let ended = r.date("cppl_cp_plan_end_date")?;
                s.cp_plans.push(CpPlan {
                    id: id.into(),
                    child_id: child.into(),
                    started_on: start,
                    ended_on: ended,
                    end_reason: None,
                    category: category.map(Text::from),
                    visit_interval_working_days: None,
                });
            }
            "ssd_cp_reviews" => {
                let id = r.id("cppr_cp_review_id")?;
                let child = r.id("cppr_person_id")?;
                let due = r.date("cppr_cp_review_due")?;
                let continues = r.flag("cppr_cp_review_outcome_continue_cp")?;
                if let Some(at) = r.instant("cppr_cp_review_date")? {
                    let conf = format!("review/{id}");
                    s.conferences.push(Conference {
                        id: conf.as_str().into(),
                        kind: "review".into(),
                        status: "held".into(),
                        scheduled_at: Some(at),
                        held_at: Some(at),
                        target_on: due,
                        ..Conference::default()
                    });
                    s.conference_children.push(cc(
                        &conf,
                        &child,
                        continues.map(|c| if c { "plan_continues" } else { "plan_ended" }),
                    ));
                }
            }
            "ssd_cp_visits" => {
                let id = r.id("cppv_cp_visit_id")?;
                let child = r.id("cppv_person_id")?;
                let seen_alone = r.flag("cppv_cp_visit_seen_alone")?;
                if let Some(at) = r.instant("cppv_cp_visit_date")? {
                    s.visits.push(Visit {
                        id: id.into(),
                        child_id: child.into(),
                        visited_at: at,
                        seen_alone,
                    });
                }
            }
            "ssd_involvements" => {
                let id = r.id("invo_involvements_id")?;
                let person = r.id("invo_person_id")?;
                let professional = r.id("invo_professional_id")?;
                let team = r.text("invo_professional_team");
                let start = r.instant("invo_involvement_start_date")?;
                let ended = r.instant("invo_involvement_end_date")?.is_some();
                let latest = self.latest_team.entry(professional.clone()).or_insert((
                    start,
                    id.clone(),
                    team.clone(),
                ));
                if (start, &id) > (latest.0, &latest.1) {
                    *latest = (start, id.clone(), team.clone());
                }
                if !ended {
                    (self.involvements.entry(person).or_default()).push((
                        start,
                        id,
                        professional,
                        team,
                    ));
                }
            }
            "ssd_professionals" => {
                let id = r.id("prof_professional_id")?;
                self.professionals
                    .insert(id, r.text("prof_professional_name"));
            }
            "ssd_person" => {
                let id = r.id("pers_person_id")?;
                let dob = r.date("pers_dob")?;
                let expected = r.date("pers_expected_dob")?;
                s.children.push(Child {
                    id: id.as_str().into(),
                    reference: id.as_str().into(),
                    board: None,
                    date_of_birth: dob,
                    expected_due_date: expected,
                    allocated_worker_id: None,
                    looked_after: false,
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// Keeps the people the child protection tables name (the SSD holds
    /// every person), types pre-birth conferences, and allocates workers.
    fn finish(mut self, board: Option<&str>, out: &mut Imported) {
        let s = &mut self.state;
        let named: HashSet<&str> = (s.referrals.iter().map(|r| r.child_id.as_str()))
            .chain(s.strategy_discussions.iter().map(|d| d.child_id.as_str()))
            .chain(s.conference_children.iter().map(|c| c.child_id.as_str()))
            .chain(s.cp_plans.iter().map(|p| p.child_id.as_str()))
            .collect();
        let mut children: Vec<Child> = std::mem::take(&mut s.children)
            .into_iter()
            .filter(|c| named.contains(c.id.as_str()))
            .collect();
        let known: HashMap<String, usize> = children
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.to_string(), i))
            .collect();
        for (i, person) in &self.icpc_people {
            let Some(c) = known.get(person.as_str()).and_then(|&k| children.get(k)) else {
                continue;
            };
            if let Some(conf) = s.conferences.get_mut(*i) {
                let day = conf
                    .held_at
                    .map(|t| t.with_timezone(&chrono_tz::Europe::London).date_naive());
                let unborn = match c.date_of_birth {
                    Some(b) => day.is_some_and(|d| d < b),
                    None => c.expected_due_date.is_some(),
                };
                if unborn && conf.kind == "initial" {
                    conf.kind = "pre_birth".into();
                }
            }
        }
        let mut workers: Vec<Worker> = Vec::new();
        let mut teams: Vec<Team> = Vec::new();
        for c in &mut children {
            c.board = board.map(Text::from);
            let Some(open) = self.involvements.get(c.id.as_str()) else {
                continue;
            };
            // The current allocation: the open involvement that started last.
            let Some((_, _, prof, _)) = open.iter().max_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)))
            else {
                continue;
            };
            c.allocated_worker_id = Some(prof.as_str().into());
            if workers.iter().any(|w| w.id == prof.as_str()) {
                continue;
            }
            let team = (self.latest_team.get(prof)).and_then(|(_, _, t)| t.clone());
            let name = self.professionals.get(prof).cloned().flatten();
            workers.push(Worker {
                id: prof.as_str().into(),
                name: name.unwrap_or_else(|| prof.clone()).into(),
                email: None,
                team_id: team.clone().unwrap_or_default().into(),
            });
            if let Some(t) = team.filter(|t| !teams.iter().any(|x| x.id == t.as_str())) {
                teams.push(Team {
                    id: t.as_str().into(),
                    name: t.into(),
                    manager_email: None,
                });
            }
        }
        // Rows about people ssd_person does not hold cannot be a child's.
        let orphan = |what: &str, id: &str, child: &str| Rejected {
            place: format!("{what} {id}"),
            reason: format!("person {child:?} is not in ssd_person.csv"),
        };
        let has = |id: &str| known.contains_key(id);
        s.referrals.retain(|r| {
            has(&r.child_id) || {
                out.rejected
                    .push(orphan("ssd_cin_episodes", &r.id, &r.child_id));
                false
            }
        });
        s.strategy_discussions.retain(|r| {
            has(&r.child_id) || {
                out.rejected
                    .push(orphan("ssd_s47_enquiry", &r.id, &r.child_id));
                false
            }
        });
        s.cp_plans.retain(|r| {
            has(&r.child_id) || {
                out.rejected
                    .push(orphan("ssd_cp_plans", &r.id, &r.child_id));
                false
            }
        });
        s.visits.retain(|r| {
            has(&r.child_id) || {
                out.rejected
                    .push(orphan("ssd_cp_visits", &r.id, &r.child_id));
                false
            }
        });
        let mut gone = HashSet::new();
        s.conference_children.retain(|r| {
            has(&r.child_id) || {
                out.rejected
                    .push(orphan("conference", &r.conference_id, &r.child_id));
                gone.insert(r.conference_id.clone());
                false
            }
        });
        s.conferences.retain(|c| !gone.contains(&c.id));
        s.children = children;
        s.workers = workers;
        s.teams = teams;
        out.state = self.state;
    }
}

fn cc(conf: &str, child: &str, outcome: Option<&str>) -> ConferenceChild {
    ConferenceChild {
        conference_id: conf.into(),
        child_id: child.into(),
        outcome: outcome.map(Text::from),
        category: None,
        advocacy_offered: None,
        workbook_received_at: None,
        dissent_recorded: false,
    }
}
