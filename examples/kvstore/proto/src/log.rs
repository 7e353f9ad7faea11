//! Structured logs: one JSON object per line on stdout, with `time` (RFC
//! 3339, UTC, milliseconds), `level` and `msg` first, then the fields
//! given. cove keeps every replica's output (`cove logs`), and a JSON line
//! is what log tools read without a parser of their own.

use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// Logs `msg` at level `info` with `fields` (a JSON object; anything else
/// is logged under `fields`).
pub fn info(msg: &str, fields: Value) {
    line("info", msg, fields);
}

/// Logs `msg` at level `warn`.
pub fn warn(msg: &str, fields: Value) {
    line("warn", msg, fields);
}

/// Logs `msg` at level `error`.
pub fn error(msg: &str, fields: Value) {
    line("error", msg, fields);
}

/// A duration in milliseconds, to the microsecond, for log fields.
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn line(level: &str, msg: &str, fields: Value) {
    let text = render(SystemTime::now(), level, msg, fields);
    // A closed stdout is no reason to stop serving.
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// The log line, without its newline.
fn render(at: SystemTime, level: &str, msg: &str, fields: Value) -> String {
    let mut record = Map::new();
    record.insert("time".into(), rfc3339(at).into());
    record.insert("level".into(), level.into());
    record.insert("msg".into(), msg.into());
    match fields {
        Value::Object(f) => record.extend(f),
        Value::Null => {}
        other => {
            record.insert("fields".into(), other);
        }
    }
    Value::Object(record).to_string()
}

/// `2026-11-23T23:59:01.120Z`.
fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// Year, month, day of the `days`th day after 1970-01-01 (proleptic
/// Gregorian calendar, counted in 400-year eras of 146,097 days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let doe = z % 146_097; // day of the era
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of the era
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the year, from March
    let mp = (5 * doy + 2) / 153; // month, from March
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let at = |s: u64, ms: u64| UNIX_EPOCH + Duration::from_millis(s * 1000 + ms);
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(at(951_782_400, 5)), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(at(1_795_478_341, 120)), "2026-11-23T23:59:01.120Z");
        assert_eq!(rfc3339(at(4_102_444_799, 999)), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn lines_are_json_with_the_fixed_fields_first() {
        let line = render(
            UNIX_EPOCH,
            "info",
            "put",
            serde_json::json!({"key": "a\"b", "bytes": 3}),
        );
        assert_eq!(
            line,
            r#"{"time":"1970-01-01T00:00:00.000Z","level":"info","msg":"put","key":"a\"b","bytes":3}"#
        );
        assert_eq!(millis(Duration::from_nanos(1_234_567)), 1.235);
        let line = render(UNIX_EPOCH, "warn", "x", Value::Null);
        assert!(line.ends_with(r#""msg":"x"}"#), "{line}");
    }
}
