//! A service's controller: one task per service that owns its instances
//! and takes its commands one at a time — a first start, scaling (new
//! replicas in the lowest free slots, the highest drained and stopped),
//! or a rollout ([`super::rollout`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::instance::{Instance, Tail, instance};
use super::{Cmd, Ctx, Mode, Outcome, State, Status};
use crate::plan::{MAX_INSTANCES, ServicePlan};

/// An instance the controller runs: its task, how to stop it, the plan
/// it runs and the tail of its output.
pub(super) struct Inst {
    pub(super) replica: u32,
    pub(super) slot: u32,
    pub(super) plan: Arc<ServicePlan>,
    pub(super) stop: watch::Sender<bool>,
    pub(super) task: JoinHandle<()>,
    pub(super) tail: Tail,
}

/// A service's controller: its instances and what it was last told.
pub(super) struct Ctl {
    pub(super) ctx: Ctx,
    pub(super) name: String,
    pub(super) order: Vec<String>,
    pub(super) instances: Vec<Inst>,
    pub(super) stop: watch::Receiver<bool>,
    /// Restart counts carried over, by replica (first start only).
    pub(super) restarts: HashMap<u32, u32>,
}

/// A command was cut short by a stop.
pub(super) struct Interrupted;

/// A controller's task: its commands one at a time until it is told to
/// stop (or its sender goes), then its instances stopped.
pub(super) async fn controller(mut ctl: Ctl, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
    loop {
        let cmd = tokio::select! {
            biased;
            _ = ctl.stop.changed() => None,
            cmd = cmds.recv() => cmd,
        };
        let Some(Cmd { plan, mode, done }) = cmd else {
            break;
        };
        let outcome = ctl.converge(plan, mode).await.unwrap_or(Outcome::Stopped);
        if let Some(done) = done {
            let _ = done.send(outcome);
        }
        if *ctl.stop.borrow() {
            break;
        }
    }
    ctl.stop_all().await;
}

impl Ctl {
    /// Waits for `fut` unless the controller is told to stop first.
    pub(super) async fn or_stop<T>(
        &mut self,
        fut: impl Future<Output = T>,
    ) -> Result<T, Interrupted> {
        if *self.stop.borrow() {
            return Err(Interrupted);
        }
        tokio::select! {
            v = fut => Ok(v),
            _ = self.stop.changed() => Err(Interrupted),
        }
    }

    pub(super) async fn converge(
        &mut self,
        plan: Arc<ServicePlan>,
        mode: Mode,
    ) -> Result<Outcome, Interrupted> {
        let states = self
            .ctx
            .states
            .borrow()
            .get(&self.name)
            .cloned()
            .unwrap_or_default();
        let alive = self.instances.iter().any(|i| {
            !i.task.is_finished()
                && states
                    .iter()
                    .any(|s| s.slot == i.slot && !s.state.is_final())
        });
        if !alive {
            return self.first_start(plan).await;
        }
        // A plan that knows its artifact (a rollback) is not built again.
        let built = plan.artifact.is_some();
        let plan = if mode != Mode::Converge && !built {
            let built = if mode == Mode::Deploy {
                self.ctx.say(&self.name, "building".into());
                match self.build(&plan).await? {
                    Ok(()) => self.with_artifact(plan).await,
                    Err(e) => Err(e),
                }
            } else {
                self.with_artifact(plan).await
            };
            match built {
                Ok(p) => p,
                Err(reason) => {
                    self.ctx.say(&self.name, format!("deploy failed: {reason}"));
                    return Ok(Outcome::Failed {
                        reason,
                        undone: false,
                    });
                }
            }
        } else {
            plan
        };
        // A deploy cannot tell a change when the command names no file, or
        // when a build runs and the program is not one of the files (the
        // build's output may be anything the program reads).
        let unknown = mode == Mode::Deploy && blind(&plan);
        let force = mode == Mode::Restart;
        let stale = force || unknown || self.instances.iter().any(|i| !i.plan.same_run(&plan));
        if stale {
            return self
                .roll_out(plan, mode != Mode::Converge || built, force)
                .await;
        }
        let count = self.instances.len() as u32;
        // Same run: the policies may still be news (it keeps its revision
        // and artifact).
        for i in &mut self.instances {
            i.plan = Arc::new(ServicePlan {
                replicas: plan.replicas,
                revision: i.plan.revision,
                artifact: i.plan.artifact.clone(),
                ..(*plan).clone()
            });
        }
        let plan = self.instances.first().map_or(plan, |i| i.plan.clone());
        if count == plan.replicas {
            return Ok(Outcome::Unchanged);
        }
        self.scale(&plan, count).await
    }

    /// Inserts the status of a new instance, in replica then slot order.
    pub(super) fn list(&self, plan: &ServicePlan, replica: u32, slot: u32, restarts: u32) {
        let status = Status {
            replica,
            slot,
            revision: plan.revision,
            addr: plan.address(slot),
            retiring: false,
            state: State::Waiting,
            pid: None,
            restarts,
            since: SystemTime::now(),
            checked: plan.health.is_some(),
        };
        let order = &self.order;
        self.ctx.states.send_modify(|s| {
            let list = s.entry(plan.name.clone()).or_default();
            list.retain(|st| st.slot != slot);
            list.push(status);
            list.sort_by_key(|st| (st.replica, st.slot));
            s.sort_by_cached_key(|name, _| order.iter().position(|n| n == name));
        });
    }

    pub(super) fn unlist(&self, slot: u32) {
        self.ctx.states.send_modify(|s| {
            if let Some(list) = s.get_mut(&self.name) {
                list.retain(|st| st.slot != slot);
            }
        });
    }

    /// Starts an instance of `plan` as `replica` in `slot` (listed already
    /// or not).
    pub(super) fn spawn(
        &mut self,
        plan: &Arc<ServicePlan>,
        replica: u32,
        slot: u32,
        restarts: u32,
    ) {
        let listed = self.ctx.states.borrow().get(&self.name).is_some_and(|l| {
            l.iter()
                .any(|s| s.slot == slot && s.revision == plan.revision && !s.state.is_final())
        });
        if !listed {
            self.list(plan, replica, slot, restarts);
        }
        let (stop, stop_rx) = watch::channel(false);
        let tail: Tail = Default::default();
        let task = tokio::spawn(instance(Instance {
            ctx: self.ctx.clone(),
            svc: plan.clone(),
            replica,
            slot,
            restarted: restarts,
            stop: stop_rx,
            tail: tail.clone(),
            in_use: Default::default(),
        }));
        self.instances.push(Inst {
            replica,
            slot,
            plan: plan.clone(),
            stop,
            task,
            tail,
        });
    }

    /// The lowest slot no instance has, nor any of `taken`.
    pub(super) fn free_slot(&self, taken: &[u32]) -> Option<u32> {
        (1..=MAX_INSTANCES)
            .find(|s| self.instances.iter().all(|i| i.slot != *s) && !taken.contains(s))
    }

    pub(super) async fn first_start(
        &mut self,
        plan: Arc<ServicePlan>,
    ) -> Result<Outcome, Interrupted> {
        // What is left of a previous run (finished instances).
        for i in std::mem::take(&mut self.instances) {
            let _ = i.stop.send(true);
            let _ = i.task.await;
        }
        self.ctx.states.send_modify(|s| {
            s.shift_remove(&self.name);
        });
        let restarts = std::mem::take(&mut self.restarts);
        for r in 1..=plan.replicas {
            self.list(&plan, r, r, restarts.get(&r).copied().unwrap_or_default());
        }
        // Replica r in slot r, unless a killed daemon left its container
        // running elsewhere: then there, to be taken over.
        let driver = self.ctx.driver.clone();
        let found = self.or_stop(driver.take_over(&plan)).await?;
        let mut slots: Vec<(u32, u32)> = Vec::new();
        for r in 1..=plan.replicas {
            let slot = found.get(&r).copied().unwrap_or_else(|| {
                (r..)
                    .chain(1..r)
                    .find(|s| !found.values().any(|f| f == s) && slots.iter().all(|(_, t)| t != s))
                    .unwrap_or(r)
            });
            slots.push((r, slot));
        }
        if slots.iter().any(|(r, slot)| r != slot) {
            // Moved in one change: no dependent sees the service missing.
            self.ctx.states.send_modify(|s| {
                if let Some(list) = s.get_mut(&self.name) {
                    for st in list.iter_mut() {
                        if let Some((_, slot)) = slots.iter().find(|(r, _)| *r == st.replica) {
                            st.slot = *slot;
                            st.addr = plan.address(*slot);
                        }
                    }
                }
            });
        }
        let built = if plan.artifact.is_some() {
            Ok(plan.clone())
        } else {
            match self.build(&plan).await? {
                Ok(()) => self.with_artifact(plan.clone()).await,
                Err(e) => Err(e),
            }
        };
        let plan = match built {
            Ok(p) => p,
            Err(reason) => {
                for (_, slot) in &slots {
                    let reason = reason.clone();
                    self.ctx
                        .set(&plan, *slot, State::Failed { reason }, None, 0);
                }
                return Ok(Outcome::Failed {
                    reason,
                    undone: false,
                });
            }
        };
        for (r, slot) in slots {
            self.spawn(
                &plan,
                r,
                slot,
                restarts.get(&r).copied().unwrap_or_default(),
            );
        }
        Ok(Outcome::Started {
            artifact: plan.artifact.clone(),
        })
    }

    /// Adds replicas (lowest free numbers and slots) or drains and stops
    /// the highest.
    pub(super) async fn scale(
        &mut self,
        plan: &Arc<ServicePlan>,
        from: u32,
    ) -> Result<Outcome, Interrupted> {
        let to = plan.replicas;
        self.ctx.say(
            &self.name,
            format!("scaling from {from} to {to} replica(s)"),
        );
        if to > from {
            let mut added = Vec::new();
            for _ in from..to {
                let replica = (1..)
                    .find(|r| self.instances.iter().all(|i| i.replica != *r))
                    .unwrap_or(1);
                let Some(slot) = self.free_slot(&[]) else {
                    break;
                };
                self.spawn(plan, replica, slot, 0);
                added.push(slot);
            }
        } else {
            self.instances.sort_by_key(|i| i.replica);
            let gone: Vec<Inst> = self.instances.split_off(to as usize);
            self.retire(gone).await?;
        }
        Ok(Outcome::Scaled { from, to })
    }

    /// Drains `gone` through the gateway, then stops them and forgets them.
    pub(super) async fn retire(&mut self, gone: Vec<Inst>) -> Result<(), Interrupted> {
        if gone.is_empty() {
            return Ok(());
        }
        let slots: Vec<u32> = gone.iter().map(|i| i.slot).collect();
        self.ctx.states.send_modify(|s| {
            if let Some(list) = s.get_mut(&self.name) {
                for st in list.iter_mut().filter(|st| slots.contains(&st.slot)) {
                    st.retiring = true;
                }
            }
        });
        let addrs: Vec<SocketAddr> = gone
            .iter()
            .flat_map(|i| {
                let a = i.plan.address(i.slot);
                i.plan.ports.iter().map(move |p| SocketAddr::from((a, *p)))
            })
            .collect();
        let drained = if addrs.is_empty() {
            Ok(())
        } else {
            let drain = (self.ctx.drain)(addrs);
            self.or_stop(drain).await
        };
        // Stopped either way: a stop of the whole service stops them too.
        let stops = gone.into_iter().map(|i| async move {
            let _ = i.stop.send(true);
            let _ = i.task.await;
            i.slot
        });
        for slot in join_all(stops).await {
            self.unlist(slot);
        }
        drained
    }

    /// Starts or stops replicas so there are `plan.replicas` of them.
    pub(super) async fn resize(&mut self, plan: &Arc<ServicePlan>) -> Result<(), Interrupted> {
        let count = self.instances.len() as u32;
        if count != plan.replicas {
            self.scale(plan, count).await?;
        }
        Ok(())
    }

    pub(super) async fn stop_all(&mut self) {
        let stops = std::mem::take(&mut self.instances)
            .into_iter()
            .map(|i| async move {
                let _ = i.stop.send(true);
                let _ = i.task.await;
            });
        join_all(stops).await;
    }
}

/// Whether `plan`'s artifact cannot tell one build from another. A
/// recipe's program is installed, not built: its config says it all.
pub(super) fn blind(plan: &ServicePlan) -> bool {
    plan.recipe.is_none()
        && plan
            .artifact
            .as_ref()
            .is_some_and(|a| a.digest.is_empty() || (plan.build.is_some() && a.program.is_none()))
}

/// Whether `i` must be replaced to run `plan`: it runs something else, or
/// (`all`) another revision.
pub(super) fn stale(i: &Inst, plan: &ServicePlan, all: bool) -> bool {
    !i.plan.same_run(plan) || (all && i.plan.revision != plan.revision)
}

/// Removes the items at `indexes` (ascending) and returns them.
pub(super) fn remove_indexes<T>(v: &mut Vec<T>, indexes: Vec<usize>) -> Vec<T> {
    let mut out = Vec::new();
    for k in indexes.into_iter().rev() {
        out.push(v.remove(k));
    }
    out.reverse();
    out
}

pub(super) async fn join_all<T>(
    futs: impl Iterator<Item = impl Future<Output = T> + Send + 'static>,
) -> Vec<T>
where
    T: Send + 'static,
{
    let handles: Vec<JoinHandle<T>> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}
