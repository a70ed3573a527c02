//! Working-day arithmetic, checked by hand against the England and Wales
//! bank holidays, and property tests over 2011–2026.
#![allow(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation
)]

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};
use chrono_tz::Europe::London;
use cpwatch::domain::calendar::{Calendar, CalendarError, HolidayData, Offset, ShownOffset};
use proptest::prelude::*;

fn cal() -> Calendar {
    let data = Arc::new(HolidayData::load(None).expect("built-in holidays"));
    Calendar::new(data, "england-and-wales", London).expect("division")
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("instant")
        .with_timezone(&Utc)
}

fn off(s: &str) -> Offset {
    s.parse().expect("offset")
}

#[test]
fn christmas_with_substitute_days() {
    let c = cal();
    // 2026: Christmas Friday, Boxing Day Saturday -> substitute Monday 28th; New Year Friday.
    assert_eq!(
        c.add_working_days(d("2026-12-21"), 15).expect("covered"),
        d("2027-01-14")
    );
    // 2021: both on the weekend -> Monday 27 and Tuesday 28 are bank holidays.
    assert_eq!(
        c.add_working_days(d("2021-12-24"), 1).expect("covered"),
        d("2021-12-29")
    );
    // 2022: Christmas Sunday -> substitute Tuesday 27; Boxing Day Monday 26.
    assert_eq!(
        c.add_working_days(d("2022-12-23"), 1).expect("covered"),
        d("2022-12-28")
    );
    // 2020: Boxing Day Saturday -> substitute Monday 28.
    assert_eq!(
        c.add_working_days(d("2020-12-24"), 1).expect("covered"),
        d("2020-12-29")
    );
    assert!(!c.is_working_day(d("2020-12-28")).expect("covered"));
    // New Year's Day 2022 was a Saturday: Monday 3 January is the substitute.
    assert!(!c.is_working_day(d("2022-01-03")).expect("covered"));
}

#[test]
fn easter_and_may() {
    let c = cal();
    // Good Friday 18 April and Easter Monday 21 April 2025.
    assert_eq!(
        c.add_working_days(d("2025-04-17"), 1).expect("covered"),
        d("2025-04-22")
    );
    // Early May bank holiday, Monday 5 May 2025.
    assert_eq!(
        c.add_working_days(d("2025-05-02"), 1).expect("covered"),
        d("2025-05-06")
    );
    // 2020 moved the early May holiday to Friday 8 May (VE Day); Monday 4 May was a working day.
    assert!(c.is_working_day(d("2020-05-04")).expect("covered"));
    assert_eq!(
        c.add_working_days(d("2020-05-07"), 1).expect("covered"),
        d("2020-05-11")
    );
}

#[test]
fn one_off_bank_holidays_of_2022_and_2023() {
    let c = cal();
    // Platinum Jubilee: spring holiday moved to Thursday 2 June, plus Friday 3 June 2022.
    assert!(c.is_working_day(d("2022-05-30")).expect("covered"));
    assert_eq!(
        c.add_working_days(d("2022-06-01"), 1).expect("covered"),
        d("2022-06-06")
    );
    // State funeral of Queen Elizabeth II, Monday 19 September 2022.
    assert_eq!(
        c.add_working_days(d("2022-09-16"), 1).expect("covered"),
        d("2022-09-20")
    );
    // Coronation of King Charles III, Monday 8 May 2023 (after early May on the 1st).
    assert_eq!(
        c.add_working_days(d("2023-05-05"), 1).expect("covered"),
        d("2023-05-09")
    );
    assert_eq!(
        c.add_working_days(d("2023-04-28"), 1).expect("covered"),
        d("2023-05-02")
    );
}

#[test]
fn day_zero_on_a_weekend() {
    let c = cal();
    // Saturday is day 0; the first working day after it is Monday.
    let start = t("2026-06-06T10:00:00+01:00");
    assert_eq!(
        c.deadline(start, &off("+1 working day")).expect("ok"),
        t("2026-06-08T23:59:59+01:00")
    );
    // "Same working day" for something arriving on a Saturday ends on Monday.
    assert_eq!(
        c.deadline(start, &off("+0 working days")).expect("ok"),
        t("2026-06-08T23:59:59+01:00")
    );
    // A Sunday strategy discussion: 15 working days end on Friday 26 June.
    assert_eq!(
        c.deadline(t("2026-06-07T09:00:00+01:00"), &off("+15 working days"))
            .expect("ok"),
        t("2026-06-26T23:59:59+01:00")
    );
}

#[test]
fn end_of_day_is_local_across_both_clock_changes() {
    let c = cal();
    // Spring: 29 March 2026 ends at 23:59:59 BST, 22:59:59 UTC.
    assert_eq!(c.end_of_day(d("2026-03-29")), t("2026-03-29T22:59:59Z"));
    assert_eq!(c.end_of_day(d("2026-03-28")), t("2026-03-28T23:59:59Z"));
    // Autumn: 25 October 2026 ends at 23:59:59 GMT.
    assert_eq!(c.end_of_day(d("2026-10-25")), t("2026-10-25T23:59:59Z"));
    assert_eq!(c.end_of_day(d("2026-10-24")), t("2026-10-24T22:59:59Z"));
    // A local time the spring change skips is taken an hour later.
    assert_eq!(
        c.at_local(
            d("2026-03-29"),
            chrono::NaiveTime::from_hms_opt(1, 30, 0).expect("time")
        ),
        t("2026-03-29T01:30:00Z")
    );
}

#[test]
fn hours_are_elapsed_time_across_clock_changes() {
    let c = cal();
    // 24 hours from noon GMT on Saturday is 13:00 BST on Sunday.
    assert_eq!(
        c.deadline(t("2026-03-28T12:00:00Z"), &off("+24 hours"))
            .expect("ok"),
        t("2026-03-29T13:00:00+01:00")
    );
    // 24 hours from noon BST on Saturday is 11:00 GMT on Sunday.
    assert_eq!(
        c.deadline(t("2026-10-24T12:00:00+01:00"), &off("+24 hours"))
            .expect("ok"),
        t("2026-10-25T11:00:00Z")
    );
    // 48 hours before a Monday 10:00 conference is Saturday 10:00: weekends count.
    assert_eq!(
        c.deadline(t("2026-06-08T10:00:00+01:00"), &off("-48 hours"))
            .expect("ok"),
        t("2026-06-06T10:00:00+01:00")
    );
}

#[test]
fn at_ten_o_clock_working_days_before() {
    let c = cal();
    // Conference Tuesday 31 March 2026 (BST): two working days before is Friday 27 March (GMT), 10:00.
    assert_eq!(
        c.deadline(
            t("2026-03-31T10:00:00+01:00"),
            &off("-2 working days at 10:00")
        )
        .expect("ok"),
        t("2026-03-27T10:00:00Z")
    );
    // Conference Tuesday 5 January 2027: day -1 is Monday 4 January, day -2 skips
    // New Year's Day (Friday) to Thursday 31 December 2026.
    assert_eq!(
        c.deadline(t("2027-01-05T14:00:00Z"), &off("-2 working days at 10:00"))
            .expect("ok"),
        t("2026-12-31T10:00:00Z")
    );
}

#[test]
fn calendar_days_weeks_and_months() {
    let c = cal();
    let start = t("2026-11-30T15:00:00Z");
    // Month-end clamping: 30 November + 3 months = 28 February (29 in a leap year).
    assert_eq!(
        c.deadline(start, &off("+3 months")).expect("ok"),
        t("2027-02-28T23:59:59Z")
    );
    assert_eq!(
        c.deadline(t("2027-11-30T15:00:00Z"), &off("+3 months"))
            .expect("ok"),
        t("2028-02-29T23:59:59Z")
    );
    assert_eq!(
        c.deadline(t("2026-08-31T09:00:00+01:00"), &off("+6 months"))
            .expect("ok"),
        t("2027-02-28T23:59:59Z")
    );
    assert_eq!(
        c.deadline(start, &off("+6 weeks")).expect("ok"),
        t("2027-01-11T23:59:59Z")
    );
    assert_eq!(
        c.deadline(start, &off("+5 days")).expect("ok"),
        t("2026-12-05T23:59:59Z")
    );
    assert_eq!(
        c.deadline(start, &off("-1 day")).expect("ok"),
        t("2026-11-29T23:59:59Z")
    );
    assert_eq!(
        c.deadline(start, &off("-12 weeks")).expect("ok"),
        t("2026-09-07T23:59:59+01:00")
    );
}

#[test]
fn a_year_the_calendar_does_not_cover_is_an_error_naming_it() {
    let c = cal();
    let e = c
        .add_working_days(d("2027-12-20"), 15)
        .expect_err("2028 is not covered");
    match &e {
        CalendarError::YearNotCovered { year, .. } => assert_eq!(*year, 2028),
        other => panic!("unexpected error {other}"),
    }
    let text = e.to_string();
    assert!(
        text.contains("2028") && text.contains("bank-holidays.json"),
        "{text}"
    );
    assert!(c.is_working_day(d("2009-12-31")).is_err());
}

#[test]
fn a_newer_file_and_closure_days_need_no_rebuild() {
    let json = r#"{"england-and-wales":{"division":"england-and-wales","events":[
        {"title":"New Year’s Day","date":"2030-01-01","notes":"","bunting":true},
        {"title":"Christmas Day","date":"2030-12-25","notes":"","bunting":true}]}}"#;
    let mut data = HolidayData::parse(json, "newer.json").expect("parses");
    data.add_closures([(d("2030-12-24"), "Council Christmas closure".to_string())]);
    let c = Calendar::new(Arc::new(data), "england-and-wales", London).expect("division");
    assert!(!c.is_working_day(d("2030-12-24")).expect("covered"));
    assert_eq!(
        c.add_working_days(d("2030-12-23"), 1).expect("covered"),
        d("2030-12-26")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("closures.txt");
    std::fs::write(
        &path,
        "# closures\n2030-12-27 Council closure\nnot-a-date\n",
    )
    .expect("write");
    let mut data = HolidayData::parse(json, "newer.json").expect("parses");
    let e = data.load_closures(&path).expect_err("bad line");
    assert!(e.to_string().contains("not-a-date"), "{e}");
    let e = Calendar::new(
        Arc::new(HolidayData::parse(json, "newer.json").expect("parses")),
        "scotland",
        London,
    )
    .expect_err("no such division");
    assert!(e.to_string().contains("scotland"), "{e}");
}

#[test]
fn offsets_parse_and_reject_typos() {
    assert_eq!(off("+15 working days").to_string(), "+15 working days");
    assert_eq!(
        off("-2 working days at 10:00").to_string(),
        "-2 working days at 10:00"
    );
    assert_eq!(off("\u{2212}24 hours").to_string(), "-24 hours");
    assert_eq!(off("+1 working day").to_string(), "+1 working day");
    for bad in [
        "+15 wrking days",
        "15 working days",
        "+x days",
        "+2 hours at 10:00",
        "+2 days at 25:00",
        "+-3 days",
    ] {
        assert!(bad.parse::<Offset>().is_err(), "{bad} should not parse");
    }
    let e = "+15 wrking days".parse::<Offset>().expect_err("typo");
    assert!(e.contains("unknown unit"), "{e}");
}

/// An obligation keeps its resolved offset in eight bytes: it must show and
/// count as the offset it came from (fails if a unit, sign or time is lost).
#[test]
fn offsets_as_obligations_keep_them_show_as_before() {
    assert_eq!(std::mem::size_of::<Option<ShownOffset>>(), 8);
    for text in [
        "+15 working days",
        "-2 working days at 10:00",
        "+1 working day",
        "-24 hours",
        "+1 hour",
        "-1 day",
        "+10 days at 23:59",
        "+6 weeks",
        "+3 months",
        "-1 day at 00:00",
        "+0 working days",
    ] {
        let o = off(text);
        let shown = o.shown().expect("a fixed offset");
        assert_eq!(shown.to_string(), text);
        assert_eq!(shown.offset(), o);
        assert_eq!(
            serde_json::to_value(shown).expect("json"),
            serde_json::json!(text)
        );
    }
    let field = off("+plan.visit_interval_working_days working days");
    assert_eq!(field.shown(), None);
    let resolved = field.resolve(Some(20)).expect("resolved");
    assert_eq!(
        resolved.shown().map(|s| s.to_string()).as_deref(),
        Some("+20 working days")
    );
    // A value that is no interval resolves to nothing (evaluation reports it).
    for bad in [0, -5, 262, i64::from(i32::MAX) + 1] {
        assert!(field.resolve(Some(bad)).is_none(), "{bad}");
    }
}

#[test]
fn working_days_late() {
    let c = cal();
    let due = t("2027-01-14T23:59:59Z");
    assert_eq!(c.working_days_late(due, due).expect("ok"), 0);
    assert_eq!(
        c.working_days_late(due, t("2027-01-15T09:00:00Z"))
            .expect("ok"),
        1
    );
    assert_eq!(
        c.working_days_late(due, t("2027-01-16T09:00:00Z"))
            .expect("ok"),
        1
    );
    assert_eq!(
        c.working_days_late(due, t("2027-01-18T09:00:00Z"))
            .expect("ok"),
        2
    );
    // One minute after a 10:00 deadline is late by (part of) one working day.
    assert_eq!(
        c.working_days_late(t("2027-01-14T10:00:00Z"), t("2027-01-14T10:01:00Z"))
            .expect("ok"),
        1
    );
}

fn working_day_strategy() -> impl Strategy<Value = NaiveDate> {
    (0i64..(16 * 365)).prop_map(|n| d("2011-01-01") + chrono::Duration::days(n))
}

proptest! {
    #[test]
    fn adding_then_subtracting_returns_to_a_working_day_not_after_the_start(start in working_day_strategy(), n in 0i64..60) {
        let c = cal();
        let there = c.add_working_days(start, n).expect("covered");
        let back = c.add_working_days(there, -n).expect("covered");
        prop_assert!(c.is_working_day(back).expect("covered") || n == 0);
        prop_assert!(back <= start || n == 0);
        if c.is_working_day(start).expect("covered") {
            prop_assert_eq!(back, start);
        }
    }

    #[test]
    fn working_day_deadlines_never_fall_on_a_weekend_or_holiday(start in working_day_strategy(), n in -40i64..60, hour in 0u32..24) {
        let c = cal();
        let at = c.at_local(start, chrono::NaiveTime::from_hms_opt(hour, 0, 0).expect("time"));
        let due = c.deadline(at, &format!("{}{} working days", if n < 0 { "-" } else { "+" }, n.abs()).parse().expect("offset")).expect("covered");
        let day = c.local_date(due);
        prop_assert!(!matches!(day.weekday(), Weekday::Sat | Weekday::Sun));
        prop_assert!(c.holiday(day).is_none());
        if n > 0 { prop_assert!(due > at); }
        if n < 0 { prop_assert!(due < at); }
    }

    #[test]
    fn more_working_days_never_give_an_earlier_deadline(start in working_day_strategy(), n in 0i64..40) {
        let c = cal();
        let a = c.add_working_days(start, n).expect("covered");
        let b = c.add_working_days(start, n + 1).expect("covered");
        // From a non-working day, "+0" (the next working day) and "+1" coincide.
        if n == 0 && !c.is_working_day(start).expect("covered") {
            prop_assert_eq!(b, a);
        } else {
            prop_assert!(b > a);
        }
    }

    /// A working-day deadline is worked out by day numbers in the tables; it
    /// must be the start's local date moved by the working days, at the
    /// offset's time or the end of that day, from any hour of any day.
    #[test]
    fn working_day_deadlines_are_the_local_date_moved_by_working_days(start in working_day_strategy(), n in -70i64..70, hour in 0u32..24, minute in 0u32..60, at_ten in any::<bool>()) {
        let c = cal();
        let instant = c.at_local(start, chrono::NaiveTime::from_hms_opt(hour, minute, 0).expect("time"));
        let text = format!("{}{} working days{}", if n < 0 { "-" } else { "+" }, n.abs(), if at_ten { " at 10:00" } else { "" });
        let day = c.add_working_days(c.local_date(instant), n).expect("covered");
        let want = if at_ten {
            cpwatch::domain::calendar::local_instant(London, day, chrono::NaiveTime::from_hms_opt(10, 0, 0).expect("time"))
        } else {
            cpwatch::domain::calendar::local_instant(London, day, chrono::NaiveTime::from_hms_opt(23, 59, 59).expect("time"))
        };
        prop_assert_eq!(c.deadline(instant, &off(&text)).expect("covered"), want, "{} {}", instant, text);
    }

    /// The calendar counts with a precomputed table; this walks day by day
    /// from the holiday list itself, as the catalogue defines working days.
    #[test]
    fn counting_agrees_with_a_day_by_day_walk(start in working_day_strategy(), n in -70i64..70, late in 0i64..90) {
        let c = cal();
        let working = |d: NaiveDate| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && c.holiday(d).is_none();
        let mut want = start;
        if n == 0 {
            while !working(want) { want += chrono::Duration::days(1); }
        }
        let mut left = n.abs();
        while left > 0 {
            want += chrono::Duration::days(n.signum());
            if working(want) { left -= 1; }
        }
        prop_assert_eq!(c.add_working_days(start, n).expect("covered"), want);
        prop_assert_eq!(c.is_working_day(start).expect("covered"), working(start));

        let due = c.end_of_day(start);
        let at = c.at_local(start + chrono::Duration::days(late), chrono::NaiveTime::from_hms_opt(9, 0, 0).expect("time"));
        let walked = (1..=late).filter(|k| working(start + chrono::Duration::days(*k))).count() as i64;
        let expected = if at <= due { 0 } else { walked.max(1) };
        prop_assert_eq!(c.working_days_late(due, at).expect("covered"), expected);
    }
}

/// Local dates, day bounds and local times come from a day-by-day table of the
/// zone; they must agree with chrono-tz at every quarter hour (and the second
/// before it) of every covered year, in zones that change by an hour, by half
/// an hour, and one that skipped a whole day (Samoa, 30 December 2011).
#[test]
fn the_zone_table_agrees_with_chrono_tz_everywhere() {
    use chrono::{Duration, NaiveTime};
    let data = Arc::new(HolidayData::load(None).expect("built-in data"));
    for tz in [
        London,
        chrono_tz::Australia::Lord_Howe,
        chrono_tz::Pacific::Apia,
    ] {
        let cal = Calendar::new(data.clone(), "england-and-wales", tz).expect("calendar");
        let mut at = t("2008-12-31T00:00:00Z");
        while at < t("2029-01-02T00:00:00Z") {
            for i in [at - Duration::seconds(1), at] {
                assert_eq!(
                    cal.local_date(i),
                    i.with_timezone(&tz).date_naive(),
                    "{tz} at {i}"
                );
            }
            at += Duration::minutes(15);
        }
        let mut day = d("2008-12-31");
        while day < d("2029-01-02") {
            assert_eq!(
                cal.start_of_day(day),
                cpwatch::domain::calendar::local_instant(tz, day, NaiveTime::MIN),
                "{tz} {day}"
            );
            let end = NaiveTime::from_hms_opt(23, 59, 59).expect("time");
            assert_eq!(
                cal.end_of_day(day),
                cpwatch::domain::calendar::local_instant(tz, day, end),
                "{tz} {day}"
            );
            // Times in and around the hours the clocks change, and a deadline's 10:00.
            for (h, m) in [
                (0, 0),
                (0, 30),
                (1, 0),
                (1, 30),
                (2, 0),
                (2, 30),
                (3, 0),
                (10, 0),
                (23, 59),
            ] {
                let time = NaiveTime::from_hms_opt(h, m, 0).expect("time");
                assert_eq!(
                    cal.at_local(day, time),
                    cpwatch::domain::calendar::local_instant(tz, day, time),
                    "{tz} {day} {time}"
                );
            }
            day = day.succ_opt().expect("next day");
        }
    }
}

proptest! {
    /// Any offset a rule file may hold, from any instant a case may record:
    /// it parses or is refused, and a deadline is worked out or is an error,
    /// never a panic (a panic stops the service).
    #[test]
    fn any_offset_from_any_instant_is_a_deadline_or_an_error(
        negative in any::<bool>(),
        amount in prop_oneof![0i64..200, 0i64..100_000, 0i64..=i64::MAX],
        unit in prop::sample::select(vec!["working days", "hours", "days", "weeks", "months"]),
        at in prop::option::of(0u32..24),
        secs in -62_000_000_000i64..250_000_000_000i64,
    ) {
        let text = format!(
            "{}{amount} {unit}{}",
            if negative { "-" } else { "+" },
            at.map(|h| format!(" at {h:02}:00")).unwrap_or_default()
        );
        let Ok(offset) = text.parse::<Offset>() else { return Ok(()) };
        let start = DateTime::from_timestamp(secs, 0).expect("in range");
        let _ = cal().deadline(start, &offset);
    }
}

#[test]
fn offsets_longer_than_a_century_are_refused() {
    for text in [
        "+2562047788015 hours",
        "+40000 working days",
        "-1300 months",
        "+40000 days",
    ] {
        let e = text.parse::<Offset>().expect_err(text);
        assert!(e.contains("more than a century"), "{text}: {e}");
    }
    for text in ["+876000 hours", "+26100 working days", "-1200 months"] {
        text.parse::<Offset>().expect(text);
    }
}
