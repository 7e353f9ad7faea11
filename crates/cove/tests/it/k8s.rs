//! The test cluster (`scripts/k8s-cluster`): a real control plane (etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler built from Go
//! modules) with kwok's fake nodes, started in a temporary directory and
//! driven with kube-rs. A Deployment of 2 replicas gets 2 pods Running on
//! kwok's nodes, then 5 after a scale; the nodes keep leases (else the
//! node lifecycle controller marks them NotReady after its grace period).
//! Under CI (`CI=true`) a cluster that cannot be built or started fails
//! the test; elsewhere a machine without Go skips it, loudly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Container, Namespace, Node, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::daemon::run_bounded;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A cluster of the test's own in a temporary directory, stopped (by the
/// pids in its directory) when dropped; its logs are printed first when
/// the test is failing.
pub struct Cluster {
    dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

impl Cluster {
    /// Builds (or finds cached) and starts a cluster; `None` when Go is
    /// missing outside CI (said loudly). Panics with the script's output
    /// when the build or the start fails.
    pub fn start(test: &str) -> Option<Cluster> {
        let go = Command::new("go").arg("version").output();
        if !go.is_ok_and(|o| o.status.success()) {
            assert!(
                !ci(),
                "{test}: the test cluster is built from Go modules, and `go` is not installed"
            );
            eprintln!(
                "!!!!!! SKIPPED {test}: `go` not found; the test cluster (scripts/k8s-cluster) is built with it !!!!!!"
            );
            return None;
        }
        let script = repo().join("scripts/k8s-cluster");
        // scripts/test builds the binaries before the suite; run alone, the
        // first build of a machine takes tens of minutes.
        let built = run_bounded(Command::new("bash").arg(&script).arg("build"), 3600);
        assert_eq!(
            built.code,
            Some(0),
            "{test}: building the test cluster failed:\n{}",
            built.stderr
        );
        let dir = tempfile::tempdir().unwrap();
        let cluster_dir = dir.path().join("cluster");
        let cluster = Cluster {
            kubeconfig: cluster_dir.join("kubeconfig"),
            dir,
        };
        let started = run_bounded(
            Command::new("bash")
                .arg(&script)
                .arg("start")
                .arg(&cluster_dir)
                // Stops the cluster should this test process be killed before its Drop.
                .env("COVE_K8S_OWNER_PID", std::process::id().to_string()),
            600,
        );
        assert_eq!(
            started.code,
            Some(0),
            "{test}: starting the test cluster failed:\n{}",
            started.stderr
        );
        assert_eq!(started.stdout.trim(), cluster.kubeconfig.to_str().unwrap());
        Some(cluster)
    }

    fn cluster_dir(&self) -> PathBuf {
        self.dir.path().join("cluster")
    }

    /// A kube-rs client with this cluster's admin kubeconfig.
    pub async fn client(&self) -> kube::Client {
        // rustls cannot choose between ring and aws-lc-rs (both are in the
        // workspace's tree): ring, as DEPENDENCIES.md says. Err: already set.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .unwrap();
        kube::Client::try_from(config).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let dir = self.cluster_dir();
        if std::thread::panicking() {
            for part in [
                "etcd",
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "kwok",
            ] {
                let log =
                    fs_err::read_to_string(dir.join(format!("{part}.log"))).unwrap_or_default();
                let tail = &log[log.len().saturating_sub(3000)..];
                let tail = tail.get(tail.find('\n').unwrap_or(0)..).unwrap_or(tail);
                eprintln!("--- the last lines of {part}.log:{tail}");
            }
        }
        let out = run_bounded(
            Command::new("bash")
                .arg(repo().join("scripts/k8s-cluster"))
                .arg("stop")
                .arg(&dir),
            120,
        );
        if out.code != Some(0) {
            eprintln!("stopping the test cluster failed: {}", out.stderr);
        }
    }
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The pods of `app` in `ns` that are Running on one of kwok's nodes.
async fn running_on_kwok(pods: &Api<Pod>, app: &str) -> usize {
    let list = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap();
    list.items
        .iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            let node = p.spec.as_ref().and_then(|s| s.node_name.as_deref());
            phase == Some("Running") && node.is_some_and(|n| n.starts_with("kwok-node-"))
        })
        .count()
}

/// Waits (bounded) until exactly `want` pods of `app` are Running on
/// kwok's nodes and the Deployment counts them ready.
async fn wait_running(pods: &Api<Pod>, deployments: &Api<Deployment>, app: &str, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(180);
    let (mut running, mut ready) = (0, 0);
    while Instant::now() < deadline {
        running = running_on_kwok(pods, app).await;
        let d = deployments.get(app).await.unwrap();
        ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
        if running == want && usize::try_from(ready) == Ok(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!(
        "after 180 s: {running} pod(s) of {app} Running on kwok's nodes and {ready} ready, not {want}"
    );
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    let labels = BTreeMap::from([("app".to_string(), name.to_string())]);
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: name.into(),
                        // Never pulled: kwok's nodes run no containers.
                        image: Some("registry.invalid/cove/web:1".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn cluster_runs_a_deployment_and_scales_it() {
    let Some(cluster) = Cluster::start("k8s::cluster_runs_a_deployment_and_scales_it") else {
        return;
    };
    runtime().block_on(async {
        let client = cluster.client().await;

        let nodes: Api<Node> = Api::all(client.clone());
        let names: Vec<String> = nodes
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        assert_eq!(names, ["kwok-node-0", "kwok-node-1"]);
        // Regression: without node leases (kwok's --node-lease-duration-seconds)
        // the node lifecycle controller marked the nodes NotReady ~50 s after
        // the start, and every pod un-Ready for good.
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let held: Vec<String> = leases
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|l| l.spec.as_ref().is_some_and(|s| s.renew_time.is_some()))
                .filter_map(|l| l.metadata.name)
                .collect();
            if held == names {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "after 60 s, the nodes' leases renewed: {held:?}, not {names:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }

        let ns = "cove-k8s-test";
        create_namespace(&client, ns).await;

        let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        deployments
            .create(&PostParams::default(), &deployment("web", 2))
            .await
            .unwrap();
        wait_running(&pods, &deployments, "web", 2).await;

        let scale = serde_json::json!({"spec": {"replicas": 5}});
        deployments
            .patch_scale("web", &PatchParams::default(), &Patch::Merge(&scale))
            .await
            .unwrap();
        wait_running(&pods, &deployments, "web", 5).await;
    });
}

/// Creates namespace `ns`.
pub(crate) async fn create_namespace(client: &kube::Client, ns: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(ns.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
}
