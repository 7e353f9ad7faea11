//! `cove k8s apply`, `status`, `diff`, `rollback` and `delete` through the
//! CLI against the test cluster (`k8s::Cluster`: a real API server,
//! controllers and scheduler; kwok's nodes report pods Running and Ready
//! without running them, so what is proven is what the API server and
//! the controllers do with cove's objects — not that the images work).
//!
//! One cluster per test (each starts in seconds once built); every wait
//! is bounded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};

use crate::daemon::{Out, run_bounded};
use crate::k8s::{Cluster, create_namespace, runtime};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn buffs() -> PathBuf {
    repo().join("examples/buffs/compose.yaml")
}

/// `cove -f FILE k8s ARGS` against `cluster` (buffs' demo identity opens
/// its secrets file).
fn cove(cluster: &Cluster, file: &Path, args: &[&str]) -> Out {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_cove"))
            .arg("-f")
            .arg(file)
            .arg("k8s")
            .args(args)
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env(
                "COVE_IDENTITY",
                repo().join("examples/buffs/demo-identity.txt"),
            )
            .env("NO_COLOR", "1"),
        300,
    )
}

#[track_caller]
fn ok(out: &Out, what: &str) {
    assert_eq!(
        out.code,
        Some(0),
        "{what} failed:\nstdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
}

/// Every member of an applyset (`part-of` = `selector`'s value), as
/// `Kind/name` → resourceVersion.
async fn members(client: &kube::Client, ns: &str, project: &str) -> BTreeMap<String, String> {
    let set = cove_k8s::cluster::ApplySet::new(project, ns);
    let mut out = BTreeMap::new();
    for (group, version, kind, plural) in cove_k8s::Object::kinds() {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            ns,
            &ApiResource::from_gvk_with_plural(&gvk, plural),
        );
        let list = api
            .list(&ListParams::default().labels(&set.selector()))
            .await
            .unwrap();
        for o in list.items {
            out.insert(
                format!("{kind}/{}", o.metadata.name.unwrap_or_default()),
                o.metadata.resource_version.unwrap_or_default(),
            );
        }
    }
    out
}

/// The pods of `project` in `ns` run by Deployments and StatefulSets
/// (not Jobs): (Running on a kwok node, all).
async fn long_running_pods(client: &kube::Client, ns: &str, project: &str) -> (usize, usize) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/part-of={project}")))
        .await
        .unwrap();
    let long: Vec<&Pod> = list
        .items
        .iter()
        .filter(|p| {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "ReplicaSet" || o.kind == "StatefulSet")
        })
        .collect();
    let running = long
        .iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            let node = p.spec.as_ref().and_then(|s| s.node_name.as_deref());
            phase == Some("Running") && node.is_some_and(|n| n.starts_with("kwok-node-"))
        })
        .count();
    (running, long.len())
}

/// Waits (bounded) until every Service of `project` in `ns` has a ready
/// endpoint in its EndpointSlices; returns the Services' names.
async fn services_with_endpoints(client: &kube::Client, ns: &str, project: &str) -> Vec<String> {
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let names: Vec<String> = services
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/part-of={project}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut missing = names.clone();
    while Instant::now() < deadline && !missing.is_empty() {
        let mut still = Vec::new();
        for name in missing {
            let list = slices
                .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={name}")))
                .await
                .unwrap();
            let ready = list
                .items
                .iter()
                .flat_map(|s| &s.endpoints)
                .any(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false));
            if !ready {
                still.push(name);
            }
        }
        missing = still;
        if !missing.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    assert!(
        missing.is_empty(),
        "after 120 s, Services without a ready endpoint: {missing:?}"
    );
    names
}

/// examples/kvstore's compose file with an image for each service, in
/// `dir`: its `build:` lines (examples' Dockerfiles) are not on this
/// branch, and a cluster runs images.
fn kvstore_with_images(dir: &Path) -> PathBuf {
    let text = fs_err::read_to_string(repo().join("examples/kvstore/compose.yaml")).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':'))
            && ["backend", "server", "client"].contains(&name)
        {
            out.push_str(&format!("    image: reg.test/kvstore/{name}:1\n"));
        }
    }
    let file = dir.join("compose.yaml");
    fs_err::write(&file, out).unwrap();
    file
}

/// buffs and kvstore applied: every pod of their Deployments and
/// StatefulSets Running on kwok's nodes, every Service with a ready
/// endpoint (EndpointSlices: the real controller saw Ready pods behind
/// the Service's selector and ports); a second apply changes nothing (no
/// object's resourceVersion moves) and `diff` says so (exit 0, no
/// output), while a changed file makes `diff` exit 1 with the change.
#[test]
fn examples_apply_run_and_a_second_apply_changes_nothing() {
    let Some(cluster) =
        Cluster::start("k8s_apply::examples_apply_run_and_a_second_apply_changes_nothing")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let kvstore = kvstore_with_images(tmp.path());
    runtime().block_on(async {
        let client = cluster.client().await;
        let nodes: Api<Node> = Api::all(client.clone());
        assert_eq!(
            nodes
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .len(),
            2
        );

        let applied = cove(
            &cluster,
            &buffs(),
            &["apply", "--registry", "reg.test/buffs"],
        );
        ok(&applied, "applying buffs");
        assert!(
            applied
                .stderr
                // Its HorizontalPodAutoscaler owns the count: the rollout
                // may be seen complete before it scaled (a CI run saw `1/1`).
                .contains("deployment/server: rolled out (")
                && applied
                    .stderr
                    .contains("job/redis-cluster-init: rolled out (complete)"),
            "{}",
            applied.stderr
        );
        // 1 dashboard + 2 servers + mysql + activemq + 6 Redis nodes.
        assert_eq!(
            long_running_pods(&client, "default", "buffs").await,
            (11, 11)
        );
        let services = services_with_endpoints(&client, "default", "buffs").await;
        assert!(services.contains(&"server".to_string()), "{services:?}");
        assert!(services.contains(&"dashboard".to_string()), "{services:?}");
        // The secrets' values went to the cluster through the API: the
        // Secret of `db_password` holds what `render --include-secrets`
        // reads from the encrypted file (and plain `render` never prints).
        let secrets: Api<Secret> = Api::default_namespaced(client.clone());
        let name = cove_k8s::names::dns_label("db_password");
        let secret = secrets.get(&name).await.unwrap();
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get("db_password"))
            .unwrap_or_else(|| panic!("Secret {name} has no value: {secret:?}"));
        assert!(!value.0.is_empty());
        // base64, as the YAML prints it (unquoted).
        let encoded = serde_json::to_string(value)
            .unwrap()
            .trim_matches('"')
            .to_string();
        let with = cove(
            &cluster,
            &buffs(),
            &[
                "render",
                "--registry",
                "reg.test/buffs",
                "--include-secrets",
            ],
        );
        ok(&with, "render --include-secrets");
        assert!(
            with.stdout.contains(&encoded),
            "{encoded} not in:\n{}",
            with.stdout
        );
        let without = cove(
            &cluster,
            &buffs(),
            &["render", "--registry", "reg.test/buffs"],
        );
        ok(&without, "render");
        assert!(!without.stdout.contains(&encoded));

        let before = members(&client, "default", "buffs").await;
        assert!(before.contains_key("Deployment/server"), "{before:?}");
        let again = cove(
            &cluster,
            &buffs(),
            &["apply", "--registry", "reg.test/buffs"],
        );
        ok(&again, "applying buffs again");
        assert_eq!(members(&client, "default", "buffs").await, before);
        let diff = cove(
            &cluster,
            &buffs(),
            &["diff", "--registry", "reg.test/buffs"],
        );
        ok(&diff, "diff after the second apply");
        assert_eq!(diff.stdout, "");
        let changed = cove(&cluster, &buffs(), &["diff", "--registry", "reg.test/v2"]);
        assert_eq!(changed.code, Some(1), "{}", changed.stderr);
        assert!(
            changed
                .stdout
                .contains("-          image: reg.test/buffs/buffs-server:latest")
                && changed
                    .stdout
                    .contains("+          image: reg.test/v2/buffs-server:latest"),
            "{}",
            changed.stdout
        );
        assert_eq!(
            members(&client, "default", "buffs").await,
            before,
            "diff changed something"
        );

        create_namespace(&client, "kv").await;
        let applied = cove(&cluster, &kvstore, &["apply", "--namespace", "kv"]);
        ok(&applied, "applying kvstore");
        // 1 backend + 2 servers; the client is in a profile, not rendered.
        assert_eq!(long_running_pods(&client, "kv", "kvstore").await, (3, 3));
        let services = services_with_endpoints(&client, "kv", "kvstore").await;
        assert_eq!(services, ["backend", "server"]);
        let diff = cove(&cluster, &kvstore, &["diff", "--namespace", "kv"]);
        ok(&diff, "kvstore's diff after apply");
    });
}

fn status(cluster: &Cluster) -> Vec<serde_json::Value> {
    let out = cove(cluster, &buffs(), &["status", "--format", "json"]);
    ok(&out, "status");
    serde_json::from_str(&out.stdout).unwrap()
}

fn row<'a>(rows: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {rows:?}"))
}

/// A changed image rolls out (the Deployment's revision 2, its image in
/// `status`); `rollback server` brings the previous template back (the
/// controller makes it revision 3); a service removed from the file is
/// pruned with its Service; `delete` leaves nothing of the app.
#[test]
fn a_new_image_rolls_out_rolls_back_and_a_removed_service_is_pruned() {
    let Some(cluster) = Cluster::start(
        "k8s_apply::a_new_image_rolls_out_rolls_back_and_a_removed_service_is_pruned",
    ) else {
        return;
    };
    let v1 = "reg.test/buffs/buffs-server:latest";
    let v2 = "reg.test/v2/buffs-server:latest";
    ok(
        &cove(
            &cluster,
            &buffs(),
            &["apply", "--registry", "reg.test/buffs"],
        ),
        "apply v1",
    );
    let rows = status(&cluster);
    assert_eq!(row(&rows, "server")["revision"], "1");
    assert_eq!(row(&rows, "server")["images"], serde_json::json!([v1]));

    let rolled = cove(&cluster, &buffs(), &["apply", "--registry", "reg.test/v2"]);
    ok(&rolled, "apply v2");
    assert!(
        rolled.stderr.contains("deployment/server: rolled out"),
        "{}",
        rolled.stderr
    );
    let rows = status(&cluster);
    let server = row(&rows, "server");
    assert_eq!(server["revision"], "2");
    assert_eq!(server["images"], serde_json::json!([v2]));
    assert_eq!(
        (server["updated"].as_i64(), server["available"].as_i64()),
        (Some(2), Some(2))
    );
    assert!(
        server["condition"]
            .as_str()
            .unwrap()
            .starts_with("rolled out"),
        "{server}"
    );

    let back = cove(&cluster, &buffs(), &["rollback", "server"]);
    ok(&back, "rollback");
    assert!(
        back.stderr.contains("from revision 2 to revision 1"),
        "{}",
        back.stderr
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let rows = status(&cluster);
        let server = row(&rows, "server");
        if server["images"] == serde_json::json!([v1])
            && server["revision"] == "3"
            && server["condition"]
                .as_str()
                .unwrap()
                .starts_with("rolled out")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 120 s, not rolled back: {server}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The dashboard was not rolled back: still v2.
    assert_eq!(
        row(&status(&cluster), "dashboard")["images"],
        serde_json::json!(["reg.test/v2/buffs-dashboard:latest"])
    );
    let none = cove(&cluster, &buffs(), &["rollback", "redis-cluster-init"]);
    assert_eq!(none.code, Some(1));
    assert!(
        none.stderr.contains("Jobs have no revisions"),
        "{}",
        none.stderr
    );

    // The file without the dashboard (its copy, with the secrets file).
    let tmp = tempfile::tempdir().unwrap();
    let text = fs_err::read_to_string(buffs()).unwrap();
    let start = text.find("\n  dashboard:\n").unwrap();
    let end = text.find("\n  server:\n").unwrap();
    let without = format!("{}{}", &text[..start], &text[end..]);
    let file = tmp.path().join("compose.yaml");
    fs_err::write(&file, without).unwrap();
    fs_err::copy(
        repo().join("examples/buffs/cove.secrets.yaml"),
        tmp.path().join("cove.secrets.yaml"),
    )
    .unwrap();
    let diff = cove(&cluster, &file, &["diff", "--registry", "reg.test/v2"]);
    assert_eq!(diff.code, Some(1));
    assert!(
        diff.stdout.contains("pruned: Deployment/dashboard"),
        "{}",
        diff.stdout
    );
    let pruned = cove(&cluster, &file, &["apply", "--registry", "reg.test/v2"]);
    ok(&pruned, "apply without the dashboard");
    assert!(
        pruned.stderr.contains("Deployment/dashboard pruned")
            && pruned.stderr.contains("Service/dashboard pruned"),
        "{}",
        pruned.stderr
    );
    runtime().block_on(async {
        let client = cluster.client().await;
        let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
        let services: Api<Service> = Api::default_namespaced(client.clone());
        assert!(deployments.get_opt("dashboard").await.unwrap().is_none());
        assert!(services.get_opt("dashboard").await.unwrap().is_none());
        assert!(deployments.get_opt("server").await.unwrap().is_some());

        let deleted = cove(&cluster, &file, &["delete"]);
        ok(&deleted, "delete");
        let left: Vec<String> = members(&client, "default", "buffs")
            .await
            .into_keys()
            .filter(|k| !k.starts_with("PersistentVolumeClaim/"))
            .collect();
        assert_eq!(left, Vec::<String>::new());
        let secrets: Api<Secret> = Api::default_namespaced(client.clone());
        assert!(
            secrets
                .get_opt("cove-applyset-buffs")
                .await
                .unwrap()
                .is_none()
        );
    });
}

/// A rollout that cannot progress fails `apply` (exit 1) naming the
/// workload, the reason and its pods' events. kwok runs no probes, so a
/// probe that never passes cannot be simulated: here both nodes are
/// cordoned (`spec.unschedulable`, as `kubectl cordon`), so the new
/// image's pod stays Pending and the Deployment never gets its updated
/// replica available — what this proves is that cove waits for the new
/// ReplicaSet (not the old pods, still Running), gives up at `--timeout`
/// and reports the scheduler's FailedScheduling event. Before that: the
/// kubeconfig as kubectl finds it (`--context`, `KUBECONFIG` as a list).
#[test]
fn a_rollout_that_cannot_progress_fails_naming_it() {
    let Some(cluster) = Cluster::start("k8s_apply::a_rollout_that_cannot_progress_fails_naming_it")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("compose.yaml");
    let write = |tag: &str| {
        fs_err::write(
            &file,
            format!("name: stuck\nservices:\n  web:\n    image: reg.test/web:{tag}\n    expose: [\"80\"]\n"),
        )
        .unwrap();
    };
    write("1");
    // The kubeconfig's context by name, as kubectl's --context.
    ok(
        &cove(&cluster, &file, &["apply", "--context", "cove-test"]),
        "apply web:1",
    );
    // KUBECONFIG as a list: a file that does not exist is skipped, as by kubectl.
    let listed = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_cove"))
            .arg("-f")
            .arg(&file)
            .args(["k8s", "status"])
            .env(
                "KUBECONFIG",
                std::env::join_paths([tmp.path().join("missing"), cluster.kubeconfig.clone()])
                    .unwrap(),
            ),
        120,
    );
    ok(&listed, "status with KUBECONFIG=missing:real");
    assert!(
        listed.stdout.contains("deployment/web"),
        "{}",
        listed.stdout
    );
    let nope = cove(&cluster, &file, &["status", "--context", "nope"]);
    assert_eq!(nope.code, Some(1));
    assert!(
        nope.stderr
            .contains("error: no cluster to talk to: context \"nope\"")
            && nope.stderr.contains("hint:"),
        "{}",
        nope.stderr
    );
    runtime().block_on(async {
        let client = cluster.client().await;
        let nodes: Api<Node> = Api::all(client.clone());
        for n in ["kwok-node-0", "kwok-node-1"] {
            let cordon = serde_json::json!({"spec": {"unschedulable": true}});
            nodes
                .patch(n, &PatchParams::default(), &Patch::Merge(&cordon))
                .await
                .unwrap();
        }
    });
    write("2");
    let failed = cove(&cluster, &file, &["apply", "--timeout", "15s"]);
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    assert!(
        failed
            .stderr
            .contains("error: deployment/web did not roll out: not rolled out after 15s"),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("FailedScheduling"),
        "{}",
        failed.stderr
    );
    assert!(failed.stderr.contains("unschedulable"), "{}", failed.stderr);
}

/// A StatefulSet (a service with a named volume) rolls back through its
/// ControllerRevisions: `rollback store` returns to the first image (the
/// controller renumbers that revision 3), `--to 2` to the second. A Job
/// (`restart: "no"`) whose image changed is replaced by apply (the API
/// server refuses to change a Job's template) and completes.
#[test]
fn a_statefulset_rolls_back_and_a_changed_job_is_replaced() {
    let Some(cluster) =
        Cluster::start("k8s_apply::a_statefulset_rolls_back_and_a_changed_job_is_replaced")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("compose.yaml");
    let write = |tag: &str| {
        fs_err::write(
            &file,
            format!(
                "name: db\nservices:\n  store:\n    image: reg.test/store:{tag}\n    volumes: [data:/data]\n  migrate:\n    image: reg.test/migrate:{tag}\n    restart: \"no\"\nvolumes:\n  data:\n"
            ),
        )
        .unwrap();
    };
    let store = |cluster: &Cluster| {
        let out = cove(cluster, &file, &["status", "--format", "json"]);
        ok(&out, "status");
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
        let row = row(&rows, "store").clone();
        assert_eq!(row["kind"], "StatefulSet");
        row
    };
    write("1");
    ok(&cove(&cluster, &file, &["apply"]), "apply store:1");
    write("2");
    let second = cove(&cluster, &file, &["apply"]);
    ok(&second, "apply store:2");
    // A Job's template cannot change: apply replaces the Job.
    assert!(
        second.stderr.contains("Job/migrate replaced")
            && second.stderr.contains("job/migrate: rolled out (complete)"),
        "{}",
        second.stderr
    );
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&cove(&cluster, &file, &["status", "--format", "json"]).stdout)
            .unwrap();
    assert_eq!(
        row(&rows, "migrate")["images"],
        serde_json::json!(["reg.test/migrate:2"])
    );
    let now = store(&cluster);
    assert_eq!(
        (&now["revision"], &now["images"]),
        (&"2".into(), &serde_json::json!(["reg.test/store:2"]))
    );

    for (args, revision, image) in [
        (&["rollback", "store"][..], "3", "reg.test/store:1"),
        (
            &["rollback", "store", "--to", "2"][..],
            "4",
            "reg.test/store:2",
        ),
    ] {
        ok(&cove(&cluster, &file, args), "rollback");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let now = store(&cluster);
            if now["revision"] == revision
                && now["images"] == serde_json::json!([image])
                && now["condition"].as_str().unwrap().starts_with("rolled out")
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "after 120 s, {args:?} did not give revision {revision}: {now}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
