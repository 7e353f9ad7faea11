//! `cove k8s wait-for --job`, the command of the init containers that wait
//! for `service_completed_successfully`, against the test cluster: as the
//! service account `cove k8s render` gives the waiting pods (through
//! impersonation, which kube-rs's `KUBE_RS_DEBUG_IMPERSONATE_USER` sets),
//! it waits while the Job does not exist and has not completed, returns
//! once it has (kwok completes a Job's pods, the Job controller the Job),
//! and may read no other Job. And `--tcp`, without a cluster: it waits for
//! a listener that appears later, and gives up at `--timeout`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

use crate::daemon::run_bounded;
use crate::k8s::Cluster;

const NS: &str = "wait-for";

/// A process killed (by its pid) when dropped.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(cluster: &Cluster, job: &str, timeout: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cove"));
    cmd.args([
        "k8s",
        "wait-for",
        "--job",
        job,
        "-n",
        NS,
        "--timeout",
        timeout,
    ])
    .env("KUBECONFIG", &cluster.kubeconfig)
    .env(
        "KUBE_RS_DEBUG_IMPERSONATE_USER",
        format!("system:serviceaccount:{NS}:app-wait-for-jobs"),
    );
    cmd
}

fn rendered() -> cove_k8s::Rendered {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(
        dir.path().join("compose.yaml"),
        r#"
services:
  seed:
    image: registry.invalid/cove/seed:1
    restart: "no"
  web:
    image: registry.invalid/cove/web:1
    depends_on:
      seed: { condition: service_completed_successfully }
"#,
    )
    .unwrap();
    let project = cove_spec::load(&cove_spec::Options {
        files: vec![dir.path().join("compose.yaml")],
        project_name: Some("app".into()),
        ..cove_spec::Options::default()
    })
    .unwrap();
    cove_k8s::render(
        &project.app,
        &cove_k8s::Options {
            namespace: Some(NS.into()),
            ..cove_k8s::Options::default()
        },
    )
    .unwrap()
}

#[test]
fn wait_for_job_returns_when_the_job_completes() {
    let Some(cluster) = Cluster::start("k8s_wait_for::wait_for_job_returns_when_the_job_completes")
    else {
        return;
    };
    let rendered = rendered();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = cluster.client().await;
        let pp = PostParams::default();
        Api::<Namespace>::all(client.clone())
            .create(
                &pp,
                &Namespace {
                    metadata: ObjectMeta {
                        name: Some(NS.into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        // The rendered access of the waiting pods.
        let mut job = None;
        for o in &rendered.objects {
            match o {
                cove_k8s::Object::ServiceAccount(x) => {
                    Api::<ServiceAccount>::namespaced(client.clone(), NS)
                        .create(&pp, x)
                        .await
                        .unwrap();
                }
                cove_k8s::Object::Role(x) => {
                    Api::<Role>::namespaced(client.clone(), NS)
                        .create(&pp, x)
                        .await
                        .unwrap();
                }
                cove_k8s::Object::RoleBinding(x) => {
                    Api::<RoleBinding>::namespaced(client.clone(), NS)
                        .create(&pp, x)
                        .await
                        .unwrap();
                }
                cove_k8s::Object::Job(x) => job = Some(x.as_ref().clone()),
                _ => {}
            }
        }
        let job = job.expect("the rendered Job");
        assert_eq!(job.metadata.name.as_deref(), Some("seed"));

        // Before the Job exists: it waits.
        let mut waiter = Kill(
            wait_for(&cluster, "seed", "150s")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            waiter.0.try_wait().unwrap().is_none(),
            "wait-for returned before the Job existed"
        );
        Api::<Job>::namespaced(client.clone(), NS)
            .create(&pp, &job)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(170);
        let status = loop {
            if let Some(status) = waiter.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "wait-for did not return in 170 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut waiter.0.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(status.success(), "wait-for failed: {stderr}");
        assert!(stderr.contains("Job seed completed"), "{stderr}");
        // It returned because the Job completed.
        let done = Api::<Job>::namespaced(client.clone(), NS)
            .get("seed")
            .await
            .unwrap();
        let complete = done
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Complete" && c.status == "True");
        assert!(complete, "the Job is not Complete");
    });

    // The Role names only the Jobs the app waits for.
    let out = run_bounded(&mut wait_for(&cluster, "other", "30s"), 60);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("may not read Job other"),
        "{}",
        out.stderr
    );
}

/// `--tcp`: waits for a listener that appears after a while, then exits
/// 0; exits 1 at `--timeout` when none appears. No cluster needed.
#[test]
fn wait_for_tcp_waits_for_a_listener_and_gives_up_at_the_timeout() {
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let port = free_port();
    let started = Instant::now();
    let listener = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let _ = l.accept();
    });
    let out = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_cove")).args([
            "k8s",
            "wait-for",
            "--tcp",
            &format!("127.0.0.1:{port}"),
            "--timeout",
            "120s",
        ]),
        180,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "it returned before the listener existed"
    );
    assert!(out.stderr.contains("accepts connections"), "{}", out.stderr);
    listener.join().unwrap();

    let port = free_port();
    let out = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_cove")).args([
            "k8s",
            "wait-for",
            "--tcp",
            &format!("127.0.0.1:{port}"),
            "--timeout",
            "1s",
        ]),
        60,
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("did not accept a connection"),
        "{}",
        out.stderr
    );
}
