//! What Compose's policy strings mean, parsed once: `restart`,
//! `deploy.restart_policy.condition`, `stop_signal`, and
//! `update_config`/`rollback_config`'s `order` and `failure_action`.
//!
//! Each is kept as [`Written`]: the typed value and the text it was
//! parsed from, which is what the model prints (so `cove config` shows the
//! file's spelling: `SIGTERM` or `TERM`, `on-failure:3`). The loader
//! (`checks.rs`) reports a value that does not parse at its place
//! in the file, with a hint; what comes out of the loader always parses.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value as the file wrote it: typed, and printed back as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written<T> {
    value: T,
    text: String,
}

impl<T> Written<T> {
    /// The typed value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The text it was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl<T: FromStr> Written<T> {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Written<T>, T::Err> {
        Ok(Written {
            value: text.parse()?,
            text: text.to_string(),
        })
    }
}

impl<T> Deref for Written<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> Serialize for Written<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de, T: FromStr<Err = String>> Deserialize<'de> for Written<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Written::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// In `x-cove`'s schema a written value is the string it was written as.
impl<T> schemars::JsonSchema for Written<T> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        String::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

/// `restart`: when a container (here, a replica) that exited starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// `no` (also an empty value, as an unset variable leaves it).
    No,
    /// `always`.
    Always,
    /// `unless-stopped`.
    UnlessStopped,
    /// `on-failure[:MAX]`.
    OnFailure { max: Option<u32> },
}

/// The policies `restart` takes, for hints.
pub const RESTART_POLICIES: [&str; 4] = ["no", "always", "unless-stopped", "on-failure"];

impl FromStr for Restart {
    type Err = String;
    fn from_str(s: &str) -> Result<Restart, String> {
        Ok(match s {
            "no" | "" => Restart::No,
            "always" => Restart::Always,
            "unless-stopped" => Restart::UnlessStopped,
            "on-failure" => Restart::OnFailure { max: None },
            other => match other.strip_prefix("on-failure:").map(str::parse::<u32>) {
                Some(Ok(n)) => Restart::OnFailure { max: Some(n) },
                _ => return Err(format!("unknown `restart` policy `{other}`")),
            },
        })
    }
}

/// `deploy.restart_policy.condition`. Anything but `none` and
/// `on-failure` restarts always (`any`, Compose's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartCondition {
    None,
    OnFailure,
    Any,
}

impl FromStr for RestartCondition {
    type Err = String;
    fn from_str(s: &str) -> Result<RestartCondition, String> {
        Ok(match s {
            "none" => RestartCondition::None,
            "on-failure" => RestartCondition::OnFailure,
            _ => RestartCondition::Any,
        })
    }
}

/// `stop_signal`: the signals cove sends to stop a replica, written as
/// Compose does (`SIGTERM`, `TERM`, `15`; any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Term,
    Int,
    Quit,
    Hup,
    Kill,
    Usr1,
    Usr2,
    Winch,
}

/// The hint for a `stop_signal` that is none of [`StopSignal`]'s.
pub const STOP_SIGNAL_HINT: &str = "use SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1 or SIGUSR2";

impl FromStr for StopSignal {
    type Err = String;
    fn from_str(s: &str) -> Result<StopSignal, String> {
        let n = s.trim().to_ascii_uppercase();
        let n = n.strip_prefix("SIG").unwrap_or(&n);
        Ok(match n {
            "TERM" | "15" => StopSignal::Term,
            "INT" | "2" => StopSignal::Int,
            "QUIT" | "3" => StopSignal::Quit,
            "HUP" | "1" => StopSignal::Hup,
            "KILL" | "9" => StopSignal::Kill,
            "USR1" | "10" => StopSignal::Usr1,
            "USR2" | "12" => StopSignal::Usr2,
            "WINCH" | "28" => StopSignal::Winch,
            _ => return Err(format!("unknown `stop_signal` `{s}`")),
        })
    }
}

/// `update_config.order`: which goes first when a replica is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    StartFirst,
    StopFirst,
}

impl FromStr for Order {
    type Err = String;
    fn from_str(s: &str) -> Result<Order, String> {
        match s {
            "start-first" => Ok(Order::StartFirst),
            "stop-first" => Ok(Order::StopFirst),
            o => Err(format!(
                "`order` is `{o}`; use `start-first` or `stop-first`"
            )),
        }
    }
}

/// What a deploy does when replicas fail (`failure_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureAction {
    /// Put the previous version back (the default of `update_config`).
    Rollback,
    /// Stop where it is (the default of `rollback_config`).
    Pause,
    /// Go on with the next replicas.
    Continue,
}

impl FromStr for FailureAction {
    type Err = String;
    fn from_str(s: &str) -> Result<FailureAction, String> {
        match s {
            "rollback" => Ok(FailureAction::Rollback),
            "pause" => Ok(FailureAction::Pause),
            "continue" => Ok(FailureAction::Continue),
            a => Err(format!(
                "`failure_action` is `{a}`; use `rollback`, `pause` or `continue`"
            )),
        }
    }
}

/// Checks `max_failure_ratio`: a share between 0 and 1.
pub fn check_failure_ratio(ratio: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err(format!(
            "`max_failure_ratio` is {ratio}; give a share between 0 and 1"
        ))
    }
}

impl fmt::Display for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            StopSignal::Term => "SIGTERM",
            StopSignal::Int => "SIGINT",
            StopSignal::Quit => "SIGQUIT",
            StopSignal::Hup => "SIGHUP",
            StopSignal::Kill => "SIGKILL",
            StopSignal::Usr1 => "SIGUSR1",
            StopSignal::Usr2 => "SIGUSR2",
            StopSignal::Winch => "SIGWINCH",
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_print_as_written() {
        let r: Written<Restart> = Written::parse("on-failure:3").unwrap();
        assert_eq!(*r, Restart::OnFailure { max: Some(3) });
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"on-failure:3\"");
        assert_eq!("".parse::<Restart>(), Ok(Restart::No));
        assert!("allways".parse::<Restart>().is_err());
        assert!("on-failure:x".parse::<Restart>().is_err());
        let s: Written<StopSignal> = serde_json::from_str("\"term\"").unwrap();
        assert_eq!((*s, s.text()), (StopSignal::Term, "term"));
        assert_eq!("9".parse::<StopSignal>(), Ok(StopSignal::Kill));
        assert!("SIGNOPE".parse::<StopSignal>().is_err());
        assert!(serde_json::from_str::<Written<Order>>("\"later\"").is_err());
        assert_eq!("stopped".parse(), Ok(RestartCondition::Any));
        assert_eq!("pause".parse(), Ok(FailureAction::Pause));
        assert!(check_failure_ratio(1.5).is_err() && check_failure_ratio(0.5).is_ok());
    }
}
