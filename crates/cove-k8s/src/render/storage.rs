//! Mounts: bind mounts and `configs` → ConfigMaps (with their content),
//! named volumes → PersistentVolumeClaims, anonymous volumes and `tmpfs`
//! → `emptyDir`.
//!
//! - A bind-mounted **file** becomes a ConfigMap of one key, mounted with
//!   `subPath` so it lands at its target without hiding the directory
//!   around it. A bind-mounted **directory** becomes one ConfigMap holding
//!   every file under it (nested directories too: `items` give each key
//!   its relative path), mounted over the target as Compose would. Text
//!   goes to `data`, anything not UTF-8 to `binaryData`. A ConfigMap
//!   holds at most 1 MiB: beyond [`MAX_FILES_BYTES`] rendering fails,
//!   naming the service, the mount and the size.
//! - A bind mount whose source does not exist (Compose would create an
//!   empty directory) becomes an `emptyDir`, with a warning; a directory
//!   bound at a recipe's data directory is data, not configuration: it
//!   becomes a claim (its content is not copied; warning).
//! - A named volume becomes a claim: a `volumeClaimTemplate` of the
//!   service's StatefulSet (each replica gets its own), or a standalone
//!   PersistentVolumeClaim for a Job. Size: the top-level volume's
//!   `x-cove: {size: 5Gi}`, default [`DEFAULT_SIZE`]; `ReadWriteOnce`.
//!   An `external` volume is an existing claim of that name.
//! - A recipe that keeps data without a volume at its data directory gets
//!   a claim there (`data`).
//! - Every pod template that mounts a rendered ConfigMap carries the hash
//!   of its content (`cove.dev/files-hash`), so a changed file rolls the
//!   workload out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cove_spec::App;
use cove_spec::model::{FileRef, Mount, MountKind};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, KeyToPath,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSpec,
    PodTemplateSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value as Json;

use super::workload::{Kind, kind};
use super::{Ctx, Options, RenderError, Rendered, network, recipes};
use crate::Object;
use crate::names::dns_label;

/// The most a ConfigMap of cove's holds (files' bytes): under the API
/// server's 1 MiB per object, with room for keys and metadata.
pub const MAX_FILES_BYTES: u64 = 900 * 1024;
/// A claim's size when the volume does not say (`x-cove: {size: ...}`).
pub const DEFAULT_SIZE: &str = "1Gi";
/// The pod template annotation that changes with the mounted files.
pub const FILES_HASH: &str = "cove.dev/files-hash";
/// The annotation of a claim cove renders on its own (a Job's): data,
/// which neither a prune nor `cove k8s delete` removes.
pub const KEEP: &str = "cove.dev/keep";
/// Bounds of a directory walk: entries and depth.
const MAX_ENTRIES: usize = 10_000;
const MAX_DEPTH: usize = 32;

/// The service's mounts: volumes of the pod and mounts of `main`.
pub(super) fn mounts(
    ctx: &Ctx,
    pod: &mut PodSpec,
    main: &mut Container,
    out: &mut Rendered,
) -> Result<(), RenderError> {
    let owner = network::pod_owner(ctx.app, ctx.name);
    let owner_kind = kind(ctx.app, owner);
    let data_dir = recipes::data_dir(ctx.svc);
    let templates: BTreeSet<String> = templates(ctx.app, ctx.opts, owner, owner_kind)?
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    for m in &ctx.svc.volumes {
        let volume_name = dns_label(&format!("{}-{}", ctx.name, m.target));
        let mut mount = VolumeMount {
            name: volume_name.clone(),
            mount_path: m.target.clone(),
            read_only: m.read_only.then_some(true),
            ..VolumeMount::default()
        };
        let source = match (m.kind, m.source.as_deref()) {
            (MountKind::Volume, Some(key)) => {
                match named_volume(ctx, key, owner_kind, &templates, out)? {
                    Named::Template(name) => {
                        mount.name = name;
                        push_mount(main, mount);
                        continue;
                    }
                    Named::Claim(claim) => Volume {
                        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                            claim_name: claim,
                            read_only: None,
                        }),
                        ..Volume::default()
                    },
                }
            }
            (MountKind::Volume, None) => Volume {
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            },
            (MountKind::Tmpfs, _) => Volume {
                empty_dir: Some(EmptyDirVolumeSource {
                    medium: Some("Memory".into()),
                    size_limit: tmpfs_size(m).map(Quantity),
                }),
                ..Volume::default()
            },
            (MountKind::Bind, Some(src)) => {
                let path = Path::new(src);
                if !path.exists() {
                    out.warnings.push(format!(
                        "{}: volumes: {src} does not exist: {} is an empty directory that goes with the pod (emptyDir); a named volume keeps data",
                        ctx.name, m.target
                    ));
                    Volume {
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Volume::default()
                    }
                } else if path.is_dir()
                    && data_dir.as_deref() == Some(m.target.as_str())
                    && owner_kind == Kind::StatefulSet
                {
                    out.warnings.push(format!(
                        "{}: volumes: {src} is bound at the data directory {}: on the cluster it is a claim of its own (`data`), the host directory's content is not copied",
                        ctx.name, m.target
                    ));
                    mount.name = recipe_claim_name(ctx.app, owner);
                    push_mount(main, mount);
                    continue;
                } else {
                    let files = read_files(ctx, "volumes", src, &m.target, path)?;
                    let (volume, sub_path) = files_volume(ctx, &volume_name, &files, None, out);
                    mount.sub_path = sub_path;
                    volume
                }
            }
            (kind, _) => {
                return Err(RenderError::new(
                    ctx.name,
                    "volumes",
                    format!(
                        "{}: a `{}` mount has no counterpart on Kubernetes",
                        m.target,
                        serde_json::to_value(kind)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    ),
                    "use a named volume, a bind-mounted file or directory, or tmpfs",
                ));
            }
        };
        push_volume(
            pod,
            Volume {
                name: volume_name,
                ..source
            },
        );
        push_mount(main, mount);
    }
    // A recipe's data directory, when nothing is mounted there.
    if let Some(dir) = &data_dir
        && !ctx.svc.volumes.iter().any(|m| &m.target == dir)
        && owner_kind == Kind::StatefulSet
    {
        push_mount(
            main,
            VolumeMount {
                name: recipe_claim_name(ctx.app, owner),
                mount_path: dir.clone(),
                ..VolumeMount::default()
            },
        );
    }
    for r in &ctx.svc.configs {
        config(ctx, r, pod, main, out)?;
    }
    Ok(())
}

/// Where a named volume's mount takes its claim from.
enum Named {
    /// A `volumeClaimTemplate` of the StatefulSet, by name.
    Template(String),
    /// A claim of this name (standalone, or external).
    Claim(String),
}

fn named_volume(
    ctx: &Ctx,
    key: &str,
    owner_kind: Kind,
    templates: &BTreeSet<String>,
    out: &mut Rendered,
) -> Result<Named, RenderError> {
    let def = ctx.app.volumes.get(key).cloned().unwrap_or(Json::Null);
    if is_external(&def) {
        let name = def.get("name").and_then(Json::as_str).unwrap_or(key);
        if !super::secrets::is_object_name(name) {
            return Err(super::secrets::bad_external(
                ctx.name,
                &format!("volumes.{key}"),
                "PersistentVolumeClaim",
                name,
            ));
        }
        return Ok(Named::Claim(name.to_string()));
    }
    let name = dns_label(key);
    if owner_kind == Kind::StatefulSet && templates.contains(&name) {
        return Ok(Named::Template(name));
    }
    // A Job (or a service whose pod is not a StatefulSet): one standalone
    // claim, shared by every Job that mounts the volume.
    let claim = claim(ctx.opts, &name, &volume_size(ctx, key)?);
    if !out
        .objects
        .iter()
        .any(|o| matches!(o, Object::PersistentVolumeClaim(c) if c.metadata.name.as_deref() == Some(&name)))
    {
        let mut claim = claim;
        claim.metadata.annotations = Some(BTreeMap::from([(KEEP.to_string(), "true".to_string())]));
        claim.metadata.labels = Some(BTreeMap::from([
            (crate::PROJECT_LABEL.to_string(), dns_label(&ctx.app.name)),
            ("app.kubernetes.io/managed-by".to_string(), "cove".to_string()),
        ]));
        out.objects.push(claim.into());
    }
    Ok(Named::Claim(name))
}

fn is_external(def: &Json) -> bool {
    def.get("external")
        .is_some_and(|e| e != &Json::Bool(false) && !e.is_null())
}

/// The claim templates of `owner`'s StatefulSet: the named volumes of the
/// services in its pod, and each recipe's data directory when no volume
/// is mounted there. Empty for anything but a StatefulSet.
pub(crate) fn claim_templates(
    app: &App,
    opts: &Options,
    owner: &str,
) -> Result<Vec<PersistentVolumeClaim>, RenderError> {
    templates(app, opts, owner, kind(app, owner))
}

fn templates(
    app: &App,
    opts: &Options,
    owner: &str,
    owner_kind: Kind,
) -> Result<Vec<PersistentVolumeClaim>, RenderError> {
    if owner_kind != Kind::StatefulSet {
        return Ok(Vec::new());
    }
    let mut out: Vec<PersistentVolumeClaim> = Vec::new();
    for name in network::group(app, owner) {
        let ctx = Ctx::new(app, opts, name);
        let svc = ctx.svc;
        let mut add = |claim_name: String, size: String| {
            if !out
                .iter()
                .any(|c| c.metadata.name.as_deref() == Some(&claim_name))
            {
                let mut c = claim(opts, &claim_name, &size);
                c.metadata.namespace = None;
                out.push(c);
            }
        };
        for m in &svc.volumes {
            if let (MountKind::Volume, Some(key)) = (m.kind, m.source.as_deref()) {
                let def = app.volumes.get(key).cloned().unwrap_or(Json::Null);
                if !is_external(&def) {
                    add(dns_label(key), volume_size(&ctx, key)?);
                }
            }
        }
        if let Some(dir) = recipes::data_dir(svc) {
            let mounted = svc.volumes.iter().find(|m| m.target == dir);
            let needs = match mounted {
                None => true,
                Some(m) => {
                    m.kind == MountKind::Bind
                        && m.source.as_deref().is_some_and(|s| Path::new(s).is_dir())
                }
            };
            if needs {
                add(recipe_claim_name(app, owner), DEFAULT_SIZE.to_string());
            }
        }
    }
    Ok(out)
}

/// The name of the claim of a recipe's data directory: `data`, unless a
/// named volume of the pod is called so.
fn recipe_claim_name(app: &App, owner: &str) -> String {
    let taken = network::group(app, owner).into_iter().any(|n| {
        app.services[n].volumes.iter().any(|m| {
            m.kind == MountKind::Volume
                && m.source.as_deref().map(dns_label).as_deref() == Some("data")
        })
    });
    if taken {
        "recipe-data".into()
    } else {
        "data".into()
    }
}

/// Whether the service's recipe data directory is on a claim (it keeps
/// data, runs in a StatefulSet, and nothing but a named volume is
/// mounted there).
pub(crate) fn recipe_data_on_claim(app: &App, name: &str) -> bool {
    let svc = &app.services[name];
    let Some(dir) = recipes::data_dir(svc) else {
        return false;
    };
    let owner = network::pod_owner(app, name);
    if kind(app, owner) != Kind::StatefulSet {
        return false;
    }
    svc.volumes
        .iter()
        .find(|m| m.target == dir)
        .is_none_or(|m| {
            m.kind != MountKind::Tmpfs && !(m.kind == MountKind::Volume && m.source.is_none())
        })
}

/// Whether the services of `owner`'s pod keep data: a recipe's server, or
/// a named volume.
pub(crate) fn keeps_data(app: &App, owner: &str) -> bool {
    network::group(app, owner).into_iter().any(|n| {
        let svc = &app.services[n];
        recipes::keeps_data(svc)
            || svc
                .volumes
                .iter()
                .any(|m| m.kind == MountKind::Volume && m.source.is_some())
    })
}

fn claim(opts: &Options, name: &str, size: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: opts.namespace.clone(),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(size.to_string()),
                )])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

/// The size of a named volume's claims: `x-cove: {size: 5Gi}` on the
/// top-level volume (a Kubernetes quantity, or a number of bytes).
fn volume_size(ctx: &Ctx, key: &str) -> Result<String, RenderError> {
    let Some(size) = ctx
        .app
        .volumes
        .get(key)
        .and_then(|d| d.get("x-cove"))
        .and_then(|x| x.get("size"))
    else {
        return Ok(DEFAULT_SIZE.to_string());
    };
    let text = match size {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        other => other.to_string(),
    };
    if is_quantity(&text) {
        Ok(text)
    } else {
        Err(RenderError::new(
            ctx.name,
            &format!("volumes.{key}.x-cove.size"),
            format!("`{text}` is not a size"),
            "write a Kubernetes quantity such as `512Mi`, `5Gi` or `1Ti`",
        ))
    }
}

/// A Kubernetes quantity of bytes: digits, an optional fraction, an
/// optional binary or decimal suffix.
fn is_quantity(s: &str) -> bool {
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(num_end);
    let num_ok = !num.is_empty()
        && num.chars().filter(|c| *c == '.').count() <= 1
        && num.chars().any(|c| c.is_ascii_digit())
        && !num.starts_with('.');
    num_ok
        && [
            "", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
        ]
        .contains(&suffix)
}

/// `tmpfs.size` in bytes (the loader writes it as text).
fn tmpfs_size(m: &Mount) -> Option<String> {
    let size = m.other.get("tmpfs")?.get("size")?;
    let text = match size {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        _ => return None,
    };
    is_quantity(&text).then_some(text)
}

/// One file of a mounted tree: its key in the ConfigMap, its path under
/// the mount, its bytes.
struct File {
    key: String,
    path: String,
    bytes: Vec<u8>,
}

/// What a mount carries: one file (mounted with `subPath`) or a tree.
enum Files {
    One(File),
    Tree(Vec<File>),
}

/// Reads what `path` holds (a file, or every file under a directory),
/// refusing more than [`MAX_FILES_BYTES`].
fn read_files(
    ctx: &Ctx,
    field: &str,
    shown: &str,
    target: &str,
    path: &Path,
) -> Result<Files, RenderError> {
    let io_err = |e: std::io::Error| {
        RenderError::new(
            ctx.name,
            field,
            format!("{shown} → {target}: {e}"),
            "check the path (relative to the project directory)",
        )
    };
    let too_big = |size: u64| {
        RenderError::new(
            ctx.name,
            field,
            format!(
                "{shown} → {target}: {} of files, more than a ConfigMap holds ({} KiB at most here; the API server takes 1 MiB per object)",
                human(size),
                MAX_FILES_BYTES / 1024
            ),
            "build the files into the image (`build:` with a Dockerfile that COPYs them), or mount a named volume and fill it",
        )
    };
    let meta = fs_err::metadata(path).map_err(io_err)?;
    if meta.is_file() {
        if meta.len() > MAX_FILES_BYTES {
            return Err(too_big(meta.len()));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "file".into());
        let bytes = fs_err::read(path).map_err(io_err)?;
        return Ok(Files::One(File {
            key: key_of(&name, &mut BTreeSet::new()),
            path: name,
            bytes,
        }));
    }
    if !meta.is_dir() {
        return Err(RenderError::new(
            ctx.name,
            field,
            format!(
                "{shown} → {target}: neither a file nor a directory (a socket or a device has no counterpart on a cluster)"
            ),
            "drop the mount from the Kubernetes rendering (an override file without it)",
        ));
    }
    let mut found: Vec<(String, PathBuf, u64)> = Vec::new();
    walk(path, "", 0, &mut found).map_err(io_err)?;
    let total: u64 = found.iter().map(|f| f.2).sum();
    if total > MAX_FILES_BYTES {
        return Err(too_big(total));
    }
    let mut keys = BTreeSet::new();
    let mut files = Vec::with_capacity(found.len());
    for (rel, abs, _) in found {
        let bytes = fs_err::read(&abs).map_err(io_err)?;
        files.push(File {
            key: key_of(&rel, &mut keys),
            path: rel,
            bytes,
        });
    }
    Ok(Files::Tree(files))
}

/// Every regular file under `dir`, sorted, with its path relative to the
/// mount; links to files are followed, links to directories are not
/// (they could loop). Bounded in entries and depth.
fn walk(
    dir: &Path,
    prefix: &str,
    depth: usize,
    found: &mut Vec<(String, PathBuf, u64)>,
) -> std::io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(std::io::Error::other(format!(
            "{}: more than {MAX_DEPTH} directories deep",
            dir.display()
        )));
    }
    let mut entries: Vec<_> = fs_err::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(fs_err::DirEntry::file_name);
    for e in entries {
        if found.len() >= MAX_ENTRIES {
            return Err(std::io::Error::other(format!(
                "more than {MAX_ENTRIES} files"
            )));
        }
        let name = e.file_name().to_string_lossy().to_string();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let link = e.file_type()?.is_symlink();
        let meta = fs_err::metadata(e.path())?;
        if meta.is_dir() {
            if !link {
                walk(&e.path(), &rel, depth + 1, found)?;
            }
        } else if meta.is_file() {
            found.push((rel, e.path(), meta.len()));
        }
    }
    Ok(())
}

/// A ConfigMap key for a relative path: characters a key may not hold
/// (`/` among them) become `_`, and a key already taken gets `.N`.
fn key_of(rel: &str, taken: &mut BTreeSet<String>) -> String {
    let base: String = rel
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = if base.chars().all(|c| c == '.') {
        format!("_{base}")
    } else {
        base
    };
    let mut key = base.clone();
    let mut n = 1;
    while taken.contains(&key) {
        key = format!("{base}.{n}");
        n += 1;
    }
    taken.insert(key.clone());
    key
}

/// A size for people: bytes, KiB or MiB.
fn human(n: u64) -> String {
    if n >= 1024 * 1024 {
        format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
    } else if n >= 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} bytes")
    }
}

/// The ConfigMap named `name` holding `files`, pushed to `out`, and the
/// volume that mounts it (with the `subPath` of a single file). `mode`:
/// the files' mode (default: the ConfigMap volume's, 0644).
fn files_volume(
    ctx: &Ctx,
    name: &str,
    files: &Files,
    mode: Option<i32>,
    out: &mut Rendered,
) -> (Volume, Option<String>) {
    let (list, sub_path): (Vec<&File>, Option<String>) = match files {
        Files::One(f) => (vec![f], Some(f.key.clone())),
        Files::Tree(fs) => (fs.iter().collect(), None),
    };
    let mut data = BTreeMap::new();
    let mut binary = BTreeMap::new();
    for f in &list {
        match std::str::from_utf8(&f.bytes) {
            Ok(text) => {
                data.insert(f.key.clone(), text.to_string());
            }
            Err(_) => {
                binary.insert(f.key.clone(), ByteString(f.bytes.clone()));
            }
        }
    }
    out.objects.push(
        ConfigMap {
            metadata: ctx.meta(name),
            data: (!data.is_empty()).then_some(data),
            binary_data: (!binary.is_empty()).then_some(binary),
            immutable: None,
        }
        .into(),
    );
    let items: Vec<KeyToPath> = list
        .iter()
        .map(|f| KeyToPath {
            key: f.key.clone(),
            path: if sub_path.is_some() {
                f.key.clone()
            } else {
                f.path.clone()
            },
            mode,
        })
        .collect();
    let volume = Volume {
        name: name.to_string(),
        config_map: Some(ConfigMapVolumeSource {
            name: name.to_string(),
            items: (!items.is_empty()).then_some(items),
            default_mode: None,
            optional: None,
        }),
        ..Volume::default()
    };
    (volume, sub_path)
}

/// A service's `configs:` entry: the top-level config's content (`file`,
/// `content`, `environment`) in a ConfigMap, mounted with `subPath` at
/// its target (`/NAME` by default, as Compose does); an `external`
/// config is an existing ConfigMap of that name, holding key NAME.
fn config(
    ctx: &Ctx,
    r: &FileRef,
    pod: &mut PodSpec,
    main: &mut Container,
    out: &mut Rendered,
) -> Result<(), RenderError> {
    let field = format!("configs.{}", r.source);
    let Some(def) = ctx.app.configs.get(&r.source) else {
        return Err(RenderError::new(
            ctx.name,
            &field,
            format!("config `{}` is not defined", r.source),
            "define it under the top-level `configs:`",
        ));
    };
    let target = match r.target.as_deref() {
        Some(t) if t.starts_with('/') => t.to_string(),
        Some(t) => format!("/{t}"),
        None => format!("/{}", r.source),
    };
    let mode =
        match &r.mode {
            None => None,
            Some(m) => Some(cove_runtime::secrets::mode_of(Some(m)).map_err(|e| {
                RenderError::new(ctx.name, &field, e, "write it in octal, e.g. 0444")
            })? as i32),
        };
    let volume_name = dns_label(&format!("{}-{}", ctx.name, target));
    let key = key_of(&r.source, &mut BTreeSet::new());
    let volume = if is_external(def) {
        let name = def.get("name").and_then(Json::as_str).unwrap_or(&r.source);
        if !super::secrets::is_object_name(name) {
            return Err(super::secrets::bad_external(
                ctx.name,
                &field,
                "ConfigMap",
                name,
            ));
        }
        Volume {
            name: volume_name.clone(),
            config_map: Some(ConfigMapVolumeSource {
                name: name.to_string(),
                items: Some(vec![KeyToPath {
                    key: key.clone(),
                    path: key.clone(),
                    mode,
                }]),
                default_mode: None,
                optional: None,
            }),
            ..Volume::default()
        }
    } else {
        let bytes = if let Some(file) = def.get("file").and_then(Json::as_str) {
            match read_files(ctx, &field, file, &target, Path::new(file))? {
                Files::One(f) => f.bytes,
                Files::Tree(_) => {
                    return Err(RenderError::new(
                        ctx.name,
                        &field,
                        format!("{file} is a directory; a config is one file"),
                        "name a file, or bind-mount the directory under `volumes`",
                    ));
                }
            }
        } else if let Some(content) = def.get("content").and_then(Json::as_str) {
            content.as_bytes().to_vec()
        } else if let Some(var) = def.get("environment").and_then(Json::as_str) {
            match std::env::var(var) {
                Ok(v) => v.into_bytes(),
                Err(_) => {
                    return Err(RenderError::new(
                        ctx.name,
                        &field,
                        format!(
                            "config `{}` takes its value from `{var}`, which is not set",
                            r.source
                        ),
                        format!("set `{var}` in the environment of `cove k8s render`"),
                    ));
                }
            }
        } else {
            return Err(RenderError::new(
                ctx.name,
                &field,
                format!(
                    "config `{}` has no `file`, `content` nor `environment`",
                    r.source
                ),
                "give it one of them",
            ));
        };
        if bytes.len() as u64 > MAX_FILES_BYTES {
            return Err(RenderError::new(
                ctx.name,
                &field,
                format!(
                    "{} of content, more than a ConfigMap holds ({} KiB at most here)",
                    human(bytes.len() as u64),
                    MAX_FILES_BYTES / 1024
                ),
                "build the file into the image",
            ));
        }
        let files = Files::One(File {
            key: key.clone(),
            path: key.clone(),
            bytes,
        });
        files_volume(ctx, &volume_name, &files, mode, out).0
    };
    push_volume(pod, volume);
    push_mount(
        main,
        VolumeMount {
            name: volume_name,
            mount_path: target,
            sub_path: Some(key),
            read_only: Some(true),
            ..VolumeMount::default()
        },
    );
    Ok(())
}

fn push_volume(pod: &mut PodSpec, v: Volume) {
    let volumes = pod.volumes.get_or_insert_with(Vec::new);
    if !volumes.iter().any(|x| x.name == v.name) {
        volumes.push(v);
    }
}

fn push_mount(main: &mut Container, m: VolumeMount) {
    main.volume_mounts.get_or_insert_with(Vec::new).push(m);
}

/// After every service: each pod template that mounts a rendered
/// ConfigMap gets the hash of their content ([`FILES_HASH`]), and a
/// named volume mounted by several pods gets a warning (each StatefulSet
/// has claims of its own: the data is not shared).
pub(super) fn project(app: &App, out: &mut Rendered) {
    let maps: BTreeMap<String, u64> = out
        .objects
        .iter()
        .filter_map(|o| match o {
            Object::ConfigMap(c) => Some((c.metadata.name.clone()?, content_hash(c))),
            _ => None,
        })
        .collect();
    for o in &mut out.objects {
        let Some(template) = pod_template_mut(o) else {
            continue;
        };
        let Some(spec) = template.spec.as_ref() else {
            continue;
        };
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut any = false;
        for v in spec.volumes.iter().flatten() {
            if let Some(hash) = v.config_map.as_ref().and_then(|c| maps.get(&c.name)) {
                any = true;
                h = fnv64(h, &hash.to_le_bytes());
            }
        }
        if any {
            template
                .metadata
                .get_or_insert_with(ObjectMeta::default)
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(FILES_HASH.to_string(), format!("{h:016x}"));
        }
    }
    // Named volumes used by several pods.
    let mut users: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, svc) in &app.services {
        for m in &svc.volumes {
            if let (MountKind::Volume, Some(key)) = (m.kind, m.source.as_deref())
                && !app.volumes.get(key).is_some_and(is_external)
            {
                users
                    .entry(key)
                    .or_default()
                    .insert(network::pod_owner(app, name));
            }
        }
    }
    for (key, owners) in users {
        let sets: Vec<&str> = owners
            .iter()
            .copied()
            .filter(|o| kind(app, o) == Kind::StatefulSet)
            .collect();
        if owners.len() > 1 && !sets.is_empty() {
            let list: Vec<&str> = owners.iter().copied().collect();
            out.warnings.push(format!(
                "volume `{key}` is mounted by {}: on Kubernetes each StatefulSet has ReadWriteOnce claims of its own, so they do not share its data (run them in one pod with `network_mode: service:NAME`, or share it through a service)",
                list.join(", ")
            ));
        }
    }
}

/// The pod template of a workload object.
pub(super) fn pod_template_mut(o: &mut Object) -> Option<&mut PodTemplateSpec> {
    match o {
        Object::Deployment(d) => d.spec.as_mut().map(|s| &mut s.template),
        Object::StatefulSet(s) => s.spec.as_mut().map(|s| &mut s.template),
        Object::Job(j) => j.spec.as_mut().map(|s| &mut s.template),
        _ => None,
    }
}

fn content_hash(c: &ConfigMap) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in c.data.iter().flatten() {
        h = fnv64(h, k.as_bytes());
        h = fnv64(h, &[0]);
        h = fnv64(h, v.as_bytes());
        h = fnv64(h, &[0]);
    }
    for (k, v) in c.binary_data.iter().flatten() {
        h = fnv64(h, k.as_bytes());
        h = fnv64(h, &[1]);
        h = fnv64(h, &v.0);
        h = fnv64(h, &[1]);
    }
    h
}

fn fnv64(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// B's test helpers: a Compose app written to a temporary directory,
/// loaded, rendered; the objects of a kind.
#[cfg(test)]
pub(crate) mod fixture {
    use std::path::Path;

    use cove_spec::App;
    use k8s_openapi::api::core::v1::PodSpec;

    use crate::Object;
    use crate::render::{Options, RenderError, Rendered, render};

    /// Writes `files` (path, content) into a temporary directory (the
    /// first is the compose file) and loads the app.
    pub fn load(files: &[(&str, &[u8])]) -> (tempfile::TempDir, App) {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let p = dir.path().join(path);
            fs_err::create_dir_all(p.parent().unwrap()).unwrap();
            fs_err::write(&p, content).unwrap();
        }
        let app = load_file(&dir.path().join(files[0].0));
        (dir, app)
    }

    pub fn load_file(file: &Path) -> App {
        let opts = cove_spec::Options {
            files: vec![file.to_path_buf()],
            ..cove_spec::Options::default()
        };
        match cove_spec::load(&opts) {
            Ok(p) => p.app,
            Err(f) => panic!("{}", f.render(&cove_spec::Style::plain())),
        }
    }

    pub fn rendered(app: &App) -> Rendered {
        try_render(app, &Options::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_render(app: &App, opts: &Options) -> Result<Rendered, RenderError> {
        render(app, opts)
    }

    /// The object `Kind/name`.
    pub fn get<'a>(r: &'a Rendered, id: &str) -> &'a Object {
        r.objects.iter().find(|o| o.id() == id).unwrap_or_else(|| {
            let ids: Vec<String> = r.objects.iter().map(Object::id).collect();
            panic!("no {id} among {ids:?}")
        })
    }

    /// The pod spec of a workload object.
    pub fn pod(o: &Object) -> &PodSpec {
        let t = match o {
            Object::Deployment(d) => &d.spec.as_ref().unwrap().template,
            Object::StatefulSet(s) => &s.spec.as_ref().unwrap().template,
            Object::Job(j) => &j.spec.as_ref().unwrap().template,
            other => panic!("{} is no workload", other.id()),
        };
        t.spec.as_ref().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ConfigMap, Volume};

    use super::fixture::{get, load, pod, rendered, try_render};
    use super::*;
    use crate::render::Options;

    fn config_map(o: &Object) -> &ConfigMap {
        match o {
            Object::ConfigMap(c) => c,
            other => panic!("{} is no ConfigMap", other.id()),
        }
    }

    fn volume<'a>(pod: &'a PodSpec, name: &str) -> &'a Volume {
        pod.volumes
            .iter()
            .flatten()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no volume {name} in {:?}", pod.volumes))
    }

    fn mount<'a>(pod: &'a PodSpec, target: &str) -> &'a VolumeMount {
        pod.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == target)
            .unwrap_or_else(|| panic!("nothing mounted at {target}"))
    }

    #[test]
    fn bind_mounted_files_and_directories_arrive_with_their_content() {
        let (_dir, app) = load(&[
            (
                "compose.yaml",
                b"services:\n  web:\n    image: nginx\n    volumes:\n      - ./nginx.conf:/etc/nginx/nginx.conf:ro\n      - ./site:/usr/share/nginx/html\n",
            ),
            ("nginx.conf", b"events {}\n"),
            ("site/index.html", b"<h1>hi</h1>\n"),
            ("site/img/logo.png", b"\x89PNG\r\n\x1a\n\xff\xfe"),
            ("site/a b.txt", b"spaces\n"),
        ]);
        let r = rendered(&app);
        let web = get(&r, "Deployment/web");
        let p = pod(web);

        // The file: one key, mounted with subPath, read-only.
        let conf = mount(p, "/etc/nginx/nginx.conf");
        assert_eq!(conf.sub_path.as_deref(), Some("nginx.conf"));
        assert_eq!(conf.read_only, Some(true));
        let v = volume(p, &conf.name);
        let cm_name = &v.config_map.as_ref().unwrap().name;
        let cm = config_map(get(&r, &format!("ConfigMap/{cm_name}")));
        assert_eq!(
            cm.data.as_ref().unwrap()["nginx.conf"],
            "events {}\n",
            "{cm:?}"
        );

        // The directory: every file, nested ones at their paths, the
        // binary one in binaryData; mounted over the target (no subPath).
        let site = mount(p, "/usr/share/nginx/html");
        assert_eq!(site.sub_path, None);
        assert_eq!(site.read_only, None);
        let v = volume(p, &site.name).config_map.as_ref().unwrap();
        let cm = config_map(get(&r, &format!("ConfigMap/{}", v.name)));
        let data = cm.data.as_ref().unwrap();
        assert_eq!(data["index.html"], "<h1>hi</h1>\n");
        assert_eq!(data["a_b.txt"], "spaces\n");
        let bin = cm.binary_data.as_ref().unwrap();
        assert_eq!(bin["img_logo.png"].0, b"\x89PNG\r\n\x1a\n\xff\xfe");
        let paths: Vec<(&str, &str)> = v
            .items
            .iter()
            .flatten()
            .map(|i| (i.key.as_str(), i.path.as_str()))
            .collect();
        assert_eq!(
            paths,
            [
                ("a_b.txt", "a b.txt"),
                ("img_logo.png", "img/logo.png"),
                ("index.html", "index.html"),
            ]
        );
        // A Deployment (files are no data), and its pods roll when the
        // files change.
        let hash = |r: &Rendered| {
            let Object::Deployment(d) = get(r, "Deployment/web") else {
                unreachable!()
            };
            d.spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()[FILES_HASH]
                .clone()
        };
        let before = hash(&r);
        fs_err::write(_dir.path().join("site/index.html"), "<h1>changed</h1>\n").unwrap();
        assert_ne!(hash(&rendered(&app)), before);
        assert_eq!(hash(&rendered(&app)), hash(&rendered(&app)));
    }

    #[test]
    fn files_beyond_the_cap_are_refused_naming_service_mount_and_size() {
        let big = vec![b'x'; 600 * 1024];
        let (_dir, app) = load(&[
            (
                "compose.yaml",
                b"services:\n  web:\n    image: nginx\n    volumes: [\"./assets:/srv/assets\"]\n",
            ),
            ("assets/a.bin", &big),
            ("assets/b.bin", &big),
        ]);
        let e = try_render(&app, &Options::default()).unwrap_err();
        assert_eq!(e.service, "web");
        assert_eq!(e.field, "volumes");
        assert!(e.message.contains("/srv/assets"), "{e}");
        assert!(e.message.contains("assets"), "{e}");
        assert!(e.message.contains("1.2 MiB"), "{e}");
        assert!(e.hint.contains("image"), "{e}");
        // Under the cap it renders.
        fs_err::remove_file(_dir.path().join("assets/b.bin")).unwrap();
        rendered(&app);
    }

    #[test]
    fn named_volumes_become_claims_of_a_statefulset_and_the_rest_empty_dirs() {
        let (_dir, app) = load(&[(
            "compose.yaml",
            b"services:\n  store:\n    image: example/store\n    deploy: {replicas: 3}\n    volumes:\n      - data:/var/lib/store\n      - logs:/var/log/store:ro\n      - /scratch\n      - {type: tmpfs, target: /run/cache, tmpfs: {size: 1048576}}\nvolumes:\n  data:\n    x-cove: {size: 5Gi}\n  logs:\n",
        )]);
        let r = rendered(&app);
        let Object::StatefulSet(s) = get(&r, "StatefulSet/store") else {
            unreachable!()
        };
        let spec = s.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(3));
        let claims: Vec<(String, String)> = spec
            .volume_claim_templates
            .iter()
            .flatten()
            .map(|c| {
                let s = c.spec.as_ref().unwrap();
                assert_eq!(
                    s.access_modes.as_deref(),
                    Some(&["ReadWriteOnce".to_string()][..])
                );
                (
                    c.metadata.name.clone().unwrap(),
                    s.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"]
                        .0
                        .clone(),
                )
            })
            .collect();
        assert_eq!(
            claims,
            [
                ("data".into(), "5Gi".into()),
                ("logs".into(), DEFAULT_SIZE.into())
            ]
        );
        let p = pod(get(&r, "StatefulSet/store"));
        // Claim mounts name the template and have no pod volume.
        assert_eq!(mount(p, "/var/lib/store").name, "data");
        assert_eq!(mount(p, "/var/log/store").read_only, Some(true));
        assert!(p.volumes.iter().flatten().all(|v| v.name != "data"));
        let anon = volume(p, &mount(p, "/scratch").name);
        assert_eq!(anon.empty_dir, Some(EmptyDirVolumeSource::default()));
        let tmp = volume(p, &mount(p, "/run/cache").name)
            .empty_dir
            .clone()
            .unwrap();
        assert_eq!(tmp.medium.as_deref(), Some("Memory"));
        assert_eq!(tmp.size_limit, Some(Quantity("1048576".into())));
        // Nothing standalone.
        assert!(
            !r.objects
                .iter()
                .any(|o| o.kind() == "PersistentVolumeClaim")
        );
    }

    #[test]
    fn a_bad_size_is_refused_with_the_field() {
        let (_dir, app) = load(&[(
            "compose.yaml",
            b"services:\n  store:\n    image: example/store\n    volumes: [\"data:/d\"]\nvolumes:\n  data:\n    x-cove: {size: lots}\n",
        )]);
        let e = try_render(&app, &Options::default()).unwrap_err();
        assert_eq!(e.service, "store");
        assert_eq!(e.field, "volumes.data.x-cove.size");
        assert!(e.message.contains("lots"), "{e}");
    }

    #[test]
    fn jobs_mount_a_standalone_claim_and_external_volumes_an_existing_one() {
        let (_dir, app) = load(&[(
            "compose.yaml",
            b"services:\n  migrate:\n    image: example/migrate\n    restart: \"no\"\n    volumes: [\"seed_data:/seed\", \"shared:/shared\"]\nvolumes:\n  seed_data: {}\n  shared:\n    external: true\n    name: team-shared\n",
        )]);
        let r = rendered(&app);
        let p = pod(get(&r, "Job/migrate"));
        let seed = volume(p, &mount(p, "/seed").name);
        let claim = seed.persistent_volume_claim.as_ref().unwrap();
        let Object::PersistentVolumeClaim(pvc) =
            get(&r, &format!("PersistentVolumeClaim/{}", claim.claim_name))
        else {
            unreachable!()
        };
        assert_eq!(
            pvc.metadata.name.as_deref(),
            Some(dns_label("seed_data").as_str())
        );
        assert_eq!(pvc.metadata.annotations.as_ref().unwrap()[KEEP], "true");
        let shared = volume(p, &mount(p, "/shared").name);
        assert_eq!(
            shared.persistent_volume_claim.as_ref().unwrap().claim_name,
            "team-shared"
        );
        assert!(!r.objects.iter().any(|o| o.name() == "team-shared"));
    }

    #[test]
    fn configs_from_file_content_and_environment_land_at_their_targets() {
        let (_dir, app) = load(&[
            (
                "compose.yaml",
                b"services:\n  app:\n    image: example/app\n    configs:\n      - app_conf\n      - {source: motd, target: /etc/motd, mode: 0440}\n      - {source: pkg, target: etc/pkg}\nconfigs:\n  app_conf: {file: ./app.toml}\n  motd: {content: \"welcome\\n\"}\n  pkg: {environment: CARGO_PKG_NAME}\n",
            ),
            ("app.toml", b"port = 8080\n"),
        ]);
        let r = rendered(&app);
        let p = pod(get(&r, "Deployment/app"));
        let content = |target: &str| {
            let m = mount(p, target);
            assert_eq!(m.read_only, Some(true));
            let v = volume(p, &m.name).config_map.as_ref().unwrap();
            let key = m.sub_path.clone().expect("configs are files: subPath");
            let cm = config_map(get(&r, &format!("ConfigMap/{}", v.name)));
            let mode = v.items.as_ref().unwrap()[0].mode;
            (cm.data.as_ref().unwrap()[&key].clone(), mode)
        };
        assert_eq!(content("/app_conf"), ("port = 8080\n".into(), None));
        assert_eq!(content("/etc/motd"), ("welcome\n".into(), Some(0o440)));
        assert_eq!(content("/etc/pkg"), ("cove-k8s".into(), None));
    }

    #[test]
    fn a_missing_bind_source_is_an_empty_dir_with_a_warning() {
        let (_dir, app) = load(&[(
            "compose.yaml",
            b"services:\n  app:\n    image: example/app\n    volumes: [\"./uploads:/srv/uploads\"]\n",
        )]);
        // The loader may create the directory (Compose's create_host_path);
        // make sure it is not there.
        let _ = fs_err::remove_dir(_dir.path().join("uploads"));
        let r = rendered(&app);
        let p = pod(get(&r, "Deployment/app"));
        assert!(
            volume(p, &mount(p, "/srv/uploads").name)
                .empty_dir
                .is_some()
        );
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("uploads") && w.contains("emptyDir")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn a_volume_shared_by_two_statefulsets_is_a_warning() {
        let (_dir, app) = load(&[(
            "compose.yaml",
            b"services:\n  a:\n    image: example/a\n    volumes: [\"shared:/s\"]\n  b:\n    image: example/b\n    volumes: [\"shared:/s\"]\nvolumes:\n  shared: {}\n",
        )]);
        let r = rendered(&app);
        get(&r, "StatefulSet/a");
        get(&r, "StatefulSet/b");
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("volume `shared`") && w.contains("a, b")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn quantities() {
        for ok in ["1Gi", "512Mi", "1.5G", "100", "2Ti", "10k"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Gi", "1GB", "-1Gi", ".5Gi", "1..2", "lots"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
