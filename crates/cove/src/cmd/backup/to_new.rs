//! `cove restore SERVICE --to-new NAME`: a backup restored into a new
//! instance beside the running service, to compare with it: a server of
//! the same recipe ([`super::scratch`]) on a free loopback port, its own
//! random password, its data under `<state dir>/restored/NAME` (with
//! `instance.json`: what it is, its port and pid; and the files to
//! connect with, 0600). It runs until `cove restore --drop NAME`, which
//! stops it and deletes its directory. `cove restore --list-new` lists
//! them. `cove down` leaves them running (it says so): they are not
//! services of the app, and their data is not the app's.

use std::path::{Path, PathBuf};

use cove_runtime::recipe::Recipe;
use cove_spec::Project;

use super::figures::Recorded;
use super::scratch::{Account, Instance, alive, start_ticks, stop_group};
use super::verify::recipe_of;
use super::{Failure, find_backup, short, state_dir};
use cove_spec::xcove::BackupMethod as Method;

/// What `instance.json` holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Restored {
    pub name: String,
    pub service: String,
    pub backup: String,
    pub backup_time: String,
    pub method: String,
    pub host: String,
    pub port: u16,
    pub pid: u32,
    /// The pid's start time, so a recycled pid is never taken for it.
    pub start_ticks: Option<u64>,
    pub account: Account,
    pub started: String,
}

fn root(project: &Project) -> PathBuf {
    state_dir(project).join("restored")
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !name.starts_with('-')
}

fn write_private(path: &Path, text: &str) -> Result<(), Failure> {
    use fs_err::os::unix::fs::OpenOptionsExt as _;
    let mut f = fs_err::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Failure::new(e.to_string()))?;
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(|e| Failure::new(e.to_string()))
}

/// Restores `chosen` (a backup of `service`) into the new instance `name`.
pub(super) fn to_new(
    project: &Project,
    only: Option<&str>,
    service: &str,
    from: Option<&str>,
    name: &str,
) -> Result<(), Failure> {
    if !valid_name(name) {
        return Err(Failure::new(format!("--to-new {name}: not a name"))
            .hint("letters, digits, `-` and `_`, at most 40"));
    }
    if project.app.services.contains_key(name) {
        return Err(
            Failure::new(format!("--to-new {name}: `{name}` is a service of the app"))
                .hint(format!("choose another name, e.g. `{service}-restored`")),
        );
    }
    let svc = project.app.services.get(service).ok_or_else(|| {
        Failure::new(format!("no such service `{service}`")).hint(project.app.services_hint())
    })?;
    let dir = root(project).join(name);
    if dir.exists() {
        return Err(Failure::new(format!(
            "there is already a restored instance `{name}` ({})",
            dir.display()
        ))
        .hint(format!("drop it first: `cove restore --drop {name}`")));
    }
    let (chosen, store) = find_backup(project, only, service, from)?;
    if chosen.meta.service != service {
        return Err(Failure::new(format!(
            "backup {} is of `{}`, not `{service}`",
            short(&chosen.id),
            chosen.meta.service
        )));
    }
    let (method, recipe) = recipe_of(&chosen.meta.method)?;
    fs_err::create_dir_all(root(project)).map_err(|e| Failure::new(e.to_string()))?;
    let result = (|| {
        let stream = tempfile::Builder::new()
            .prefix(".stream-")
            .tempfile_in(root(project))
            .map_err(|e| Failure::new(format!("cannot make a temporary file: {e}")))?;
        {
            let mut f = stream.reopen().map_err(|e| Failure::new(e.to_string()))?;
            store.restore(&chosen.id, &mut f)?;
        }
        let recorded = Recorded::of(&chosen);
        let account = recorded.source.as_ref().map(|s| Account {
            user: s.user.clone(),
            database: s.database.clone(),
        });
        let rdb = (method == Method::RedisRdb).then_some(stream.path());
        let inst = Instance::start(recipe, svc, &dir, account, rdb, true)?;
        inst.load(stream.path())?;
        connect_files(&inst, &dir)?;
        let info = Restored {
            name: name.to_string(),
            service: service.to_string(),
            backup: chosen.id.clone(),
            backup_time: chosen.time.clone(),
            method: chosen.meta.method.clone(),
            host: inst.host.clone(),
            port: inst.port,
            pid: inst.pid,
            start_ticks: start_ticks(inst.pid),
            account: inst.account.clone(),
            started: jiff::Timestamp::now().to_string(),
        };
        fs_err::write(
            dir.join("instance.json"),
            serde_json::to_string_pretty(&info).unwrap_or_default(),
        )
        .map_err(|e| Failure::new(e.to_string()))?;
        inst.keep();
        Ok(info)
    })();
    let info = match result {
        Ok(i) => i,
        Err(e) => {
            let _ = fs_err::remove_dir_all(&dir);
            return Err(e);
        }
    };
    eprintln!(
        "cove: restored backup {} of {service} ({}) into `{name}`, beside the running service",
        short(&info.backup),
        info.backup_time
    );
    println!("{}", how_to_connect(project, recipe, &info));
    eprintln!("cove: stop and delete it with `cove restore --drop {name}`");
    Ok(())
}

/// The files to connect with (0600, in the instance's directory):
/// `pgpass`, `client.cnf` or `password`.
fn connect_files(inst: &Instance, dir: &Path) -> Result<(), Failure> {
    match inst.recipe {
        Recipe::Postgres => write_private(
            &dir.join("pgpass"),
            &format!(
                "{}:{}:*:{}:{}\n",
                inst.host,
                inst.port,
                inst.account.user.as_deref().unwrap_or("postgres"),
                inst.password()
            ),
        ),
        Recipe::Mariadb => write_private(&dir.join("client.cnf"), &inst.maria_options()),
        _ => write_private(&dir.join("password"), inst.password()),
    }
}

fn shown(project: &Project, p: &Path) -> String {
    p.strip_prefix(&project.project_dir)
        .map(|r| r.display().to_string())
        .unwrap_or_else(|_| p.display().to_string())
}

fn how_to_connect(project: &Project, recipe: Recipe, r: &Restored) -> String {
    let dir = root(project).join(&r.name);
    let addr = format!("{}:{}", r.host, r.port);
    let how = match recipe {
        Recipe::Postgres => format!(
            "PGPASSFILE={} psql -h {} -p {} -U {} {}",
            shown(project, &dir.join("pgpass")),
            r.host,
            r.port,
            r.account.user.as_deref().unwrap_or("postgres"),
            r.account.database.as_deref().unwrap_or("postgres")
        ),
        Recipe::Mariadb => format!(
            "mariadb --defaults-extra-file={}",
            shown(project, &dir.join("client.cnf"))
        ),
        _ => format!(
            "REDISCLI_AUTH=\"$(cat {})\" redis-cli -h {} -p {}",
            shown(project, &dir.join("password")),
            r.host,
            r.port
        ),
    };
    format!("{} at {addr}: {how}", r.name)
}

/// The restored instances, with whether each still runs.
pub(super) fn all(project: &Project) -> Vec<(Restored, bool)> {
    let Ok(entries) = fs_err::read_dir(root(project)) else {
        return Vec::new();
    };
    let mut out: Vec<(Restored, bool)> = entries
        .flatten()
        .filter_map(|e| {
            let text = fs_err::read_to_string(e.path().join("instance.json")).ok()?;
            let r: Restored = serde_json::from_str(&text).ok()?;
            let running = alive(r.pid) && start_ticks(r.pid) == r.start_ticks;
            Some((r, running))
        })
        .collect();
    out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    out
}

pub(super) fn list(project: &Project) -> Result<(), Failure> {
    println!(
        "{:<20} {:<16} {:<10} {:<22} {:<8} CONNECT",
        "NAME", "SERVICE", "BACKUP", "ADDRESS", "STATE"
    );
    for (r, running) in all(project) {
        let recipe = recipe_of(&r.method)
            .map(|(_, rc)| rc)
            .unwrap_or(Recipe::Redis);
        let connect = how_to_connect(project, recipe, &r);
        let connect = connect
            .split_once(": ")
            .map_or(connect.as_str(), |(_, c)| c);
        println!(
            "{:<20} {:<16} {:<10} {:<22} {:<8} {}",
            r.name,
            r.service,
            short(&r.backup),
            format!("{}:{}", r.host, r.port),
            if running { "running" } else { "stopped" },
            connect
        );
    }
    Ok(())
}

pub(super) fn drop_instance(project: &Project, name: &str) -> Result<(), Failure> {
    if !valid_name(name) {
        return Err(Failure::new(format!("--drop {name}: not a name")));
    }
    let dir = root(project).join(name);
    if !dir.is_dir() {
        return Err(Failure::new(format!("no restored instance `{name}`"))
            .hint("`cove restore --list-new` lists them"));
    }
    if let Some((r, running)) = all(project).into_iter().find(|(r, _)| r.name == name)
        && running
    {
        let recipe = recipe_of(&r.method)
            .map(|(_, rc)| rc)
            .unwrap_or(Recipe::Redis);
        stop_group(recipe, r.pid, None);
    }
    fs_err::remove_dir_all(&dir).map_err(|e| Failure::new(e.to_string()))?;
    eprintln!("cove: dropped the restored instance `{name}`");
    Ok(())
}

/// For `cove down`: a line naming the restored instances still running.
pub fn still_running(project: &Project) -> Option<String> {
    let names: Vec<String> = all(project)
        .into_iter()
        .filter(|(_, running)| *running)
        .map(|(r, _)| format!("{} ({}:{})", r.name, r.host, r.port))
        .collect();
    (!names.is_empty()).then(|| {
        format!(
            "restored instances still run (cove down does not stop them): {}; stop each with `cove restore --drop NAME`",
            names.join(", ")
        )
    })
}
