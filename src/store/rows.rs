//! Turning database rows into case state. A value that cannot be read (a
//! malformed timestamp in SQLite, say) becomes a data-quality finding and the
//! field is treated as empty; a row missing a required value is skipped with a
//! finding. Nothing here fails the whole load.

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::case::*;
use crate::domain::evaluate::Finding;

/// Reading one column of a row, whatever the database.
pub trait Get {
    /// Borrowed from the row: a value that is shared needs no copy.
    fn text(&self, col: &str) -> Result<Option<&str>, String>;
    /// A text value's bytes, perhaps not yet checked to be UTF-8 ([`utf8`]):
    /// most values repeat one read before (the same child's id in the next
    /// row, an agency's code), and one that does needs no second check.
    fn raw_text(&self, col: &str) -> Result<Option<&[u8]>, String> {
        self.text(col).map(|v| v.map(str::as_bytes))
    }
    fn boolean(&self, col: &str) -> Result<Option<bool>, String>;
    fn int(&self, col: &str) -> Result<Option<i64>, String>;
    fn instant(&self, col: &str) -> Result<Option<Instant>, String>;
    fn date(&self, col: &str) -> Result<Option<NaiveDate>, String>;
}

/// RFC 3339 with an offset or `Z`, as the contract stores instants in SQLite.
pub fn parse_instant(s: &str) -> Result<Instant, String> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            format!("{s:?} is not an RFC 3339 instant with an offset (e.g. 2026-01-13T10:00:00Z)")
        })
}

pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| format!("{s:?} is not a YYYY-MM-DD date"))
}

/// A text value's bytes as text, or why they are not.
pub fn utf8(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|_| "text that is not UTF-8".to_string())
}

struct Reader<'r, R: Get> {
    row: &'r R,
    table: &'static str,
    id_cols: &'static [&'static str],
    findings: &'r mut Vec<Finding>,
    shared: &'r mut Shared,
    ok: bool,
}

/// One `Text` per distinct value of the columns that repeat (codes,
/// addresses, the ids of agencies and workers), so a national load holds
/// each once; and for the columns that name a child or a conference, one
/// for each run of rows naming the same one.
///
/// Both are found by the value's bytes, so only a value not read before is
/// checked to be UTF-8.
#[derive(Default)]
struct Shared {
    all: hashbrown::HashTable<Text>,
    /// Each run column's last value, by the address of the column's name.
    last: Vec<(usize, Text)>,
}

fn hash(b: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(b)
}

impl Shared {
    fn text(&mut self, b: &[u8]) -> Result<Text, String> {
        let h = hash(b);
        if let Some(t) = self.all.find(h, |t| t.as_bytes() == b) {
            return Ok(t.clone());
        }
        let t = Text::from(utf8(b)?);
        self.all.insert_unique(h, t.clone(), |t| hash(t.as_bytes()));
        Ok(t)
    }

    /// A value of a column whose rows come in runs of one value (a child's
    /// rows, a conference's): shared along the run. A new run's value is a
    /// text of its own, not looked up among every value read: there are a
    /// hundred thousand, so that lookup is a cache miss or two, where making
    /// the text is not.
    fn run(&mut self, col: &str, b: &[u8]) -> Result<Text, String> {
        let key = col.as_ptr() as usize;
        match self.last.iter_mut().find(|(k, _)| *k == key) {
            Some((_, last)) => {
                if last.as_bytes() != b {
                    *last = Text::from(utf8(b)?);
                }
                Ok(last.clone())
            }
            None => {
                let t = Text::from(utf8(b)?);
                self.last.push((key, t.clone()));
                Ok(t)
            }
        }
    }
}

impl<'r, R: Get> Reader<'r, R> {
    /// The row's identity for a finding, read only when there is one.
    fn id(&self) -> String {
        self.id_cols
            .iter()
            .map(|c| self.row.text(c).ok().flatten().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("/")
    }

    // A load reads millions of values: the findings are made apart from the
    // reading (`#[cold]`), which is left small enough to inline.
    #[inline]
    fn note<T>(&mut self, col: &str, r: Result<Option<T>, String>) -> Option<T> {
        match r {
            Ok(v) => v,
            Err(e) => {
                self.unreadable(col, e);
                None
            }
        }
    }
    #[cold]
    fn unreadable(&mut self, col: &str, e: String) {
        self.finding("unreadable_value", format!("{col}: {e}; treated as empty"));
    }
    #[inline]
    fn need<T>(&mut self, col: &str, v: Option<T>) -> Option<T> {
        if v.is_none() && self.ok {
            self.missing(col);
        }
        v
    }
    #[cold]
    fn missing(&mut self, col: &str) {
        self.ok = false;
        self.finding(
            "missing_value",
            format!("{col} is empty; the row is left out"),
        );
    }
    /// A finding about this row.
    fn finding(&mut self, kind: &str, message: String) {
        let id = self.id();
        self.findings
            .push(Finding::new(kind, self.table, &id, message));
    }
    fn opt_text(&mut self, col: &str) -> Option<Text> {
        let r = self.row.raw_text(col);
        let v = self.note(col, r)?;
        let t = self.shared.text(v);
        self.note(col, t.map(Some))
    }
    /// A value that is mostly unique (an id, a name): not worth sharing.
    fn unique(&mut self, col: &str) -> Text {
        let r = self.row.text(col);
        let v = self.note(col, r).map(Text::from);
        self.need(col, v).unwrap_or_default()
    }
    fn text(&mut self, col: &str) -> Text {
        let v = self.opt_text(col);
        self.need(col, v).unwrap_or_default()
    }
    /// A column naming a child or a conference (see [`Shared::run`]).
    fn run_text(&mut self, col: &str) -> Text {
        let r = self.row.raw_text(col);
        let t = self.note(col, r).map(|b| self.shared.run(col, b));
        let v = t.and_then(|t| self.note(col, t.map(Some)));
        self.need(col, v).unwrap_or_default()
    }
    fn opt_bool(&mut self, col: &str) -> Option<bool> {
        let r = self.row.boolean(col);
        self.note(col, r)
    }
    fn bool_or(&mut self, col: &str, default: bool) -> bool {
        self.opt_bool(col).unwrap_or(default)
    }
    fn opt_instant(&mut self, col: &str) -> Option<Instant> {
        let r = self.row.instant(col);
        self.note(col, r)
    }
    fn instant(&mut self, col: &str) -> Instant {
        let v = self.opt_instant(col);
        self.need(col, v).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
    fn opt_date(&mut self, col: &str) -> Option<NaiveDate> {
        let r = self.row.date(col);
        self.note(col, r)
    }
    fn date(&mut self, col: &str) -> NaiveDate {
        let v = self.opt_date(col);
        self.need(col, v).unwrap_or(NaiveDate::MIN)
    }
    fn opt_int(&mut self, col: &str) -> Option<i64> {
        let r = self.row.int(col);
        self.note(col, r)
    }
    /// A value that must be one of a list: anything else is a finding, kept as read.
    fn one_of(&mut self, col: &str, v: Option<Text>, allowed: &[&str]) -> Option<Text> {
        if let Some(x) = &v {
            if !allowed.contains(&x.as_str()) {
                let message = format!("{col} {x:?} is not one of {}", allowed.join(", "));
                self.finding("unknown_value", message);
            }
        }
        v
    }
}

fn read<R: Get, T>(
    row: &R,
    table: &'static str,
    id_cols: &'static [&'static str],
    findings: &mut Vec<Finding>,
    shared: &mut Shared,
    into: &mut Vec<T>,
    f: impl FnOnce(&mut Reader<R>) -> T,
) {
    let mut r = Reader {
        row,
        table,
        id_cols,
        findings,
        shared,
        ok: true,
    };
    let v = f(&mut r);
    if r.ok {
        into.push(v);
    }
}

const ID: &[&str] = &["id"];

/// A row whose id is a [`RowId`], set once its block is made.
trait WithRowId {
    fn row_id(&mut self) -> &mut RowId;
}

macro_rules! with_row_id {
    ($($t:ty),*) => {$(
        impl WithRowId for $t {
            fn row_id(&mut self) -> &mut RowId {
                &mut self.id
            }
        }
    )*};
}
with_row_id!(CoreGroup, Visit, CinReview);

/// A table's ids not yet in a block: their text one after another, and for
/// each, the row it belongs to and where its text is.
#[derive(Default)]
struct Ids {
    text: String,
    rows: Vec<(usize, usize, usize)>,
}

/// The text a block of ids holds before it is made: large enough that
/// allocations are few, small enough that a block's rows are still in the
/// cache when their ids are set.
const BLOCK: usize = 1 << 16;

impl Ids {
    /// Makes the block of the ids gathered and gives each of `rows` its own.
    fn settle<T: WithRowId>(&mut self, rows: &mut [T]) {
        if self.rows.is_empty() {
            return;
        }
        let block = arcstr::ArcStr::from(self.text.as_str());
        self.text.clear();
        for (row, from, to) in self.rows.drain(..) {
            // Each range is that of a whole `&str` appended, so it is
            // always a slice of the block.
            let id = block.get(from..to).and_then(|s| block.try_substr_from(s));
            if let (Some(r), Some(id)) = (rows.get_mut(row), id) {
                *r.row_id() = id;
            }
        }
    }
}

/// As [`read`], for a table of [`WithRowId`] rows: the id is gathered into
/// the table's next block (`ids`) rather than allocated alone.
fn read_with_id<R: Get, T: WithRowId>(
    row: &R,
    table: &'static str,
    findings: &mut Vec<Finding>,
    shared: &mut Shared,
    into: &mut Vec<T>,
    ids: &mut Ids,
    f: impl FnOnce(&mut Reader<R>) -> T,
) {
    let at = into.len();
    let mut id = None;
    read(row, table, ID, findings, shared, into, |r| {
        let v = row.text("id");
        let v = r.note("id", v);
        id = r.need("id", v);
        f(r)
    });
    // A row is kept only with every value it needs, its id among them.
    if let (Some(id), true) = (id, into.len() > at) {
        let from = ids.text.len();
        ids.text.push_str(id);
        ids.rows.push((at, from, ids.text.len()));
        if ids.text.len() >= BLOCK {
            ids.settle(into);
        }
    }
}

/// Builds the case state row by row as the rows arrive, so a load never holds
/// a table's raw rows and its case state at once.
#[derive(Default)]
pub struct Loader {
    state: CaseState,
    findings: Vec<Finding>,
    shared: Shared,
    core_group_ids: Ids,
    visit_ids: Ids,
    cin_review_ids: Ids,
}

impl Loader {
    /// Adds one row of a case table (one of `TABLES`).
    // Long because the contract is: one arm a table, its columns in contract
    // order, so the mapping reads whole beside `TABLES` (and `rows_of`).
    pub fn row<R: Get>(&mut self, table: &str, row: &R) {
        let (s, f, sh) = (&mut self.state, &mut self.findings, &mut self.shared);
        let (core_group_ids, visit_ids, cin_review_ids) = (
            &mut self.core_group_ids,
            &mut self.visit_ids,
            &mut self.cin_review_ids,
        );
        match table {
            "agencies" => read(row, "agencies", ID, f, sh, &mut s.agencies, |r| {
                let group = r.opt_text("professional_group");
                let group = r.one_of("professional_group", group, PROFESSIONAL_GROUPS);
                Agency {
                    id: r.unique("id"),
                    name: r.unique("name"),
                    professional_group: r.need("professional_group", group).unwrap_or_default(),
                    email: r.opt_text("email"),
                }
            }),
            "teams" => read(row, "teams", ID, f, sh, &mut s.teams, |r| Team {
                id: r.unique("id"),
                name: r.unique("name"),
                manager_email: r.opt_text("manager_email"),
            }),
            "workers" => read(row, "workers", ID, f, sh, &mut s.workers, |r| Worker {
                id: r.unique("id"),
                name: r.unique("name"),
                email: r.opt_text("email"),
                team_id: r.text("team_id"),
            }),
            "children" => read(row, "children", ID, f, sh, &mut s.children, |r| Child {
                id: r.unique("id"),
                reference: r.unique("reference"),
                board: r.opt_text("board"),
                date_of_birth: r.opt_date("date_of_birth"),
                expected_due_date: r.opt_date("expected_due_date"),
                allocated_worker_id: r.opt_text("allocated_worker_id"),
                looked_after: r.bool_or("looked_after", false),
            }),
            "referrals" => read(row, "referrals", ID, f, sh, &mut s.referrals, |r| {
                let concern = r.opt_text("concern");
                Referral {
                    id: r.unique("id"),
                    child_id: r.run_text("child_id"),
                    received_at: r.instant("received_at"),
                    by_telephone: r.bool_or("by_telephone", false),
                    written_confirmation_at: r.opt_instant("written_confirmation_at"),
                    acknowledged_at: r.opt_instant("acknowledged_at"),
                    next_steps_recorded_at: r.opt_instant("next_steps_recorded_at"),
                    concern: r.one_of("concern", concern, CONCERNS),
                }
            }),
            "assessments" => read(row, "assessments", ID, f, sh, &mut s.assessments, |r| {
                let kind = r.opt_text("kind");
                let kind = r.one_of("kind", kind, &["initial", "core"]);
                Assessment {
                    id: r.unique("id"),
                    child_id: r.run_text("child_id"),
                    kind: r.need("kind", kind).unwrap_or_default(),
                    started_on: r.date("started_on"),
                    completed_on: r.opt_date("completed_on"),
                }
            }),
            "strategy_discussions" => read(
                row,
                "strategy_discussions",
                ID,
                f,
                sh,
                &mut s.strategy_discussions,
                |r| {
                    let concern = r.opt_text("concern");
                    StrategyDiscussion {
                        id: r.unique("id"),
                        child_id: r.run_text("child_id"),
                        held_at: r.instant("held_at"),
                        s47_initiated: r.bool_or("s47_initiated", false),
                        concern: r.one_of("concern", concern, CONCERNS),
                        child_seen_at: r.opt_instant("child_seen_at"),
                        conference_decided_at: r.opt_instant("conference_decided_at"),
                        record_circulated_at: r.opt_instant("record_circulated_at"),
                        conference_not_required: r.bool_or("conference_not_required", false),
                    }
                },
            ),
            "conferences" => read(row, "conferences", ID, f, sh, &mut s.conferences, |r| {
                let kind = r.opt_text("kind");
                let kind = r.one_of("kind", kind, CONFERENCE_KINDS);
                let status = r.opt_text("status");
                let status = r.one_of("status", status, CONFERENCE_STATUSES);
                Conference {
                    id: r.unique("id"),
                    kind: r.need("kind", kind).unwrap_or_default(),
                    status: r.need("status", status).unwrap_or_default(),
                    requested_at: r.opt_instant("requested_at"),
                    transfer_notified_at: r.opt_instant("transfer_notified_at"),
                    scheduled_at: r.opt_instant("scheduled_at"),
                    held_at: r.opt_instant("held_at"),
                    reconvenes_id: r.opt_text("reconvenes_id"),
                    chair_email: r.opt_text("chair_email"),
                    chair_liaison_at: r.opt_instant("chair_liaison_at"),
                    chair_overruled: r.bool_or("chair_overruled", false),
                    decision_circulated_at: r.opt_instant("decision_circulated_at"),
                    plan_circulated_at: r.opt_instant("plan_circulated_at"),
                    plan_hard_copy_sent_at: r.opt_instant("plan_hard_copy_sent_at"),
                    summary_circulated_at: r.opt_instant("summary_circulated_at"),
                    minutes_circulated_at: r.opt_instant("minutes_circulated_at"),
                    next_review_on: r.opt_date("next_review_on"),
                    chair_concern: r.bool_or("chair_concern", false),
                    chair_escalated_at: r.opt_instant("chair_escalated_at"),
                    target_on: r.opt_date("target_on"),
                }
            }),
            "conference_children" => read(
                row,
                "conference_children",
                &["conference_id", "child_id"],
                f,
                sh,
                &mut s.conference_children,
                |r| {
                    let outcome = r.opt_text("outcome");
                    ConferenceChild {
                        conference_id: r.run_text("conference_id"),
                        child_id: r.run_text("child_id"),
                        outcome: r.one_of("outcome", outcome, OUTCOMES),
                        category: r.opt_text("category"),
                        advocacy_offered: r.opt_bool("advocacy_offered"),
                        workbook_received_at: r.opt_instant("workbook_received_at"),
                        dissent_recorded: r.bool_or("dissent_recorded", false),
                    }
                },
            ),
            "invitations" => read(
                row,
                "invitations",
                &["conference_id", "agency_id"],
                f,
                sh,
                &mut s.invitations,
                |r| Invitation {
                    conference_id: r.run_text("conference_id"),
                    agency_id: r.text("agency_id"),
                    attended: r.opt_bool("attended"),
                    report_expected: r.bool_or("report_expected", true),
                    report_received_at: r.opt_instant("report_received_at"),
                    report_shared_with_family_at: r.opt_instant("report_shared_with_family_at"),
                    report_authorised_at: r.opt_instant("report_authorised_at"),
                    email: r.opt_text("email"),
                },
            ),
            "cp_plans" => read(row, "cp_plans", ID, f, sh, &mut s.cp_plans, |r| CpPlan {
                id: r.unique("id"),
                child_id: r.run_text("child_id"),
                started_on: r.date("started_on"),
                ended_on: r.opt_date("ended_on"),
                end_reason: r.opt_text("end_reason"),
                category: r.opt_text("category"),
                visit_interval_working_days: r.opt_int("visit_interval_working_days"),
            }),
            "core_groups" => {
                let into = &mut s.core_groups;
                read_with_id(row, "core_groups", f, sh, into, core_group_ids, |r| {
                    CoreGroup {
                        id: RowId::default(),
                        child_id: r.run_text("child_id"),
                        held_at: r.instant("held_at"),
                    }
                });
            }
            "visits" => read_with_id(row, "visits", f, sh, &mut s.visits, visit_ids, |r| Visit {
                id: RowId::default(),
                child_id: r.run_text("child_id"),
                visited_at: r.instant("visited_at"),
                seen_alone: r.opt_bool("seen_alone"),
            }),
            "cin_reviews" => {
                let into = &mut s.cin_reviews;
                read_with_id(row, "cin_reviews", f, sh, into, cin_review_ids, |r| {
                    CinReview {
                        id: RowId::default(),
                        child_id: r.run_text("child_id"),
                        held_on: r.date("held_on"),
                    }
                });
            }
            "exceptions" => read(row, "exceptions", ID, f, sh, &mut s.exceptions, |r| {
                Exception {
                    id: r.unique("id"),
                    rule: r.text("rule"),
                    child_id: r.opt_text("child_id"),
                    conference_id: r.opt_text("conference_id"),
                    agency_id: r.opt_text("agency_id"),
                    reason: r.unique("reason"),
                    agreed_by: r.unique("agreed_by"),
                    recorded_at: r.instant("recorded_at"),
                }
            }),
            _ => {}
        }
    }

    /// A finding about a row, made apart from reading its values.
    pub fn finding(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    /// Gives every row read so far its id (see [`Ids`]).
    fn settle(&mut self) {
        let s = &mut self.state;
        self.core_group_ids.settle(&mut s.core_groups);
        self.visit_ids.settle(&mut s.visits);
        self.cin_review_ids.settle(&mut s.cin_reviews);
    }

    /// Takes in the rows another loader read (of other tables, or more of the same).
    pub fn join(&mut self, mut other: Loader) {
        // A pending id names its row by its place in its own loader's table.
        self.settle();
        other.settle();
        macro_rules! append {
            ($($t:ident),*) => {
                // Named in full, so a table added to the state must be added here.
                let CaseState { $($t,)* load_findings: _ } = other.state;
                // Each table is mostly read whole by one of the two: its rows
                // are then moved, not copied into fresh memory (at national
                // size, tens of megabytes of visits or invitations).
                $(
                    if self.state.$t.is_empty() {
                        self.state.$t = $t;
                    } else {
                        self.state.$t.extend($t);
                    }
                )*
            };
        }
        append!(
            agencies,
            teams,
            workers,
            children,
            referrals,
            assessments,
            strategy_discussions,
            conferences,
            conference_children,
            invitations,
            cp_plans,
            core_groups,
            visits,
            cin_reviews,
            exceptions
        );
        self.findings.extend(other.findings);
    }

    pub fn finish(mut self) -> CaseState {
        self.settle();
        CaseState {
            load_findings: self.findings,
            ..self.state
        }
    }
}

/// A row of `cpwatch_notifications` (instants as RFC 3339 text in both databases).
pub fn log_row<R: Get>(r: &R) -> Result<crate::store::LogRow, String> {
    let text = |c: &str| {
        r.text(c)?
            .map(String::from)
            .ok_or_else(|| format!("{c} is empty"))
    };
    let time = |c: &str| r.text(c)?.map(parse_instant).transpose();
    Ok(crate::store::LogRow {
        id: text("id")?,
        obligation_key: text("obligation_key")?,
        stage: text("stage")?,
        recipient: text("recipient")?,
        occurrence: r.int("occurrence")?.unwrap_or(0),
        board: text("board")?,
        rule: text("rule")?,
        status: text("status")?,
        attempts: r.int("attempts")?.unwrap_or(0),
        next_attempt_at: time("next_attempt_at")?,
        message_id: r.text("message_id")?.map(String::from),
        last_error: r.text("last_error")?.map(String::from),
        planned_at: time("planned_at")?.ok_or("planned_at is empty")?,
        sent_at: time("sent_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::{parse_instant, Get, Loader, BLOCK};
    use crate::domain::case::{Agency, CaseState, Instant};
    use chrono::NaiveDate;

    /// A row of any table, its values as bytes as a database might hold
    /// them (not always UTF-8); a column left out is empty.
    struct RawRow(Vec<(&'static str, Vec<u8>)>);

    impl Get for RawRow {
        fn text(&self, col: &str) -> Result<Option<&str>, String> {
            self.raw_text(col)?.map(super::utf8).transpose()
        }
        fn raw_text(&self, col: &str) -> Result<Option<&[u8]>, String> {
            Ok(self
                .0
                .iter()
                .find(|(c, _)| *c == col)
                .map(|(_, v)| v.as_slice()))
        }
        fn boolean(&self, _: &str) -> Result<Option<bool>, String> {
            Ok(None)
        }
        fn int(&self, _: &str) -> Result<Option<i64>, String> {
            Ok(None)
        }
        fn instant(&self, _: &str) -> Result<Option<Instant>, String> {
            parse_instant("2026-01-13T10:00:00Z").map(Some)
        }
        fn date(&self, _: &str) -> Result<Option<NaiveDate>, String> {
            Ok(None)
        }
    }

    /// Text that is not UTF-8 is a finding each time it is read, whether
    /// it follows a good value of its column or repeats a bad one; a value
    /// read before is taken again without a second check.
    #[test]
    fn text_that_is_not_utf8_is_a_finding_each_time() {
        let mut l = Loader::default();
        let visit = |id: &[u8], child: &[u8]| {
            RawRow(vec![("id", id.to_vec()), ("child_id", child.to_vec())])
        };
        for (id, child) in [
            (b"V1".as_slice(), b"C1".as_slice()),
            (b"V2", b"C\xff"),
            (b"V3", b"C\xff"),
            (b"V4", b"C1"),
        ] {
            l.row("visits", &visit(id, child));
        }
        let agency = |id: &[u8], email: &[u8]| {
            RawRow(vec![
                ("id", id.to_vec()),
                ("name", b"N".to_vec()),
                ("professional_group", b"police".to_vec()),
                ("email", email.to_vec()),
            ])
        };
        for (id, email) in [
            (b"A1".as_slice(), b"a@x".as_slice()),
            (b"A2", b"a\xff@x"),
            (b"A3", b"a\xff@x"),
            (b"A4", b"a@x"),
        ] {
            l.row("agencies", &agency(id, email));
        }
        let s = l.finish();
        let visits: Vec<(&str, &str)> = (s.visits.iter())
            .map(|v| (v.id.as_str(), v.child_id.as_str()))
            .collect();
        assert_eq!(visits, [("V1", "C1"), ("V4", "C1")]);
        let emails: Vec<Option<&str>> = s.agencies.iter().map(|a| a.email.as_deref()).collect();
        assert_eq!(emails, [Some("a@x"), None, None, Some("a@x")]);
        let found: Vec<(&str, &str, &str)> = (s.load_findings.iter())
            .map(|f| (f.kind.as_str(), f.table.as_str(), f.row.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("unreadable_value", "visits", "V2"),
                ("missing_value", "visits", "V2"),
                ("unreadable_value", "visits", "V3"),
                ("missing_value", "visits", "V3"),
                ("unreadable_value", "agencies", "A2"),
                ("unreadable_value", "agencies", "A3"),
            ]
        );
        assert!(s.load_findings[0].message.contains("not UTF-8"));
    }

    /// Ids are gathered into blocks and set when a block is full, when
    /// loaders join and when the load finishes: every row gets its own,
    /// across blocks, with rows left out between them (a missing child),
    /// and when both loaders have ids still to set.
    #[test]
    fn every_row_gets_its_own_id_however_the_blocks_fall() {
        let (mut first, mut other) = (Loader::default(), Loader::default());
        let mut want = (Vec::new(), Vec::new());
        // Ids of every length up to 29 bytes, some not ASCII, over several blocks.
        let n = 3 * BLOCK / 10;
        for i in 0..n {
            let id = format!("{}-{i}", "é".repeat(i % 13));
            let mut row = RawRow(vec![("id", id.clone().into_bytes())]);
            let (loader, kept) = if i < n / 2 {
                (&mut first, &mut want.0)
            } else {
                (&mut other, &mut want.1)
            };
            if i % 7 != 3 {
                row.0
                    .push(("child_id", format!("C-{}", i / 5).into_bytes()));
                kept.push(id);
            }
            loader.row("visits", &row);
        }
        first.join(other);
        let state = first.finish();
        let got: Vec<&str> = state.visits.iter().map(|v| v.id.as_str()).collect();
        let want: Vec<&String> = want.0.iter().chain(&want.1).collect();
        assert_eq!(got, want);
        assert_eq!(state.load_findings.len(), n - want.len());
        // Fewer blocks than ids: the ids share their allocations.
        let blocks: std::collections::HashSet<*const u8> = (state.visits.iter())
            .map(|v| v.id.parent().as_ptr())
            .collect();
        assert!(
            blocks.len() > 2 && blocks.len() < n / 100,
            "{} blocks",
            blocks.len()
        );
    }

    fn agency(id: &str) -> Agency {
        Agency {
            id: id.into(),
            name: id.into(),
            professional_group: "police".into(),
            email: None,
        }
    }

    fn ids(s: &CaseState) -> Vec<&str> {
        s.agencies.iter().map(|a| a.id.as_str()).collect()
    }

    /// A table only one loader read is taken whole; one both read keeps the
    /// first loader's rows, then the other's.
    #[test]
    fn joined_loaders_keep_every_row_in_order() {
        let mut first = Loader::default();
        let mut other = Loader::default();
        other.state.agencies = vec![agency("A"), agency("B")];
        first.join(other);
        assert_eq!(ids(&first.state), ["A", "B"]);
        let mut more = Loader::default();
        more.state.agencies = vec![agency("C")];
        first.join(more);
        assert_eq!(ids(&first.finish()), ["A", "B", "C"]);
    }
}
