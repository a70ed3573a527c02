//! The events rules count from and are met by: each name of the rule
//! files' vocabulary, as an instant for a subject.

use chrono::NaiveDate;

use super::board::*;
use super::index::*;
use crate::domain::case::*;
use crate::domain::rules::Event;

impl<'e, 'a> BoardEval<'e, 'a> {
    pub(super) fn date_event(&self, d: NaiveDate) -> Instant {
        self.cal.start_of_day(d)
    }

    /// The instant of a named event for a subject; "first X" events look from `after`.
    // Long because the vocabulary is: one arm an `Event`, so the meaning of
    // every event a rule file may name reads in one place.
    pub(super) fn event(
        &self,
        ev: Event,
        ctx: &Ctx<'a>,
        after: Option<Instant>,
    ) -> Option<Instant> {
        let idx = self.idx;
        let child = ctx.child.map(|c| idx.child(c));
        let after_t = after.unwrap_or(Instant::MIN_UTC);
        match ev {
            Event::ReferralReceivedAt => ctx.referral.map(|r| r.received_at),
            Event::ReferralWrittenReceivedAt => ctx.referral.and_then(|r| {
                if r.by_telephone {
                    r.written_confirmation_at
                } else {
                    Some(r.received_at)
                }
            }),
            Event::ReferralWrittenConfirmationAt => ctx.referral?.written_confirmation_at,
            Event::ReferralAcknowledgedAt => ctx.referral?.acknowledged_at,
            Event::ReferralNextStepsRecordedAt => ctx.referral?.next_steps_recorded_at,
            Event::NextStrategyDiscussionHeldAt => {
                let sds = idx.sds.get(child?)?;
                sds.get(sds.partition_point(|d| d.held_at < after_t))
                    .map(|d| d.held_at)
            }
            Event::InitialAssessmentCompletedOn | Event::CoreAssessmentCompletedOn => {
                let kind = if ev == Event::InitialAssessmentCompletedOn {
                    "initial"
                } else {
                    "core"
                };
                let from = self.cal.local_date(after_t);
                let a = idx
                    .assessments
                    .get(child?)?
                    .iter()
                    .find(|a| a.kind == kind && a.started_on >= from)?;
                a.completed_on.map(|d| self.date_event(d))
            }
            Event::StrategyDiscussionHeldAt => ctx.sd.map(|d| d.held_at),
            Event::StrategyDiscussionChildSeenAt => ctx.sd?.child_seen_at,
            Event::StrategyDiscussionConferenceDecidedAt => ctx.sd?.conference_decided_at,
            Event::StrategyDiscussionRecordCirculatedAt => ctx.sd?.record_circulated_at,
            Event::NextInitialConferenceRequestedAt | Event::NextInitialConferenceHeldAt => {
                let sd_at = ctx.sd?.held_at;
                let conf = idx
                    .child_confs
                    .get(child?)?
                    .iter()
                    .map(|(c, _)| *c)
                    .find(|c| {
                        matches!(c.kind.as_str(), "initial" | "pre_birth")
                            && !c.is_cancelled()
                            && c.reconvenes_id.is_none()
                            && c.date().or(c.requested_at).is_none_or(|d| d >= sd_at)
                    })?;
                if ev == Event::NextInitialConferenceRequestedAt {
                    conf.requested_at
                } else {
                    conf.took_place()
                }
            }
            // The last before the conference (or now, when none is arranged
            // yet): of those that initiated section 47 enquiries, or of any kind.
            Event::LastS47StrategyDiscussionHeldAt | Event::LastStrategyDiscussionHeldAt => {
                let s47_only = ev == Event::LastS47StrategyDiscussionHeldAt;
                let before = ctx
                    .conference
                    .and_then(Conference::date)
                    .unwrap_or(self.now);
                idx.sds
                    .get(child?)?
                    .iter()
                    .rev()
                    .find(|d| (d.s47_initiated || !s47_only) && d.held_at <= before)
                    .map(|d| d.held_at)
            }
            Event::ConferenceRequestedAt => ctx.conference?.requested_at,
            Event::ConferenceTransferNotifiedAt => ctx.conference?.transfer_notified_at,
            Event::ConferenceDate => ctx.conference?.date(),
            Event::ConferenceHeldAt => ctx.conference?.took_place(),
            Event::ConferenceChairLiaisonAt => ctx.conference?.chair_liaison_at,
            Event::ConferenceDecisionCirculatedAt => ctx.conference?.decision_circulated_at,
            Event::ConferencePlanCirculatedAt => ctx.conference?.plan_circulated_at,
            Event::ConferencePlanHardCopySentAt => ctx.conference?.plan_hard_copy_sent_at,
            Event::ConferenceSummaryCirculatedAt => ctx.conference?.summary_circulated_at,
            Event::ConferenceMinutesCirculatedAt => ctx.conference?.minutes_circulated_at,
            Event::ConferenceChairEscalatedAt => ctx.conference?.chair_escalated_at,
            Event::ReconveningConferenceHeldAt => {
                let conf = ctx.conference?;
                let direct = idx
                    .reconvened_by
                    .get(&addr(conf))
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.took_place())
                    .min();
                direct.or_else(|| {
                    let from = conf.date()?;
                    idx.children_of(conf)
                        .iter()
                        .flat_map(|(_, c)| idx.took_place_confs(c))
                        .filter(|(c, _, t)| c.id != conf.id && *t > from)
                        .map(|(_, _, t)| t)
                        .min()
                })
            }
            Event::FirstCoreGroupHeldAt => {
                let first = |c: &Child| first_from(idx.core_groups.get(idx.child(c))?, after_t);
                // A child's own (of a conference or a plan), else the first among the conference's children.
                if ctx.cc.is_some() || ctx.plan.is_some() {
                    first(ctx.child?)
                } else {
                    idx.children_of(ctx.conference?)
                        .iter()
                        .filter_map(|(_, c)| first(c))
                        .min()
                }
            }
            Event::NextReviewConferenceHeldAt => {
                let own = ctx.conference.map(|c| c.id.as_str());
                idx.took_place_confs(ctx.child?)
                    .find(|(c, _, t)| {
                        c.kind == "review" && Some(c.id.as_str()) != own && *t > after_t
                    })
                    .map(|(_, _, t)| t)
            }
            Event::InvitationReportReceivedAt => ctx.invitation?.report_received_at,
            Event::InvitationReportSharedWithFamilyAt => {
                ctx.invitation?.report_shared_with_family_at
            }
            Event::InvitationReportAuthorisedAt => ctx.invitation?.report_authorised_at,
            Event::ConferenceChildWorkbookReceivedAt => ctx.cc?.workbook_received_at,
            Event::ChildExpectedDueDate => ctx.child?.expected_due_date.map(|d| self.date_event(d)),
            Event::ChildEighteenthBirthday => {
                let plan = ctx.plan?;
                let birthday =
                    crate::domain::calendar::add_months(ctx.child?.date_of_birth?, 18 * 12);
                let window_start = crate::domain::calendar::add_months(birthday, -3);
                let covers =
                    plan.started_on <= birthday && plan.ended_on.is_none_or(|e| e >= window_start);
                covers.then(|| self.date_event(birthday))
            }
            Event::PlanStartedOn => ctx.plan.map(|p| self.date_event(p.started_on)),
            Event::PlanEndedOn => ctx.plan?.ended_on.map(|d| self.date_event(d)),
            Event::CoreGroupOrConferenceHeldAt => {
                let cg = idx
                    .core_groups
                    .get(child?)
                    .and_then(|v| first_after(v, after_t));
                let conf = idx
                    .took_place_confs(ctx.child?)
                    .map(|(_, _, t)| t)
                    .find(|t| *t > after_t);
                [cg, conf].into_iter().flatten().min()
            }
            Event::VisitVisitedAt => first_after(idx.visits.get(child?)?, after_t),
            Event::CinReviewHeldOn => {
                let days = idx.cin_reviews.get(child?)?;
                days.get(days.partition_point(|d| self.date_event(*d) <= after_t))
                    .map(|d| self.date_event(*d))
            }
        }
    }
}
