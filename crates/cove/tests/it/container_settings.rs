//! Container settings reach the engine (docs/guides/docker.md, Settings):
//! a docker-driver service with resource limits, ulimits, a user, extra
//! hosts, `init`, `privileged` and more runs, and `docker inspect` shows
//! each value (those containers.rs checks are left to it). The image is built `FROM scratch` around a static program
//! compiled here (no registry is reachable), against the engine of
//! `DOCKER_HOST`.

use std::path::Path;
use std::process::Command;

use crate::daemon::{App, run_bounded};
use crate::deploy::cove_ok;

/// The container's program: says it runs, then waits to be stopped.
const PROGRAM: &str = r#"
fn main() {
    println!("settings: running");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
"#;

const APP: &str = r#"
services:
  limited:
    build: ./limited
    stop_grace_period: 1s
    user: "1234:5678"
    working_dir: /work
    entrypoint: [/entry]
    command: [--quiet, "two words"]
    cap_add: [NET_ADMIN]
    dns_search: [example.internal]
    devices: ["/dev/null:/dev/xnull:rwm"]
    init: true
    privileged: true
    extra_hosts:
      - "db.example:10.1.2.3"
      - "cache.example=10.1.2.4"
    ulimits:
      nproc: 512
      nofile: {soft: 1024, hard: 2048}
    deploy:
      resources:
        limits: {cpus: "0.5", memory: 64M, pids: 100}
x-cove:
  gateway: {listen: "127.0.0.1:0"}
"#;

fn build_context(dir: &Path) {
    fs_err::create_dir_all(dir).unwrap();
    fs_err::write(dir.join("main.rs"), PROGRAM).unwrap();
    let out = run_bounded(
        Command::new("rustc")
            .args(["--edition", "2021", "-C", "target-feature=+crt-static"])
            .args(["main.rs", "-o", "app"])
            .current_dir(dir),
        300,
    );
    assert_eq!(out.code, Some(0), "rustc: {out}");
    fs_err::remove_file(dir.join("main.rs")).unwrap();
    fs_err::write(
        dir.join("Dockerfile"),
        // The same program twice: `/entry`, the service's `entrypoint`,
        // is not the image's.
        "FROM scratch\nCOPY app /app\nCOPY app /entry\nENTRYPOINT [\"/app\"]\n",
    )
    .unwrap();
}

/// `docker inspect --format FORMAT NAME`, trimmed; fails on an error.
fn inspect(name: &str, format: &str) -> String {
    let out = run_bounded(
        Command::new("docker").args(["container", "inspect", "--format", format, name]),
        60,
    );
    assert_eq!(out.code, Some(0), "docker inspect {name}: {out}");
    out.stdout.trim().to_string()
}

#[test]
fn container_settings_reach_the_engine() {
    assert!(
        std::env::var_os("DOCKER_HOST").is_some() || Path::new("/var/run/docker.sock").exists(),
        "no Docker engine: run `bash scripts/test`, which starts one of its own"
    );
    let app = App::new(APP);
    build_context(&app.dir().join("limited"));
    let up = cove_ok(&app, &["up", "-d"]);
    let label = format!(
        "label=dev.cove.project={}",
        fs_err::canonicalize(app.dir().join(".cove"))
            .unwrap()
            .display()
    );
    let ps = run_bounded(
        Command::new("docker").args(["ps", "--filter", &label, "--format", "{{.Names}}"]),
        60,
    );
    let names: Vec<&str> = ps.stdout.lines().collect();
    assert!(
        names.len() == 1 && names[0].ends_with("-limited-1"),
        "one running container: {names:?}\n{up}"
    );
    let name = names[0];
    // Each setting, as the engine has it (lists sorted): every mismatch
    // is reported at once.
    let sorted = |text: String| {
        let mut items: Vec<&str> = text.split_whitespace().collect();
        items.sort();
        items.join(" ")
    };
    let settings = [
        (
            "deploy.resources.limits.cpus",
            "{{.HostConfig.NanoCpus}}",
            "500000000".to_string(),
        ),
        (
            "deploy.resources.limits.memory",
            "{{.HostConfig.Memory}}",
            (64 * 1024 * 1024).to_string(),
        ),
        (
            "deploy.resources.limits.pids",
            "{{.HostConfig.PidsLimit}}",
            "100".to_string(),
        ),
        (
            "ulimits",
            "{{range .HostConfig.Ulimits}}{{.Name}}={{.Soft}}:{{.Hard}} {{end}}",
            "nofile=1024:2048 nproc=512:512".to_string(),
        ),
        ("user", "{{.Config.User}}", "1234:5678".to_string()),
        ("working_dir", "{{.Config.WorkingDir}}", "/work".to_string()),
        (
            "entrypoint",
            "{{json .Config.Entrypoint}}",
            r#"["/entry"]"#.to_string(),
        ),
        (
            "command",
            "{{json .Config.Cmd}}",
            r#"["--quiet","two words"]"#.to_string(),
        ),
        (
            "cap_add",
            "{{.HostConfig.CapAdd}}",
            "[NET_ADMIN]".to_string(),
        ),
        (
            "dns_search",
            "{{.HostConfig.DnsSearch}}",
            "[example.internal]".to_string(),
        ),
        (
            "devices",
            "{{range .HostConfig.Devices}}{{.PathOnHost}}:{{.PathInContainer}}:{{.CgroupPermissions}}{{end}}",
            "/dev/null:/dev/xnull:rwm".to_string(),
        ),
        (
            "extra_hosts",
            "{{range .HostConfig.ExtraHosts}}{{.}} {{end}}",
            "cache.example:10.1.2.4 db.example:10.1.2.3".to_string(),
        ),
        ("init", "{{.HostConfig.Init}}", "true".to_string()),
        (
            "privileged",
            "{{.HostConfig.Privileged}}",
            "true".to_string(),
        ),
    ];
    let wrong: Vec<String> = settings
        .iter()
        .filter_map(|(what, format, want)| {
            let got = sorted(inspect(name, format));
            (got != *want).then(|| format!("{what}: the engine has `{got}`, not `{want}`"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // And the container runs with them.
    assert_eq!(inspect(name, "{{.State.Status}}"), "running");
    let (code, down) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{down}");
    let left = run_bounded(
        Command::new("docker").args(["ps", "-a", "--filter", &label, "--format", "{{.Names}}"]),
        60,
    );
    assert_eq!(left.stdout.trim(), "", "down removes the container");
}
