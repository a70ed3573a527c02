//! Synthetic casework written as a Children in Need census return (the
//! current schema), for trying `cpwatch import cin-census` and measuring it
//! at scale: `cpwatch seed --census FILE`.

use std::collections::HashMap;
use std::io::Write;

use chrono::NaiveDate;
use quick_xml::escape::escape;

use crate::domain::case::{CaseState, Conference, CpPlan, Instant};

/// The census's date of an instant: its UK date.
fn day(t: Instant) -> NaiveDate {
    t.with_timezone(&chrono_tz::Europe::London).date_naive()
}

/// Writes `s` as a census return: a child's referrals as one episode, each
/// section 47 strategy discussion an enquiry with the initial conference it
/// led to, each plan with the review conferences held while it ran.
pub fn write(s: &CaseState, reference_date: NaiveDate, w: &mut impl Write) -> std::io::Result<()> {
    let mut referrals: HashMap<&str, Vec<NaiveDate>> = HashMap::new();
    for r in &s.referrals {
        referrals
            .entry(&r.child_id)
            .or_default()
            .push(day(r.received_at));
    }
    let mut sds: HashMap<&str, Vec<NaiveDate>> = HashMap::new();
    for d in s.strategy_discussions.iter().filter(|d| d.s47_initiated) {
        sds.entry(&d.child_id).or_default().push(day(d.held_at));
    }
    let conferences: HashMap<&str, &Conference> =
        s.conferences.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut held: HashMap<&str, Vec<(&str, NaiveDate)>> = HashMap::new();
    for cc in &s.conference_children {
        if let Some(c) = conferences.get(cc.conference_id.as_str()) {
            if let (Some(t), "held") = (c.held_at, c.status.as_str()) {
                held.entry(&cc.child_id)
                    .or_default()
                    .push((c.kind.as_str(), day(t)));
            }
        }
    }
    let mut plans: HashMap<&str, Vec<&CpPlan>> = HashMap::new();
    for p in &s.cp_plans {
        plans.entry(&p.child_id).or_default().push(p);
    }
    writeln!(w, "<?xml version=\"1.0\" encoding=\"utf-8\"?>")?;
    writeln!(w, "<Message><Header><CollectionDetails><Collection>CIN</Collection><Year>{}</Year><ReferenceDate>{reference_date}</ReferenceDate></CollectionDetails></Header>", reference_date.format("%Y"))?;
    writeln!(w, "<Children>")?;
    for c in &s.children {
        let id = c.id.as_str();
        write!(
            w,
            "<Child><ChildIdentifiers><LAchildID>{}</LAchildID>",
            escape(c.reference.as_str())
        )?;
        if let Some(b) = c.date_of_birth {
            write!(w, "<PersonBirthDate>{b}</PersonBirthDate>")?;
        }
        if let Some(e) = c.expected_due_date {
            write!(w, "<ExpectedPersonBirthDate>{e}</ExpectedPersonBirthDate>")?;
        }
        write!(w, "<Sex>0</Sex></ChildIdentifiers><ChildCharacteristics><Ethnicity>NOBT</Ethnicity></ChildCharacteristics>")?;
        let mut conferences = held.get(id).cloned().unwrap_or_default();
        conferences.sort_by_key(|(_, d)| *d);
        let mut enquiries = sds.get(id).cloned().unwrap_or_default();
        enquiries.sort();
        let referral = referrals
            .get(id)
            .and_then(|v| v.iter().min().copied())
            .or_else(|| enquiries.first().copied())
            .unwrap_or(reference_date);
        write!(w, "<CINdetails><CINreferralDate>{referral}</CINreferralDate><ReferralSource>1A</ReferralSource>")?;
        for (i, start) in enquiries.iter().enumerate() {
            let next = enquiries.get(i + 1);
            let icpc = conferences
                .iter()
                .find(|(k, d)| *k != "review" && d >= start && next.is_none_or(|n| d < n))
                .map(|(_, d)| *d);
            write!(
                w,
                "<Section47><S47ActualStartDate>{start}</S47ActualStartDate>"
            )?;
            if let Some(d) = icpc {
                write!(w, "<DateOfInitialCPC>{d}</DateOfInitialCPC>")?;
            }
            write!(
                w,
                "<ICPCnotRequired>{}</ICPCnotRequired></Section47>",
                u8::from(icpc.is_none())
            )?;
        }
        write!(w, "<ReferralNFA>0</ReferralNFA>")?;
        for p in plans.get(id).map(Vec::as_slice).unwrap_or(&[]) {
            let (start, end) = (&p.started_on, &p.ended_on);
            let code = match p.category.as_deref().unwrap_or("neglect") {
                "physical_abuse" => "PHY",
                "emotional_abuse" => "EMO",
                "sexual_abuse" => "SAB",
                "multiple" => "MUL",
                _ => "NEG",
            };
            write!(
                w,
                "<ChildProtectionPlans><CPPstartDate>{start}</CPPstartDate>"
            )?;
            if let Some(e) = end {
                write!(w, "<CPPendDate>{e}</CPPendDate>")?;
            }
            write!(w, "<InitialCategoryOfAbuse>{code}</InitialCategoryOfAbuse><LatestCategoryOfAbuse>{code}</LatestCategoryOfAbuse><NumberOfPreviousCPP>0</NumberOfPreviousCPP>")?;
            let reviews: Vec<NaiveDate> = conferences
                .iter()
                .filter(|(k, d)| *k == "review" && d > start && end.is_none_or(|e| *d <= e))
                .map(|(_, d)| *d)
                .collect();
            if !reviews.is_empty() {
                write!(w, "<Reviews>")?;
                for r in reviews {
                    write!(w, "<CPPreviewDate>{r}</CPPreviewDate>")?;
                }
                write!(w, "</Reviews>")?;
            }
            write!(w, "</ChildProtectionPlans>")?;
        }
        writeln!(w, "</CINdetails></Child>")?;
    }
    writeln!(w, "</Children></Message>")
}
