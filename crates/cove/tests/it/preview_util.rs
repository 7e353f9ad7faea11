//! What the previews' tests share: the chain fixture as a baseline in a
//! git repository, branches of it, the gateway's address, `GET` through
//! it with a host and headers, `cove preview ls`, a preview's processes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::daemon::{App, processes_whose_env, run_bounded};

pub const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/chain");

/// The chain app in a git repository: its compose file with the gateway
/// on a free port and previews sleeping after `idle`.
pub fn baseline(idle: &str) -> App {
    chain_with(&format!("{{idle_after: {idle}}}"), |c| c)
}

/// The chain app in a git repository (branch `main`, committed), with
/// `x-cove.previews: PREVIEWS`, the gateway on a free port, and its
/// compose file as `edit` makes it.
pub fn chain_with(previews: &str, edit: impl FnOnce(String) -> String) -> App {
    let compose = fs_err::read_to_string(Path::new(FIXTURE).join("compose.yaml"))
        .unwrap()
        .replace(
            "  previews: {}",
            &format!("  previews: {previews}\n  gateway: {{listen: \"127.0.0.1:0\"}}"),
        );
    assert!(
        compose.contains("gateway: {listen"),
        "the fixture changed: {compose}"
    );
    let app = App::new(&edit(compose));
    fs_err::copy(
        Path::new(FIXTURE).join("chain.py"),
        app.dir().join("chain.py"),
    )
    .unwrap();
    fs_err::write(app.dir().join(".gitignore"), ".cove/\n").unwrap();
    git(app.dir(), &["init", "-q", "-b", "main"]);
    git(app.dir(), &["add", "."]);
    git(app.dir(), &["commit", "-q", "-m", "the chain"]);
    app
}

pub fn git(dir: &Path, args: &[&str]) {
    let out = run_bounded(
        Command::new("git")
            .current_dir(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args),
        60,
    );
    assert_eq!(out.code, Some(0), "git {}: {out}", args.join(" "));
}

/// A branch `name` where `b` answers as version `name`.
pub fn branch_changing_b(app: &App, name: &str) {
    git(app.dir(), &["checkout", "-q", "-b", name]);
    let path = app.dir().join("compose.yaml");
    let text = fs_err::read_to_string(&path).unwrap().replace(
        "      NEXT: http://c:8000/\n",
        &format!("      NEXT: http://c:8000/\n      VERSION: {name}\n"),
    );
    assert!(text.contains("VERSION"), "{text}");
    fs_err::write(&path, text).unwrap();
    git(app.dir(), &["commit", "-q", "-am", "b changed"]);
    git(app.dir(), &["checkout", "-q", "main"]);
}

pub fn cove_ok(app: &App, args: &[&str]) -> String {
    let (code, out) = app.merged(args);
    assert_eq!(code, Some(0), "`cove {}`: {out}", args.join(" "));
    out
}

pub fn gateway(app: &App) -> SocketAddr {
    crate::shared_gateway::listener(app, &[])
}

/// `GET /` with `Host: host` and extra header lines: the body of a 200,
/// or the status line and body.
pub fn get(gw: SocketAddr, host: &str, headers: &str) -> Result<String, String> {
    crate::load::get_with(gw, "/", host, headers)
}

/// `cove preview ls --format json`.
pub fn previews(app: &App) -> Vec<serde_json::Value> {
    let out = app.merged(&["preview", "ls", "--format", "json"]);
    assert_eq!(out.0, Some(0), "{}", out.1);
    let start = out.1.find('[').unwrap_or(0);
    let end = out.1.rfind(']').map_or(out.1.len(), |e| e + 1);
    serde_json::from_str(&out.1[start..end]).unwrap_or_else(|e| panic!("{e}: {}", out.1))
}

/// The state of preview `name` in `cove preview ls` (`awake`, `asleep`),
/// or `gone`.
pub fn state_of(app: &App, name: &str) -> String {
    previews(app)
        .iter()
        .find(|p| p["name"] == name)
        .map_or("gone".into(), |p| p["state"].as_str().unwrap_or("?").into())
}

/// The preview `name`'s state directory.
pub fn preview_dir(app: &App, name: &str) -> PathBuf {
    fs_err::canonicalize(app.dir().join(".cove"))
        .unwrap()
        .join("previews")
        .join(name)
}

/// The live processes of the preview `name` of `app`.
pub fn preview_processes(app: &App, name: &str) -> Vec<u32> {
    let marker = format!("COVE_PROJECT={}", preview_dir(app, name).display());
    processes_whose_env(|v| v == marker.as_bytes())
}

/// The baseline's events of the last hour.
pub fn events(app: &App) -> String {
    app.merged(&["events", "--since", "1h", "--until", "0s"]).1
}

/// Polls `f` every 300 ms for up to `secs` (it runs `cove`: not faster).
pub fn poll(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("not within {secs}s: {what}");
}
