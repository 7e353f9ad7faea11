//! Schedules (`x-cove.backup.schedule`, `x-cove.backup.verify`): cron
//! expressions and the next time they name, in a time zone.
//!
//! Written here rather than taken from a crate: no cron crate is in the
//! workspace's vendored set, and what cove needs is small. What it reads:
//!
//! - 5 fields (`minute hour day-of-month month day-of-week`), or 6 with
//!   seconds first; each field a `*`, a number, a range `a-b`, a step
//!   (`*/n`, `a-b/n`, `a/n` = from `a` to the field's end), or a list of
//!   those (`1,15,30-40/5`); months `JAN`–`DEC` and days `SUN`–`SAT` by
//!   name (any case); day-of-week 0 or 7 for Sunday;
//! - the words `hourly`, `daily`, `weekly`, `monthly` (also with `@`): at
//!   minute 0 of every hour, midnight, midnight on Sunday, midnight on
//!   the 1st.
//!
//! Days follow cron's rule: when both day-of-month and day-of-week are
//! restricted (neither starts with `*`), a day matches if *either* does
//! (`0 0 1 * MON`: the 1st, and every Monday); else the restricted one.
//!
//! Times are wall-clock times of the zone given (the daemon passes the
//! host's, [`jiff::tz::TimeZone::system`]), so `0 3 * * *` is 03:00 local
//! winter and summer. Across daylight-saving changes each wall-clock time
//! runs once: a time the clock skips (02:30 on a spring-forward night)
//! runs at the same distance after the skip (03:30); a time the clock
//! passes twice (01:30 on a fall-back night) runs the first time only.

use std::fmt;

use jiff::civil::{Date, DateTime};
use jiff::{ToSpan as _, Zoned};

/// A parsed schedule: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Day-of-month was `*...` (not restricted, for cron's OR rule).
    days_star: bool,
    weekdays_star: bool,
    text: String,
}

/// Why a schedule cannot be read: the message names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError(pub String);

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CronError {}

/// The hint every schedule error carries.
pub const HINT: &str = "write `hourly`, `daily`, `weekly`, `monthly`, or cron: 5 fields (minute hour day month weekday), or 6 with seconds first, e.g. `0 3 * * *` or `*/10 * * * * *`";

/// How far ahead [`Schedule::next_after`] looks (a schedule for 29
/// February on a Monday waits up to 28 years; one for 31 February never
/// comes).
const HORIZON_DAYS: i32 = 366 * 30;

struct Field {
    name: &'static str,
    min: u8,
    max: u8,
    names: &'static [&'static str],
}

const SECOND: Field = Field {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY: Field = Field {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
// 7 is Sunday too (folded into 0 after parsing).
const WEEKDAY: Field = Field {
    name: "day of week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

impl Field {
    fn value(&self, s: &str) -> Result<u8, CronError> {
        let upper = s.to_ascii_uppercase();
        if let Some(i) = self.names.iter().position(|n| *n == upper) {
            // Months are 1-based, days of the week 0-based.
            return Ok(if self.min == 1 { i as u8 + 1 } else { i as u8 });
        }
        let v: u8 = s.parse().map_err(|_| {
            CronError(format!(
                "{}: `{s}` is not a number{}",
                self.name,
                if self.names.is_empty() {
                    String::new()
                } else {
                    format!(" or a name ({})", self.names.join(", "))
                }
            ))
        })?;
        if v < self.min || v > self.max {
            return Err(CronError(format!(
                "{}: {v} is out of range ({}-{})",
                self.name, self.min, self.max
            )));
        }
        Ok(v)
    }

    /// The field's bits, and whether it started with `*`.
    fn parse(&self, text: &str) -> Result<(u64, bool), CronError> {
        let mut bits = 0u64;
        for item in text.split(',') {
            if item.is_empty() {
                return Err(CronError(format!(
                    "{}: an empty item in `{text}`",
                    self.name
                )));
            }
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => {
                    let step: u8 = s.parse().map_err(|_| {
                        CronError(format!("{}: step `{s}` is not a number", self.name))
                    })?;
                    if step == 0 {
                        return Err(CronError(format!("{}: a step of 0", self.name)));
                    }
                    (r, step)
                }
                None => (item, 1),
            };
            let (lo, hi) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, mut b) = (self.value(a)?, self.value(b)?);
                if self.max == 7 && b == 0 && a > 0 {
                    b = 7; // `SAT-SUN`: Sunday as the week's end
                }
                if a > b {
                    return Err(CronError(format!(
                        "{}: range `{range}` runs backwards",
                        self.name
                    )));
                }
                (a, b)
            } else {
                let a = self.value(range)?;
                // `a/n`: from a to the end, every n.
                (a, if item.contains('/') { self.max } else { a })
            };
            let mut v = lo;
            while v <= hi {
                bits |= 1 << v;
                v = match v.checked_add(step) {
                    Some(n) => n,
                    None => break,
                };
            }
        }
        Ok((bits, text.starts_with('*')))
    }
}

impl Schedule {
    /// Reads a schedule (see the module's doc for what it accepts).
    pub fn parse(text: &str) -> Result<Schedule, CronError> {
        let trimmed = text.trim();
        let word = match trimmed.trim_start_matches('@') {
            "hourly" => Some("0 * * * *"),
            "daily" | "midnight" => Some("0 0 * * *"),
            "weekly" => Some("0 0 * * 0"),
            "monthly" => Some("0 0 1 * *"),
            "yearly" | "annually" => Some("0 0 1 1 *"),
            _ => None,
        };
        let fields: Vec<&str> = word.unwrap_or(trimmed).split_whitespace().collect();
        let (sec, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(CronError(format!(
                    "`{trimmed}` has {n} field(s); cron has 5, or 6 with seconds first"
                )));
            }
        };
        let (seconds, _) = SECOND.parse(sec)?;
        let (minutes, _) = MINUTE.parse(rest[0])?;
        let (hours, _) = HOUR.parse(rest[1])?;
        let (days, days_star) = DAY.parse(rest[2])?;
        let (months, _) = MONTH.parse(rest[3])?;
        let (mut weekdays, weekdays_star) = WEEKDAY.parse(rest[4])?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays & !(1 << 7)) | 1;
        }
        let s = Schedule {
            seconds,
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_star,
            weekdays_star,
            text: trimmed.to_string(),
        };
        if !s.ever() {
            return Err(CronError(format!(
                "`{trimmed}` names a day that never comes (day {} is in none of its months)",
                bits(s.days)
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            )));
        }
        Ok(s)
    }

    /// The schedule as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether some day of some year matches (`31 2` never does).
    fn ever(&self) -> bool {
        if !self.weekdays_star && !self.days_star {
            return true;
        }
        if !self.days_star || self.weekdays_star {
            // Only the day of the month counts: a month with that day.
            const LONGEST: [u8; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
            return bits(self.months)
                .any(|m| bits(self.days).any(|d| d <= LONGEST[m as usize - 1]));
        }
        true
    }

    fn day_matches(&self, d: Date) -> bool {
        if self.months & (1 << d.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().to_sunday_zero_offset()) != 0;
        match (self.days_star, self.weekdays_star) {
            (false, false) => dom || dow,
            (true, false) => dow,
            (false, true) => dom,
            (true, true) => true,
        }
    }

    /// The first time the schedule names strictly after `after`, in
    /// `after`'s time zone; `None` when none comes within 30 years.
    pub fn next_after(&self, after: &Zoned) -> Option<Zoned> {
        let tz = after.time_zone().clone();
        let start = after.datetime();
        // Candidates are wall-clock times. With no change of the zone's
        // offset near `after`, one before `after`'s own wall-clock time is
        // before it; else those more than 3 hours before cannot be after
        // it (no zone's clock goes back by more: daylight saving moves it
        // by 1 h, at most 2 h).
        let near = after.timestamp().checked_sub(24.hours()).ok()?;
        let changes = tz.following(near).next().is_some_and(|t| {
            t.timestamp()
                .as_second()
                .saturating_sub(after.timestamp().as_second())
                < 86_400
        });
        let floor = if changes {
            start.checked_sub(3.hours()).ok()?
        } else {
            start
        };
        let mut day = start.date();
        for _ in 0..HORIZON_DAYS {
            if self.day_matches(day) {
                let at = |h: u8, m: u8, s: u8| {
                    DateTime::new(
                        day.year(),
                        day.month(),
                        day.day(),
                        h as i8,
                        m as i8,
                        s as i8,
                        0,
                    )
                };
                for h in bits(self.hours) {
                    // Whole hours, then minutes, before the floor: skipped.
                    if at(h, 59, 59).ok()? < floor {
                        continue;
                    }
                    for m in bits(self.minutes) {
                        if at(h, m, 59).ok()? < floor {
                            continue;
                        }
                        for s in bits(self.seconds) {
                            let dt = at(h, m, s).ok()?;
                            if dt < floor {
                                continue;
                            }
                            // A skipped time moves on by the skip; a time
                            // passed twice is the first.
                            let Ok(z) = tz.to_zoned(dt) else { continue };
                            if z.timestamp() > after.timestamp() {
                                return Some(z);
                            }
                        }
                    }
                }
            }
            day = day.tomorrow().ok()?;
        }
        None
    }
}

impl std::str::FromStr for Schedule {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Schedule, CronError> {
        Schedule::parse(s)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The set bits of `b`, lowest first.
fn bits(b: u64) -> impl Iterator<Item = u8> {
    (0..64u8).filter(move |i| b & (1 << i) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::TimeZone;

    fn at(text: &str, tz: &str) -> Zoned {
        let tz = TimeZone::get(tz).unwrap();
        text.parse::<DateTime>().unwrap().to_zoned(tz).unwrap()
    }

    /// The next `n` times after `from` (wall-clock, in its zone).
    fn next(schedule: &str, from: &str, n: usize) -> Vec<String> {
        next_in(schedule, from, "UTC", n)
    }

    fn next_in(schedule: &str, from: &str, tz: &str, n: usize) -> Vec<String> {
        let s = Schedule::parse(schedule).unwrap();
        let mut t = at(from, tz);
        let mut out = Vec::new();
        for _ in 0..n {
            t = s.next_after(&t).unwrap();
            out.push(t.strftime("%Y-%m-%dT%H:%M:%S%:z %a").to_string());
        }
        out
    }

    #[test]
    fn every_field_form() {
        assert_eq!(
            next("*/20 9-10 * * *", "2026-01-05T08:59", 4),
            [
                "2026-01-05T09:00:00+00:00 Mon",
                "2026-01-05T09:20:00+00:00 Mon",
                "2026-01-05T09:40:00+00:00 Mon",
                "2026-01-05T10:00:00+00:00 Mon"
            ]
        );
        // Lists, ranges with steps, `a/n`.
        assert_eq!(
            next("5,10-30/10,50/5 0 * * *", "2026-01-05T00:00", 6),
            [
                "2026-01-05T00:05:00+00:00 Mon",
                "2026-01-05T00:10:00+00:00 Mon",
                "2026-01-05T00:20:00+00:00 Mon",
                "2026-01-05T00:30:00+00:00 Mon",
                "2026-01-05T00:50:00+00:00 Mon",
                "2026-01-05T00:55:00+00:00 Mon"
            ]
        );
        // Names, any case; 7 is Sunday.
        assert_eq!(
            next("0 12 * jan,Mar sat-sun", "2026-01-30T00:00", 3),
            [
                "2026-01-31T12:00:00+00:00 Sat",
                "2026-03-01T12:00:00+00:00 Sun",
                "2026-03-07T12:00:00+00:00 Sat"
            ]
        );
        assert_eq!(
            next("0 0 * * 7", "2026-01-05T00:00", 1),
            next("0 0 * * SUN", "2026-01-05T00:00", 1)
        );
    }

    #[test]
    fn six_fields_have_seconds_first() {
        assert_eq!(
            next("*/15 * * * * *", "2026-01-05T00:00:50", 3),
            [
                "2026-01-05T00:01:00+00:00 Mon",
                "2026-01-05T00:01:15+00:00 Mon",
                "2026-01-05T00:01:30+00:00 Mon"
            ]
        );
    }

    #[test]
    fn words() {
        let from = "2026-01-05T10:30";
        assert_eq!(next("hourly", from, 1), ["2026-01-05T11:00:00+00:00 Mon"]);
        assert_eq!(next("daily", from, 1), ["2026-01-06T00:00:00+00:00 Tue"]);
        assert_eq!(next("weekly", from, 1), ["2026-01-11T00:00:00+00:00 Sun"]);
        assert_eq!(next("monthly", from, 1), ["2026-02-01T00:00:00+00:00 Sun"]);
        assert_eq!(next("@daily", from, 1), next("daily", from, 1));
    }

    #[test]
    fn day_of_month_or_day_of_week_as_cron() {
        // Both restricted: either matches (the 13th, and every Friday).
        assert_eq!(
            next("0 0 13 * FRI", "2026-02-01T00:00", 4),
            [
                "2026-02-06T00:00:00+00:00 Fri",
                "2026-02-13T00:00:00+00:00 Fri",
                "2026-02-20T00:00:00+00:00 Fri",
                "2026-02-27T00:00:00+00:00 Fri"
            ]
        );
        assert_eq!(
            next("0 0 13 * FRI", "2026-03-01T00:00", 2),
            [
                "2026-03-06T00:00:00+00:00 Fri",
                "2026-03-13T00:00:00+00:00 Fri"
            ]
        );
        assert_eq!(
            next("0 0 10 * MON", "2026-03-01T00:00", 2),
            [
                "2026-03-02T00:00:00+00:00 Mon",
                "2026-03-09T00:00:00+00:00 Mon"
            ]
        );
        assert_eq!(
            next("0 0 10 * MON", "2026-03-09T00:00", 1),
            ["2026-03-10T00:00:00+00:00 Tue"]
        );
        // One restricted (`*/2` counts as `*`, as in cron): it alone.
        assert_eq!(
            next("0 0 10 * *", "2026-03-01T00:00", 1),
            ["2026-03-10T00:00:00+00:00 Tue"]
        );
        assert_eq!(
            next("0 0 */1 * MON", "2026-03-03T00:00", 1),
            ["2026-03-09T00:00:00+00:00 Mon"]
        );
        // 29 February: the next leap year.
        assert_eq!(
            next("0 0 29 2 *", "2026-03-01T00:00", 1),
            ["2028-02-29T00:00:00+00:00 Tue"]
        );
    }

    #[test]
    fn daylight_saving_changes_run_each_wall_clock_time_once() {
        // New York springs forward at 02:00 on 2026-03-08: 02:30 is skipped,
        // and runs at 03:30 (EDT); the next day at 02:30 again.
        assert_eq!(
            next_in("30 2 * * *", "2026-03-07T12:00", "America/New_York", 2),
            [
                "2026-03-08T03:30:00-04:00 Sun",
                "2026-03-09T02:30:00-04:00 Mon"
            ]
        );
        // Falls back at 02:00 on 2026-11-01: 01:30 comes twice, runs once.
        assert_eq!(
            next_in("30 1 * * *", "2026-10-31T12:00", "America/New_York", 2),
            [
                "2026-11-01T01:30:00-04:00 Sun",
                "2026-11-02T01:30:00-05:00 Mon"
            ]
        );
        // 03:00 local both sides of the change: 23 h apart across it.
        let s = Schedule::parse("0 3 * * *").unwrap();
        let a = s
            .next_after(&at("2026-03-07T00:00", "America/New_York"))
            .unwrap();
        let b = s.next_after(&a).unwrap();
        assert_eq!(
            b.timestamp().as_second() - a.timestamp().as_second(),
            23 * 3600
        );
    }

    #[test]
    fn bad_schedules_are_refused_naming_the_field() {
        for (text, says) in [
            ("* * * *", "has 4 field(s)"),
            ("60 * * * *", "minute: 60 is out of range (0-59)"),
            ("* 24 * * *", "hour: 24 is out of range"),
            ("* * 0 * *", "day of month: 0 is out of range (1-31)"),
            ("* * * FOO *", "month: `FOO` is not a number or a name"),
            ("* * * * 8", "day of week: 8 is out of range (0-7)"),
            ("*/0 * * * *", "minute: a step of 0"),
            ("5-1 * * * *", "minute: range `5-1` runs backwards"),
            ("1,,2 * * * *", "minute: an empty item"),
            ("0 0 31 2 *", "never comes"),
            ("0 0 30 FEB *", "never comes"),
            ("sometimes", "has 1 field(s)"),
        ] {
            let e = Schedule::parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
        // 31 February on a Friday: Fridays (cron's OR rule).
        assert!(Schedule::parse("0 0 31 2 FRI").is_ok());
    }

    #[test]
    fn an_every_second_schedule_is_found_quickly_from_late_in_the_day() {
        let s = Schedule::parse("* * * * * *").unwrap();
        let t = at("2026-01-05T23:59:59", "UTC");
        let started = std::time::Instant::now();
        let n = s.next_after(&t).unwrap();
        assert_eq!(n.strftime("%H:%M:%S").to_string(), "00:00:00");
        // Reported, not asserted on: a figure.
        eprintln!("next_after from 23:59:59: {:?}", started.elapsed());
    }
}
