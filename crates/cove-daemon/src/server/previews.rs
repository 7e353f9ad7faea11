//! Previews (`cove preview`): projects whose app says it is a preview of
//! another project of this daemon (`x-cove.preview_of`, set by the CLI).
//!
//! - Routing: the baseline's gateway gets each preview as a
//!   [`PreviewSource`] ([`sync`]): requests with its key go to its
//!   replicas of the services it runs; a change of a preview's replicas
//!   gives the baseline a new table ([`BaseLink`]).
//! - Sleep: a preview none of whose replicas got a request for
//!   `x-cove.previews.idle_after` (default [`IDLE_AFTER`]) sleeps: its
//!   services are scaled to zero (kept in what should run, so a restarted
//!   daemon keeps it asleep). A request with its key wakes it (held until
//!   its replicas are ready). At most `max_awake` previews of a baseline
//!   are awake: waking one more, or making one (`cove preview up`),
//!   puts the least recently used to sleep.
//!   A preview older than `ttl` is removed (`cove preview down`).
//!   Every decision is an event of the baseline (service `preview/NAME`).
//!
//! Looked at on the autoscaler's turn ([`tick`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cove_runtime::supervisor::{Mode, Report};
use hyper::StatusCode;

use crate::api::{PreviewInfo, PreviewSleep};
use crate::gateway::PreviewSource;
use crate::server::log::{log, millis};
use crate::server::offload::{blocking, set_desired};
use crate::server::registry::{BaseLink, Daemon, Project};
use crate::server::reply::{Answer, error, json};
use crate::server::revisions::plan_for;

/// Idle time after which a preview sleeps when `x-cove.previews` does
/// not say.
pub(super) const IDLE_AFTER: Duration = Duration::from_secs(15 * 60);

/// What a project's desired state says of it as a preview.
fn preview_of(p: &Project) -> Option<cove_spec::xcove::PreviewOf> {
    p.view().1?.app.x_cove.preview_of.clone()
}

/// The previews of `base` this daemon runs, by name.
fn previews_of(daemon: &Daemon, base: &str) -> Vec<(cove_spec::xcove::PreviewOf, Arc<Project>)> {
    let mut out: Vec<_> = daemon
        .all()
        .into_iter()
        .filter_map(|p| {
            let of = preview_of(&p)?;
            (of.base == base).then_some((of, p))
        })
        .collect();
    out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    out
}

/// Whether a preview sleeps: every service it runs scaled to zero.
fn asleep(p: &Project, of: &cove_spec::xcove::PreviewOf) -> bool {
    let Some(desired) = p.view().1 else {
        return false;
    };
    !of.run.is_empty()
        && of
            .run
            .iter()
            .all(|s| desired.scale.get(s).copied() == Some(0))
}

/// The baseline's `x-cove.previews`.
fn settings(base: &Project) -> cove_spec::xcove::Previews {
    base.view()
        .1
        .and_then(|d| d.app.x_cove.previews.clone())
        .unwrap_or_default()
}

fn duration(text: Option<&str>) -> Option<Duration> {
    cove_spec::units::parse_duration(text?).ok()
}

/// Gives `base`'s gateway its previews as they are now (and each preview
/// the link to it); a new table when they changed.
pub(super) fn sync(daemon: &Daemon, base: &str) {
    let Some(base_project) = daemon.existing(base) else {
        return;
    };
    let previews = previews_of(daemon, base);
    let link = BaseLink {
        gateway: base_project.gateway.clone(),
        states: base_project.states.clone(),
    };
    let mut sources = Vec::new();
    for (of, p) in &previews {
        *crate::lock(&p.base) = Some(link.clone());
        let Some(plan) = p.view().0 else { continue };
        let (asked, wake) = (p.wake_asked.clone(), daemon.wake.clone());
        sources.push(PreviewSource {
            name: of.name.clone(),
            plan,
            states: p.states.clone(),
            wake: cove_gateway::table::Wake(Arc::new(move || {
                asked.store(true, Ordering::Relaxed);
                wake.notify_one();
            })),
        });
    }
    let domain = settings(&base_project).domain;
    if let Some(g) = crate::lock(&base_project.gateway).as_mut() {
        let now: Vec<_> = sources
            .iter()
            .map(|s| (s.name.clone(), Arc::as_ptr(&s.plan)))
            .collect();
        if g.previews_signature() != now || g.preview_domain() != domain.as_deref() {
            g.set_previews(sources, domain);
            g.refresh(&base_project.states.borrow());
        }
    }
}

/// Puts preview `p` to sleep (`asleep`) or wakes it: its services scaled
/// to zero, or back to what the file says; an event of the baseline says
/// why.
pub(super) async fn set_asleep(
    daemon: &Daemon,
    p: &Project,
    asleep: bool,
    why: &str,
) -> Result<(), String> {
    let mut run = p.lock_run().await;
    let Some(mut desired) = run.desired.clone() else {
        return Err("the preview runs nothing".into());
    };
    let Some(of) = desired.app.x_cove.preview_of.clone() else {
        return Err("not a preview".into());
    };
    for s in &of.run {
        if asleep {
            desired.scale.insert(s.clone(), 0);
        } else {
            desired.scale.remove(s);
        }
    }
    let (plan, _) = plan_for(&daemon.store, &p.key, &desired, &[]).await?;
    set_desired(&daemon.store, &p.key, Some(&desired))
        .await
        .map_err(|e| e.to_string())?;
    for s in &of.run {
        drop(run.supervisor.converge(&plan, s, Mode::Converge));
    }
    run.plan = Some(plan);
    run.desired = Some(desired);
    drop(run);
    if !asleep {
        *crate::lock(&p.awake_since) = Some(tokio::time::Instant::now());
    }
    event(daemon, &of, if asleep { "asleep" } else { "awake" }, why);
    sync(daemon, &of.base);
    Ok(())
}

/// An event of the baseline about preview `of`.
fn event(daemon: &Daemon, of: &cove_spec::xcove::PreviewOf, what: &str, why: &str) {
    if let Some(base) = daemon.existing(&of.base) {
        let _ = base.reports.send(Report::Deploy {
            service: format!("preview/{}", of.name),
            message: format!("preview {} {what} ({why})", of.name),
        });
    }
}

/// One look at every preview: syncs each baseline's gateway, wakes the
/// ones a request asked for (putting the least recently used to sleep
/// beyond `max_awake`), puts idle ones to sleep, removes those past `ttl`.
pub(super) async fn tick(daemon: &Daemon) {
    let mut by_base: HashMap<String, Vec<_>> = HashMap::new();
    for p in daemon.all() {
        if let Some(of) = preview_of(&p) {
            by_base.entry(of.base.clone()).or_default().push((of, p));
        }
    }
    // Baselines whose last preview is gone: their gateway forgets it.
    for p in daemon.all() {
        let had = crate::lock(&p.gateway)
            .as_ref()
            .is_some_and(|g| !g.previews_signature().is_empty());
        if had && !by_base.contains_key(&*p.key) {
            sync(daemon, &p.key);
        }
    }
    for (base, previews) in by_base {
        sync(daemon, &base);
        let Some(base_project) = daemon.existing(&base) else {
            continue;
        };
        let settings = settings(&base_project);
        let idle_after = duration(settings.idle_after.as_deref()).unwrap_or(IDLE_AFTER);
        let ttl = duration(settings.ttl.as_deref());
        let now = tokio::time::Instant::now();
        // How long each has had no request.
        let idle = |of: &cove_spec::xcove::PreviewOf, p: &Project| -> Duration {
            let since_request = crate::lock(&base_project.gateway)
                .as_ref()
                .and_then(|g| g.preview_idle_for(&of.name));
            let since_awake = crate::lock(&p.awake_since).map(|t| now.duration_since(t));
            match (since_request, since_awake) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).unwrap_or_default(),
            }
        };
        let mut removed = Vec::new();
        for (of, p) in &previews {
            if let Some(ttl) = ttl
                && millis(std::time::SystemTime::now()).saturating_sub(of.created_ms)
                    >= ttl.as_millis() as u64
            {
                event(daemon, of, "removed", &format!("older than ttl {ttl:?}"));
                remove(daemon, p).await;
                removed.push(of.name.clone());
                continue;
            }
            let sleeping = asleep(p, of);
            // Idle time counts from when its replicas are all ready: one
            // on its way (a slow first start, a wake) keeps it awake.
            let starting = p
                .states
                .borrow()
                .values()
                .flatten()
                .any(|r| !r.retiring && !r.ready());
            if starting {
                *crate::lock(&p.awake_since) = Some(now);
            }
            if sleeping && p.wake_asked.swap(false, Ordering::Relaxed) {
                // Woken, it is the most recently used: `max_awake` below
                // puts the least recently used others to sleep.
                if let Err(e) = set_asleep(daemon, p, false, "a request").await {
                    log(&format!("preview {}: {e}", of.name));
                }
            } else if !sleeping {
                p.wake_asked.store(false, Ordering::Relaxed);
                let idle_for = idle(of, p);
                if idle_for >= idle_after {
                    let why = format!("no request for {}", human(idle_for));
                    if let Err(e) = set_asleep(daemon, p, true, &why).await {
                        log(&format!("preview {}: {e}", of.name));
                    }
                }
            }
        }
        let previews: Vec<_> = previews
            .into_iter()
            .filter(|(of, _)| !removed.contains(&of.name))
            .collect();
        // At most `max_awake` awake, whatever woke them (a request above,
        // `cove preview up` making a new one, `cove preview wake`): the
        // least recently used sleep; the most recently used stays.
        if let Some(max) = settings.max_awake {
            let mut awake: Vec<_> = previews
                .iter()
                .filter(|(o, q)| !asleep(q, o))
                .map(|(o, q)| (idle(o, q), o, q))
                .collect();
            awake.sort_by_key(|(d, ..)| std::cmp::Reverse(*d));
            let (count, keep) = (awake.len(), (max as usize).max(1));
            for (_, o, q) in awake.into_iter().take(count.saturating_sub(keep)) {
                let why = format!("max_awake {max}: {count} awake, the least recently used sleeps");
                if let Err(e) = set_asleep(daemon, q, true, &why).await {
                    log(&format!("preview {}: {e}", o.name));
                }
            }
        }
        // The memory budget: the least recently used awake ones sleep
        // until the rest fit (the most recently used always stays).
        let Some(budget) = settings
            .memory
            .as_deref()
            .and_then(|m| cove_spec::units::parse_bytes(m).ok())
        else {
            continue;
        };
        let mut awake = Vec::new();
        for (of, p) in &previews {
            if daemon.existing(&p.key).is_some() && !asleep(p, of) {
                let bytes = memory_of(daemon.cgroups.as_deref(), p).await;
                awake.push((idle(of, p), bytes, of, p));
            }
        }
        awake.sort_by_key(|(d, ..)| std::cmp::Reverse(*d));
        let mut total: u64 = awake.iter().map(|(_, b, ..)| b).sum();
        for (_, bytes, of, p) in awake.iter().take(awake.len().saturating_sub(1)) {
            if total <= budget {
                break;
            }
            let why = format!(
                "previews.memory {}: {} MiB awake, the least recently used sleeps",
                settings.memory.as_deref().unwrap_or_default(),
                total / 1048576
            );
            if let Err(e) = set_asleep(daemon, p, true, &why).await {
                log(&format!("preview {}: {e}", of.name));
            }
            total = total.saturating_sub(*bytes);
        }
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

/// Stops and forgets preview `p` and deletes its state directory (its
/// data: a preview's own copies).
async fn remove(daemon: &Daemon, p: &Project) {
    let key = p.key.to_string();
    let _ = crate::server::ops::down::down(daemon, &key, crate::api::Names::default()).await;
    let dir = std::path::PathBuf::from(&key);
    let removed = blocking(move || {
        let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
            return Ok(());
        };
        cove_runtime::private::Dir::anchor(parent)?.remove(name)
    })
    .await;
    if let Err(e) = removed {
        log(&format!("preview {key}: its directory stays: {e}"));
    }
}

/// The memory of `p`'s replicas: each one's cgroup where the daemon has
/// a tree (`tree`), else its process tree's RSS.
async fn memory_of(tree: Option<&std::path::Path>, p: &Project) -> u64 {
    let project_tree = tree.map(|t| cove_runtime::cgroup::project(t, &p.key));
    let reads: Vec<_> = p
        .states
        .borrow()
        .iter()
        .flat_map(|(service, rs)| {
            rs.iter()
                .filter(|r| r.pid.is_some())
                .map(|r| {
                    let leaf = project_tree
                        .as_deref()
                        .map(|t| cove_runtime::cgroup::replica(t, service, r.slot));
                    (leaf, r.pid)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    blocking(move || {
        reads
            .iter()
            .filter_map(|(leaf, pid)| crate::memory::replica_bytes(leaf.as_deref(), *pid))
            .sum::<u64>()
    })
    .await
}

/// `GET /v1/previews` (the baseline's key): each preview, its services,
/// state, memory and last request.
pub(super) async fn list(daemon: &Daemon, base: &str) -> Answer {
    let tree = daemon.cgroups.clone();
    let wall_now = millis(std::time::SystemTime::now());
    let mut out = Vec::new();
    for (of, p) in previews_of(daemon, base) {
        let idle_for = daemon.existing(base).and_then(|b| {
            crate::lock(&b.gateway)
                .as_ref()
                .and_then(|g| g.preview_idle_for(&of.name))
        });
        let memory = memory_of(tree.as_deref(), &p).await;
        out.push(PreviewInfo {
            name: of.name.clone(),
            key: p.key.to_string(),
            git_ref: of.git_ref.clone(),
            run: of.run.clone(),
            shared: of.shared.keys().cloned().collect(),
            state: if asleep(&p, &of) { "asleep" } else { "awake" }.into(),
            memory_bytes: memory,
            created_ms: of.created_ms,
            last_request_ms: idle_for.map(|d| wall_now.saturating_sub(d.as_millis() as u64)),
        });
    }
    json(StatusCode::OK, &out)
}

/// `POST /v1/preview/sleep` (the preview's key): puts it to sleep or
/// wakes it now.
pub(super) async fn sleep(daemon: &Daemon, key: &str, req: PreviewSleep) -> Answer {
    let Some(p) = daemon.existing(key) else {
        return error(
            StatusCode::NOT_FOUND,
            "no such preview runs".to_string(),
            None,
        );
    };
    let why = if req.asleep {
        "cove preview sleep"
    } else {
        "cove preview wake"
    };
    match set_asleep(daemon, &p, req.asleep, why).await {
        Ok(()) => json(StatusCode::OK, &serde_json::json!({})),
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e, None),
    }
}
