//! The plan side of previews: service addresses served as HTTP when the
//! app declares `x-cove.previews`, services served elsewhere (a preview's
//! shared ones, at its baseline's addresses), and a project without entry
//! routes.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use cove_runtime::plan::{Placement, Plan, PlanError, plan_at};
use cove_runtime::recipe::Host;
use cove_runtime::routes::{Protocol, RoutePlan};

fn load(dir: &Path, yaml: &str) -> cove_spec::App {
    let file = dir.join("compose.yaml");
    fs_err::write(&file, yaml).expect("write");
    cove_spec::project::load(&cove_spec::project::Options {
        files: vec![file],
        project_name: Some("pv".into()),
        ..Default::default()
    })
    .unwrap_or_else(|f| panic!("{}", f.render(&Default::default())))
    .app
}

fn placement(dir: &Path) -> Placement {
    Placement {
        project_dir: dir.to_path_buf(),
        net: 9,
        secrets_root: PathBuf::from("/nowhere/secrets"),
        host: Host::default(),
        external: BTreeMap::new(),
        entry: true,
    }
}

/// `yaml` (written in `dir`) planned at the placement `placement` makes
/// of `dir`.
fn planned(
    dir: &Path,
    yaml: &str,
    placement: impl FnOnce(&Path) -> Placement,
) -> Result<Plan, Vec<PlanError>> {
    let app = load(dir, yaml);
    plan_at(&app, &placement(dir), None)
}

fn plan(dir: &Path, yaml: &str) -> Plan {
    planned(dir, yaml, placement).unwrap_or_else(|e| panic!("{e:?}"))
}

/// The internal routes of `service`: (port, protocol, host, path, strip).
fn own(p: &Plan, service: &str) -> Vec<(u16, Protocol, Option<String>, String, bool)> {
    p.gateway
        .routes
        .iter()
        .filter(|r| r.internal && r.service == service)
        .map(|r| {
            (
                r.port,
                r.protocol,
                r.host.clone(),
                r.path.clone(),
                r.strip_prefix,
            )
        })
        .collect()
}

/// `api` has an HTTP route on 8000 (explicit, with a host and a path it
/// strips), a gRPC one on 50051 and nothing on 9000; `web` has its
/// default route (first port, 8080); `cache` is a database. `front`
/// names each, so each has an address of its own.
const SERVICES: &str = r#"
services:
  api:
    x-cove:
      run: "sleep 1000"
      routes:
        - {host: api.example.test, path: /v1, strip_prefix: true, port: 8000}
        - {protocol: grpc, host: grpc.localhost, port: 50051}
    ports: ["8000", "50051", "9000"]
  web:
    x-cove: {run: "sleep 1000"}
    expose: ["8080", "8081"]
  cache:
    image: redis:7
    x-cove: {routes: [], run: "sleep 1000"}
    expose: ["6379"]
    deploy: {update_config: {order: start-first}}
  front:
    x-cove: {run: "sleep 1000"}
    environment:
      API: http://api:8000
      RPC: api:50051
      ADMIN: api:9000
      WEB: http://web:8080
      CACHE: cache:6379
"#;

#[test]
fn service_addresses_carry_http_where_the_service_has_an_http_route_when_previews_are_declared() {
    let dir = tempfile::tempdir().expect("temp dir");
    let with = plan(
        dir.path(),
        &format!("{SERVICES}x-cove: {{previews: {{}}}}\n"),
    );
    let http = |port| (port, Protocol::Http, None, "/".to_string(), false);
    let tcp = |port| (port, Protocol::Tcp, None, "/".to_string(), false);
    assert_eq!(own(&with, "api"), [http(8000), tcp(50051), tcp(9000)]);
    assert_eq!(own(&with, "web"), [http(8080), tcp(8081)]);
    assert_eq!(own(&with, "cache"), [tcp(6379)]);
    // Each on the service's own address, at the port.
    for r in with.gateway.routes.iter().filter(|r| r.internal) {
        let svc = with.services.iter().find(|s| s.name == r.service).unwrap();
        let at = svc.service_address.expect("an address of its own");
        assert_eq!(r.listen, Some(SocketAddr::from((at, r.port))), "{r:?}");
    }
    // Without `x-cove.previews`, the same app: every port at layer 4, and
    // otherwise the very same plan.
    let without = plan(dir.path(), SERVICES);
    for s in ["api", "web", "cache"] {
        let ports: Vec<_> = own(&with, s).iter().map(|r| r.0).collect();
        assert_eq!(
            own(&without, s),
            ports.into_iter().map(tcp).collect::<Vec<_>>()
        );
    }
    let as_tcp = |r: &RoutePlan| RoutePlan {
        protocol: if r.internal {
            Protocol::Tcp
        } else {
            r.protocol
        },
        ..r.clone()
    };
    let routes: Vec<_> = with.gateway.routes.iter().map(as_tcp).collect();
    assert_eq!(routes, without.gateway.routes);
    assert_eq!(with.services, without.services);
}

/// `a → b → c` over HTTP, `b` also on `db` (by its name alone, and as a
/// host in its command), and `cove run`'s rewrites.
const CHAIN: &str = r#"
x-cove: {previews: {}}
services:
  a:
    x-cove: {run: "sleep 1000"}
    expose: ["8000"]
    environment: {NEXT: "http://b:8000/"}
    depends_on: [b]
  b:
    x-cove: {run: "client -h db --host=c sleep c:8000"}
    expose: ["8000"]
    environment: {NEXT: "http://c:8000/", DB_HOST: db, DB_URL: "postgres://db:5432/x"}
    depends_on:
      c: {condition: service_started}
      db: {condition: service_started}
  c:
    x-cove: {run: "sleep 1000"}
    expose: ["8000"]
  db:
    image: postgres:16
"#;

#[test]
fn services_served_elsewhere_are_not_planned_and_references_reach_them_there() {
    let dir = tempfile::tempdir().expect("temp dir");
    let c_there = Ipv4Addr::new(127, 64, 200, 7);
    let db_there = Ipv4Addr::new(127, 64, 200, 9);
    let external = BTreeMap::from([
        ("c".to_string(), c_there),
        ("db".to_string(), db_there),
        ("gone".to_string(), Ipv4Addr::new(127, 64, 200, 11)),
    ]);
    let p = planned(dir.path(), CHAIN, |d| Placement {
        external: external.clone(),
        ..placement(d)
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    let names: Vec<&str> = p.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["b", "a"], "c and db run elsewhere");
    // Only the app's services are said to be elsewhere.
    assert_eq!(
        p.external,
        BTreeMap::from([("c".to_string(), c_there), ("db".to_string(), db_there)])
    );
    let b = p.services.iter().find(|s| s.name == "b").unwrap();
    let env: BTreeMap<&str, &str> = b
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env["NEXT"], format!("http://{c_there}:8000/"));
    assert_eq!(env["DB_HOST"], db_there.to_string());
    assert_eq!(env["DB_URL"], format!("postgres://{db_there}:5432/x"));
    assert_eq!(
        b.argv,
        [
            "client",
            "-h",
            &db_there.to_string(),
            &format!("--host={c_there}"),
            "sleep",
            &format!("{c_there}:8000")
        ]
    );
    // `cove run`: the same addresses.
    assert_eq!(p.rewrite_value("db"), db_there.to_string());
    assert_eq!(
        p.rewrite_args(&["psql".into(), "-h".into(), "db".into(), "c:8000".into()]),
        [
            "psql",
            "-h",
            &db_there.to_string(),
            &format!("{c_there}:8000")
        ]
    );
    // Nothing here to wait for: served elsewhere.
    let deps: Vec<(&str, bool)> = b
        .depends_on
        .iter()
        .map(|d| (d.service.as_str(), d.external))
        .collect();
    assert_eq!(deps, [("c", true), ("db", true)]);
    let a = p.services.iter().find(|s| s.name == "a").unwrap();
    assert!(!a.depends_on[0].external, "b runs here");
    // No route of the gateway goes to a service not run here.
    assert!(
        p.gateway
            .routes
            .iter()
            .all(|r| r.service == "a" || r.service == "b"),
        "{:?}",
        p.gateway.routes
    );
    // What others reach each at: given, own address, first replica.
    assert_eq!(p.reference_address("c"), Some(c_there));
    assert_eq!(p.reference_address("db"), Some(db_there));
    let b_own = b.service_address.expect("a names b");
    assert_eq!(p.reference_address("b"), Some(b_own));
    assert_eq!(
        a.env,
        [("NEXT".to_string(), format!("http://{b_own}:8000/"))]
    );
    assert_eq!(a.service_address, None, "no one names a");
    assert_eq!(p.reference_address("a"), Some(a.address(1)));
    assert_eq!(p.reference_address("gone"), None);
}

#[test]
fn reference_addresses_are_what_references_are_rewritten_to() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The whole app here: a baseline. Its answers are what a preview's
    // placement gives for the services it shares.
    let base = plan(dir.path(), CHAIN);
    assert!(base.external.is_empty());
    let b = base.services.iter().find(|s| s.name == "b").unwrap();
    let env: BTreeMap<&str, &str> = b
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let c = base.reference_address("c").unwrap();
    let db = base.reference_address("db").unwrap();
    assert_eq!(env["NEXT"], format!("http://{c}:8000/"));
    assert_eq!(env["DB_HOST"], db.to_string());
    // c is named by b: its own address; db (data, stop-first) has none:
    // its first replica's.
    let by = |n: &str| base.services.iter().find(|s| s.name == n).unwrap();
    assert_eq!(Some(c), by("c").service_address);
    assert_eq!(by("db").service_address, None);
    assert_eq!(db, by("db").address(1));
    assert!(b.depends_on.iter().all(|d| !d.external));
    // A preview of it that runs only b: the baseline's addresses.
    let external: BTreeMap<String, Ipv4Addr> = ["a", "c", "db"]
        .into_iter()
        .map(|n| (n.to_string(), base.reference_address(n).unwrap()))
        .collect();
    let preview = planned(dir.path(), CHAIN, |d| Placement {
        net: 10,
        external,
        entry: false,
        ..placement(d)
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    let pb = preview.services.iter().find(|s| s.name == "b").unwrap();
    assert_eq!(pb.env, b.env, "the same references as the baseline's b");
    assert_ne!(pb.address(1), b.address(1), "its own replicas");
}

/// An app with every kind of entry: host and path routes, a TCP route, a
/// published port, TLS and metrics.
const ENTRIES: &str = r#"
x-cove:
  previews: {}
  gateway:
    listen: "127.0.0.1:2790"
    metrics: "127.0.0.1:9790"
    tls: {listen: "127.0.0.1:2791"}
services:
  web:
    x-cove: {run: "sleep 1000"}
    expose: ["8000"]
    environment: {API: "http://api:8000"}
  api:
    x-cove:
      run: "sleep 1000"
      routes: [{path: /api}, {protocol: tcp, listen: "127.0.0.1:2792", port: 9000}]
    ports: ["8000", "127.0.0.1:2793:9000"]
"#;

#[test]
fn a_project_without_entry_routes_has_only_its_services_own_addresses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let all = plan(dir.path(), ENTRIES);
    assert!(all.gateway.entry);
    assert!(all.gateway.tls.is_some() && all.gateway.metrics.is_some());
    assert!(
        all.gateway
            .routes
            .iter()
            .any(|r| !r.internal && r.listen.is_none())
    );
    assert!(
        all.gateway
            .routes
            .iter()
            .any(|r| !r.internal && r.listen.is_some())
    );
    let no_entry = planned(dir.path(), ENTRIES, |d| Placement {
        entry: false,
        ..placement(d)
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    let g = &no_entry.gateway;
    assert!(!g.entry);
    assert_eq!(g.listen, "127.0.0.1:0".parse::<SocketAddr>().unwrap());
    assert!(!g.default_listen, "no port above the default is looked for");
    assert_eq!((g.tls.as_ref(), g.metrics), (None, None));
    let internal: Vec<&RoutePlan> = all.gateway.routes.iter().filter(|r| r.internal).collect();
    assert!(!internal.is_empty());
    assert_eq!(g.routes.iter().collect::<Vec<_>>(), internal);
    // The api's address still answers HTTP on its HTTP route's port.
    let api = no_entry.services.iter().find(|s| s.name == "api").unwrap();
    let at = api.service_address.unwrap();
    assert!(g.routes.iter().any(|r| r.listen == Some(SocketAddr::from((at, 8000))) && r.protocol == Protocol::Http));
    assert!(
        g.routes
            .iter()
            .any(|r| r.listen == Some(SocketAddr::from((at, 9000))) && r.protocol == Protocol::Tcp)
    );
    // The services themselves are planned alike.
    assert_eq!(no_entry.services, all.services);
}

#[test]
fn a_project_without_entry_routes_still_has_its_routes_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = r#"
services:
  api:
    x-cove: {run: "sleep 1000", routes: [{port: 81}]}
    ports: ["80"]
"#;
    let e = planned(dir.path(), bad, |d| Placement {
        entry: false,
        ..placement(d)
    })
    .expect_err("a bad route");
    let text: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|t| t.contains("port 81 is not one of the service's ports (80)")),
        "{text:?}"
    );
}

#[test]
fn the_chain_fixture_plans_http_service_addresses_for_b_and_c() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cove/tests/fixtures/chain");
    let app = cove_spec::project::load(&cove_spec::project::Options {
        files: vec![dir.join("compose.yaml")],
        ..Default::default()
    })
    .unwrap_or_else(|f| panic!("{}", f.render(&Default::default())))
    .app;
    assert!(app.x_cove.previews.is_some());
    let p = plan_at(&app, &placement(&dir), None).unwrap_or_else(|e| panic!("{e:?}"));
    let by = |n: &str| p.services.iter().find(|s| s.name == n).unwrap();
    let http = |port| (port, Protocol::Http, None, "/".to_string(), false);
    assert_eq!(own(&p, "b"), [http(8000)]);
    assert_eq!(own(&p, "c"), [http(8000)]);
    assert_eq!(own(&p, "a"), [], "no one calls a: reached by its route");
    let b = by("b").service_address.unwrap();
    assert_eq!(
        by("a").env,
        [("NEXT".to_string(), format!("http://{b}:8000/"))]
    );
    let hosts: Vec<_> = p
        .gateway
        .routes
        .iter()
        .filter_map(|r| r.host.as_deref())
        .collect();
    assert_eq!(hosts, ["c.localhost", "b.localhost", "a.localhost"]);
}
