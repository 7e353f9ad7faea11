//! Secrets handed to replicas, and kept out of everything else.
//!
//! A service's `secrets:` name top-level secrets, whose value comes from
//! the project's encrypted secrets file (`x-cove: {store: NAME}`) or from a
//! file (`file:`). [`resolve`] reads them into memory (the daemon does,
//! when it plans; nothing decrypted is written to its store). Each replica
//! gets them as files, mode 0400 unless `mode` says otherwise, in a 0700
//! directory of its own on a tmpfs (`/run/cove` for root, else
//! `$XDG_RUNTIME_DIR`, else `/dev/shm`; see [`root`]), made and checked
//! through directory handles so that nothing another user planted is
//! followed, removed when the replica ends. The directory is `COVE_SECRETS` in the
//! replica's environment, and the secret's Compose target
//! (`/run/secrets/NAME`) written in its `environment` or command is
//! rewritten to the file's real path, so `MARIADB_PASSWORD_FILE:
//! /run/secrets/db_password` works as it does in a container. A service
//! that asks (`x-cove: {env: VAR}` on its secret) also gets the value in
//! that variable.
//!
//! Every value is scrubbed by exact match from what replicas print
//! ([`Redactor`]): the whole value and, for a value of several lines, each
//! line, when at least [`MIN_SCRUBBED`] characters long (shorter ones would
//! match everywhere; such a value is no secret).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use cove_secrets::{Identity, SecretsFile, Zeroizing};
use cove_spec::App;
use serde_json::Value as Json;

use crate::plan_error::PlanError;

/// Values shorter than this are not scrubbed from logs.
pub const MIN_SCRUBBED: usize = 4;

/// The file a service's secrets file defaults to, in the project directory.
pub fn default_file_name(env: Option<&str>) -> String {
    match env {
        Some(e) => format!("cove.secrets.{e}.yaml"),
        None => "cove.secrets.yaml".to_string(),
    }
}

/// A secret's value, in memory only: never printed (`Debug` shows its
/// length), zeroed when the last copy goes.
#[derive(Clone, PartialEq, Eq)]
pub struct Value(Arc<Zeroizing<Vec<u8>>>);

impl Value {
    pub fn new(bytes: Vec<u8>) -> Value {
        Value(Arc::new(Zeroizing::new(bytes)))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The value as text, when it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Value(*** {} bytes)", self.0.len())
    }
}

/// One secret of a service, as its replicas get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The top-level secret's name.
    pub name: String,
    /// Its Compose target (`/run/secrets/NAME` by default), rewritten to
    /// the real file in the replica's environment and command.
    pub target: String,
    /// Path of the file inside the replica's secrets directory.
    pub file: PathBuf,
    /// File mode (default 0400).
    pub mode: u32,
    /// Also set as this environment variable.
    pub env: Option<String>,
    pub value: Value,
}

/// Scrubs secret values out of text by exact match, in one pass over the
/// text whatever the number of values (Aho-Corasick, leftmost-longest).
#[derive(Clone, Default)]
pub struct Redactor(Option<Arc<(Option<aho_corasick::AhoCorasick>, Vec<String>)>>);

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} patterns)", self.patterns().len())
    }
}

impl PartialEq for Redactor {
    fn eq(&self, other: &Redactor) -> bool {
        self.patterns() == other.patterns()
    }
}

impl Eq for Redactor {}

/// What stands in for a scrubbed value.
pub const MASK: &str = "***";

impl Redactor {
    /// A redactor for these values: each whole (without a final line
    /// break) and each of its lines.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a Value>) -> Redactor {
        let mut patterns: Vec<String> = Vec::new();
        for v in values {
            let text = String::from_utf8_lossy(v.bytes());
            let whole = text.trim_end_matches(['\n', '\r']);
            patterns.push(whole.to_string());
            patterns.extend(whole.lines().map(|l| l.trim_end_matches('\r').to_string()));
        }
        patterns.retain(|p| p.chars().count() >= MIN_SCRUBBED);
        // Longest first, for the pattern-by-pattern fallback.
        patterns.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        patterns.dedup();
        if patterns.is_empty() {
            return Redactor(None);
        }
        // Building fails only past millions of states; then every pattern
        // is searched in turn.
        let matcher = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(&patterns)
            .ok();
        Redactor(Some(Arc::new((matcher, patterns))))
    }

    fn patterns(&self) -> &[String] {
        self.0.as_ref().map_or(&[], |a| a.1.as_slice())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// [`scrub`](Self::scrub) of an owned line: given back as it is (no
    /// copy) when it holds no value, as nearly every line does.
    pub fn scrub_owned(&self, text: String) -> String {
        match self.scrub(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(masked) => masked,
        }
    }

    /// `text` with every value replaced by [`MASK`].
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let Some(inner) = &self.0 else {
            return Cow::Borrowed(text);
        };
        let Some(matcher) = &inner.0 else {
            let mut out = Cow::Borrowed(text);
            for p in &inner.1 {
                if out.contains(p.as_str()) {
                    out = Cow::Owned(out.replace(p.as_str(), MASK));
                }
            }
            return out;
        };
        if matcher.find(text).is_none() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        matcher.replace_all_with(text, &mut out, |_, _, dst| {
            dst.push_str(MASK);
            true
        });
        Cow::Owned(out)
    }
}

impl Redactor {
    /// `text` with each value that stands as a whole token replaced by
    /// [`MASK`]: not where it is part of a longer word (a value `kong`
    /// masks `kong` in `http://kong:8000`, not in `kongfu`). For text that
    /// must still read as what it is (`cove config`'s output).
    pub fn scrub_tokens<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let Some(inner) = &self.0 else {
            return Cow::Borrowed(text);
        };
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        let mut out = String::new();
        let mut done = 0;
        let mut at = 0;
        while at < text.len() {
            // The longest value starting at the earliest place from `at`.
            let found = inner
                .1
                .iter()
                .filter_map(|p| text[at..].find(p.as_str()).map(|i| (at + i, p)))
                .min_by_key(|(i, p)| (*i, std::cmp::Reverse(p.len())));
            let Some((start, p)) = found else { break };
            let end = start + p.len();
            let whole = (!word(p.chars().next()) || !word(text[..start].chars().next_back()))
                && (!word(p.chars().next_back()) || !word(text[end..].chars().next()));
            if whole {
                out.push_str(&text[done..start]);
                out.push_str(MASK);
                done = end;
                at = end;
            } else {
                at = start + text[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
        if done == 0 {
            return Cow::Borrowed(text);
        }
        out.push_str(&text[done..]);
        Cow::Owned(out)
    }
}

/// The secrets of an app, read and decrypted.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// By top-level name.
    pub values: BTreeMap<String, Value>,
}

impl Resolved {
    pub fn redactor(&self) -> Redactor {
        Redactor::new(self.values.values())
    }
}

/// The secrets file of `app`: `x-cove.secrets_file`, else
/// `cove.secrets.yaml` (`cove.secrets.ENV.yaml` with an environment), in
/// the project directory.
pub fn secrets_file(app: &App, project_dir: &Path) -> PathBuf {
    let name = app
        .x_cove
        .secrets_file
        .clone()
        .unwrap_or_else(|| default_file_name(app.x_cove.env.as_deref()));
    project_dir.join(name)
}

/// Where a top-level secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `x-cove: {store: NAME}`.
    Store(String),
    /// `file:` (absolute after loading).
    File(PathBuf),
    /// Anything cove cannot read natively, with why.
    Unsupported(String),
}

/// Where the top-level secret `def` takes its value.
pub fn source(def: &Json) -> Source {
    if let Some(store) = def
        .get("x-cove")
        .and_then(|x| x.get("store"))
        .and_then(Json::as_str)
    {
        return Source::Store(store.to_string());
    }
    if let Some(file) = def.get("file").and_then(Json::as_str) {
        return Source::File(PathBuf::from(file));
    }
    if let Some(var) = def.get("environment").and_then(Json::as_str) {
        return Source::Unsupported(format!(
            "takes its value from the variable `{var}` (`environment:`), which the daemon does not see"
        ));
    }
    if def.get("external").is_some_and(|e| e != &Json::Bool(false)) {
        return Source::Unsupported("is `external` (made by Docker Swarm)".to_string());
    }
    Source::Unsupported("has no `file` nor `x-cove.store`".to_string())
}

/// Reads the secrets the app's services use; every problem at once.
/// `identity`: the age identity file (default: [`cove_secrets::default_identity_path`]).
pub fn resolve(
    app: &App,
    project_dir: &Path,
    identity: Option<&Path>,
) -> Result<Resolved, Vec<PlanError>> {
    let used: std::collections::BTreeSet<&str> = app
        .services
        .values()
        .flat_map(|s| s.secrets.iter().map(|r| r.source.as_str()))
        .collect();
    let mut errors = Vec::new();
    let mut resolved = Resolved::default();
    let file_path = secrets_file(app, project_dir);
    let mut store: Option<Result<(SecretsFile, Identity), cove_secrets::Error>> = None;
    for name in used {
        let err = |message: String, hint: String| PlanError {
            service: String::new(),
            message: format!("secret `{name}` {message}"),
            hint,
            field: vec!["secrets".into(), name.to_string()],
            machine: false,
            written: false,
        };
        let Some(def) = app.secrets.get(name) else {
            continue;
        };
        match source(def) {
            Source::Store(key) if !file_path.is_file() => errors.push(err(
                format!(
                    "(`{key}` in the store): {} does not exist",
                    file_path.display()
                ),
                format!(
                    "create it with `cove secrets init` (`cove --env NAME secrets init` for an environment), then `cove secrets set {key}`"
                ),
            )),
            Source::Store(key) => {
                let opened = store.get_or_insert_with(|| {
                    let file = SecretsFile::load(&file_path)?;
                    let id = match identity {
                        Some(p) => Identity::load(p)?,
                        None => Identity::load(&cove_secrets::default_identity_path()?)?,
                    };
                    Ok((file, id))
                });
                match opened {
                    Ok((file, id)) => match file.get(&key, id) {
                        Ok(v) => {
                            resolved
                                .values
                                .insert(name.to_string(), Value::new(v.to_vec()));
                        }
                        Err(e) => errors.push(store_error(name, &key, &e)),
                    },
                    Err(e) => errors.push(store_error(name, &key, e)),
                }
            }
            Source::File(path) => match fs_err::read(&path) {
                Ok(v) => {
                    resolved.values.insert(name.to_string(), Value::new(v));
                }
                Err(e) => errors.push(err(
                    format!("cannot be read: {e}"),
                    "check the path of its `file:` (relative to the project directory)".into(),
                )),
            },
            Source::Unsupported(why) => errors.push(err(
                why,
                format!(
                    "keep it encrypted in the project: `cove secrets set {}`, then `x-cove: {{store: {}}}` on the secret",
                    name.to_uppercase(),
                    name.to_uppercase()
                ),
            )),
        }
    }
    if errors.is_empty() {
        Ok(resolved)
    } else {
        Err(errors)
    }
}

fn store_error(name: &str, key: &str, e: &cove_secrets::Error) -> PlanError {
    PlanError {
        service: String::new(),
        message: format!("secret `{name}` (`{key}` in the store): {e}"),
        hint: e
            .hint()
            .unwrap_or_else(|| "`cove secrets ls` lists what the file holds".into()),
        field: vec!["secrets".into(), name.to_string()],
        machine: false,
        written: false,
    }
}

/// The base of every replica's secrets directory for a project whose
/// state is in `state_dir`, on a tmpfs when there is one: `/run/cove/TAG`
/// for root when `/run` is a tmpfs (root's alone: nobody else can make
/// anything there), else `$XDG_RUNTIME_DIR/cove/TAG`, else
/// `/dev/shm/cove-UID/TAG`, else `STATE_DIR/run/secrets`. TAG is a hash of
/// the state directory. Every directory from `cove` down is made and
/// checked by [`write_dir`] (see [`crate::private::Dir`]).
pub fn root(state_dir: &Path) -> PathBuf {
    let (anchor, rel) = base(state_dir);
    anchor.join(rel)
}

/// [`root`] as its anchor (a directory cove does not make) and the chain
/// below it.
fn base(state_dir: &Path) -> (PathBuf, PathBuf) {
    let tag = format!(
        "{:08x}",
        crate::fnv::fnv(state_dir.as_os_str().as_encoded_bytes().iter().copied())
    );
    let uid = rustix::process::geteuid();
    let run = Path::new("/run");
    if uid.is_root() && is_tmpfs(run) {
        return (run.to_path_buf(), Path::new("cove").join(tag));
    }
    if let Some(d) = runtime_dir() {
        return (d, Path::new("cove").join(tag));
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        return (
            shm.to_path_buf(),
            Path::new(&format!("cove-{}", uid.as_raw())).join(tag),
        );
    }
    (state_dir.to_path_buf(), PathBuf::from("run/secrets"))
}

fn runtime_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute() && d.is_dir())
}

fn is_tmpfs(dir: &Path) -> bool {
    const TMPFS_MAGIC: u64 = 0x0102_1994;
    rustix::fs::statfs(dir).is_ok_and(|s| s.f_type as u64 == TMPFS_MAGIC)
}

/// A replica's secrets directory (a child of a [`root`]) as the anchor it
/// hangs from and the chain below it: one of `root`'s anchors when it is
/// under one, else its grandparent (made when missing).
fn split(dir: &Path) -> std::io::Result<(crate::private::Dir, PathBuf)> {
    let uid = rustix::process::geteuid();
    let mut anchors: Vec<(PathBuf, String)> = Vec::new();
    if uid.is_root() {
        anchors.push(("/run".into(), "cove".into()));
    }
    if let Some(d) = runtime_dir() {
        anchors.push((d, "cove".into()));
    }
    anchors.push(("/dev/shm".into(), format!("cove-{}", uid.as_raw())));
    for (anchor, first) in anchors {
        if let Ok(rel) = dir.strip_prefix(&anchor)
            && rel.components().next() == Some(Component::Normal(first.as_ref()))
        {
            return Ok((crate::private::Dir::anchor(&anchor)?, rel.to_path_buf()));
        }
    }
    let name = |p: &Path| p.file_name().map(PathBuf::from);
    let (Some(parent), Some(leaf)) = (dir.parent(), name(dir)) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is no replica's secrets directory", dir.display()),
        ));
    };
    let (Some(anchor), Some(mid)) = (parent.parent(), name(parent)) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is no replica's secrets directory", dir.display()),
        ));
    };
    fs_err::create_dir_all(anchor)?;
    Ok((crate::private::Dir::anchor(anchor)?, mid.join(leaf)))
}

/// Where a secret's target goes inside a replica's directory: under
/// `/run/secrets/` as it is, an absolute path whole, a relative one as is.
/// `None` when it leaves the directory (`..`).
pub fn file_in_dir(target: &str) -> Option<PathBuf> {
    let rel = target
        .strip_prefix("/run/secrets/")
        .unwrap_or(target)
        .trim_start_matches('/');
    let p = PathBuf::from(rel);
    let fine = !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    fine.then_some(p)
}

/// A secret's `mode` (a number as YAML reads `0440`, or an octal string),
/// default 0400.
pub fn mode_of(mode: Option<&Json>) -> Result<u32, String> {
    match mode {
        None => Ok(0o400),
        Some(Json::Number(n)) => n
            .as_u64()
            .filter(|m| *m <= 0o777)
            .map(|m| m as u32)
            .ok_or_else(|| format!("mode {n} is not a file mode")),
        Some(Json::String(s)) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| format!("mode `{s}` is not an octal file mode")),
        Some(other) => Err(format!("mode {other} is not a file mode")),
    }
}

/// Writes a replica's secrets into `dir` (made 0700, emptied first).
/// The directory is removed when the returned guard goes.
///
/// Every directory from the anchor down (see [`root`]) is opened without
/// following links and checked to be ours, then made 0700 through its
/// handle, before anything is removed or written: a directory or a link
/// planted by another user is refused (naming it), never followed.
pub fn write_dir(dir: &Path, mounts: &[Mount]) -> std::io::Result<DirGuard> {
    use std::io::Write;
    let (anchor, rel) = split(dir)?;
    let (Some(parent_rel), Some(name)) = (rel.parent(), rel.file_name()) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is no replica's secrets directory", dir.display()),
        ));
    };
    let parent = anchor.chain(parent_rel, true)?.expect("made when missing");
    // A leftover of an instance that did not end cleanly.
    parent.remove(name)?;
    let own = parent.child(name, true)?.expect("made when missing");
    let guard = DirGuard {
        parent,
        name: name.to_os_string(),
    };
    for m in mounts {
        let (Some(sub), Some(file)) = (m.file.parent(), m.file.file_name()) else {
            continue;
        };
        let here = own.chain(sub, true)?.expect("made when missing");
        let mut f = here.new_file(file, m.mode)?;
        f.write_all(m.value.bytes())?;
    }
    Ok(guard)
}

/// Removes a replica's secrets directory when dropped (through the handle
/// of the directory above it, checked when it was made).
#[derive(Debug)]
pub struct DirGuard {
    parent: crate::private::Dir,
    name: std::ffi::OsString,
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = self.parent.remove(&self.name);
    }
}

/// Removes a directory of secrets (a [`root`], or a replica's), if it is
/// there: only once the chain of directories above it is checked (ours,
/// no links), and without following a link inside it.
pub fn remove_all(dir: &Path) -> std::io::Result<()> {
    let (anchor, rel) = split(dir)?;
    let (Some(parent_rel), Some(name)) = (rel.parent(), rel.file_name()) else {
        return Ok(());
    };
    match anchor.chain(parent_rel, false)? {
        Some(parent) => parent.remove(name),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Secret `db` at /run/secrets/db holding `value`.
    fn db_secret(value: &[u8]) -> Mount {
        Mount {
            name: "db".into(),
            target: "/run/secrets/db".into(),
            file: "db".into(),
            mode: 0o400,
            env: None,
            value: Value::new(value.to_vec()),
        }
    }

    #[test]
    fn redactor_scrubs_whole_values_and_their_lines() {
        let pem = Value::new(b"-----BEGIN KEY-----\nAAAAbase64line\n-----END KEY-----\n".to_vec());
        let pw = Value::new(b"s3cret-pw\n".to_vec());
        let short = Value::new(b"abc".to_vec());
        let r = Redactor::new([&pem, &pw, &short]);
        assert_eq!(r.scrub("password=s3cret-pw;"), "password=***;");
        assert_eq!(r.scrub("line AAAAbase64line"), "line ***");
        assert_eq!(r.scrub("abc stays"), "abc stays");
        assert!(matches!(r.scrub("nothing here"), Cow::Borrowed(_)));
        assert_eq!(r.scrub_owned("token s3cret-pw".into()), "token ***");
        assert_eq!(r.scrub_owned("nothing here".into()), "nothing here");
        assert_eq!(format!("{pw:?}"), "Value(*** 10 bytes)");
        assert!(!format!("{r:?}").contains("s3cret"));
    }

    #[test]
    fn targets_map_into_the_replica_directory() {
        assert_eq!(file_in_dir("/run/secrets/db"), Some(PathBuf::from("db")));
        assert_eq!(
            file_in_dir("/etc/ssl/key.pem"),
            Some(PathBuf::from("etc/ssl/key.pem"))
        );
        assert_eq!(file_in_dir("/run/secrets/../x"), None);
        assert_eq!(file_in_dir("/"), None);
        assert_eq!(mode_of(None), Ok(0o400));
        assert_eq!(mode_of(Some(&Json::from(0o440))), Ok(0o440));
        assert_eq!(mode_of(Some(&Json::from("0440"))), Ok(0o440));
        assert!(mode_of(Some(&Json::from("rw"))).is_err());
    }

    #[test]
    fn a_planted_link_is_refused_and_nothing_behind_it_touched() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        // The victim: another program's data directory, named as the
        // replica's secrets directory is below the link.
        let victim = tmp.path().join("data");
        fs_err::create_dir_all(victim.join("web-1")).unwrap();
        fs_err::write(victim.join("web-1/PG_VERSION"), "16").unwrap();
        fs_err::set_permissions(&victim, std::fs::Permissions::from_mode(0o750)).unwrap();
        let mounts = vec![db_secret(b"pw")];
        // A link in the chain (the project's directory): refused.
        let root = tmp.path().join("root");
        std::os::unix::fs::symlink(&victim, &root).unwrap();
        let e = write_dir(&root.join("web-1"), &mounts)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&*root.to_string_lossy())
                && e.contains("symbolic link")
                && e.contains("hint:"),
            "{e}"
        );
        let e = remove_all(&root.join("web-1")).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(remove_all(&root).is_ok(), "the link itself may go");
        assert!(
            victim.join("web-1/PG_VERSION").is_file(),
            "the victim survives"
        );
        assert!(
            !victim.join("web-1/db").exists(),
            "nothing written through the link"
        );
        assert_eq!(
            fs_err::metadata(&victim).unwrap().permissions().mode() & 0o777,
            0o750,
            "not chmodded through the link"
        );
        // A link as the replica's own directory: removed as a link, not
        // followed; the directory made in its place.
        fs_err::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(victim.join("web-1"), root.join("web-1")).unwrap();
        let guard = write_dir(&root.join("web-1"), &mounts).unwrap();
        assert!(victim.join("web-1/PG_VERSION").is_file());
        assert!(
            !fs_err::symlink_metadata(root.join("web-1"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        drop(guard);
        assert!(victim.join("web-1/PG_VERSION").is_file());
    }

    /// As `/dev/shm/cove-0` planted by another user (world-writable, with
    /// the replica's directory made in it): runs wherever the tests run as
    /// root, whatever `/run` is (the integration attack needs `/run` not to
    /// be a tmpfs to reach the `/dev/shm` fallback).
    #[test]
    fn a_directory_planted_by_another_user_is_refused_and_nothing_in_it_touched() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        if !rustix::process::geteuid().is_root() {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(!ci, "this test runs as root in CI (it chowns to uid 65534)");
            eprintln!("SKIPPED: needs root (it plants a directory owned by uid 65534)");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        // The anchor, as /dev/shm: everyone's, with the sticky bit.
        let shm = tmp.path().join("shm");
        fs_err::create_dir(&shm).unwrap();
        fs_err::set_permissions(&shm, std::fs::Permissions::from_mode(0o1777)).unwrap();
        // What uid 65534 planted: the chain's first directory (0777) and
        // the replica's directory in it, with a file of its own.
        let planted = shm.join("cove-0");
        let replica = planted.join("web-1");
        fs_err::create_dir_all(&replica).unwrap();
        fs_err::write(replica.join("keep"), "theirs").unwrap();
        for p in [&planted, &replica, &replica.join("keep")] {
            std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
        }
        fs_err::set_permissions(&planted, std::fs::Permissions::from_mode(0o777)).unwrap();
        let modes = |ps: [&Path; 2]| {
            ps.map(|p| {
                let m = fs_err::metadata(p).unwrap();
                (m.uid(), m.permissions().mode() & 0o7777)
            })
        };
        let before = modes([&planted, &replica]);
        assert_eq!(before[0], (65534, 0o777));
        let mounts = vec![db_secret(b"pw-7d1")];
        let e = write_dir(&replica, &mounts).unwrap_err().to_string();
        assert!(
            e.contains(&*planted.to_string_lossy())
                && e.contains("uid 65534")
                && e.contains("hint:"),
            "{e}"
        );
        let e = remove_all(&replica).unwrap_err().to_string();
        assert!(e.contains("uid 65534"), "{e}");
        // Nothing removed, written, chmodded or chowned through it.
        assert_eq!(
            fs_err::read_to_string(replica.join("keep")).unwrap(),
            "theirs"
        );
        assert!(!replica.join("db").exists(), "nothing written in it");
        assert_eq!(modes([&planted, &replica]), before, "owners and modes");
    }

    #[test]
    fn written_files_are_private_and_go_with_the_guard() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("root").join("web-1");
        let mounts = vec![
            Mount {
                name: "db".into(),
                target: "/run/secrets/db".into(),
                file: "db".into(),
                mode: 0o400,
                env: None,
                value: Value::new(b"pw".to_vec()),
            },
            Mount {
                name: "key".into(),
                target: "/etc/ssl/key.pem".into(),
                file: "etc/ssl/key.pem".into(),
                mode: 0o440,
                env: None,
                value: Value::new(b"KEY".to_vec()),
            },
        ];
        let guard = write_dir(&dir, &mounts).unwrap();
        let mode = |p: &Path| fs_err::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("db")), 0o400);
        assert_eq!(mode(&dir.join("etc/ssl/key.pem")), 0o440);
        assert_eq!(fs_err::read(dir.join("db")).unwrap(), b"pw");
        // Written again over a leftover directory.
        std::mem::forget(guard);
        let guard = write_dir(&dir, &mounts).unwrap();
        drop(guard);
        assert!(!dir.exists());
    }
}
