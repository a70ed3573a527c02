//! What an evaluation needs besides the case state: the rules, the holiday
//! data and the default board, loaded once and shared by the CLI and the daemon.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};

use crate::domain::calendar::{Calendar, HolidayData};
use crate::domain::case::{CaseState, Instant};
use crate::domain::evaluate::{
    evaluate_parts, evaluate_split, Draft, Evaluation, Finding, Kept, Options, Scratch, Sink,
};
use crate::domain::rules::{self, RuleSet};
use crate::report::check::Zones;

/// Everything an evaluation needs besides the case state.
pub struct Engine {
    pub rules: RuleSet,
    pub holidays: Arc<HolidayData>,
    pub default_board: String,
    /// Threads an evaluation runs on: one per core the process may use, unless set.
    pub threads: usize,
    /// The rules taken out because the data's source never records their
    /// events ([`Engine::for_source`]): a finding each, in every evaluation.
    pub untold: Vec<Finding>,
}

impl Engine {
    pub fn load(
        rules_dir: Option<&Path>,
        calendar: Option<&Path>,
        closures: Option<&Path>,
        default_board: &str,
    ) -> anyhow::Result<Self> {
        let rules = match rules_dir {
            Some(dir) => rules::load_dir(dir),
            None => rules::built_in(),
        }
        .map_err(|e| anyhow!("the rule files have errors:\n{e}"))?;
        let mut holidays = HolidayData::load(calendar)?;
        if let Some(f) = closures {
            holidays.load_closures(f)?;
        }
        if !rules.boards.contains_key(default_board) {
            bail!(
                "default board {:?} has no rule file (known: {})",
                default_board,
                rules.boards.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        for b in rules.boards.values().flatten() {
            holidays
                .check_division(&b.calendar)
                .with_context(|| format!("board {} ({})", b.id, b.file))?;
        }
        Ok(Engine {
            rules,
            holidays: Arc::new(holidays),
            default_board: default_board.to_string(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            untold: Vec::new(),
        })
    }

    /// Fits the rules to data imported from `source`: rules whose events it
    /// never records are taken out, each with a finding.
    pub fn for_source(&mut self, source: Option<crate::domain::sources::Source>) {
        if let Some(s) = source {
            self.untold = crate::domain::sources::untold(&mut self.rules, s);
        }
    }

    /// Every obligation, each borrowing its names from `state`, the rules and
    /// `scratch` (see [`crate::domain::evaluate::evaluate_kept`]), and the findings.
    pub fn evaluate<'a>(
        &'a self,
        state: &'a CaseState,
        scratch: &'a mut Scratch,
        now: Instant,
    ) -> Evaluation<Draft<'a>> {
        self.evaluate_where(state, scratch, now, &|_| true)
    }

    /// Evaluation on one thread per sink, each worker handing its obligations
    /// to a sink of its own; returns the findings.
    pub fn evaluate_split<S: for<'a> Sink<'a>>(
        &self,
        state: &CaseState,
        now: Instant,
        sinks: &mut [S],
    ) -> Vec<Finding> {
        let opts = self.options(sinks.len());
        let mut scratch = Scratch::default();
        let mut findings = evaluate_split(
            state,
            &self.rules,
            &self.holidays,
            now,
            &opts,
            &mut scratch,
            sinks,
        );
        findings.extend(self.untold.iter().cloned());
        findings
    }

    fn options(&self, threads: usize) -> Options<'_> {
        Options {
            default_board: &self.default_board,
            threads,
        }
    }

    /// Evaluation keeping only the obligations `keep` selects (a command
    /// about one board or child need not hold a national evaluation whole).
    pub fn evaluate_where<'a>(
        &'a self,
        state: &'a CaseState,
        scratch: &'a mut Scratch,
        now: Instant,
        keep: &(dyn Fn(&Draft<'a>) -> bool + Sync),
    ) -> Evaluation<Draft<'a>> {
        self.evaluate_parts(state, scratch, now, keep, &|_| true)
            .joined(now)
    }

    /// The obligations `counted` admits, counted by status, and those `keep`
    /// also admits, in the pieces they were kept in (see [`evaluate_parts`]).
    pub fn evaluate_parts<'a>(
        &'a self,
        state: &'a CaseState,
        scratch: &'a mut Scratch,
        now: Instant,
        counted: &(dyn Fn(&Draft<'a>) -> bool + Sync),
        keep: &(dyn Fn(&Draft<'a>) -> bool + Sync),
    ) -> Kept<'a> {
        let mut kept = evaluate_parts(
            state,
            &self.rules,
            &self.holidays,
            now,
            &self.options(self.threads),
            scratch,
            counted,
            keep,
        );
        kept.findings.extend(self.untold.iter().cloned());
        kept
    }

    pub fn zones(&self) -> Zones {
        Zones::new(&self.rules, &self.default_board)
    }
}

impl Engine {
    /// The latest version of a board the user named, or an error listing the boards there are.
    pub fn board(&self, id: &str) -> anyhow::Result<&Arc<crate::domain::rules::Board>> {
        self.rules.latest(id).ok_or_else(|| {
            anyhow!(
                "--board {id:?} has no rule file (known: {})",
                self.rules
                    .boards
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }

    /// The default board's calendar, for timing that belongs to no one board.
    pub fn default_calendar(&self, tz: chrono_tz::Tz) -> anyhow::Result<Calendar> {
        let division = self
            .rules
            .latest(&self.default_board)
            .map_or("england-and-wales", |b| b.calendar.as_str());
        Ok(Calendar::new(self.holidays.clone(), division, tz)?)
    }
}
