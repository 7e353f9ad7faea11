//! Durations (`1m30s`) and byte sizes (`512m`) as Compose writes them.
//!
//! Durations follow Go's `time.ParseDuration` (units `ns`, `us`/`µs`, `ms`,
//! `s`, `m`, `h`, fractions allowed) because that is what Compose accepts;
//! they print back in the same normal form (`90s` prints as `1m30s`). Sizes
//! follow Docker's `RAMInBytes`: an optional `b`/`k`/`m`/`g`/`t`/`p` unit,
//! powers of 1024, optional `b`/`ib` suffix.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Compose duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ComposeDuration(pub Duration);

/// Parses a Go duration. Returns a message on failure.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("`{s}` is not a duration");
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() {
        return Err(bad());
    }
    if t.starts_with('-') {
        return Err(format!("`{s}` is negative; durations must be positive"));
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let mut rest = t;
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("`{s}` has no unit")),
            _ => return Err(bad()),
        };
        total += number * nanos_per;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(format!("`{s}` is too long"));
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// Formats a duration as Go does: `1h2m3s`, `1m30s`, `500ms`, `0s`.
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", trim_fraction(nanos as f64 / 1e3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim_fraction(nanos as f64 / 1e6));
    }
    let total_secs = d.as_secs();
    let h = total_secs / 3600;
    let m = (total_secs % 3600) / 60;
    let s = (total_secs % 60) as f64 + f64::from(d.subsec_nanos()) / 1e9;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", trim_fraction(s)));
    out
}

fn trim_fraction(x: f64) -> String {
    let s = format!("{x:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

impl Serialize for ComposeDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for ComposeDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let text = match &v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return Err(serde::de::Error::custom("a duration must be a string")),
        };
        parse_duration(&text)
            .map(ComposeDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses a byte size (`512m`, `1.5g`, `1024`, `2GiB`).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let bad = || format!("`{s}` is not a size (examples: `512m`, `1g`, `1048576`)");
    let num_len = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    if num_len == 0 {
        return Err(bad());
    }
    let number: f64 = t[..num_len].parse().map_err(|_| bad())?;
    let unit = t[num_len..].trim_start();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    Ok((number * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for (input, secs_ms, normal) in [
            ("90s", 90_000, "1m30s"),
            ("1m30s", 90_000, "1m30s"),
            ("1h", 3_600_000, "1h0m0s"),
            ("500ms", 500, "500ms"),
            ("1.5s", 1_500, "1.5s"),
            ("0", 0, "0s"),
            ("2h45m", 9_900_000, "2h45m0s"),
        ] {
            let d = parse_duration(input).unwrap();
            assert_eq!(d.as_millis(), secs_ms, "{input}");
            assert_eq!(format_duration(d), normal, "{input}");
        }
        for bad in ["", "10", "1x", "s", "-1s", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("1.5k").unwrap(), 1536);
        assert!(parse_bytes("lots").is_err());
    }
}
