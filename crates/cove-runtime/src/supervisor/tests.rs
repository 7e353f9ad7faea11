//! The supervisor's rollouts, driven by the fake driver in paused time:
//! each test runs in milliseconds, whatever the grace periods, health
//! check intervals and batch delays it goes through.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rustix::process::Signal;
use tokio::sync::mpsc;

use super::*;
use crate::driver::fake::{Event, Fake, Script};
use crate::health::{HealthSpec, Probe};
use crate::plan::{FailureAction, Restart, UpdatePolicy};

const WEB: &str = "web";

/// A policy: start-first or stop-first, `parallelism` at a time, then
/// `on_failure` past `max_failure_ratio`.
fn policy(
    start_first: bool,
    parallelism: u32,
    on_failure: FailureAction,
    max_failure_ratio: f64,
) -> UpdatePolicy {
    UpdatePolicy {
        parallelism,
        delay: Duration::ZERO,
        start_first,
        monitor: Duration::ZERO,
        on_failure,
        max_failure_ratio,
    }
}

/// `web`'s plan at `revision`, running `command` (its artifact) on
/// `replicas`, with a health check, rolled out per `update` (and back
/// one at a time, start-first, pausing on failure).
fn web(revision: u64, command: &str, replicas: u32, update: UpdatePolicy) -> ServicePlan {
    ServicePlan {
        name: WEB.into(),
        replicas,
        argv: vec![command.into()],
        workdir: PathBuf::from("/"),
        env: Vec::new(),
        build: None,
        health: Some(HealthSpec {
            probe: Probe::Tcp { port: 8000 },
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            retries: 3,
            start_period: Duration::ZERO,
            start_interval: Duration::from_secs(1),
        }),
        restart: Restart::Always,
        stop_signal: Signal::TERM,
        stop_grace: Duration::from_secs(10),
        depends_on: Vec::new(),
        ports: vec![8000],
        tcp_ports: vec![8000],
        ready_after: Duration::from_secs(1),
        net: 1,
        base: 0,
        recipe: None,
        data_root: None,
        update,
        rollback: policy(true, 1, FailureAction::Pause, 0.0),
        revision,
        artifact: None,
        keep_artifacts: None,
        service_address: None,
        secrets: Vec::new(),
        secrets_root: PathBuf::from("/nonexistent"),
        redactor: Default::default(),
        container: None,
        bridge_address: None,
    }
}

fn app(svc: &ServicePlan) -> Plan {
    Plan {
        services: vec![svc.clone()],
        gateway: crate::routes::GatewayPlan {
            listen: "127.0.0.1:0".parse().unwrap(),
            default_listen: true,
            max_connections: 1,
            metrics: None,
            tls: None,
            access_query: Default::default(),
            routes: Vec::new(),
            entry: true,
        },
        external: Default::default(),
    }
}

/// A supervisor on `fake`'s current generation (one daemon).
fn supervisor(fake: &Fake) -> (Supervisor, mpsc::UnboundedReceiver<Report>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let sup = Supervisor::new(Backoff::default(), tx, Vec::new())
        .with_driver(fake.driver())
        .with_drain(fake.drain());
    (sup, rx)
}

/// Waits for an outcome (an hour of paused time at most).
async fn outcome(rx: oneshot::Receiver<Outcome>) -> Outcome {
    tokio::time::timeout(Duration::from_secs(3600), rx)
        .await
        .expect("no outcome within an hour")
        .expect("the controller went away")
}

/// Runs `svc` from nothing and waits until its replicas are ready.
async fn up(sup: &mut Supervisor, svc: &ServicePlan) {
    let mut rx = sup.apply(&app(svc), &[WEB.into()], &HashMap::new()).await;
    let started = outcome(rx.remove(0).1).await;
    assert!(matches!(started, Outcome::Started { .. }), "{started:?}");
    settled(sup, svc.replicas as usize).await;
}

/// Deploys `svc`: how it ended.
async fn deploy(sup: &mut Supervisor, svc: &ServicePlan, mode: Mode) -> Outcome {
    let rx = sup.converge(&app(svc), WEB, mode).expect("web is planned");
    outcome(rx).await
}

/// Waits until `n` instances of web are listed, all ready and none
/// retiring; their statuses.
async fn settled(sup: &Supervisor, n: usize) -> Vec<Status> {
    let mut states = sup.states();
    loop {
        {
            let all = states.borrow_and_update();
            let list = all.get(WEB).cloned().unwrap_or_default();
            if list.len() == n && list.iter().all(|s| s.ready() && !s.retiring) {
                return list;
            }
        }
        tokio::time::timeout(Duration::from_secs(3600), states.changed())
            .await
            .expect("web never settled")
            .unwrap();
    }
}

/// The address of web's instance in `slot`, as the drain hook hears it.
fn at(slot: u32) -> SocketAddr {
    let svc = web(0, "", 1, policy(true, 1, FailureAction::Pause, 0.0));
    SocketAddr::from((svc.address(slot), 8000))
}

fn start(replica: u32, slot: u32, revision: u64) -> Event {
    Event::Start {
        svc: WEB.into(),
        replica,
        slot,
        revision,
    }
}

fn drain(slot: u32) -> Event {
    Event::Drain {
        addrs: vec![at(slot)],
    }
}

fn stop(slot: u32, revision: u64) -> Event {
    Event::Stop {
        svc: WEB.into(),
        slot,
        revision,
    }
}

/// Healthy 2 s after its start, for good.
fn healthy() -> Script {
    Script {
        healthy_after: Some(Duration::from_secs(2)),
        ..Script::default()
    }
}

/// Never healthy: its check fails after 3 s.
fn failing() -> Script {
    Script {
        unhealthy_after: Some(Duration::from_secs(3)),
        ..Script::default()
    }
}

/// Every event since `mark` (a length of the log).
fn since(fake: &Fake, mark: usize) -> Vec<Event> {
    fake.log()[mark..].to_vec()
}

/// Every retired instance was drained before it was stopped: each stop
/// of an instance with a port follows a drain of its address.
fn drained_before_stopped(events: &[Event]) {
    for (k, e) in events.iter().enumerate() {
        if let Event::Stop { slot, .. } = e {
            let drained = events[..k]
                .iter()
                .any(|d| matches!(d, Event::Drain { addrs } if addrs.contains(&at(*slot))));
            assert!(
                drained,
                "slot {slot} stopped before it was drained: {events:#?}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn start_first_starts_the_new_replica_beside_the_old_and_drains_the_old_before_stopping_it() {
    let fake = Fake::new();
    fake.script(WEB, None, healthy());
    let (mut sup, _reports) = supervisor(&fake);
    let update = policy(true, 1, FailureAction::Rollback, 0.0);
    up(&mut sup, &web(1, "v1", 2, update.clone())).await;
    let mark = fake.log().len();
    let began = tokio::time::Instant::now();

    let done = deploy(&mut sup, &web(2, "v2", 2, update), Mode::Deploy).await;

    assert!(
        matches!(&done, Outcome::Deployed { replaced: 2, failed, .. } if failed.is_empty()),
        "{done:?}"
    );
    // Each new replica in a free slot beside its old one (never at its
    // address), healthy before the old one leaves the gateway, then stops.
    assert_eq!(
        since(&fake, mark),
        [
            start(1, 3, 2),
            drain(1),
            stop(1, 1),
            start(2, 1, 2),
            drain(2),
            stop(2, 1),
        ]
    );
    let timed = fake.timed_log();
    let when = |e: &Event| timed[mark..].iter().find(|(_, x)| x == e).unwrap().0;
    assert!(when(&drain(1)) >= when(&start(1, 3, 2)) + Duration::from_secs(2));
    assert!(fake.clashes().is_empty(), "{:?}", fake.clashes());
    assert_eq!(fake.running(WEB), [(1, 3, 2), (2, 1, 2)]);
    let states = settled(&sup, 2).await;
    assert!(states.iter().all(|s| s.revision == 2), "{states:?}");
    // Two batches of 2 s each, in paused time.
    assert!(began.elapsed() >= Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn stop_first_stops_the_old_replica_before_starting_the_new_in_its_slot() {
    let fake = Fake::new();
    fake.script(WEB, None, healthy());
    // The old replicas ignore their stop signal: killed after the grace
    // period, and only then is their address taken again.
    fake.script(
        WEB,
        Some(1),
        Script {
            ignores_stop: true,
            ..healthy()
        },
    );
    let (mut sup, _reports) = supervisor(&fake);
    let update = policy(false, 1, FailureAction::Rollback, 0.0);
    up(&mut sup, &web(1, "v1", 2, update.clone())).await;
    let mark = fake.log().len();

    let done = deploy(&mut sup, &web(2, "v2", 2, update), Mode::Deploy).await;

    assert!(
        matches!(done, Outcome::Deployed { replaced: 2, .. }),
        "{done:?}"
    );
    let kill = |slot| Event::Kill {
        svc: WEB.into(),
        slot,
        revision: 1,
    };
    assert_eq!(
        since(&fake, mark),
        [
            drain(1),
            stop(1, 1),
            kill(1),
            start(1, 1, 2),
            drain(2),
            stop(2, 1),
            kill(2),
            start(2, 2, 2),
        ]
    );
    let timed = fake.timed_log();
    let when = |e: &Event| timed[mark..].iter().find(|(_, x)| x == e).unwrap().0;
    assert!(when(&kill(1)) >= when(&stop(1, 1)) + Duration::from_secs(10));
    assert!(fake.clashes().is_empty(), "{:?}", fake.clashes());
    assert_eq!(fake.running(WEB), [(1, 1, 2), (2, 2, 2)]);
}

#[tokio::test(start_paused = true)]
async fn a_failure_mid_batch_past_the_ratio_rolls_the_replaced_replicas_back() {
    let fake = Fake::new();
    fake.script(WEB, None, healthy());
    // Revision 2's replica 2 never turns healthy; replica 1 does.
    fake.script_replica(WEB, 2, 2, failing());
    let (mut sup, _reports) = supervisor(&fake);
    let update = policy(true, 2, FailureAction::Rollback, 0.0);
    up(&mut sup, &web(1, "v1", 4, update.clone())).await;
    let mark = fake.log().len();

    let done = deploy(&mut sup, &web(2, "v2", 4, update), Mode::Deploy).await;

    let Outcome::Failed { reason, undone } = &done else {
        panic!("{done:?}")
    };
    assert!(*undone, "{done:?}");
    assert!(reason.starts_with("replica 2: unhealthy"), "{reason}");
    assert!(!reason.contains("replica 1"), "{reason}");
    // The second batch never started; replica 1 went back to revision 1:
    // its old instance (slot 1) left when its new one (slot 5) was
    // healthy, and came back in slot 1 before the new one left.
    let events = since(&fake, mark);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Start { replica: 3 | 4, .. }))
    );
    let k = |e: &Event| events.iter().position(|x| x == e);
    assert!(k(&drain(1)) < k(&stop(1, 1)), "{events:#?}");
    assert!(k(&stop(1, 1)) < k(&start(1, 1, 1)), "{events:#?}");
    assert!(k(&start(1, 1, 1)) < k(&drain(5)), "{events:#?}");
    assert!(k(&drain(5)) < k(&stop(5, 2)), "{events:#?}");
    assert!(fake.clashes().is_empty(), "{:?}", fake.clashes());
    let running = fake.running(WEB);
    assert!(running.iter().all(|(_, _, rev)| *rev == 1), "{running:?}");
    assert_eq!(running.len(), 4, "{running:?}");
    settled(&sup, 4).await;
}

#[tokio::test(start_paused = true)]
async fn failures_within_the_ratio_are_tolerated_and_keep_their_previous_revision() {
    let fake = Fake::new();
    fake.script(WEB, None, healthy());
    // Revision 2's replica 2 exits with code 3 after half a second.
    fake.script_replica(
        WEB,
        2,
        2,
        Script {
            exits: Some((Duration::from_millis(500), 3)),
            ..Script::default()
        },
    );
    let (mut sup, _reports) = supervisor(&fake);
    let update = policy(true, 2, FailureAction::Rollback, 0.25);
    up(&mut sup, &web(1, "v1", 4, update.clone())).await;

    let done = deploy(&mut sup, &web(2, "v2", 4, update), Mode::Deploy).await;

    let Outcome::Deployed {
        replaced, failed, ..
    } = &done
    else {
        panic!("{done:?}")
    };
    assert_eq!(*replaced, 3, "{done:?}");
    assert_eq!(failed.len(), 1, "{done:?}");
    assert!(
        failed[0].starts_with("replica 2: exited with code 3"),
        "{failed:?}"
    );
    let mut revisions: Vec<(u32, u64)> = fake.running(WEB).iter().map(|r| (r.0, r.2)).collect();
    revisions.sort_unstable();
    assert_eq!(revisions, [(1, 2), (2, 1), (3, 2), (4, 2)]);
    assert!(fake.clashes().is_empty(), "{:?}", fake.clashes());
}

#[tokio::test(start_paused = true)]
async fn a_failure_with_continue_goes_on_with_the_next_batches() {
    let fake = Fake::new();
    fake.script(WEB, None, healthy());
    fake.script_replica(WEB, 2, 1, failing());
    let (mut sup, _reports) = supervisor(&fake);
    let update = policy(true, 1, FailureAction::Continue, 0.0);
    up(&mut sup, &web(1, "v1", 3, update.clone())).await;

    let done = deploy(&mut sup, &web(2, "v2", 3, update), Mode::Deploy).await;

    let Outcome::Deployed {
        replaced, failed, ..
    } = &done
    else {
        panic!("{done:?}")
    };
    assert_eq!((*replaced, failed.len()), (2, 1), "{done:?}");
    let mut revisions: Vec<(u32, u64)> = fake.running(WEB).iter().map(|r| (r.0, r.2)).collect();
    revisions.sort_unstable();
    assert_eq!(revisions, [(1, 1), (2, 2), (3, 2)]);
}

/// A deploy that failed with `failure_action: pause`: replicas run mixed
/// revisions; a later deploy continues where it stopped, and a rollback
/// (the previous revision's plan, with its artifact) undoes it.
async fn paused(fake: &Fake) -> (Supervisor, mpsc::UnboundedReceiver<Report>, ServicePlan) {
    fake.script(WEB, None, healthy());
    fake.script_replica(WEB, 2, 3, failing());
    let (mut sup, reports) = supervisor(fake);
    let update = policy(true, 1, FailureAction::Pause, 0.0);
    let v1 = web(1, "v1", 3, update.clone());
    up(&mut sup, &v1).await;
    let done = deploy(&mut sup, &web(2, "v2", 3, update), Mode::Deploy).await;
    assert!(
        matches!(&done, Outcome::Failed { undone: false, reason } if reason.contains("replica 3")),
        "{done:?}"
    );
    let mut revisions: Vec<(u32, u64)> = fake.running(WEB).iter().map(|r| (r.0, r.2)).collect();
    revisions.sort_unstable();
    assert_eq!(
        revisions,
        [(1, 2), (2, 2), (3, 1)],
        "paused with mixed revisions"
    );
    (sup, reports, v1)
}

#[tokio::test(start_paused = true)]
async fn a_paused_deploy_continues_with_the_next_deploy() {
    let fake = Fake::new();
    let (mut sup, _reports, _) = paused(&fake).await;
    let mark = fake.log().len();
    let update = policy(true, 1, FailureAction::Pause, 0.0);

    let done = deploy(&mut sup, &web(3, "v3", 3, update), Mode::Deploy).await;

    assert!(
        matches!(done, Outcome::Deployed { replaced: 3, .. }),
        "{done:?}"
    );
    let running = fake.running(WEB);
    assert!(running.iter().all(|r| r.2 == 3), "{running:?}");
    drained_before_stopped(&since(&fake, mark));
    assert!(fake.clashes().is_empty(), "{:?}", fake.clashes());
}

#[tokio::test(start_paused = true)]
async fn a_rollback_after_a_paused_deploy_puts_the_previous_revision_back() {
    let fake = Fake::new();
    let (mut sup, _reports, v1) = paused(&fake).await;
    let mark = fake.log().len();
    // What `cove rollback` sends: the revision that ran before, as it was
    // recorded (with its artifact).
    let back = ServicePlan {
        artifact: Some(crate::artifact::Artifact {
            digest: "fake:v1".into(),
            program: None,
        }),
        ..v1
    };

    let done = deploy(&mut sup, &back, Mode::Converge).await;

    assert!(
        matches!(done, Outcome::Deployed { replaced: 2, .. }),
        "{done:?}"
    );
    let running = fake.running(WEB);
    assert!(running.iter().all(|r| r.2 == 1), "{running:?}");
    assert_eq!(running.len(), 3, "{running:?}");
    let events = since(&fake, mark);
    // Only the two replicas of revision 2 were replaced.
    let starts = events
        .iter()
        .filter(|e| matches!(e, Event::Start { .. }))
        .count();
    assert_eq!(starts, 2, "{events:#?}");
    drained_before_stopped(&events);
    assert!(fake.clashes().is_empty(), "{:?}", fake.clashes());
}

#[tokio::test(start_paused = true)]
async fn a_failure_during_monitor_fails_the_deploy() {
    let fake = Fake::new();
    fake.script(WEB, None, healthy());
    // Healthy at 2 s, unhealthy at 6 s: within the 10 s monitor.
    fake.script(
        WEB,
        Some(2),
        Script {
            unhealthy_after: Some(Duration::from_secs(6)),
            ..healthy()
        },
    );
    let (mut sup, _reports) = supervisor(&fake);
    let update = UpdatePolicy {
        monitor: Duration::from_secs(10),
        ..policy(true, 1, FailureAction::Rollback, 0.0)
    };
    up(&mut sup, &web(1, "v1", 1, update.clone())).await;

    let done = deploy(&mut sup, &web(2, "v2", 1, update), Mode::Deploy).await;

    assert!(
        matches!(&done, Outcome::Failed { reason, undone: true } if reason.contains("during monitor")),
        "{done:?}"
    );
    assert_eq!(fake.running(WEB), [(1, 1, 1)]);
}

#[tokio::test(start_paused = true)]
async fn a_scale_sent_during_a_rollout_waits_for_it_then_scales_the_new_revision() {
    let fake = Fake::new();
    fake.script(WEB, None, healthy());
    let (mut sup, _reports) = supervisor(&fake);
    let update = policy(true, 1, FailureAction::Rollback, 0.0);
    up(&mut sup, &web(1, "v1", 2, update.clone())).await;
    let v2 = web(2, "v2", 2, update);
    let deploying = sup.converge(&app(&v2), WEB, Mode::Deploy).unwrap();
    // One second into the rollout (its first new replica is not healthy
    // yet), the autoscaler asks for 4 replicas of what it planned.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let scaling = sup
        .converge(
            &app(&ServicePlan { replicas: 4, ..v2 }),
            WEB,
            Mode::Converge,
        )
        .unwrap();

    let deployed = outcome(deploying).await;
    let scaled = outcome(scaling).await;

    assert!(
        matches!(deployed, Outcome::Deployed { replaced: 2, .. }),
        "{deployed:?}"
    );
    assert_eq!(scaled, Outcome::Scaled { from: 2, to: 4 });
    let states = settled(&sup, 4).await;
    assert!(states.iter().all(|s| s.revision == 2), "{states:?}");
    let running = fake.running(WEB);
    assert_eq!(running.len(), 4, "{running:?}");
    assert!(running.iter().all(|r| r.2 == 2), "{running:?}");
    // The new replicas came once every old one had gone.
    let log = fake.log();
    let last_stop = log.iter().rposition(|e| matches!(e, Event::Stop { .. }));
    let first_extra = log
        .iter()
        .position(|e| matches!(e, Event::Start { replica: 3 | 4, .. }));
    assert!(last_stop < first_extra, "{log:#?}");
    assert!(fake.clashes().is_empty(), "{:?}", fake.clashes());
}

#[tokio::test(start_paused = true)]
async fn a_new_daemon_takes_over_a_rollout_its_killed_predecessor_left_halfway() {
    let fake = Fake::new();
    fake.script(WEB, None, healthy());
    let (mut old, _reports) = supervisor(&fake);
    // Ten seconds between batches: the daemon dies between them.
    let update = UpdatePolicy {
        delay: Duration::from_secs(10),
        ..policy(true, 1, FailureAction::Rollback, 0.0)
    };
    up(&mut old, &web(1, "v1", 2, update.clone())).await;
    let v2 = web(2, "v2", 2, update);
    let _deploying = old.converge(&app(&v2), WEB, Mode::Deploy).unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(fake.running(WEB), [(1, 3, 2), (2, 2, 1)], "halfway");
    fake.crash();
    let mark = fake.log().len();

    // The next daemon runs what its store says: revision 2.
    let (mut new, _reports) = supervisor(&fake);
    let restarts = HashMap::from([((WEB.to_string(), 1), 0)]);
    let mut rx = new.apply(&app(&v2), &[WEB.into()], &restarts).await;
    let started = outcome(rx.remove(0).1).await;

    assert!(matches!(started, Outcome::Started { .. }), "{started:?}");
    let states = settled(&new, 2).await;
    assert!(states.iter().all(|s| s.revision == 2), "{states:?}");
    let mut events = since(&fake, mark);
    events.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        events,
        [
            Event::Adopt {
                svc: WEB.into(),
                replica: 1,
                slot: 3,
                revision: 2
            },
            Event::Remove {
                svc: WEB.into(),
                slot: 2,
                revision: 1
            },
            start(2, 2, 2),
        ],
        "revision 2's replica taken over, revision 1's removed, the rest started"
    );
    assert_eq!(fake.running(WEB), [(1, 3, 2), (2, 2, 2)]);
    assert!(fake.clashes().is_empty(), "{:?}", fake.clashes());
}
