//! What `cove deploy --env NAME` sends to each host of the environment,
//! and how: the files of the project directory that the loaded app needs,
//! content-addressed.
//!
//! [`collect`] lists them, each named by the loaded app (nothing is sent
//! because it lies in the directory): the Compose files and what they
//! include or extend, `.env` and `.env.NAME`, every service's `env_file`,
//! the environment's encrypted secrets file (sent as it is: the host opens
//! it with its own identity), the `file:` of top-level `secrets` and
//! `configs`, the files a native service's command names
//! (`python3 app.py`, `target/release/api`), bind mounts' sources, and the
//! gateway's TLS files. What cannot be sent yet is refused, with the
//! service and field: a `build:` context (images are built or pulled on
//! the host from a registry), an `x-cove.build` command, and any file
//! outside the project directory.
//!
//! [`send`] speaks to `cove system receive PROJECT ENV` on the host over
//! ssh (see [`crate::checkout`] for the host's side): a manifest line
//! (JSON: each file's relative path, SHA-256, mode and size), the host's
//! answer (the blobs it lacks), those blobs' bytes back to back in that
//! order, and the host's last line (the checkout made, the one before).

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use cove_daemon::remote::{Failure, Target};
use cove_spec::Project;
use ring::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};

/// Most files one shipment holds (a bind-mounted directory walked).
const MAX_FILES: usize = 20_000;

/// One file of the shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative to the project directory, `/`-separated, no `..`.
    pub path: String,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
    /// 0o755 (executable) or 0o644.
    pub mode: u32,
    pub size: u64,
}

/// What the host needs to run the app: the files, and how to load them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The app's name (`-p` there).
    pub project: String,
    /// The environment (`--env` there).
    pub env: String,
    /// The Compose files, in order (`-f` there), relative.
    pub compose: Vec<String>,
    /// Sorted by path.
    pub files: Vec<Entry>,
}

impl Manifest {
    /// SHA-256 of the manifest (hex): the checkout's name on the host.
    pub fn hash(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        sha256_hex(text.as_bytes())
    }
}

/// The hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut ctx = Context::new(&SHA256);
    ctx.update(bytes);
    hex(ctx.finish().as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A manifest and where each file is here.
#[derive(Debug, Clone)]
pub struct Shipment {
    pub manifest: Manifest,
    /// Relative path → this machine's path.
    pub local: BTreeMap<String, PathBuf>,
}

/// Lists what the hosts of `env` need to run `project`, or why it cannot
/// be sent (each problem a line: the service or file and field, and a
/// hint).
pub fn collect(project: &Project, env: &str) -> Result<Shipment, Vec<String>> {
    let dir =
        fs_err::canonicalize(&project.project_dir).unwrap_or_else(|_| project.project_dir.clone());
    let mut c = Collector {
        dir,
        local: BTreeMap::new(),
        problems: Vec::new(),
    };
    let mut compose = Vec::new();
    for f in &project.files {
        if let Some(rel) = c.file(f, "a Compose file") {
            compose.push(rel);
        }
    }
    // What the Compose files include or extend.
    for (_, src) in project.sources.files() {
        if src.path.is_file() {
            c.file(&src.path, "a file the Compose files load");
        }
    }
    for name in [".env".to_string(), format!(".env.{env}")] {
        let p = project.project_dir.join(&name);
        if p.is_file() {
            c.file(&p, &name);
        }
    }
    let x = &project.app.x_cove;
    let secrets = project.project_dir.join(
        x.secrets_file
            .clone()
            .unwrap_or_else(|| cove_runtime::secrets::default_file_name(Some(env))),
    );
    if secrets.is_file() {
        c.file(&secrets, "the environment's secrets file");
    }
    for (kind, map) in [
        ("secrets", &project.app.secrets),
        ("configs", &project.app.configs),
    ] {
        for (name, def) in map {
            if let Some(f) = def.get("file").and_then(|f| f.as_str()) {
                c.file(
                    &project.project_dir.join(f),
                    &format!("`{kind}.{name}.file`"),
                );
            }
        }
    }
    if let Some(tls) = x.gateway.as_ref().and_then(|g| g.tls.as_ref()) {
        let pairs = tls
            .cert
            .iter()
            .chain(tls.key.iter())
            .chain(tls.certificates.iter().flat_map(|c| [&c.cert, &c.key]));
        for f in pairs {
            c.file(
                &project.project_dir.join(f),
                "`x-cove.gateway.tls` (a certificate or key)",
            );
        }
    }
    for (name, svc) in &project.app.services {
        if svc.build.is_some() {
            c.problems.push(format!(
                "service `{name}`: `build:` contexts are not sent to hosts yet; hint: push the image to a registry and use `image:` in compose.{env}.yaml"
            ));
        }
        for f in &svc.env_file {
            let p = Path::new(&f.path);
            if p.is_file() || f.required {
                c.file(p, &format!("service `{name}`: `env_file`"));
            }
        }
        for m in &svc.volumes {
            if m.kind != cove_spec::model::MountKind::Bind {
                continue;
            }
            if let Some(src) = &m.source {
                c.tree(
                    Path::new(src),
                    &format!("service `{name}`: the bind mount of `{}`", m.target),
                );
            }
        }
    }
    if let Ok(plan) = cove_runtime::plan::plan(&project.app, &project.project_dir) {
        for s in &plan.services {
            if s.build.is_some() {
                c.problems.push(format!(
                    "service `{}`: `x-cove.build` is not run for hosts yet: its sources are not sent; hint: build on this machine (or in CI) and let `x-cove.run` name the built file, which is sent",
                    s.name
                ));
            }
            for f in cove_runtime::artifact::files_named(&s.argv, &s.workdir) {
                c.file(
                    &f,
                    &format!("service `{}`: a file its command names", s.name),
                );
            }
        }
    }
    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    let mut files = Vec::new();
    for (rel, p) in &c.local {
        match entry(rel, p) {
            Ok(e) => files.push(e),
            Err(e) => c.problems.push(e),
        }
    }
    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    Ok(Shipment {
        manifest: Manifest {
            project: project.app.name.clone(),
            env: env.to_string(),
            compose,
            files,
        },
        local: c.local,
    })
}

struct Collector {
    dir: PathBuf,
    local: BTreeMap<String, PathBuf>,
    problems: Vec<String>,
}

impl Collector {
    /// Adds the file `p` (named by `why`); its relative path.
    fn file(&mut self, p: &Path, why: &str) -> Option<String> {
        let real = match fs_err::canonicalize(p) {
            Ok(r) if r.is_file() => r,
            Ok(_) => {
                self.problems.push(format!(
                    "{why}: {} is not a file; hint: only files are sent to hosts",
                    p.display()
                ));
                return None;
            }
            Err(e) => {
                self.problems.push(format!("{why}: {e}"));
                return None;
            }
        };
        let rel = self.relative(&real, why)?;
        if self.local.len() >= MAX_FILES && !self.local.contains_key(&rel) {
            self.problems.push(format!(
                "more than {MAX_FILES} files to send; hint: a bind mount of a large directory is better made on the host"
            ));
            return None;
        }
        self.local.insert(rel.clone(), real);
        Some(rel)
    }

    /// Adds `p`, a file or a directory (walked, without `.git` and
    /// `.cove`).
    fn tree(&mut self, p: &Path, why: &str) {
        if !p.is_dir() {
            self.file(p, why);
            return;
        }
        let Ok(real) = fs_err::canonicalize(p) else {
            return;
        };
        if self.relative(&real, why).is_none() {
            return;
        }
        let mut stack = vec![real];
        while let Some(d) = stack.pop() {
            if self.local.len() >= MAX_FILES {
                self.problems.push(format!(
                    "{why}: more than {MAX_FILES} files to send; hint: a bind mount of a large directory is better made on the host"
                ));
                return;
            }
            let Ok(read) = fs_err::read_dir(&d) else {
                continue;
            };
            let mut names: Vec<PathBuf> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
            names.sort();
            for n in names {
                let base = n.file_name().unwrap_or_default();
                if base == ".git" || base == ".cove" {
                    continue;
                }
                let Ok(meta) = fs_err::symlink_metadata(&n) else {
                    continue;
                };
                if meta.is_dir() {
                    stack.push(n);
                } else if meta.is_file() {
                    self.file(&n, why);
                }
            }
        }
    }

    fn relative(&mut self, real: &Path, why: &str) -> Option<String> {
        let Ok(rel) = real.strip_prefix(&self.dir) else {
            self.problems.push(format!(
                "{why}: {} is outside the project directory ({}): not sent to hosts; hint: move it into the project directory",
                real.display(),
                self.dir.display()
            ));
            return None;
        };
        let parts: Vec<String> = rel
            .components()
            .map(|c| match c {
                Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect::<Option<_>>()?;
        Some(parts.join("/"))
    }
}

fn entry(rel: &str, p: &Path) -> Result<Entry, String> {
    let bytes = fs_err::read(p).map_err(|e| e.to_string())?;
    let meta = fs_err::metadata(p).map_err(|e| e.to_string())?;
    let exec = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0;
    Ok(Entry {
        path: rel.to_string(),
        sha256: sha256_hex(&bytes),
        mode: if exec { 0o755 } else { 0o644 },
        size: bytes.len() as u64,
    })
}

/// The host's first answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Missing {
    pub missing: Vec<String>,
}

/// The host's last answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Received {
    /// The checkout made (or found): the manifest's hash.
    pub checkout: String,
    /// The checkout `current` named before (what the host ran).
    pub previous: Option<String>,
}

/// What one host was sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub received: Received,
    pub files: usize,
    pub bytes: u64,
    pub unchanged: usize,
}

impl std::fmt::Display for Sent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "shipped {} file{}, {} ({} unchanged)",
            self.files,
            if self.files == 1 { "" } else { "s" },
            size(self.bytes),
            self.unchanged
        )
    }
}

/// `12.4 KiB`.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

/// The `ssh` program (`COVE_SSH`, else `ssh`).
pub fn ssh_program() -> String {
    std::env::var("COVE_SSH")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "ssh".into())
}

/// Sends `shipment` to `target` with `ssh` (the program and its
/// options): only the blobs it lacks.
pub fn send(ssh: &str, target: &Target, shipment: &Shipment) -> Result<Sent, Failure> {
    let m = &shipment.manifest;
    let (program, args) =
        target.command_for(ssh, &["cove", "system", "receive", &m.project, &m.env]);
    let mut child = Command::new(&program)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure {
            error: format!("cannot run `{program}` to reach {target}: {e}"),
            hint: Some("install the OpenSSH client, or name it in COVE_SSH".into()),
        })?;
    let (Some(mut stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        unreachable!("all three piped")
    };
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut stdout = std::io::BufReader::new(stdout);
    let talk = (|| -> Result<Sent, String> {
        let line = serde_json::to_string(m).map_err(|e| e.to_string())?;
        writeln!(stdin, "{line}").map_err(|e| e.to_string())?;
        stdin.flush().map_err(|e| e.to_string())?;
        let missing: Missing = read_line(&mut stdout)?;
        let by_hash: BTreeMap<&str, &Entry> =
            m.files.iter().map(|e| (e.sha256.as_str(), e)).collect();
        let mut bytes = 0;
        for h in &missing.missing {
            let e = by_hash
                .get(h.as_str())
                .ok_or_else(|| format!("the host asked for a blob it was not offered: {h}"))?;
            let p = &shipment.local[&e.path];
            let data = fs_err::read(p).map_err(|e| e.to_string())?;
            if sha256_hex(&data) != e.sha256 {
                return Err(format!(
                    "{} changed while it was being sent; hint: deploy again",
                    p.display()
                ));
            }
            stdin.write_all(&data).map_err(|e| e.to_string())?;
            bytes += data.len() as u64;
        }
        stdin.flush().map_err(|e| e.to_string())?;
        drop(stdin);
        let received: Received = read_line(&mut stdout)?;
        let sent_files = m
            .files
            .iter()
            .filter(|e| missing.missing.contains(&e.sha256))
            .count();
        Ok(Sent {
            received,
            files: sent_files,
            bytes,
            unchanged: m.files.len() - sent_files,
        })
    })();
    let status = child.wait().ok();
    let said = err.join().unwrap_or_default();
    match talk {
        Ok(s) => Ok(s),
        Err(why) => {
            let code = status.and_then(|s| s.code());
            if let Some(host_error) = said.lines().find_map(|l| l.strip_prefix("error: ")) {
                return Err(Failure {
                    error: format!("{target} refused the files: {host_error}"),
                    hint: said
                        .lines()
                        .find_map(|l| l.trim().strip_prefix("= hint: "))
                        .map(String::from),
                });
            }
            let mut f = Failure::classify(target, &program, code, &said);
            if code == Some(0) {
                f.error = format!("{target}: {why}");
            }
            Err(f)
        }
    }
}

fn read_line<T: serde::de::DeserializeOwned>(r: &mut impl std::io::BufRead) -> Result<T, String> {
    let mut line = String::new();
    let n = r.read_line(&mut line).map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("the host closed the connection".into());
    }
    serde_json::from_str(line.trim()).map_err(|e| format!("the host's answer: {e}: {line}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(12_700), "12.4 KiB");
        assert_eq!(size(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn the_manifest_hash_follows_its_content() {
        let mut m = Manifest {
            project: "p".into(),
            env: "prod".into(),
            compose: vec!["compose.yaml".into()],
            files: vec![Entry {
                path: "compose.yaml".into(),
                sha256: sha256_hex(b"a"),
                mode: 0o644,
                size: 1,
            }],
        };
        let a = m.hash();
        assert_eq!(a, m.hash());
        m.files[0].mode = 0o755;
        assert_ne!(a, m.hash());
    }
}
