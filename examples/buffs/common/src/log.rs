//! Structured logs: one JSON object per line on stdout.

use std::io::Write;

use serde_json::{Map, Value, json};

/// Writes `{"ts", "level", "service", "msg", ...fields}` as one line.
pub fn line(level: &str, msg: &str, fields: Value) {
    let mut obj = Map::new();
    obj.insert("ts".into(), json!(jiff::Timestamp::now().to_string()));
    obj.insert("level".into(), json!(level));
    obj.insert("service".into(), json!(service()));
    obj.insert("msg".into(), json!(msg));
    if let Value::Object(extra) = fields {
        obj.extend(extra);
    }
    let mut text = Value::Object(obj).to_string();
    text.push('\n');
    // A closed stdout must not take the service down.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

pub fn info(msg: &str, fields: Value) {
    line("info", msg, fields);
}

pub fn warn(msg: &str, fields: Value) {
    line("warn", msg, fields);
}

pub fn error(msg: &str, fields: Value) {
    line("error", msg, fields);
}

fn service() -> String {
    std::env::var("COVE_SERVICE")
        .or_else(|_| std::env::var("SERVICE_NAME"))
        .unwrap_or_else(|_| {
            std::env::args()
                .next()
                .and_then(|a| a.rsplit('/').next().map(str::to_owned))
                .unwrap_or_default()
        })
}
