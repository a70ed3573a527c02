//! The index of the clean state: rows by id and by child, the links between
//! children and conferences, agreed exceptions by what they name.

use rustc_hash::FxHashMap as HashMap;

use chrono::NaiveDate;

use super::obligation::*;
use super::parallel::both;
use super::sanitize::*;
use crate::domain::case::*;

/// A row's address: rows outlive the evaluation, so an address names one row,
/// and hashing it costs a multiply, where hashing an id reads the id's bytes
/// (at national size, a cache miss or two for every lookup).
pub(super) type Addr = usize;

pub(super) fn addr<T>(row: &T) -> Addr {
    std::ptr::from_ref(row) as usize
}

/// The case state by what evaluation looks things up by. Ids are resolved to
/// their rows once, here; the rows of a child or a conference are then found
/// by the child's or conference's slot.
pub(super) struct Index<'a> {
    pub(super) children: HashMap<&'a str, &'a Child>,
    pub(super) child_slots: Slots<Child>,
    pub(super) conference_slots: Slots<Conference>,
    /// Each child's team (of its allocated worker), by slot.
    pub(super) child_teams: Vec<Option<&'a Text>>,
    /// Each conference's children (rows naming a known child) with the child, in order of child id.
    pub(super) conf_children: Grouped<(&'a ConferenceChild, &'a Child)>,
    /// Each child's conferences, in date order.
    pub(super) child_confs: Grouped<(&'a Conference, &'a ConferenceChild)>,
    /// Each conference's invitations, with the agency invited.
    pub(super) invitations: Grouped<(&'a Invitation, &'a Agency)>,
    pub(super) referrals: Grouped<&'a Referral>,
    pub(super) sds: Grouped<&'a StrategyDiscussion>,
    pub(super) assessments: Grouped<&'a Assessment>,
    pub(super) plans: Grouped<&'a CpPlan>,
    pub(super) core_groups: Grouped<Instant>,
    pub(super) visits: Grouped<Instant>,
    pub(super) cin_reviews: Grouped<NaiveDate>,
    pub(super) reconvened_by: HashMap<Addr, Vec<&'a Conference>>,
    /// Agreed exceptions by rule, then by the id that finds them.
    pub(super) exceptions: HashMap<&'a str, Exceptions<'a>>,
    pub(super) conferences: HashMap<&'a str, &'a Conference>,
}

/// One rule's exceptions, each filed under the narrowest id it names (its
/// conference, else its child, else its agency), so matching an obligation
/// looks at the few that could apply rather than every one of the rule.
#[derive(Default)]
pub(super) struct Exceptions<'a> {
    pub(super) by_conference: HashMap<&'a str, Vec<&'a Exception>>,
    pub(super) by_child: HashMap<&'a str, Vec<&'a Exception>>,
    pub(super) by_agency: HashMap<&'a str, Vec<&'a Exception>>,
}

impl<'a> Exceptions<'a> {
    pub(super) fn file(&mut self, e: &'a Exception) {
        let (map, key) = match (&e.conference_id, &e.child_id, &e.agency_id) {
            (Some(c), _, _) => (&mut self.by_conference, c),
            (None, Some(c), _) => (&mut self.by_child, c),
            (None, None, Some(a)) => (&mut self.by_agency, a),
            (None, None, None) => return,
        };
        map.entry(key.as_str()).or_default().push(e);
    }
}

/// Rows by id. Of rows sharing an id (a view over tables without keys can
/// give them) the first read is kept and each other is a finding, so a row
/// is never evaluated twice, nor its children's rows shared out between copies.
pub(super) fn by_id<'a, R>(
    rows: impl IntoIterator<Item = &'a R>,
    table: &str,
    id: impl Fn(&'a R) -> &'a Text,
    f: &mut Vec<Finding>,
) -> HashMap<&'a str, &'a R> {
    let rows = rows.into_iter();
    let mut by: HashMap<&'a str, &'a R> = sized(rows.size_hint().0);
    for r in rows {
        match by.entry(id(r).as_str()) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(r);
            }
            std::collections::hash_map::Entry::Occupied(o) => f.push(Finding::new(
                "duplicate_id",
                table,
                o.key(),
                "another row has the same id; only the first row read is evaluated",
            )),
        }
    }
    by
}

/// An empty map with room for `n` entries.
pub(super) fn sized<K, V>(n: usize) -> HashMap<K, V> {
    HashMap::with_capacity_and_hasher(n, Default::default())
}

/// Whether `row` is the one kept under its id by [`by_id`].
pub(super) fn kept<R>(by: &HashMap<&str, &R>, id: &str, row: &R) -> bool {
    by.get(id).is_some_and(|k| std::ptr::eq(*k, row))
}

/// A row's place in its table: a child's or a conference's rows are then
/// found by indexing a vector, where hashing a key cost a cache miss or two a
/// lookup at national size.
pub(super) type Slot = usize;

/// The slot of no row: every lookup of it finds nothing.
pub(super) const NO_SLOT: Slot = usize::MAX;

/// The slots of one table's rows: a row's place in the state's slice, found
/// from its address, or for one of the few corrected copies (`Fixes`) the
/// place of the row it replaces.
#[derive(Clone)]
pub(super) struct Slots<T> {
    pub(super) base: Addr,
    pub(super) len: usize,
    pub(super) copies: HashMap<Addr, Slot>,
    pub(super) of: std::marker::PhantomData<fn(&T)>,
}

impl<T> Slots<T> {
    pub(super) fn new(rows: &[T], copies: impl Iterator<Item = (Addr, Slot)>) -> Self {
        Slots {
            base: rows.as_ptr() as Addr,
            len: rows.len(),
            copies: copies.collect(),
            of: std::marker::PhantomData,
        }
    }

    pub(super) fn of(&self, row: &T) -> Slot {
        let size = std::mem::size_of::<T>().max(1);
        match addr(row).checked_sub(self.base).map(|off| off / size) {
            Some(slot) if slot < self.len => slot,
            _ => self.copies.get(&addr(row)).copied().unwrap_or(NO_SLOT),
        }
    }
}

/// Rows grouped by the child or conference they belong to: the rows in one
/// vector, each group a range of it found by its slot, so an index of
/// national size is a few allocations to build and to free, and a lookup is
/// an index into a vector. Ranges are `u32`: a table of four billion rows is
/// far beyond what a load can hold.
pub(super) struct Grouped<V> {
    /// By slot: the group's range of `rows` (empty for none).
    pub(super) ranges: Vec<(u32, u32)>,
    pub(super) rows: Vec<V>,
}

impl<V: Copy> Grouped<V> {
    /// From the rows in the order read and the runs they came in (a group's
    /// slot with the run's range of `rows`), for `slots` slots. A group read
    /// in more than one run is gathered into one range, its runs in the order read.
    pub(super) fn from_runs(
        rows: Vec<V>,
        mut runs: Vec<(Slot, usize, usize)>,
        slots: usize,
    ) -> Self {
        runs.retain(|&(k, a, b)| k < slots && a < b && b <= rows.len());
        let mut ranges = vec![(0u32, 0u32); slots];
        let as_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let mut one_run_each = true;
        for &(k, a, b) in &runs {
            if let Some(r) = ranges.get_mut(k) {
                one_run_each &= r.0 == r.1;
                *r = (as_u32(a), as_u32(b));
            }
        }
        if one_run_each {
            return Grouped { ranges, rows };
        }
        // Stable, so each group's runs stay in the order read.
        runs.sort_by_key(|r| r.0);
        ranges.fill((0, 0));
        let mut gathered = Vec::with_capacity(rows.len());
        for group in runs.chunk_by(|a, b| a.0 == b.0) {
            let start = gathered.len();
            for &(_, a, b) in group {
                gathered.extend_from_slice(rows.get(a..b).unwrap_or_default());
            }
            if let Some(r) = group.first().and_then(|&(k, _, _)| ranges.get_mut(k)) {
                *r = (as_u32(start), as_u32(gathered.len()));
            }
        }
        Grouped {
            ranges,
            rows: gathered,
        }
    }

    /// From (slot, row) pairs in the order read.
    pub(super) fn from_pairs(pairs: impl Iterator<Item = (Slot, V)>, slots: usize) -> Self {
        let mut rows = Vec::with_capacity(pairs.size_hint().0);
        let mut runs: Vec<(Slot, usize, usize)> = Vec::new();
        for (k, v) in pairs {
            match runs.last_mut() {
                Some(run) if run.0 == k => run.2 += 1,
                _ => runs.push((k, rows.len(), rows.len() + 1)),
            }
            rows.push(v);
        }
        Grouped::from_runs(rows, runs, slots)
    }
}

impl<V> Grouped<V> {
    /// The group's rows; none for a slot with no rows.
    pub(super) fn get(&self, slot: Slot) -> Option<&[V]> {
        let &(a, b) = self.ranges.get(slot)?;
        self.rows
            .get(a as usize..b as usize)
            .filter(|g| !g.is_empty())
    }

    /// Each group with its rows, by slot.
    pub(super) fn iter(&self) -> impl Iterator<Item = (Slot, &[V])> {
        (0..self.ranges.len()).filter_map(|k| Some((k, self.get(k)?)))
    }

    /// Each group's rows, to sort or check in place.
    pub(super) fn for_each_mut(&mut self, mut f: impl FnMut(&mut [V])) {
        for &(a, b) in &self.ranges {
            if let Some(group) = self.rows.get_mut(a as usize..b as usize) {
                if !group.is_empty() {
                    f(group);
                }
            }
        }
    }
}

/// A table's rows by child, each child's in the order read, with a finding
/// for each row naming no child. Tables are mostly written child by child, so
/// rows come in runs of one child, and a run costs one lookup, not one a row.
/// Each child's rows of a table, by the child's slot; a row naming no child
/// is a finding. With `unique`, a second row of a child with the same id (a
/// view over tables without keys can give one) is a finding and left out:
/// the id names its obligations, which it would double (for the tables
/// with a few rows a child, whose ids name obligations).
pub(super) fn by_child<'a, R: 'a, V: Copy>(
    rows: &[&'a R],
    table: &str,
    children: &HashMap<&str, &'a Child>,
    slots: &Slots<Child>,
    f: &mut Vec<Finding>,
    read: impl Fn(&&'a R) -> (&'a Text, &'a str, V),
    unique: bool,
) -> Grouped<V> {
    let mut kept = Vec::with_capacity(rows.len());
    let mut runs = Vec::with_capacity(children.len().min(rows.len()));
    for run in rows.chunk_by(|a, b| read(a).0 == read(b).0) {
        let Some(first) = run.first() else { continue };
        let child = read(first).0.as_str();
        match children.get(child) {
            Some(c) => {
                let start = kept.len();
                for (n, r) in run.iter().enumerate() {
                    let id = read(r).1;
                    let earlier = run.get(..n).unwrap_or(&[]);
                    if unique && earlier.iter().any(|e| read(e).1 == id) {
                        f.push(Finding::new(
                            "duplicate_id",
                            table,
                            id,
                            "another row of this child has the same id; only the first row read is evaluated",
                        ));
                        continue;
                    }
                    kept.push(read(r).2);
                }
                runs.push((slots.of(c), start, kept.len()));
            }
            None => {
                for r in run {
                    f.push(Finding::new(
                        "unknown_reference",
                        table,
                        read(r).1,
                        format!("child_id {child:?} names no child"),
                    ));
                }
            }
        }
    }
    Grouped::from_runs(kept, runs, slots.len)
}

/// Each child's rows of the tables that belong to one child.
pub(super) struct PerChild<'a> {
    pub(super) referrals: Grouped<&'a Referral>,
    pub(super) sds: Grouped<&'a StrategyDiscussion>,
    pub(super) assessments: Grouped<&'a Assessment>,
    pub(super) plans: Grouped<&'a CpPlan>,
    pub(super) core_groups: Grouped<Instant>,
    pub(super) visits: Grouped<Instant>,
    pub(super) cin_reviews: Grouped<NaiveDate>,
}

impl<'a> PerChild<'a> {
    pub(super) fn new(
        s: &Clean<'a>,
        children: &HashMap<&'a str, &'a Child>,
        f: &mut Vec<Finding>,
    ) -> Self {
        let slots = &s.child_slots;
        // The tables whose ids name obligations: a repeated row is a finding.
        macro_rules! unique {
            ($rows:expr, $table:literal) => {
                by_child(
                    $rows,
                    $table,
                    children,
                    slots,
                    f,
                    |r| (&r.child_id, r.id.as_str(), *r),
                    true,
                )
            };
        }
        let referrals = unique!(&s.referrals, "referrals");
        let mut sds = unique!(&s.strategy_discussions, "strategy_discussions");
        let mut assessments = unique!(&s.assessments, "assessments");
        let mut plans = unique!(&s.cp_plans, "cp_plans");
        // Their instants only: many rows a child, and a repeat doubles nothing.
        macro_rules! instants {
            ($rows:expr, $table:literal, $at:ident) => {
                by_child(
                    $rows,
                    $table,
                    children,
                    slots,
                    f,
                    |r| (&r.child_id, r.id.as_str(), r.$at),
                    false,
                )
            };
        }
        let mut core_groups = instants!(&s.core_groups, "core_groups", held_at);
        let mut visits = instants!(&s.visits, "visits", visited_at);
        let mut cin_reviews = instants!(&s.cin_reviews, "cin_reviews", held_on);

        sds.for_each_mut(|v| v.sort_by(|a, b| (a.held_at, &a.id).cmp(&(b.held_at, &b.id))));
        plans.for_each_mut(|v| {
            v.sort_by(|a, b| (a.started_on, &a.id).cmp(&(b.started_on, &b.id)));
            let open: Vec<&str> = v
                .iter()
                .filter(|p| p.ended_on.is_none())
                .map(|p| p.id.as_str())
                .collect();
            if let Some(second) = open.get(1) {
                f.push(Finding::new(
                    "two_open_plans",
                    "cp_plans",
                    second,
                    format!(
                        "child {:?} has {} open plans: {}",
                        v.first().map_or("", |p| {
                            children
                                .get(p.child_id.as_str())
                                .map_or(p.child_id.as_str(), |c| c.reference.as_str())
                        }),
                        open.len(),
                        open.join(", ")
                    ),
                ));
            }
        });
        assessments.for_each_mut(|v| {
            v.sort_by(|a, b| (a.started_on, &a.id).cmp(&(b.started_on, &b.id)));
        });
        core_groups.for_each_mut(<[Instant]>::sort);
        visits.for_each_mut(<[Instant]>::sort);
        cin_reviews.for_each_mut(<[NaiveDate]>::sort);
        PerChild {
            referrals,
            sds,
            assessments,
            plans,
            core_groups,
            visits,
            cin_reviews,
        }
    }
}

/// Each conference's invitations, with the agency invited.
pub(super) fn invitations<'a>(
    s: &Clean<'a>,
    conferences: &HashMap<&'a str, &'a Conference>,
    f: &mut Vec<Finding>,
) -> Grouped<(&'a Invitation, &'a Agency)> {
    let conf_slots = &s.conference_slots;
    let agencies: HashMap<&str, &Agency> = s.agencies.iter().map(|a| (a.id.as_str(), a)).collect();
    // A load shares one text per value, so an agency's invitations mostly
    // name it by one address: found by that, its text is hashed and compared once.
    let mut by_address: HashMap<(usize, usize), Option<&Agency>> = HashMap::default();
    let mut invitations = Vec::with_capacity(s.invitations.len());
    let mut invitation_runs: Vec<(Slot, usize, usize)> = Vec::with_capacity(conferences.len());
    // Each conference's latest run, and each run's previous run of the same
    // conference (by place in `invitation_runs`): a conference met again in a
    // later run (rows not grouped by conference) has its earlier runs looked
    // through for a repeated agency, and rows grouped by conference, as
    // usual, pay one store a run for it.
    const NO_RUN: u32 = u32::MAX;
    let mut latest_run = vec![NO_RUN; conf_slots.len];
    let mut earlier_run: Vec<u32> = Vec::with_capacity(conferences.len());
    // Written conference by conference, so a run of one conference costs one lookup of it.
    for run in s
        .invitations
        .chunk_by(|a, b| a.conference_id == b.conference_id)
    {
        let conf = run
            .first()
            .and_then(|i| conferences.get(i.conference_id.as_str()).copied());
        let slot = conf.map(|c| conf_slots.of(c));
        let before = slot
            .and_then(|k| latest_run.get(k).copied())
            .unwrap_or(NO_RUN);
        let start = invitations.len();
        for i in run.iter().copied() {
            let row = || format!("{}/{}", i.conference_id, i.agency_id);
            let id = i.agency_id.as_str();
            let found = by_address
                .entry((id.as_ptr() as usize, id.len()))
                .or_insert_with(|| agencies.get(id).copied());
            let Some(agency) = *found else {
                f.push(Finding::new(
                    "unknown_agency",
                    "invitations",
                    &row(),
                    format!("agency_id {:?} names no agency", i.agency_id),
                ));
                continue;
            };
            // A second row inviting the same agency (a view over tables
            // without keys can give one) would double its obligations.
            let invites = |from: usize, to: usize| {
                invitations
                    .get(from..to)
                    .unwrap_or(&[])
                    .iter()
                    .any(|(j, _): &(&Invitation, &Agency)| j.agency_id == i.agency_id)
            };
            let mut seen = invites(start, invitations.len());
            let mut r = before;
            while !seen && r != NO_RUN {
                let at = r as usize;
                seen = invitation_runs
                    .get(at)
                    .is_some_and(|&(_, a, b)| invites(a, b));
                r = earlier_run.get(at).copied().unwrap_or(NO_RUN);
            }
            match conf {
                Some(_) if seen => f.push(Finding::new(
                    "duplicate_id",
                    "invitations",
                    &row(),
                    "a second row inviting this agency to this conference: only the first is evaluated",
                )),
                Some(_) => invitations.push((i, agency)),
                None => f.push(Finding::new(
                    "unknown_reference",
                    "invitations",
                    &row(),
                    format!("conference_id {:?} names no conference", i.conference_id),
                )),
            }
        }
        if let Some(k) = slot {
            if let Some(latest) = latest_run.get_mut(k) {
                *latest = u32::try_from(invitation_runs.len()).unwrap_or(NO_RUN);
            }
            earlier_run.push(before);
            invitation_runs.push((k, start, invitations.len()));
        }
    }
    Grouped::from_runs(invitations, invitation_runs, conf_slots.len)
}

/// Everything else that ties rows together but invitations: children's teams,
/// conferences with their children, reconvened conferences, exceptions.
pub(super) struct Links<'a> {
    pub(super) child_teams: Vec<Option<&'a Text>>,
    pub(super) conf_children: Grouped<(&'a ConferenceChild, &'a Child)>,
    pub(super) child_confs: Grouped<(&'a Conference, &'a ConferenceChild)>,
    pub(super) reconvened_by: HashMap<Addr, Vec<&'a Conference>>,
    pub(super) exceptions: HashMap<&'a str, Exceptions<'a>>,
}

impl<'a> Links<'a> {
    pub(super) fn new(
        s: &Clean<'a>,
        children: &HashMap<&'a str, &'a Child>,
        conferences: &HashMap<&'a str, &'a Conference>,
        f: &mut Vec<Finding>,
    ) -> Self {
        let child_teams = child_teams(s, f);
        let (conf_children, child_confs) = conference_links(s, children, conferences, f);
        Links {
            child_teams,
            conf_children,
            child_confs,
            reconvened_by: reconvened_by(s, conferences, f),
            exceptions: exceptions(s, f),
        }
    }
}

/// Each child's team by its slot, through its allocated worker: looked up
/// once here, not for every subject about the child.
fn child_teams<'a>(s: &Clean<'a>, f: &mut Vec<Finding>) -> Vec<Option<&'a Text>> {
    let workers: HashMap<&str, &Worker> = s.workers.iter().map(|w| (w.id.as_str(), w)).collect();
    let teams: HashMap<&str, &Team> = s.teams.iter().map(|t| (t.id.as_str(), t)).collect();
    for w in s.workers {
        if !teams.contains_key(w.team_id.as_str()) {
            f.push(Finding::new(
                "unknown_reference",
                "workers",
                &w.id,
                format!("team_id {:?} names no team", w.team_id),
            ));
        }
    }
    (s.children.iter())
        .map(|c| {
            let w = c.allocated_worker_id.as_ref()?;
            let worker = workers.get(w.as_str());
            if worker.is_none() {
                f.push(Finding::new(
                    "unknown_reference",
                    "children",
                    &c.id,
                    format!("allocated_worker_id {w:?} names no worker"),
                ));
            }
            worker.map(|w| &w.team_id)
        })
        .collect()
}

/// The children of each conference (by child id) and the conferences of
/// each child (by date), from the `conference_children` rows that name both.
#[allow(clippy::type_complexity)]
fn conference_links<'a>(
    s: &Clean<'a>,
    children: &HashMap<&'a str, &'a Child>,
    conferences: &HashMap<&'a str, &'a Conference>,
    f: &mut Vec<Finding>,
) -> (
    Grouped<(&'a ConferenceChild, &'a Child)>,
    Grouped<(&'a Conference, &'a ConferenceChild)>,
) {
    let (child_slots, conf_slots) = (&s.child_slots, &s.conference_slots);
    let mut links = Vec::with_capacity(s.conference_children.len());
    let mut linked: rustc_hash::FxHashSet<(Addr, Addr)> =
        rustc_hash::FxHashSet::with_capacity_and_hasher(links.capacity(), Default::default());
    for cc in s.conference_children.iter().copied() {
        let row = || format!("{}/{}", cc.conference_id, cc.child_id);
        let conf = conferences.get(cc.conference_id.as_str());
        if conf.is_none() {
            f.push(Finding::new(
                "unknown_reference",
                "conference_children",
                &row(),
                format!("conference_id {:?} names no conference", cc.conference_id),
            ));
        }
        let Some(child) = children.get(cc.child_id.as_str()).copied() else {
            f.push(Finding::new(
                "unknown_reference",
                "conference_children",
                &row(),
                format!("child_id {:?} names no child", cc.child_id),
            ));
            continue;
        };
        let Some(conf) = conf else { continue };
        // A second row about the same child at the same conference (a view
        // over tables without keys can give one) would double its obligations.
        if !linked.insert((addr(*conf), addr(child))) {
            f.push(Finding::new(
                "duplicate_id",
                "conference_children",
                &row(),
                "a second row about this child at this conference: only the first is evaluated",
            ));
            continue;
        }
        links.push((*conf, cc, child));
    }
    let mut conf_children = Grouped::from_pairs(
        links
            .iter()
            .map(|&(conf, cc, child)| (conf_slots.of(conf), (cc, child))),
        conf_slots.len,
    );
    conf_children.for_each_mut(|v| v.sort_by(|a, b| a.0.child_id.cmp(&b.0.child_id)));
    // By child: a child's links are spread over the conferences read, so gathered by sorting (stably).
    links.sort_by_key(|&(_, _, child)| child_slots.of(child));
    let mut child_confs = Grouped::from_pairs(
        links
            .iter()
            .map(|&(conf, cc, child)| (child_slots.of(child), (conf, cc))),
        child_slots.len,
    );
    drop(links);
    child_confs.for_each_mut(|v| {
        v.sort_by(|a, b| (a.0.date(), &a.0.id).cmp(&(b.0.date(), &b.0.id)));
    });
    (conf_children, child_confs)
}

/// The conferences that reconvene each conference, by date.
fn reconvened_by<'a>(
    s: &Clean<'a>,
    conferences: &HashMap<&'a str, &'a Conference>,
    f: &mut Vec<Finding>,
) -> HashMap<Addr, Vec<&'a Conference>> {
    let mut reconvened_by: HashMap<Addr, Vec<&Conference>> = HashMap::default();
    for c in s
        .conferences
        .iter()
        .copied()
        .filter(|c| kept(conferences, &c.id, c))
    {
        if let Some(r) = &c.reconvenes_id {
            if let Some(reconvened) = conferences.get(r.as_str()) {
                reconvened_by.entry(addr(*reconvened)).or_default().push(c);
            } else {
                f.push(Finding::new(
                    "missing_reconvened_conference",
                    "conferences",
                    &c.id,
                    format!("reconvenes_id {r:?} names no conference"),
                ));
            }
        }
    }
    // Ties are broken by id (here and in PerChild), so results never depend on the order rows were read in.
    for v in reconvened_by.values_mut() {
        v.sort_by(|a, b| (a.date(), &a.id).cmp(&(b.date(), &b.id)));
    }
    reconvened_by
}

/// Agreed exceptions by rule, filed under what they name.
fn exceptions<'a>(s: &Clean<'a>, f: &mut Vec<Finding>) -> HashMap<&'a str, Exceptions<'a>> {
    let mut exceptions = HashMap::<&str, Exceptions>::default();
    for e in s.exceptions {
        exceptions.entry(e.rule.as_str()).or_default().file(e);
    }
    for e in s.exceptions {
        if e.child_id.is_none() && e.conference_id.is_none() && e.agency_id.is_none() {
            f.push(Finding::new(
                "exception_unmatched",
                "exceptions",
                &e.id,
                "names no child, conference or agency, so it applies to nothing",
            ));
        }
    }
    exceptions
}

impl<'a> Index<'a> {
    /// Indexes the state; with `threads` above one, the per-child tables and
    /// the invitations each on a thread of its own meanwhile (they need only
    /// the children and conferences by id, and each takes about as long as
    /// the rest), their findings added after.
    pub(super) fn new(s: &Clean<'a>, f: &mut Vec<Finding>, threads: usize) -> Self {
        let children = by_id(s.children, "children", |c| &c.id, f);
        let conferences = by_id(s.conferences.iter().copied(), "conferences", |c| &c.id, f);
        let (((per_child, per_child_found), (invitations, invitations_found)), links) = both(
            threads,
            || {
                both(
                    threads,
                    || {
                        let mut found = Vec::new();
                        (PerChild::new(s, &children, &mut found), found)
                    },
                    || {
                        let mut found = Vec::new();
                        (invitations(s, &conferences, &mut found), found)
                    },
                )
            },
            || Links::new(s, &children, &conferences, f),
        );
        f.extend(per_child_found);
        f.extend(invitations_found);
        let idx = Index {
            children,
            child_slots: s.child_slots.clone(),
            conference_slots: s.conference_slots.clone(),
            child_teams: links.child_teams,
            conf_children: links.conf_children,
            child_confs: links.child_confs,
            invitations,
            referrals: per_child.referrals,
            sds: per_child.sds,
            assessments: per_child.assessments,
            plans: per_child.plans,
            core_groups: per_child.core_groups,
            visits: per_child.visits,
            cin_reviews: per_child.cin_reviews,
            reconvened_by: links.reconvened_by,
            exceptions: links.exceptions,
            conferences,
        };
        idx.cross_checks(f);
        idx
    }

    /// A child's case reference (what people look children up by), for messages.
    pub(super) fn reference<'r>(&'r self, child: &'r str) -> &'r str {
        self.children
            .get(child)
            .map_or(child, |c| c.reference.as_str())
    }

    /// Contradictions that need several tables at once.
    pub(super) fn cross_checks(&self, f: &mut Vec<Finding>) {
        for (child, confs) in self.child_confs.iter() {
            // For a finding's message only: looked up when there is one.
            let reference = || {
                confs
                    .first()
                    .map_or("", |(_, cc)| self.reference(&cc.child_id))
            };
            let s47: Vec<&&StrategyDiscussion> = self
                .sds
                .get(child)
                .map(|v| v.iter().filter(|d| d.s47_initiated).collect())
                .unwrap_or_default();
            for (conf, _) in confs {
                let Some(held) = conf.took_place() else {
                    continue;
                };
                if matches!(conf.kind.as_str(), "initial" | "pre_birth")
                    && conf.reconvenes_id.is_none()
                    && !s47.is_empty()
                    && s47.iter().all(|d| d.held_at > held)
                {
                    f.push(Finding::new(
                        "conference_before_strategy_discussion",
                        "conferences",
                        &conf.id,
                        format!("initial conference held {} before child {:?}'s first section 47 strategy discussion ({})", stamp(held), reference(), s47.first().map(|d| stamp(d.held_at)).unwrap_or_default()),
                    ));
                }
                if conf.kind == "review" {
                    let day = held.date_naive();
                    let on_plan = self.plans.get(child).is_some_and(|ps| {
                        ps.iter()
                            .any(|p| p.started_on <= day && p.ended_on.is_none_or(|e| e >= day))
                    });
                    if !on_plan {
                        f.push(Finding::new("review_without_plan", "conferences", &conf.id, format!("review conference about child {:?}, who has no child protection plan on {day}", reference())));
                    }
                }
            }
        }
    }

    pub(super) fn took_place_confs(
        &self,
        child: &Child,
    ) -> impl Iterator<Item = (&'a Conference, &'a ConferenceChild, Instant)> + '_ {
        self.child_confs
            .get(self.child(child))
            .into_iter()
            .flatten()
            .filter_map(|(c, cc)| c.took_place().map(|t| (*c, *cc, t)))
    }

    /// The child's plan at a date: the one covering it, else the next to start.
    pub(super) fn plan_at(&self, child: &Child, day: NaiveDate) -> Option<&'a CpPlan> {
        let plans = self.plans.get(self.child(child))?;
        plans
            .iter()
            .rev()
            .find(|p| p.started_on <= day && p.ended_on.is_none_or(|e| e >= day))
            .or_else(|| plans.iter().find(|p| p.started_on >= day))
            .copied()
    }

    /// The conference's children, in order of child id.
    pub(super) fn children_of(&self, conf: &Conference) -> &[(&'a ConferenceChild, &'a Child)] {
        self.conf_children
            .get(self.conference(conf))
            .unwrap_or_default()
    }

    pub(super) fn child(&self, child: &Child) -> Slot {
        self.child_slots.of(child)
    }

    pub(super) fn conference(&self, conf: &Conference) -> Slot {
        self.conference_slots.of(conf)
    }

    /// The child a conference is counted under (its board's, its team's): its first by id.
    pub(super) fn first_child(&self, conf: &Conference) -> Option<&'a Child> {
        self.children_of(conf).first().map(|(_, c)| *c)
    }

    pub(super) fn team_of(&self, child: Option<&Child>) -> Option<&'a Text> {
        self.child_teams.get(self.child(child?)).copied().flatten()
    }
}
