//! Rolling deploys: a changed plan replaces the instances batch by batch
//! per its [`UpdatePolicy`] (start-first or stop-first, `parallelism`,
//! `delay`, `monitor`), counts failures against `max_failure_ratio` and
//! applies the `failure_action` (rollback with the `rollback_config`,
//! pause, continue).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::controller::{Ctl, Inst, Interrupted, blind, remove_indexes, stale};
use super::instance::last_lines;
use super::{Outcome, State};

/// A replica being replaced: its new instance's slot, its old instance
/// (start-first: still running), and the plan the old one ran.
struct Pair {
    replica: u32,
    slot: u32,
    old: Option<Inst>,
    before: Arc<ServicePlan>,
}
use crate::plan::{FailureAction, MAX_INSTANCES, ServicePlan, UpdatePolicy};

impl Ctl {
    /// Replaces every instance not running `plan`, batch by batch (all of
    /// them when `all`: a deploy of a command whose artifact is unknown).
    pub(super) async fn roll_out(
        &mut self,
        plan: Arc<ServicePlan>,
        built: bool,
        force: bool,
    ) -> Result<Outcome, Interrupted> {
        if !built {
            let ready = match self.build(&plan).await? {
                Ok(()) => self.with_artifact(plan).await,
                Err(e) => Err(e),
            };
            match ready {
                Ok(p) => return Box::pin(self.roll_out(p, true, force)).await,
                Err(reason) => {
                    self.ctx.say(&self.name, format!("deploy failed: {reason}"));
                    return Ok(Outcome::Failed {
                        reason,
                        undone: false,
                    });
                }
            }
        }
        // Nothing tells old from new: every instance of another revision
        // is replaced.
        let all = force || blind(&plan);
        let Some(previous) = self
            .instances
            .iter()
            .find(|i| stale(i, &plan, all))
            .map(|i| i.plan.clone())
        else {
            return Ok(Outcome::Unchanged);
        };
        self.ctx.say(
            &self.name,
            format!(
                "deploying revision {} (from {}): {}",
                plan.revision,
                previous.revision,
                describe_policy(&plan.update)
            ),
        );
        let result = self.replace(&plan, &plan.update, all).await?;
        match result {
            Ok((replaced, failed)) => {
                self.resize(&plan).await?;
                self.ctx.say(
                    &self.name,
                    deployed_message(plan.revision, replaced, &failed, &plan.update),
                );
                Ok(Outcome::Deployed {
                    replaced,
                    failed,
                    artifact: plan.artifact.clone(),
                })
            }
            Err(reason) => {
                let undone = match plan.update.on_failure {
                    FailureAction::Rollback => {
                        self.ctx.say(
                            &self.name,
                            format!(
                                "deploy of revision {} failed: {reason}; rolling back to revision {}",
                                plan.revision, previous.revision
                            ),
                        );
                        let back = Arc::new(ServicePlan {
                            replicas: plan.replicas,
                            ..(*previous).clone()
                        });
                        let undone = self.replace(&back, &plan.rollback, all).await?;
                        match &undone {
                            Ok(_) => self.ctx.say(
                                &self.name,
                                format!("rolled back to revision {}", previous.revision),
                            ),
                            Err(e) => self.ctx.say(
                                &self.name,
                                format!(
                                    "rollback to revision {} failed too: {e}",
                                    previous.revision
                                ),
                            ),
                        }
                        undone.is_ok()
                    }
                    FailureAction::Pause => {
                        self.ctx.say(
                            &self.name,
                            format!(
                                "deploy of revision {} failed: {reason}; paused (replicas run mixed revisions)",
                                plan.revision
                            ),
                        );
                        false
                    }
                    FailureAction::Continue => false,
                };
                Ok(Outcome::Failed { reason, undone })
            }
        }
    }

    /// Replaces the instances not running `plan` per `policy`; how many
    /// were replaced and the failures it tolerated (`continue`, or within
    /// `max_failure_ratio`; those replicas keep what they ran), or why it
    /// gave up (past `max_failure_ratio`).
    pub(super) async fn replace(
        &mut self,
        plan: &Arc<ServicePlan>,
        policy: &UpdatePolicy,
        all: bool,
    ) -> Result<Result<(u32, Vec<String>), String>, Interrupted> {
        let mut todo: Vec<u32> = self
            .instances
            .iter()
            .filter(|i| stale(i, plan, all))
            .map(|i| i.replica)
            .collect();
        todo.sort_unstable();
        todo.dedup();
        let total = todo.len().max(1);
        let batch = if policy.parallelism == 0 {
            todo.len().max(1)
        } else {
            policy.parallelism as usize
        };
        let mut failures = Vec::new();
        let mut replaced = 0;
        for (n, chunk) in todo.chunks(batch).enumerate() {
            if n > 0 && !policy.delay.is_zero() {
                let delay = policy.delay;
                self.or_stop(tokio::time::sleep(delay)).await?;
            }
            let pairs = self
                .start_batch(plan, policy, chunk, all, &mut failures)
                .await?;
            let verdicts = self.judge(plan, policy, &pairs).await?;
            replaced += self.conclude(plan, pairs, verdicts, &mut failures).await?;
            if !failures.is_empty()
                && failures.len() as f64 / total as f64 > policy.max_failure_ratio
                && policy.on_failure != FailureAction::Continue
            {
                return Ok(Err(failures.join("; ")));
            }
        }
        // Past the ratio it gave up above: what failed here is tolerated.
        Ok(Ok((replaced, failures)))
    }

    /// Starts the new instances of the replicas in `chunk`: beside the old
    /// ones (start-first, in free slots), or in their slots once they are
    /// drained and stopped (stop-first). A replica without a free slot
    /// keeps its old instance and is a failure.
    async fn start_batch(
        &mut self,
        plan: &Arc<ServicePlan>,
        policy: &UpdatePolicy,
        chunk: &[u32],
        all: bool,
        failures: &mut Vec<String>,
    ) -> Result<Vec<Pair>, Interrupted> {
        let olds: Vec<usize> = self
            .instances
            .iter()
            .enumerate()
            .filter(|(_, i)| chunk.contains(&i.replica) && stale(i, plan, all))
            .map(|(k, _)| k)
            .collect();
        let olds: Vec<Inst> = remove_indexes(&mut self.instances, olds);
        let mut pairs = Vec::new();
        if policy.start_first {
            let taken: Vec<u32> = olds.iter().map(|o| o.slot).collect();
            for old in olds {
                let Some(slot) = self.free_slot(&taken) else {
                    failures.push(format!(
                        "replica {}: no free address slot (at most {MAX_INSTANCES} instances)",
                        old.replica
                    ));
                    self.instances.push(old);
                    continue;
                };
                self.spawn(plan, old.replica, slot, 0);
                pairs.push(Pair {
                    replica: old.replica,
                    slot,
                    before: old.plan.clone(),
                    old: Some(old),
                });
            }
            return Ok(pairs);
        }
        let slots: Vec<(u32, u32, Arc<ServicePlan>)> = olds
            .iter()
            .map(|o| (o.replica, o.slot, o.plan.clone()))
            .collect();
        self.ctx.say(
            &self.name,
            format!("stopping replica(s) {} (stop-first)", list_replicas(&slots)),
        );
        self.retire(olds).await?;
        for (replica, slot, before) in slots {
            self.spawn(plan, replica, slot, 0);
            pairs.push(Pair {
                replica,
                slot,
                old: None,
                before,
            });
        }
        Ok(pairs)
    }

    /// Waits for each new instance of `pairs` to serve, then watches those
    /// that do for `monitor`: a verdict for each.
    async fn judge(
        &mut self,
        plan: &ServicePlan,
        policy: &UpdatePolicy,
        pairs: &[Pair],
    ) -> Result<Vec<Result<(), String>>, Interrupted> {
        let slots: Vec<u32> = pairs.iter().map(|p| p.slot).collect();
        let mut verdicts = self.wait_ready(plan, &slots).await?;
        if !policy.monitor.is_zero() && verdicts.iter().any(Result::is_ok) {
            let ok: Vec<u32> = slots
                .iter()
                .zip(&verdicts)
                .filter(|(_, v)| v.is_ok())
                .map(|(s, _)| *s)
                .collect();
            let watched = self.monitor(plan, &ok, policy.monitor).await?;
            for (s, v) in slots.iter().zip(verdicts.iter_mut()) {
                if let Some(reason) = watched.get(s) {
                    *v = Err(reason.clone());
                }
            }
        }
        Ok(verdicts)
    }

    /// Acts on a batch's verdicts: the old instance of each new one that
    /// serves is drained and stopped; a new one that failed is, and its
    /// old one stays (start-first) or comes back (stop-first). How many
    /// were replaced; the failures go to `failures`.
    async fn conclude(
        &mut self,
        plan: &ServicePlan,
        pairs: Vec<Pair>,
        verdicts: Vec<Result<(), String>>,
        failures: &mut Vec<String>,
    ) -> Result<u32, Interrupted> {
        let mut replaced = 0;
        let mut retire = Vec::new();
        for (pair, verdict) in pairs.into_iter().zip(verdicts) {
            let Pair {
                replica,
                slot,
                old,
                before,
            } = pair;
            let Err(reason) = verdict else {
                replaced += 1;
                let verdict = if plan.health.is_some() {
                    "healthy"
                } else {
                    "ready"
                };
                self.ctx.say(
                    &self.name,
                    format!(
                        "replica {replica}: revision {} is {verdict} ({})",
                        plan.revision,
                        plan.address(slot)
                    ),
                );
                retire.extend(old);
                continue;
            };
            let tail = self
                .instances
                .iter()
                .find(|i| i.slot == slot)
                .map(|i| last_lines(&i.tail))
                .unwrap_or_default();
            failures.push(format!("replica {replica}: {reason}{tail}"));
            // Its old instance stays (start-first) or comes back.
            let k = self.instances.iter().position(|i| i.slot == slot);
            let failed: Vec<Inst> = k
                .map(|k| vec![self.instances.remove(k)])
                .unwrap_or_default();
            self.retire(failed).await?;
            match old {
                Some(old) => self.instances.push(old),
                None => self.spawn(&before, replica, slot, 0),
            }
        }
        self.retire(retire).await?;
        Ok(replaced)
    }

    /// Waits until the instances in `slots` serve: `Ok`, or why not (it
    /// exited, turned unhealthy, failed, or took too long).
    pub(super) async fn wait_ready(
        &mut self,
        plan: &ServicePlan,
        slots: &[u32],
    ) -> Result<Vec<Result<(), String>>, Interrupted> {
        let patience = ready_timeout(plan);
        let deadline = Instant::now() + patience;
        let mut states = self.ctx.states.subscribe();
        loop {
            let now: Vec<Option<Result<(), String>>> = {
                let all = states.borrow_and_update();
                let list = all.get(&self.name).cloned().unwrap_or_default();
                slots
                    .iter()
                    .map(|slot| {
                        let st = list.iter().find(|s| s.slot == *slot)?;
                        verdict(&st.state, st.serves() || st.state == State::Completed)
                    })
                    .collect()
            };
            if now.iter().all(Option::is_some) {
                return Ok(now.into_iter().flatten().collect());
            }
            if Instant::now() >= deadline {
                let all = states.borrow();
                let list = all.get(&self.name).cloned().unwrap_or_default();
                return Ok(now
                    .into_iter()
                    .zip(slots)
                    .map(|(v, slot)| {
                        v.unwrap_or_else(|| {
                            let refusing = list.iter().find_map(|s| match s.state {
                                State::Refusing { port } if s.slot == *slot => Some(port),
                                _ => None,
                            });
                            Err(match refusing {
                                Some(port) => format!(
                                    "not ready within {patience:?}: running but not accepting connections on :{port}"
                                ),
                                None => format!(
                                    "not {} within {patience:?}",
                                    if plan.health.is_some() {
                                        "healthy"
                                    } else {
                                        "ready"
                                    }
                                ),
                            })
                        })
                    })
                    .collect());
            }
            let changed = tokio::time::timeout_at(deadline, states.changed());
            let _ = self.or_stop(changed).await?;
        }
    }

    /// Watches the instances in `slots` for `period`; those that stopped
    /// serving, with why.
    pub(super) async fn monitor(
        &mut self,
        plan: &ServicePlan,
        slots: &[u32],
        period: Duration,
    ) -> Result<HashMap<u32, String>, Interrupted> {
        self.ctx.say(
            &self.name,
            format!("watching revision {} for {period:?}", plan.revision),
        );
        let deadline = Instant::now() + period;
        let mut states = self.ctx.states.subscribe();
        let mut failed = HashMap::new();
        loop {
            {
                let all = states.borrow_and_update();
                for st in all.get(&self.name).into_iter().flatten() {
                    if slots.contains(&st.slot)
                        && let Some(Err(reason)) = verdict(&st.state, true)
                    {
                        failed
                            .entry(st.slot)
                            .or_insert(format!("during monitor: {reason}"));
                    }
                }
            }
            if Instant::now() >= deadline || failed.len() == slots.len() {
                return Ok(failed);
            }
            let changed = tokio::time::timeout_at(deadline, states.changed());
            let _ = self.or_stop(changed).await?;
        }
    }
}

/// `Some(Ok)` when an instance in `state` serves (`serving`), `Some(Err)`
/// when it will not without a restart, `None` while it may still.
pub(super) fn verdict(state: &State, serving: bool) -> Option<Result<(), String>> {
    match state {
        _ if serving && state.is_up() => Some(Ok(())),
        State::Completed if serving => Some(Ok(())),
        State::Unhealthy { check } => Some(Err(format!("unhealthy: {check}"))),
        State::Restarting { code, .. } => Some(Err(match code {
            Some(c) => format!("exited with code {c}"),
            None => "was killed by a signal".into(),
        })),
        State::Failed { reason } => Some(Err(reason.clone())),
        State::Completed => Some(Err("exited with code 0".into())),
        State::Stopping | State::Stopped => Some(Err("was stopped".into())),
        _ => None,
    }
}

/// How long a new instance may take to serve: its health check's start
/// period and retries, or its `ready_after`; at least 60 s.
pub(super) fn ready_timeout(plan: &ServicePlan) -> Duration {
    let checks = plan.health.as_ref().map_or(plan.ready_after, |h| {
        h.start_period + (h.interval + h.timeout) * (h.retries + 1)
    });
    checks.max(Duration::from_secs(60))
}

/// What a deploy that went through says: every replica replaced, or which
/// failures its policy tolerated.
pub(super) fn deployed_message(
    revision: u64,
    replaced: u32,
    failed: &[String],
    p: &UpdatePolicy,
) -> String {
    if failed.is_empty() {
        return format!("revision {revision} runs on every replica ({replaced} replaced)");
    }
    let why = if p.on_failure == FailureAction::Continue {
        "failure_action: continue".to_string()
    } else {
        format!("max_failure_ratio: {}", p.max_failure_ratio)
    };
    format!(
        "revision {revision} runs on {replaced} of {} replicas; {} kept its previous revision ({why}): {}",
        replaced as usize + failed.len(),
        failed.len(),
        failed.join("; ")
    )
}

pub(super) fn describe_policy(p: &UpdatePolicy) -> String {
    format!(
        "{}, {} at a time{}{}, on failure {}",
        if p.start_first {
            "start-first"
        } else {
            "stop-first"
        },
        if p.parallelism == 0 {
            "all".to_string()
        } else {
            p.parallelism.to_string()
        },
        if p.delay.is_zero() {
            String::new()
        } else {
            format!(", {:?} apart", p.delay)
        },
        if p.monitor.is_zero() {
            String::new()
        } else {
            format!(", watched {:?}", p.monitor)
        },
        match p.on_failure {
            FailureAction::Rollback => "roll back",
            FailureAction::Pause => "pause",
            FailureAction::Continue => "continue",
        }
    )
}

pub(super) fn list_replicas(slots: &[(u32, u32, Arc<ServicePlan>)]) -> String {
    slots
        .iter()
        .map(|(r, _, _)| r.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
