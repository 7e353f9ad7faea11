//! A real OpenSSH server per test (Debian's `/usr/sbin/sshd`), as a host
//! that cove reaches over ssh: its own host key and an authorized key made
//! for the test, on a listen address the test gives (127.0.0.1, or an
//! address of a network namespace), with `SetEnv` giving the remote `cove`
//! on its PATH (a wrapper that records each run), the host daemon's
//! directory (`COVE_HOST_DIR`) and whatever else the test sets there.
//! In a network namespace ([`Options::netns`]) it is run through `ip netns
//! exec NS` on port 22 of the namespace's address. Stopped by its pid when
//! dropped.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub addr: IpAddr,
    pub port: u16,
    child: Child,
}

/// How the server is started.
pub struct Options<'a> {
    /// The host daemon's directory of commands run there.
    pub host_dir: &'a Path,
    /// Where it listens (a free port of it is taken).
    pub addr: IpAddr,
    /// `cove` on the PATH of commands run there.
    pub cove: bool,
    /// More variables of commands run there (`SetEnv`: no spaces).
    pub env: Vec<(String, String)>,
    /// The network namespace it runs in (`ip netns exec NS`), on port 22
    /// of `addr` (an address of that namespace); `None`: this one.
    pub netns: Option<String>,
}

impl<'a> Options<'a> {
    pub fn new(host_dir: &'a Path) -> Options<'a> {
        Options {
            host_dir,
            addr: IpAddr::from([127, 0, 0, 1]),
            cove: true,
            env: Vec::new(),
            netns: None,
        }
    }

    /// Runs it in namespace `ns`, listening on `addr` there (port 22).
    pub fn netns(mut self, ns: &str, addr: IpAddr) -> Options<'a> {
        self.netns = Some(ns.to_string());
        self.addr = addr;
        self
    }

    pub fn env(mut self, key: &str, value: impl std::fmt::Display) -> Options<'a> {
        self.env.push((key.to_string(), value.to_string()));
        self
    }
}

impl Sshd {
    /// Starts sshd on a free port of 127.0.0.1: remote commands find
    /// `cove` (a wrapper that records each run in `ran`, then runs the
    /// test's binary) and the host daemon of `host_dir`.
    pub fn start(host_dir: &Path) -> Sshd {
        Sshd::start_opts(Options::new(host_dir))
    }

    /// [`Sshd::start`]; without `cove` on the remote PATH when not `cove`.
    pub fn start_with(host_dir: &Path, cove: bool) -> Sshd {
        let mut o = Options::new(host_dir);
        o.cove = cove;
        Sshd::start_opts(o)
    }

    pub fn start_opts(o: Options<'_>) -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let keygen = |file: &str| {
            let st = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "cove-test", "-f"])
                .arg(d.join(file))
                .status()
                .unwrap();
            assert!(st.success(), "ssh-keygen");
        };
        keygen("host_key");
        keygen("client_key");
        fs_err::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        let bin = d.join("bin");
        fs_err::create_dir(&bin).unwrap();
        // Without cove, the wrapper is not where ssh's PATH finds it.
        let wrapper = if o.cove {
            bin.join("cove")
        } else {
            d.join("not-cove")
        };
        fs_err::write(
            &wrapper,
            format!(
                "#!/bin/sh\necho \"$*\" >> {}\nexec {} \"$@\"\n",
                d.join("ran").display(),
                env!("CARGO_BIN_EXE_cove")
            ),
        )
        .unwrap();
        fs_err::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        // A namespace made for the test has port 22 free; here, a free
        // port is taken.
        let port = if o.netns.is_some() {
            22
        } else {
            std::net::TcpListener::bind((o.addr, 0))
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let listen = match o.addr {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        let extra: String = o
            .env
            .iter()
            .map(|(k, v)| {
                assert!(!v.contains(char::is_whitespace), "SetEnv {k}: no spaces");
                format!(" {k}={v}")
            })
            .collect();
        fs_err::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress {listen}\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPubkeyAuthentication yes\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 PermitRootLogin prohibit-password\nStrictModes no\n\
                 SetEnv PATH={bin}:/usr/bin:/bin COVE_HOST_DIR={host}{extra}\n",
                d = d.display(),
                bin = bin.display(),
                host = o.host_dir.display(),
            ),
        )
        .unwrap();
        // sshd's privilege separation directory, as its package makes it.
        let _ = fs_err::create_dir_all("/run/sshd");
        let mut command = match &o.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "/usr/sbin/sshd"]);
                c
            }
            None => Command::new("/usr/sbin/sshd"),
        };
        let child = command
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(
                fs_err::File::create(d.join("sshd.log"))
                    .unwrap()
                    .into_parts()
                    .0,
            )
            .stderr(
                fs_err::File::create(d.join("sshd.err"))
                    .unwrap()
                    .into_parts()
                    .0,
            )
            .spawn()
            .expect("/usr/sbin/sshd (openssh-server, see scripts/install-packages)");
        let sshd = Sshd {
            dir,
            addr: o.addr,
            port,
            child,
        };
        // Reached from here (a namespace's address across its link).
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from((o.addr, port)),
            Duration::from_secs(1),
        )
        .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "sshd did not listen on {}:{port} within 20 s: {}",
                o.addr,
                fs_err::read_to_string(sshd.dir.path().join("sshd.err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // The client's known_hosts holds the server's key, as
        // `ssh-keyscan` would write it (port 22 is not written).
        let key = fs_err::read_to_string(sshd.dir.path().join("host_key.pub")).unwrap();
        let key: Vec<&str> = key.split_whitespace().take(2).collect();
        let name = if port == 22 {
            o.addr.to_string()
        } else {
            format!("[{listen}]:{port}")
        };
        fs_err::write(sshd.known_hosts(), format!("{name} {}\n", key.join(" "))).unwrap();
        sshd
    }

    /// sshd's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        match self.addr {
            IpAddr::V4(a) => format!("ssh://root@{a}:{}", self.port),
            IpAddr::V6(a) => format!("ssh://root@[{a}]:{}", self.port),
        }
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// `COVE_SSH`: ssh with none of the machine's configuration, this
    /// test's key and `known_hosts`.
    pub fn ssh(&self, known_hosts: &Path) -> String {
        ssh_command(known_hosts, &[self.client_key()], "")
    }

    /// The key this test's client logs in with.
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// What the remote `cove` was run with, one run a line.
    pub fn ran(&self) -> String {
        fs_err::read_to_string(self.dir.path().join("ran")).unwrap_or_default()
    }

    /// Stops it now (as dropping does).
    pub fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `COVE_SSH`: ssh with none of the machine's configuration, trusting the
/// host keys in `known_hosts` only, offering `keys` only, then `options`.
pub fn ssh_command(known_hosts: &Path, keys: &[PathBuf], options: &str) -> String {
    let keys: String = keys
        .iter()
        .map(|k| format!(" -i {}", k.display()))
        .collect();
    format!(
        "ssh -F /dev/null -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null -o IdentitiesOnly=yes{options}{keys}",
        known_hosts.display()
    )
}

/// Several hosts' `known_hosts` files in one at `to`.
pub fn merge_known_hosts(to: &Path, from: &[PathBuf]) {
    let mut all = String::new();
    for f in from {
        all.push_str(&fs_err::read_to_string(f).unwrap());
    }
    fs_err::write(to, all).unwrap();
}
