//! Rotation schedules as Secrets Manager defines them (UTC):
//! `AutomaticallyAfterDays`, `rate(N days|hours)`, and
//! `cron(Minutes Hours Day-of-month Month Day-of-week Year)`, each with an
//! optional window `Duration` (`"3h"`).
//!
//! Written by hand: the cron crates read Unix or Quartz syntax, and none
//! reads AWS's six fields with its rules (minutes 0, year `*`, exactly one
//! of day-of-month and day-of-week `?`, `L`, `W`, `#`, names, windows).
//!
//! A schedule yields windows; a rotation starts when its window opens and
//! is due "on or before" the window's end, which DescribeSecret reports as
//! NextRotationDate.

use jiff::civil::{Date, Weekday};
use jiff::{Timestamp, ToSpan, tz::TimeZone};

const HOUR_S: i64 = 3600;
const DAY_S: i64 = 86_400;
/// How far ahead a cron schedule is searched: long enough for `29 FEB`
/// (every 4 years) with room to spare, short enough to stay cheap.
const SEARCH_DAYS: i32 = 366 * 9;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    every: Every,
    /// The window's length in hours, if given.
    duration_h: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Every {
    Days(u32),
    Hours(u32),
    Cron(Box<Cron>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Cron {
    hours: u32,
    months: u16,
    day: DaySpec,
}

/// Which days of a month match: exactly one of the two fields is `?`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum DaySpec {
    /// Day-of-month items, day-of-week `?`.
    OfMonth(Vec<DomItem>),
    /// Day-of-week items, day-of-month `?`.
    OfWeek(Vec<DowItem>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum DomItem {
    /// Days 1..=31 as a bit set (bit d).
    Days(u32),
    /// `L`: the last day of the month.
    Last,
    /// `LW`: the last weekday of the month.
    LastWeekday,
    /// `15W`: the weekday nearest the 15th, within the month.
    NearestWeekday(u8),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum DowItem {
    /// Weekdays as a bit set, bit 0 = Sunday (AWS's 1).
    Days(u8),
    /// `FRI#2`: the 2nd Friday of the month.
    Nth(Weekday, u8),
    /// `FRIL` / `6L`: the last Friday of the month.
    Last(Weekday),
}

/// A rotation window: it opens at `start`, the rotation is due by `end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Schedule {
    /// The schedule of RotationRules; the error says what is wrong, for
    /// an InvalidParameterException.
    pub fn parse(
        automatically_after_days: Option<i64>,
        expression: Option<&str>,
        duration: Option<&str>,
    ) -> Result<Schedule, String> {
        let every = match (automatically_after_days, expression) {
            (Some(_), Some(_)) => {
                return Err("You can't specify both AutomaticallyAfterDays and ScheduleExpression.".into());
            }
            (Some(d), None) => {
                if !(1..=1000).contains(&d) {
                    return Err("RotationRules.AutomaticallyAfterDays must be within 1-1000.".into());
                }
                Every::Days(d as u32)
            }
            (None, Some(e)) => {
                parse_expression(e.trim()).map_err(|why| format!("Invalid ScheduleExpression {e}: {why}"))?
            }
            (None, None) => {
                return Err("RotationRules needs AutomaticallyAfterDays or ScheduleExpression.".into());
            }
        };
        let duration_h = match duration {
            None => None,
            Some(d) => Some(parse_duration(d).ok_or_else(|| {
                format!("Invalid Duration {d}: give the window in whole hours, from 1h to 24h, such as 3h.")
            })?),
        };
        let schedule = Schedule { every, duration_h };
        schedule.check_window()?;
        Ok(schedule)
    }

    /// Windows must not run into the next UTC day (daily schedules) or the
    /// next window (hourly ones).
    fn check_window(&self) -> Result<(), String> {
        let Some(d) = self.duration_h else {
            return Ok(());
        };
        match &self.every {
            Every::Hours(n) if d > *n => Err(format!(
                "The Duration {d}h is longer than the {n} hours between rotation windows."
            )),
            Every::Cron(c) => {
                let hours: Vec<u32> = (0..24).filter(|h| c.hours & (1 << h) != 0).collect();
                let last = *hours.last().unwrap_or(&0);
                if last + d > 24 {
                    return Err(format!(
                        "The Duration {d}h runs past the end of the UTC day after {last}:00."
                    ));
                }
                if let Some(gap) = hours.windows(2).map(|w| w[1] - w[0]).min()
                    && d > gap
                {
                    return Err(format!(
                        "The Duration {d}h is longer than the {gap} hours between rotation windows."
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The first window that opens after `after`.
    pub fn next_window(&self, after: Timestamp) -> Option<Window> {
        let after_s = after.as_second();
        let start_s = match &self.every {
            // Day windows start at midnight UTC.
            Every::Days(n) => after_s.div_euclid(DAY_S) * DAY_S + i64::from(*n) * DAY_S,
            Every::Hours(n) => after_s.div_euclid(HOUR_S) * HOUR_S + i64::from(*n) * HOUR_S,
            Every::Cron(c) => c.next_start(after)?.as_second(),
        };
        let length_s = match (&self.every, self.duration_h) {
            (_, Some(h)) => i64::from(h) * HOUR_S,
            (Every::Days(_), None) => DAY_S,
            (Every::Hours(_), None) => HOUR_S,
            // A cron schedule with one hour a day is daily: its window
            // closes at the end of the UTC day; several hours: hourly.
            (Every::Cron(c), None) if c.hours.count_ones() == 1 => DAY_S - start_s.rem_euclid(DAY_S),
            (Every::Cron(_), None) => HOUR_S,
        };
        Some(Window {
            start: Timestamp::from_second(start_s).ok()?,
            end: Timestamp::from_second(start_s + length_s - 1).ok()?,
        })
    }

    /// The period in days, as DescribeSecret reports AutomaticallyAfterDays
    /// for schedules that have one.
    pub fn days(&self) -> Option<i64> {
        match &self.every {
            Every::Days(n) => Some(i64::from(*n)),
            _ => None,
        }
    }
}

fn parse_duration(d: &str) -> Option<u32> {
    let n = d.strip_suffix('h')?;
    if n.is_empty() || n.len() > 2 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: u32 = n.parse().ok()?;
    (1..=24).contains(&h).then_some(h)
}

fn parse_expression(e: &str) -> Result<Every, String> {
    if let Some(body) = e.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
        let mut parts = body.split_whitespace();
        let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err("a rate is rate(N days) or rate(N hours)".into());
        };
        let n: u32 = n.parse().map_err(|_| format!("{n} is not a whole number"))?;
        return match unit {
            "day" | "days" if (1..=1000).contains(&n) => Ok(Every::Days(n)),
            "day" | "days" => Err("a rate in days is from 1 to 1000 days".into()),
            // Secrets Manager rotates at most every four hours.
            "hour" | "hours" if (4..=1000 * 24).contains(&n) => Ok(Every::Hours(n)),
            "hour" | "hours" => Err("a rate in hours is at least 4 hours".into()),
            other => Err(format!("the unit {other} is not days or hours")),
        };
    }
    if let Some(body) = e.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
        return parse_cron(body).map(|c| Every::Cron(Box::new(c)));
    }
    Err("a schedule is rate(...) or cron(...)".into())
}

fn parse_cron(body: &str) -> Result<Cron, String> {
    let fields: Vec<&str> = body.split_whitespace().collect();
    let [minutes, hours, dom, month, dow, year] = fields[..] else {
        return Err(format!(
            "cron takes six fields (Minutes Hours Day-of-month Month Day-of-week Year), not {}",
            fields.len()
        ));
    };
    if minutes != "0" {
        return Err("Minutes must be 0: rotation windows start on the hour".into());
    }
    if year != "*" {
        return Err("Year must be *".into());
    }
    let hours = parse_set(hours, 0, 23, &[]).map_err(|e| format!("Hours: {e}"))? as u32;
    let months = parse_set(month, 1, 12, &MONTHS).map_err(|e| format!("Month: {e}"))? as u16;
    let day = match (dom, dow) {
        _ if (dom == "?") == (dow == "?") => {
            return Err("exactly one of Day-of-month and Day-of-week must be ?".into());
        }
        ("?", dow) => DaySpec::OfWeek(
            dow.split(',')
                .map(parse_dow_item)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("Day-of-week: {e}"))?,
        ),
        (dom, _) => DaySpec::OfMonth(
            dom.split(',')
                .map(parse_dom_item)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("Day-of-month: {e}"))?,
        ),
    };
    Ok(Cron { hours, months, day })
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A number in `lo..=hi`, or a name (`names[0]` is `lo`).
fn value(s: &str, lo: u32, hi: u32, names: &[&str]) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(lo + i as u32);
    }
    match s.parse::<u32>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(format!("{s} is not a value from {lo} to {hi}")),
    }
}

/// `*`, `N`, `A-B`, `A/S`, `*/S`, `A-B/S`, and lists of them, as a bit set.
fn parse_set(field: &str, lo: u32, hi: u32, names: &[&str]) -> Result<u64, String> {
    let mut set = 0u64;
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s >= 1)
                    .ok_or(format!("bad step in {item}"))?,
            ),
            None => (item, 1),
        };
        let (from, to) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a, lo, hi, names)?, value(b, lo, hi, names)?),
                // `A/S` runs from A to the end of the range.
                None if item.contains('/') => (value(r, lo, hi, names)?, hi),
                None => {
                    let v = value(r, lo, hi, names)?;
                    (v, v)
                }
            },
        };
        if from > to {
            return Err(format!("{item} runs backwards"));
        }
        for v in (from..=to).step_by(step as usize) {
            set |= 1 << v;
        }
    }
    Ok(set)
}

fn parse_dom_item(item: &str) -> Result<DomItem, String> {
    match item {
        "L" => Ok(DomItem::Last),
        "LW" => Ok(DomItem::LastWeekday),
        _ => {
            if let Some(day) = item.strip_suffix('W') {
                return Ok(DomItem::NearestWeekday(value(day, 1, 31, &[])? as u8));
            }
            Ok(DomItem::Days(parse_set(item, 1, 31, &[])? as u32))
        }
    }
}

fn weekday(v: u32) -> Weekday {
    match v {
        1 => Weekday::Sunday,
        2 => Weekday::Monday,
        3 => Weekday::Tuesday,
        4 => Weekday::Wednesday,
        5 => Weekday::Thursday,
        6 => Weekday::Friday,
        _ => Weekday::Saturday,
    }
}

fn parse_dow_item(item: &str) -> Result<DowItem, String> {
    if let Some((day, n)) = item.split_once('#') {
        let n: u8 = n
            .parse()
            .ok()
            .filter(|n| (1..=5).contains(n))
            .ok_or(format!("{item}: # takes 1 to 5"))?;
        return Ok(DowItem::Nth(weekday(value(day, 1, 7, &WEEKDAYS)?), n));
    }
    if item == "L" {
        return Ok(DowItem::Last(Weekday::Saturday));
    }
    if let Some(day) = item.strip_suffix('L') {
        return Ok(DowItem::Last(weekday(value(day, 1, 7, &WEEKDAYS)?)));
    }
    let set = parse_set(item, 1, 7, &WEEKDAYS)?;
    // Bit v (1 = SUN) to bit v-1 (0 = Sunday).
    Ok(DowItem::Days((set >> 1) as u8))
}

impl Cron {
    fn next_start(&self, after: Timestamp) -> Option<Timestamp> {
        let utc = TimeZone::UTC;
        let first = after.to_zoned(utc.clone()).date();
        let mut day = first;
        for _ in 0..SEARCH_DAYS {
            if self.months & (1 << day.month()) != 0 && self.day_matches(day) {
                for hour in (0..24).filter(|h| self.hours & (1 << h) != 0) {
                    let start = day.at(hour as i8, 0, 0, 0).to_zoned(utc.clone()).ok()?.timestamp();
                    if start > after {
                        return Some(start);
                    }
                }
            }
            day = day.checked_add(1.day()).ok()?;
        }
        None
    }

    fn day_matches(&self, day: Date) -> bool {
        let last = day.last_of_month();
        match &self.day {
            DaySpec::OfMonth(items) => items.iter().any(|i| match i {
                DomItem::Days(set) => set & (1 << day.day()) != 0,
                DomItem::Last => day == last,
                DomItem::LastWeekday => day == nearest_weekday(last),
                DomItem::NearestWeekday(n) => {
                    i8::try_from(*n)
                        .ok()
                        .and_then(|n| day.with().day(n).build().ok())
                        .map(nearest_weekday)
                        == Some(day)
                }
            }),
            DaySpec::OfWeek(items) => items.iter().any(|i| match i {
                DowItem::Days(set) => set & (1 << day.weekday().to_sunday_zero_offset()) != 0,
                DowItem::Nth(w, n) => day.weekday() == *w && (day.day() - 1) / 7 + 1 == *n as i8,
                DowItem::Last(w) => day.weekday() == *w && i32::from(last.day() - day.day()) < 7,
            }),
        }
    }
}

/// The weekday nearest `day` without leaving its month (Quartz's `W`).
fn nearest_weekday(day: Date) -> Date {
    match day.weekday() {
        Weekday::Saturday if day.day() == 1 => day.checked_add(2.days()).unwrap_or(day),
        Weekday::Saturday => day.checked_sub(1.day()).unwrap_or(day),
        Weekday::Sunday if day == day.last_of_month() => day.checked_sub(2.days()).unwrap_or(day),
        Weekday::Sunday => day.checked_add(1.day()).unwrap_or(day),
        _ => day,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(expr: &str, after: &str) -> (String, String) {
        let w = Schedule::parse(None, Some(expr), None)
            .unwrap()
            .next_window(ts(after))
            .unwrap();
        (w.start.to_string(), w.end.to_string())
    }

    fn starts(expr: &str, after: &str, n: usize) -> Vec<String> {
        let s = Schedule::parse(None, Some(expr), None).unwrap();
        let mut t = ts(after);
        (0..n)
            .map(|_| {
                t = s.next_window(t).unwrap().start;
                t.to_string()
            })
            .collect()
    }

    #[test]
    fn aws_documented_examples() {
        // Twice a month, the 1st and the 15th, 16:00-24:00 UTC.
        assert_eq!(
            starts("cron(0 16 1,15 * ? *)", "2026-11-23T10:00:00Z", 3),
            ["2026-12-01T16:00:00Z", "2026-12-15T16:00:00Z", "2027-01-01T16:00:00Z"]
        );
        assert_eq!(
            next("cron(0 16 1,15 * ? *)", "2026-11-23T10:00:00Z").1,
            "2026-12-01T23:59:59Z"
        );
        // The first Sunday of every month at midnight.
        assert_eq!(
            starts("cron(0 0 ? * SUN#1 *)", "2026-11-23T00:00:00Z", 2),
            ["2026-12-06T00:00:00Z", "2027-01-03T00:00:00Z"]
        );
        // 04:00 and 16:00 every day: the increment resets each day.
        assert_eq!(
            starts("cron(0 4/12 * * ? *)", "2026-11-23T05:00:00Z", 3),
            ["2026-11-23T16:00:00Z", "2026-11-24T04:00:00Z", "2026-11-24T16:00:00Z"]
        );
        // Hourly cron windows close after an hour.
        assert_eq!(
            next("cron(0 4/12 * * ? *)", "2026-11-23T05:00:00Z").1,
            "2026-11-23T16:59:59Z"
        );
        // Every 10 days from midnight UTC; every 4 hours.
        assert_eq!(
            next("rate(10 days)", "2026-11-23T10:30:00Z"),
            ("2026-12-03T00:00:00Z".into(), "2026-12-03T23:59:59Z".into())
        );
        assert_eq!(
            next("rate(4 hours)", "2026-11-23T10:30:00Z"),
            ("2026-11-23T14:00:00Z".into(), "2026-11-23T14:59:59Z".into())
        );
    }

    #[test]
    fn last_weekday_nth_and_names() {
        // Last day of the month, last weekday, nearest weekday.
        assert_eq!(
            starts("cron(0 8 L * ? *)", "2027-01-31T09:00:00Z", 2),
            ["2027-02-28T08:00:00Z", "2027-03-31T08:00:00Z"]
        );
        // 2027-07-31 is a Saturday: LW is Friday the 30th.
        assert_eq!(
            starts("cron(0 8 LW JUL ? *)", "2027-01-01T00:00:00Z", 1),
            ["2027-07-30T08:00:00Z"]
        );
        // 2027-05-15 is a Saturday (nearest weekday Friday 14th); 2027-08-01
        // is a Sunday and 1W stays in the month: Monday the 2nd.
        assert_eq!(
            starts("cron(0 8 15W MAY ? *)", "2027-01-01T00:00:00Z", 1),
            ["2027-05-14T08:00:00Z"]
        );
        assert_eq!(
            starts("cron(0 8 1W AUG ? *)", "2027-01-01T00:00:00Z", 1),
            ["2027-08-02T08:00:00Z"]
        );
        // The last Friday of the month, by name and by number.
        assert_eq!(
            starts("cron(0 20 ? * FRIL *)", "2026-11-23T00:00:00Z", 1),
            ["2026-11-27T20:00:00Z"]
        );
        assert_eq!(
            starts("cron(0 20 ? * 6L *)", "2026-11-23T00:00:00Z", 1),
            ["2026-11-27T20:00:00Z"]
        );
        // Weekdays MON-FRI, months by range and step.
        assert_eq!(
            starts("cron(0 9 ? JAN-MAR/2 MON-FRI *)", "2027-01-29T10:00:00Z", 2),
            ["2027-03-01T09:00:00Z", "2027-03-02T09:00:00Z"]
        );
        // 29 February comes round in 2028.
        assert_eq!(
            starts("cron(0 0 29 FEB ? *)", "2026-11-23T00:00:00Z", 1),
            ["2028-02-29T00:00:00Z"]
        );
    }

    #[test]
    fn automatically_after_days_and_durations() {
        let s = Schedule::parse(Some(30), None, None).unwrap();
        assert_eq!(s.days(), Some(30));
        let w = s.next_window(ts("2026-11-23T10:00:00Z")).unwrap();
        assert_eq!(w.start.to_string(), "2026-12-23T00:00:00Z");
        let s = Schedule::parse(None, Some("cron(0 16 1,15 * ? *)"), Some("2h")).unwrap();
        assert_eq!(
            s.next_window(ts("2026-11-23T10:00:00Z")).unwrap().end.to_string(),
            "2026-12-01T17:59:59Z"
        );
    }

    #[test]
    fn bad_rules_are_refused_with_reasons() {
        let bad = |days: Option<i64>, e: Option<&str>, d: Option<&str>| Schedule::parse(days, e, d).unwrap_err();
        assert!(bad(Some(0), None, None).contains("1-1000"));
        assert!(bad(Some(1001), None, None).contains("1-1000"));
        assert!(bad(Some(3), Some("rate(3 days)"), None).contains("both"));
        assert!(bad(None, None, None).contains("needs"));
        assert!(bad(None, Some("rate(2 hours)"), None).contains("at least 4 hours"));
        assert!(bad(None, Some("rate(3 weeks)"), None).contains("weeks"));
        assert!(bad(None, Some("rate(x days)"), None).contains("whole number"));
        assert!(bad(None, Some("every day"), None).contains("rate(...) or cron(...)"));
        assert!(bad(None, Some("cron(0 16 1,15 * ?)"), None).contains("six fields"));
        assert!(bad(None, Some("cron(30 16 1 * ? *)"), None).contains("Minutes must be 0"));
        assert!(bad(None, Some("cron(0 16 1 * ? 2027)"), None).contains("Year"));
        assert!(bad(None, Some("cron(0 16 1 * MON *)"), None).contains("exactly one"));
        assert!(bad(None, Some("cron(0 16 ? * ? *)"), None).contains("exactly one"));
        assert!(bad(None, Some("cron(0 24 1 * ? *)"), None).contains("Hours"));
        assert!(bad(None, Some("cron(0 16 32 * ? *)"), None).contains("Day-of-month"));
        assert!(bad(None, Some("cron(0 16 ? * MON#6 *)"), None).contains("Day-of-week"));
        assert!(bad(None, Some("cron(0 16 ? FOO MON *)"), None).contains("Month"));
        assert!(bad(None, Some("cron(0 5-1 1 * ? *)"), None).contains("backwards"));
        assert!(bad(None, Some("rate(10 days)"), Some("25h")).contains("Duration"));
        assert!(bad(None, Some("rate(10 days)"), Some("3")).contains("Duration"));
        assert!(bad(None, Some("cron(0 22 1 * ? *)"), Some("3h")).contains("end of the UTC day"));
        assert!(bad(None, Some("cron(0 2,5 * * ? *)"), Some("4h")).contains("between rotation windows"));
        assert!(bad(None, Some("rate(4 hours)"), Some("5h")).contains("between rotation windows"));
    }

    #[test]
    fn arbitrary_expressions_never_panic() {
        for e in [
            "cron(0 0/0 * * ? *)",
            "cron(0 0 ? * 9#1 *)",
            "cron(0 0 ? * #1 *)",
            "cron(0 0 W * ? *)",
            "cron(0 0 ,, * ? *)",
            "cron(0 0 - * ? *)",
            "rate(99999999999999999999 days)",
            "cron()",
            "rate()",
        ] {
            assert!(Schedule::parse(None, Some(e), None).is_err(), "{e}");
        }
    }
}
