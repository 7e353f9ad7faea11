//! An alert rule's state machine and its deliveries' bookkeeping, pure
//! (time is given, in milliseconds since the Unix epoch): the daemon's
//! evaluator (`server/alerts.rs`) feeds it whether the condition holds,
//! stores the [`AlertRecord`] after every change, and delivers what
//! [`AlertRecord::due`] says.
//!
//! ```text
//!             holds                 held `for`
//! inactive ──────────▶ pending ──────────────▶ firing
//!    ▲                   │ no longer holds       │ no longer holds
//!    └───────────────────┘ (resolved, if it      ▼
//!                           had fired before)  resolved ──holds──▶ pending
//! ```
//!
//! With `for: 0` (or none) a condition that holds fires at once. A firing
//! alert and its resolution are each one notification, per sink (webhook,
//! command, Alertmanager); a sink's [`Delivery`] says which of them it has
//! had, so nothing delivered is sent again after a restart and nothing
//! undelivered is lost: a failed delivery is tried again after a backoff
//! (1 s doubling to 5 min) up to [`MAX_ATTEMPTS`] times, then given up
//! (logged). Alertmanager also hears a firing alert again every
//! [`RESEND`], as it expects of a client.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Tries of one notification to one sink before it is given up.
pub const MAX_ATTEMPTS: u32 = 10;

/// Longest wait between two tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// How often a firing alert is sent to Alertmanager again.
pub const RESEND: Duration = Duration::from_secs(60);

/// Where an alert's state is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Its condition does not hold (and never fired, or fired and resolved
    /// before: see [`AlertRecord::resolved_ms`]).
    Inactive,
    /// Its condition holds, not yet for `for`.
    Pending,
    Firing,
    /// It fired, and its condition no longer holds.
    Resolved,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Inactive => "inactive",
            Phase::Pending => "pending",
            Phase::Firing => "firing",
            Phase::Resolved => "resolved",
        }
    }
}

/// What a turn changed, to be recorded as an event and notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Fired,
    Resolved,
}

/// A notification: an alert fired (at `since`) or that firing resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub status: Status,
    /// When the firing began (it names the episode).
    pub since_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// Where notifications go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sink {
    Webhook,
    Command,
    Alertmanager,
}

impl Sink {
    pub fn as_str(self) -> &'static str {
        match self {
            Sink::Webhook => "webhook",
            Sink::Command => "command",
            Sink::Alertmanager => "alertmanager",
        }
    }
}

/// One sink's deliveries of one alert.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The last notification it had (or that was given up).
    pub done: Option<Notice>,
    /// When it was last sent successfully (Alertmanager's re-sends).
    pub sent_ms: u64,
    /// Failed tries of the notification due now.
    pub attempts: u32,
    /// Not before this time (the backoff).
    pub next_ms: u64,
    /// Why the last try failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One alert rule of one service, as the daemon keeps it (the store's
/// `alerts` table, key `<project>|<service>|<name>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub service: String,
    pub name: String,
    /// `when:` as written.
    pub condition: String,
    pub phase: Phase,
    /// When the condition began to hold (pending or firing).
    pub holds_ms: Option<u64>,
    /// When the latest firing began.
    pub fired_ms: Option<u64>,
    /// When the latest firing resolved (none while it fires).
    pub resolved_ms: Option<u64>,
    /// What the figure was at the last turn it held (or when it resolved).
    pub value: String,
    /// Each sink's deliveries.
    #[serde(default)]
    pub deliveries: BTreeMap<Sink, Delivery>,
}

impl AlertRecord {
    pub fn new(service: &str, name: &str, condition: &str) -> AlertRecord {
        AlertRecord {
            service: service.to_string(),
            name: name.to_string(),
            condition: condition.to_string(),
            phase: Phase::Inactive,
            holds_ms: None,
            fired_ms: None,
            resolved_ms: None,
            value: String::new(),
            deliveries: BTreeMap::new(),
        }
    }

    /// One turn: whether the condition holds now (with its `value`), held
    /// `hold_for` before it fires. What changed, if anything worth an event.
    pub fn step(
        &mut self,
        holds: bool,
        value: &str,
        hold_for: Duration,
        now_ms: u64,
    ) -> Option<Change> {
        let held = |since: u64| now_ms.saturating_sub(since) >= hold_for.as_millis() as u64;
        if holds {
            self.value = value.to_string();
        }
        match (self.phase, holds) {
            (Phase::Inactive | Phase::Resolved, true) => {
                self.holds_ms = Some(now_ms);
                if hold_for.is_zero() {
                    self.fire(now_ms);
                    return Some(Change::Fired);
                }
                self.phase = Phase::Pending;
                None
            }
            (Phase::Pending, true) => {
                if held(self.holds_ms.unwrap_or(now_ms)) {
                    self.fire(now_ms);
                    return Some(Change::Fired);
                }
                None
            }
            (Phase::Pending, false) => {
                self.holds_ms = None;
                self.phase = if self.fired_ms.is_some() {
                    Phase::Resolved
                } else {
                    Phase::Inactive
                };
                None
            }
            (Phase::Firing, false) => {
                self.resolve(now_ms, value);
                Some(Change::Resolved)
            }
            (Phase::Firing, true) | (Phase::Inactive | Phase::Resolved, false) => None,
        }
    }

    /// The rule is gone from the file, or cannot be evaluated any more:
    /// a firing alert resolves (its resolution is still notified).
    pub fn retire(&mut self, now_ms: u64, why: &str) -> Option<Change> {
        match self.phase {
            Phase::Firing => {
                self.resolve(now_ms, why);
                Some(Change::Resolved)
            }
            Phase::Pending => {
                self.step(false, why, Duration::ZERO, now_ms);
                None
            }
            _ => None,
        }
    }

    fn fire(&mut self, now_ms: u64) {
        self.phase = Phase::Firing;
        self.fired_ms = Some(now_ms);
        self.resolved_ms = None;
    }

    fn resolve(&mut self, now_ms: u64, value: &str) {
        self.phase = Phase::Resolved;
        self.resolved_ms = Some(now_ms);
        self.holds_ms = None;
        self.value = value.to_string();
    }

    /// The notification every sink should have had by now: the latest
    /// firing or its resolution (none before the first firing).
    pub fn notice(&self) -> Option<Notice> {
        let since_ms = self.fired_ms?;
        let status = match self.resolved_ms {
            Some(_) => Status::Resolved,
            None => Status::Firing,
        };
        Some(Notice { status, since_ms })
    }

    /// What to send to `sink` now, if anything: the notice it has not had
    /// (after its backoff), or Alertmanager's re-send of a firing alert.
    pub fn due(&self, sink: Sink, now_ms: u64) -> Option<Notice> {
        let notice = self.notice()?;
        let d = self.deliveries.get(&sink).cloned().unwrap_or_default();
        if now_ms < d.next_ms {
            return None;
        }
        if d.done != Some(notice) {
            return Some(notice);
        }
        let resend = sink == Sink::Alertmanager
            && notice.status == Status::Firing
            && now_ms.saturating_sub(d.sent_ms) >= RESEND.as_millis() as u64;
        resend.then_some(notice)
    }

    /// How a try of `notice` to `sink` ended. `Err`: whether it was given
    /// up (after [`MAX_ATTEMPTS`]).
    pub fn delivered(
        &mut self,
        sink: Sink,
        notice: Notice,
        outcome: Result<(), String>,
        now_ms: u64,
    ) -> Result<(), bool> {
        let d = self.deliveries.entry(sink).or_default();
        match outcome {
            Ok(()) => {
                *d = Delivery {
                    done: Some(notice),
                    sent_ms: now_ms,
                    attempts: 0,
                    next_ms: 0,
                    error: None,
                };
                Ok(())
            }
            Err(e) => {
                d.attempts += 1;
                d.error = Some(e);
                let gave_up = d.attempts >= MAX_ATTEMPTS;
                if gave_up {
                    d.done = Some(notice);
                    d.attempts = 0;
                    d.next_ms = 0;
                } else {
                    d.next_ms = now_ms + backoff(d.attempts).as_millis() as u64;
                }
                Err(gave_up)
            }
        }
    }
}

/// The wait after the `attempts`-th failed try: 1 s, doubling, at most
/// [`MAX_BACKOFF`].
pub fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.saturating_sub(1).min(16)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1000;

    fn rule() -> AlertRecord {
        AlertRecord::new("db", "backups", "backup_failed")
    }

    #[test]
    fn without_for_it_fires_at_once_and_resolves_when_it_no_longer_holds() {
        let mut r = rule();
        assert_eq!(r.step(false, "", Duration::ZERO, S), None);
        assert_eq!(r.phase, Phase::Inactive);
        assert_eq!(r.notice(), None);
        assert_eq!(
            r.step(true, "failed", Duration::ZERO, 2 * S),
            Some(Change::Fired)
        );
        assert_eq!(r.phase, Phase::Firing);
        assert_eq!(r.value, "failed");
        assert_eq!(r.step(true, "failed", Duration::ZERO, 3 * S), None);
        let firing = Notice {
            status: Status::Firing,
            since_ms: 2 * S,
        };
        assert_eq!(r.notice(), Some(firing));
        assert_eq!(
            r.step(false, "ok", Duration::ZERO, 4 * S),
            Some(Change::Resolved)
        );
        assert_eq!(r.phase, Phase::Resolved);
        assert_eq!(r.resolved_ms, Some(4 * S));
        assert_eq!(
            r.notice(),
            Some(Notice {
                status: Status::Resolved,
                since_ms: 2 * S
            })
        );
        // Again: a new episode.
        assert_eq!(
            r.step(true, "x", Duration::ZERO, 5 * S),
            Some(Change::Fired)
        );
        assert_eq!(r.notice().unwrap().since_ms, 5 * S);
        assert_eq!(r.resolved_ms, None);
    }

    #[test]
    fn with_for_it_waits_and_a_blip_never_fires() {
        let hold = Duration::from_secs(30);
        let mut r = rule();
        assert_eq!(r.step(true, "1", hold, 0), None);
        assert_eq!(r.phase, Phase::Pending);
        assert_eq!(r.step(true, "1", hold, 29 * S), None);
        assert_eq!(r.step(false, "0", hold, 30 * S), None);
        assert_eq!(r.phase, Phase::Inactive);
        assert_eq!(r.notice(), None);
        assert_eq!(r.step(true, "1", hold, 40 * S), None);
        assert_eq!(r.step(true, "1", hold, 69 * S), None);
        assert_eq!(r.step(true, "1", hold, 70 * S), Some(Change::Fired));
        assert_eq!(r.fired_ms, Some(70 * S));
        assert_eq!(r.holds_ms, Some(40 * S));
        assert_eq!(r.step(false, "0", hold, 80 * S), Some(Change::Resolved));
        // Pending again after a resolution, then not: back to resolved.
        assert_eq!(r.step(true, "1", hold, 90 * S), None);
        assert_eq!(r.step(false, "0", hold, 95 * S), None);
        assert_eq!(r.phase, Phase::Resolved);
        assert_eq!(r.notice().unwrap().status, Status::Resolved);
    }

    #[test]
    fn each_sink_gets_each_notice_once_with_retries_and_alertmanager_resends() {
        let mut r = rule();
        r.step(true, "failed", Duration::ZERO, 0);
        let n = r.notice().unwrap();
        assert_eq!(r.due(Sink::Webhook, 0), Some(n));
        // Fails: backed off 1 s, then 2 s.
        assert_eq!(
            r.delivered(Sink::Webhook, n, Err("refused".into()), 0),
            Err(false)
        );
        assert_eq!(r.due(Sink::Webhook, 999), None);
        assert_eq!(r.due(Sink::Webhook, S), Some(n));
        assert_eq!(
            r.delivered(Sink::Webhook, n, Err("refused".into()), S),
            Err(false)
        );
        assert_eq!(r.due(Sink::Webhook, 2 * S), None);
        assert_eq!(r.due(Sink::Webhook, 3 * S), Some(n));
        assert_eq!(r.delivered(Sink::Webhook, n, Ok(()), 3 * S), Ok(()));
        assert_eq!(r.due(Sink::Webhook, 3 * S), None);
        assert_eq!(
            r.due(Sink::Webhook, 3600 * S),
            None,
            "a webhook hears it once"
        );
        // Alertmanager: again every minute while it fires.
        r.delivered(Sink::Alertmanager, n, Ok(()), 3 * S).unwrap();
        assert_eq!(r.due(Sink::Alertmanager, 62 * S), None);
        assert_eq!(r.due(Sink::Alertmanager, 63 * S), Some(n));
        // The resolution is due to each, once.
        r.step(false, "ok", Duration::ZERO, 70 * S);
        let resolved = r.notice().unwrap();
        assert_eq!(resolved.status, Status::Resolved);
        for sink in [Sink::Webhook, Sink::Alertmanager] {
            assert_eq!(r.due(sink, 70 * S), Some(resolved));
            r.delivered(sink, resolved, Ok(()), 70 * S).unwrap();
            assert_eq!(r.due(sink, 7000 * S), None);
        }
        // The record as stored says the same after a restart.
        let back: AlertRecord = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.due(Sink::Webhook, 9000 * S), None);
    }

    #[test]
    fn a_delivery_that_keeps_failing_is_given_up_after_its_attempts() {
        let mut r = rule();
        r.step(true, "failed", Duration::ZERO, 0);
        let n = r.notice().unwrap();
        let mut now = 0;
        for attempt in 1..MAX_ATTEMPTS {
            assert_eq!(r.due(Sink::Command, now), Some(n), "try {attempt}");
            assert_eq!(
                r.delivered(Sink::Command, n, Err("exit 1".into()), now),
                Err(false)
            );
            now = r.deliveries[&Sink::Command].next_ms;
        }
        assert_eq!(
            r.delivered(Sink::Command, n, Err("exit 1".into()), now),
            Err(true)
        );
        assert_eq!(r.due(Sink::Command, now + 3600 * S), None);
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }

    #[test]
    fn a_retired_rule_resolves_if_it_fired() {
        let mut r = rule();
        r.step(true, "failed", Duration::ZERO, 0);
        assert_eq!(r.retire(S, "the rule was removed"), Some(Change::Resolved));
        assert_eq!(r.phase, Phase::Resolved);
        let mut p = rule();
        p.step(true, "1", Duration::from_secs(60), 0);
        assert_eq!(p.retire(S, "gone"), None);
        assert_eq!(p.phase, Phase::Inactive);
    }
}
