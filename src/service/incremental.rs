//! Incremental evaluation: what the service keeps between ticks, and how a
//! tick re-evaluates only the children that changed, or whose results the
//! passing of time changes, with the results a full evaluation would give.
//!
//! Evaluation is local to a *component*: the children linked through the
//! conferences they share, those conferences, the conferences they reconvene
//! and every row about any of them. Only the reference tables (agencies, teams,
//! workers) and exceptions naming no child or conference reach across
//! components; a change to them calls for a full evaluation.
//!
//! Time changes a component's results only at a day boundary (a full
//! evaluation comes with each new day), when one of its obligations falls due,
//! when a due date leaves the 30- or 90-day on-time window, and when a
//! happening recorded ahead of time comes to pass. The instants of those last
//! three that come before the day's end are kept, and a component is
//! re-evaluated once one of its instants has passed.

use std::hash::Hash;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::domain::calendar::local_instant;
use crate::domain::case::*;
use crate::domain::engine::Engine;
use crate::domain::evaluate::{
    sort_findings, Draft, Evaluation, Finding, Name, Obligation, Scratch, Sink,
};
use crate::service::metrics::{Batch, Tally, WINDOWS};
use crate::store::Loaded;

/// What the service keeps between ticks.
pub struct Kept {
    /// The case state as last read: loaded whole, with the changes read since applied.
    pub state: CaseState,
    /// Every obligation's contribution to the metrics.
    pub tally: Tally,
    /// The open obligations (what reminders are about) and the findings, sorted.
    pub eval: Evaluation,
    findings: FxHashSet<Finding>,
    /// Instants before `until` at which a component's results change, and a node of it.
    horizon: Vec<(Instant, Node)>,
    /// The next day boundary in UTC or any board's time zone.
    until: Instant,
    /// The newest `updated_at` read so far.
    pub watermark: Option<Instant>,
    /// When the state was last read whole.
    pub loaded_at: Instant,
}

/// Why an incremental tick cannot give a full evaluation's results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedFull(pub String);

/// What an incremental tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Update {
    /// Rows read because their `updated_at` was new.
    pub rows: usize,
    /// Children re-evaluated (with the rest of their components).
    pub children: usize,
}

/// A child or a conference, by id: what components are made of.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Node {
    Child(Name),
    Conference(Name),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum NodeRef<'a> {
    Child(&'a str),
    Conference(&'a str),
}

impl NodeRef<'_> {
    /// Whether both are the same kind of node and their ids the same text in
    /// the same place: equal without reading the text.
    fn same_text(self, other: NodeRef<'_>) -> bool {
        let same = |a: &str, b: &str| std::ptr::eq(a, b);
        match (self, other) {
            (NodeRef::Child(a), NodeRef::Child(b)) => same(a, b),
            (NodeRef::Conference(a), NodeRef::Conference(b)) => same(a, b),
            _ => false,
        }
    }

    fn owned(self) -> Node {
        match self {
            NodeRef::Child(c) => Node::Child(Name::from(c)),
            NodeRef::Conference(c) => Node::Conference(Name::from(c)),
        }
    }
}

impl Node {
    fn borrowed(&self) -> NodeRef<'_> {
        match self {
            Node::Child(c) => NodeRef::Child(c),
            Node::Conference(c) => NodeRef::Conference(c),
        }
    }
}

/// The children and conferences of the components a tick re-evaluates.
#[derive(Default)]
struct Scope {
    children: FxHashSet<Name>,
    conferences: FxHashSet<Name>,
}

impl Scope {
    fn contains(&self, n: NodeRef) -> bool {
        match n {
            NodeRef::Child(c) => self.children.contains(c),
            NodeRef::Conference(c) => self.conferences.contains(c),
        }
    }

    /// Whether an obligation is about a child or conference in scope.
    fn holds(&self, o: &Obligation) -> bool {
        o.child_id
            .as_deref()
            .is_some_and(|c| self.children.contains(c))
            || o.conference
                .as_deref()
                .is_some_and(|c| self.conferences.contains(c))
    }
}

/// A row of a case table, as incremental evaluation sees it.
trait Row: Clone + PartialEq {
    /// The contract's key: an id, or the two ids of a link table.
    fn key(&self) -> (&str, &str);
    /// The children or conferences the row is about; a row about two links them.
    fn nodes(&self) -> [Option<NodeRef<'_>>; 2];
    /// The instants the row records, which evaluation ignores while they are ahead of `now`.
    fn instants(&self, _: &mut dyn FnMut(Instant)) {}
}

fn child(id: &Text) -> Option<NodeRef<'_>> {
    Some(NodeRef::Child(id))
}

fn conference(id: &Text) -> Option<NodeRef<'_>> {
    Some(NodeRef::Conference(id))
}

macro_rules! reference_row {
    ($($t:ty),*) => {$(
        impl Row for $t {
            fn key(&self) -> (&str, &str) {
                (&self.id, "")
            }
            fn nodes(&self) -> [Option<NodeRef<'_>>; 2] {
                [None, None]
            }
        }
    )*};
}
reference_row!(Agency, Team, Worker);

/// A row about one child, recording the instants of the named columns.
macro_rules! child_row {
    ($t:ty; $($at:ident),*; $($opt:ident),*) => {
        impl Row for $t {
            fn key(&self) -> (&str, &str) {
                (&self.id, "")
            }
            fn nodes(&self) -> [Option<NodeRef<'_>>; 2] {
                [child(&self.child_id), None]
            }
            fn instants(&self, _f: &mut dyn FnMut(Instant)) {
                $(_f(self.$at);)*
                $(self.$opt.into_iter().for_each(&mut *_f);)*
            }
        }
    };
}
child_row!(Referral; received_at; written_confirmation_at, acknowledged_at, next_steps_recorded_at);
child_row!(StrategyDiscussion; held_at; child_seen_at, conference_decided_at, record_circulated_at);
child_row!(Assessment; ;);
child_row!(CpPlan; ;);
child_row!(CoreGroup; held_at;);
child_row!(Visit; visited_at;);
child_row!(CinReview; ;);

impl Row for Child {
    fn key(&self) -> (&str, &str) {
        (&self.id, "")
    }
    fn nodes(&self) -> [Option<NodeRef<'_>>; 2] {
        [child(&self.id), None]
    }
}

impl Row for Conference {
    fn key(&self) -> (&str, &str) {
        (&self.id, "")
    }
    fn nodes(&self) -> [Option<NodeRef<'_>>; 2] {
        [
            conference(&self.id),
            self.reconvenes_id.as_ref().and_then(conference),
        ]
    }
    fn instants(&self, f: &mut dyn FnMut(Instant)) {
        [
            self.held_at,
            self.requested_at,
            self.transfer_notified_at,
            self.chair_liaison_at,
            self.decision_circulated_at,
            self.plan_circulated_at,
            self.plan_hard_copy_sent_at,
            self.summary_circulated_at,
            self.minutes_circulated_at,
            self.chair_escalated_at,
        ]
        .into_iter()
        .flatten()
        .for_each(f);
    }
}

impl Row for ConferenceChild {
    fn key(&self) -> (&str, &str) {
        (&self.conference_id, &self.child_id)
    }
    fn nodes(&self) -> [Option<NodeRef<'_>>; 2] {
        [conference(&self.conference_id), child(&self.child_id)]
    }
    fn instants(&self, f: &mut dyn FnMut(Instant)) {
        self.workbook_received_at.into_iter().for_each(f);
    }
}

impl Row for Invitation {
    fn key(&self) -> (&str, &str) {
        (&self.conference_id, &self.agency_id)
    }
    fn nodes(&self) -> [Option<NodeRef<'_>>; 2] {
        [conference(&self.conference_id), None]
    }
    fn instants(&self, f: &mut dyn FnMut(Instant)) {
        [
            self.report_received_at,
            self.report_shared_with_family_at,
            self.report_authorised_at,
        ]
        .into_iter()
        .flatten()
        .for_each(f);
    }
}

impl Row for Exception {
    fn key(&self) -> (&str, &str) {
        (&self.id, "")
    }
    /// An exception naming neither is about every component (and, if it names
    /// no agency either, about none): it has no node.
    fn nodes(&self) -> [Option<NodeRef<'_>>; 2] {
        [
            self.child_id.as_ref().and_then(child),
            self.conference_id.as_ref().and_then(conference),
        ]
    }
}

/// Calls `$m!(table)` for each case table whose rows belong to components.
macro_rules! component_tables {
    ($m:ident) => {
        $m!(children);
        $m!(referrals);
        $m!(assessments);
        $m!(strategy_discussions);
        $m!(conferences);
        $m!(conference_children);
        $m!(invitations);
        $m!(cp_plans);
        $m!(core_groups);
        $m!(visits);
        $m!(cin_reviews);
        $m!(exceptions);
    };
}

/// The components to re-evaluate: those of the changed rows (as they were
/// and as they are) and those whose horizon has passed, with every child and
/// conference linked to them.
fn scope<'p>(
    s: &CaseState,
    c: &CaseState,
    placed: &dyn Fn(&str) -> &'p Placement,
    horizon: &[(Instant, Node)],
    now: Instant,
) -> Scope {
    let mut seeds: Vec<NodeRef> = Vec::new();
    macro_rules! seed {
        ($t:ident) => {
            let p = placed(stringify!($t));
            nodes_of(p.over.iter().filter_map(|&(j, _)| s.$t.get(j)), &mut seeds);
            nodes_of(changed(&c.$t, p), &mut seeds);
        };
    }
    component_tables!(seed);
    seeds.extend(
        horizon
            .iter()
            .filter(|(t, _)| *t <= now)
            .map(|(_, n)| n.borrowed()),
    );
    let mut reach: FxHashSet<NodeRef> = seeds.into_iter().collect();
    loop {
        let mut grew = false;
        grew |= link(&s.conference_children, &mut reach);
        grew |= link(&c.conference_children, &mut reach);
        grew |= link(&s.conferences, &mut reach);
        grew |= link(&c.conferences, &mut reach);
        grew |= link(&s.exceptions, &mut reach);
        grew |= link(&c.exceptions, &mut reach);
        if !grew {
            break;
        }
    }
    let mut scope = Scope::default();
    for n in reach {
        match n.owned() {
            Node::Child(id) => scope.children.insert(id),
            Node::Conference(id) => scope.conferences.insert(id),
        };
    }
    scope
}

/// Where each row read goes: over the kept row at an index, or added; or
/// nowhere, when it is the kept row unchanged (read again for the overlap).
#[derive(Default)]
struct Placement {
    over: Vec<(usize, usize)>,
    same: FxHashSet<usize>,
}

fn place<T: Row>(rows: &[T], read: &[T]) -> Placement {
    let mut placement = Placement {
        over: Vec::new(),
        same: FxHashSet::default(),
    };
    if read.is_empty() {
        return placement;
    }
    let mut by_key: FxHashMap<(&str, &str), usize> =
        read.iter().enumerate().map(|(i, r)| (r.key(), i)).collect();
    for (j, r) in rows.iter().enumerate() {
        if let Some(i) = by_key.remove(&r.key()) {
            if read.get(i) == Some(r) {
                placement.same.insert(i);
            } else {
                placement.over.push((j, i));
            }
        }
    }
    placement
}

fn apply<T: Row>(rows: &mut Vec<T>, read: Vec<T>, placement: &Placement) {
    let mut read: Vec<Option<T>> = read
        .into_iter()
        .enumerate()
        .map(|(i, r)| (!placement.same.contains(&i)).then_some(r))
        .collect();
    for &(j, i) in &placement.over {
        if let (Some(r), Some(row)) = (read.get_mut(i).and_then(Option::take), rows.get_mut(j)) {
            *row = r;
        }
    }
    rows.extend(read.into_iter().flatten());
}

/// The rows read that differ from the kept ones (or are new).
fn changed<'a, T: Row>(
    read: &'a [T],
    placement: &'a Placement,
) -> impl Iterator<Item = &'a T> + 'a {
    read.iter()
        .enumerate()
        .filter(|(i, _)| !placement.same.contains(i))
        .map(|(_, r)| r)
}

fn nodes_of<'a, T: Row + 'a>(rows: impl IntoIterator<Item = &'a T>, into: &mut Vec<NodeRef<'a>>) {
    for r in rows {
        into.extend(r.nodes().into_iter().flatten());
    }
}

/// Adds to `scope` every node linked to one in it by a row; whether it grew.
fn link<'a, T: Row>(rows: &'a [T], scope: &mut FxHashSet<NodeRef<'a>>) -> bool {
    let mut grew = false;
    for r in rows {
        if let [Some(a), Some(b)] = r.nodes() {
            match (scope.contains(&a), scope.contains(&b)) {
                (true, false) => grew |= scope.insert(b),
                (false, true) => grew |= scope.insert(a),
                _ => {}
            }
        }
    }
    grew
}

/// Where a table's rows of the components in scope are.
fn positions<T: Row>(rows: &[T], scope: &Scope) -> Vec<usize> {
    // A load reads a child's rows together and shares one allocation along
    // the run, so a row's node is mostly the last row's, the same text at
    // the same address: its answer is reused without hashing the text again.
    let mut last: Option<(NodeRef, bool)> = None;
    let mut at = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let n = match r.nodes() {
            [None, None] => {
                at.push(i);
                continue;
            }
            [a, b] => a.or(b),
        };
        let held = match (n, last) {
            (None, _) => false,
            (Some(n), Some((m, held))) if n.same_text(m) => held,
            (Some(n), _) => {
                let held = scope.contains(n);
                last = Some((n, held));
                held
            }
        };
        if held {
            at.push(i);
        }
    }
    at
}

/// The positions in scope of every component table, found by one scan of
/// the kept state and reused once the changes are applied: a change
/// replaces a row where it stands (its nodes, old and new, are in scope) or
/// adds one at the end, so only added rows need a look.
#[derive(Default)]
struct InScope(FxHashMap<&'static str, (Vec<usize>, usize)>);

impl InScope {
    fn find(s: &CaseState, scope: &Scope) -> InScope {
        let mut found = InScope::default();
        macro_rules! find {
            ($t:ident) => {
                found
                    .0
                    .insert(stringify!($t), (positions(&s.$t, scope), s.$t.len()));
            };
        }
        component_tables!(find);
        found
    }

    /// The rows of the components in scope, with the reference tables whole.
    fn restrict(&self, s: &CaseState) -> CaseState {
        let mut out = CaseState {
            agencies: s.agencies.clone(),
            teams: s.teams.clone(),
            workers: s.workers.clone(),
            ..CaseState::default()
        };
        macro_rules! take {
            ($t:ident) => {
                if let Some((at, _)) = self.0.get(stringify!($t)) {
                    out.$t = at.iter().filter_map(|&i| s.$t.get(i)).cloned().collect();
                }
            };
        }
        component_tables!(take);
        out
    }

    /// Adds the rows in scope that were added since the positions were found.
    fn extend(&mut self, s: &CaseState, scope: &Scope) {
        macro_rules! added {
            ($t:ident) => {
                if let Some((at, len)) = self.0.get_mut(stringify!($t)) {
                    let from = *len;
                    at.extend(
                        positions(s.$t.get(from..).unwrap_or_default(), scope)
                            .into_iter()
                            .map(|i| i + from),
                    );
                    *len = s.$t.len();
                }
            };
        }
        component_tables!(added);
    }
}

/// The first instant after `now` at which the date changes in UTC or in any board's time zone.
fn day_end(engine: &Engine, now: Instant) -> Instant {
    let next_midnight = |tz: chrono_tz::Tz| {
        let tomorrow = now.with_timezone(&tz).date_naive().succ_opt()?;
        Some(local_instant(tz, tomorrow, chrono::NaiveTime::MIN))
    };
    engine
        .rules
        .boards
        .values()
        .flatten()
        .map(|b| b.time_zone)
        .chain([chrono_tz::UTC])
        .filter_map(next_midnight)
        .min()
        .unwrap_or(now)
}

/// What obligations are watched over: instants in `[now, until)`.
#[derive(Clone, Copy)]
struct Span {
    now: Instant,
    until: Instant,
    /// The earliest due instant that the end of an on-time window can bring
    /// into the span.
    earliest_due: Instant,
}

impl Span {
    fn new(now: Instant, until: Instant) -> Span {
        let longest = WINDOWS.iter().map(|(_, days)| *days).max().unwrap_or(0);
        Span {
            now,
            until,
            earliest_due: now - chrono::Duration::days(longest),
        }
    }
}

/// The instants in the span at which an obligation's status or its place in
/// the on-time windows changes.
fn watch(o: &Draft<'_>, span: Span, horizon: &mut Vec<(Instant, Node)>) {
    // Most obligations are long past or due after the span: no arithmetic for them.
    if o.due_at < span.earliest_due || o.due_at >= span.until {
        return;
    }
    let node = match (o.child_id, o.conference) {
        (Some(c), _) => Node::Child(c.clone()),
        (None, Some(c)) => Node::Conference(c.clone()),
        (None, None) => return,
    };
    let at = [o.due_at]
        .into_iter()
        .chain(WINDOWS.map(|(_, days)| o.due_at + chrono::Duration::days(days)));
    for t in at {
        if span.now <= t && t < span.until {
            horizon.push((t, node.clone()));
        }
    }
}

/// The instants in `(now, until)` of happenings recorded ahead of time.
fn recorded_ahead(s: &CaseState, now: Instant, until: Instant, horizon: &mut Vec<(Instant, Node)>) {
    fn rows<T: Row>(rows: &[T], now: Instant, until: Instant, h: &mut Vec<(Instant, Node)>) {
        for r in rows {
            let mut ahead = None;
            r.instants(&mut |t| {
                if now < t && t < until {
                    ahead = Some(ahead.map_or(t, |a: Instant| a.min(t)));
                }
            });
            if let (Some(t), [Some(n), _]) = (ahead, r.nodes()) {
                h.push((t, n.owned()));
            }
        }
    }
    macro_rules! scan {
        ($t:ident) => {
            rows(&s.$t, now, until, horizon);
        };
    }
    component_tables!(scan);
}

/// Whether a finding depends on the calendars of the whole evaluation rather than one component.
fn calendar_wide(f: &Finding) -> bool {
    f.kind.starts_with("calendar_")
}

/// One worker's share of a full evaluation: what it counted and kept.
/// Aligned to cache lines of its own, as a [`Sink`] written for most obligations is.
#[repr(align(128))]
struct Part {
    tally: Tally,
    /// What is counted, by kind, until the worker finishes.
    batch: Batch,
    open: Vec<Obligation>,
    horizon: Vec<(Instant, Node)>,
    span: Span,
}

impl Part {
    fn new(state: &CaseState, now: Instant, until: Instant) -> Part {
        Part {
            tally: Tally::new(&state.agencies, now),
            batch: Batch::default(),
            open: Vec::new(),
            horizon: Vec::new(),
            span: Span::new(now, until),
        }
    }

    fn merge(mut self, other: Part) -> Part {
        self.tally.merge(other.tally);
        self.open.extend(other.open);
        self.horizon.extend(other.horizon);
        self
    }
}

impl Sink<'_> for Part {
    fn put(&mut self, o: &Draft<'_>) {
        self.batch.add(&self.tally, o);
        watch(o, self.span, &mut self.horizon);
        if o.status.is_open() {
            self.open.push(o.owned());
        }
    }

    fn finish(&mut self) {
        self.tally.count_batch(std::mem::take(&mut self.batch));
    }
}

impl Kept {
    /// Evaluates a state read whole.
    pub fn full(engine: &Engine, loaded: Loaded, now: Instant) -> Kept {
        let state = loaded.state;
        let until = day_end(engine, now);
        let mut parts: Vec<Part> = (0..engine.threads.max(1))
            .map(|_| Part::new(&state, now, until))
            .collect();
        // The scan of every row for happenings recorded ahead, on a thread of
        // its own: it fills the time a core would otherwise wait while
        // evaluation indexes the state.
        let (ahead, findings) = crate::domain::evaluate::both(
            engine.threads,
            || {
                let mut ahead = Vec::new();
                recorded_ahead(&state, now, until, &mut ahead);
                ahead
            },
            || engine.evaluate_split(&state, now, &mut parts),
        );
        let Part {
            tally,
            open,
            mut horizon,
            ..
        } = parts
            .into_iter()
            .reduce(Part::merge)
            .unwrap_or_else(|| Part::new(&state, now, until));
        horizon.extend(ahead);
        Kept {
            state,
            tally,
            findings: findings.iter().cloned().collect(),
            eval: Evaluation {
                evaluated_at: now,
                obligations: open,
                findings,
            },
            horizon,
            until,
            // The store keeps it within the database's own clock: a row
            // stamped in the future cannot hide later changes.
            watermark: loaded.watermark,
            loaded_at: now,
        }
    }

    /// Applies the rows read since the last tick and re-evaluates the
    /// components they touch, and those whose results time has changed, at
    /// `now`. On `Err` the kept results are spoilt: evaluate in full.
    pub fn update(
        &mut self,
        engine: &Engine,
        changes: Loaded,
        now: Instant,
    ) -> Result<Update, NeedFull> {
        let before_at = self.eval.evaluated_at;
        if now >= self.until {
            return Err(NeedFull("a new day has begun".into()));
        }
        if now < before_at {
            return Err(NeedFull("the clock went back".into()));
        }
        let c = changes.state;
        if !c.load_findings.is_empty() {
            return Err(NeedFull("a changed row has unreadable values".into()));
        }
        let s = &self.state;
        let reference = [
            place(&s.agencies, &c.agencies),
            place(&s.teams, &c.teams),
            place(&s.workers, &c.workers),
        ];
        if reference
            .iter()
            .zip([c.agencies.len(), c.teams.len(), c.workers.len()])
            .any(|(p, n)| p.same.len() < n)
        {
            return Err(NeedFull("agencies, teams or workers changed".into()));
        }
        let mut placements = FxHashMap::default();
        macro_rules! locate {
            ($t:ident) => {
                placements.insert(stringify!($t), place(&s.$t, &c.$t));
            };
        }
        component_tables!(locate);
        let unplaced = Placement::default();
        let placed = |t: &str| placements.get(t).unwrap_or(&unplaced);
        if changed(&c.exceptions, placed("exceptions"))
            .any(|e| e.child_id.is_none() && e.conference_id.is_none())
        {
            return Err(NeedFull(
                "an exception naming no child or conference changed".into(),
            ));
        }
        if self.touches_load_findings(&c) {
            return Err(NeedFull(
                "a changed row had unreadable values when last read".into(),
            ));
        }
        let mut rows = 0;
        macro_rules! count {
            ($t:ident) => {
                rows += changed(&c.$t, placed(stringify!($t))).count();
            };
        }
        component_tables!(count);

        let scope = scope(s, &c, &placed, &self.horizon, now);
        // Take out what the components counted before...
        let mut in_scope = InScope::find(&self.state, &scope);
        self.take_out(engine, &in_scope, &scope, before_at)?;
        // ...apply the changes, and add what they count now.
        let mut c = c;
        macro_rules! put {
            ($t:ident) => {
                if let Some(p) = placements.get(stringify!($t)) {
                    apply(&mut self.state.$t, std::mem::take(&mut c.$t), p);
                }
            };
        }
        component_tables!(put);
        in_scope.extend(&self.state, &scope);
        self.put_in(engine, &in_scope, now)?;
        self.watermark = self.watermark.max(changes.watermark);
        Ok(Update {
            rows,
            children: scope.children.len(),
        })
    }

    /// Takes out of the tally, the findings and the open obligations what the
    /// components in scope counted at `before_at`.
    fn take_out(
        &mut self,
        engine: &Engine,
        in_scope: &InScope,
        scope: &Scope,
        before_at: Instant,
    ) -> Result<(), NeedFull> {
        let before = in_scope.restrict(&self.state);
        let mut scratch = Scratch::default();
        let old = engine.evaluate(&before, &mut scratch, before_at);
        for o in &old.obligations {
            self.tally.remove(o);
        }
        if old.findings.iter().any(calendar_wide) {
            return Err(NeedFull("the calendars do not cover every date".into()));
        }
        for f in &old.findings {
            self.findings.remove(f);
        }
        self.eval.obligations.retain(|o| !scope.holds(o));
        self.horizon.retain(|(_, n)| !scope.contains(n.borrowed()));
        Ok(())
    }

    /// Evaluates the components in scope as they are now and adds what they count.
    fn put_in(
        &mut self,
        engine: &Engine,
        in_scope: &InScope,
        now: Instant,
    ) -> Result<(), NeedFull> {
        let after = in_scope.restrict(&self.state);
        let until = self.until;
        let tally = &mut self.tally;
        tally.set_now(now);
        let open = &mut self.eval.obligations;
        let horizon = &mut self.horizon;
        let span = Span::new(now, until);
        let mut scratch = Scratch::default();
        let new = engine.evaluate(&after, &mut scratch, now);
        for o in &new.obligations {
            tally.add(o);
            watch(o, span, horizon);
            if o.status.is_open() {
                open.push(o.owned());
            }
        }
        let new = new.findings;
        recorded_ahead(&after, now, until, &mut self.horizon);
        if new.iter().any(calendar_wide) {
            return Err(NeedFull("the calendars do not cover every date".into()));
        }
        self.findings.extend(new);
        let mut findings: Vec<Finding> = self.findings.iter().cloned().collect();
        sort_findings(&mut findings);
        self.eval.findings = findings;
        self.eval.evaluated_at = now;
        Ok(())
    }

    /// Whether a changed row is one that could not be read whole when last
    /// read (its finding must go if it now reads cleanly).
    fn touches_load_findings(&self, c: &CaseState) -> bool {
        let old = &self.state.load_findings;
        if old.is_empty() {
            return false;
        }
        let mut changed: FxHashSet<(&str, String)> = FxHashSet::default();
        macro_rules! ids {
            ($t:ident) => {
                for r in &c.$t {
                    let id = match r.key() {
                        (a, "") => a.to_string(),
                        (a, b) => format!("{a}/{b}"),
                    };
                    changed.insert((stringify!($t), id));
                }
            };
        }
        component_tables!(ids);
        // A row left out for want of its id cannot be matched: assume it changed.
        // A finding about a row's updated_at alone is not about its values:
        // reading the row again changes nothing it says.
        old.iter()
            .filter(|f| {
                !matches!(
                    f.kind.as_str(),
                    "updated_at_in_future" | "unreadable_updated_at"
                )
            })
            .any(|f| f.row.is_empty() || changed.contains(&(f.table.as_str(), f.row.clone())))
    }

    /// The instant after which the kept results are a day old and a full evaluation is due.
    pub fn until(&self) -> Instant {
        self.until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_row_joins_components_both_ways() {
        let cc = |conf: &str, child: &str| ConferenceChild {
            conference_id: conf.into(),
            child_id: child.into(),
            outcome: None,
            category: None,
            advocacy_offered: None,
            workbook_received_at: None,
            dissent_recorded: false,
        };
        let rows = vec![cc("K1", "C1"), cc("K1", "C2"), cc("K2", "C3")];
        let mut reach: FxHashSet<NodeRef> = [NodeRef::Child("C2")].into_iter().collect();
        while link(&rows, &mut reach) {}
        assert!(reach.contains(&NodeRef::Child("C1")));
        assert!(reach.contains(&NodeRef::Conference("K1")));
        assert!(!reach.contains(&NodeRef::Child("C3")));
    }

    #[test]
    fn rows_in_scope_are_found_whether_or_not_their_ids_share_an_allocation() {
        let shared = Text::from("C1");
        let visit = |child: Text| Visit {
            id: "V".into(),
            child_id: child,
            visited_at: Instant::default(),
            seen_alone: None,
        };
        let rows = vec![
            visit(shared.clone()),
            visit(shared.clone()),
            visit("C2".into()),
            visit("C1".into()),
            visit("C2".into()),
            visit(shared),
        ];
        let scope = Scope {
            children: [Name::from("C1")].into_iter().collect(),
            ..Scope::default()
        };
        assert_eq!(positions(&rows, &scope), [0, 1, 3, 5]);
    }
}
