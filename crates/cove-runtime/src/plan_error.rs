//! Why an app cannot be planned: [`PlanError`], with the field it is
//! about, whether it is about this machine, and whether the file is wrong.
//! A leaf: the plan, the gateway's routes, secrets, habits and the
//! preflight report with it (`plan::PlanError` names it too).

/// Why a service cannot run natively.
/// `service` is empty for a problem of the project (`x-cove` at the top).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    pub service: String,
    pub message: String,
    pub hint: String,
    /// The field it is about, as keys (and list indexes) from the service
    /// (from the top of the file when `service` is empty), e.g. `x-cove`,
    /// `health`, `http`; empty: the service itself. Only to show where.
    pub field: Vec<String>,
    /// About this machine (a program not installed, a system user
    /// missing; the preflight's), not about what is written: `cove
    /// config` warns of it, `cove up` refuses.
    pub machine: bool,
    /// A value the file gets wrong that only the plan or the daemon can
    /// judge (an autoscaling policy, a `tcp` route without `listen`, a TLS
    /// `cert` without its `key`: fields only cove reads): `cove config`
    /// refuses it as `cove up` does.
    /// (Values that do not parse — a misspelt policy, a path without its
    /// `/`, an address without a port — are the loader's errors.)
    /// Otherwise it is something cove cannot run (yet) that Compose
    /// accepts — a UDP port, a config without a file — which `cove
    /// config` only warns of.
    pub written: bool,
}

impl PlanError {
    /// The same, about `field` (keys from the service, or from the top).
    pub fn at(mut self, field: &[&str]) -> PlanError {
        self.field = field.iter().map(|k| k.to_string()).collect();
        self
    }

    /// The same, as a value the file gets wrong (see [`PlanError::written`]).
    pub fn written(mut self) -> PlanError {
        self.written = true;
        self
    }

    /// Keys from the top of a Compose file to what it is about.
    pub fn path(&self) -> Vec<String> {
        let mut path = Vec::new();
        if !self.service.is_empty() {
            path.push("services".to_string());
            path.push(self.service.clone());
        }
        path.extend(self.field.iter().cloned());
        path
    }
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.service.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "service `{}`: {}", self.service, self.message)
        }
    }
}

impl std::error::Error for PlanError {}
