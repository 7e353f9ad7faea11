//! `cove server install [--print] [--prefix DIR] [--user U] [--state-dir
//! DIR]`, run on the host: copies this cove to `PREFIX/bin/cove`, writes
//! the systemd unit of the host's daemon (`cove.service`, in
//! `/etc/systemd/system`, or `COVE_SYSTEMD_DIR`) and enables it when
//! systemd runs, creates the host's age identity when it has none (mode
//! 0600, the daemon's user's) and prints its recipient, to add to the
//! app's secrets file. `--print` prints the unit and changes nothing.
//!
//! The unit runs `cove __daemon --state-dir DIR --host` as the user, in
//! the directory `cove --host ssh://USER@HOST` reaches through `cove
//! system dial-stdio`. `KillMode=mixed`: systemd's stop is the daemon's
//! SIGTERM, which drains and stops its replicas itself; what is left after
//! `TimeoutStopSec` is killed. `Delegate=yes`: the daemon makes its
//! replicas' cgroups below its own.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::{ServerArgs, ServerCommand, ServerInstallArgs};
use crate::output::stderr_style;

pub fn run(args: &ServerArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        ServerCommand::Install(args) => install(args),
    }
}

/// A user of this host, from `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct User {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl User {
    fn find(name: &str) -> anyhow::Result<User> {
        let text = fs_err::read_to_string("/etc/passwd")?;
        parse_passwd(&text, name).ok_or_else(|| {
            anyhow::anyhow!(
                "no user `{name}` on this host (in /etc/passwd); hint: create it first (`useradd --system --create-home {name}`), or name another with --user"
            )
        })
    }

    /// Its host daemon's directory: `/var/lib/cove` for root, else
    /// `~/.local/state/cove` (as [`cove_daemon::host_dir`] finds it when
    /// run as that user).
    fn state_dir(&self) -> PathBuf {
        if self.uid == 0 {
            PathBuf::from("/var/lib/cove")
        } else {
            self.home.join(".local/state/cove")
        }
    }

    /// Its age identity: `COVE_IDENTITY` or the default when it is the
    /// user running this, else `~/.config/cove/identity.txt`.
    fn identity(&self) -> anyhow::Result<PathBuf> {
        if rustix::process::geteuid().as_raw() == self.uid {
            Ok(cove_secrets::default_identity_path()?)
        } else {
            Ok(self.home.join(".config/cove/identity.txt"))
        }
    }
}

fn parse_passwd(text: &str, name: &str) -> Option<User> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 || f[0] != name {
            return None;
        }
        Some(User {
            name: f[0].to_string(),
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: PathBuf::from(f[5]),
        })
    })
}

/// The unit's text.
fn unit(binary: &Path, user: &User, state_dir: &Path, identity: &Path) -> String {
    format!(
        "# Written by `cove server install`; `cove server install --print` shows what it would write.\n\
         [Unit]\n\
         Description=cove host daemon (runs this host's apps; reached with cove --host ssh://)\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         User={user}\n\
         Environment=COVE_HOST_DIR={state}\n\
         Environment=COVE_IDENTITY={identity}\n\
         ExecStart={binary} __daemon --state-dir {state} --host\n\
         Restart=on-failure\n\
         RestartSec=2\n\
         KillMode=mixed\n\
         TimeoutStopSec=120\n\
         Delegate=yes\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        user = user.name,
        state = state_dir.display(),
        identity = identity.display(),
        binary = binary.display(),
    )
}

fn install(args: &ServerInstallArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let user = User::find(&args.user)?;
    if !user.home.is_dir() {
        anyhow::bail!(
            "`{}`'s home, {}, is not a directory: its daemon's state and identity live there; hint: give the daemon a user with a home (`useradd --system --create-home cove`, then `--user cove`)",
            user.name,
            user.home.display()
        );
    }
    for (what, p) in [
        ("--prefix", Some(&args.prefix)),
        ("--state-dir", args.state_dir.as_ref()),
    ] {
        if let Some(p) = p
            && (!p.is_absolute() || p.to_string_lossy().chars().any(char::is_whitespace))
        {
            anyhow::bail!(
                "`{what} {}`: the unit needs an absolute path without spaces; hint: e.g. `{what} /usr/local`",
                p.display()
            );
        }
    }
    let binary = args.prefix.join("bin/cove");
    let state_dir = args.state_dir.clone().unwrap_or_else(|| user.state_dir());
    let identity = user.identity()?;
    let text = unit(&binary, &user, &state_dir, &identity);
    if args.print {
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let owner = (
        Some(rustix::fs::Uid::from_raw(user.uid)),
        Some(rustix::fs::Gid::from_raw(user.gid)),
    );

    // The binary, unless it is already the one running.
    let exe = std::env::current_exe()?;
    let same = fs_err::canonicalize(&binary).ok() == fs_err::canonicalize(&exe).ok();
    if !same {
        fs_err::create_dir_all(args.prefix.join("bin"))?;
        let tmp = binary.with_extension("new");
        fs_err::copy(&exe, &tmp)?;
        fs_err::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        fs_err::rename(&tmp, &binary)?;
        eprintln!("cove: installed {}", binary.display());
    }

    // The daemon's directory, its user's, 0700 (and the directories made
    // on the way, theirs too: `~/.local/state` in their home).
    let made = missing(&state_dir);
    cove_runtime::private::make_dir(&state_dir)?;
    give(&made, owner, &user.name)?;

    // The host's identity, made when missing (0600, the user's).
    let recipient = match cove_secrets::Identity::load(&identity) {
        Ok(i) => {
            eprintln!("cove: the host's identity is {}", identity.display());
            i.recipient()
        }
        Err(cove_secrets::Error::IdentityMissing { .. }) => {
            let made = missing(&identity);
            let mut i = cove_secrets::Identity::generate();
            i.save(&identity, false)?;
            give(&made, owner, &user.name)?;
            eprintln!(
                "cove: created the host's identity at {} (mode 0600, {}'s; keep it, back it up)",
                identity.display(),
                user.name
            );
            i.recipient()
        }
        Err(e) => return Err(e.into()),
    };

    // The unit.
    let unit_dir = std::env::var_os("COVE_SYSTEMD_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("/etc/systemd/system"), PathBuf::from);
    fs_err::create_dir_all(&unit_dir)?;
    let unit_path = unit_dir.join("cove.service");
    let tmp = unit_path.with_extension("service.new");
    fs_err::write(&tmp, &text)?;
    fs_err::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    fs_err::rename(&tmp, &unit_path)?;
    eprintln!("cove: wrote {}", unit_path.display());
    if Path::new("/run/systemd/system").exists() {
        for cmd in [&["daemon-reload"][..], &["enable", "--now", "cove.service"]] {
            let st = std::process::Command::new("systemctl").args(cmd).status()?;
            if !st.success() {
                anyhow::bail!(
                    "`systemctl {}` failed ({st}); hint: `journalctl -u cove` says why",
                    cmd.join(" ")
                );
            }
        }
        eprintln!("cove: the host's daemon runs (systemctl status cove)");
    } else {
        eprintln!(
            "{}warning{}: systemd does not run here: the unit is written but not started",
            style.yellow, style.reset
        );
        eprintln!(
            "  = {}hint{}: `systemctl enable --now cove` where systemd runs; or start `{} __daemon --state-dir {} --host` yourself",
            style.cyan,
            style.reset,
            binary.display(),
            state_dir.display()
        );
    }
    println!("{recipient}");
    let host = fs_err::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let comment = if host.is_empty()
        || host.contains(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '.')
    {
        String::new()
    } else {
        format!(" --comment {host}")
    };
    eprintln!(
        "  = {}hint{}: let this host read an app's secrets: `cove secrets recipients add {recipient}{comment}` in the app's directory",
        style.cyan, style.reset
    );
    Ok(ExitCode::SUCCESS)
}

/// `path` and its ancestors that do not exist yet, deepest first.
fn missing(path: &Path) -> Vec<PathBuf> {
    path.ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect()
}

/// Gives `paths` to the daemon's user.
fn give(
    paths: &[PathBuf],
    (uid, gid): (Option<rustix::fs::Uid>, Option<rustix::fs::Gid>),
    name: &str,
) -> anyhow::Result<()> {
    for p in paths {
        rustix::fs::chown(p, uid, gid)
            .map_err(|e| anyhow::anyhow!("cannot give {} to `{name}`: {e}", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_read_from_passwd() {
        let text = "root:x:0:0:root:/root:/bin/bash\ndeploy:x:1001:1002::/home/deploy:/bin/sh\n";
        let d = parse_passwd(text, "deploy").unwrap();
        assert_eq!((d.uid, d.gid), (1001, 1002));
        assert_eq!(d.state_dir(), Path::new("/home/deploy/.local/state/cove"));
        assert_eq!(
            parse_passwd(text, "root").unwrap().state_dir(),
            Path::new("/var/lib/cove")
        );
        assert!(parse_passwd(text, "nobody").is_none());
    }
}
