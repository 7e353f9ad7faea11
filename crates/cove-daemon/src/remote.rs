//! The API of another host's daemon, reached over SSH as `docker -H
//! ssh://` reaches an engine: the OpenSSH client runs `cove system
//! dial-stdio` on the host ([`dial_stdio`]), which joins its stdin and
//! stdout to the host daemon's Unix socket, and HTTP/1.1 is spoken over
//! the child's pipes, one connection kept for the CLI's calls. No TCP
//! listener is opened for the API: whoever reaches it logs in over SSH as
//! the daemon's user (or root), which the daemon's `SO_PEERCRED` check
//! sees.
//!
//! ssh runs in batch mode without a TTY, with the user's own
//! configuration, agent, keys and `known_hosts`: host keys are checked as
//! ssh checks them (never turned off here). `COVE_SSH` names another
//! program and options (`ssh -F /path/config`), split at spaces.
//! What ssh says when it fails is turned into an error with a hint
//! ([`Failure::classify`]): no ssh, an unknown or changed host key, a
//! refused login, no cove on the host, no daemon running there.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt as _;
use tokio::process::{Child, Command};

/// The remote command: the hidden subcommand that joins stdin/stdout to
/// the host daemon's socket.
pub const REMOTE_COMMAND: [&str; 3] = ["cove", "system", "dial-stdio"];

/// What `cove system dial-stdio` writes (to stderr) and exits with when no
/// daemon answers on the host's socket, so the CLI can say so.
pub const NOT_RUNNING_MARK: &str = "cove-dial-stdio: no daemon";
pub const NOT_RUNNING_EXIT: i32 = 3;

/// `ssh://[USER@]HOST[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Target, String> {
        let a: cove_spec::xcove::SshAddress = text.parse()?;
        Ok(Target {
            user: a.user,
            host: a.host,
            port: a.port,
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ssh://")?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

impl Target {
    /// `USER@HOST` as ssh takes it.
    pub fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }

    /// `ssh -p PORT USER@HOST` (for hints: what to type).
    pub fn ssh_line(&self) -> String {
        match self.port {
            Some(p) => format!("ssh -p {p} {}", self.destination()),
            None => format!("ssh {}", self.destination()),
        }
    }

    /// The program and arguments that run `cove system dial-stdio` there:
    /// `ssh` (or `COVE_SSH`'s words) `-o BatchMode=yes -T [-p PORT]
    /// USER@HOST -- cove system dial-stdio`.
    pub fn command(&self, ssh: &str) -> (String, Vec<String>) {
        self.command_for(ssh, &REMOTE_COMMAND)
    }

    /// The program and arguments that run `remote` there (its words quoted
    /// for the login shell ssh hands them to, as one line).
    pub fn command_for(&self, ssh: &str, remote: &[&str]) -> (String, Vec<String>) {
        let mut words = ssh.split_whitespace().map(String::from);
        let program = words.next().unwrap_or_else(|| "ssh".into());
        let mut args: Vec<String> = words.collect();
        args.extend(["-o", "BatchMode=yes", "-T"].map(String::from));
        if let Some(p) = self.port {
            args.extend(["-p".to_string(), p.to_string()]);
        }
        args.push(self.destination());
        args.push("--".into());
        args.extend(remote.iter().map(|w| shell_quote(w)));
        (program, args)
    }
}

/// `word` as a POSIX shell reads it back: as it is when it is plain,
/// else in single quotes.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Why the host could not be reached, in words, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: String,
    pub hint: Option<String>,
}

impl Failure {
    /// What ssh's exit and its stderr mean. `code` is `None` when it was
    /// killed.
    pub fn classify(target: &Target, program: &str, code: Option<i32>, stderr: &str) -> Failure {
        // ssh's own lines as `ssh: ...`, the host's as `host: ...`.
        let quote_as = |who: &str, pred: &dyn Fn(&str) -> bool| -> String {
            stderr
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && pred(l))
                .map(|l| format!("\n  {who}: {l}"))
                .collect()
        };
        let quoted = |pred: &dyn Fn(&str) -> bool| quote_as("ssh", pred);
        let key_at = match target.port {
            Some(p) => format!("[{}]:{p}", target.host),
            None => target.host.clone(),
        };
        if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
            return Failure {
                error: format!(
                    "the host key of {target} has changed since it was recorded in known_hosts; nothing was run:{}",
                    quoted(&|l: &str| l.contains("IDENTIFICATION HAS CHANGED")
                        || l.contains("fingerprint")
                        || l.contains("Offending")
                        || l.contains("verification failed"))
                ),
                hint: Some(format!(
                    "if the host was reinstalled, check its new key with its administrator, then `ssh-keygen -R '{key_at}'` and `{}` once to record it; otherwise someone may be in between",
                    target.ssh_line()
                )),
            };
        }
        if stderr.contains("Host key verification failed") {
            let keyscan = match target.port {
                Some(p) => format!("ssh-keyscan -p {p} {}", target.host),
                None => format!("ssh-keyscan {}", target.host),
            };
            return Failure {
                error: format!(
                    "the host key of {target} is not in known_hosts; nothing was run:{}",
                    quoted(&|l: &str| l.contains("host key") || l.contains("verification failed"))
                ),
                hint: Some(format!(
                    "check the host's key fingerprint, then record it: `{}` once (it asks), or `{keyscan} >> ~/.ssh/known_hosts`",
                    target.ssh_line()
                )),
            };
        }
        if stderr.contains(NOT_RUNNING_MARK) || code == Some(NOT_RUNNING_EXIT) {
            return Failure {
                error: format!(
                    "no cove daemon runs on {target}:{}",
                    quote_as("host", &|l: &str| l.contains(NOT_RUNNING_MARK))
                ),
                hint: Some(
                    "start the host's daemon there: `systemctl start cove` (`cove server install` writes its unit), or `COVE_DAEMON=host cove up -d` in a project"
                        .into(),
                ),
            };
        }
        let no_cove = |l: &str| {
            (l.contains("cove: not found") || l.contains("cove: command not found"))
                || (l.contains("cove") && l.contains("No such file"))
        };
        if code == Some(127) || stderr.lines().any(no_cove) {
            return Failure {
                error: format!(
                    "cove is not installed on {target} (not on the PATH of a command run over ssh):{}",
                    quote_as("host", &no_cove)
                ),
                hint: Some(
                    "install it there: copy the binary and run `cove server install` on the host"
                        .into(),
                ),
            };
        }
        if stderr.contains("Permission denied") {
            return Failure {
                error: format!(
                    "{target} refused the login:{}",
                    quoted(&|l: &str| l.contains("Permission denied"))
                ),
                hint: Some(format!(
                    "`{}` must log in without a password (a key in the agent or ~/.ssh)",
                    target.ssh_line()
                )),
            };
        }
        let last: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = last[last.len().saturating_sub(5)..]
            .iter()
            .map(|l| format!("\n  ssh: {}", l.trim()))
            .collect::<String>();
        Failure {
            error: format!(
                "`{program}` to {target} ended ({}) before the daemon answered:{tail}",
                code.map_or("killed".to_string(), |c| format!("exit code {c}"))
            ),
            hint: Some(format!(
                "try `{} -- cove version` by hand",
                target.ssh_line()
            )),
        }
    }
}

/// One host, reached over ssh: the child and the HTTP connection over its
/// pipes, made at the first call and kept.
pub struct Remote {
    pub target: Target,
    /// `COVE_SSH`, else `ssh`.
    ssh: String,
    link: tokio::sync::Mutex<Option<Link>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote({})", self.target)
    }
}

struct Link {
    sender: SendRequest<Full<Bytes>>,
    child: Child,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Remote {
    /// `target`, with ssh as `COVE_SSH` names it (else `ssh`).
    pub fn new(target: Target) -> Remote {
        let ssh = std::env::var("COVE_SSH")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "ssh".into());
        Remote {
            target,
            ssh,
            link: tokio::sync::Mutex::new(None),
        }
    }

    /// Sends `request` on the connection (made first when there is none
    /// or it closed); a failure is what ssh said.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<Response<Incoming>, Failure> {
        let mut link = self.link.lock().await;
        if link.as_ref().is_none_or(|l| l.sender.is_closed()) {
            *link = Some(self.connect().await?);
        }
        let Some(l) = link.as_mut() else {
            unreachable!("connected above")
        };
        let sent = match l.sender.ready().await {
            Ok(()) => l.sender.send_request(request).await,
            Err(e) => Err(e),
        };
        match sent {
            Ok(r) => Ok(r),
            Err(e) => {
                let Some(l) = link.take() else {
                    unreachable!("connected above")
                };
                Err(self.failure(l, &e).await)
            }
        }
    }

    async fn connect(&self) -> Result<Link, Failure> {
        let (program, args) = self.target.command(&self.ssh);
        let mut child = Command::new(&program)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Failure {
                error: format!("cannot run `{program}` to reach {}: {e}", self.target),
                hint: Some(if e.kind() == std::io::ErrorKind::NotFound {
                    "install the OpenSSH client (`apt-get install openssh-client`), or name it in COVE_SSH".into()
                } else {
                    "COVE_SSH names the ssh program and its options".into()
                }),
            })?;
        let (Some(stdin), Some(stdout), Some(mut err)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            unreachable!("all three piped")
        };
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let mut all = crate::lock(&sink);
                // What ssh says is short; a flood is cut at 64 KiB.
                if all.len() < 64 * 1024 {
                    all.extend_from_slice(&buf[..n]);
                }
            }
        });
        let io = TokioIo::new(tokio::io::join(stdout, stdin));
        let (sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| Failure {
                error: format!("cannot speak to {} over ssh: {e}", self.target),
                hint: None,
            })?;
        tokio::spawn(conn);
        Ok(Link {
            sender,
            child,
            stderr,
        })
    }

    /// What became of ssh, once it has ended (5 s at most, then it is
    /// killed).
    async fn failure(&self, mut link: Link, e: &hyper::Error) -> Failure {
        drop(link.sender);
        let code = match tokio::time::timeout(Duration::from_secs(5), link.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => {
                let _ = link.child.kill().await;
                None
            }
        };
        // Its stderr's last bytes are read by now (the pipe closed with it);
        // a moment for the reader to take them.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let stderr = String::from_utf8_lossy(&crate::lock(&link.stderr)).into_owned();
        if code == Some(0) && stderr.trim().is_empty() {
            return Failure {
                error: format!("the daemon on {} closed the connection: {e}", self.target),
                hint: None,
            };
        }
        let program = self.target.command(&self.ssh).0;
        Failure::classify(&self.target, &program, code, &stderr)
    }
}

/// `cove system dial-stdio`: joins this process's stdin and stdout to the
/// daemon socket `socket`, until both directions end. No daemon there:
/// [`NOT_RUNNING_MARK`] on stderr and exit code [`NOT_RUNNING_EXIT`].
pub fn dial_stdio(socket: &Path) -> i32 {
    use std::io::Write as _;
    // What it says goes to ssh's stderr; a CLI already gone is no error.
    let say = |text: String| {
        let _ = writeln!(std::io::stderr(), "{text}");
    };
    let stream = match std::os::unix::net::UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            say(format!(
                "{NOT_RUNNING_MARK} answers on {} ({e})",
                socket.display()
            ));
            return NOT_RUNNING_EXIT;
        }
        Err(e) => {
            say(format!(
                "cove-dial-stdio: cannot connect to {}: {e}",
                socket.display()
            ));
            return 1;
        }
    };
    let (to_daemon, stdout) = match (
        stream.try_clone(),
        std::os::fd::AsFd::as_fd(&std::io::stdout()).try_clone_to_owned(),
    ) {
        (Ok(s), Ok(out)) => (s, std::fs::File::from(out)),
        (Err(e), _) | (_, Err(e)) => {
            say(format!("cove-dial-stdio: {e}"));
            return 1;
        }
    };
    // The CLI done (stdin at its end): the daemon sees the end of its
    // requests. The daemon closing its side ends it all (the thread
    // reading stdin is not waited for).
    std::thread::spawn(move || {
        let mut to_daemon = to_daemon;
        let _ = pump(std::io::stdin().lock(), &mut to_daemon);
        let _ = to_daemon.shutdown(std::net::Shutdown::Write);
    });
    match pump(stream, stdout) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            say(format!("cove-dial-stdio: {e}"));
            1
        }
    }
}

/// Copies `from` to `to` until `from` ends, each read written at once
/// (unbuffered: an answer must not wait for more bytes; and not
/// `std::io::copy`, whose `splice` between a socket and a pipe was seen
/// to end early).
fn pump(mut from: impl std::io::Read, mut to: impl std::io::Write) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        to.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_addresses_parse_as_docker_takes_them() {
        let t: Target = "ssh://deploy@web1:2222".parse().unwrap();
        assert_eq!(
            t,
            Target {
                user: Some("deploy".into()),
                host: "web1".into(),
                port: Some(2222)
            }
        );
        assert_eq!(t.to_string(), "ssh://deploy@web1:2222");
        let t: Target = "ssh://web1".parse().unwrap();
        assert_eq!((t.user, t.port), (None, None));
        let t: Target = "ssh://root@[::1]:22".parse().unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", Some(22)));
        assert_eq!(t.to_string(), "ssh://root@[::1]:22");
        for bad in [
            "tcp://web1:2375",
            "web1",
            "ssh://",
            "ssh://u@web1:0",
            "ssh://u@web1:x",
            "ssh://u:pw@web1",
            "ssh://u@web1/path",
            "ssh://-oProxyCommand=x",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_command_runs_dial_stdio_in_batch_mode_without_a_tty() {
        let t: Target = "ssh://deploy@web1:2222".parse().unwrap();
        let (program, args) = t.command("ssh -F /tmp/conf");
        assert_eq!(program, "ssh");
        assert_eq!(
            args.join(" "),
            "-F /tmp/conf -o BatchMode=yes -T -p 2222 deploy@web1 -- cove system dial-stdio"
        );
        assert!(!args.iter().any(|a| a.contains("StrictHostKeyChecking")));
        let (_, args) = t.command_for("ssh", &["cove", "deploy", "--message", "it's new"]);
        assert_eq!(
            args.last().unwrap(),
            "'it'\\''s new'",
            "quoted for the remote shell"
        );
    }

    #[test]
    fn what_ssh_says_becomes_an_error_with_a_hint() {
        let t: Target = "ssh://root@127.0.0.1:2200".parse().unwrap();
        let unknown = "No ED25519 host key is known for [127.0.0.1]:2200 and you have requested strict checking.\r\nHost key verification failed.\r\n";
        let f = Failure::classify(&t, "ssh", Some(255), unknown);
        assert!(f.error.contains("not in known_hosts"), "{f:?}");
        assert!(
            f.error
                .contains("ssh: No ED25519 host key is known for [127.0.0.1]:2200"),
            "{f:?}"
        );
        let hint = f.hint.unwrap();
        assert!(hint.contains("ssh-keyscan -p 2200 127.0.0.1"), "{hint}");
        assert!(hint.contains("`ssh -p 2200 root@127.0.0.1` once"), "{hint}");
        let changed = "@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.\n";
        let f = Failure::classify(&t, "ssh", Some(255), changed);
        assert!(f.error.contains("has changed"), "{f:?}");
        assert!(f.hint.unwrap().contains("ssh-keygen -R '[127.0.0.1]:2200'"));
        let f = Failure::classify(
            &t,
            "ssh",
            Some(127),
            "bash: line 1: cove: command not found\n",
        );
        assert!(f.error.contains("cove is not installed"), "{f:?}");
        assert!(f.hint.unwrap().contains("cove server install"));
        let f = Failure::classify(
            &t,
            "ssh",
            Some(NOT_RUNNING_EXIT),
            &format!("{NOT_RUNNING_MARK} answers on /var/lib/cove/daemon.sock\n"),
        );
        assert!(f.error.contains("no cove daemon runs"), "{f:?}");
        let f = Failure::classify(
            &t,
            "ssh",
            Some(255),
            "root@127.0.0.1: Permission denied (publickey).\n",
        );
        assert!(f.error.contains("refused the login"), "{f:?}");
    }
}
