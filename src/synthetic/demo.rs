//! Synthetic case data: a plausible local authority whose children are spread
//! over every stage and all five boards, with on-time, late, missing, excepted
//! and contradictory records. Deterministic for a seed and an instant; no names
//! of real people (children are case references only).

use std::cell::RefCell;
use std::sync::Arc;

use chrono::{Duration, NaiveDate, NaiveTime};
use rand::{seq::SliceRandom, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::domain::calendar::{add_months, Calendar, CalendarError, HolidayData};
use crate::domain::case::*;

const BOARDS: &[(&str, &str)] = &[
    ("barnsley", "BAR"),
    ("bolton", "BOL"),
    ("cwm-taf-morgannwg", "CTM"),
    ("hampshire-4lscb", "HAM"),
    ("pan-dorset", "DOR"),
];

const AGENCIES: &[(&str, &str, &str)] = &[
    ("AG-CSC", "Children's Social Care", "childrens_social_care"),
    ("AG-POL", "Police Public Protection Unit", "police"),
    ("AG-HV", "Health Visiting Service", "health"),
    ("AG-GP", "General Practice", "health"),
    ("AG-SN", "School Nursing Service", "health"),
    ("AG-MW", "Midwifery Service", "midwifery"),
    ("AG-EDU", "Schools and Education", "education"),
    ("AG-EY", "Early Years Settings", "early_years"),
    ("AG-ASC", "Adult Social Care", "adult_social_care"),
    ("AG-AMH", "Adult Mental Health Service", "adult_health"),
    ("AG-PRO", "Probation Service", "probation"),
    ("AG-HOU", "Housing Services", "housing"),
    ("AG-YJ", "Youth Justice Service", "youth_justice"),
    ("AG-VOL", "Family Support Charity", "voluntary"),
];

const CATEGORIES: &[&str] = &[
    "neglect",
    "emotional_abuse",
    "physical_abuse",
    "sexual_abuse",
];

/// When a conference's decision, plan, hard copy, summary and minutes went out.
struct Records {
    decision: Option<Instant>,
    plan: Option<Instant>,
    hard_copy: Option<Instant>,
    summary: Option<Instant>,
    minutes: Option<Instant>,
}

struct Gen {
    rng: RefCell<ChaCha8Rng>,
    /// Draws for the columns added to the contract after its first version:
    /// a stream of their own, so that every other value of a seed is what
    /// it was before they were added.
    added: RefCell<ChaCha8Rng>,
    cal: Calendar,
    now: Instant,
    /// How far back referrals reach, in days.
    history_days: i64,
    s: CaseState,
    conf_seq: usize,
}

/// Makes `children` children of synthetic case history over the 18 months before `now`.
pub fn generate(
    seed: u64,
    children: usize,
    now: Instant,
    holidays: &Arc<HolidayData>,
) -> Result<CaseState, CalendarError> {
    generate_with(seed, children, now, 540, holidays)
}

/// The same, with referrals reaching `history_days` back.
pub fn generate_with(
    seed: u64,
    children: usize,
    now: Instant,
    history_days: i64,
    holidays: &Arc<HolidayData>,
) -> Result<CaseState, CalendarError> {
    let cal = Calendar::new(
        holidays.clone(),
        "england-and-wales",
        chrono_tz::Europe::London,
    )?;
    let mut g = Gen {
        rng: RefCell::new(ChaCha8Rng::seed_from_u64(seed)),
        added: RefCell::new(ChaCha8Rng::seed_from_u64(seed ^ 0x0004_add3d)),
        cal,
        now,
        history_days: history_days.max(10),
        s: CaseState::default(),
        conf_seq: 0,
    };
    g.organisations();
    for i in 0..children {
        g.child(i)?;
    }
    if children >= 20 {
        g.contradictions()?;
    }
    g.dissent_reconvenings()?;
    Ok(g.s)
}

impl Gen {
    fn chance(&self, p: f64) -> bool {
        self.rng.borrow_mut().gen_bool(p.clamp(0.0, 1.0))
    }

    fn int(&self, lo: i64, hi: i64) -> i64 {
        self.rng.borrow_mut().gen_range(lo..=hi)
    }

    /// [`Gen::chance`] and [`Gen::int`] from the added columns' stream.
    fn added_chance(&self, p: f64) -> bool {
        self.added.borrow_mut().gen_bool(p.clamp(0.0, 1.0))
    }

    fn added_int(&self, lo: i64, hi: i64) -> i64 {
        self.added.borrow_mut().gen_range(lo..=hi)
    }

    /// When a record due within a working day of `from` was made: mostly
    /// on time, sometimes late, now and then not at all.
    fn added_record(&self, from: Instant, late_days: i64) -> Option<Instant> {
        let after = if self.added_chance(0.85) {
            Duration::hours(self.added_int(1, 20))
        } else if self.added_chance(0.7) {
            Duration::days(self.added_int(2, late_days))
        } else {
            return None;
        };
        self.happened(from + after)
    }

    /// [`Gen::int`] for small non-negative numbers (the same draw).
    fn small(&self, lo: u32, hi: u32) -> u32 {
        u32::try_from(self.int(i64::from(lo), i64::from(hi))).unwrap_or(lo)
    }

    /// One of `items` (not empty), by the same draw as [`Gen::int`].
    fn one_of<T: Copy>(&self, items: &[T]) -> Option<T> {
        let last = i64::try_from(items.len()).ok()? - 1;
        items.get(usize::try_from(self.int(0, last)).ok()?).copied()
    }

    fn wd(&self, d: NaiveDate, n: i64) -> Result<NaiveDate, CalendarError> {
        self.cal.add_working_days(d, n)
    }

    fn at(&self, d: NaiveDate, h: u32, m: u32) -> Instant {
        self.cal.at_local(
            d,
            NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN),
        )
    }

    /// A time in office hours on a date.
    fn office(&self, d: NaiveDate) -> Instant {
        let h = self.small(9, 16);
        let m = self.small(0, 11) * 5;
        self.at(d, h, m)
    }

    fn day(&self, t: Instant) -> NaiveDate {
        self.cal.local_date(t)
    }

    /// Only what has already happened is recorded.
    fn happened(&self, t: Instant) -> Option<Instant> {
        (t <= self.now).then_some(t)
    }

    fn organisations(&mut self) {
        for (id, name, group) in AGENCIES {
            self.s.agencies.push(Agency {
                id: id.to_string().into(),
                name: name.to_string().into(),
                professional_group: group.to_string().into(),
                email: Some(format!("reports@{}.cpwatch.example", id.to_lowercase()).into()),
            });
        }
        let teams = [
            "Assessment North",
            "Assessment South",
            "Child Protection East",
            "Child Protection West",
            "Disabled Children",
            "Family Safeguarding",
        ];
        for (i, name) in teams.iter().enumerate() {
            self.s.teams.push(Team {
                id: format!("T{}", i + 1).into(),
                name: name.to_string().into(),
                manager_email: Some(format!("manager.t{}@cpwatch.example", i + 1).into()),
            });
        }
        for i in 1..=18 {
            self.s.workers.push(Worker {
                id: format!("W{i:02}").into(),
                name: format!("Social Worker {i:02}").into(),
                email: Some(format!("worker{i:02}@cpwatch.example").into()),
                team_id: format!("T{}", (i - 1) % 6 + 1).into(),
            });
        }
    }

    fn next_conf(&mut self) -> String {
        self.conf_seq += 1;
        format!("CONF-{:05}", self.conf_seq)
    }

    fn child(&mut self, i: usize) -> Result<(), CalendarError> {
        let (board, code) = if i % 20 == 19 {
            (None, "GEN")
        } else {
            let (board, prefix) = BOARDS.get(i % BOARDS.len()).copied().unwrap_or(("", "GEN"));
            (Some(board), prefix)
        };
        let id = format!("CH{i:05}");
        let reference = format!("{code}-{:05}", 10_000 + i);
        let today = self.day(self.now);
        // Referrals spread over the last 18 months, on working days.
        let back = self.int(5, self.history_days);
        let r0_day = self.wd(today - Duration::days(back), 0)?;
        let r0 = self.office(r0_day);
        let unborn = self.chance(0.06);
        let near_18 = !unborn && self.chance(0.03);
        let (dob, edd) = if unborn {
            let edd = r0_day + Duration::days(self.int(90, 150));
            let born = (edd <= today).then(|| edd + Duration::days(self.int(-10, 10)));
            (born.filter(|d| *d <= today), Some(edd))
        } else if near_18 {
            (
                Some(add_months(today, -18 * 12) + Duration::days(self.int(-40, 80))),
                None,
            )
        } else {
            let years = self.int(0, 16);
            (
                Some(r0_day - Duration::days(years * 365 + self.int(30, 360))),
                None,
            )
        };
        let worker = format!("W{:02}", self.int(1, 18));
        self.s.children.push(Child {
            id: id.clone().into(),
            reference: reference.into(),
            board: board.map(Text::from),
            date_of_birth: dob,
            expected_due_date: edd,
            allocated_worker_id: Some(worker.into()),
            looked_after: self.chance(0.05),
        });
        if !unborn && self.chance(0.04) {
            return self.transfer_in(&id, i, r0, dob);
        }
        let concern = self.referral(&id, i, r0, r0_day, today)?;
        if self.chance(0.1) {
            return Ok(());
        }
        let Some((last_sd, decided_at)) =
            self.strategy_discussions(&id, i, r0, r0_day, concern, today)?
        else {
            return Ok(());
        };
        let first = self.first_conference(&id, edd.filter(|_| unborn), last_sd, decided_at, dob)?;
        let Some((held, outcome)) = first else {
            return Ok(());
        };
        match outcome.as_str() {
            "plan" => self.plan_life(&id, i, held, board, dob),
            "no_plan_cin" => self.cin_reviews(&id, i, held),
            _ => Ok(()),
        }
    }

    /// The child's referral and initial assessment; returns the concern.
    fn referral(
        &mut self,
        id: &str,
        i: usize,
        r0: Instant,
        r0_day: NaiveDate,
        today: NaiveDate,
    ) -> Result<&'static str, CalendarError> {
        // Referral.
        let by_telephone = self.chance(0.5);
        let concern = *[
            ("physical_abuse", 3),
            ("serious_neglect", 1),
            ("neglect", 4),
            ("emotional_abuse", 3),
            ("sexual_abuse", 1),
        ]
        .choose_weighted(&mut *self.rng.borrow_mut(), |c| c.1)
        .map(|c| &c.0)
        .unwrap_or(&"neglect");
        let written = if by_telephone {
            match self.int(0, 19) {
                0 => None,
                1 | 2 => Some(r0 + Duration::hours(self.int(50, 96))),
                _ => Some(r0 + Duration::hours(self.int(1, 40))),
            }
        } else {
            Some(r0)
        };
        let ack_base = written.unwrap_or(r0);
        let ack_days = if self.chance(0.9) {
            self.int(0, 1)
        } else {
            self.int(2, 4)
        };
        let ack_day = self.wd(self.day(ack_base), ack_days)?;
        let ack = written
            .map(|_| self.office(ack_day))
            .map(|t| t.max(ack_base + Duration::minutes(30)));
        let steps_days = if self.chance(0.9) {
            self.int(0, 1)
        } else {
            self.int(2, 3)
        };
        let steps_day = self.wd(r0_day, steps_days)?;
        let steps = self.office(steps_day).max(r0 + Duration::minutes(45));
        self.s.referrals.push(Referral {
            id: format!("REF-{i:05}").into(),
            child_id: id.into(),
            received_at: r0,
            by_telephone,
            written_confirmation_at: written.and_then(|t| self.happened(t)),
            acknowledged_at: ack.and_then(|t| self.happened(t)),
            next_steps_recorded_at: self.happened(steps),
            concern: Some(concern.to_string().into()),
        });
        let ia_days = if self.chance(0.82) {
            self.int(2, 10)
        } else {
            self.int(11, 16)
        };
        let ia_done = self.wd(r0_day, ia_days)?;
        self.s.assessments.push(Assessment {
            id: format!("IA-{i:05}").into(),
            child_id: id.into(),
            kind: "initial".into(),
            started_on: r0_day,
            completed_on: (ia_done <= today).then_some(ia_done),
        });
        Ok(concern)
    }

    /// One to three strategy discussions and, after section 47 enquiries,
    /// the core assessment; the last discussion and when it decided on a
    /// conference, if it did.
    fn strategy_discussions(
        &mut self,
        id: &str,
        i: usize,
        r0: Instant,
        r0_day: NaiveDate,
        concern: &str,
        today: NaiveDate,
    ) -> Result<Option<(Instant, Instant)>, CalendarError> {
        // Strategy discussions.
        let urgent = matches!(concern, "physical_abuse" | "serious_neglect");
        let sd_days = if urgent {
            if self.chance(0.85) {
                0
            } else {
                1
            }
        } else {
            self.int(0, 3)
        };
        let sd1_day = self.wd(r0_day, sd_days)?;
        let mut sd1 = self.office(sd1_day);
        if sd1 <= r0 {
            sd1 = r0 + Duration::hours(2);
        }
        if sd1 > self.now {
            return Ok(None);
        }
        let s47 = self.chance(0.9);
        let mut sds = vec![sd1];
        // One to three strategy discussions; the conference counts from the last.
        let more = if !s47 {
            0
        } else if self.chance(0.05) {
            2
        } else {
            i64::from(self.chance(0.2))
        };
        for _ in 0..more {
            let from = self.day(*sds.last().unwrap_or(&sd1));
            let d = self.wd(from, self.int(2, 6))?;
            let t = self.office(d);
            if t <= self.now {
                sds.push(t);
            }
        }
        let decided = s47 && self.chance(0.8);
        let last_sd = *sds.last().unwrap_or(&sd1);
        for (n, held) in sds.iter().enumerate() {
            let is_last = n + 1 == sds.len();
            let seen = urgent.then(|| {
                *held
                    + Duration::hours(if self.chance(0.88) {
                        self.int(1, 23)
                    } else {
                        self.int(25, 60)
                    })
            });
            self.s.strategy_discussions.push(StrategyDiscussion {
                id: format!("SD-{i:05}-{}", n + 1).into(),
                child_id: id.into(),
                held_at: *held,
                s47_initiated: s47,
                concern: Some(concern.to_string().into()),
                child_seen_at: seen.and_then(|t| self.happened(t)),
                conference_decided_at: (decided && is_last)
                    .then(|| *held + Duration::hours(self.int(1, 3)))
                    .and_then(|t| self.happened(t)),
                record_circulated_at: self.added_record(*held, 5),
                conference_not_required: false,
            });
        }
        if s47 {
            self.core_assessment(id, i, sd1_day, today)?;
        }
        if !decided {
            return Ok(None);
        }
        let decided_at = last_sd + Duration::hours(2);
        if decided_at > self.now {
            return Ok(None);
        }
        Ok(Some((last_sd, decided_at)))
    }

    /// The core assessment that section 47 enquiries start.
    fn core_assessment(
        &mut self,
        id: &str,
        i: usize,
        sd1_day: NaiveDate,
        today: NaiveDate,
    ) -> Result<(), CalendarError> {
        let ca_days = if self.chance(0.8) {
            self.int(18, 35)
        } else {
            self.int(36, 50)
        };
        let ca_done = self.wd(sd1_day, ca_days)?;
        self.s.assessments.push(Assessment {
            id: format!("CA-{i:05}").into(),
            child_id: id.into(),
            kind: "core".into(),
            started_on: sd1_day,
            completed_on: (ca_done <= today).then_some(ca_done),
        });
        Ok(())
    }

    /// The initial conference (pre-birth for an unborn child, timed from the
    /// expected date of delivery `edd`), and what it decided, once held.
    fn first_conference(
        &mut self,
        id: &str,
        edd: Option<NaiveDate>,
        last_sd: Instant,
        decided_at: Instant,
        dob: Option<NaiveDate>,
    ) -> Result<Option<(Instant, String)>, CalendarError> {
        // Initial (or pre-birth) conference.
        let last_day = self.day(last_sd);
        let (kind, when_day, requested) = match edd {
            Some(edd) => {
                let planned = edd - Duration::weeks(self.int(7, 10));
                let day = self.wd(planned.max(self.wd(last_day, 5)?), 0)?;
                let req = self
                    .office(self.wd(edd - Duration::weeks(self.int(11, 14)), 0)?)
                    .max(decided_at + Duration::hours(1));
                ("pre_birth", day, req)
            }
            None => {
                let n = if self.chance(0.8) {
                    self.int(6, 15)
                } else {
                    self.int(16, 24)
                };
                if n > 15 && self.chance(0.3) {
                    self.exception("icpc-timeliness", Some(id), None, "Conference rearranged at the family's request so that both parents could attend; agreed by the chair");
                }
                let req = decided_at
                    + Duration::hours(if self.chance(0.85) {
                        self.int(1, 22)
                    } else {
                        self.int(26, 60)
                    });
                ("initial", self.wd(last_day, n)?, req)
            }
        };
        self.conference(id, kind, when_day, Some(requested), None, None, dob)
    }

    fn transfer_in(
        &mut self,
        id: &str,
        i: usize,
        notified: Instant,
        dob: Option<NaiveDate>,
    ) -> Result<(), CalendarError> {
        let n = if self.chance(0.8) {
            self.int(8, 15)
        } else {
            self.int(16, 22)
        };
        let day = self.wd(self.day(notified), n)?;
        let held = self.conference(
            id,
            "transfer_in",
            day,
            Some(notified + Duration::hours(3)),
            Some(notified),
            None,
            dob,
        )?;
        if let Some((held, outcome)) = held {
            if outcome == "plan" {
                let board = self
                    .s
                    .children
                    .iter()
                    .find(|c| c.id == id)
                    .and_then(|c| c.board.clone());
                return self.plan_life(id, i, held, board.as_deref(), dob);
            }
        }
        Ok(())
    }

    /// Writes one conference about one child, with its invitations and
    /// after-conference records. Returns when it was held and its outcome.
    #[allow(clippy::too_many_arguments)]
    fn conference(
        &mut self,
        child: &str,
        kind: &str,
        day: NaiveDate,
        requested: Option<Instant>,
        transfer_notified: Option<Instant>,
        reconvenes: Option<String>,
        dob: Option<NaiveDate>,
    ) -> Result<Option<(Instant, String)>, CalendarError> {
        let id = self.next_conf();
        let start = self.at(day, if self.chance(0.5) { 10 } else { 14 }, 0);
        let future = start > self.now;
        let (status, outcome) = self.status_and_outcome(kind, future, reconvenes.is_some());
        let held = (!future && status != "cancelled").then_some(start);
        let age = dob.map(|d| (day - d).num_days() / 365);
        let r = self.records(held, status, outcome)?;
        let liaison = (!future || self.chance(0.5))
            .then(|| start - Duration::days(self.int(if self.chance(0.8) { 7 } else { 2 }, 12)))
            .and_then(|t| self.happened(t));
        let chair_concern = status == "held" && self.added_chance(0.02);
        self.s.conferences.push(Conference {
            id: id.clone().into(),
            kind: kind.into(),
            status: status.into(),
            requested_at: requested.and_then(|t| self.happened(t)),
            transfer_notified_at: transfer_notified,
            scheduled_at: Some(start),
            held_at: held,
            reconvenes_id: reconvenes.map(Text::from),
            chair_email: Some(format!("chair{}@cpwatch.example", self.int(1, 4)).into()),
            chair_liaison_at: liaison,
            chair_overruled: status == "held" && self.chance(0.01),
            decision_circulated_at: r.decision,
            plan_circulated_at: r.plan,
            plan_hard_copy_sent_at: r.hard_copy,
            summary_circulated_at: r.summary,
            minutes_circulated_at: r.minutes,
            next_review_on: None,
            chair_concern,
            chair_escalated_at: held
                .filter(|_| chair_concern)
                .and_then(|h| self.added_record(h, 3)),
            target_on: None,
        });
        let workbook = age
            .filter(|a| *a >= 4)
            .and_then(|_| {
                self.chance(0.85)
                    .then(|| start - Duration::days(self.int(3, 7)))
            })
            .and_then(|t| self.happened(t));
        self.s.conference_children.push(ConferenceChild {
            conference_id: id.clone().into(),
            child_id: child.into(),
            outcome: outcome.map(Text::from),
            category: (outcome == Some("plan"))
                .then(|| self.one_of(CATEGORIES).map(Text::from))
                .flatten(),
            advocacy_offered: age.filter(|a| *a >= 11).map(|_| self.chance(0.8)),
            workbook_received_at: workbook,
            dissent_recorded: outcome == Some("plan_ended") && self.added_chance(0.08),
        });
        self.invitations(&id, start, held.is_some(), dob.is_none(), age.unwrap_or(0))?;
        match (status, held) {
            ("adjourned" | "deferred", Some(h)) => self.reconvene(
                child,
                kind,
                &id,
                status,
                h,
                requested,
                transfer_notified,
                dob,
            ),
            ("held", Some(h)) => Ok(outcome.map(|o| (h, o.to_string()))),
            _ => Ok(None),
        }
    }

    /// How a conference went (a reconvening one is not adjourned or deferred
    /// again), and what it decided for the child.
    fn status_and_outcome(
        &self,
        kind: &str,
        future: bool,
        reconvenes: bool,
    ) -> (&'static str, Option<&'static str>) {
        let status = if future {
            "scheduled"
        } else {
            match self.int(0, 99) {
                0..=1 => "cancelled",
                2..=4 if !reconvenes && kind != "review" => "adjourned",
                5..=6 if !reconvenes && kind != "review" => "deferred",
                _ => "held",
            }
        };
        let outcome = match (status, kind) {
            ("held", "review") => Some(if self.chance(0.78) {
                "plan_continues"
            } else {
                "plan_ended"
            }),
            ("held", _) => Some(match self.int(0, 99) {
                0..=71 => "plan",
                72..=89 => "no_plan_cin",
                _ => "no_plan",
            }),
            ("deferred", _) => Some("deferred"),
            _ => None,
        };
        (status, outcome)
    }

    /// What a conference sends out after it, each on time or late by chance.
    fn records(
        &self,
        held: Option<Instant>,
        status: &str,
        outcome: Option<&str>,
    ) -> Result<Records, CalendarError> {
        let after = |g: &Gen,
                     lo: i64,
                     hi: i64,
                     late_lo: i64,
                     late_hi: i64,
                     p: f64|
         -> Result<Option<Instant>, CalendarError> {
            let Some(h) = held else { return Ok(None) };
            let n = if g.chance(p) {
                g.int(lo, hi)
            } else {
                g.int(late_lo, late_hi)
            };
            let d = g.wd(g.day(h), n)?;
            let t = g.office(d).max(h + Duration::hours(2));
            Ok(g.happened(t))
        };
        let decision = match held {
            Some(h) if status == "held" => self.happened(
                h + Duration::hours(if self.chance(0.9) {
                    self.int(2, 20)
                } else {
                    self.int(26, 70)
                }),
            ),
            _ => None,
        };
        let is_plan = matches!(outcome, Some("plan") | Some("plan_continues"));
        let plan_circ = if is_plan {
            after(self, 0, 2, 3, 6, 0.85)?
        } else {
            None
        };
        let hard_copy = match (is_plan, held) {
            (true, Some(h)) if self.chance(0.9) => self
                .happened(h + Duration::days(self.int(1, if self.chance(0.85) { 5 } else { 9 }))),
            _ => None,
        };
        let summary = if status == "held" {
            after(self, 1, 4, 6, 9, 0.8)?
        } else {
            None
        };
        let minutes = if matches!(status, "held" | "adjourned" | "deferred") {
            after(self, 7, 14, 16, 24, 0.75)?
        } else {
            None
        };
        Ok(Records {
            decision,
            plan: plan_circ,
            hard_copy,
            summary,
            minutes,
        })
    }

    /// The conference that reconvenes an adjourned or deferred one.
    #[allow(clippy::too_many_arguments)]
    fn reconvene(
        &mut self,
        child: &str,
        kind: &str,
        id: &str,
        status: &str,
        held: Instant,
        requested: Option<Instant>,
        transfer_notified: Option<Instant>,
        dob: Option<NaiveDate>,
    ) -> Result<Option<(Instant, String)>, CalendarError> {
        let n = if self.chance(0.8) {
            self.int(5, 14)
        } else {
            self.int(16, 25)
        };
        let again = self.wd(self.day(held), n)?;
        let next = self.conference(
            child,
            kind,
            again,
            requested,
            transfer_notified,
            Some(id.to_string()),
            dob,
        )?;
        if let Some(reason) = (status == "adjourned" && self.chance(0.3))
            .then_some("Reconvened date set by the chair to secure the police report")
        {
            self.exception("reconvene-adjourned", None, Some(id), reason);
        }
        Ok(next)
    }

    fn invitations(
        &mut self,
        conf: &str,
        start: Instant,
        held: bool,
        unborn: bool,
        age: i64,
    ) -> Result<(), CalendarError> {
        let agencies = self.invited(unborn, age);
        let non_quorate = held && self.chance(0.04);
        let start_day = self.day(start);
        for (n, a) in agencies.iter().enumerate() {
            let report_expected = *a == "AG-CSC" || self.chance(0.93);
            let report_at = |g: &Gen| -> Option<Instant> {
                if !report_expected {
                    return None;
                }
                let t = match g.int(0, 99) {
                    0..=3 => return None,
                    4..=15 => start - Duration::hours(g.int(-2, 20)),
                    _ => start - Duration::hours(g.int(50, 170)),
                };
                g.happened(t)
            };
            let received = report_at(self);
            let shared = if received.is_some() && self.chance(0.9) {
                received.map(|t| t - Duration::hours(self.int(0, 30)))
            } else {
                report_at(self)
            };
            let authorised = if *a == "AG-CSC" {
                self.authorised(start_day)?
            } else {
                None
            };
            self.s.invitations.push(Invitation {
                conference_id: conf.into(),
                agency_id: a.to_string().into(),
                attended: held.then(|| {
                    !(non_quorate && n > 0 && n < agencies.len() - 1)
                        && (*a == "AG-CSC" || self.chance(0.88))
                }),
                report_expected,
                report_received_at: received,
                report_shared_with_family_at: shared.and_then(|t| self.happened(t)),
                report_authorised_at: authorised,
                email: None,
            });
        }
        if non_quorate && self.chance(0.5) {
            self.exception("quoracy", None, Some(conf), "Chair agreed to proceed: the child has contact with two agencies only; rationale recorded");
        }
        Ok(())
    }

    /// The agencies invited to a conference about a child of this age: six
    /// to ten in all.
    fn invited(&self, unborn: bool, age: i64) -> Vec<&'static str> {
        let mut agencies = vec!["AG-CSC", "AG-POL", "AG-GP"];
        if unborn || age < 5 {
            agencies.push(if unborn { "AG-MW" } else { "AG-HV" });
        }
        if (2..5).contains(&age) {
            agencies.push("AG-EY");
        }
        if age >= 5 {
            agencies.extend(["AG-EDU", "AG-SN"]);
        }
        // Six to ten agencies are invited in all.
        let mut extra = vec![
            "AG-ASC", "AG-AMH", "AG-PRO", "AG-HOU", "AG-YJ", "AG-VOL", "AG-HV", "AG-EDU",
        ];
        extra.retain(|a| !agencies.contains(a));
        extra.shuffle(&mut *self.rng.borrow_mut());
        let target = self.small(6, 10) as usize;
        while agencies.len() < target {
            let Some(a) = extra.pop() else { break };
            agencies.push(a);
        }
        agencies
    }

    /// When the social care report was authorised, by 10am two working days
    /// before the conference or (sometimes) later.
    fn authorised(&self, start_day: NaiveDate) -> Result<Option<Instant>, CalendarError> {
        let d = self.wd(
            start_day,
            if self.chance(0.82) {
                -self.int(2, 4)
            } else {
                -self.int(0, 1)
            },
        )?;
        let t = self.at(
            d,
            if self.chance(0.7) { 9 } else { 11 },
            self.small(0, 5) * 10,
        );
        Ok(self.happened(t))
    }

    /// Most dissents from ending a plan bring the conference back within
    /// weeks; the rest wait on the manager's decision. Made after every
    /// child, so the other conferences keep their numbers.
    fn dissent_reconvenings(&mut self) -> Result<(), CalendarError> {
        let dissents: Vec<(Text, Text, Instant)> = (self.s.conference_children.iter())
            .filter(|cc| cc.dissent_recorded)
            .filter_map(|cc| {
                let held = (self.s.conferences.iter())
                    .find(|c| c.id == cc.conference_id)?
                    .held_at?;
                Some((cc.conference_id.clone(), cc.child_id.clone(), held))
            })
            .collect();
        for (conf, child, held) in dissents {
            if !self.added_chance(0.6) {
                continue;
            }
            let Some(at) = self.happened(held + Duration::days(self.added_int(10, 35))) else {
                continue;
            };
            let id = self.next_conf();
            let r = self.records(Some(at), "held", Some("plan_ended"))?;
            self.s.conferences.push(Conference {
                id: id.clone().into(),
                kind: "review".into(),
                status: "held".into(),
                scheduled_at: Some(at),
                held_at: Some(at),
                reconvenes_id: Some(conf),
                decision_circulated_at: r.decision,
                summary_circulated_at: r.summary,
                minutes_circulated_at: r.minutes,
                ..Conference::default()
            });
            self.invitations(&id, at, true, false, 10)?;
            self.s.conference_children.push(ConferenceChild {
                conference_id: id.into(),
                child_id: child,
                outcome: Some("plan_ended".into()),
                category: None,
                advocacy_offered: None,
                workbook_received_at: None,
                dissent_recorded: false,
            });
        }
        Ok(())
    }

    fn exception(&mut self, rule: &str, child: Option<&str>, conf: Option<&str>, reason: &str) {
        let n = self.s.exceptions.len() + 1;
        self.s.exceptions.push(Exception {
            id: format!("EX-{n:05}").into(),
            rule: rule.into(),
            child_id: child.map(Text::from),
            conference_id: conf.map(Text::from),
            agency_id: None,
            reason: reason.into(),
            agreed_by: "Conference chair".into(),
            recorded_at: self.now.min(self.now - Duration::days(1)),
        });
    }

    /// A plan from an initial conference: core groups, visits and reviews until it ends or today.
    fn plan_life(
        &mut self,
        child: &str,
        i: usize,
        start: Instant,
        board: Option<&str>,
        dob: Option<NaiveDate>,
    ) -> Result<(), CalendarError> {
        let start_day = self.day(start);
        let today = self.day(self.now);
        let interval = self.one_of(&[5, 10, 10, 10, 15, 20]).unwrap_or(10);
        let plan_id = format!("PLAN-{i:05}");
        self.s.cp_plans.push(new_plan(
            &plan_id,
            child,
            start_day,
            interval,
            self.one_of(CATEGORIES).unwrap_or("neglect"),
        ));

        self.core_groups(child, i, start, board)?;
        self.visits(child, i, start_day, interval)?;
        self.reviews(child, &plan_id, start_day, today, dob)?;
        Ok(())
    }

    /// Core groups from the plan's start, about every six weeks.
    fn core_groups(
        &mut self,
        child: &str,
        i: usize,
        start: Instant,
        board: Option<&str>,
    ) -> Result<(), CalendarError> {
        let start_day = self.day(start);
        // Core groups: Hampshire's follow the conference directly.
        let first_cg = if board == Some("hampshire-4lscb") && self.chance(0.8) {
            Some(start + Duration::hours(2))
        } else {
            let n = if self.chance(0.85) {
                self.int(3, 10)
            } else {
                self.int(11, 16)
            };
            let d = self.wd(start_day, n)?;
            Some(self.office(d))
        };
        let mut cg = first_cg;
        let mut k = 0;
        while let Some(t) = cg.filter(|t| *t <= self.now) {
            k += 1;
            self.s.core_groups.push(CoreGroup {
                id: format!("CG-{i:05}-{k}").into(),
                child_id: child.into(),
                held_at: t,
            });
            let gap = if self.chance(0.85) {
                self.int(25, 42)
            } else {
                self.int(43, 60)
            };
            cg = Some(t + Duration::days(gap));
        }
        Ok(())
    }

    fn visits(
        &mut self,
        child: &str,
        i: usize,
        start_day: NaiveDate,
        interval: i64,
    ) -> Result<(), CalendarError> {
        // Visits at about the plan's interval.
        let mut v = start_day;
        let mut k = 0;
        loop {
            // Whole working days, a few dozen at most.
            #[allow(clippy::cast_possible_truncation)]
            let n = (interval as f64 * self.rng.borrow_mut().gen_range(0.6..1.25)).round() as i64;
            v = self.wd(v, n.max(1))?;
            let t = self.office(v);
            if t > self.now {
                break;
            }
            k += 1;
            self.s.visits.push(Visit {
                id: format!("V-{i:05}-{k}").into(),
                child_id: child.into(),
                visited_at: t,
                seen_alone: Some(self.chance(0.7)),
            });
        }
        Ok(())
    }

    /// Review conferences until one ends the plan (or the future is reached).
    fn reviews(
        &mut self,
        child: &str,
        plan_id: &str,
        start_day: NaiveDate,
        today: NaiveDate,
        dob: Option<NaiveDate>,
    ) -> Result<(), CalendarError> {
        // Reviews: 3 months, then 6-monthly.
        let mut previous = start_day;
        let mut months = 3;
        for _ in 0..6 {
            let due = add_months(previous, months);
            let shift = if self.chance(0.85) {
                -self.int(0, 14)
            } else {
                self.int(1, 25)
            };
            let day = self.wd(due + Duration::days(shift), 0)?;
            if day > today + Duration::days(60) {
                break;
            }
            let reviewed = self.conference(
                child,
                "review",
                day,
                Some(self.at(previous, 12, 0)),
                None,
                None,
                dob,
            )?;
            let Some((held, outcome)) = reviewed else {
                break;
            };
            if outcome == "plan_ended" {
                if let Some(p) = self.s.cp_plans.iter_mut().find(|p| p.id == plan_id) {
                    p.ended_on = Some(self.cal.local_date(held));
                    p.end_reason = Some("no longer at risk of significant harm".into());
                }
                if months == 3 && self.chance(0.5) {
                    let conf = self.s.conferences.last().map(|c| c.id.clone());
                    self.exception(
                        "discontinued-at-first-review",
                        Some(child),
                        conf.as_deref(),
                        "Court order in place; agreed by the chair as exceptional",
                    );
                }
                break;
            }
            previous = self.cal.local_date(held);
            months = 6;
        }
        Ok(())
    }

    fn cin_reviews(&mut self, child: &str, i: usize, from: Instant) -> Result<(), CalendarError> {
        let mut d = self.day(from);
        for k in 1..=4 {
            d = self.wd(
                add_months(d, if self.chance(0.85) { self.int(3, 5) } else { 7 }),
                0,
            )?;
            if self.cal.start_of_day(d) > self.now {
                break;
            }
            self.s.cin_reviews.push(CinReview {
                id: format!("CIN-{i:05}-{k}").into(),
                child_id: child.into(),
                held_on: d,
            });
        }
        Ok(())
    }

    /// A few records that contradict themselves, as real extracts do.
    /// Records that contradict each other or the contract, one of each kind
    /// the checks report.
    fn contradictions(&mut self) -> Result<(), CalendarError> {
        self.conference_before_strategy_discussion();
        self.review_without_plan()?;
        // An invitation naming an agency that does not exist.
        if let Some(c) = self
            .s
            .conferences
            .iter()
            .find(|c| c.status == "held")
            .map(|c| c.id.clone())
        {
            self.s.invitations.push(Invitation {
                conference_id: c,
                agency_id: "AG-DENTAL".into(),
                attended: Some(true),
                report_expected: true,
                report_received_at: None,
                report_shared_with_family_at: None,
                report_authorised_at: None,
                email: None,
            });
        }
        // Minutes recorded as circulated three days from now.
        if let Some(c) = self
            .s
            .conferences
            .iter_mut()
            .rev()
            .find(|c| c.status == "held" && c.minutes_circulated_at.is_none())
        {
            c.minutes_circulated_at = Some(self.now + Duration::days(3));
        }
        // A child with two open plans.
        if let Some(p) = self
            .s
            .cp_plans
            .iter()
            .find(|p| p.ended_on.is_none())
            .cloned()
        {
            let mut second = p.clone();
            second.id = format!("{}-DUP", p.id).into();
            second.started_on = p.started_on + Duration::days(14);
            self.s.cp_plans.push(second);
        }
        // A reconvened conference whose original is missing.
        if let Some(c) = self
            .s
            .conferences
            .iter_mut()
            .rev()
            .find(|c| c.kind == "initial" && c.reconvenes_id.is_none() && c.status == "held")
        {
            c.reconvenes_id = Some("CONF-MISSING".into());
        }
        Ok(())
    }

    /// A conference recorded as held before the strategy discussion it answers.
    fn conference_before_strategy_discussion(&mut self) {
        let now = self.now;
        let moved = self
            .s
            .conferences
            .iter()
            .filter(|c| c.kind == "initial" && c.status == "held" && c.reconvenes_id.is_none())
            .find_map(|c| {
                let h = c.held_at.filter(|h| *h + Duration::days(3) < now)?;
                let child = self
                    .s
                    .conference_children
                    .iter()
                    .find(|cc| cc.conference_id == c.id)?
                    .child_id
                    .clone();
                Some((child, h))
            });
        if let Some((child, h)) = moved {
            for d in self
                .s
                .strategy_discussions
                .iter_mut()
                .filter(|d| d.child_id == child)
            {
                d.held_at = h + Duration::days(2);
                d.conference_decided_at = d
                    .conference_decided_at
                    .map(|_| h + Duration::days(2) + Duration::hours(1));
                d.child_seen_at = None;
            }
        }
    }

    /// A review conference about a child with no plan.
    fn review_without_plan(&mut self) -> Result<(), CalendarError> {
        let today = self.day(self.now);
        let lone = self
            .s
            .children
            .iter()
            .find(|c| {
                !self.s.cp_plans.iter().any(|p| p.child_id == c.id)
                    && !self
                        .s
                        .conference_children
                        .iter()
                        .any(|cc| cc.child_id == c.id)
            })
            .map(|c| c.id.clone());
        if let Some(child) = lone {
            let day = self.wd(today - Duration::days(40), 0)?;
            let id = self.next_conf();
            let t = self.at(day, 10, 0);
            self.s.conferences.push(Conference {
                id: id.clone().into(),
                kind: "review".into(),
                status: "held".into(),
                held_at: Some(t),
                scheduled_at: Some(t),
                ..Conference::default()
            });
            self.s.conference_children.push(ConferenceChild {
                conference_id: id.into(),
                child_id: child,
                outcome: Some("plan_continues".into()),
                category: None,
                advocacy_offered: None,
                workbook_received_at: None,
                dissent_recorded: false,
            });
        }
        Ok(())
    }
}

fn new_plan(id: &str, child: &str, started_on: NaiveDate, interval: i64, category: &str) -> CpPlan {
    CpPlan {
        id: id.into(),
        child_id: child.into(),
        started_on,
        ended_on: None,
        end_reason: None,
        category: Some(category.into()),
        visit_interval_working_days: Some(interval),
    }
}
