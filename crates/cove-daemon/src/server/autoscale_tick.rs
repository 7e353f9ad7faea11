//! The autoscaler's turn: every [`AUTOSCALE_TICK`] (or when a request
//! wakes a sleeping service), each project's gateway figures go to its
//! services' scalers ([`crate::autoscale`] decides); a decision becomes a
//! `cove scale`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cove_runtime::supervisor::{Mode, Report};

use crate::server::log::log;
use crate::server::offload::set_desired;
use crate::server::registry::{Daemon, Project};
use crate::server::revisions::plan_for;
use crate::server::tasks::spawn_restarting;
use crate::store::Desired;

/// How often autoscaled services are looked at.
pub(super) const AUTOSCALE_TICK: Duration = Duration::from_millis(500);

/// One look at `project`'s autoscaled services: the gateway's figures go to
/// each one's scaler; a decision becomes a `cove scale` (kept in what
/// should run) and an event. Skipped while another command holds the
/// project (a deploy waits for no one, so neither does this).
pub(super) async fn autoscale(daemon: &Daemon, project: &Project) {
    use crate::autoscale::{Figure, Policy, Scaler};
    let Ok(mut run) = project.run.try_lock() else {
        return;
    };
    let Some(desired) = run.desired.clone() else {
        return;
    };
    let now = tokio::time::Instant::now();
    let mut changes = Vec::new();
    {
        let mut gateway = crate::lock(&project.gateway);
        // Services that may sleep get a waker in the gateway.
        let sleepers = sleepers(daemon, project, &desired);
        if let Some(g) = gateway.as_mut()
            && g.set_wakers(sleepers)
        {
            g.refresh(&project.states.borrow());
        }
        let woken = std::mem::take(&mut *crate::lock(&project.woken));
        let mut scalers = crate::lock(&project.scalers);
        for name in &desired.wanted {
            let Some((service, spec)) = desired.app.services.get(name).and_then(|s| {
                let spec = s.x_cove.as_ref()?.autoscale.as_ref()?;
                Some((s, spec))
            }) else {
                scalers.remove(name);
                continue;
            };
            let Ok(policy) = Policy::from_spec(spec) else {
                continue; // refused by `cove up` already
            };
            let Some(g) = gateway.as_ref() else {
                continue;
            };
            let (in_flight, answered) = g.load(name);
            let entry = scalers
                .entry(name.clone())
                .or_insert_with(|| (Scaler::new(policy.clone()), answered, now));
            if entry.0.policy != policy {
                *entry = (Scaler::new(policy.clone()), answered, now);
            }
            let figure = match policy.target {
                Figure::Concurrency(_) => in_flight as f64,
                Figure::Rps(_) => {
                    let dt = now.duration_since(entry.2).as_secs_f64().max(0.001);
                    (answered.saturating_sub(entry.1)) as f64 / dt
                }
            };
            entry.1 = answered;
            entry.2 = now;
            let current = desired
                .scale
                .get(name)
                .copied()
                .unwrap_or_else(|| service.replicas());
            if current == 0 && woken.contains(name) {
                entry.0 = Scaler::new(policy.clone());
                changes.push((
                    name.clone(),
                    0,
                    1,
                    "a request came while it was scaled to zero".to_string(),
                ));
                continue;
            }
            // A replica still on its way (starting, restarting, not yet
            // healthy) holds the count: the windows start once every
            // replica serves, so a slow start is not scaled away before it
            // answered once.
            let on_its_way = project
                .states
                .borrow()
                .get(name)
                .is_some_and(|rs| rs.iter().any(|r| !r.retiring && !r.ready()));
            if on_its_way {
                entry.0 = Scaler::new(policy.clone());
                continue;
            }
            if let Some(to) = entry.0.observe(now.into_std(), current, figure) {
                let what = match policy.target {
                    Figure::Concurrency(t) => {
                        format!("{in_flight} in flight, target {t} per replica")
                    }
                    Figure::Rps(t) => format!("{figure:.1} requests/s, target {t} per replica"),
                };
                changes.push((name.clone(), current, to, what));
            }
        }
    }
    if changes.is_empty() {
        return;
    }
    let mut desired = desired;
    for (name, _, to, _) in &changes {
        desired.scale.insert(name.clone(), *to);
    }
    let (plan, _) = match plan_for(&daemon.store, &project.key, &desired, &[]).await {
        Ok(p) => p,
        Err(e) => return log(&format!("{}: autoscaling: {e}", project.key)),
    };
    if let Err(e) = set_desired(&daemon.store, &project.key, Some(&desired)).await {
        return log(&format!("{}: autoscaling: {e}", project.key));
    }
    for (name, from, to, what) in changes {
        let _ = project.reports.send(Report::Deploy {
            service: name.clone(),
            message: format!("autoscale: {from} → {to} replicas ({what})"),
        });
        drop(run.supervisor.converge(&plan, &name, Mode::Converge));
    }
    run.plan = Some(plan);
    run.desired = Some(desired);
}

/// A waker for each service of `desired` that may sleep (scaled to zero):
/// a request for it marks it woken and wakes the autoscaler.
fn sleepers(
    daemon: &Daemon,
    project: &Project,
    desired: &Desired,
) -> HashMap<String, cove_gateway::table::Wake> {
    desired
        .wanted
        .iter()
        .filter(|n| {
            // What should run may name a service the app no longer
            // has (a deploy of another one after it was removed).
            desired
                .app
                .services
                .get(n.as_str())
                .and_then(|s| s.x_cove.as_ref()?.autoscale.as_ref())
                .is_some_and(|a| a.min == 0)
        })
        .map(|n| {
            let (woken, wake, name) = (project.woken.clone(), daemon.wake.clone(), n.clone());
            let f = move || {
                crate::lock(&woken).insert(name.clone());
                wake.notify_one();
            };
            (n.clone(), cove_gateway::table::Wake(Arc::new(f)))
        })
        .collect()
}

/// Runs the autoscaler: a turn every [`AUTOSCALE_TICK`], or when a
/// request wakes a sleeping service (restarted after a panic).
pub(super) fn spawn_autoscaler(scaling: Arc<Daemon>) {
    spawn_restarting(
        "the autoscaler".into(),
        move || {
            let scaling = scaling.clone();
            async move {
                let mut tick = tokio::time::interval(AUTOSCALE_TICK);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = scaling.wake.notified() => {}
                    }
                    for p in scaling.all() {
                        autoscale(&scaling, &p).await;
                    }
                    crate::server::previews::tick(&scaling).await;
                }
            }
        },
        log,
    );
}
