//! `GET /v1/alerts`: a project's alerts that are pending, firing or
//! resolved ([`AlertView`]), firing first: what `cove alerts` shows.

use serde::{Deserialize, Serialize};

/// One alert rule of a service, as the daemon last evaluated it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertView {
    pub service: String,
    pub name: String,
    /// `when:` as written.
    pub condition: String,
    /// `pending` (holds, not yet for `for`), `firing` or `resolved`.
    pub state: String,
    /// When it fired (pending: when its condition began to hold); RFC 3339, UTC.
    pub since: Option<String>,
    /// When it resolved.
    pub ended: Option<String>,
    /// When its condition began to hold (pending or firing; none once it
    /// no longer holds): `since` minus this is at least its `for`.
    #[serde(default)]
    pub holds_since: Option<String>,
    /// What the figure was (when it fired; when it resolved, why).
    pub value: String,
    /// Each sink of `x-cove.notify` it went to.
    #[serde(default)]
    pub deliveries: Vec<DeliveryView>,
}

/// What a sink had of an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryView {
    /// `webhook`, `command` or `alertmanager`.
    pub sink: String,
    /// The last notification it had (`firing`, `resolved`), if any.
    pub delivered: Option<String>,
    /// Failed tries of the one due now.
    pub attempts: u32,
    /// Why the last try failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
