//! Where backups go: the project's `x-cove.backup.targets` (a directory,
//! `sftp://USER@HOST[:PORT]/PATH`, `s3://BUCKET[/PREFIX]` with `endpoint`
//! and `region`), the implicit `local` (`<state dir>/backups`, unless a
//! target of that name is defined), and each service's `copies` (its own
//! `x-cove.backup.copies`, else the project's `x-cove.backup.copies`, else
//! `[local]`). `--target NAME|DIR|URL` names one target instead.
//!
//! S3 keys come from the app's secrets file, else the environment, per
//! target first: `<NAME>_AWS_ACCESS_KEY_ID` and
//! `<NAME>_AWS_SECRET_ACCESS_KEY` (NAME upper-cased, every character but a
//! letter or digit as `_`), then `AWS_ACCESS_KEY_ID` and
//! `AWS_SECRET_ACCESS_KEY`. SFTP authenticates as `ssh` does (the user's
//! keys, agent, `~/.ssh/config`, `known_hosts` checked strictly).

use std::collections::BTreeMap;

use cove_backup::{Location, S3Keys, Store};
use cove_spec::Project;

use super::{Failure, state_dir};

/// The implicit target: the repository in the state directory.
pub(super) const LOCAL: &str = "local";

/// A target, by name.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) name: String,
    pub(super) location: Location,
}

/// Every target the project defines, and `local`.
pub(super) fn defined(project: &Project) -> Result<BTreeMap<String, Target>, Failure> {
    let mut out = BTreeMap::new();
    let _ = out.insert(
        LOCAL.to_string(),
        Target {
            name: LOCAL.to_string(),
            location: Location::Dir(state_dir(project).join("backups")),
        },
    );
    if let Some(b) = &project.app.x_cove.backup {
        for (name, t) in &b.targets {
            let location = Location::parse(
                &t.url,
                t.endpoint.as_deref(),
                t.region.as_deref(),
                &project.project_dir,
            )
            .map_err(|e| {
                Failure::new(format!("x-cove.backup.targets.{name}.url: {e}"))
                    .hint("a target is `{url: DIR}`, `{url: sftp://USER@HOST[:PORT]/PATH}` or `{url: s3://BUCKET/PREFIX, endpoint: URL, region: NAME}`")
            })?;
            let _ = out.insert(
                name.clone(),
                Target {
                    name: name.clone(),
                    location,
                },
            );
        }
    }
    Ok(out)
}

/// The target `--target` names: a defined target, else a URL (`sftp://`,
/// `s3://`), else a directory (relative to the current one).
pub(super) fn given(project: &Project, given: &str) -> Result<Target, Failure> {
    if let Some(t) = defined(project)?.remove(given) {
        return Ok(t);
    }
    let base = std::env::current_dir().unwrap_or_default();
    let location = Location::parse(given, None, None, &base)
        .map_err(|e| Failure::new(format!("--target {e}")))?;
    Ok(Target {
        name: given.to_string(),
        location,
    })
}

/// The targets `--target` or the project chooses, `local` first.
pub(super) fn all(project: &Project, only: Option<&str>) -> Result<Vec<Target>, Failure> {
    if let Some(g) = only {
        return Ok(vec![given(project, g)?]);
    }
    let mut d = defined(project)?;
    let mut out: Vec<Target> = d.remove(LOCAL).into_iter().collect();
    out.extend(d.into_values());
    Ok(out)
}

/// The targets each backup of `service` is stored to, checked against the
/// defined ones.
pub(super) fn copies_of(project: &Project, service: &str) -> Result<Vec<Target>, Failure> {
    let defined = defined(project)?;
    let own = project
        .app
        .services
        .get(service)
        .and_then(|s| s.x_cove.as_ref())
        .and_then(|x| x.backup.as_ref())
        .and_then(|b| b.copies.clone());
    let (names, field) = match own {
        Some(c) => (c, format!("services.{service}.x-cove.backup.copies")),
        None => match project
            .app
            .x_cove
            .backup
            .as_ref()
            .and_then(|b| b.copies.clone())
        {
            Some(c) => (c, "x-cove.backup.copies".to_string()),
            None => (vec![LOCAL.to_string()], String::new()),
        },
    };
    if names.is_empty() {
        return Err(Failure::new(format!(
            "{field} of `{service}` is empty: its backups would go nowhere"
        ))
        .hint(format!("name one or more of: {}", names_of(&defined))));
    }
    let mut out: Vec<Target> = Vec::new();
    for n in names {
        let t = defined.get(&n).ok_or_else(|| {
            Failure::new(format!(
                "{field} of `{service}` names the target `{n}`, which is not defined"
            ))
            .hint(format!(
                "defined targets (x-cove.backup.targets, and the implicit `local`): {}",
                names_of(&defined)
            ))
        })?;
        if !out.iter().any(|o| o.name == t.name) {
            out.push(t.clone());
        }
    }
    Ok(out)
}

fn names_of(defined: &BTreeMap<String, Target>) -> String {
    defined
        .keys()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A secret of the app's secrets file, if the file holds it.
fn secret(
    project: &Project,
    name: &str,
) -> Result<Option<cove_secrets::Zeroizing<String>>, Failure> {
    let file = cove_runtime::secrets::secrets_file(&project.app, &project.project_dir);
    if !file.is_file() {
        return Ok(None);
    }
    let err = |e: cove_secrets::Error| {
        let mut f = Failure::new(format!("the secret {name} of {}: {e}", file.display()));
        if let Some(h) = e.hint() {
            f = f.hint(h);
        }
        f
    };
    let secrets = cove_secrets::SecretsFile::load(&file).map_err(err)?;
    if !secrets.contains(name) {
        return Ok(None);
    }
    let identity =
        cove_secrets::Identity::load(&cove_secrets::default_identity_path().map_err(err)?)
            .map_err(err)?;
    secrets.get_string(name, &identity).map(Some).map_err(err)
}

/// The secrets' names for target `name`'s S3 keys, per target first.
pub(super) fn s3_key_names(name: &str) -> [(String, String); 2] {
    let up: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    [
        (
            format!("{up}_AWS_ACCESS_KEY_ID"),
            format!("{up}_AWS_SECRET_ACCESS_KEY"),
        ),
        (
            "AWS_ACCESS_KEY_ID".to_string(),
            "AWS_SECRET_ACCESS_KEY".to_string(),
        ),
    ]
}

/// Target `name`'s S3 keys: the secrets file's, else the environment's.
fn s3_keys(project: &Project, name: &str) -> Result<S3Keys, Failure> {
    let names = s3_key_names(name);
    for (id, key) in &names {
        if let (Some(i), Some(k)) = (secret(project, id)?, secret(project, key)?) {
            return Ok(S3Keys {
                access_key_id: i.to_string(),
                secret_access_key: k.to_string(),
            });
        }
    }
    for (id, key) in &names {
        if let (Ok(i), Ok(k)) = (std::env::var(id), std::env::var(key)) {
            return Ok(S3Keys {
                access_key_id: i,
                secret_access_key: k,
            });
        }
    }
    Err(Failure::new(format!(
        "backup target `{name}` is in S3 and has no access key: neither {} and {} nor {} and {} are in the app's secrets file or the environment",
        names[0].0, names[0].1, names[1].0, names[1].1
    ))
    .hint(format!(
        "`cove secrets set {}` and `cove secrets set {}` (each reads the value on standard input)",
        names[0].0, names[0].1
    )))
}

/// The store of `target`, with the repository's `password`; made there
/// when `create`. `Ok(None)`: no repository there (and not `create`).
pub(super) fn open(
    project: &Project,
    target: &Target,
    password: &str,
    create: bool,
) -> Result<Option<Store>, Failure> {
    let keys = match target.location {
        Location::S3 { .. } => Some(s3_keys(project, &target.name)?),
        _ => None,
    };
    // A remote target's lock (storing and pruning exclude each other) is
    // kept here, on this host.
    let locks = super::state_dir(project).join("backup-locks");
    if create {
        return Ok(Some(
            Store::open_or_init_at(&target.name, &target.location, keys.as_ref(), password)?
                .with_lock_dir(&locks),
        ));
    }
    let store = Store::connect(&target.name, &target.location, keys.as_ref(), password)?
        .with_lock_dir(&locks);
    if store.has_repository()? {
        Ok(Some(store))
    } else {
        Ok(None)
    }
}
