//! Working-day calendar: bank holidays (gov.uk `bank-holidays.json` format),
//! deployment closure days, the board's time zone, and every offset phrase of
//! the rules catalogue (§1). Nothing else in cpwatch does date arithmetic.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{
    DateTime, Datelike, Duration, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike,
    Utc, Weekday,
};
use chrono_tz::Tz;
use serde::Deserialize;

/// The bank holidays shipped with cpwatch (gov.uk format, 2010–2027).
pub const EMBEDDED_BANK_HOLIDAYS: &str = include_str!("../../data/bank-holidays.json");
const EMBEDDED_NAME: &str = "<built-in bank-holidays.json>";

#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error("{file}: cannot read the bank-holiday file: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: not a gov.uk bank-holidays.json file: {source}")]
    Parse {
        file: String,
        source: serde_json::Error,
    },
    #[error("{file}: has no division {division:?} (it has: {available})")]
    NoDivision {
        file: String,
        division: String,
        available: String,
    },
    #[error("{date} {offset} is beyond the dates cpwatch can count")]
    OutOfRange { date: String, offset: String },
    #[error("the calendar {division:?} in {file} covers {first}–{last}; {year} is not covered: point `calendar_file` at a newer gov.uk bank-holidays.json")]
    YearNotCovered {
        division: String,
        file: String,
        year: i32,
        first: i32,
        last: i32,
    },
    #[error("{file}: closure day {line:?} is not a YYYY-MM-DD date")]
    BadClosure { file: String, line: String },
}

#[derive(Deserialize)]
struct GovUkDivision {
    events: Vec<GovUkEvent>,
}

#[derive(Deserialize)]
struct GovUkEvent {
    title: String,
    date: NaiveDate,
}

/// Bank holidays of every division, plus the deployment's own closure days.
#[derive(Debug)]
pub struct HolidayData {
    file: String,
    divisions: HashMap<String, Arc<Division>>,
    closures: BTreeMap<NaiveDate, String>,
    /// Each time zone's days over the covered years, built on first use.
    zones: std::sync::Mutex<Vec<(Tz, Arc<ZoneDays>)>>,
}

#[derive(Debug)]
struct Division {
    days: BTreeMap<NaiveDate, String>,
    first_year: i32,
    last_year: i32,
    /// Built on first use, once the closure days are known.
    table: std::sync::OnceLock<WorkingDays>,
}

/// Every covered day of a division: whether it is a working day, and how many
/// working days there are up to and including it. Counting working days then
/// costs a few lookups rather than a walk day by day or chrono's arithmetic
/// (these tables are read millions of times a tick).
#[derive(Debug)]
struct WorkingDays {
    /// The first day's number (`num_days_from_ce`): a date's index is its number less this.
    first: i32,
    /// The date of each index.
    dates: Vec<NaiveDate>,
    working: Vec<bool>,
    /// `through[i]`: working days among days `0..=i`.
    through: Vec<u32>,
    /// `nth[k]`: the index of the working day whose running count is `k + 1`.
    nth: Vec<u32>,
}

impl WorkingDays {
    fn build(division: &Division, closures: &BTreeMap<NaiveDate, String>) -> Self {
        let first = NaiveDate::from_ymd_opt(division.first_year, 1, 1).unwrap_or(NaiveDate::MIN);
        let last = NaiveDate::from_ymd_opt(division.last_year, 12, 31).unwrap_or(NaiveDate::MIN);
        let dates: Vec<NaiveDate> = first.iter_days().take_while(|d| *d <= last).collect();
        let mut working = Vec::with_capacity(dates.len());
        let mut through = Vec::with_capacity(dates.len());
        let mut nth = Vec::new();
        let mut count = 0u32;
        for (i, d) in dates.iter().enumerate() {
            let w = !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
                && !division.days.contains_key(d)
                && !closures.contains_key(d);
            if w {
                count += 1;
                nth.push(u32::try_from(i).unwrap_or(u32::MAX));
            }
            working.push(w);
            through.push(count);
        }
        WorkingDays {
            first: first.num_days_from_ce(),
            dates,
            working,
            through,
            nth,
        }
    }

    fn index(&self, d: NaiveDate) -> Option<usize> {
        self.at_day(d.num_days_from_ce())
    }

    /// The index of the day numbered `day` (`num_days_from_ce`).
    fn at_day(&self, day: i32) -> Option<usize> {
        usize::try_from(day - self.first)
            .ok()
            .filter(|i| *i < self.working.len())
    }

    /// The number of the day at index `i`.
    fn day(&self, i: usize) -> Option<i32> {
        self.first.checked_add(i32::try_from(i).ok()?)
    }

    /// `n` working days from `date`, as `Calendar::add_working_days`; `None`
    /// when the answer is not inside the table.
    fn add(&self, date: NaiveDate, n: i64) -> Option<NaiveDate> {
        self.dates
            .get(self.add_index(self.index(date)?, n)?)
            .copied()
    }

    /// The same from and to indexes of the table.
    fn add_index(&self, i: usize, n: i64) -> Option<usize> {
        let here = i64::from(*self.through.get(i)?);
        let working = *self.working.get(i)?;
        if n == 0 && working {
            return Some(i);
        }
        let count = if n >= 0 {
            here + n.max(1)
        } else {
            here - i64::from(working) + n + 1
        };
        let k = usize::try_from(count.checked_sub(1)?).ok()?;
        Some(*self.nth.get(k)? as usize)
    }

    /// Working days in `(from, to]`, when both are inside the table.
    fn between(&self, from: NaiveDate, to: NaiveDate) -> Option<i64> {
        let (a, b) = (self.index(from)?, self.index(to)?);
        Some(i64::from(*self.through.get(b)?) - i64::from(*self.through.get(a)?))
    }
}

/// A time zone day by day: the offset of each UTC day on which it does not
/// change, and each local day's first and last instant. Turning an instant
/// into a local date then costs an index, not a search of the zone's history.
#[derive(Debug)]
struct ZoneDays {
    /// The first day's number (`num_days_from_ce`).
    first: i32,
    /// The date of each index.
    dates: Vec<NaiveDate>,
    /// The offset from UTC (seconds) throughout the UTC day, `None` on a day it changes.
    steady: Vec<Option<i32>>,
    /// 00:00 and 23:59:59 local time of the local day, as `local_instant` gives them.
    bounds: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

impl ZoneDays {
    fn build(tz: Tz, first: NaiveDate, last: NaiveDate) -> Self {
        use chrono::Offset as _;
        let offset_at = |d: NaiveDate| {
            tz.offset_from_utc_datetime(&d.and_time(NaiveTime::MIN))
                .fix()
                .local_minus_utc()
        };
        let dates: Vec<NaiveDate> = first.iter_days().take_while(|d| *d <= last).collect();
        // A zone changes offset at most once a day, so equal offsets at both midnights mean none that day.
        let steady = dates
            .iter()
            .map(|d| {
                let here = offset_at(*d);
                d.succ_opt()
                    .filter(|next| offset_at(*next) == here)
                    .map(|_| here)
            })
            .collect();
        let bounds = dates
            .iter()
            .map(|d| {
                (
                    local_instant(tz, *d, NaiveTime::MIN),
                    local_instant(tz, *d, end_of_day_time()),
                )
            })
            .collect();
        ZoneDays {
            first: first.num_days_from_ce(),
            dates,
            steady,
            bounds,
        }
    }

    fn index(&self, d: NaiveDate) -> Option<usize> {
        self.at_day(d.num_days_from_ce())
    }

    /// The index of the day numbered `day` (`num_days_from_ce`).
    fn at_day(&self, day: i32) -> Option<usize> {
        usize::try_from(day - self.first).ok()
    }

    /// The number of the day at index `i`.
    fn day(&self, i: usize) -> Option<i32> {
        self.first.checked_add(i32::try_from(i).ok()?)
    }

    /// A local time on the day at index `i` when the clocks do not change
    /// that day (it lasts 24 hours): the day's start plus the time of day.
    fn time_on(&self, i: usize, time: NaiveTime) -> Option<DateTime<Utc>> {
        let (start, end) = *self.bounds.get(i)?;
        (end - start == Duration::seconds(86_399)).then(|| start + (time - NaiveTime::MIN))
    }

    fn local_date(&self, t: DateTime<Utc>) -> Option<NaiveDate> {
        self.dates.get(self.local_day(t)?).copied()
    }

    /// The index of the instant's local date.
    fn local_day(&self, t: DateTime<Utc>) -> Option<usize> {
        // The instant's UTC date and time as stored (`date_naive` would add a zero offset).
        let utc = t.naive_utc();
        let utc_day = self.index(utc.date())?;
        let offset = (*self.steady.get(utc_day)?)?;
        // An offset is less than a day, so the local date is the UTC date or a day either side.
        let secs = i64::from(utc.num_seconds_from_midnight()) + i64::from(offset);
        if secs < 0 {
            utc_day.checked_sub(1)
        } else if secs >= 86_400 {
            Some(utc_day + 1)
        } else {
            Some(utc_day)
        }
    }

    fn bounds(&self, d: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        self.bounds.get(self.index(d)?).copied()
    }
}

impl HolidayData {
    /// The built-in data, or a newer file of the same format.
    pub fn load(path: Option<&Path>) -> Result<Self, CalendarError> {
        match path {
            None => Self::parse(EMBEDDED_BANK_HOLIDAYS, EMBEDDED_NAME),
            Some(p) => {
                let file = p.display().to_string();
                let text = std::fs::read_to_string(p).map_err(|source| CalendarError::Read {
                    file: file.clone(),
                    source,
                })?;
                Self::parse(&text, &file)
            }
        }
    }

    pub fn parse(text: &str, file: &str) -> Result<Self, CalendarError> {
        let raw: HashMap<String, GovUkDivision> =
            serde_json::from_str(text).map_err(|source| CalendarError::Parse {
                file: file.to_string(),
                source,
            })?;
        let divisions = raw
            .into_iter()
            .map(|(name, d)| {
                let days: BTreeMap<NaiveDate, String> =
                    d.events.into_iter().map(|e| (e.date, e.title)).collect();
                let first_year = days.keys().next().map_or(0, |d| d.year());
                let last_year = days.keys().next_back().map_or(-1, |d| d.year());
                (
                    name,
                    Arc::new(Division {
                        days,
                        first_year,
                        last_year,
                        table: std::sync::OnceLock::new(),
                    }),
                )
            })
            .collect();
        Ok(HolidayData {
            file: file.to_string(),
            divisions,
            closures: BTreeMap::new(),
            zones: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Adds closure days (e.g. a council's Christmas closure) that count as
    /// non-working days in every division.
    pub fn add_closures(&mut self, days: impl IntoIterator<Item = (NaiveDate, String)>) {
        self.closures.extend(days);
        // Each division's table is built again, with the closures, when next used.
        for d in self.divisions.values_mut() {
            *d = Arc::new(Division {
                days: d.days.clone(),
                first_year: d.first_year,
                last_year: d.last_year,
                table: std::sync::OnceLock::new(),
            });
        }
    }

    /// Reads closure days from a file: one `YYYY-MM-DD [description]` a line, `#` comments.
    pub fn load_closures(&mut self, path: &Path) -> Result<(), CalendarError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CalendarError::Read {
            file: file.clone(),
            source,
        })?;
        let mut days = Vec::new();
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (date, label) = line
                .split_once(char::is_whitespace)
                .unwrap_or((line, "closure day"));
            let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| {
                CalendarError::BadClosure {
                    file: file.clone(),
                    line: line.to_string(),
                }
            })?;
            days.push((date, label.trim().to_string()));
        }
        self.add_closures(days);
        Ok(())
    }

    /// The zone's days over every covered year, with a year's margin either side.
    fn zone(&self, tz: Tz) -> Option<Arc<ZoneDays>> {
        // A poisoned lock only means another thread panicked mid-build: calendars then go without.
        let mut zones = self.zones.lock().ok()?;
        if let Some((_, z)) = zones.iter().find(|(t, _)| *t == tz) {
            return Some(z.clone());
        }
        let first = self.divisions.values().map(|d| d.first_year).min()?;
        let last = self.divisions.values().map(|d| d.last_year).max()?;
        let z = Arc::new(ZoneDays::build(
            tz,
            NaiveDate::from_ymd_opt(first - 1, 1, 1)?,
            NaiveDate::from_ymd_opt(last + 1, 12, 31)?,
        ));
        zones.push((tz, z.clone()));
        Some(z)
    }

    fn has_division(&self, division: &str) -> bool {
        self.divisions.contains_key(division)
    }

    pub fn check_division(&self, division: &str) -> Result<(), CalendarError> {
        if self.has_division(division) {
            return Ok(());
        }
        let mut available: Vec<&str> = self.divisions.keys().map(String::as_str).collect();
        available.sort_unstable();
        Err(CalendarError::NoDivision {
            file: self.file.clone(),
            division: division.to_string(),
            available: available.join(", "),
        })
    }
}

/// One board's calendar: a division of the holiday data and a time zone.
#[derive(Debug, Clone)]
pub struct Calendar {
    data: Arc<HolidayData>,
    division: String,
    /// The division's days, found once rather than by name at every count.
    days: Option<Arc<Division>>,
    pub tz: Tz,
    zone: Option<Arc<ZoneDays>>,
}

/// How many units an offset moves, and which way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    WorkingDays,
    Hours,
    Days,
    Weeks,
    Months,
}

impl Unit {
    /// A century in this unit: longer than any procedure's timescale, and
    /// short enough that no date arithmetic can overflow.
    fn longest(self) -> i64 {
        match self {
            Unit::WorkingDays => 100 * 261,
            Unit::Hours => 100 * 366 * 24,
            Unit::Days => 100 * 366,
            Unit::Weeks => 100 * 53,
            Unit::Months => 100 * 12,
        }
    }
}

/// The amount of an offset: a number, or a case field (a plan's visiting interval).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Amount {
    Fixed(i64),
    /// `sign` × the value of the named case field, read at evaluation.
    Field {
        name: String,
        negative: bool,
    },
}

/// An offset phrase of the rules catalogue, e.g. `+15 working days`,
/// `-2 working days at 10:00`, `+24 hours`, `-1 day`, `+3 months`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Offset {
    pub amount: Amount,
    pub unit: Unit,
    pub at: Option<NaiveTime>,
}

/// Case fields an offset may take its amount from.
pub const OFFSET_FIELDS: &[&str] = &["plan.visit_interval_working_days"];

impl FromStr for Offset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let (negative, rest) = match text.chars().next() {
            Some('+') => (false, &text[1..]),
            Some('-') => (true, &text[1..]),
            Some('\u{2212}') => (true, &text['\u{2212}'.len_utf8()..]),
            _ => {
                return Err(format!(
                    "offset {s:?} must start with + or - (e.g. \"+15 working days\")"
                ))
            }
        };
        let (main, at) = match rest.split_once(" at ") {
            Some((m, t)) => {
                let time = NaiveTime::parse_from_str(t.trim(), "%H:%M")
                    .map_err(|_| format!("offset {s:?}: time {:?} is not HH:MM", t.trim()))?;
                (m, Some(time))
            }
            None => (rest, None),
        };
        let mut words = main.split_whitespace();
        let number = words
            .next()
            .ok_or_else(|| format!("offset {s:?} has no amount"))?;
        let unit_words: Vec<&str> = words.collect();
        let unit = match unit_words.join(" ").as_str() {
            "working day" | "working days" => Unit::WorkingDays,
            "hour" | "hours" => Unit::Hours,
            "day" | "days" => Unit::Days,
            "week" | "weeks" => Unit::Weeks,
            "month" | "months" => Unit::Months,
            other => {
                return Err(format!(
                    "offset {s:?}: unknown unit {other:?} (expected working days, hours, days, weeks or months)"
                ))
            }
        };
        let amount = match number.parse::<i64>() {
            Ok(n) if n > unit.longest() => {
                return Err(format!(
                    "offset {s:?}: {n} is more than a century of {}; no procedure sets a timescale that long",
                    unit_words.join(" ")
                ))
            }
            Ok(n) if n >= 0 => Amount::Fixed(if negative { -n } else { n }),
            Ok(_) => return Err(format!("offset {s:?}: put the sign before the number")),
            Err(_) if OFFSET_FIELDS.contains(&number) => Amount::Field {
                name: number.to_string(),
                negative,
            },
            Err(_) => {
                return Err(format!(
                    "offset {s:?}: {number:?} is neither a number nor a case field ({})",
                    OFFSET_FIELDS.join(", ")
                ))
            }
        };
        if at.is_some() && !matches!(unit, Unit::WorkingDays | Unit::Days) {
            return Err(format!(
                "offset {s:?}: \"at HH:MM\" goes only with working days or days"
            ));
        }
        Ok(Offset { amount, unit, at })
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (sign, amount) = match &self.amount {
            Amount::Fixed(n) => (if *n < 0 { "-" } else { "+" }, n.abs().to_string()),
            Amount::Field { name, negative } => (if *negative { "-" } else { "+" }, name.clone()),
        };
        let one = amount == "1";
        let unit = match (self.unit, one) {
            (Unit::WorkingDays, false) => "working days",
            (Unit::WorkingDays, true) => "working day",
            (Unit::Hours, false) => "hours",
            (Unit::Hours, true) => "hour",
            (Unit::Days, false) => "days",
            (Unit::Days, true) => "day",
            (Unit::Weeks, false) => "weeks",
            (Unit::Weeks, true) => "week",
            (Unit::Months, false) => "months",
            (Unit::Months, true) => "month",
        };
        write!(f, "{sign}{amount} {unit}")?;
        if let Some(at) = self.at {
            write!(f, " at {}", at.format("%H:%M"))?;
        }
        Ok(())
    }
}

/// A resolved offset as an obligation keeps it: eight bytes that copy
/// freely, so an obligation needs no shared text for it, and that show as
/// the offset does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShownOffset {
    amount: i32,
    unit: Unit,
    /// Hours and minutes.
    at: Option<(u8, u8)>,
}

impl ShownOffset {
    /// The offset again.
    pub fn offset(&self) -> Offset {
        Offset {
            amount: Amount::Fixed(self.amount.into()),
            unit: self.unit,
            at: self
                .at
                .and_then(|(h, m)| NaiveTime::from_hms_opt(h.into(), m.into(), 0)),
        }
    }
}

impl fmt::Display for ShownOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.offset().fmt(f)
    }
}

impl serde::Serialize for ShownOffset {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The values an offset's case field may take: a plan's visiting interval
/// is at least one working day and at most a year of them.
pub const FIELD_RANGE: std::ops::RangeInclusive<i64> = 1..=261;

impl Offset {
    /// The offset with a field amount replaced by its value: none for a
    /// value that is no interval (zero, negative, or more than a year of
    /// working days, `FIELD_RANGE`), which evaluation reports as a finding.
    pub fn resolve(&self, field_value: Option<i64>) -> Option<Offset> {
        match &self.amount {
            Amount::Fixed(_) => Some(self.clone()),
            Amount::Field { negative, .. } => {
                field_value
                    .filter(|v| FIELD_RANGE.contains(v))
                    .map(|v| Offset {
                        amount: Amount::Fixed(if *negative { -v } else { v }),
                        unit: self.unit,
                        at: self.at,
                    })
            }
        }
    }

    /// The resolved offset as an obligation keeps it. None for a field's
    /// amount, or one beyond an `i32` (millions of years of days, far outside
    /// any calendar).
    pub fn shown(&self) -> Option<ShownOffset> {
        let Amount::Fixed(n) = self.amount else {
            return None;
        };
        Some(ShownOffset {
            amount: i32::try_from(n).ok()?,
            unit: self.unit,
            // An hour and a minute always fit in a byte.
            at: self.at.map(|t| {
                (
                    u8::try_from(t.hour()).unwrap_or(u8::MAX),
                    u8::try_from(t.minute()).unwrap_or(u8::MAX),
                )
            }),
        })
    }

    fn fixed(&self) -> i64 {
        match self.amount {
            Amount::Fixed(n) => n,
            Amount::Field { .. } => 0,
        }
    }
}

/// How a deadline was derived, for `explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derivation {
    pub from_date: NaiveDate,
    pub to_date: NaiveDate,
    /// Bank holidays and closure days passed over while counting working days.
    pub skipped_holidays: Vec<(NaiveDate, String)>,
    pub skipped_weekend_days: usize,
}

fn end_of_day_time() -> NaiveTime {
    NaiveTime::from_hms_opt(23, 59, 59).unwrap_or(NaiveTime::MIN)
}

/// A local wall-clock time in `tz` as an instant: the earlier of an ambiguous
/// time, and for a time skipped by the spring change, the same time an hour later.
pub fn local_instant(tz: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let naive = NaiveDateTime::new(date, time);
    match tz.from_local_datetime(&naive).earliest() {
        Some(t) => t.with_timezone(&Utc),
        None => {
            let later = naive + Duration::hours(1);
            tz.from_local_datetime(&later)
                .earliest()
                .map_or_else(|| Utc.from_utc_datetime(&naive), |t| t.with_timezone(&Utc))
        }
    }
}

impl Calendar {
    pub fn new(data: Arc<HolidayData>, division: &str, tz: Tz) -> Result<Self, CalendarError> {
        data.check_division(division)?;
        Ok(Calendar {
            zone: data.zone(tz),
            days: data.divisions.get(division).cloned(),
            data,
            division: division.to_string(),
            tz,
        })
    }

    fn division(&self) -> Option<&Division> {
        self.days.as_deref()
    }

    fn table(&self) -> Option<&WorkingDays> {
        let d = self.division()?;
        Some(
            d.table
                .get_or_init(|| WorkingDays::build(d, &self.data.closures)),
        )
    }

    fn covered(&self, date: NaiveDate) -> Result<(), CalendarError> {
        let (first, last) = self
            .division()
            .map_or((0, -1), |d| (d.first_year, d.last_year));
        if date.year() < first || date.year() > last {
            return Err(CalendarError::YearNotCovered {
                division: self.division.clone(),
                file: self.data.file.clone(),
                year: date.year(),
                first,
                last,
            });
        }
        Ok(())
    }

    /// The bank holiday or closure on this date, if any.
    pub fn holiday(&self, date: NaiveDate) -> Option<&str> {
        self.division()
            .and_then(|d| d.days.get(&date))
            .or_else(|| self.data.closures.get(&date))
            .map(String::as_str)
    }

    pub fn is_working_day(&self, date: NaiveDate) -> Result<bool, CalendarError> {
        if let Some(w) = self
            .table()
            .and_then(|t| t.working.get(t.index(date)?).copied())
        {
            return Ok(w);
        }
        self.covered(date)?;
        Ok(!matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && self.holiday(date).is_none())
    }

    /// Moves `n` working days from `date` (day 0); `n = 0` gives `date` itself
    /// when it is a working day, otherwise the next working day.
    pub fn add_working_days(&self, date: NaiveDate, n: i64) -> Result<NaiveDate, CalendarError> {
        if let Some(d) = self.table().and_then(|t| t.add(date, n)) {
            return Ok(d);
        }
        // At the edge of the covered years: walk, so the error names the first uncovered year.
        let step = if n < 0 { -1 } else { 1 };
        let mut d = date;
        if n == 0 {
            while !self.is_working_day(d)? {
                d += Duration::days(1);
            }
            return Ok(d);
        }
        let mut left = n.abs();
        while left > 0 {
            d += Duration::days(step);
            if self.is_working_day(d)? {
                left -= 1;
            }
        }
        Ok(d)
    }

    pub fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        self.zone
            .as_ref()
            .and_then(|z| z.local_date(t))
            .unwrap_or_else(|| t.with_timezone(&self.tz).date_naive())
    }

    pub fn local(&self, t: DateTime<Utc>) -> DateTime<Tz> {
        t.with_timezone(&self.tz)
    }

    /// A local wall-clock time as an instant (see [`local_instant`]).
    pub fn at_local(&self, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
        // The zone's table when the clocks do not change that day: no search of the zone's history.
        self.zone
            .as_ref()
            .and_then(|z| z.time_on(z.index(date)?, time))
            .unwrap_or_else(|| local_instant(self.tz, date, time))
    }

    /// 23:59:59 local time on `date`.
    pub fn end_of_day(&self, date: NaiveDate) -> DateTime<Utc> {
        match self.zone.as_ref().and_then(|z| z.bounds(date)) {
            Some((_, end)) => end,
            None => self.at_local(date, end_of_day_time()),
        }
    }

    /// 00:00 local time on `date`: the instant a date-only event stands for.
    pub fn start_of_day(&self, date: NaiveDate) -> DateTime<Utc> {
        match self.zone.as_ref().and_then(|z| z.bounds(date)) {
            Some((start, _)) => start,
            None => self.at_local(date, NaiveTime::MIN),
        }
    }

    /// The date an offset reaches from `date` (day 0), for day-based units.
    /// Only working days need the holiday list, so only they need the year covered.
    pub fn shift_date(&self, date: NaiveDate, offset: &Offset) -> Result<NaiveDate, CalendarError> {
        let n = offset.fixed();
        let result = match offset.unit {
            Unit::WorkingDays => self.add_working_days(date, n)?,
            Unit::Days => shift_days(date, n, offset)?,
            Unit::Weeks => shift_days(date, n.saturating_mul(7), offset)?,
            Unit::Months => add_months(date, n),
            Unit::Hours => shift_days(date, n.div_euclid(24), offset)?,
        };
        Ok(result)
    }

    /// The deadline an offset sets from the instant `start` (§1 of the catalogue).
    pub fn deadline(
        &self,
        start: DateTime<Utc>,
        offset: &Offset,
    ) -> Result<DateTime<Utc>, CalendarError> {
        if offset.unit == Unit::Hours {
            return Duration::try_hours(offset.fixed())
                .and_then(|d| start.checked_add_signed(d))
                .ok_or_else(|| CalendarError::OutOfRange {
                    date: start.to_rfc3339(),
                    offset: offset.to_string(),
                });
        }
        if offset.unit == Unit::WorkingDays {
            if let Some(due) = self.working_deadline(start, offset) {
                return Ok(due);
            }
        }
        let date = self.shift_date(self.local_date(start), offset)?;
        Ok(match offset.at {
            Some(time) => self.at_local(date, time),
            None => self.end_of_day(date),
        })
    }

    /// A working-day deadline by day numbers throughout, the commonest
    /// deadline and the one evaluation works out most: the start's local day
    /// in the zone's table, so many working days on in the division's, and
    /// that day's end (or time) from the zone's, with no date arithmetic.
    /// `None` where a table does not reach (then `deadline` works it out
    /// date by date, and names a year not covered).
    fn working_deadline(&self, start: DateTime<Utc>, offset: &Offset) -> Option<DateTime<Utc>> {
        let zone = self.zone.as_ref()?;
        let table = self.table()?;
        let from = table.at_day(zone.day(zone.local_day(start)?)?)?;
        let due = table.add_index(from, offset.fixed())?;
        let on = zone.at_day(table.day(due)?)?;
        Some(match offset.at {
            None => zone.bounds.get(on)?.1,
            Some(time) => match zone.time_on(on, time) {
                Some(t) => t,
                // A day the clocks change: as `at_local` gives it.
                None => self.at_local(*table.dates.get(due)?, time),
            },
        })
    }

    /// Working days after the local date of `from` up to and including that
    /// of `to`, by day numbers as `working_deadline` counts; `None` where a
    /// table does not reach.
    fn working_days_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<i64> {
        let zone = self.zone.as_ref()?;
        let table = self.table()?;
        let through = |t: DateTime<Utc>| {
            let day = table.at_day(zone.day(zone.local_day(t)?)?)?;
            table.through.get(day).copied()
        };
        Some(i64::from(through(to)?) - i64::from(through(from)?))
    }

    /// The non-working days strictly between two dates, for `explain`.
    pub fn derivation(&self, from: NaiveDate, to: NaiveDate) -> Derivation {
        let (lo, hi) = if from <= to { (from, to) } else { (to, from) };
        let mut skipped_holidays = Vec::new();
        let mut skipped_weekend_days = 0;
        let mut d = lo + Duration::days(1);
        while d < hi {
            if matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
                skipped_weekend_days += 1;
            } else if let Some(name) = self.holiday(d) {
                skipped_holidays.push((d, name.to_string()));
            }
            d += Duration::days(1);
        }
        Derivation {
            from_date: from,
            to_date: to,
            skipped_holidays,
            skipped_weekend_days,
        }
    }

    /// Working days late: the working days after the deadline's date up to and
    /// including the date of `at`, and at least 1 for anything after the deadline.
    pub fn working_days_late(
        &self,
        deadline: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<i64, CalendarError> {
        if at <= deadline {
            return Ok(0);
        }
        if let Some(n) = self.working_days_between(deadline, at) {
            return Ok(n.max(1));
        }
        let (due, until) = (self.local_date(deadline), self.local_date(at));
        if let Some(n) = self.table().and_then(|t| t.between(due, until)) {
            return Ok(n.max(1));
        }
        let mut count = 0;
        let mut d = due;
        while d < until {
            d += Duration::days(1);
            if self.is_working_day(d)? {
                count += 1;
            }
        }
        Ok(count.max(1))
    }
}

/// `date` moved `days` on, where dates go (a case date near the end of what a
/// date can hold, with a long offset, goes beyond it).
fn shift_days(date: NaiveDate, days: i64, offset: &Offset) -> Result<NaiveDate, CalendarError> {
    Duration::try_days(days)
        .and_then(|d| date.checked_add_signed(d))
        .ok_or_else(|| CalendarError::OutOfRange {
            date: date.to_string(),
            offset: offset.to_string(),
        })
}

/// Same day-of-month `n` months on, clamped to the month's last day.
pub fn add_months(date: NaiveDate, n: i64) -> NaiveDate {
    let months = Months::new(u32::try_from(n.unsigned_abs()).unwrap_or(u32::MAX));
    let shifted = if n >= 0 {
        date.checked_add_months(months)
    } else {
        date.checked_sub_months(months)
    };
    shifted.unwrap_or(date)
}
