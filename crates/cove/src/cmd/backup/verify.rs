//! `cove backup verify [ID | --latest] [SERVICE…]`: the restore drill.
//! Each backup is read back and checked (every blob against its hash and
//! MAC: a damaged one is named by its file), restored into a scratch
//! instance of the service's recipe ([`super::scratch`]: its own
//! directory under `<state dir>/drill`, a free loopback port, never the
//! running service), and checked:
//!
//! - PostgreSQL: every table's row count and checksum, compared with the
//!   figures recorded at the backup inside the dump's own snapshot; a
//!   table that differs is named.
//! - MariaDB: the dump loads without error; each table's `COUNT(*)` and
//!   `CHECKSUM TABLE … EXTENDED` are recorded with the verification (the
//!   source's cannot be taken at `--single-transaction`'s point without a
//!   lock on a busy server).
//! - Redis: the RDB loads (Redis checks its CRC64); key counts and `DEBUG
//!   DIGEST` are recorded with the verification.
//! - Then the service's `x-cove.backup.verify.command`, if any, against the
//!   scratch instance (`COVE_VERIFY_HOST`, `COVE_VERIFY_PORT`,
//!   `COVE_VERIFY_USER`, `COVE_VERIFY_PASSWORD`, `COVE_VERIFY_DATABASE`).
//!
//! Backups of the other methods (lmdb, files, rabbitmq-definitions,
//! mariabackup, pg_basebackup, command) are restored into a directory and
//! checked there ([`super::offline`]).
//!
//! A backup that passes is marked verified (`verified=TIME` on its
//! snapshot, the drill's figures in its description); the figures are
//! printed. Any failure: exit 1, naming what failed. The scratch instance
//! and its files go in every case.

use std::process::{Command, Stdio};

use cove_backup::{Backup, Store};
use cove_runtime::recipe::Recipe;
use cove_spec::Project;
use cove_spec::xcove::{StringOrList, Verify};

use super::figures::{Drill, Figures, Recorded, differences};
use super::scratch::{Account, Instance, claim, sweep};
use super::{Failure, offline, open_all, short, state_dir};
use cove_spec::xcove::BackupMethod as Method;

/// The recipe whose scratch instance restores a method's backups.
pub(super) fn recipe_of(method: &str) -> Result<(Method, Recipe), Failure> {
    match super::method::from_name(method) {
        Some(Method::PgDump) => Ok((Method::PgDump, Recipe::Postgres)),
        Some(Method::MariadbDump) => Ok((Method::MariadbDump, Recipe::Mariadb)),
        Some(Method::RedisRdb) => Ok((Method::RedisRdb, Recipe::Redis)),
        _ => Err(Failure::new(format!(
            "backups made with `{method}` have no restore drill yet"
        ))
        .hint(
            "drills with a scratch server exist for pg_dump, mariadb-dump and redis-rdb backups",
        )),
    }
}

/// The backups `verify` drills: `args` are ids (or prefixes) and service
/// names; none: the newest of every service; `--latest`: the newest of
/// the named services, else the newest of all.
fn chosen(
    project: &Project,
    all: &[Backup],
    args: &[String],
    latest: bool,
) -> Result<Vec<Backup>, Failure> {
    let (services, ids): (Vec<&String>, Vec<&String>) = args
        .iter()
        .partition(|a| project.app.services.contains_key(a.as_str()));
    let mut out: Vec<Backup> = Vec::new();
    for id in ids {
        let found: Vec<&Backup> = all
            .iter()
            .filter(|b| b.id.starts_with(id.as_str()))
            .collect();
        match found.as_slice() {
            [b] => out.push((*b).clone()),
            [] => {
                return Err(Failure::new(format!("no backup or service `{id}`"))
                    .hint("give a backup's id (`cove backup ls`) or a service's name"));
            }
            _ => {
                return Err(Failure::new(format!(
                    "`{id}` names more than one backup: give more of its id"
                )));
            }
        }
    }
    let newest_of = |s: &str| all.iter().rfind(|b| b.meta.service == s).cloned();
    for s in &services {
        out.push(newest_of(s).ok_or_else(|| {
            Failure::new(format!("no backup of `{s}`"))
                .hint(format!("take one with `cove backup {s}`"))
        })?);
    }
    if args.is_empty() {
        if latest {
            out.extend(all.last().cloned());
        } else {
            let mut seen: Vec<&str> = Vec::new();
            for b in all.iter().rev() {
                if !seen.contains(&b.meta.service.as_str()) {
                    seen.push(&b.meta.service);
                    // Unnamed, a method without a drill is passed over.
                    if recipe_of(&b.meta.method).is_err() && !offline::handles(&b.meta.method) {
                        eprintln!(
                            "cove: backups of {} ({}) have no restore drill yet; passed over",
                            b.meta.service, b.meta.method
                        );
                        continue;
                    }
                    out.push(b.clone());
                }
            }
            out.reverse();
        }
    }
    Ok(out)
}

pub(super) fn verify(
    project: &Project,
    only: Option<&str>,
    args: &[String],
    latest: bool,
) -> Result<(), Failure> {
    let opened = open_all(project, only)?;
    opened.tell_failed();
    // In each target, its copies of the backups asked for (each copy is
    // drilled: each is a restore someone may need).
    let mut work: Vec<(&Store, Vec<Backup>)> = Vec::new();
    let mut first_error = None;
    for store in &opened.stores {
        let all = store.list()?;
        match chosen(project, &all, args, latest) {
            Ok(b) if !b.is_empty() => work.push((store, b)),
            Ok(_) => {}
            Err(f) => {
                first_error.get_or_insert(f);
            }
        }
    }
    if work.is_empty() {
        return Err(first_error.unwrap_or_else(|| {
            Failure::new("no backups in any target").hint("take one with `cove backup`")
        }));
    }
    let mut failed = Vec::new();
    println!(
        "{:<10} {:<16} {:<40} {:>12} {:<24} SOURCE",
        "BACKUP", "SERVICE", "TABLE", "ROWS", "CHECKSUM"
    );
    for (store, b) in work
        .iter()
        .flat_map(|(s, bs)| bs.iter().map(move |b| (*s, b)))
    {
        eprintln!(
            "cove: drilling backup {} of {} in `{}` ({}, {})",
            short(&b.id),
            b.meta.service,
            store.name(),
            b.meta.method,
            b.time
        );
        match drill(project, store, b) {
            Ok(figures) => {
                super::tell(
                    project,
                    &b.meta.service,
                    true,
                    Ok(format!(
                        "backup {} in `{}` verified",
                        short(&b.id),
                        store.name()
                    )),
                );
                print_figures(b, &figures);
                eprintln!(
                    "cove: backup {} of {} verified",
                    short(&b.id),
                    b.meta.service
                );
            }
            Err(f) => {
                super::tell(
                    project,
                    &b.meta.service,
                    true,
                    Err(format!(
                        "backup {} in `{}` failed its drill: {}",
                        short(&b.id),
                        store.name(),
                        f.message
                    )),
                );
                eprintln!(
                    "cove: backup {} of {} FAILED its drill: {}",
                    short(&b.id),
                    b.meta.service,
                    f.message
                );
                if let Some(h) = &f.hint {
                    eprintln!("  = hint: {h}");
                }
                failed.push(format!("{} ({})", short(&b.id), b.meta.service));
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "the restore drill failed for {}; not marked verified",
            failed.join(", ")
        )))
    }
}

/// One drill; the restored figures when it passed (and was marked).
fn drill(project: &Project, store: &Store, b: &Backup) -> Result<Figures, Failure> {
    if !offline::handles(&b.meta.method) {
        recipe_of(&b.meta.method)?;
    }
    let svc = project.app.services.get(&b.meta.service).ok_or_else(|| {
        Failure::new(format!(
            "backup {} is of `{}`, which is not a service of this app",
            short(&b.id),
            b.meta.service
        ))
    })?;
    let root = state_dir(project).join("drill");
    fs_err::create_dir_all(&root).map_err(|e| Failure::new(e.to_string()))?;
    // What a killed cove's drills left (server and files).
    sweep(&root, |dir| {
        if dir.join("i/data/pg").exists() {
            Recipe::Postgres
        } else {
            Recipe::Mariadb
        }
    });
    // Removed when this returns; the instance's own directory with it.
    let work = tempfile::Builder::new()
        .prefix("d")
        .tempdir_in(&root)
        .map_err(|e| {
            Failure::new(format!(
                "cannot make a directory in {}: {e}",
                root.display()
            ))
        })?;
    claim(work.path());
    if offline::handles(&b.meta.method) {
        let figures = offline::drill(store, b, work.path(), verify_command(svc).as_ref())?;
        mark(store, b, Recorded::of(b), &figures)?;
        return Ok(figures);
    }
    let (_, recipe) = recipe_of(&b.meta.method)?;
    let dump = work.path().join("stream");
    {
        let mut f = fs_err::File::create(&dump).map_err(|e| Failure::new(e.to_string()))?;
        store.restore(&b.id, &mut f)?;
    }
    let recorded = Recorded::of(b);
    let account = recorded.source.as_ref().map(|s| Account {
        user: s.user.clone(),
        database: s.database.clone(),
    });
    let rdb = (recipe == Recipe::Redis).then_some(dump.as_path());
    let inst = Instance::start(recipe, svc, &work.path().join("i"), account, rdb, false)?;
    inst.load(&dump)?;
    let figures = inst.figures()?;
    if let Some(source) = &recorded.source {
        let diff = differences(&source.figures, &figures);
        if !diff.is_empty() {
            return Err(Failure::new(format!(
                "the restored data differs from the source's at the backup: {}",
                diff.join("; ")
            )));
        }
    }
    if let Some(cmd) = verify_command(svc) {
        run_verify_command(&b.meta.service, &cmd, &inst.verify_env())?;
    }
    drop(inst);
    mark(store, b, recorded, &figures)?;
    Ok(figures)
}

/// Marks `b` verified now, the drill's figures recorded beside the
/// source's.
fn mark(store: &Store, b: &Backup, mut record: Recorded, figures: &Figures) -> Result<(), Failure> {
    let at = jiff::Timestamp::now().to_string();
    record.drill = Some(Drill {
        at: at.clone(),
        figures: figures.clone(),
    });
    store.mark_verified_described(&b.id, &at, Some(&record.to_json()))?;
    Ok(())
}

fn verify_command(svc: &cove_spec::model::Service) -> Option<StringOrList> {
    match svc.x_cove.as_ref()?.backup.as_ref()?.verify.as_ref()? {
        Verify::Full(full) => full.command.clone(),
        Verify::Schedule(_) => None,
    }
}

/// The service's own check (`x-cove.backup.verify.command`) of what a
/// drill restored, told where it is by `env`: exit 0 is good.
pub(super) fn run_verify_command(
    service: &str,
    cmd: &StringOrList,
    env: &[(String, String)],
) -> Result<(), Failure> {
    let argv = super::command::argv_of(cmd);
    let (prog, args) = argv.split_first().ok_or_else(|| {
        Failure::new(format!(
            "service `{service}`: x-cove.backup.verify.command is empty"
        ))
    })?;
    let out = Command::new(prog)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Failure::new(format!(
                "service `{service}`: cannot run x-cove.backup.verify.command `{prog}`: {e}"
            ))
        })?;
    if !out.status.success() {
        return Err(Failure::new(format!(
            "service `{service}`'s x-cove.backup.verify.command failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The figures on stdout: `SERVICE TABLE ROWS CHECKSUM`.
fn print_figures(b: &Backup, figures: &Figures) {
    let compared = Recorded::of(b).source.is_some();
    for (t, f) in figures {
        println!(
            "{:<10} {:<16} {:<40} {:>12} {:<24} {}",
            short(&b.id),
            b.meta.service,
            t,
            f.rows,
            f.sum.as_deref().unwrap_or("-"),
            if compared { "equal" } else { "recorded" }
        );
    }
    if figures.is_empty() {
        println!("{:<10} {:<16} (no tables)", short(&b.id), b.meta.service);
    }
}
