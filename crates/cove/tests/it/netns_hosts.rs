//! Hosts that are network namespaces ([`crate::netns::NetHosts`]), each
//! with a real OpenSSH server and its own cove host daemon:
//!
//! - The harness: addresses and loopback in each namespace, hosts reach
//!   each other, and dropping it during a panic leaves no namespace, link
//!   or process.
//! - `cove --host ssh://root@10.x.y.2 ps` lists the replicas of an app the
//!   host's daemon runs, over the veth link and sshd; with the link down
//!   it cannot, and with it back it can again.
//! - One origin across hosts: two hosts run the same HTTP service behind
//!   their own gateway (on the host's address); a standalone `cove
//!   gateway` here balances across the two, health-checked. Under
//!   continuous GETs through it, one host's link goes down: the failed
//!   requests are counted (0: idempotent requests move to the other
//!   host), and how long until the front routes around it; the link comes
//!   back: the front sends to that host again.

use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::daemon::{Out, run_bounded};
use crate::load::{Load, Sample, get};
use crate::netns::NetHosts;
use crate::ssh::replicas;

const APP: &str = "name: nsapp\nservices:\n  web:\n    x-cove: {run: [sh, -c, 'sleep 300 & wait']}\n    deploy: {replicas: 2}\n";

/// `cove ARGS` here (the client), in `dir`, with `COVE_SSH`.
fn client(dir: &Path, ssh: &str, args: &[&str]) -> Out {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_cove"))
            .current_dir(dir)
            .args(args)
            .env("NO_COLOR", "1")
            .env("COVE_SSH", ssh)
            .env_remove("COVE_DAEMON")
            .env_remove("COVE_HOST_DIR")
            .env_remove("COVE_HOST"),
        60,
    )
}

/// Whether `ip ARGS` lists `name`.
fn ip_lists(args: &[&str], name: &str) -> bool {
    let out = Command::new("ip").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).contains(name)
}

/// The harness itself: each host has its address and loopback, reaches
/// the others, and dropping it (here while a test panics) ends its
/// processes and removes its namespaces, links and bridge.
#[test]
fn namespace_hosts_are_joined_and_removed_whole_even_on_a_panic() {
    let Some(net) = NetHosts::new(2) else { return };
    let out = net.run_in(0, &["ip", "-4", "-o", "addr", "show"]);
    assert_eq!(out.code, Some(0), "{out}");
    let addr = net.hosts[0].addr.to_string();
    assert!(
        out.stdout.contains(&format!("inet {addr}/24")) && out.stdout.contains("inet 127.0.0.1/8"),
        "{out}"
    );
    // Host 0 reaches host 1's sshd across the bridge.
    net.start_sshd(1);
    let out = net.run_in(
        0,
        &[
            "python3",
            "-c",
            &format!(
                "import socket; socket.create_connection(('{}', 22), 10).close()",
                net.hosts[1].addr
            ),
        ],
    );
    assert_eq!(out.code, Some(0), "{out}");
    net.start_daemon(0);
    let pids = net.pids();
    assert_eq!(pids.len(), 2);
    let names: Vec<String> = net.hosts.iter().map(|h| h.ns.clone()).collect();
    let links: Vec<String> = net.hosts.iter().map(|h| h.link.clone()).collect();
    let bridge = net.bridge().to_string();
    assert!(names.iter().all(|n| ip_lists(&["netns", "list"], n)));
    let panicked = std::thread::spawn(move || {
        let _net = net;
        panic!("a test failing with its hosts up");
    })
    .join();
    assert!(panicked.is_err());
    for n in &names {
        assert!(!ip_lists(&["netns", "list"], n), "{n} is left");
    }
    for l in links.iter().chain([&bridge]) {
        assert!(
            !ip_lists(&["-o", "link", "show"], &format!(" {l}")),
            "{l} is left"
        );
    }
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} is left"
        );
    }
}

#[test]
fn ps_over_ssh_crosses_a_real_link_to_a_namespace_host() {
    let Some(net) = NetHosts::new(1) else { return };
    let sshd = net.start_sshd(0);
    net.start_daemon(0);
    // The app, started in the host's namespace with its daemon.
    let there = tempfile::tempdir().unwrap();
    fs_err::write(there.path().join("compose.yaml"), APP).unwrap();
    let out = net.cove_in(0, there.path(), &["up", "-d"]);
    assert_eq!(out.code, Some(0), "{out}");
    let out = net.cove_in(0, there.path(), &["ps", "--format", "json"]);
    assert_eq!(out.code, Some(0), "{out}");
    let here = replicas(&out.stdout);
    assert_eq!(here.len(), 2, "{out}");

    // The client's checkout: the same file, on this side of the link.
    let checkout = tempfile::tempdir().unwrap();
    fs_err::write(checkout.path().join("compose.yaml"), APP).unwrap();
    let url = &sshd.url;
    assert!(url.starts_with("ssh://root@10."), "{url}");
    let out = client(
        checkout.path(),
        &sshd.ssh,
        &["--host", url, "ps", "--format", "json"],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        replicas(&out.stdout),
        here,
        "the host's replicas, pids and all"
    );
    let ran = fs_err::read_to_string(&sshd.ran).unwrap_or_default();
    assert!(ran.contains("system dial-stdio"), "through sshd: {ran}");

    // The link down: nothing gets there (ssh's connect times out).
    net.link_down(0);
    let out = client(checkout.path(), &sshd.ssh, &["--host", url, "ps"]);
    assert_ne!(out.code, Some(0), "answered with the link down: {out}");
    // Back: answered again.
    net.link_up(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = client(
            checkout.path(),
            &sshd.ssh,
            &["--host", url, "ps", "--format", "json"],
        );
        if out.code == Some(0) {
            assert_eq!(replicas(&out.stdout), here);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not answered within 60 s of the link coming back: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = net.cove_in(0, there.path(), &["down"]);
    assert_eq!(out.code, Some(0), "{out}");
}

/// The app each host runs: one HTTP service (files of its directory,
/// `who` naming the host) behind the host's gateway on its address.
fn web_app(addr: std::net::Ipv4Addr) -> String {
    format!(
        r#"name: nsweb
services:
  web:
    x-cove:
      run: ["sh", "-c", "exec python3 -m http.server --bind $$HOST $$PORT"]
      routes: [{{path: /}}]
    expose: ["8000"]
x-cove:
  gateway: {{listen: "{addr}:8080"}}
"#
    )
}

/// `cove gateway`, ended by its pid (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Front(pub(crate) Child);

impl Front {
    /// Starts `cove gateway` on a free port of 127.0.0.1 across
    /// `upstreams`, health-checked with `GET health_path`, once it said it
    /// listens: it, its address, and the lines it prints next (with when
    /// they came).
    pub(crate) fn start(
        upstreams: &[String],
        health_path: &str,
    ) -> (Front, SocketAddr, mpsc::Receiver<(Instant, String)>) {
        let listen = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_cove"));
        command.args(["gateway", "--listen", &listen.to_string(), "--threads", "2"]);
        for u in upstreams {
            command.args(["--upstream", u]);
        }
        let mut child = command
            .args(["--health-path", health_path])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let front = Front(child);
        let (tx, lines) = mpsc::channel::<(Instant, String)>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send((Instant::now(), line));
            }
        });
        let (_, first) = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("cove gateway printed nothing within 30 s");
        assert!(first.starts_with("cove gateway: listening on"), "{first}");
        (front, listen, lines)
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(40);
            while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

#[test]
fn one_origin_across_hosts_routes_around_a_host_whose_link_goes_down() {
    let Some(net) = NetHosts::new(2) else { return };
    let mut apps = Vec::new();
    for i in 0..2 {
        net.start_daemon(i);
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("compose.yaml"), web_app(net.hosts[i].addr)).unwrap();
        fs_err::write(dir.path().join("who"), format!("h{i}\n")).unwrap();
        let out = net.cove_in(i, dir.path(), &["up", "-d"]);
        assert_eq!(out.code, Some(0), "host {i}: {out}");
        apps.push(dir);
    }
    let upstreams: Vec<String> = net
        .hosts
        .iter()
        .map(|h| format!("{}:8080", h.addr))
        .collect();

    // The front: here, on loopback, across the two hosts' gateways.
    let (front, listen, lines) = Front::start(&upstreams, "/who");
    // Both hosts answer through it (their apps may still be starting).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 2 {
        if let Ok(who) = get(listen, "/who", "web.test") {
            seen.insert(who);
        }
        assert!(
            Instant::now() < deadline,
            "both hosts did not answer through the front within 60 s: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // The load: 4 clients, GETs back to back, each on a new connection;
    // at most 100 000 requests and 180 s in all.
    let mut load = Load::start(4, 25_000, Duration::from_secs(180), move || {
        get(listen, "/who", "web.test")
    });
    let began = load.began;
    let answered_by = |who: &str, after: Duration| {
        load.samples()
            .iter()
            .any(|s| s.start >= after && s.result.as_deref() == Ok(who))
    };

    // Some load on both, then host 0's link goes down.
    std::thread::sleep(Duration::from_secs(2));
    let down_at = began.elapsed();
    let down_instant = Instant::now();
    net.link_down(0);
    // The front says it is down.
    let deadline = down_instant + Duration::from_secs(30);
    let said_down = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((at, line)) = lines.recv_timeout(left) else {
            panic!("the front did not say {} is down within 30 s", upstreams[0]);
        };
        if line.contains(&format!("upstream {} is down", upstreams[0])) {
            break at.duration_since(down_instant);
        }
        // Host 1 found down too (a check slowed by a loaded machine)
        // shows in the counts below.
        eprintln!("front: {line}");
    };
    // Five seconds of load on the other host alone.
    std::thread::sleep(Duration::from_secs(5));
    let up_at = began.elapsed();
    net.link_up(0);
    // The front takes it back, and sends to it again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((_, line)) = lines.recv_timeout(Duration::from_millis(100))
            && line.contains(&format!("upstream {} is back", upstreams[0]))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the front did not take {} back within 60 s",
            upstreams[0]
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !answered_by("h0", up_at) {
        assert!(
            Instant::now() < deadline,
            "no answer from host 0 through the front within 60 s of its link coming back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    load.finish();

    let samples = load.samples();
    let sent = samples.len();
    let failed: Vec<&Sample> = samples.iter().filter(|s| s.result.is_err()).collect();
    // Slowed by the dead host: in flight at the cut or started after it,
    // and over 250 ms. The last of them ending is when the front had
    // routed around it for every request.
    let slowed: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.end > down_at && s.start < up_at)
        .filter(|s| s.end - s.start > Duration::from_millis(250))
        .collect();
    let routed_around = slowed
        .iter()
        .map(|s| s.end - down_at)
        .max()
        .unwrap_or_default();
    let slowest = samples
        .iter()
        .filter(|s| s.end > down_at && s.start < up_at)
        .map(|s| s.end - s.start)
        .max()
        .unwrap_or_default();
    let during_down = samples
        .iter()
        .filter(|s| s.start >= down_at && s.start < up_at)
        .count();
    eprintln!(
        "one origin across hosts: {sent} requests sent, {} failed; host 0's link down for {:?}: \
         the front said it down after {said_down:?}, the last request slowed by it ended {routed_around:?} \
         after the cut ({} slowed over 250 ms, slowest {slowest:?}); {during_down} requests while it was down",
        failed.len(),
        up_at - down_at,
        slowed.len(),
    );
    assert!(
        failed.is_empty(),
        "{} of {sent} requests failed, first: {:?} at {:?}",
        failed.len(),
        failed[0].result,
        failed[0].start
    );
    // The requests waiting on host 0 when the front found it down were
    // moved to host 1, not left waiting for the link to come back (which
    // is at least 5 s later).
    let stuck: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.start < down_at + said_down && s.end > down_at + said_down)
        .filter(|s| s.end >= up_at || s.result.as_deref() != Ok("h1"))
        .collect();
    assert!(
        stuck.is_empty(),
        "{} requests in flight when the front found host 0 down were not answered by host 1 \
         before the link came back: first started {:?}, ended {:?} ({:?}); the link was down from {down_at:?} to {up_at:?}",
        stuck.len(),
        stuck[0].start,
        stuck[0].end,
        stuck[0].result
    );
    // While it was down (after the front said so), only host 1 answered.
    let after_said = down_at + said_down;
    assert!(
        samples
            .iter()
            .filter(|s| s.start > after_said && s.end < up_at)
            .all(|s| s.result.as_deref() == Ok("h1")),
        "host 0 answered while its link was down"
    );
    drop(samples);
    drop(front);
    for (i, dir) in apps.iter().enumerate() {
        let out = net.cove_in(i, dir.path(), &["down"]);
        assert_eq!(out.code, Some(0), "host {i}: {out}");
    }
}
