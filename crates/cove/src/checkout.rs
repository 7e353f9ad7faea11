//! The host's side of `cove deploy --env NAME`: the files it was sent,
//! kept by content, and the checkouts made of them; then the CLI run in a
//! checkout against the host's daemon.
//!
//! Under the host daemon's directory ([`cove_daemon::host_dir`]):
//!
//! ```text
//! blobs/SHA256                        each file's bytes, once
//! checkouts/PROJECT/ENV/MANIFEST/     manifest.json and tree/ (the project directory)
//! checkouts/PROJECT/ENV/current       a link to the checkout deployed last
//! apps/PROJECT/ENV/                   the app's state directory, the same across checkouts
//! ```
//!
//! `cove system receive PROJECT ENV` ([`receive`]) reads a manifest line
//! on stdin, answers the blobs it lacks, reads their bytes (each checked
//! against its hash, written to a temporary file and renamed), makes the
//! checkout in a temporary directory renamed into place, keeps the
//! newest [`KEEP`] checkouts (and `current`), and answers the checkout's
//! name and the one `current` named. Nothing it does changes what runs.
//!
//! `cove system in PROJECT ENV [--checkout NAME] -- ARGS` ([`run_in`])
//! switches `current` to the checkout (a new link renamed over the old),
//! then runs `cove -p PROJECT --env ENV -f ... ARGS` in its tree with the
//! host's daemon (`COVE_DAEMON=host`), the app's state directory
//! (`COVE_STATE_DIR`) and `COVE_SHIPPED=1` (the file's `hosts:` are not
//! acted on there). `deploy` of an app the daemon does not run yet is
//! `up -d`.

use std::collections::BTreeSet;
use std::io::{BufRead as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use crate::ship::{Manifest, Missing, Received, sha256_hex};

/// Checkouts kept per project and environment (and `current`).
pub const KEEP: usize = 5;

/// The longest manifest line read.
const MAX_MANIFEST: u64 = 64 * 1024 * 1024;

/// An error for the laptop (it quotes the `error:` and `hint:` lines).
struct Refusal {
    error: String,
    hint: String,
}

fn refuse(error: impl Into<String>, hint: impl Into<String>) -> Refusal {
    Refusal {
        error: error.into(),
        hint: hint.into(),
    }
}

fn report(r: &Refusal) -> ExitCode {
    eprintln!("error: {}\n  = hint: {}", r.error, r.hint);
    ExitCode::from(1)
}

/// A project or environment name as a directory name.
fn check_name(what: &str, name: &str) -> Result<(), Refusal> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(refuse(
            format!("`{name}` is not a {what} name cove keeps checkouts of"),
            "letters, digits, `-`, `_` and `.`",
        ))
    }
}

/// `checkouts/PROJECT/ENV` of the host.
fn base(project: &str, env: &str) -> PathBuf {
    cove_daemon::host_dir()
        .join("checkouts")
        .join(project)
        .join(env)
}

/// `cove system receive PROJECT ENV`.
pub fn receive(project: &str, env: &str) -> ExitCode {
    match receive_inner(project, env) {
        Ok(r) => {
            println!("{}", serde_json::to_string(&r).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(r) => report(&r),
    }
}

fn receive_inner(project: &str, env: &str) -> Result<Received, Refusal> {
    check_name("project", project)?;
    check_name("environment", env)?;
    let io = |e: std::io::Error| {
        refuse(
            e.to_string(),
            "check the host's disk and its daemon directory's owner",
        )
    };
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = String::new();
    (&mut input)
        .take(MAX_MANIFEST)
        .read_line(&mut line)
        .map_err(io)?;
    let manifest: Manifest = serde_json::from_str(line.trim()).map_err(|e| {
        refuse(
            format!("the manifest cannot be read: {e}"),
            "the cove here and the one sending must be the same version: `cove version` on both",
        )
    })?;
    if manifest.project != project || manifest.env != env {
        return Err(refuse(
            "the manifest is for another project or environment",
            "send it again",
        ));
    }
    for e in &manifest.files {
        check_path(&e.path)?;
        if e.sha256.len() != 64 || !e.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(refuse(
                format!("`{}`: not a SHA-256", e.sha256),
                "send it again",
            ));
        }
    }
    let host = cove_daemon::host_dir();
    let blobs = host.join("blobs");
    cove_runtime::private::make_dir(&host).map_err(|e| {
        refuse(
            format!("{e:#}"),
            "the daemon's directory must be this user's",
        )
    })?;
    fs_err::create_dir_all(&blobs).map_err(io)?;
    // Each blob once, in the manifest's order.
    let mut seen = BTreeSet::new();
    let missing: Vec<(String, u64)> = manifest
        .files
        .iter()
        .filter(|e| seen.insert(e.sha256.clone()))
        .filter(|e| !blobs.join(&e.sha256).is_file())
        .map(|e| (e.sha256.clone(), e.size))
        .collect();
    let answer = Missing {
        missing: missing.iter().map(|(h, _)| h.clone()).collect(),
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{}",
            serde_json::to_string(&answer).unwrap_or_default()
        )
        .map_err(io)?;
        out.flush().map_err(io)?;
    }
    for (hash, size) in &missing {
        let tmp = blobs.join(format!(".{hash}.{}.partial", std::process::id()));
        let mut bytes = Vec::with_capacity(*size as usize);
        (&mut input)
            .take(*size)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 != *size || sha256_hex(&bytes) != *hash {
            return Err(refuse(
                format!("the bytes of blob {hash} do not match their hash"),
                "send it again (the connection may have been cut)",
            ));
        }
        fs_err::write(&tmp, &bytes).map_err(io)?;
        fs_err::rename(&tmp, blobs.join(hash)).map_err(io)?;
    }
    let name = manifest.hash();
    let base = base(project, env);
    fs_err::create_dir_all(&base).map_err(io)?;
    let dir = base.join(&name);
    if !dir.join("manifest.json").is_file() {
        let tmp = base.join(format!(".{name}.{}.partial", std::process::id()));
        let _ = fs_err::remove_dir_all(&tmp);
        let tree = tmp.join("tree");
        for e in &manifest.files {
            let to = tree.join(&e.path);
            if let Some(parent) = to.parent() {
                fs_err::create_dir_all(parent).map_err(io)?;
            }
            fs_err::copy(blobs.join(&e.sha256), &to).map_err(io)?;
            fs_err::set_permissions(
                &to,
                std::os::unix::fs::PermissionsExt::from_mode(e.mode & 0o755),
            )
            .map_err(io)?;
        }
        fs_err::create_dir_all(&tree).map_err(io)?;
        fs_err::write(
            tmp.join("manifest.json"),
            serde_json::to_string_pretty(&manifest).unwrap_or_default(),
        )
        .map_err(io)?;
        if let Err(e) = fs_err::rename(&tmp, &dir) {
            let _ = fs_err::remove_dir_all(&tmp);
            if !dir.join("manifest.json").is_file() {
                return Err(io(e));
            }
        }
    } else {
        // Used again: the newest, for pruning.
        let _ = fs_err::File::open(dir.join("manifest.json"))
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
    }
    let previous = current(&base);
    prune(&base, &[Some(name.clone()), previous.clone()]);
    Ok(Received {
        checkout: name,
        previous,
    })
}

/// A relative path of plain names.
fn check_path(path: &str) -> Result<(), Refusal> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..");
    if ok {
        Ok(())
    } else {
        Err(refuse(
            format!("`{path}` is not a path inside the project"),
            "only files of the project directory are sent",
        ))
    }
}

/// The checkout `current` names.
fn current(base: &Path) -> Option<String> {
    fs_err::read_link(base.join("current"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// Keeps the newest [`KEEP`] checkouts, and `keep`.
fn prune(base: &Path, keep: &[Option<String>]) {
    let Ok(read) = fs_err::read_dir(base) else {
        return;
    };
    let mut all: Vec<(std::time::SystemTime, PathBuf)> = read
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("manifest.json").is_file())
        .filter_map(|p| {
            let t = fs_err::metadata(p.join("manifest.json"))
                .ok()?
                .modified()
                .ok()?;
            Some((t, p))
        })
        .collect();
    all.sort_by_key(|a| std::cmp::Reverse(a.0));
    for (_, p) in all.into_iter().skip(KEEP) {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        if keep.contains(&name) {
            continue;
        }
        // Renamed away first: never a half-deleted checkout under its name.
        let gone = p.with_file_name(format!(".{}.removed", name.unwrap_or_default()));
        if fs_err::rename(&p, &gone).is_ok() {
            let _ = fs_err::remove_dir_all(&gone);
        }
    }
}

/// `cove system in PROJECT ENV [--checkout NAME] -- ARGS`.
pub fn run_in(project: &str, env: &str, checkout: Option<&str>, args: &[String]) -> ExitCode {
    match run_in_inner(project, env, checkout, args) {
        Ok(code) => code,
        Err(r) => report(&r),
    }
}

fn run_in_inner(
    project: &str,
    env: &str,
    checkout: Option<&str>,
    args: &[String],
) -> Result<ExitCode, Refusal> {
    check_name("project", project)?;
    check_name("environment", env)?;
    let io = |e: std::io::Error| refuse(e.to_string(), "check the host's daemon directory");
    let base = base(project, env);
    if let Some(name) = checkout {
        check_name("checkout", name)?;
        if !base.join(name).join("manifest.json").is_file() {
            return Err(refuse(
                format!("no checkout {name} of `{project}` ({env}) on this host"),
                "`cove deploy --env` sends it first",
            ));
        }
        // A new link renamed over the old one: `current` is always whole.
        let tmp = base.join(format!(".current.{}", std::process::id()));
        let _ = fs_err::remove_file(&tmp);
        std::os::unix::fs::symlink(name, &tmp).map_err(io)?;
        fs_err::rename(&tmp, base.join("current")).map_err(io)?;
    }
    let Some(name) = current(&base) else {
        return Err(refuse(
            format!("`{project}` ({env}) was never deployed to this host"),
            "`cove deploy --env ENV` on your machine sends it and deploys it",
        ));
    };
    let dir = base.join(&name);
    let manifest: Manifest = fs_err::read_to_string(dir.join("manifest.json"))
        .map_err(io)
        .and_then(|t| {
            serde_json::from_str(&t).map_err(|e| refuse(e.to_string(), "deploy again"))
        })?;
    let tree = dir.join("tree");
    let state = cove_daemon::host_dir().join("apps").join(project).join(env);
    let exe = std::env::current_exe().map_err(io)?;
    let cove = |args: &[String]| {
        let mut c = Command::new(&exe);
        c.arg("-p").arg(project).arg("--env").arg(env);
        for f in &manifest.compose {
            c.arg("-f").arg(tree.join(f));
        }
        c.args(args)
            .current_dir(&tree)
            .env("COVE_DAEMON", "host")
            .env("COVE_STATE_DIR", &state)
            .env("COVE_SHIPPED", "1")
            .env_remove("COVE_HOST")
            .env_remove("COVE_ENV");
        c
    };
    let mut args = args.to_vec();
    if args.first().map(String::as_str) == Some("deploy") {
        // An app the daemon does not run yet is started.
        let ps = cove(&["ps".into(), "-q".into()])
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(io)?;
        if ps.status.success() && ps.stdout.iter().all(u8::is_ascii_whitespace) {
            let mut up = vec!["up".to_string(), "-d".to_string()];
            let mut rest = args[1..].iter();
            while let Some(a) = rest.next() {
                if a == "--message" || a == "-m" {
                    rest.next();
                } else {
                    up.push(a.clone());
                }
            }
            args = up;
        }
    }
    let status = cove(&args).status().map_err(io)?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_the_newest_and_those_named() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path();
        let t0 = std::time::SystemTime::now() - std::time::Duration::from_secs(1000);
        for i in 0..8u64 {
            let d = base.join(format!("c{i}"));
            fs_err::create_dir_all(d.join("tree")).unwrap();
            fs_err::write(d.join("manifest.json"), "{}").unwrap();
            fs_err::File::open(d.join("manifest.json"))
                .unwrap()
                .set_modified(t0 + std::time::Duration::from_secs(i * 10))
                .unwrap();
        }
        // A half-made one (no manifest) is not a checkout: left alone.
        fs_err::create_dir_all(base.join(".c9.1.partial")).unwrap();
        prune(base, &[Some("c0".into()), None]);
        let mut left: Vec<String> = fs_err::read_dir(base)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".c9.1.partial", "c0", "c3", "c4", "c5", "c6", "c7"]);
    }

    #[test]
    fn only_plain_relative_paths_are_taken() {
        for good in ["compose.yaml", "a/b/c.txt", ".env.prod"] {
            assert!(check_path(good).is_ok(), "{good}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        assert!(check_name("project", "shop").is_ok());
        for bad in ["", "..", ".x", "a/b"] {
            assert!(check_name("project", bad).is_err(), "{bad}");
        }
    }
}
