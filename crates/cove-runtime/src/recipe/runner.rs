//! What the recipes share to set up and run a server: as root, as its
//! system user in a mount namespace of its own ([`Runner`]); its
//! directories owned and private; set-up commands run with a cleared
//! environment; the replica's variables (or their `_FILE` twins);
//! passwords, free ports and private files.

use std::path::Path;

use super::{NS_DATA, NS_PRIVATE, binary};

/// How a recipe's server and set-up tools run: as root, as the server's
/// system user (`ids`) in a mount namespace of their own (see
/// [`as_service_user`]); otherwise as they are. `data` and `private` are
/// the replica's directories as cove names them (`$COVE_DATA` and
/// `$COVE_SECRETS` in a command, expanded per replica; real paths at
/// set-up).
pub(super) struct Runner {
    pub(super) ids: Option<(u32, u32)>,
    pub(super) data: String,
    pub(super) private: String,
    /// `unshare`, as found.
    pub(super) unshare: String,
}

impl Runner {
    pub(super) fn new(
        ids: Option<(u32, u32)>,
        data: impl ToString,
        private: impl ToString,
    ) -> Runner {
        Runner {
            ids,
            data: data.to_string(),
            private: private.to_string(),
            unshare: binary("unshare"),
        }
    }

    /// Where the program sees the data and private directories.
    pub(super) fn dirs(&self) -> (String, String) {
        match self.ids {
            Some(_) => (NS_DATA.to_string(), NS_PRIVATE.to_string()),
            None => (self.data.clone(), self.private.clone()),
        }
    }

    /// The command that runs `argv` as this runner says.
    pub(super) fn argv(&self, argv: Vec<String>) -> Vec<String> {
        match self.ids {
            Some(ids) => as_service_user(ids, &self.data, &self.private, &self.unshare, argv),
            None => argv,
        }
    }
}

/// `argv` run as `uid`/`gid` in a mount namespace of its own, where
/// `data` (the replica's data directory, its owner's) is bound at
/// [`NS_DATA`] and a copy of `private` (the replica's private directory,
/// if any) is on a tmpfs at [`NS_PRIVATE`] owned by `uid`, 0700. The
/// process keeps its pid through the chain (`unshare`, `sh`, `setpriv`
/// each exec the next), so signals and the process group stay the
/// server's. No capability survives `setpriv`, and no set-uid program
/// can give one back (`--no-new-privs`).
pub(super) fn as_service_user(
    (uid, gid): (u32, u32),
    data: &str,
    private: &str,
    unshare: &str,
    argv: Vec<String>,
) -> Vec<String> {
    let script = format!(
        "set -e; mount --bind \"$1\" {NS_DATA}; \
         mount -t tmpfs -o mode=0700,uid={uid},gid={gid},size=16m cove-private {NS_PRIVATE}; \
         if [ -d \"$2\" ]; then cp -R \"$2\"/. {NS_PRIVATE}/; chown -R {uid}:{gid} {NS_PRIVATE}; fi; \
         shift 2; \
         exec setpriv --reuid={uid} --regid={gid} --clear-groups --no-new-privs \
         --inh-caps=-all --bounding-set=-all -- \"$@\""
    );
    let mut out = vec![
        unshare.into(),
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
        "--".into(),
        "/bin/sh".into(),
        "-c".into(),
        script,
        "cove-as-service-user".into(),
        data.into(),
        private.into(),
    ];
    out.extend(argv);
    out
}

/// Makes the empty directories servers' namespaces mount over
/// ([`NS_DATA`], [`NS_PRIVATE`]): root's, 0755, real directories (`/run`
/// is root's alone, so nobody else can plant them).
pub(super) fn ensure_ns_dirs() -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for d in ["/run/cove-ns", NS_DATA, NS_PRIVATE] {
        match fs_err::symlink_metadata(d) {
            Ok(m) if m.is_dir() && m.uid() == 0 => {}
            Ok(_) => {
                return Err(format!(
                    "{d} is not a directory of root's; remove it (cove makes it)"
                ));
            }
            Err(_) => {
                fs_err::create_dir(d).map_err(|e| e.to_string())?;
                fs_err::set_permissions(d, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

/// Makes `dir` (if missing) owned by `ids` (when given) and 0700; with
/// `deep`, what is inside too (a data directory written by an earlier cove
/// as root), without following symbolic links.
pub(super) fn own_dir(dir: &Path, ids: Option<(u32, u32)>, deep: bool) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    fs_err::create_dir_all(dir).map_err(|e| e.to_string())?;
    let meta = fs_err::symlink_metadata(dir).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    if let Some((uid, gid)) = ids
        && (meta.uid() != uid || meta.gid() != gid)
    {
        chown_tree(dir, uid, gid, deep).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    if meta.mode() & 0o777 != 0o700 {
        fs_err::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

pub(super) fn chown_tree(path: &Path, uid: u32, gid: u32, deep: bool) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if deep && fs_err::symlink_metadata(path)?.is_dir() {
        for e in fs_err::read_dir(path)? {
            chown_tree(&e?.path(), uid, gid, true)?;
        }
    }
    Ok(())
}

/// `(uid, gid)` of a user in `/etc/passwd`.
pub(crate) fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = fs_err::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name))
            .then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))?
    })
}

/// A non-empty value of `name` in `env`.
/// A variable of the replica, else the contents of the file its `_FILE`
/// twin names (as the official images read `MARIADB_PASSWORD_FILE`), without
/// the last line breaks.
pub(super) fn env_get(env: &[(String, String)], name: &str) -> Option<String> {
    crate::vars::env_value(env, name)
        .filter(|v| !v.is_empty())
        .map(String::from)
        .or_else(|| {
            let path = crate::vars::env_value(env, &format!("{name}_FILE"))?;
            let text = fs_err::read_to_string(path).ok()?;
            Some(text.trim_end_matches(['\n', '\r']).to_string()).filter(|v| !v.is_empty())
        })
}

/// Runs a set-up command to completion; its last error line on failure.
pub(super) fn run(argv: &[String], stdin: Option<&str>) -> Result<(), String> {
    use std::io::Write as _;
    let (prog, args) = argv.split_first().ok_or("empty command")?;
    let mut child = std::process::Command::new(prog)
        .args(args)
        // The daemon's allowlisted variables only (see `environ`).
        .env_clear()
        .envs(crate::environ::with(&[]))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.unwrap_or("").as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{prog}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    // Name the tool, not the `unshare` wrapper around it.
    let name = argv
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(|a| {
            Path::new(a)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
        })
        .find(|n| n != "unshare")
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&out.stderr);
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output");
    Err(format!("{name} failed: {last}"))
}

/// 24 random bytes from the kernel, as hex.
pub(super) fn random_password() -> Result<String, String> {
    use std::io::Read as _;
    let mut buf = [0u8; 24];
    fs_err::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("no random bytes: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Two TCP ports free on 127.0.0.1 now: for a node's own port mapper
/// (`epmd`), which it starts and which then lives and dies with it, and
/// for its distribution. One mapper shared by every node on 4369 (Erlang's
/// default) would belong to the replica that started it, and go with it
/// under the others' feet; one distribution port for all (25672) makes
/// nodes that start together refuse each other ("could not bind to
/// distribution port": each checks it on 127.0.0.1).
pub(super) fn free_loopback_ports() -> Result<[u16; 2], String> {
    let bind = || {
        std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| format!("no free port on 127.0.0.1 for the Erlang node: {e}"))
    };
    // Both held at once, so they differ.
    let (a, b) = (bind()?, bind()?);
    let port =
        |l: &std::net::TcpListener| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string());
    Ok([port(&a)?, port(&b)?])
}

/// Writes a file readable only by its owner, atomically (temp + rename).
pub(super) fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use fs_err::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = fs_err::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| e.to_string())?;
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(|e| e.to_string())?;
    fs_err::rename(&tmp, path).map_err(|e| e.to_string())
}
