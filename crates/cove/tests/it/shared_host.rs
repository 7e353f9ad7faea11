//! Shared-host safety tests (issue 26): see attack.rs. Each runs an attack
//! as uid 65534 against what a root `cove` made (or is about to use) and
//! asserts that it fails: planted paths in the secrets root, state
//! directories cove does not own, world-readable state, the daemon's
//! socket, its API's limits, its memory, and the sweep of marked
//! processes. Every wait is bounded; every app is brought down, and every
//! process a test starts is killed by its PID, even when it fails.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::attack::{NOBODY, as_nobody, as_root, nobody, text};
use crate::daemon::{App, eventually, processes_whose_env};
use crate::up::alive;

const COVE: &str = env!("CARGO_BIN_EXE_cove");

fn chmod(p: &Path, mode: u32) {
    fs_err::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(p: &Path) -> u32 {
    fs_err::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn owner(p: &Path) -> u32 {
    fs_err::symlink_metadata(p).unwrap().uid()
}

/// A temporary directory with `mode` (`0o1777`: like `/tmp` or
/// `/dev/shm`, every user may make things in it).
fn open_dir(mode: u32) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    chmod(t.path(), mode);
    t
}

fn run_is_tmpfs() -> bool {
    Command::new("stat")
        .args(["-f", "-c", "%T", "/run"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "tmpfs")
}

/// An attack that must fail: `script` as nobody exits non-zero.
fn must_fail(dir: &Path, script: &str) {
    let out = as_nobody(dir, script);
    assert!(
        !out.status.success(),
        "as uid {NOBODY}, `{script}` succeeded:\n{}",
        text(&out)
    );
}

/// A preparation that must work: `script` as nobody exits 0.
fn must_work(dir: &Path, script: &str) -> String {
    let out = as_nobody(dir, script);
    assert!(
        out.status.success(),
        "as uid {NOBODY}, `{script}` failed:\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Another program's data that must come through an attack untouched:
/// `web-1/PG_VERSION` in a directory of mode 0755 (named as the replica's
/// secrets directory would be below a planted link, as PostgreSQL's data
/// of a recipe replica is in `.cove/data/`).
struct Victim(tempfile::TempDir);

impl Victim {
    fn new() -> Victim {
        let t = tempfile::tempdir().unwrap();
        fs_err::create_dir(t.path().join("web-1")).unwrap();
        fs_err::write(t.path().join("web-1/PG_VERSION"), "16\n").unwrap();
        chmod(t.path(), 0o755);
        chmod(&t.path().join("web-1"), 0o750);
        Victim(t)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn assert_untouched(&self) {
        let names = |d: &Path| -> Vec<String> {
            fs_err::read_dir(d)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names(self.path()), ["web-1"], "the victim's files");
        assert_eq!(names(&self.path().join("web-1")), ["PG_VERSION"]);
        assert_eq!(
            fs_err::read_to_string(self.path().join("web-1/PG_VERSION")).unwrap(),
            "16\n"
        );
        assert_eq!(mode(self.path()), 0o755, "the victim's mode");
        assert_eq!(mode(&self.path().join("web-1")), 0o750);
    }
}

/// A service with a `file:` secret, which writes where its secrets
/// directory is to `secrets-dir`.
const WITH_SECRET: &str = r#"
services:
  web:
    x-cove:
      run: sh -c 'echo "$$COVE_SECRETS" > secrets-dir; exec sleep 60'
    secrets: [tok]
secrets:
  tok:
    file: ./tok.txt
"#;

fn app_with_secret(env: &[(&str, &Path)]) -> App {
    let app = App::with_env(WITH_SECRET, env);
    fs_err::write(app.dir().join("tok.txt"), "s3cret-token-value").unwrap();
    app
}

/// `cove up -d`, then the replica's secrets directory.
fn up_and_find_secrets(app: &App) -> PathBuf {
    let _ = fs_err::remove_file(app.dir().join("secrets-dir"));
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let report = app.dir().join("secrets-dir");
    eventually(10, "the replica's report", || {
        fs_err::read_to_string(&report).is_ok_and(|t| t.ends_with('\n'))
    });
    PathBuf::from(fs_err::read_to_string(&report).unwrap().trim())
}

/// A local user makes the secrets root (the predictable
/// `$XDG_RUNTIME_DIR/cove/TAG`; `/dev/shm/cove-0` in the report) before
/// root's `cove up`, with a link in it to another program's data: cove
/// refuses, naming the path, and neither removes, chmods nor writes
/// anything through the link, at `up` nor at `down`.
#[test]
fn planted_secrets_root_is_refused_and_nothing_followed() {
    if !as_root("planted_secrets_root_is_refused_and_nothing_followed") {
        return;
    }
    if run_is_tmpfs() {
        // Root's secrets go to /run/cove, which no other user can touch:
        // `secrets_root_of_root_is_private` attacks it; the planted chain
        // is covered by the unit tests of `private` and `secrets`.
        eprintln!(
            "planted_secrets_root_is_refused_and_nothing_followed: /run is a tmpfs, root uses /run/cove"
        );
        return;
    }
    // Like /dev/shm: anyone may make things in it (sticky).
    let runtime = open_dir(0o1777);
    let victim = Victim::new();
    let app = app_with_secret(&[("XDG_RUNTIME_DIR", runtime.path())]);
    // The tag of this project (an attacker reads it from a command line).
    let dir = up_and_find_secrets(&app);
    let base = runtime.path().join("cove");
    let tag = dir.parent().unwrap().to_path_buf();
    assert_eq!(tag.parent(), Some(base.as_path()), "{}", dir.display());
    let (code, out) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
    // After a reboot the tmpfs is empty: the attacker is first.
    fs_err::remove_dir_all(&base).unwrap();
    must_work(
        runtime.path(),
        &format!(
            "mkdir cove && chmod 777 cove && ln -s {} {}",
            victim.path().display(),
            tag.display()
        ),
    );
    let (code, out) = app.merged(&["up", "-d"]);
    assert_ne!(
        code,
        Some(0),
        "up went on with a planted secrets root:\n{out}"
    );
    assert!(
        out.contains(&*base.to_string_lossy()) && out.contains("uid 65534"),
        "the error names the planted directory and its owner:\n{out}"
    );
    victim.assert_untouched();
    // `down` removes a project's secrets: not through the link.
    let (_, out) = app.merged(&["down"]);
    victim.assert_untouched();
    assert!(
        fs_err::symlink_metadata(&tag)
            .unwrap()
            .file_type()
            .is_symlink(),
        "down: {out}"
    );

    // The link one level up: `cove` itself.
    fs_err::remove_dir_all(&base).unwrap();
    must_work(
        runtime.path(),
        &format!("ln -s {} cove", victim.path().display()),
    );
    let (code, out) = app.merged(&["up", "-d"]);
    assert_ne!(code, Some(0), "up went on through a link:\n{out}");
    assert!(
        out.contains(&*base.to_string_lossy()) && out.contains("symbolic link"),
        "{out}"
    );
    let _ = app.merged(&["down"]);
    victim.assert_untouched();
    let _ = fs_err::remove_file(&base);
}

/// As root, the secrets root is `/run/cove` (when `/run` is a tmpfs; else
/// what a user's would be, made and checked the same way): root's, 0700
/// from its first directory down, and nobody can list, read or make
/// anything in it.
#[test]
fn secrets_root_of_root_is_private() {
    if !as_root("secrets_root_of_root_is_private") {
        return;
    }
    let app = app_with_secret(&[]);
    let dir = up_and_find_secrets(&app);
    let expected = if run_is_tmpfs() {
        PathBuf::from("/run/cove")
    } else if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
        PathBuf::from(x).join("cove")
    } else {
        PathBuf::from("/dev/shm/cove-0")
    };
    let tag = dir.parent().unwrap();
    assert_eq!(tag.parent(), Some(expected.as_path()), "{}", dir.display());
    for d in [expected.as_path(), tag, &dir] {
        assert_eq!((owner(d), mode(d)), (0, 0o700), "{}", d.display());
    }
    assert_eq!(mode(&dir.join("tok")), 0o400);
    let base = expected.display();
    must_fail(Path::new("/"), &format!("ls {base}"));
    must_fail(Path::new("/"), &format!("mkdir {base}/planted"));
    must_fail(Path::new("/"), &format!("ln -s / {base}/planted"));
    must_fail(Path::new("/"), &format!("ls {}", tag.display()));
    must_fail(Path::new("/"), &format!("cat {}/tok", dir.display()));
    assert!(!expected.join("planted").exists());
}

/// A state directory another user made, holding a store with a desired
/// state of theirs (a command that records who runs it): root's
/// `cove up -d` on a project with that state directory refuses and runs
/// nothing.
#[test]
fn foreign_state_dir_is_refused() {
    if !as_root("foreign_state_dir_is_refused") {
        return;
    }
    let shared = open_dir(0o1777);
    let s = shared.path().display().to_string();
    let state = shared.path().join("state");
    // The attacker's project, and its store, made by cove run as them.
    let proj = shared.path().join("proj");
    fs_err::create_dir(&proj).unwrap();
    fs_err::write(
        proj.join("compose.yaml"),
        format!(
            "x-cove:\n  state_dir: {s}/state\nservices:\n  pwn:\n    x-cove:\n      run: sh -c 'id -u > {s}/ran-as-$(id -u); exec sleep 60'\n"
        ),
    )
    .unwrap();
    std::os::unix::fs::chown(&proj, Some(NOBODY), Some(NOBODY)).unwrap();
    std::os::unix::fs::chown(proj.join("compose.yaml"), Some(NOBODY), Some(NOBODY)).unwrap();
    let nobody_down = NobodyDown(proj.clone());
    must_work(&proj, &format!("timeout 60 {COVE} up -d"));
    eventually(10, "the attacker's command ran", || {
        shared.path().join("ran-as-65534").is_file()
    });
    assert!(state.join("state.redb").is_file());
    assert_eq!(owner(&state), NOBODY);
    // Their daemon dies; what should run stays in the store.
    must_work(&proj, &format!("kill -9 $(cat {s}/state/daemon.pid)"));
    eventually(15, "the attacker's replica stopped by the reaper", || {
        marked_processes(&format!("COVE_PROJECT={}", state.display())).is_empty()
    });
    fs_err::remove_file(shared.path().join("ran-as-65534")).unwrap();

    let app = App::new(&format!(
        "x-cove:\n  state_dir: {s}/state\nservices:\n  web:\n    x-cove:\n      run: sleep 60\n"
    ));
    let (code, out) = app.merged(&["up", "-d"]);
    assert_ne!(code, Some(0), "root used another user's state:\n{out}");
    assert!(
        out.contains(&*state.to_string_lossy())
            && out.contains("uid 65534")
            && out.contains("hint"),
        "{out}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !shared.path().join("ran-as-0").exists(),
        "the attacker's command ran as root"
    );
    let (code, out) = app.merged(&["ps"]);
    assert_ne!(code, Some(0), "ps talked to a daemon in it:\n{out}");
    drop(nobody_down);
}

/// `cove down` as nobody in their project (bounded), when dropped.
struct NobodyDown(PathBuf);

impl Drop for NobodyDown {
    fn drop(&mut self) {
        let _ = as_nobody(&self.0, &format!("timeout 60 {COVE} down"));
    }
}

/// Live processes whose environment holds `marker` (read as root).
fn marked_processes(marker: &str) -> Vec<u32> {
    processes_whose_env(|v| v == marker.as_bytes())
}

/// A `.cove` in a project others can write: a link to a directory of
/// theirs, or a directory they made: refused, nothing written there.
#[test]
fn linked_or_foreign_dot_cove_is_refused() {
    if !as_root("linked_or_foreign_dot_cove_is_refused") {
        return;
    }
    let shared = open_dir(0o1777);
    let app = App::new("services:\n  web:\n    x-cove:\n      run: sleep 60\n");
    chmod(app.dir(), 0o777);
    let dot = app.dir().join(".cove");
    must_work(
        shared.path(),
        &format!(
            "mkdir evil && ln -s {}/evil {}",
            shared.path().display(),
            dot.display()
        ),
    );
    let (code, out) = app.merged(&["up", "-d"]);
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains(&*dot.to_string_lossy()) && out.contains("symbolic link"),
        "{out}"
    );
    let evil: Vec<_> = fs_err::read_dir(shared.path().join("evil"))
        .unwrap()
        .collect();
    assert!(evil.is_empty(), "cove wrote through the link: {evil:?}");

    fs_err::remove_file(&dot).unwrap();
    must_work(app.dir(), "mkdir .cove");
    let (code, out) = app.merged(&["up", "-d"]);
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains(&*dot.to_string_lossy()) && out.contains("uid 65534"),
        "{out}"
    );
    assert!(fs_err::read_dir(&dot).unwrap().next().is_none());
    fs_err::remove_dir(&dot).unwrap();
}

/// After root's `cove up -d` in a project others can read: the state
/// directory, the store, the logs and the daemon's files are root's
/// alone; a value interpolated from a 0600 `.env` is nowhere nobody can
/// read.
#[test]
fn state_is_private() {
    if !as_root("state_is_private") {
        return;
    }
    let app = App::new(
        "services:\n  web:\n    environment:\n      TOKEN: ${TOKEN}\n    x-cove:\n      run: sh -c 'echo \"token is $$TOKEN\"; exec sleep 60'\n",
    );
    let value = "hunter2-shared-host-value";
    fs_err::write(app.dir().join(".env"), format!("TOKEN={value}\n")).unwrap();
    chmod(&app.dir().join(".env"), 0o600);
    chmod(app.dir(), 0o755);
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let state = app.dir().join(".cove");
    eventually(10, "the replica's line in its log", || {
        fs_err::read_to_string(state.join("logs/web-1.log")).is_ok_and(|t| t.contains(value))
    });
    assert_eq!(mode(&state), 0o700);
    for f in ["state.redb", "daemon.log", "daemon.pid", "logs/web-1.log"] {
        assert_eq!(mode(&state.join(f)), 0o600, "{f}");
    }
    assert_eq!(mode(&state.join("logs")), 0o700);
    assert_eq!(mode(&state.join("daemon.sock")) & 0o777, 0o600);
    let d = app.dir();
    must_fail(d, "ls .cove");
    for f in ["state.redb", "logs/web-1.log", "daemon.log"] {
        must_fail(d, &format!("cat .cove/{f}"));
    }
    must_fail(d, "cat .env");
    let out = as_nobody(d, &format!("grep -r {value} . 2>/dev/null"));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(value),
        "{}",
        text(&out)
    );
}

/// Nobody cannot reach the daemon's socket; and when its directory and
/// the socket were opened to others (by hand), the daemon still refuses
/// them (`SO_PEERCRED`), and says so in its log.
#[test]
fn socket_refuses_other_users() {
    if !as_root("socket_refuses_other_users") {
        return;
    }
    let app = App::new("services:\n  web:\n    x-cove:\n      run: sleep 60\n");
    chmod(app.dir(), 0o755);
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let curl = "curl -sS --max-time 5 --unix-socket .cove/daemon.sock http://cove/v1/status";
    must_fail(app.dir(), curl);
    let state = app.dir().join(".cove");
    chmod(&state, 0o711);
    chmod(&state.join("daemon.sock"), 0o666);
    let out = as_nobody(app.dir(), curl);
    chmod(&state, 0o700);
    chmod(&state.join("daemon.sock"), 0o600);
    assert!(
        !out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("pid"),
        "the daemon answered uid {NOBODY}:\n{}",
        text(&out)
    );
    eventually(5, "the refusal in the daemon's log", || {
        fs_err::read_to_string(state.join("daemon.log"))
            .is_ok_and(|l| l.contains("refused a connection from uid 65534"))
    });
    let (code, out) = app.merged(&["ps"]);
    assert_eq!(code, Some(0), "root is still served:\n{out}");
}

/// The API answers an over-size body with 413 (declared, or sent in
/// chunks) without taking it in, and closes a connection whose headers
/// do not come.
#[test]
fn api_bounds_bodies_and_slow_headers() {
    use std::io::{Read as _, Write as _};
    use std::os::unix::net::UnixStream;
    if !as_root("api_bounds_bodies_and_slow_headers") {
        return;
    }
    let app = App::new("services:\n  web:\n    x-cove:\n      run: sleep 60\n");
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let socket = app.dir().join(".cove/daemon.sock");
    let connect = || {
        let s = UnixStream::connect(&socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    };
    // Sends `head`, then up to 64 MiB of body in a thread (until the
    // daemon closes); returns the start of the answer.
    let send = |head: String, chunked: bool| -> String {
        let mut s = connect();
        s.write_all(head.as_bytes()).unwrap();
        let mut w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let block = vec![b'x'; 1 << 20];
            for _ in 0..64 {
                let ok = if chunked {
                    w.write_all(format!("{:x}\r\n", block.len()).as_bytes())
                        .and_then(|()| w.write_all(&block))
                        .and_then(|()| w.write_all(b"\r\n"))
                } else {
                    w.write_all(&block)
                };
                if ok.is_err() {
                    break;
                }
            }
        });
        let mut answer = vec![0u8; 4096];
        let n = s.read(&mut answer).unwrap_or(0);
        drop(s);
        let _ = writer.join();
        String::from_utf8_lossy(&answer[..n]).into_owned()
    };
    let t = Instant::now();
    let answer = send(
        "POST /v1/up HTTP/1.1\r\nhost: cove\r\ncontent-type: application/json\r\ncontent-length: 300000000\r\n\r\n".into(),
        false,
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("larger than the daemon takes"), "{answer}");
    let answer = send(
        "POST /v1/up HTTP/1.1\r\nhost: cove\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".into(),
        true,
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(t.elapsed() < Duration::from_secs(30));

    // Half a header, then nothing.
    let mut s = connect();
    s.write_all(b"GET /v1/status HTTP/1.1\r\nhost: cove\r\n")
        .unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap_or(0);
    let waited = t.elapsed();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(
        waited < Duration::from_secs(15) && (n == 0 || answer.starts_with("HTTP/1.1 408")),
        "after {waited:?}: {answer:?}"
    );
    // Still serving.
    let (code, out) = app.merged(&["ps"]);
    assert_eq!(code, Some(0), "{out}");
}

/// At most 256 connections to the API are open at once: one more is
/// closed as soon as it is accepted (not left to the header timeout), the
/// daemon's log says why, and once they end it serves again. (Idle ones
/// end by themselves after the header timeout.)
#[test]
fn api_caps_connections() {
    use std::io::Read as _;
    use std::os::unix::net::UnixStream;
    let app = App::new("services:\n  web:\n    x-cove:\n      run: sleep 60\n");
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let socket = app.dir().join(".cove/daemon.sock");
    // Let the daemon see `up`'s own connection end.
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let idle: Vec<UnixStream> = (0..256)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    let mut extra = UnixStream::connect(&socket).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 64];
    let n = extra.read(&mut buf);
    let waited = t.elapsed();
    assert!(
        matches!(n, Ok(0)) && waited < Duration::from_secs(3),
        "the 257th connection: {n:?} after {waited:?}"
    );
    // The 256 are still open (a read would wait, not see the end).
    for (i, s) in idle.iter().enumerate() {
        s.set_nonblocking(true).unwrap();
        let r = (&*s).read(&mut buf);
        assert!(
            matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "connection {i}: {r:?}"
        );
    }
    let log = fs_err::read_to_string(app.dir().join(".cove/daemon.log")).unwrap();
    assert!(
        log.contains("256 connections are open: closing new ones until some end"),
        "{log}"
    );
    drop(idle);
    let (code, out) = app.merged(&["ps"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("web"), "{out}");
}

/// The daemon holds decrypted secrets: it makes no core dump (its soft
/// core size limit is 0) and is not dumpable: even its own user cannot
/// read its environment (nobody runs a daemon of theirs to show it).
#[test]
fn daemon_makes_no_core_and_hides_its_memory() {
    if !as_root("daemon_makes_no_core_and_hides_its_memory") {
        return;
    }
    let app = App::new("services:\n  web:\n    x-cove:\n      run: sleep 60\n");
    // Started from a shell that allows core dumps (up to its hard limit).
    let out = crate::daemon::run_bounded(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -S -c $(ulimit -H -c) && ulimit -c && exec {COVE} up -d"
            ))
            .current_dir(app.dir())
            .env("NO_COLOR", "1"),
        120,
    );
    assert_eq!(out.code, Some(0), "{out}");
    if out.stdout.lines().next() == Some("0") {
        eprintln!("the hard core size limit is 0 here: the daemon's 0 proves little");
    }
    let pid = fs_err::read_to_string(app.dir().join(".cove/daemon.pid")).unwrap();
    let pid = pid.trim();
    let limits = fs_err::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "{core}");
    must_fail(Path::new("/"), &format!("cat /proc/{pid}/environ"));

    // A daemon of nobody's own: not dumpable, so its /proc files are
    // root's, and nobody cannot read its environment or memory.
    let home = open_dir(0o755);
    let proj = home.path().join("proj");
    fs_err::create_dir(&proj).unwrap();
    fs_err::write(
        proj.join("compose.yaml"),
        "services:\n  web:\n    x-cove:\n      run: sleep 60\n",
    )
    .unwrap();
    for p in [&proj, &proj.join("compose.yaml")] {
        std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let _down = NobodyDown(proj.clone());
    must_work(&proj, &format!("timeout 60 {COVE} up -d"));
    let pid = fs_err::read_to_string(proj.join(".cove/daemon.pid")).unwrap();
    let pid = pid.trim();
    assert_eq!(owner(Path::new(&format!("/proc/{pid}/environ"))), 0);
    must_work(&proj, "cat /proc/$$/environ > /dev/null");
    must_fail(&proj, &format!("cat /proc/{pid}/environ"));
}

/// Kills a process by its PID when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process of another user that carries the daemon's markers survives
/// every sweep of a root cove (a daemon's start, its reaper, `down` with
/// no daemon), while root's own marked process is stopped.
#[test]
fn sweep_spares_other_users_processes() {
    if !as_root("sweep_spares_other_users_processes") {
        return;
    }
    let app = App::new("services:\n  web:\n    x-cove:\n      run: sleep 60\n");
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let state = fs_err::canonicalize(app.dir().join(".cove")).unwrap();
    let markers = [
        format!("COVE_SUPERVISOR={}", state.display()),
        format!("COVE_PROJECT={}", state.display()),
    ];
    let theirs = KillOnDrop(
        nobody("env")
            .args([&markers[0], &markers[1], "sleep", "60"])
            .current_dir("/")
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = theirs.0.id();
    eventually(5, "their process carries the markers", || {
        marked_processes(&markers[1]).contains(&pid)
    });
    // A daemon's end (its reaper sweeps), a daemon's start.
    let (code, out) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    // A daemon killed: its reaper sweeps; then `down` with no daemon.
    let daemon = fs_err::read_to_string(state.join("daemon.pid")).unwrap();
    let _ = Command::new("kill").args(["-9", daemon.trim()]).status();
    let ours = KillOnDrop(
        Command::new("env")
            .args([&markers[1], "sleep", "60"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually(10, "the killed daemon's replica stopped", || {
        !marked_processes(&markers[1])
            .iter()
            .any(|p| *p != pid && *p != ours.0.id())
    });
    let (code, out) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
    let own = ours.0.id();
    eventually(15, "root's own marked process stopped by `down`", || {
        !alive(own)
    });
    assert!(alive(pid), "the sweep killed uid {NOBODY}'s process");
    drop(theirs);
}
