//! Where a repository is: a local directory, a directory on an SFTP
//! server, or a bucket (and prefix) of S3-compatible storage; the last two
//! through `rustic_backend`'s opendal backends.
//!
//! SFTP runs the system's `ssh` (opendal's sftp service, through the
//! `openssh` crate), so it authenticates as `ssh` does: the user's keys and
//! agent, `~/.ssh/config`, and `known_hosts` checked strictly (a host whose
//! key is not known is refused). S3 keys are given by the caller
//! ([`S3Keys`]); nothing is read from `~/.aws` or a metadata service.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Where a repository is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory.
    Dir(PathBuf),
    /// `sftp://[USER@]HOST[:PORT]/PATH`: PATH is absolute on the server.
    Sftp {
        user: Option<String>,
        host: String,
        port: Option<u16>,
        path: String,
    },
    /// `s3://BUCKET[/PREFIX]`, at `endpoint` (default: AWS) in `region`
    /// (default `us-east-1`).
    S3 {
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
        region: Option<String>,
    },
}

/// An S3 access key. Its `Debug` shows the key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Keys")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Location {
    /// Reads `url`: `sftp://...`, `s3://...`, or a directory (relative to
    /// `base`). `endpoint` and `region` are for S3 only.
    pub fn parse(
        url: &str,
        endpoint: Option<&str>,
        region: Option<&str>,
        base: &Path,
    ) -> std::result::Result<Location, String> {
        let s3_only = |what: &str| format!("`{what}` is for an S3 target (`s3://BUCKET/PREFIX`)");
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("`{url}`: no bucket (s3://BUCKET[/PREFIX])"));
            }
            if let Some(e) = endpoint
                && !(e.starts_with("http://") || e.starts_with("https://"))
            {
                return Err(format!(
                    "endpoint `{e}`: a URL starting with https:// (or http://)"
                ));
            }
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
                endpoint: endpoint.map(str::to_string),
                region: region.map(str::to_string),
            });
        }
        if endpoint.is_some() {
            return Err(s3_only("endpoint"));
        }
        if region.is_some() {
            return Err(s3_only("region"));
        }
        if let Some(rest) = url.strip_prefix("sftp://") {
            let Some(slash) = rest.find('/') else {
                return Err(format!(
                    "`{url}`: no path (sftp://USER@HOST[:PORT]/PATH, PATH absolute on the server)"
                ));
            };
            let (authority, path) = rest.split_at(slash);
            let (user, hostport) = match authority.rsplit_once('@') {
                Some((u, h)) => (Some(u.to_string()), h),
                None => (None, authority),
            };
            let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
                let (h, after) = v6
                    .split_once(']')
                    .ok_or_else(|| format!("`{url}`: `[` without `]` in the host"))?;
                (h.to_string(), after.strip_prefix(':'))
            } else {
                match hostport.rsplit_once(':') {
                    Some((h, p)) => (h.to_string(), Some(p)),
                    None => (hostport.to_string(), None),
                }
            };
            if host.is_empty() {
                return Err(format!("`{url}`: no host"));
            }
            let port = port
                .map(|p| {
                    p.parse::<u16>()
                        .map_err(|_| format!("`{url}`: port `{p}` is not a number"))
                })
                .transpose()?;
            let path = path.trim_end_matches('/');
            if path.is_empty() {
                return Err(format!(
                    "`{url}`: the server's root directory is not a repository: give a directory"
                ));
            }
            return Ok(Location::Sftp {
                user,
                host,
                port,
                path: path.to_string(),
            });
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(format!(
                "`{url}`: `{scheme}://` is not a kind of target cove knows (a directory, sftp:// or s3://)"
            ));
        }
        let p = Path::new(url);
        Ok(Location::Dir(if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }))
    }

    /// The location in words (no secret is part of it).
    pub fn url(&self) -> String {
        match self {
            Location::Dir(d) => d.display().to_string(),
            Location::Sftp {
                user,
                host,
                port,
                path,
            } => {
                let user = user.as_deref().map(|u| format!("{u}@")).unwrap_or_default();
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                format!("sftp://{user}{host}{port}{path}")
            }
            Location::S3 {
                bucket,
                prefix,
                endpoint,
                ..
            } => {
                let prefix = if prefix.is_empty() {
                    String::new()
                } else {
                    format!("/{prefix}")
                };
                match endpoint {
                    Some(e) => format!("s3://{bucket}{prefix} at {e}"),
                    None => format!("s3://{bucket}{prefix}"),
                }
            }
        }
    }

    /// The local directory, for a local target.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Location::Dir(d) => Some(d),
            _ => None,
        }
    }

    /// rustic_backend's repository string and options.
    pub(crate) fn backend(
        &self,
        keys: Option<&S3Keys>,
    ) -> Result<(String, BTreeMap<String, String>)> {
        let mut o = BTreeMap::new();
        let repo = match self {
            Location::Dir(d) => d
                .to_str()
                .ok_or_else(|| Error::other(format!("{}: not a UTF-8 path", d.display())))?
                .to_string(),
            Location::Sftp {
                user,
                host,
                port,
                path,
            } => {
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                let _ = o.insert("endpoint".into(), format!("ssh://{host}{port}"));
                if let Some(u) = user {
                    let _ = o.insert("user".into(), u.clone());
                }
                let _ = o.insert("root".into(), path.clone());
                // As ssh's `StrictHostKeyChecking=yes`: an unknown host key
                // is refused, never added.
                let _ = o.insert("known_hosts_strategy".into(), "strict".into());
                "opendal:sftp".to_string()
            }
            Location::S3 {
                bucket,
                prefix,
                endpoint,
                region,
            } => {
                let keys = keys.ok_or_else(|| {
                    Error::other(format!("{}: no S3 access key was given", self.url()))
                })?;
                let _ = o.insert("bucket".into(), bucket.clone());
                let _ = o.insert("root".into(), format!("/{prefix}"));
                if let Some(e) = endpoint {
                    let _ = o.insert("endpoint".into(), e.clone());
                }
                let _ = o.insert(
                    "region".into(),
                    region.clone().unwrap_or_else(|| "us-east-1".into()),
                );
                let _ = o.insert("access_key_id".into(), keys.access_key_id.clone());
                let _ = o.insert("secret_access_key".into(), keys.secret_access_key.clone());
                // Only the keys given: no ~/.aws, no environment, and never
                // the EC2 metadata service.
                let _ = o.insert("disable_config_load".into(), "true".into());
                let _ = o.insert("disable_ec2_metadata".into(), "true".into());
                "opendal:s3".to_string()
            }
        };
        Ok((repo, o))
    }

    /// For SFTP: why `ssh` cannot open an SFTP session to the server, in
    /// its own words (its standard error), from a session it opens as
    /// opendal does (`BatchMode`, `StrictHostKeyChecking=yes`); bounded
    /// (10 s to connect, killed after 30 s). `None`: it can, or this is no
    /// SFTP location.
    pub(crate) fn ssh_says(&self) -> Option<String> {
        let Location::Sftp {
            user, host, port, ..
        } = self
        else {
            return None;
        };
        let err = tempfile::tempfile().ok()?;
        let mut cmd = std::process::Command::new("ssh");
        cmd.args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=10",
            "-s",
        ]);
        if let Some(p) = port {
            cmd.arg("-p").arg(p.to_string());
        }
        if let Some(u) = user {
            cmd.arg("-l").arg(u);
        }
        let mut child = cmd
            .arg("--")
            .arg(host)
            .arg("sftp")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(err.try_clone().ok()?)
            .spawn()
            .ok()?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().ok()? {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Some("ssh did not finish connecting in 30 s".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        if status.success() {
            return None;
        }
        let mut text = String::new();
        {
            use std::io::{Read as _, Seek as _};
            let mut f = err;
            f.rewind().ok()?;
            let _ = f.read_to_string(&mut text);
        }
        let words: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
            .collect();
        Some(if words.is_empty() {
            format!("ssh exited with {status}")
        } else {
            words.join(" ")
        })
    }

    /// A hint for an error reaching this location.
    pub(crate) fn hint(&self, message: &str) -> Option<String> {
        match self {
            Location::Sftp {
                host, port, user, ..
            } => {
                let p = port.map(|p| format!(" -p {p}")).unwrap_or_default();
                let u = user.as_deref().map(|u| format!("{u}@")).unwrap_or_default();
                if message.contains("Host key verification failed")
                    || message.contains("No matching host key")
                    || message.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
                {
                    Some(format!(
                        "the server's host key is not in your known_hosts (ssh checks it strictly): check its fingerprint and add it, e.g. by connecting once with `ssh{p} {u}{host}`, or `ssh-keyscan{p} {host} >> ~/.ssh/known_hosts`"
                    ))
                } else if message.contains("Permission denied") {
                    Some(format!(
                        "ssh could not log in with your keys or agent: try `ssh{p} {u}{host}`"
                    ))
                } else {
                    Some(format!(
                        "cove reaches it with your `ssh` (keys, agent, ~/.ssh/config, known_hosts): try `ssh{p} {u}{host}`"
                    ))
                }
            }
            Location::S3 { .. } => {
                if message.contains("InvalidAccessKeyId")
                    || message.contains("SignatureDoesNotMatch")
                    || message.contains("AccessDenied")
                    || message.contains("PermissionDenied")
                {
                    Some("the S3 access key was refused: check the target's AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into())
                } else if message.contains("NoSuchBucket") {
                    Some("make the bucket first: cove does not create buckets".into())
                } else {
                    None
                }
            }
            Location::Dir(_) => None,
        }
    }
}

/// The ssh master connections opendal's sftp service starts (through the
/// `openssh` crate: `ssh -M -f -o ControlPersist=yes`, each in a directory
/// `.ssh-connection*` of `$XDG_STATE_HOME`, else `~/.local/state`). Each
/// is closed when its session is dropped, by a task of rustic_backend's
/// runtime, which a process that ends right away never gives the time: a
/// master would outlive it, forever. So a store remembers which
/// directories were there before it connected and, dropped, waits for the
/// ones it made to go (5 s at most), then closes those left with `ssh -O
/// exit`. (Another process connecting in the same moment from the same
/// account could have its master closed too: it reconnects, as opendal
/// does for a lost connection.)
#[derive(Debug)]
pub(crate) struct SshMasters {
    dir: PathBuf,
    before: std::collections::HashSet<std::ffi::OsString>,
}

impl SshMasters {
    pub(crate) fn before() -> SshMasters {
        let dir = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .unwrap_or_else(|| PathBuf::from("."));
        let before = SshMasters::listed(&dir).into_iter().collect();
        SshMasters { dir, before }
    }

    fn listed(dir: &Path) -> Vec<std::ffi::OsString> {
        fs_err::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name())
                    .filter(|n| n.to_string_lossy().starts_with(".ssh-connection"))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn ours(&self) -> Vec<PathBuf> {
        SshMasters::listed(&self.dir)
            .into_iter()
            .filter(|n| !self.before.contains(n))
            .map(|n| self.dir.join(n))
            .collect()
    }

    pub(crate) fn close(self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !self.ours().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        for d in self.ours() {
            let socket = d.join("master");
            if socket.exists() {
                let _ = std::process::Command::new("ssh")
                    .arg("-S")
                    .arg(&socket)
                    .args(["-O", "exit", "cove-backup"])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
            let _ = fs_err::remove_dir_all(&d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        let base = Path::new("/proj");
        assert_eq!(
            Location::parse("backups", None, None, base),
            Ok(Location::Dir("/proj/backups".into()))
        );
        assert_eq!(
            Location::parse("sftp://me@h.example:2222/srv/b/", None, None, base),
            Ok(Location::Sftp {
                user: Some("me".into()),
                host: "h.example".into(),
                port: Some(2222),
                path: "/srv/b".into()
            })
        );
        let s3 = Location::parse("s3://bk/app/prod", Some("http://127.0.0.1:9"), None, base)
            .expect("s3");
        assert_eq!(s3.url(), "s3://bk/app/prod at http://127.0.0.1:9");
        assert_eq!(
            Location::parse("sftp://[::1]:22/x", None, None, base)
                .expect("v6")
                .url(),
            "sftp://[::1]:22/x"
        );
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        let base = Path::new("/proj");
        for (url, endpoint, words) in [
            ("sftp://h", None, "no path"),
            ("sftp://h/", None, "root directory"),
            ("sftp://h:x/p", None, "not a number"),
            ("s3://", None, "no bucket"),
            ("ftp://h/p", None, "not a kind"),
            ("/d", Some("http://e"), "for an S3 target"),
            ("s3://b", Some("e.example"), "https://"),
        ] {
            let e = Location::parse(url, endpoint, None, base).expect_err(url);
            assert!(e.contains(words), "{url}: {e}");
        }
    }

    #[test]
    fn keys_are_not_in_debug() {
        let k = S3Keys {
            access_key_id: "AKID".into(),
            secret_access_key: "very-secret".into(),
        };
        assert!(!format!("{k:?}").contains("very-secret"));
    }
}
