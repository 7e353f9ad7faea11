//! The condition language of an alert's `when:` (`x-cove.alerts` of a
//! service): one named figure, alone when it is a yes/no fact, or compared
//! with a threshold, over a window when the figure is counted over time.
//!
//! ```text
//! condition := fact | figure op number
//! fact      := backup_failed | verify_failed | deploy_failed | unhealthy
//! figure    := name [ "[" duration "]" ]      e.g. restarts[10m] (default 5m)
//! op        := ">" | ">=" | "<" | "<="
//! ```
//!
//! Facts: `backup_failed` (the service's latest scheduled backup failed;
//! resolves when a later one succeeds), `verify_failed` (the same for its
//! restore drill), `deploy_failed` (its latest `cove deploy` failed;
//! resolves when a later one succeeds), `unhealthy`
//! (a replica is running but not healthy or ready: failing its checks,
//! restarting, refusing connections, failed). Figures: `restarts[W]`
//! (restarts of its replicas in the last W), `error_rate[W]` (the share of
//! the gateway's answers that were 5xx in the last W), `p99_ms[W]` (the
//! gateway's 99th percentile latency in milliseconds), `memory_mb` (its
//! replicas' memory). [`Figure::evaluated`] says which the daemon acts on;
//! the loader warns of the others. Parsing is pure: the loader reports a
//! bad condition at its place, with a hint.

use std::time::Duration;

/// The window of a counted figure written without one (`restarts > 3`).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);

/// A parsed `when:`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub figure: Figure,
    /// The comparison of a counted figure; none for a fact.
    pub test: Option<(Op, f64)>,
}

/// What a condition looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    BackupFailed,
    VerifyFailed,
    DeployFailed,
    Unhealthy,
    /// Restarts of the service's replicas within the window.
    Restarts(Duration),
    /// 5xx answers / answers of the service's routes within the window.
    ErrorRate(Duration),
    /// The 99th percentile of the service's routes' latency, in ms.
    P99Ms(Duration),
    /// Resident memory of the service's replicas, in MiB.
    MemoryMb,
}

/// Every figure's name, as written, with what it takes.
pub const FIGURES: [(&str, Kind); 8] = [
    ("backup_failed", Kind::Fact),
    ("verify_failed", Kind::Fact),
    ("deploy_failed", Kind::Fact),
    ("unhealthy", Kind::Fact),
    ("restarts", Kind::Windowed),
    ("error_rate", Kind::Windowed),
    ("p99_ms", Kind::Windowed),
    ("memory_mb", Kind::Gauge),
];

/// How a figure is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Alone: `backup_failed`.
    Fact,
    /// With a window and a comparison: `restarts[10m] > 3`.
    Windowed,
    /// With a comparison: `memory_mb > 512`.
    Gauge,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
}

impl Figure {
    /// Whether the daemon evaluates it (the others load, with a warning):
    /// every figure of this build; one added to the language before the
    /// daemon reads it returns `false` here.
    pub fn evaluated(self) -> bool {
        match self {
            Figure::BackupFailed
            | Figure::VerifyFailed
            | Figure::DeployFailed
            | Figure::Unhealthy
            | Figure::Restarts(_)
            | Figure::ErrorRate(_)
            | Figure::P99Ms(_)
            | Figure::MemoryMb => true,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Figure::BackupFailed => "backup_failed",
            Figure::VerifyFailed => "verify_failed",
            Figure::DeployFailed => "deploy_failed",
            Figure::Unhealthy => "unhealthy",
            Figure::Restarts(_) => "restarts",
            Figure::ErrorRate(_) => "error_rate",
            Figure::P99Ms(_) => "p99_ms",
            Figure::MemoryMb => "memory_mb",
        }
    }
}

/// Why a `when:` does not parse, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionError {
    pub message: String,
    pub hint: String,
}

fn problem(message: impl Into<String>, hint: impl Into<String>) -> ConditionError {
    ConditionError {
        message: message.into(),
        hint: hint.into(),
    }
}

/// The names of every figure, for hints.
fn names() -> String {
    FIGURES.map(|(n, _)| n).join(", ")
}

impl std::str::FromStr for Condition {
    type Err = ConditionError;

    fn from_str(text: &str) -> Result<Condition, ConditionError> {
        let t = text.trim();
        let name_end = t
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(t.len());
        let (name, mut rest) = t.split_at(name_end);
        if name.is_empty() {
            return Err(problem(
                format!("`{t}` does not start with a figure"),
                format!(
                    "write a figure, e.g. `backup_failed` or `restarts[10m] > 3`; the figures are {}",
                    names()
                ),
            ));
        }
        let Some(&(_, kind)) = FIGURES.iter().find(|(n, _)| *n == name) else {
            let hint = match crate::diag::suggest(name, FIGURES.map(|(n, _)| n)) {
                Some(s) => format!("did you mean `{s}`? The figures are {}", names()),
                None => format!("the figures are {}", names()),
            };
            return Err(problem(
                format!("`{name}` is not a figure cove knows"),
                hint,
            ));
        };
        rest = rest.trim_start();
        let mut window = None;
        if let Some(after) = rest.strip_prefix('[') {
            let Some((w, after)) = after.split_once(']') else {
                return Err(problem(
                    format!("the window of `{name}` has no closing `]`"),
                    format!("write e.g. `{name}[5m]`"),
                ));
            };
            if kind != Kind::Windowed {
                return Err(problem(
                    format!("`{name}` takes no window"),
                    format!("write `{name}` without `[{w}]`"),
                ));
            }
            let d = crate::units::parse_duration(w.trim()).map_err(|e| {
                problem(
                    format!("the window of `{name}`: {e}"),
                    "write a duration such as `5m` or `1h`",
                )
            })?;
            if d.is_zero() {
                return Err(problem(
                    format!("the window of `{name}` is 0: nothing could be counted in it"),
                    "give a positive duration such as `5m`",
                ));
            }
            window = Some(d);
            rest = after.trim_start();
        }
        let figure = match (name, window) {
            ("backup_failed", _) => Figure::BackupFailed,
            ("verify_failed", _) => Figure::VerifyFailed,
            ("deploy_failed", _) => Figure::DeployFailed,
            ("unhealthy", _) => Figure::Unhealthy,
            ("memory_mb", _) => Figure::MemoryMb,
            ("restarts", w) => Figure::Restarts(w.unwrap_or(DEFAULT_WINDOW)),
            ("error_rate", w) => Figure::ErrorRate(w.unwrap_or(DEFAULT_WINDOW)),
            (_, w) => Figure::P99Ms(w.unwrap_or(DEFAULT_WINDOW)),
        };
        if kind == Kind::Fact {
            if rest.is_empty() {
                return Ok(Condition { figure, test: None });
            }
            return Err(problem(
                format!("`{name}` is a fact (it holds or not) and takes no comparison: `{rest}`"),
                format!("write `{name}` alone"),
            ));
        }
        let (op, number) = [(">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt)]
            .iter()
            .find_map(|(w, op)| rest.strip_prefix(w).map(|n| (*op, n.trim())))
            .ok_or_else(|| {
                problem(
                    if rest.is_empty() {
                        format!("`{name}` needs a comparison")
                    } else {
                        format!("`{rest}` is not a comparison")
                    },
                    format!(
                        "compare with `>`, `>=`, `<` or `<=` and a number, e.g. `{name}{} > 3`",
                        bracket(window)
                    ),
                )
            })?;
        let threshold: f64 = number
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite())
            .ok_or_else(|| {
                problem(
                    format!("`{number}` is not a number"),
                    "write a number after the comparison, e.g. `> 3` or `> 0.05`",
                )
            })?;
        Ok(Condition {
            figure,
            test: Some((op, threshold)),
        })
    }
}

fn bracket(window: Option<Duration>) -> String {
    window.map_or(String::new(), |w| {
        format!("[{}]", crate::units::format_duration(w))
    })
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let window = match self.figure {
            Figure::Restarts(w) | Figure::ErrorRate(w) | Figure::P99Ms(w) => Some(w),
            _ => None,
        };
        write!(f, "{}{}", self.figure.name(), bracket(window))?;
        if let Some((op, n)) = self.test {
            write!(f, " {} {n}", op.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Condition, ConditionError> {
        t.parse()
    }

    #[test]
    fn facts_and_comparisons_parse() {
        assert_eq!(
            parse(" backup_failed ").unwrap(),
            Condition {
                figure: Figure::BackupFailed,
                test: None
            }
        );
        let c = parse("restarts[10m] > 3").unwrap();
        assert_eq!(c.figure, Figure::Restarts(Duration::from_secs(600)));
        assert_eq!(c.test, Some((Op::Gt, 3.0)));
        assert_eq!(c.to_string(), "restarts[10m0s] > 3");
        let c = parse("error_rate[5m]>=0.05").unwrap();
        assert_eq!(c.test, Some((Op::Ge, 0.05)));
        assert_eq!(parse("memory_mb < 512").unwrap().figure, Figure::MemoryMb);
        assert!(Op::Gt.holds(4.0, 3.0) && !Op::Gt.holds(3.0, 3.0));
        assert!(Op::Le.holds(3.0, 3.0));
    }

    #[test]
    fn bad_conditions_say_what_and_how() {
        let e = parse("restart[10m] > 3").unwrap_err();
        assert!(e.message.contains("`restart` is not a figure"), "{e:?}");
        assert!(e.hint.contains("did you mean `restarts`"), "{e:?}");
        assert!(e.hint.contains("backup_failed"), "{e:?}");
        assert_eq!(
            parse("restarts > 3").unwrap().figure,
            Figure::Restarts(DEFAULT_WINDOW)
        );
        let e = parse("backup_failed > 1").unwrap_err();
        assert!(e.message.contains("takes no comparison"), "{e:?}");
        let e = parse("restarts[10m]").unwrap_err();
        assert!(e.message.contains("needs a comparison"), "{e:?}");
        assert!(e.hint.contains("`restarts[10m0s] > 3`"), "{e:?}");
        assert!(parse("restarts[10m] = 3").is_err());
        assert!(parse("restarts[10m] > lots").is_err());
        assert!(parse("restarts[0s] > 1").is_err());
        assert!(parse("restarts[10 > 1").is_err());
        assert!(parse("unhealthy[5m]").is_err());
        assert!(parse("> 3").is_err());
        assert!(parse("restarts[10m] > NaN").is_err());
    }

    #[test]
    fn which_figures_the_daemon_evaluates() {
        let evaluated: Vec<&str> = FIGURES
            .iter()
            .filter_map(|(n, k)| {
                let t = match k {
                    Kind::Fact => n.to_string(),
                    Kind::Windowed => format!("{n}[1m] > 1"),
                    Kind::Gauge => format!("{n} > 1"),
                };
                parse(&t).unwrap().figure.evaluated().then_some(*n)
            })
            .collect();
        assert_eq!(
            evaluated,
            [
                "backup_failed",
                "verify_failed",
                "deploy_failed",
                "unhealthy",
                "restarts",
                "error_rate",
                "p99_ms",
                "memory_mb"
            ]
        );
    }
}
