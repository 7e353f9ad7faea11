//! Everything `cove up` would refuse, `cove config` refuses first (issue
//! 17): the plan's checks (and the daemon's) run at `cove config`, and
//! their errors name the file, line and column of the field, as the
//! loader's do, with a hint; `cove up -d` gives the same message and starts
//! nothing.

use std::path::Path;
use std::process::Command;

use crate::daemon::{Out, run_bounded};

/// `cove ARGS` in `dir` (killed after 60 s).
fn cove(dir: &Path, args: &[&str]) -> Out {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_cove"))
            .current_dir(dir)
            .args(args)
            .env("NO_COLOR", "1"),
        60,
    )
}

/// Brings down whatever a (wrongly) accepted `cove up -d` started in the
/// directory, even when the test fails.
struct Project(tempfile::TempDir);

impl Drop for Project {
    fn drop(&mut self) {
        if self.0.path().join(".cove/daemon.pid").exists() {
            let _ = cove(self.0.path(), &["down"]);
        }
    }
}

/// A service that runs, with `service` (YAML lines under it, 4 spaces in)
/// and `top` (lines at the top level) added.
fn app(service: &str, top: &str) -> String {
    format!("services:\n  web:\n    x-cove:\n      run: sleep 30\n{service}{top}")
}

/// `cove config` refuses `yaml` with `message`, at `line:col` of
/// compose.yaml, with `hint`; `cove up -d` says the same and starts
/// nothing.
#[track_caller]
fn refused(yaml: &str, message: &str, line: u32, col: u32, hint: &str) {
    let project = Project(tempfile::tempdir().unwrap());
    let dir = project.0.path();
    fs_err::write(dir.join("compose.yaml"), yaml).unwrap();
    let config = cove(dir, &["config", "-q"]);
    let text = &config.stderr;
    assert_eq!(
        config.code,
        Some(1),
        "cove config accepted:\n{yaml}\n{text}"
    );
    assert!(text.contains(message), "no `{message}`:\n{text}");
    let place = format!("{}:{line}:{col}\n", dir.join("compose.yaml").display());
    assert!(text.contains(&place), "not at {place}:\n{text}");
    assert!(
        text.contains(&format!("= hint: {hint}")),
        "no hint `{hint}`:\n{text}"
    );
    let up = cove(dir, &["up", "-d"]);
    assert_eq!(up.code, Some(1), "cove up -d accepted:\n{yaml}\n{up:?}");
    assert_eq!(&up.stderr, text, "cove up -d says something else");
    assert!(
        !dir.join(".cove/daemon.pid").exists(),
        "cove up -d started a daemon"
    );
}

#[test]
fn a_misspelt_restart_policy() {
    refused(
        &app("    restart: allways\n", ""),
        "service `web`: unknown `restart` policy `allways`",
        5,
        14,
        "did you mean `always`?",
    );
}

#[test]
fn an_http_health_check_without_a_leading_slash() {
    refused(
        &app("      health: {http: healthz}\n", ""),
        "service `web`: `x-cove.health.http` is `healthz`, not a path",
        5,
        22,
        "start it with `/`, e.g. `/healthz`",
    );
}

#[test]
fn a_gateway_address_without_a_host() {
    refused(
        &app("", "x-cove:\n  gateway:\n    listen: \"2791\"\n"),
        "`x-cove.gateway.listen`: `2791` is not an address with a port",
        7,
        13,
        "write an address and a port",
    );
}

#[test]
fn an_unknown_recipe() {
    refused(
        &app("      recipe: rediss\n", ""),
        "service `web`: `x-cove.recipe` is `rediss`, which is not one of cove's recipes",
        5,
        15,
        "did you mean `redis`?",
    );
}

/// A check the daemon makes, not the plan: refused before it is asked.
#[test]
fn autoscaling_without_a_target() {
    refused(
        &app("      autoscale: {min: 1, max: 3}\n", ""),
        "service `web`: `x-cove.autoscale` needs `target_concurrency` or `target_rps`",
        5,
        18,
        "e.g. `autoscale: {min: 2, max: 5, target_concurrency: 32}`",
    );
}

/// Where an override file sets the field, the error points there.
#[test]
fn a_field_an_override_sets_is_shown_in_the_override() {
    let project = Project(tempfile::tempdir().unwrap());
    let dir = project.0.path();
    fs_err::write(dir.join("compose.yaml"), app("    restart: always\n", "")).unwrap();
    fs_err::write(
        dir.join("compose.override.yaml"),
        "services:\n  web:\n    restart: sometimes\n",
    )
    .unwrap();
    let out = cove(dir, &["config"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let place = format!("{}:3:14\n", dir.join("compose.override.yaml").display());
    assert!(
        out.stderr.contains(&place),
        "not at {place}:\n{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "printed the app: {}", out.stdout);
}

/// Routes are fields only cove reads: how they fit the service is
/// checked by the plan, and refused at `cove config` as at `cove up`.
#[test]
fn a_tcp_route_without_listen() {
    refused(
        &app("      routes:\n        - protocol: tcp\n", ""),
        "service `web`: `x-cove.routes[0]`: a `tcp` route needs `listen`, the address it is reached on",
        6,
        11,
        "add e.g. `listen: 127.0.0.1:16379`",
    );
}

#[test]
fn a_route_to_a_port_the_service_does_not_have() {
    refused(
        &app(
            "      routes:\n        - port: 9000\n    expose: [\"8000\"]\n",
            "",
        ),
        "service `web`: `x-cove.routes[0]`: port 9000 is not one of the service's ports (8000)",
        6,
        17,
        "name one of its `ports` or `expose` entries, or add the port there",
    );
}

#[test]
fn listen_on_an_http_route() {
    refused(
        &app("      routes:\n        - listen: 127.0.0.1:16379\n", ""),
        "service `web`: `x-cove.routes[0]`: `listen` is only for `tcp` routes",
        6,
        19,
        "remove `listen`, or set `protocol: tcp`",
    );
}

#[test]
fn a_tcp_route_with_a_host() {
    refused(
        &app(
            "      routes:\n        - protocol: tcp\n          listen: 127.0.0.1:16379\n          host: web.localhost\n",
            "",
        ),
        "service `web`: `x-cove.routes[0]`: a `tcp` route matches no host or path",
        8,
        17,
        "remove `host` and `path`",
    );
}

/// The gateway's TLS settings: refused where they are written, not at
/// the top of the file.
#[test]
fn a_tls_certificate_without_its_key() {
    refused(
        &app(
            "",
            "x-cove:\n  gateway:\n    tls:\n      listen: 127.0.0.1:2443\n      cert: cert.pem\n",
        ),
        "`x-cove.gateway.tls` needs both `cert` and `key`, or neither",
        9,
        13,
        "name the key file with the certificate, or leave both out to use cove's local CA",
    );
}

#[test]
fn tls_on_the_gateway_s_plain_http_address() {
    refused(
        &app(
            "",
            "x-cove:\n  gateway:\n    listen: 127.0.0.1:2791\n    tls:\n      listen: 127.0.0.1:2791\n",
        ),
        "`x-cove.gateway.tls.listen` is 127.0.0.1:2791, the gateway's plain HTTP address too",
        9,
        15,
        "give HTTPS a port of its own, e.g. 2443",
    );
}
