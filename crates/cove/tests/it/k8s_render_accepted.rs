//! Every object `cove k8s render` makes of a fixture that uses each part
//! of the translation helper A wrote (Services with TCP and UDP on one
//! name, probes with a startup probe, init containers and the Job access
//! they need, a Job's backoff, resources, a rolling update, an HPA,
//! Ingresses with nginx annotations, labels as annotations, a name with
//! `_`) is accepted by the test cluster's API server: created with a
//! server-side dry run (`dryRun=All`: validated and defaulted, not
//! stored).

use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;

use crate::k8s::Cluster;

const FIXTURE: &str = r#"
services:
  front_end:
    image: registry.invalid/fe:1
    ports: ["8080:80", "53:53/udp", "53:53/tcp"]
    labels: { com.example.team: web, com.example.description: "The front end" }
    healthcheck: { test: "curl -f http://localhost/", interval: 500ms, start_period: 10s }
    stop_grace_period: 20s
    user: "1000:1000"
    deploy:
      replicas: 2
      resources:
        limits: { cpus: "0.5", memory: 256M }
        reservations: { cpus: "0.25", memory: 128M }
      update_config: { parallelism: 1, order: start-first }
    x-cove:
      autoscale: { min: 2, max: 6, target_rps: 100, scale_up_after: 30s }
      routes:
        - { host: app.example.test }
        - { host: app.example.test, path: /api, strip_prefix: true, timeout: 30s, max_body: 1m }
        - { host: grpc.example.test, protocol: grpc }
    depends_on:
      db: { condition: service_healthy }
      migrate: { condition: service_completed_successfully }
    environment: { DB: "postgres://u@db:5432/x" }
  db:
    image: registry.invalid/db:1
    healthcheck: { test: ["CMD", "pg_isready"], retries: 5 }
  migrate:
    image: registry.invalid/migrate:1
    restart: on-failure:3
    x-cove: { health: { tcp: 9 } }
"#;

#[test]
fn rendered_objects_are_accepted_by_the_api_server() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("compose.yaml"), FIXTURE).unwrap();
    let project = cove_spec::load(&cove_spec::Options {
        files: vec![dir.path().join("compose.yaml")],
        project_name: Some("fixture".into()),
        ..cove_spec::Options::default()
    })
    .unwrap();
    let rendered = cove_k8s::render(
        &project.app,
        &cove_k8s::Options {
            namespace: Some("default".into()),
            ..cove_k8s::Options::default()
        },
    )
    .unwrap();
    let kinds: Vec<&str> = rendered.objects.iter().map(|o| o.kind()).collect();
    for kind in [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
        "Job",
        "HorizontalPodAutoscaler",
        "Ingress",
    ] {
        assert!(kinds.contains(&kind), "no {kind} among {kinds:?}");
    }

    let Some(cluster) =
        Cluster::start("k8s_render_accepted::rendered_objects_are_accepted_by_the_api_server")
    else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = cluster.client().await;
        let pp = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        let mut refused = Vec::new();
        for o in &rendered.objects {
            let version = o.api_version().rsplit('/').next().unwrap();
            let resource = ApiResource {
                group: o.group().into(),
                version: version.into(),
                api_version: o.api_version().into(),
                kind: o.kind().into(),
                plural: o.plural().into(),
            };
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), "default", &resource);
            let object: DynamicObject = serde_json::from_value(o.to_json()).unwrap();
            if let Err(e) = api.create(&pp, &object).await {
                refused.push(format!(
                    "{}/{}: {e}",
                    o.kind(),
                    o.metadata().name.clone().unwrap_or_default()
                ));
            }
        }
        assert!(
            refused.is_empty(),
            "the API server refused:\n{}",
            refused.join("\n")
        );
    });
}
