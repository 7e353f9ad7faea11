//! Hosts made of network namespaces, for tests of cove across machines
//! (issue 21): [`NetHosts::new`] makes `n` namespaces joined by veth pairs
//! to a bridge in this namespace, on a private /24 of 10.0.0.0/8 that no
//! interface here uses (traffic stays in the machine). In each: loopback
//! up, [`NetHosts::start_sshd`] (a real OpenSSH server on the host's
//! address, the shared [`Sshd`] run through `ip netns exec`: its own host
//! key, an authorized key, known_hosts for the client) and [`NetHosts::start_daemon`] (a cove host daemon,
//! `cove __daemon --state-dir DIR --host` through `ip netns exec`);
//! [`NetHosts::link_down`] / [`NetHosts::link_up`] cut a host off and
//! back (its packets are dropped, not refused).
//!
//! Dropping a [`NetHosts`] ends what it started, by pid (each daemon first,
//! with SIGTERM, so it stops its replicas; then sshd; then any process
//! left in its namespaces), and deletes its namespaces and links, also
//! when the test panicked.
//!
//! Namespaces need root: as root (CI) a failure to make them fails the
//! test, saying why; not root and `CI` unset, [`NetHosts::new`] says so
//! loudly and gives `None` (the test returns).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::daemon::{Out, run_bounded};
use crate::sshd::{Options, Sshd, ssh_command};

/// One host: a namespace, its address, the link that joins it here.
#[derive(Debug, Clone)]
pub struct NetHost {
    /// The namespace's name (`ip netns exec NAME`).
    pub ns: String,
    pub addr: Ipv4Addr,
    /// The veth end in this namespace (a port of the bridge).
    pub link: String,
}

/// What a client needs to reach a host's sshd.
#[derive(Debug, Clone)]
pub struct SshHost {
    /// `ssh://root@ADDR`.
    pub url: String,
    /// `COVE_SSH`: ssh with none of the machine's configuration, the
    /// host's key in its known_hosts, the test's key.
    pub ssh: String,
    /// The client's known_hosts line of the host, in a file.
    pub known_hosts: PathBuf,
    /// The test's private key that the host takes.
    pub key: PathBuf,
    /// What `cove` run over ssh there was run with, one run a line.
    pub ran: PathBuf,
}

/// `n` namespace hosts; see the module's documentation.
pub struct NetHosts {
    pub hosts: Vec<NetHost>,
    /// The bridge's address (this namespace's, on the hosts' /24).
    pub gateway_addr: Ipv4Addr,
    bridge: String,
    dir: tempfile::TempDir,
    /// Daemons, then sshds: ended in that order.
    daemons: Mutex<Vec<Child>>,
    sshds: Mutex<Vec<Sshd>>,
}

/// Makes one test's namespaces at a time in this process (the /24 is
/// checked free, then taken).
static MAKING: Mutex<()> = Mutex::new(());
/// Tells apart the NetHosts of one test process.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs `ip ARGS`, panicking with its stderr when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip` (iproute2): {e}"));
    assert!(
        out.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// `ip ARGS`'s stdout, whatever its status.
fn ip_out(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A /24 of 10.0.0.0/8 for this process's `k`th NetHosts, derived from
/// the pid (concurrent test processes get different ones) and not used
/// by any address or route here.
fn free_subnet(k: u32) -> [u8; 2] {
    let pid = std::process::id();
    let used =
        ip_out(&["-4", "-o", "addr", "show"]) + &ip_out(&["-4", "route", "show", "table", "all"]);
    let a = 100 + ((pid >> 8) % 100) as u8;
    for step in 0..256u32 {
        let b = ((pid & 0xff) + 7 * k + 13 * step) % 256;
        let b = b as u8;
        let net = format!("10.{a}.{b}.");
        if !used.contains(&net) {
            return [a, b];
        }
    }
    panic!("no free /24 in 10.{a}.0.0/16 for the test's namespaces");
}

impl NetHosts {
    /// `n` hosts (see the module's documentation); `None` only when not
    /// root and `CI` is unset (said on stderr).
    pub fn new(n: usize) -> Option<NetHosts> {
        assert!((1..=200).contains(&n), "1 to 200 hosts, not {n}");
        if !is_root() {
            let why = "network namespace hosts need root (ip netns add)";
            if std::env::var_os("CI").is_some() {
                panic!("{why}: CI runs these tests as root");
            }
            eprintln!("\n*** SKIPPED: {why}; run as root to test hosts ***\n");
            return None;
        }
        if Command::new("ip").arg("-V").output().is_err() {
            panic!("network namespace hosts need `ip` (iproute2): not found");
        }
        let _one = MAKING.lock().unwrap_or_else(|e| e.into_inner());
        let pid = std::process::id();
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let [a, b] = free_subnet(k);
        // Interface names: at most 15 bytes.
        let tag = format!("cv{pid:x}k{k}");
        let mut net = NetHosts {
            hosts: Vec::new(),
            gateway_addr: Ipv4Addr::new(10, a, b, 1),
            bridge: format!("{tag}b"),
            dir: tempfile::tempdir().unwrap(),
            daemons: Mutex::new(Vec::new()),
            sshds: Mutex::new(Vec::new()),
        };
        // From here on, Drop deletes what was made, if this panics.
        ip(&[
            "link",
            "add",
            &net.bridge,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", net.gateway_addr),
            "dev",
            &net.bridge,
        ]);
        ip(&["link", "set", &net.bridge, "up"]);
        for i in 0..n {
            let host = NetHost {
                ns: format!("cove-test-{pid}-{k}-h{i}"),
                addr: Ipv4Addr::new(10, a, b, 2 + i as u8),
                link: format!("{tag}h{i}"),
            };
            let inside = format!("{tag}n{i}");
            net.hosts.push(host.clone());
            ip(&["netns", "add", &host.ns]);
            ip(&[
                "link", "add", &host.link, "type", "veth", "peer", "name", &inside,
            ]);
            ip(&["link", "set", &inside, "netns", &host.ns]);
            ip(&["link", "set", &host.link, "master", &net.bridge]);
            ip(&["link", "set", &host.link, "up"]);
            ip(&["-n", &host.ns, "link", "set", "lo", "up"]);
            ip(&[
                "-n",
                &host.ns,
                "addr",
                "add",
                &format!("{}/24", host.addr),
                "dev",
                &inside,
            ]);
            ip(&["-n", &host.ns, "link", "set", &inside, "up"]);
        }
        // Each host answers from here before the test goes on.
        for h in &net.hosts {
            net.wait_reachable(h.addr);
        }
        Some(net)
    }

    /// Waits (up to 20 s) until `addr` answers a ping from here.
    fn wait_reachable(&self, addr: Ipv4Addr) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = Command::new("ping")
                .args(["-c", "1", "-W", "1", &addr.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            // Without ping, a TCP connect refused by the host (nothing
            // listens yet) says it is there as well.
            if let Err(e) = std::net::TcpStream::connect_timeout(
                &SocketAddr::from((addr, 9)),
                Duration::from_millis(500),
            ) && e.kind() == std::io::ErrorKind::ConnectionRefused
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{addr} (a namespace host) is not reachable after 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `program` to be run in host `i`'s namespace (`ip netns exec`).
    pub fn command_in(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.hosts[i].ns])
            .arg(program)
            .stdin(Stdio::null());
        c
    }

    /// Runs `args` in host `i`'s namespace to completion (killed after
    /// 60 s).
    pub fn run_in(&self, i: usize, args: &[&str]) -> Out {
        let mut c = self.command_in(i, args[0]);
        c.args(&args[1..]);
        run_bounded(&mut c, 60)
    }

    /// `cove ARGS` in host `i`'s namespace, in `dir`, with its host
    /// daemon (`COVE_DAEMON=host`, `COVE_HOST_DIR`).
    pub fn cove_in(&self, i: usize, dir: &Path, args: &[&str]) -> Out {
        let mut c = self.command_in(i, env!("CARGO_BIN_EXE_cove"));
        c.args(args)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .env("COVE_DAEMON", "host")
            .env("COVE_HOST_DIR", self.host_dir(i))
            .env_remove("COVE_HOST");
        run_bounded(&mut c, 120)
    }

    /// The pids of the daemons and sshds started so far.
    pub fn pids(&self) -> Vec<u32> {
        let daemons = self.daemons.lock().unwrap();
        let sshds = self.sshds.lock().unwrap();
        daemons
            .iter()
            .map(Child::id)
            .chain(sshds.iter().map(Sshd::pid))
            .collect()
    }

    /// The bridge joining the hosts here.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// Host `i`'s link goes down: its packets are dropped.
    pub fn link_down(&self, i: usize) {
        ip(&["link", "set", &self.hosts[i].link, "down"]);
    }

    /// Host `i`'s link comes back.
    pub fn link_up(&self, i: usize) {
        ip(&["link", "set", &self.hosts[i].link, "up"]);
    }

    /// Host `i`'s files (sshd's keys and config, the daemon's directory).
    fn host_path(&self, i: usize) -> PathBuf {
        let p = self.dir.path().join(format!("h{i}"));
        fs_err::create_dir_all(&p).unwrap();
        p
    }

    /// Host `i`'s daemon directory (`COVE_HOST_DIR`).
    pub fn host_dir(&self, i: usize) -> PathBuf {
        let p = self.host_path(i).join("cove");
        fs_err::create_dir_all(&p).unwrap();
        p
    }

    /// Starts a cove host daemon in host `i`'s namespace and waits (up to
    /// 30 s) for its socket.
    pub fn start_daemon(&self, i: usize) {
        let dir = self.host_dir(i);
        let err = fs_err::File::create(self.host_path(i).join("daemon.err"))
            .unwrap()
            .into_parts()
            .0;
        let child = self
            .command_in(i, env!("CARGO_BIN_EXE_cove"))
            .args(["__daemon", "--state-dir"])
            .arg(&dir)
            .arg("--host")
            .env("COVE_HOST_DIR", &dir)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("ip netns exec cove __daemon");
        self.daemons.lock().unwrap().push(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !dir.join("daemon.sock").exists() {
            assert!(
                Instant::now() < deadline,
                "the host daemon of {} made no socket within 30 s: {}",
                self.hosts[i].ns,
                fs_err::read_to_string(self.host_path(i).join("daemon.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts sshd in host `i`'s namespace on its address, port 22 (the
    /// shared [`Sshd`], through `ip netns exec`): its own host key, the
    /// test's key authorized, `SetEnv` giving commands run over ssh `cove`
    /// (a wrapper recording each run) and the host's daemon directory.
    /// Waits (up to 20 s) until it listens.
    pub fn start_sshd(&self, i: usize) -> SshHost {
        self.start_sshd_env(i, &[])
    }

    /// [`NetHosts::start_sshd`], with more variables (`SetEnv`, no
    /// spaces) for the commands run over ssh there.
    pub fn start_sshd_env(&self, i: usize, env: &[(&str, &str)]) -> SshHost {
        let host = self.host_dir(i);
        let mut o = Options::new(&host).netns(&self.hosts[i].ns, self.hosts[i].addr.into());
        for (k, v) in env {
            o = o.env(k, v);
        }
        let sshd = Sshd::start_opts(o);
        let known = sshd.known_hosts();
        let host = SshHost {
            url: sshd.url(),
            ssh: ssh_command(&known, &[sshd.client_key()], " -o ConnectTimeout=5"),
            known_hosts: known,
            key: sshd.client_key(),
            ran: sshd.dir.path().join("ran"),
        };
        self.sshds.lock().unwrap().push(sshd);
        host
    }
}

/// Sends SIGTERM to `child` by its pid, waits up to `grace` for it to
/// end, then kills it.
fn end(child: &mut Child, grace: Duration) {
    if child.try_wait().ok().flatten().is_none() {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}

impl Drop for NetHosts {
    fn drop(&mut self) {
        // A daemon stops its replicas on SIGTERM.
        for child in self.daemons.get_mut().unwrap_or_else(|e| e.into_inner()) {
            end(child, Duration::from_secs(30));
        }
        // Each sshd stops as it drops.
        self.sshds
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        // What is left in the namespaces (a replica that outlived its
        // daemon, an ssh session), by pid: all of it started by this test.
        for h in &self.hosts {
            for pid in ip_out(&["netns", "pids", &h.ns]).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        for h in &self.hosts {
            let _ = Command::new("ip").args(["netns", "del", &h.ns]).status();
            // Gone with its peer when the namespace went; else now.
            let _ = Command::new("ip")
                .args(["link", "del", &h.link])
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}
