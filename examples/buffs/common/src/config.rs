//! Configuration comes from the environment only: no host, port or password
//! is written in the code.

use std::time::Duration;

/// A required variable that is missing or empty.
#[derive(Debug, thiserror::Error)]
#[error("environment variable `{name}` is not set\n  hint: {hint}")]
pub struct Missing {
    pub name: &'static str,
    pub hint: &'static str,
}

/// A required variable.
pub fn required(name: &'static str, hint: &'static str) -> Result<String, Missing> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(Missing { name, hint }),
    }
}

/// A secret: the variable `name`, else the contents of the file that
/// `name_FILE` names (cove's and Docker's secrets are files), without its
/// last line break. `None` when neither is set.
pub fn secret(name: &str) -> Result<Option<String>, std::io::Error> {
    if let Some(v) = std::env::var(name).ok().filter(|v| !v.is_empty()) {
        return Ok(Some(v));
    }
    let Some(path) = std::env::var(format!("{name}_FILE"))
        .ok()
        .filter(|p| !p.is_empty())
    else {
        return Ok(None);
    };
    let text = fs_err::read_to_string(&path)?;
    Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()))
}

/// An optional variable with a default.
pub fn or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The address to listen on: `HOST` and `PORT` (cove sets both per replica).
pub fn listen() -> String {
    format!("{}:{}", or("HOST", "127.0.0.1"), or("PORT", "8080"))
}

/// Seconds from `name`, or `default`.
pub fn seconds(name: &str, default: u64) -> Duration {
    Duration::from_secs(or(name, &default.to_string()).parse().unwrap_or(default))
}
