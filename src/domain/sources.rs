//! What each public data format records: the events a source's data can
//! tell, and the rules that cannot be judged from it (taken out of an
//! evaluation of imported data, with a finding each, rather than reported
//! as all unmet).

use serde::{Deserialize, Serialize};

use crate::domain::evaluate::Finding;
use crate::domain::rules::{Event, Rule, RuleKind, RuleSet};

/// A format case data was imported from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    CinCensus,
    AnnexA,
    Ssd,
}

impl Source {
    pub fn label(self) -> &'static str {
        match self {
            Source::CinCensus => "the Children in Need census",
            Source::AnnexA => "Ofsted's Annex A",
            Source::Ssd => "the Standard Safeguarding Dataset",
        }
    }

    /// Whether the source records the event (or it follows from what it
    /// records). Every source holds section 47 enquiries, initial and review
    /// conferences and plans; they differ in the rest.
    pub fn records(self, e: Event) -> bool {
        use Event::*;
        let shared = matches!(
            e,
            ReferralReceivedAt
                | NextStrategyDiscussionHeldAt
                | StrategyDiscussionHeldAt
                | NextInitialConferenceHeldAt
                | LastS47StrategyDiscussionHeldAt
                | LastStrategyDiscussionHeldAt
                | ConferenceDate
                | ConferenceHeldAt
                | NextReviewConferenceHeldAt
                | ChildEighteenthBirthday
                | PlanStartedOn
                | PlanEndedOn
        );
        shared
            || match self {
                // The census has no visits; Annex A no expected date of delivery.
                Source::CinCensus => e == ChildExpectedDueDate,
                Source::AnnexA => e == VisitVisitedAt,
                Source::Ssd => matches!(e, ChildExpectedDueDate | VisitVisitedAt),
            }
    }

    /// The events of which the source records only the latest (Annex A's
    /// latest review conference and last statutory visit of each plan).
    pub fn latest_only(self) -> &'static [Event] {
        match self {
            Source::CinCensus | Source::Ssd => &[],
            Source::AnnexA => &[Event::NextReviewConferenceHeldAt, Event::VisitVisitedAt],
        }
    }

    /// Whether it records what standards are judged by (attendance, advocacy, quoracy).
    fn records_standards(self) -> bool {
        false
    }
}

/// Takes out of `rules` every rule whose events `source` never records, and
/// returns one finding for each (board, rule) taken out: evaluating them
/// would report every duty unmet (or none due) for want of data. A rule met
/// by an event the source records only the latest of is judged only while
/// unmet ([`Rule::latest_only`]), with a finding saying so.
pub fn untold(rules: &mut RuleSet, source: Source) -> Vec<Finding> {
    let why = |r: &Rule| match [r.starts, r.met_by, r.cap]
        .into_iter()
        .flatten()
        .find(|e| !source.records(*e))
    {
        Some(e) => Some(format!("{} does not record {}", source.label(), e.name())),
        None if r.kind == RuleKind::Standard && !source.records_standards() => Some(format!(
            "{} does not record what the standard is judged by",
            source.label()
        )),
        None => None,
    };
    let mut findings = Vec::new();
    for versions in rules.boards.values_mut() {
        for board in versions.iter_mut() {
            let b = std::sync::Arc::make_mut(board);
            for r in b.rules.iter_mut() {
                let Some(e) = r.met_by.filter(|e| source.latest_only().contains(e)) else {
                    continue;
                };
                r.latest_only = true;
                let row = format!("{}/{}", b.id, r.id);
                if !findings.iter().any(|f: &Finding| f.row == row) {
                    findings.push(Finding::new(
                        "latest_only",
                        "rules",
                        &row,
                        format!(
                            "{} records only the latest {}: rule {} of {} is judged only where it is still unmet",
                            source.label(),
                            e.name(),
                            r.id,
                            b.name
                        ),
                    ));
                }
            }
            for r in b.take_out(why) {
                let row = format!("{}/{}", b.id, r.id);
                if !findings.iter().any(|f: &Finding| f.row == row) {
                    findings.push(Finding::new(
                        "not_recorded",
                        "rules",
                        &row,
                        format!(
                            "{}: rule {} of {} is not evaluated for this data",
                            r.reason, r.id, b.name
                        ),
                    ));
                }
            }
        }
    }
    findings
}
