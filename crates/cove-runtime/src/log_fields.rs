//! What a log line says about itself: its level, and the top-level fields
//! of a line that is a JSON object. Used by [`crate::log_query`]'s
//! `--level` and `--where` filters; pure, no I/O.
//!
//! Levels, lowest first: `trace`, `debug`, `info`, `warn`, `error`,
//! `fatal`. Recognised:
//! - a JSON object line's top-level `level` or `severity` (else `lvl`):
//!   a word (any case; `warning` is `warn`, `err` `error`, `critical`,
//!   `crit`, `panic`, `alert`, `emerg`, `emergency` are `fatal`, `dbg`
//!   `debug`, `information` `info`) or a number as pino and bunyan write
//!   it (10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal);
//! - a plain line whose first word, or second when the first starts with
//!   a digit (a timestamp, as tracing and log4j print them), is one of the
//!   words above, bare or as `[WARN]`, `WARN:`, `<warn>`, `level=warn`.
//!
//! Anything else has no level.

/// A line's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Level {
    /// The level a word names (any case), if any.
    pub fn from_word(word: &str) -> Option<Level> {
        let w = word.to_ascii_lowercase();
        Some(match w.as_str() {
            "trace" | "trc" => Level::Trace,
            "debug" | "dbg" => Level::Debug,
            "info" | "information" | "inf" | "notice" => Level::Info,
            "warn" | "warning" | "wrn" => Level::Warn,
            "error" | "err" | "eror" => Level::Error,
            "fatal" | "critical" | "crit" | "panic" | "alert" | "emerg" | "emergency" => {
                Level::Fatal
            }
            _ => return None,
        })
    }

    /// pino's and bunyan's numbers.
    fn from_number(n: f64) -> Option<Level> {
        Some(match n as i64 {
            10 => Level::Trace,
            20 => Level::Debug,
            30 => Level::Info,
            40 => Level::Warn,
            50 => Level::Error,
            60 => Level::Fatal,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// The words `--level` takes, for hints.
    pub const WORDS: &'static str = "trace, debug, info, warn, error, fatal";
}

/// A line parsed as a JSON object, when it is one (cheaply refused
/// otherwise).
pub fn json_object(text: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let t = text.trim();
    if !t.starts_with('{') || !t.ends_with('}') {
        return None;
    }
    match serde_json::from_str::<serde_json::Value>(t) {
        Ok(serde_json::Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// The level of a line (`object`: the line as a JSON object, if it is one).
pub fn level_of(
    text: &str,
    object: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Option<Level> {
    if let Some(m) = object {
        let v = ["level", "severity", "lvl"]
            .iter()
            .find_map(|k| m.get(*k))?;
        return match v {
            serde_json::Value::String(s) => Level::from_word(s.trim()),
            serde_json::Value::Number(n) => n.as_f64().and_then(Level::from_number),
            _ => None,
        };
    }
    let mut words = text.split_ascii_whitespace();
    let first = words.next()?;
    if let Some(l) = word_level(first) {
        return Some(l);
    }
    if first.starts_with(|c: char| c.is_ascii_digit()) {
        return words.next().and_then(word_level);
    }
    None
}

/// `WARN`, `[WARN]`, `WARN:`, `<warn>`, `level=warn`.
fn word_level(word: &str) -> Option<Level> {
    let w = word.strip_prefix("level=").unwrap_or(word);
    let w = w.trim_start_matches(['[', '<', '(']);
    let w = w.trim_end_matches([']', '>', ')', ':', ',']);
    Level::from_word(w)
}

/// A `--where FIELD=VALUE` condition on a JSON line's top-level field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Where {
    pub field: String,
    pub value: String,
}

impl Where {
    /// `FIELD=VALUE`; the error says what is wrong (the caller adds where
    /// it was written and a hint).
    pub fn parse(s: &str) -> Result<Where, String> {
        let Some((field, value)) = s.split_once('=') else {
            return Err(format!("`{s}` has no `=`"));
        };
        let field = field.trim();
        if field.is_empty() {
            return Err(format!("`{s}` names no field before `=`"));
        }
        Ok(Where {
            field: field.to_string(),
            value: value.to_string(),
        })
    }

    /// Whether the object's field has this value: a string equal to it, or
    /// a number, boolean or null written as it (`status=500`,
    /// `ok=true`); `level` and `severity` compare as levels (`WARNING`
    /// matches `warn`).
    pub fn matches(&self, object: &serde_json::Map<String, serde_json::Value>) -> bool {
        let Some(v) = object.get(&self.field) else {
            return false;
        };
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Null => "null".to_string(),
            _ => return false,
        };
        if text == self.value {
            return true;
        }
        matches!(self.field.as_str(), "level" | "severity")
            && Level::from_word(&self.value).is_some()
            && Level::from_word(&text) == Level::from_word(&self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(text: &str) -> Option<Level> {
        level_of(text, json_object(text).as_ref())
    }

    #[test]
    fn levels_of_json_and_plain_lines() {
        assert_eq!(level(r#"{"level":"WARN","msg":"x"}"#), Some(Level::Warn));
        assert_eq!(level(r#"{"severity":"error"}"#), Some(Level::Error));
        assert_eq!(level(r#"{"level":50}"#), Some(Level::Error));
        assert_eq!(level(r#"{"msg":"no level"}"#), None);
        assert_eq!(level("INFO starting"), Some(Level::Info));
        assert_eq!(level("[warning] disk"), Some(Level::Warn));
        assert_eq!(level("ERROR: boom"), Some(Level::Error));
        assert_eq!(
            level("2026-12-07T17:02:05.123Z  WARN app: slow"),
            Some(Level::Warn)
        );
        assert_eq!(level("level=debug msg=x"), Some(Level::Debug));
        assert_eq!(level("an error happened"), None);
        assert_eq!(level(""), None);
        assert!(Level::Warn > Level::Info && Level::Fatal > Level::Error);
    }

    #[test]
    fn where_conditions() {
        let obj =
            json_object(r#"{"level":"WARNING","status":500,"ok":true,"user":"ann"}"#).unwrap();
        let w = |s: &str| Where::parse(s).unwrap().matches(&obj);
        assert!(w("user=ann"));
        assert!(!w("user=bob"));
        assert!(w("status=500"));
        assert!(w("ok=true"));
        assert!(w("level=warn"));
        assert!(!w("missing=x"));
        assert!(Where::parse("nofield").is_err());
        assert!(Where::parse("=x").is_err());
        assert_eq!(Where::parse("a=b=c").unwrap().value, "b=c");
    }
}
