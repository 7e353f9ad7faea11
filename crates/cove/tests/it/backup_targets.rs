//! Backup targets end to end: a real OpenSSH server (Debian's `sshd`,
//! started by the test on a free loopback port with its own host key and
//! authorized key), S3 on PyPI's `moto` server, and `copies` storing one
//! dump to several targets, under `cove up` with a real Redis.
//!
//! The client side: cove (and `restic`) run the system's `ssh`, which
//! reads the user's own `~/.ssh` (from the password database, not $HOME);
//! the tests put first on cove's PATH an `ssh` that runs `/usr/bin/ssh -F
//! <the test's ssh_config>` (its identity, its known_hosts), as a user's
//! own `~/.ssh/config` would.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::{Out, run_bounded};
use crate::recipes::require;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16, child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "{what} exited: {}",
            fs_err::read_to_string(log).unwrap_or_default()
        );
        assert!(Instant::now() < deadline, "{what} did not listen in 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sh(script: &str) -> String {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Debian's sshd on 127.0.0.1:`port`, serving SFTP, for the current user
/// with one key; killed (by pid) on drop. `bin`: a directory whose `ssh`
/// trusts this server (its host key in the known_hosts); `stranger`: one
/// whose known_hosts is empty.
struct Sshd {
    child: Child,
    port: u16,
    user: String,
    bin: PathBuf,
    stranger: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    fn start() -> Sshd {
        require(&["sshd", "ssh", "ssh-keygen"]);
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        sh(&format!(
            "ssh-keygen -q -t ed25519 -N '' -f {0}/host_key && ssh-keygen -q -t ed25519 -N '' -f {0}/client_key && cp {0}/client_key.pub {0}/authorized_keys",
            d.display()
        ));
        let port = free_port();
        let user = sh("id -un").trim().to_string();
        fs_err::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {0}/host_key\nPidFile none\n\
                 AuthorizedKeysFile {0}/authorized_keys\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
                 Subsystem sftp internal-sftp\n",
                d.display()
            ),
        )
        .unwrap();
        // Privilege separation (sshd run by root) needs this directory.
        if sh("id -u").trim() == "0" {
            fs_err::create_dir_all("/run/sshd").unwrap();
        }
        let log = d.join("sshd.log");
        let mut child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs_err::File::create(&log).unwrap().into_parts().0)
            .spawn()
            .expect("sshd starts (Debian's openssh-server; scripts/test installs it)");
        wait_listening(port, &mut child, "sshd", &log);
        let host_pub = fs_err::read_to_string(d.join("host_key.pub")).unwrap();
        let host_pub = host_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let client = |name: &str, known: &str| -> PathBuf {
            let bin = d.join(name);
            fs_err::create_dir_all(&bin).unwrap();
            let known_hosts = d.join(format!("{name}.known_hosts"));
            fs_err::write(&known_hosts, known).unwrap();
            let config = d.join(format!("{name}.ssh_config"));
            fs_err::write(
                &config,
                format!(
                    "Host *\n  IdentityFile {}/client_key\n  IdentitiesOnly yes\n  IdentityAgent none\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n",
                    d.display(),
                    known_hosts.display()
                ),
            )
            .unwrap();
            let ssh = bin.join("ssh");
            fs_err::write(
                &ssh,
                format!(
                    "#!/bin/sh\nexec /usr/bin/ssh -F {} \"$@\"\n",
                    config.display()
                ),
            )
            .unwrap();
            sh(&format!("chmod +x {}", ssh.display()));
            bin
        };
        let bin = client("trusting", &format!("[127.0.0.1]:{port} {host_pub}\n"));
        let stranger = client("stranger", "");
        Sshd {
            child,
            port,
            user,
            bin,
            stranger,
            dir,
        }
    }

    /// A repository path on the server (a fresh directory).
    fn url(&self, name: &str) -> String {
        format!(
            "sftp://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            self.dir.path().join(name).display()
        )
    }

    fn path_with(bin: &Path) -> String {
        format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }
}

/// A Redis app whose `cove` runs with `path` as PATH, with its own
/// identity and secrets file; brought down on drop.
struct Fixture {
    dir: tempfile::TempDir,
    identity: PathBuf,
    path: String,
    up: bool,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if self.up {
            let _ = self.cove(&["down"]);
        }
    }
}

const REDIS_PASSWORD: &str = "redis-secret-77b2";

impl Fixture {
    fn new(x_cove: &str, path: String, up: bool) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(
            dir.path().join("compose.yaml"),
            format!(
                "services:\n  cache:\n    image: redis:7\n    command: redis-server --requirepass {REDIS_PASSWORD}\n{x_cove}"
            ),
        )
        .unwrap();
        let identity = dir.path().join("identity.txt");
        let mut f = Fixture {
            dir,
            identity,
            path,
            up: false,
        };
        f.ok(&["secrets", "init"], "");
        if up {
            f.up = true;
            f.ok(&["up", "-d"], "");
        }
        f
    }

    fn cove_in(&self, args: &[&str], stdin: &str) -> Out {
        let input = self.dir.path().join(".stdin");
        fs_err::write(&input, stdin).unwrap();
        run_bounded(
            Command::new(env!("CARGO_BIN_EXE_cove"))
                .current_dir(self.dir.path())
                .args(args)
                .env("NO_COLOR", "1")
                .env("COVE_IDENTITY", &self.identity)
                .env("PATH", &self.path)
                .stdin(fs_err::File::open(&input).unwrap().into_parts().0),
            600,
        )
    }

    fn cove(&self, args: &[&str]) -> Out {
        self.cove_in(args, "")
    }

    fn ok(&self, args: &[&str], stdin: &str) -> Out {
        let out = self.cove_in(args, stdin);
        assert_eq!(out.code, Some(0), "cove {args:?}: {out}");
        out
    }

    fn redis(&self, args: &str) -> String {
        self.ok(
            &[
                "exec",
                "cache",
                "sh",
                "-c",
                &format!(
                    "REDISCLI_AUTH={REDIS_PASSWORD} redis-cli -h \"$HOST\" -p \"$PORT\" {args}"
                ),
            ],
            "",
        )
        .stdout
    }

    fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.redis("--scan").lines().map(str::to_string).collect();
        k.sort();
        k
    }

    fn backups(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut all = vec!["backup", "ls", "--format", "json"];
        all.extend(args);
        let out = self.ok(&all, "");
        serde_json::from_str::<serde_json::Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

#[test]
fn sftp_copies_round_trip_and_restic_lists_it() {
    require(&["redis-cli", "redis-server", "restic"]);
    let sshd = Sshd::start();
    let url = sshd.url("repo");
    let f = Fixture::new(
        &format!(
            "x-cove:\n  backup:\n    targets:\n      offsite: {{url: \"{url}\"}}\n    copies: [local, offsite]\n"
        ),
        Sshd::path_with(&sshd.bin),
        true,
    );
    for i in 0..20 {
        f.redis(&format!("SET key:{i} v{i}"));
    }
    let at_backup = f.keys();
    let out = f.ok(&["backup"], "");
    assert!(out.stderr.contains("to `local`"), "{out}");
    assert!(out.stderr.contains("to `offsite` (sftp://"), "{out}");

    // Both targets hold it; `--target` filters.
    let all = f.backups(&[]);
    let mut targets: Vec<&str> = all.iter().map(|b| b["target"].as_str().unwrap()).collect();
    targets.sort_unstable();
    assert_eq!(targets, ["local", "offsite"], "{all:?}");
    let table = f.ok(&["backup", "ls"], "").stdout;
    assert!(
        table.contains("TARGET") && table.contains("offsite"),
        "{table}"
    );
    let offsite = f.backups(&["--target", "offsite"]);
    assert_eq!(offsite.len(), 1, "{offsite:?}");
    assert_eq!(offsite[0]["service"], "cache");
    let id = offsite[0]["id"].as_str().unwrap().to_string();
    f.ok(&["backup", "check", "--target", "offsite"], "");

    // Debian's restic reads the repository over SFTP.
    let pw = f.ok(&["secrets", "get", "COVE_BACKUP_PASSWORD"], "").stdout;
    let pwfile = f.dir.path().join("restic-pw");
    fs_err::write(&pwfile, pw.trim_end()).unwrap();
    let restic = Command::new("restic")
        .arg("-r")
        .arg(format!(
            "sftp://{}@127.0.0.1:{}/{}",
            sshd.user,
            sshd.port,
            sshd.dir.path().join("repo").display()
        ))
        .arg("--password-file")
        .arg(&pwfile)
        .args(["--no-cache", "snapshots", "--json"])
        .env("PATH", Sshd::path_with(&sshd.bin))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&restic.stdout);
    assert!(
        restic.status.success(),
        "restic over sftp: {}",
        String::from_utf8_lossy(&restic.stderr)
    );
    assert!(listed.contains(&id), "restic lists {id}: {listed}");

    // `--from` an id only the SFTP target has: found there.
    f.redis("FLUSHALL");
    f.redis("SET after backup");
    let out = f.ok(&["restore", "cache", "--yes", "--from", &id[..8]], "");
    assert!(out.stderr.contains("of `offsite`"), "{out}");
    assert_eq!(f.keys(), at_backup, "the keys as they were at the backup");

    // No ssh master connection outlives the cove that started it: cove
    // asks each to exit (`ssh -O exit`) as it ends, and the master ends a
    // moment later, which on a loaded machine may come after cove's own
    // exit; 10 s is far beyond that moment, and a master left for good
    // (ControlPersist=yes) would still be there.
    let config = sshd.dir.path().join("trusting.ssh_config");
    let masters = || -> Vec<String> {
        fs_err::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| fs_err::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(&*config.to_string_lossy()) && c.contains(" -M "))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !masters().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let left = masters();
    assert!(left.is_empty(), "ssh masters left after 10 s: {left:?}");
}

#[test]
fn a_target_that_fails_does_not_stop_the_others() {
    require(&["redis-cli", "redis-server"]);
    let sshd = Sshd::start();
    let down = format!("sftp://{}@127.0.0.1:{}/srv/none", sshd.user, free_port());
    // Its host key unknown to this client: refused as ssh refuses it.
    let stranger = sshd.url("stranger-repo");
    let f = Fixture::new(
        &format!(
            "x-cove:\n  backup:\n    targets:\n      unknown: {{url: \"{stranger}\"}}\n      down: {{url: \"{down}\"}}\n    copies: [unknown, local, down]\n"
        ),
        Sshd::path_with(&sshd.stranger),
        true,
    );
    f.redis("SET k v");
    let out = f.cove(&["backup"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("to `local`"), "stored locally: {out}");
    assert!(
        out.stderr
            .contains("not stored: cache to `unknown`, cache to `down`"),
        "{out}"
    );
    assert!(out.stderr.contains("Host key verification failed"), "{out}");
    assert!(out.stderr.contains("known_hosts"), "the hint: {out}");
    assert!(
        !sshd.dir.path().join("stranger-repo").exists(),
        "nothing written past an unknown host key"
    );
    let local = f.backups(&["--target", "local"]);
    assert_eq!(local.len(), 1, "{local:?}");
    assert_eq!(local[0]["target"], "local");
}

#[test]
fn unknown_target_names_are_errors_naming_service_and_field() {
    let f = Fixture::new(
        "x-cove:\n  backup:\n    targets:\n      nas: {url: /srv/nas}\n    copies: [local, nas]\n",
        std::env::var("PATH").unwrap_or_default(),
        false,
    );
    // The service's own copies.
    fs_err::write(
        f.dir.path().join("compose.yaml"),
        format!(
            "services:\n  cache:\n    image: redis:7\n    command: redis-server --requirepass {REDIS_PASSWORD}\n    x-cove:\n      backup:\n        copies: [offsite]\nx-cove:\n  backup:\n    targets:\n      nas: {{url: /srv/nas}}\n"
        ),
    )
    .unwrap();
    // Refused when the file is loaded (`cove config` too), at its place.
    for args in [&["backup", "cache"][..], &["config", "-q"]] {
        let out = f.cove(args);
        assert_eq!(out.code, Some(1), "{out}");
        assert!(
            out.stderr.contains(
                "`services.cache.x-cove.backup.copies` names `offsite`, which is not a backup target"
            ),
            "{out}"
        );
        assert!(out.stderr.contains("compose.yaml:7:18"), "the place: {out}");
        assert!(
            out.stderr.contains("the targets are nas, local"),
            "the hint: {out}"
        );
    }
    // A target whose URL cannot be used.
    fs_err::write(
        f.dir.path().join("compose.yaml"),
        "services:\n  cache:\n    image: redis:7\nx-cove:\n  backup:\n    targets:\n      far: {url: \"ftp://h/p\"}\n",
    )
    .unwrap();
    let out = f.cove(&["backup", "ls"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains("x-cove.backup.targets.far.url"),
        "{out}"
    );
}

fn moto_server() -> PathBuf {
    let p = std::env::var_os("COVE_TEST_MOTO_SERVER").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/moto-venv/bin/moto_server"),
        PathBuf::from,
    );
    assert!(
        p.is_file(),
        "{}: no moto_server; make it with `bash scripts/moto-venv` (scripts/test does) or set COVE_TEST_MOTO_SERVER",
        p.display()
    );
    p
}

/// moto on a free port (killed by pid on drop) with a bucket and an IAM
/// user's key; authentication off until [`Moto::auth`].
struct Moto {
    child: Child,
    endpoint: String,
    key_id: String,
    secret: String,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// moto's IAM authentication on (every request's signature and key
    /// checked) or off (`/moto-api/reset-auth`). Off for round trips:
    /// moto's signature check (botocore's canonical request) refuses
    /// opendal's signed `ListObjectsV2` with a `prefix`, a difference
    /// between the two that AWS itself does not make (opendal lists S3
    /// buckets), so only the refusal of wrong keys is tested with it on.
    fn auth(&self, on: bool) {
        let count = if on { "0" } else { "inf" };
        let script = format!(
            r#"import urllib.request; urllib.request.urlopen(urllib.request.Request("{}/moto-api/reset-auth", data=b"{count}", method="POST", headers={{"Content-Type": "text/plain"}})).read()"#,
            self.endpoint
        );
        let out = Command::new(moto_server().with_file_name("python3"))
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    fn start(bucket: &str) -> Moto {
        let server = moto_server();
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let mut child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs_err::File::create(&log).unwrap().into_parts().0)
            .spawn()
            .expect("moto_server starts");
        wait_listening(port, &mut child, "moto_server", &log);
        let endpoint = format!("http://127.0.0.1:{port}");
        let script = format!(
            r#"
import boto3, json, urllib.request
kw = dict(endpoint_url="{endpoint}", region_name="us-east-1",
          aws_access_key_id="setup", aws_secret_access_key="setup")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="cove")
iam.put_user_policy(UserName="cove", PolicyName="s3", PolicyDocument=json.dumps(
    {{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}]}}))
k = iam.create_access_key(UserName="cove")["AccessKey"]
boto3.client("s3", **kw).create_bucket(Bucket="{bucket}")
print(k["AccessKeyId"]); print(k["SecretAccessKey"])
"#
        );
        let out = Command::new(server.with_file_name("python3"))
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "setting up moto: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        Moto {
            key_id: lines.next().unwrap().to_string(),
            secret: lines.next().unwrap().to_string(),
            child,
            endpoint,
            _dir: dir,
        }
    }
}

#[test]
fn s3_keys_from_the_secrets_file_and_a_clear_error_without_them() {
    require(&["redis-cli", "redis-server"]);
    let moto = Moto::start("cove-backups");
    let f = Fixture::new(
        &format!(
            "x-cove:\n  backup:\n    targets:\n      s3-eu: {{url: \"s3://cove-backups/demo\", endpoint: \"{}\", region: eu-west-1}}\n    copies: [s3-eu]\n",
            moto.endpoint
        ),
        std::env::var("PATH").unwrap_or_default(),
        true,
    );
    f.redis("SET k v");
    // No key yet: named, with the secrets' names.
    let out = f.cove(&["backup"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("S3_EU_AWS_ACCESS_KEY_ID"), "{out}");
    // A wrong secret key: refused, the target named.
    moto.auth(true);
    f.ok(&["secrets", "set", "S3_EU_AWS_ACCESS_KEY_ID"], &moto.key_id);
    f.ok(&["secrets", "set", "S3_EU_AWS_SECRET_ACCESS_KEY"], "wrong");
    let out = f.cove(&["backup"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("`s3-eu`"), "{out}");
    assert!(out.stderr.contains("access key was refused"), "{out}");
    f.ok(
        &["secrets", "set", "S3_EU_AWS_SECRET_ACCESS_KEY"],
        &moto.secret,
    );
    moto.auth(false);
    let out = f.ok(&["backup"], "");
    assert!(!out.stderr.contains(&moto.secret), "{out}");
    let listed = f.backups(&[]);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["target"], "s3-eu");
    f.redis("FLUSHALL");
    f.ok(&["restore", "cache", "--yes"], "");
    assert_eq!(f.keys(), ["k"]);
}
