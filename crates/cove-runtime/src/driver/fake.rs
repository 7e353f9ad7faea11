//! A driver that runs nothing: scripted replicas in memory, on tokio's
//! clock, so the supervisor's rollouts are tested in paused time
//! (`#[tokio::test(start_paused = true)]`) in milliseconds.
//!
//! A [`Script`] says how the replicas of a service (or of one revision of
//! it) behave: healthy after some time, unhealthy after some more,
//! exiting with a code, refusing connections, failing to start, ignoring
//! the stop signal. The [`World`] logs what happened ([`Event`]s, with
//! the paused clock's time) and what runs, and notes every moment two
//! replicas of a service ran at one address. [`Fake::crash`] plays a
//! killed daemon: what it started runs on (as containers do) and the
//! driver it used hangs from then on, so a new supervisor takes over.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustix::process::Signal;
use tokio::time::Instant;

use super::{BoxFuture, Driver, OnBuildLine, OnLine, Prober, Replica, Start};
use crate::artifact::Artifact;
use crate::health::{Health, HealthSpec};
use crate::plan::ServicePlan;

/// How a replica behaves, from its start.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Its start fails, with these words.
    pub start_fails: Option<String>,
    /// Its health check passes from then on (never, when `None`).
    pub healthy_after: Option<Duration>,
    /// Its health check fails from then on.
    pub unhealthy_after: Option<Duration>,
    /// It exits then, with that code.
    pub exits: Option<(Duration, i32)>,
    /// Without a health check: it refuses connections on its first port.
    pub refuses: bool,
    /// It ignores the stop signal: killed once the grace period is over.
    pub ignores_stop: bool,
}

/// What the fake saw, at what time since it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Start {
        svc: String,
        replica: u32,
        slot: u32,
        revision: u64,
    },
    /// A replica a killed daemon left running, taken over.
    Adopt {
        svc: String,
        replica: u32,
        slot: u32,
        revision: u64,
    },
    /// The supervisor's drain hook, with the addresses it was given.
    Drain { addrs: Vec<SocketAddr> },
    Stop {
        svc: String,
        slot: u32,
        revision: u64,
    },
    /// It ignored the stop signal and was killed after the grace period.
    Kill {
        svc: String,
        slot: u32,
        revision: u64,
    },
    Exit {
        svc: String,
        slot: u32,
        revision: u64,
        code: i32,
    },
    /// Removed at a take-over: not of the revision to run.
    Remove {
        svc: String,
        slot: u32,
        revision: u64,
    },
}

/// A replica that runs.
#[derive(Debug, Clone)]
struct Live {
    id: u64,
    svc: String,
    replica: u32,
    slot: u32,
    revision: u64,
    addr: Ipv4Addr,
    /// The daemon (generation) whose driver started or took it over.
    generation: u64,
}

/// Everything the fake knows.
#[derive(Default)]
pub struct World {
    /// Scripts by service, revision and replica (`None`: any).
    scripts: Vec<(String, Option<u64>, Option<u32>, Script)>,
    log: Vec<(Duration, Event)>,
    live: Vec<Live>,
    /// Moments two replicas of a service ran at one address.
    clashes: Vec<String>,
    generation: u64,
    next_id: u64,
    epoch: Option<Instant>,
}

impl World {
    fn note(&mut self, event: Event) {
        let epoch = *self.epoch.get_or_insert_with(Instant::now);
        self.log.push((epoch.elapsed(), event));
    }

    /// The most specific script for a replica: of its revision and
    /// number, of its revision, of its number, of its service.
    fn script(&self, svc: &str, revision: u64, replica: u32) -> Script {
        let of = |rev: Option<u64>, rep: Option<u32>| {
            (self.scripts.iter().rev())
                .find(|(s, r, n, _)| s == svc && *r == rev && *n == rep)
                .map(|(_, _, _, script)| script.clone())
        };
        (of(Some(revision), Some(replica)))
            .or_else(|| of(Some(revision), None))
            .or_else(|| of(None, Some(replica)))
            .or_else(|| of(None, None))
            .unwrap_or_default()
    }

    fn gone(&mut self, id: u64) -> Option<Live> {
        let k = self.live.iter().position(|l| l.id == id)?;
        Some(self.live.remove(k))
    }
}

/// The fake driver; clones share one [`World`].
#[derive(Clone, Default)]
pub struct Fake {
    world: Arc<Mutex<World>>,
}

impl Fake {
    pub fn new() -> Fake {
        let fake = Fake::default();
        fake.world().epoch = Some(Instant::now());
        fake
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.world
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replicas of `svc` (of `revision` only, when given) behave so.
    pub fn script(&self, svc: &str, revision: Option<u64>, script: Script) {
        self.world()
            .scripts
            .push((svc.to_string(), revision, None, script));
    }

    /// Replica `replica` of `svc`'s `revision` behaves so.
    pub fn script_replica(&self, svc: &str, revision: u64, replica: u32, script: Script) {
        (self.world().scripts).push((svc.to_string(), Some(revision), Some(replica), script));
    }

    /// A driver for one daemon (the current generation).
    pub fn driver(&self) -> Arc<dyn Driver> {
        let generation = self.world().generation;
        Arc::new(Handle {
            fake: self.clone(),
            generation,
        })
    }

    /// The drain hook of a supervisor of this generation: logs the
    /// addresses, and lets them go at once (hangs once its daemon was
    /// killed).
    /// (A supervisor's `Drain`.)
    #[allow(clippy::type_complexity)]
    pub fn drain(&self) -> Arc<dyn Fn(Vec<SocketAddr>) -> BoxFuture<'static, ()> + Send + Sync> {
        let fake = self.clone();
        let generation = self.world().generation;
        Arc::new(move |addrs| {
            let mut w = fake.world();
            if w.generation != generation {
                return Box::pin(std::future::pending());
            }
            w.note(Event::Drain { addrs });
            Box::pin(async {})
        })
    }

    /// The daemon was killed: what runs runs on; the drivers handed out
    /// so far hang from now on.
    pub fn crash(&self) {
        self.world().generation += 1;
    }

    /// What happened so far.
    pub fn log(&self) -> Vec<Event> {
        self.world().log.iter().map(|(_, e)| e.clone()).collect()
    }

    /// What happened so far, with when.
    pub fn timed_log(&self) -> Vec<(Duration, Event)> {
        self.world().log.clone()
    }

    /// The replicas of `svc` that run: (replica, slot, revision), sorted.
    pub fn running(&self, svc: &str) -> Vec<(u32, u32, u64)> {
        let mut v: Vec<_> = (self.world().live.iter())
            .filter(|l| l.svc == svc)
            .map(|l| (l.replica, l.slot, l.revision))
            .collect();
        v.sort_unstable();
        v
    }

    /// Every moment two replicas of a service ran at one address.
    pub fn clashes(&self) -> Vec<String> {
        self.world().clashes.clone()
    }
}

/// One daemon's driver.
struct Handle {
    fake: Fake,
    generation: u64,
}

impl Handle {
    /// Whether its daemon was killed: then it never answers again.
    async fn alive(&self) {
        if self.fake.world().generation != self.generation {
            std::future::pending::<()>().await;
        }
    }

    fn launch(&self, start: &Start<'_>) -> Result<FakeReplica, String> {
        let (svc, slot) = (start.svc, start.slot);
        let mut w = self.fake.world();
        let script = w.script(&svc.name, svc.revision, start.replica);
        if let Some(reason) = script.start_fails {
            return Err(reason);
        }
        let addr = svc.address(slot);
        let adopted = w.live.iter_mut().find(|l| {
            l.svc == svc.name
                && l.slot == slot
                && l.revision == svc.revision
                && l.generation != self.generation
        });
        let (id, adopted) = match adopted {
            Some(l) => {
                l.generation = self.generation;
                (l.id, true)
            }
            None => {
                w.next_id += 1;
                (w.next_id, false)
            }
        };
        let (name, replica, revision) = (svc.name.clone(), start.replica, svc.revision);
        if adopted {
            w.note(Event::Adopt {
                svc: name,
                replica,
                slot,
                revision,
            });
        } else {
            if let Some(other) = w.live.iter().find(|l| l.svc == svc.name && l.addr == addr) {
                let clash = format!(
                    "{}: replica {} (revision {}) started at {addr}, where replica {} (revision {}) runs",
                    svc.name, replica, revision, other.replica, other.revision
                );
                w.clashes.push(clash);
            }
            w.live.push(Live {
                id,
                svc: name.clone(),
                replica,
                slot,
                revision,
                addr,
                generation: self.generation,
            });
            w.note(Event::Start {
                svc: name,
                replica,
                slot,
                revision,
            });
        }
        Ok(FakeReplica {
            fake: self.fake.clone(),
            generation: self.generation,
            id,
            svc: svc.name.clone(),
            slot,
            revision,
            script,
            started: Instant::now(),
        })
    }
}

impl Driver for Handle {
    fn start<'a>(
        &'a self,
        start: Start<'a>,
        _: OnLine,
    ) -> BoxFuture<'a, Result<Box<dyn Replica>, String>> {
        Box::pin(async move {
            self.alive().await;
            self.launch(&start).map(|r| Box::new(r) as Box<dyn Replica>)
        })
    }

    fn take_over<'a>(&'a self, svc: &'a ServicePlan) -> BoxFuture<'a, HashMap<u32, u32>> {
        Box::pin(async move {
            self.alive().await;
            let mut w = self.fake.world();
            let mut kept = HashMap::new();
            let (mine, others): (Vec<Live>, Vec<Live>) = std::mem::take(&mut w.live)
                .into_iter()
                .partition(|l| l.svc != svc.name || l.generation == self.generation);
            w.live = mine;
            for l in others {
                let keep = l.revision == svc.revision
                    && (1..=svc.replicas).contains(&l.replica)
                    && !kept.contains_key(&l.replica)
                    && !kept.values().any(|s| *s == l.slot);
                if keep {
                    kept.insert(l.replica, l.slot);
                    w.live.push(l);
                } else {
                    w.note(Event::Remove {
                        svc: l.svc,
                        slot: l.slot,
                        revision: l.revision,
                    });
                }
            }
            kept
        })
    }

    fn build_image<'a>(
        &'a self,
        _: &'a ServicePlan,
        _: OnBuildLine,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn start_build(
        &self,
        svc: &ServicePlan,
        _: &[String],
        _: Vec<(String, String)>,
        _: OnLine,
    ) -> Result<Box<dyn Replica>, String> {
        Err(format!("`{}`: the fake driver runs no builds", svc.name))
    }

    /// The digest of its command: two plans that run another command are
    /// two artifacts.
    fn artifact<'a>(
        &'a self,
        svc: &'a ServicePlan,
        _: Vec<PathBuf>,
    ) -> BoxFuture<'a, Result<Artifact, String>> {
        Box::pin(async move {
            self.alive().await;
            Ok(Artifact {
                digest: format!("fake:{}", svc.argv.join(" ")),
                program: None,
            })
        })
    }
}

/// A scripted replica.
struct FakeReplica {
    fake: Fake,
    generation: u64,
    id: u64,
    svc: String,
    slot: u32,
    revision: u64,
    script: Script,
    started: Instant,
}

impl FakeReplica {
    async fn alive(&self) {
        if self.fake.world().generation != self.generation {
            std::future::pending::<()>().await;
        }
    }
}

impl Replica for FakeReplica {
    fn pid(&self) -> Option<u32> {
        Some(100_000 + self.id as u32)
    }

    fn wait(&mut self) -> BoxFuture<'_, Option<i32>> {
        Box::pin(async move {
            let Some((after, code)) = self.script.exits else {
                return std::future::pending().await;
            };
            tokio::time::sleep_until(self.started + after).await;
            self.alive().await;
            let mut w = self.fake.world();
            w.gone(self.id);
            w.note(Event::Exit {
                svc: self.svc.clone(),
                slot: self.slot,
                revision: self.revision,
                code,
            });
            Some(code)
        })
    }

    fn stop(&mut self, _: Signal, grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.alive().await;
            // A process takes a moment to go: whoever watches its state
            // sees what it was stopped for.
            tokio::task::yield_now().await;
            let (svc, slot, revision) = (self.svc.clone(), self.slot, self.revision);
            self.fake.world().note(Event::Stop {
                svc: svc.clone(),
                slot,
                revision,
            });
            if self.script.ignores_stop {
                tokio::time::sleep(grace).await;
                self.fake.world().note(Event::Kill {
                    svc,
                    slot,
                    revision,
                });
            }
            self.fake.world().gone(self.id);
        })
    }

    fn prober(&self, _: Option<&HealthSpec>) -> Box<dyn Prober> {
        Box::new(FakeProber {
            script: self.script.clone(),
            fake: self.fake.clone(),
            generation: self.generation,
        })
    }

    fn finish(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            self.alive().await;
            self.fake.world().gone(self.id);
        })
    }
}

/// Says what its replica's script says.
struct FakeProber {
    script: Script,
    fake: Fake,
    generation: u64,
}

impl FakeProber {
    /// Hangs once its daemon was killed (what it would say goes nowhere).
    async fn alive(&self) {
        if self.fake.world().generation != self.generation {
            std::future::pending::<()>().await;
        }
    }
}

impl Prober for FakeProber {
    fn watch<'a>(
        &'a self,
        _: &'a HealthSpec,
        _: &'a Path,
        _: &'a [(String, String)],
        started: Instant,
        on_change: &'a mut (dyn FnMut(Health) + Send),
    ) -> BoxFuture<'a, String> {
        Box::pin(async move {
            if let Some(after) = self.script.healthy_after {
                tokio::time::sleep_until(started + after).await;
                self.alive().await;
                on_change(Health::Healthy);
            }
            match self.script.unhealthy_after {
                Some(after) => {
                    tokio::time::sleep_until(started + after).await;
                    self.alive().await;
                    "the fake's check failed".to_string()
                }
                None => std::future::pending().await,
            }
        })
    }

    fn refusing<'a>(&'a self, _: Ipv4Addr, ports: &'a [u16]) -> BoxFuture<'a, Option<u16>> {
        Box::pin(async move {
            self.alive().await;
            match self.script.refuses {
                true => ports.first().copied(),
                false => None,
            }
        })
    }
}
