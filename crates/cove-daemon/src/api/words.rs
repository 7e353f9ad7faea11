//! The closed sets of words the API says: a replica's state and health,
//! an event's state, how a command ended, a route's protocol. Each is an
//! enum written as the word it was when these were strings, so the JSON
//! does not change; code matches on variants, and the compiler finds every
//! place a new one must be handled.
//!
//! A word this build does not know (a newer daemon's new state, read by an
//! older CLI; a record a newer daemon left in the store) is not an error:
//! it becomes `Other(word)`, shown and written back as it came, and counts
//! as none of the known ones (not running, not finished, not failed).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Defines an enum of words: `as_str`, `From<&str>` (an unknown word is
/// `Other`), `Display`, and serde as the bare word.
macro_rules! words {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $word:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A word this build does not know (from a newer cove), kept
            /// as it came. Never one of the words above.
            Other(String),
        }

        impl $name {
            /// Every known word, in order.
            pub const KNOWN: &[$name] = &[$($name::$variant),*];

            /// The word, as the API writes it.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $word, )*
                    $name::Other(word) => word,
                }
            }
        }

        impl From<&str> for $name {
            fn from(word: &str) -> $name {
                match word {
                    $( $word => $name::$variant, )*
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl From<String> for $name {
            fn from(word: String) -> $name {
                match $name::from(word.as_str()) {
                    $name::Other(_) => $name::Other(word),
                    known => known,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                String::deserialize(d).map($name::from)
            }
        }
    };
}

words! {
    /// A replica's state (its health is separate: [`Health`]).
    pub enum ReplicaState {
        /// Waiting for its dependencies.
        Waiting = "waiting",
        /// Being started.
        Starting = "starting",
        /// Its process runs (healthy or not, ready or not).
        Running = "running",
        /// Exited; started again after a delay.
        Restarting = "restarting",
        /// Exited 0 and is not restarted.
        Completed = "completed",
        /// Will not run again (a non-zero exit, a failed start or dependency).
        Failed = "failed",
        /// Signalled to stop, within its grace period.
        Stopping = "stopping",
        /// Stopped on request.
        Stopped = "stopped",
        /// Frozen on request (`cove pause`) until `cove unpause`.
        Paused = "paused",
    }
}

impl ReplicaState {
    /// Ended: it runs no more unless asked (completed, failed, stopped).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            ReplicaState::Completed | ReplicaState::Failed | ReplicaState::Stopped
        )
    }
}

impl From<&cove_runtime::supervisor::State> for ReplicaState {
    fn from(state: &cove_runtime::supervisor::State) -> ReplicaState {
        use cove_runtime::supervisor::State;
        match state {
            State::Waiting => ReplicaState::Waiting,
            State::Starting => ReplicaState::Starting,
            State::Running
            | State::Healthy
            | State::Ready
            | State::Refusing { .. }
            | State::Unhealthy { .. } => ReplicaState::Running,
            State::Restarting { .. } => ReplicaState::Restarting,
            State::Completed => ReplicaState::Completed,
            State::Failed { .. } => ReplicaState::Failed,
            State::Stopping => ReplicaState::Stopping,
            State::Stopped => ReplicaState::Stopped,
            State::Paused => ReplicaState::Paused,
        }
    }
}

words! {
    /// A replica's health.
    pub enum Health {
        /// No health check, or not running: written as an empty string.
        Unchecked = "",
        /// Checked, no verdict yet.
        Starting = "starting",
        Healthy = "healthy",
        Unhealthy = "unhealthy",
    }
}

words! {
    /// How a deploy, a scaling or a rollback ended for a service.
    pub enum OutcomeKind {
        /// It was not running and started.
        Started = "started",
        /// Its new revision was rolled out.
        Deployed = "deployed",
        /// It already ran what was asked.
        Unchanged = "unchanged",
        /// Its replica count changed.
        Scaled = "scaled",
        /// It did not do what was asked.
        Failed = "failed",
        /// It was stopped while it ran.
        Stopped = "stopped",
    }
}

words! {
    /// What a route carries.
    pub enum Protocol {
        Http = "http",
        Grpc = "grpc",
        Tcp = "tcp",
    }
}

impl From<cove_runtime::routes::Protocol> for Protocol {
    fn from(p: cove_runtime::routes::Protocol) -> Protocol {
        use cove_runtime::routes::Protocol as Planned;
        match p {
            Planned::Http => Protocol::Http,
            Planned::Grpc => Protocol::Grpc,
            Planned::Tcp => Protocol::Tcp,
        }
    }
}

/// What an event says: a replica's new state, or a step of a deploy or a
/// scaling (written `deploy`; replica 0, its `detail` says what).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventState {
    Replica(ReplicaState),
    Deploy,
    /// A scheduled backup was taken (replica 0; `detail` says which).
    Backup,
    /// A scheduled backup failed (replica 0; `detail` says why).
    BackupFailed,
    /// A scheduled restore drill succeeded.
    Verify,
    /// A scheduled restore drill failed.
    VerifyFailed,
    /// A deploy of the service ended with its new revision running
    /// (replica 0; `detail` says how).
    Deployed,
    /// A deploy of the service failed (replica 0; `detail` says why).
    DeployFailed,
    /// An alert rule of the service fired (replica 0; `detail` says which).
    Alert,
    /// A firing alert resolved.
    AlertResolved,
}

impl EventState {
    /// The words of the events that are not a replica's state.
    const SERVICE_WORDS: [(&'static str, EventState); 9] = [
        ("deploy", EventState::Deploy),
        ("backup", EventState::Backup),
        ("backup-failed", EventState::BackupFailed),
        ("verify", EventState::Verify),
        ("verify-failed", EventState::VerifyFailed),
        ("deployed", EventState::Deployed),
        ("deploy-failed", EventState::DeployFailed),
        ("alert", EventState::Alert),
        ("alert-resolved", EventState::AlertResolved),
    ];

    pub fn as_str(&self) -> &str {
        match self {
            EventState::Replica(s) => s.as_str(),
            EventState::Deploy => "deploy",
            EventState::Backup => "backup",
            EventState::BackupFailed => "backup-failed",
            EventState::Verify => "verify",
            EventState::VerifyFailed => "verify-failed",
            EventState::Deployed => "deployed",
            EventState::DeployFailed => "deploy-failed",
            EventState::Alert => "alert",
            EventState::AlertResolved => "alert-resolved",
        }
    }

    /// The replica's state, unless it is a deploy's step or a scheduled
    /// backup's outcome.
    pub fn replica(&self) -> Option<&ReplicaState> {
        match self {
            EventState::Replica(s) => Some(s),
            _ => None,
        }
    }

    /// A failure (a scheduled backup's or drill's): shown as an error.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            EventState::BackupFailed
                | EventState::VerifyFailed
                | EventState::DeployFailed
                | EventState::Alert
        )
    }
}

impl From<ReplicaState> for EventState {
    fn from(s: ReplicaState) -> EventState {
        EventState::Replica(s)
    }
}

impl From<&str> for EventState {
    fn from(word: &str) -> EventState {
        match EventState::SERVICE_WORDS.iter().find(|(w, _)| *w == word) {
            Some((_, s)) => s.clone(),
            None => EventState::Replica(word.into()),
        }
    }
}

impl From<String> for EventState {
    fn from(word: String) -> EventState {
        match EventState::SERVICE_WORDS.iter().find(|(w, _)| *w == word) {
            Some((_, s)) => s.clone(),
            None => EventState::Replica(word.into()),
        }
    }
}

impl std::fmt::Display for EventState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<EventState, D::Error> {
        String::deserialize(d).map(EventState::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each known word reads back as itself; `Other` never holds one.
    fn round_trips<T>(known: &[T])
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug + Clone,
        T: for<'a> From<&'a str>,
    {
        for w in known {
            let json = serde_json::to_string(w).unwrap();
            let back: T = serde_json::from_str(&json).unwrap();
            assert_eq!(&back, w, "{json}");
            let word: String = serde_json::from_str(&json).unwrap();
            assert_eq!(T::from(word.as_str()), *w);
        }
    }

    #[test]
    fn every_known_word_round_trips() {
        round_trips(ReplicaState::KNOWN);
        round_trips(Health::KNOWN);
        round_trips(OutcomeKind::KNOWN);
        round_trips(Protocol::KNOWN);
        for p in [
            cove_runtime::routes::Protocol::Http,
            cove_runtime::routes::Protocol::Grpc,
            cove_runtime::routes::Protocol::Tcp,
        ] {
            assert_eq!(Protocol::from(p).as_str(), p.name());
        }
        let events: Vec<EventState> = ReplicaState::KNOWN
            .iter()
            .cloned()
            .map(EventState::Replica)
            .chain([
                EventState::Deploy,
                EventState::Deployed,
                EventState::DeployFailed,
                EventState::Alert,
                EventState::AlertResolved,
            ])
            .collect();
        round_trips(&events);
        assert_eq!(serde_json::to_string(&Health::Unchecked).unwrap(), r#""""#);
    }

    #[test]
    fn an_unknown_word_is_kept_as_it_came() {
        // A newer daemon's state, read by this CLI: shown and written back
        // as it came, and none of the known ones.
        let s: ReplicaState = serde_json::from_str(r#""hibernating""#).unwrap();
        assert_eq!(s, ReplicaState::Other("hibernating".into()));
        assert_eq!(s.to_string(), "hibernating");
        assert!(!s.is_final());
        assert_ne!(s, ReplicaState::Running);
        assert_eq!(serde_json::to_string(&s).unwrap(), r#""hibernating""#);

        let e: EventState = serde_json::from_str(r#""migrating""#).unwrap();
        assert_eq!(
            e,
            EventState::Replica(ReplicaState::Other("migrating".into()))
        );
        assert_eq!(serde_json::to_string(&e).unwrap(), r#""migrating""#);

        let h: Health = serde_json::from_str(r#""degraded""#).unwrap();
        assert_eq!(h, Health::Other("degraded".into()));
        let o: OutcomeKind = serde_json::from_str(r#""paused""#).unwrap();
        assert_eq!(o, OutcomeKind::Other("paused".into()));
        let p: Protocol = serde_json::from_str(r#""udp""#).unwrap();
        assert_eq!(p.as_str(), "udp");
        // A word that is not a string is still refused.
        assert!(serde_json::from_str::<ReplicaState>("3").is_err());
    }

    #[test]
    fn the_supervisors_states_become_their_words() {
        use cove_runtime::supervisor::State;
        let cases = [
            State::Waiting,
            State::Starting,
            State::Running,
            State::Healthy,
            State::Ready,
            State::Refusing { port: 80 },
            State::Unhealthy { check: "x".into() },
            State::Restarting {
                code: Some(1),
                delay: std::time::Duration::from_secs(1),
            },
            State::Completed,
            State::Failed { reason: "x".into() },
            State::Stopping,
            State::Stopped,
            State::Paused,
        ];
        for s in &cases {
            // The same word the supervisor has for it.
            assert_eq!(ReplicaState::from(s).as_str(), s.name(), "{s:?}");
            assert_eq!(ReplicaState::from(s).is_final(), s.is_final(), "{s:?}");
        }
    }
}
