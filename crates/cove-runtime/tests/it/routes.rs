//! The gateway's routes, planned from Compose files.

use std::net::SocketAddr;
use std::time::Duration;

use cove_runtime::plan::{Plan, PlanError, plan};
use cove_runtime::routes::{DEFAULT_LISTEN, Protocol};

fn load(yaml: &str) -> Result<Plan, Vec<PlanError>> {
    let dir = tempfile::tempdir().expect("temp dir");
    // A file for the tests' `configs`.
    fs_err::write(dir.path().join("motd.txt"), "hello").expect("write");
    let file = dir.path().join("compose.yaml");
    fs_err::write(&file, yaml).expect("write");
    let project = cove_spec::project::load(&cove_spec::project::Options {
        files: vec![file],
        project_name: Some("t".into()),
        ..Default::default()
    })
    .unwrap_or_else(|f| panic!("{}", f.render(&Default::default())));
    // What `cove up` checks: the plan, and the machine.
    cove_runtime::preflight::checked(
        &project.app,
        plan(&project.app, dir.path()),
        cove_runtime::preflight::check(&project.app),
    )
}

fn errors(yaml: &str) -> String {
    match load(yaml) {
        Ok(_) => panic!("planned without errors"),
        Err(e) => e
            .iter()
            .map(|e| format!("{e} (hint: {})", e.hint))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

#[test]
fn services_with_a_port_get_a_default_host_route_and_recipes_and_routes_none_get_none() {
    let p = load(
        r#"
services:
  web: {x-cove: {run: "python3 -m http.server"}, expose: ["8000"]}
  worker: {x-cove: {run: "sleep 1000"}}
  probed: {x-cove: {run: "sleep 1000", health: {http: /healthz}}}
  internal: {x-cove: {run: "sleep 1000", routes: []}, expose: ["9000"]}
  cache: {image: "redis:7"}
"#,
    )
    .expect("plans");
    let g = &p.gateway;
    assert_eq!(g.listen, DEFAULT_LISTEN.parse::<SocketAddr>().unwrap());
    let routes: Vec<_> = g
        .routes
        .iter()
        .map(|r| {
            (
                r.service.as_str(),
                r.host.as_deref(),
                r.path.as_str(),
                r.port,
            )
        })
        .collect();
    assert_eq!(
        routes,
        [
            ("web", Some("web.localhost"), "/", 8000),
            ("probed", Some("probed.localhost"), "/", 8080),
        ]
    );
}

#[test]
fn explicit_routes_replace_the_default_and_keep_their_settings() {
    let p = load(
        r#"
services:
  api:
    x-cove:
      run: "sleep 1000"
      routes:
        - {path: /api, strip_prefix: true, timeout: 5s, max_body: 1m}
        - {host: Admin.Example.test, port: 9000}
        - {protocol: grpc, host: grpc.localhost, port: 50051}
    ports: ["8080", "9000", "50051"]
  db:
    image: redis:7
    x-cove:
      routes: [{protocol: tcp, listen: "127.0.0.1:16379"}]
x-cove:
  gateway: {listen: "localhost:9999", max_connections: 50}
"#,
    )
    .expect("plans");
    let g = &p.gateway;
    assert_eq!(g.listen, "127.0.0.1:9999".parse::<SocketAddr>().unwrap());
    assert_eq!(g.max_connections, 50);
    assert_eq!(g.routes.len(), 4);
    let api = &g.routes[0];
    assert_eq!(
        (
            api.host.as_deref(),
            api.path.as_str(),
            api.strip_prefix,
            api.port
        ),
        (None, "/api", true, 8080)
    );
    assert_eq!(api.timeout, Some(Duration::from_secs(5)));
    assert_eq!(api.max_body, Some(1024 * 1024));
    assert_eq!(g.routes[1].host.as_deref(), Some("admin.example.test"));
    assert_eq!(g.routes[1].port, 9000);
    assert_eq!(g.routes[2].protocol, Protocol::Grpc);
    let tcp = &g.routes[3];
    assert_eq!((tcp.protocol, tcp.port), (Protocol::Tcp, 6379));
    assert_eq!(tcp.listen, Some("127.0.0.1:16379".parse().unwrap()));
}

#[test]
fn bad_routes_are_named_with_their_service_and_a_hint() {
    let e = errors(
        r#"
services:
  api:
    x-cove:
      run: "sleep 1000"
      routes:
        - {path: /api}
        - {port: 81}
        - {protocol: tcp}
        - {listen: "127.0.0.1:5000"}
        - {timeout: 30s, max_body: 10m}
    ports: ["80"]
  web:
    x-cove:
      run: "sleep 1000"
      routes: [{path: /}]
  other:
    x-cove:
      run: "sleep 1000"
      routes: [{path: /}]
  tcp:
    image: redis:7
    x-cove:
      routes: [{protocol: tcp, listen: "127.0.0.1:2683"}]
"#,
    );
    // Values that do not parse (a path, an address, a duration, a size)
    // are the loader's to report: see fixtures/bad/routes.
    for want in [
        "service `api`: `x-cove.routes[1]`: port 81 is not one of the service's ports (80)",
        "service `api`: `x-cove.routes[2]`: a `tcp` route needs `listen`",
        "service `api`: `x-cove.routes[3]`: `listen` is only for `tcp` routes",
        "service `other`: a route routes any host /, as one of `web` does",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
    let e = errors(
        r#"
services:
  tcp:
    image: redis:7
    x-cove:
      routes: [{protocol: tcp, listen: "127.0.0.1:2683"}]
"#,
    );
    assert!(
        e.contains(
            "service `tcp`: a `tcp` route listens on 127.0.0.1:2683, the gateway's own address"
        ),
        "{e}"
    );
}

#[test]
fn the_driver_follows_the_service_then_the_project_then_what_cove_can_run() {
    // Default: a recipe or `run` natively, any other image as containers.
    let p = load(
        r#"
services:
  db: {image: "redis:7"}
  web: {image: "nginx:1.27", expose: ["80"], environment: {DB: "db:6379"}}
  api: {x-cove: {run: "sleep 1000"}, environment: {WEB: "http://web:80"}}
  worker: {image: "busybox:1", environment: {WEB: "web:80"}}
"#,
    )
    .expect("plans");
    let by = |n: &str| p.services.iter().find(|s| s.name == n).unwrap();
    assert!(by("db").container.is_none() && by("db").recipe.is_some());
    assert!(by("api").container.is_none());
    let web = by("web");
    assert!(web.container.is_some());
    let web_ip = web.address(1);
    assert!(
        cove_runtime::plan::is_container_address(web_ip.into()),
        "{web_ip}"
    );
    // The container reaches the native db at its address on the network;
    // the native api reaches the container at the service's own address
    // (the gateway's, wherever deploys move its replicas); another
    // container by its name (the network's DNS).
    let db_bridge = by("db").bridge_address.expect("reached from containers");
    assert!(cove_runtime::plan::is_container_address(db_bridge.into()));
    assert_eq!(web.env, [("DB".to_string(), format!("{db_bridge}:6379"))]);
    let web_own = web.service_address.expect("named by a native service");
    assert!(!cove_runtime::plan::is_container_address(web_own.into()));
    assert_eq!(api_env(&p), format!("http://{web_own}:80"));
    assert!(p.gateway.routes.iter().any(|r| r.internal
        && r.service == "web"
        && r.listen == Some(SocketAddr::from((web_own, 80)))));
    assert_eq!(
        by("worker").env,
        [("WEB".to_string(), "web:80".to_string())]
    );
    assert!(p.gateway.routes.iter().any(|r| r.internal
        && r.service == "db"
        && r.listen == Some(SocketAddr::from((db_bridge, 6379)))));

    // The project's default, and a service's own choice over it.
    let p = load(
        r#"
x-cove: {driver: docker}
services:
  db: {image: "redis:7"}
  api: {x-cove: {run: "sleep 1000", driver: process}}
"#,
    )
    .expect("plans");
    let by = |n: &str| p.services.iter().find(|s| s.name == n).unwrap();
    assert!(by("db").container.is_some() && by("db").recipe.is_none());
    assert!(by("api").container.is_none());
    let text = errors("x-cove: {driver: native}\nservices:\n  web: {image: \"nginx:1.27\"}\n");
    assert!(text.contains("has no native command to run (image `nginx:1.27` runs as a container, and its `x-cove.driver` is `native`)"), "{text}");
}

fn api_env(p: &Plan) -> String {
    let api = p.services.iter().find(|s| s.name == "api").unwrap();
    api.env.iter().find(|(k, _)| k == "WEB").unwrap().1.clone()
}

#[test]
fn published_ports_become_tcp_routes_on_the_host_address() {
    let p = load(
        r#"
services:
  web:
    x-cove: {run: "sleep 1000"}
    ports: ["127.0.0.1:18080:8080", "9090:90"]
  db:
    image: "redis:7"
    ports: [{target: 6379, published: "16379", host_ip: "127.0.0.2"}]
  quiet:
    x-cove: {run: "sleep 1000"}
    ports: ["7000"]
"#,
    )
    .expect("plans");
    let published: Vec<_> = p
        .gateway
        .routes
        .iter()
        .filter(|r| !r.internal && r.protocol == Protocol::Tcp)
        .map(|r| (r.service.as_str(), r.listen.unwrap().to_string(), r.port))
        .collect();
    assert_eq!(
        published,
        [
            ("web", "127.0.0.1:18080".to_string(), 8080),
            ("web", "0.0.0.0:9090".to_string(), 90),
            ("db", "127.0.0.2:16379".to_string(), 6379),
        ]
    );
    let text = errors(
        r#"
services:
  a: {x-cove: {run: "sleep 1000"}, ports: ["8000-8002:80"]}
  b: {x-cove: {run: "sleep 1000"}, ports: ["5353:53/udp"]}
  c: {x-cove: {run: "sleep 1000"}, ports: ["127.0.0.1:18081:81"]}
  d: {x-cove: {run: "sleep 1000"}, ports: ["127.0.0.1:18081:82"]}
"#,
    );
    assert!(
        text.contains("`ports` 8000-8002:80: a range of host ports is not supported (hint: publish one host port per target port, e.g. `8080:80`)"),
        "{text}"
    );
    assert!(
        text.contains("`ports` 5353:53: protocol `udp`: the gateway forwards TCP only"),
        "{text}"
    );
    assert!(
        text.contains("a route listens on 127.0.0.1:18081, as one of `c` does"),
        "{text}"
    );
}

#[test]
fn container_settings_are_read_in_both_their_compose_forms() {
    let p = load(
        r#"
services:
  a:
    image: "busybox:1"
    networks:
      default: {aliases: [alpha]}
      back: {aliases: [beta]}
    devices: ["/dev/fuse", "/dev/null:/dev/nothing:r", {source: /dev/zero, target: /dev/z, permissions: rw}]
    sysctls: ["net.core.somaxconn=1024"]
    dns: 10.0.0.53
    dns_search: [example.test]
    group_add: [1234, audio]
    shm_size: 1g
    configs: [motd, {source: motd, target: /etc/motd}]
networks:
  back: {}
configs:
  motd: {file: ./motd.txt}
"#,
    )
    .expect("plans");
    let c = p.services[0].container.as_ref().unwrap();
    assert_eq!(c.options.aliases, ["alpha", "beta"]);
    assert_eq!(
        c.options.devices,
        [
            "/dev/fuse:/dev/fuse:rwm",
            "/dev/null:/dev/nothing:r",
            "/dev/zero:/dev/z:rw"
        ]
    );
    assert_eq!(
        c.options.sysctls,
        [("net.core.somaxconn".to_string(), "1024".to_string())]
    );
    assert_eq!(c.options.dns, ["10.0.0.53"]);
    assert_eq!(c.options.dns_search, ["example.test"]);
    assert_eq!(c.options.group_add, ["1234", "audio"]);
    assert_eq!(c.options.shm_size, Some(1 << 30));
    let configs: Vec<&String> = c.binds.iter().filter(|b| b.contains("motd.txt")).collect();
    assert_eq!(configs.len(), 2, "{:?}", c.binds);
    assert!(configs[0].ends_with("/motd.txt:/motd:ro"), "{configs:?}");
    assert!(
        configs[1].ends_with("/motd.txt:/etc/motd:ro"),
        "{configs:?}"
    );
    let text = errors(
        "services:\n  a: {image: \"busybox:1\", configs: [inline, gone]}\nconfigs:\n  inline: {content: hi}\n  gone: {file: ./gone.txt}\n",
    );
    assert!(
        text.contains("config `gone`: ") && text.contains("gone.txt is not a file"),
        "{text}"
    );
    assert!(
        text.contains("config `inline` has no `file:` source"),
        "{text}"
    );
}
