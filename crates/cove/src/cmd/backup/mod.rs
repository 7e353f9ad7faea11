//! `cove backup [SERVICE...]`, `cove backup ls`, `cove backup check`,
//! `cove restore SERVICE`: backups of the services' data into a restic
//! repository ([`cove_backup`]), by the method each recipe's users trust,
//! run here against the running replica at its address (the daemon says
//! where: `GET /v1/exec`, as for `cove exec`).
//!
//! | recipe | backup | restore (in place) |
//! |---|---|---|
//! | `postgres` | `pg_dump -Fc -Z0` of `POSTGRES_DB` (the repository compresses) | `pg_restore --clean --if-exists` |
//! | `mariadb` | `mariadb-dump --single-transaction --routines --events --databases` (every database but the system ones) | `mariadb` |
//! | `redis` | `BGSAVE`, then the RDB file once `LASTSAVE` changed | the replica stopped, the RDB put in its data directory, started |
//!
//! Those three are here; the others, and which one a service gets
//! (`x-cove.backup.method`), are in their own files: [`method`] (the
//! choice), [`command`] (`command`, `rabbitmq-definitions`), [`files`],
//! [`lmdb`], [`physical`] (`mariabackup`, `pg_basebackup`),
//! [`redis_cluster`] (masters of a Redis cluster, `appendonly yes`),
//! [`lifecycle`] (pause, stop, start through the daemon).
//!
//! The dump goes to a private temporary file under `<state dir>/backup-scratch`
//! first, and into the repository once its command exited 0.
//!
//! Credentials never go on a command line: PostgreSQL's password is in a
//! `PGPASSFILE`, MariaDB's in a `--defaults-extra-file`, Redis's in
//! `REDISCLI_AUTH`, each a private temporary file (or variable) gone when
//! the command ends. The repository's password is the app's secret
//! [`PASSWORD_SECRET`], made at the first backup: whoever can open the
//! secrets file can restore, nobody else.
//!
//! The repositories: each service's `copies` of the project's targets
//! ([`targets`]: directories, SFTP, S3), `local` (`<state dir>/backups`,
//! never deleted by `cove down`, even with `--volumes`) by default; or the
//! one `--target NAME|DIR|URL`. A dump is taken once and stored to each.

mod figures;
mod offline;
mod retention;
mod scratch;
mod status;
mod targets;
mod to_new;
mod verify;

pub use to_new::still_running;
pub(crate) mod fork;

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use cove_backup::{Backup, Meta, Store};
use cove_daemon::api::ExecTarget;
use cove_runtime::recipe::Recipe;
use cove_spec::Project;
use cove_spec::xcove::BackupMethod;

mod command;
mod files;
mod lifecycle;
mod lmdb;
mod method;
mod physical;
mod redis_cluster;

use method::method_of;

use crate::cli::ProjectArgs;
use crate::daemon;
use crate::output::stderr_style;

mod restore_all;
mod space;

/// The secret (in the app's secrets file) holding the backup repository's
/// password: reserved for cove.
pub const PASSWORD_SECRET: &str = "COVE_BACKUP_PASSWORD";

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
    /// Services to back up. Default: every service with a recipe that keeps
    /// data (postgres, mariadb, redis), and every one with `x-cove.backup`.
    pub services: Vec<String>,
    /// One backup target: a name under `x-cove.backup.targets` (or
    /// `local`), a directory, or an `sftp://`/`s3://` URL. Default: each
    /// service's `copies` (backup), every target (ls, check, restore).
    #[arg(long, value_name = "NAME|DIR|URL", global = true)]
    pub target: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum BackupCommand {
    /// List the backups: id, service, time, size, bytes added (after
    /// deduplication and compression), method, target.
    Ls {
        /// `table` (default) or `json`.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Read back every byte of backups (all when none named) and verify
    /// them against their hashes and MACs (`backup verify` also restores
    /// them into a scratch instance).
    Check {
        /// A backup's id (or a prefix of it).
        id: Option<String>,
        /// The newest backup.
        #[arg(long, conflicts_with = "id")]
        latest: bool,
    },
    /// The restore drill: restore backups into a scratch instance of the
    /// service's recipe, check them (row counts and checksums, keys, the
    /// service's `x-cove.backup.verify.command`), mark those that pass
    /// verified. Default: the newest backup of every service.
    Verify {
        /// Backups' ids (or prefixes), or services (their newest backup).
        #[arg(value_name = "ID|SERVICE")]
        args: Vec<String>,
        /// The newest backup (of the services named, else of all).
        #[arg(long)]
        latest: bool,
    },
    /// Apply each service's `x-cove.backup.keep` now: say which backups
    /// are removed and which kept (and why), remove them, and prune the
    /// data no backup uses any more.
    Forget {
        /// Services (default: every one with `keep`).
        services: Vec<String>,
        /// Say what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Per service: its schedule, its last scheduled backup and restore
    /// drill (when, how they ended), and the next ones.
    Status {
        /// `table` (default) or `json`.
        #[arg(long, default_value = "table")]
        format: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The service whose data is replaced (or, with --to-new, restored
    /// beside it).
    #[arg(required_unless_present_any = ["list_new", "drop", "all"])]
    pub service: Option<String>,
    /// Restore into a new instance NAME beside the running service (a
    /// server of the same recipe on a free loopback port, its data under
    /// `<state dir>/restored/NAME`), to compare; it runs until --drop NAME.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["yes", "list_new", "drop"])]
    pub to_new: Option<String>,
    /// List the instances made with --to-new.
    #[arg(long, conflicts_with = "drop")]
    pub list_new: bool,
    /// Stop the instance NAME made with --to-new and delete its data.
    #[arg(long, value_name = "NAME")]
    pub drop: Option<String>,
    /// Every service with backups, each from its newest, in dependency
    /// order (bringing the app up first when it is down), then waits until
    /// every service is ready: a host that lost its data, in one command.
    #[arg(long, conflicts_with_all = ["service", "from", "to_new", "list_new", "drop"])]
    pub all: bool,
    /// The backup (its id or a prefix). Default: the service's newest.
    #[arg(long, value_name = "ID")]
    pub from: Option<String>,
    /// Do not ask for confirmation (required without a terminal).
    #[arg(long)]
    pub yes: bool,
    /// The backup target to restore from (a name, a directory or a URL).
    /// Default: whichever target has the backup, `local` first.
    #[arg(long, value_name = "NAME|DIR|URL")]
    pub target: Option<String>,
}

/// An error for the user, with a hint.
struct Failure {
    message: String,
    hint: Option<String>,
}

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }
}

impl From<cove_backup::Error> for Failure {
    fn from(e: cove_backup::Error) -> Failure {
        // cove_backup puts its hint after the message.
        let text = e.to_string();
        match text.split_once("\n  = hint: ") {
            Some((m, h)) => Failure::new(m).hint(h),
            None => Failure::new(text),
        }
    }
}

fn report(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let style = stderr_style();
            eprintln!("{}error{}: {}", style.red, style.reset, f.message);
            if let Some(h) = f.hint {
                eprintln!("  = {}hint{}: {h}", style.cyan, style.reset);
            }
            ExitCode::from(1)
        }
    }
}

pub fn run(project_args: &ProjectArgs, args: &BackupArgs) -> anyhow::Result<ExitCode> {
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    let target = args.target.as_deref();
    Ok(report(match &args.command {
        None => backup(&project, target, &args.services),
        Some(BackupCommand::Ls { format }) => list(&project, target, format),
        Some(BackupCommand::Check { id, latest }) => {
            check(&project, target, id.as_deref(), *latest)
        }
        Some(BackupCommand::Verify { args, latest }) => {
            verify::verify(&project, target, args, *latest)
        }
        Some(BackupCommand::Forget { services, dry_run }) => {
            retention::forget(&project, target, services, *dry_run)
        }
        Some(BackupCommand::Status { format }) => status::status(&project, target, format),
    }))
}

pub fn restore_cmd(project_args: &ProjectArgs, args: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    let target = args.target.as_deref();
    if args.all {
        return Ok(report(restore_all::restore_all(
            project_args,
            &project,
            target,
            args,
        )));
    }
    Ok(report(match (&args.service, &args.to_new, &args.drop) {
        (_, _, Some(name)) => to_new::drop_instance(&project, name),
        _ if args.list_new => to_new::list(&project),
        (Some(service), Some(name), _) => {
            to_new::to_new(&project, target, service, args.from.as_deref(), name)
        }
        (Some(service), None, _) => restore(&project, service, args),
        (None, _, _) => Err(Failure::new("which service?")),
    }))
}

fn state_dir(project: &Project) -> PathBuf {
    cove_runtime::plan::state_dir(&project.app, &project.project_dir)
}

/// The repository's password from the app's secrets file; made (random)
/// and stored there at first use when `create`.
fn password(project: &Project, create: bool) -> Result<cove_secrets::Zeroizing<String>, Failure> {
    let file = cove_runtime::secrets::secrets_file(&project.app, &project.project_dir);
    let secrets_err = |e: cove_secrets::Error| {
        let mut f = Failure::new(format!(
            "the backup repository's password is the secret {PASSWORD_SECRET} of {}: {e}",
            file.display()
        ));
        if let Some(h) = e.hint() {
            f = f.hint(h);
        }
        f
    };
    if !file.is_file() {
        return Err(Failure::new(format!(
            "backups are encrypted with a password kept in the app's secrets file, and {} does not exist",
            file.display()
        ))
        .hint("make it with `cove secrets init` (its recipients are who can restore)"));
    }
    let mut secrets = cove_secrets::SecretsFile::load(&file).map_err(secrets_err)?;
    if secrets.contains(PASSWORD_SECRET) {
        let identity = cove_secrets::Identity::load(
            &cove_secrets::default_identity_path().map_err(secrets_err)?,
        )
        .map_err(secrets_err)?;
        return secrets
            .get_string(PASSWORD_SECRET, &identity)
            .map_err(secrets_err);
    }
    if !create {
        return Err(Failure::new(format!(
            "there is no {PASSWORD_SECRET} in {}: no backup was made with this secrets file",
            file.display()
        ))
        .hint("restore with the secrets file the backups were made with"));
    }
    let mut bytes = [0u8; 32];
    {
        use std::io::Read as _;
        fs_err::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(|e| Failure::new(format!("cannot make a password: {e}")))?;
    }
    let pw: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    secrets
        .set(PASSWORD_SECRET, pw.as_bytes())
        .map_err(secrets_err)?;
    secrets.save(&file).map_err(secrets_err)?;
    eprintln!(
        "cove: made the backup repository's password, kept as {PASSWORD_SECRET} in {} (commit it: without it no backup can be restored)",
        file.display()
    );
    Ok(cove_secrets::Zeroizing::new(pw))
}

/// The stores of the targets `--target` or the project chooses that hold
/// a repository, `local` first; a target that cannot be reached is in the
/// second list, with why.
fn open_all(project: &Project, only: Option<&str>) -> Result<Opened, Failure> {
    let all = targets::all(project, only)?;
    let mut opened = Opened::default();
    let mut pw = None;
    for t in all {
        if let cove_backup::Location::Dir(d) = &t.location
            && !d.join("config").is_file()
        {
            continue;
        }
        let pw = match &pw {
            Some(p) => p,
            None => pw.insert(password(project, false)?),
        };
        match targets::open(project, &t, pw, false) {
            Ok(Some(s)) => opened.stores.push(s),
            Ok(None) => {}
            Err(f) => opened.failed.push((t.name.clone(), f)),
        }
    }
    if only.is_some() && opened.stores.is_empty() && opened.failed.is_empty() {
        return Err(Failure::new(format!(
            "no backups: target `{}` holds no repository",
            only.unwrap_or_default()
        ))
        .hint("take one with `cove backup`"));
    }
    Ok(opened)
}

#[derive(Default)]
struct Opened {
    stores: Vec<Store>,
    failed: Vec<(String, Failure)>,
}

impl Opened {
    /// Says (on stderr) which targets could not be read.
    fn tell_failed(&self) {
        let style = stderr_style();
        for (name, f) in &self.failed {
            eprintln!(
                "{}error{}: target `{name}`: {}",
                style.red, style.reset, f.message
            );
            if let Some(h) = &f.hint {
                eprintln!("  = {}hint{}: {h}", style.cyan, style.reset);
            }
        }
    }

    fn result(&self) -> Result<(), Failure> {
        if self.failed.is_empty() {
            Ok(())
        } else {
            let names: Vec<&str> = self.failed.iter().map(|(n, _)| n.as_str()).collect();
            Err(Failure::new(format!(
                "could not read backup target(s): {}",
                names.join(", ")
            )))
        }
    }
}

fn is_redis_server(svc: &cove_spec::model::Service) -> bool {
    // `x-cove.run` replaces the image's program (a `redis-cli` one-shot
    // that forms a cluster, say).
    if let Some(run) = svc.x_cove.as_ref().and_then(|x| x.run.as_ref()) {
        let argv = command::argv_of(run);
        let prog = match argv.as_slice() {
            [sh, c, script] if sh == "sh" && c == "-c" => script
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
            _ => argv.first().cloned().unwrap_or_default(),
        };
        return prog.rsplit('/').next() == Some("redis-server");
    }
    let cmd = svc.command.clone().unwrap_or_default();
    let first = cmd.first().map(String::as_str);
    !(first == Some("redis-cli")
        || first == Some("redis-sentinel")
        || cmd.iter().any(|a| a == "--sentinel"))
}

/// The services `cove backup` takes by default.
fn default_services(project: &Project) -> Vec<String> {
    project
        .app
        .services
        .iter()
        .filter(|(_, svc)| {
            let recipe = matches!(
                Recipe::detect(svc),
                Some(Recipe::Postgres | Recipe::Mariadb)
            ) || (Recipe::detect(svc) == Some(Recipe::Redis) && is_redis_server(svc));
            recipe || svc.x_cove.as_ref().is_some_and(|x| x.backup.is_some())
        })
        .map(|(name, _)| name.clone())
        .collect()
}

fn meta(project: &Project, service: &str, method: BackupMethod) -> Meta {
    Meta {
        project: project.app.name.clone(),
        environment: project
            .app
            .x_cove
            .env
            .clone()
            .unwrap_or_else(|| "default".into()),
        service: service.to_string(),
        method: method::name(method).to_string(),
        cove_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// Where replica 1 of `service` runs, from the daemon.
fn replica(project: &Project, service: &str) -> Result<ExecTarget, Failure> {
    let client = daemon::find(project).map_err(|e| Failure::new(e.to_string()))?;
    replica_of(&client, service)
}

/// [`replica`], from `client`'s daemon and project.
fn replica_of(client: &cove_daemon::client::Client, service: &str) -> Result<ExecTarget, Failure> {
    let rt = daemon::runtime().map_err(|e| Failure::new(e.to_string()))?;
    let path = format!("/v1/exec?service={service}&index=1");
    let target: ExecTarget = rt.block_on(client.get(&path)).map_err(|e| match e {
        cove_daemon::client::ClientError::NotRunning => Failure::new(format!(
            "service `{service}` has no running replica: the app is not running"
        ))
        .hint(format!("start it with `cove up -d {service}`")),
        cove_daemon::client::ClientError::Api { error, .. } => Failure {
            message: error.error.clone(),
            hint: error.hint.clone(),
        },
        other => Failure::new(other.to_string()),
    })?;
    if target.container.is_some() {
        return Err(Failure::new(format!(
            "service `{service}` runs as a container: backups of containers are not built yet"
        )));
    }
    Ok(target)
}

/// A variable of the replica: its environment, a secret given as a
/// variable (read from its file), or `NAME_FILE` naming a file.
fn var(target: &ExecTarget, name: &str) -> Result<Option<String>, Failure> {
    if let Some((_, v)) = target.env.iter().find(|(k, _)| k == name) {
        return Ok(Some(v.clone()));
    }
    let file = target
        .secret_env
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, f)| f.clone())
        .or_else(|| {
            let file_var = format!("{name}_FILE");
            target
                .env
                .iter()
                .find(|(k, _)| *k == file_var)
                .map(|(_, v)| target.workdir.join(v))
        });
    match file {
        None => Ok(None),
        Some(f) => fs_err::read_to_string(&f)
            .map(|s| Some(s.trim_end_matches('\n').to_string()))
            .map_err(|e| {
                Failure::new(format!("cannot read `{name}` of the replica: {e}"))
                    .hint("run cove as the user the daemon runs as")
            }),
    }
}

fn host_port(target: &ExecTarget) -> Result<(String, String), Failure> {
    let get = |k: &str| {
        target
            .env
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| Failure::new(format!("the replica of `{}` has no {k}", target.service)))
    };
    Ok((get("HOST")?, get("PORT")?))
}

/// A private (0600) temporary file holding `content`.
fn private_file(content: &str) -> Result<tempfile::NamedTempFile, Failure> {
    let mut f = tempfile::Builder::new()
        .prefix("cove-backup-")
        .tempfile()
        .map_err(|e| Failure::new(format!("cannot make a temporary file: {e}")))?;
    f.write_all(content.as_bytes())
        .and_then(|()| f.flush())
        .map_err(|e| Failure::new(format!("cannot write a temporary file: {e}")))?;
    Ok(f)
}

fn path_env() -> (String, String) {
    ("PATH".into(), std::env::var("PATH").unwrap_or_default())
}

/// PostgreSQL's connection: user, database, and a `PGPASSFILE`.
struct Pg {
    host: String,
    port: String,
    user: String,
    db: String,
    passfile: tempfile::NamedTempFile,
}

impl Pg {
    fn of(target: &ExecTarget) -> Result<Pg, Failure> {
        let (host, port) = host_port(target)?;
        let user = var(target, "POSTGRES_USER")?.unwrap_or_else(|| "postgres".into());
        let db = var(target, "POSTGRES_DB")?.unwrap_or_else(|| user.clone());
        let password = var(target, "POSTGRES_PASSWORD")?.unwrap_or_default();
        let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
        let passfile = private_file(&format!(
            "{}:{}:*:{}:{}\n",
            esc(&host),
            port,
            esc(&user),
            esc(&password)
        ))?;
        Ok(Pg {
            host,
            port,
            user,
            db,
            passfile,
        })
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            path_env(),
            (
                "PGPASSFILE".into(),
                self.passfile.path().display().to_string(),
            ),
        ]
    }

    fn conn_args(&self) -> Vec<String> {
        [
            "-h",
            &self.host,
            "-p",
            &self.port,
            "-U",
            &self.user,
            "-d",
            &self.db,
            "--no-password",
        ]
        .map(String::from)
        .to_vec()
    }
}

/// MariaDB's connection: an option file with the account and address.
struct Maria {
    options: tempfile::NamedTempFile,
}

impl Maria {
    fn of(target: &ExecTarget) -> Result<Maria, Failure> {
        let (host, port) = host_port(target)?;
        let root = match var(target, "MARIADB_ROOT_PASSWORD")? {
            Some(p) => Some(p),
            None => var(target, "MYSQL_ROOT_PASSWORD")?,
        };
        let (user, password) = match root {
            Some(p) => ("root".to_string(), p),
            None => {
                let user = match var(target, "MARIADB_USER")? {
                    Some(u) => Some(u),
                    None => var(target, "MYSQL_USER")?,
                };
                let pw = match var(target, "MARIADB_PASSWORD")? {
                    Some(p) => Some(p),
                    None => var(target, "MYSQL_PASSWORD")?,
                };
                match (user, pw) {
                    (Some(u), Some(p)) => (u, p),
                    _ => {
                        return Err(Failure::new(format!(
                            "service `{}`: no account to dump with (MARIADB_ROOT_PASSWORD, or MARIADB_USER and MARIADB_PASSWORD)",
                            target.service
                        )));
                    }
                }
            }
        };
        let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let options = private_file(&format!(
            "[client]\nuser={}\npassword={}\nhost={}\nport={}\nprotocol=TCP\n",
            q(&user),
            q(&password),
            host,
            port
        ))?;
        Ok(Maria { options })
    }

    fn first_arg(&self) -> String {
        format!("--defaults-extra-file={}", self.options.path().display())
    }

    /// The databases to dump: all but the server's own.
    fn databases(&self) -> Result<Vec<String>, Failure> {
        let out = Command::new("mariadb")
            .arg(self.first_arg())
            .args(["-N", "-B", "-e", "SHOW DATABASES"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Failure::new(format!("cannot run `mariadb`: {e}")))?;
        if !out.status.success() {
            return Err(Failure::new(format!(
                "`mariadb` cannot list the databases: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .filter(|d| {
                !["information_schema", "performance_schema", "mysql", "sys"].contains(&d.as_str())
            })
            .collect())
    }
}

/// Redis: its address, and the password of its `--requirepass`.
struct RedisConn {
    host: String,
    port: String,
    password: Option<String>,
}

impl RedisConn {
    fn of(project: &Project, target: &ExecTarget) -> Result<RedisConn, Failure> {
        let (host, port) = host_port(target)?;
        let cmd = project
            .app
            .services
            .get(&target.service)
            .and_then(|s| s.command.clone())
            .unwrap_or_default();
        let password = cmd
            .iter()
            .position(|a| a == "--requirepass")
            .and_then(|i| cmd.get(i + 1).cloned());
        Ok(RedisConn {
            host,
            port,
            password,
        })
    }

    /// `redis-cli ARGS`' answer (the password in its environment).
    fn cli(&self, args: &[&str]) -> Result<String, Failure> {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", &self.host, "-p", &self.port, "--no-raw"])
            .args(args)
            .stdin(Stdio::null());
        if let Some(pw) = &self.password {
            cmd.env("REDISCLI_AUTH", pw);
        }
        let out = cmd
            .output()
            .map_err(|e| Failure::new(format!("cannot run `redis-cli`: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || text.starts_with("(error)") {
            return Err(Failure::new(format!(
                "`redis-cli {}` failed: {text} {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
            .hint("a password set in a configuration file is not read yet: give it as `--requirepass` in the service's command"));
        }
        Ok(text)
    }

    fn config(&self, key: &str) -> Result<String, Failure> {
        let out = self.cli(&["CONFIG", "GET", key])?;
        // `1) "dir"\n2) "/path"`
        out.lines()
            .nth(1)
            .and_then(|l| l.split_once(") "))
            .map(|(_, v)| v.trim_matches('"').to_string())
            .ok_or_else(|| Failure::new(format!("Redis did not say its `{key}`: {out}")))
    }

    fn lastsave(&self) -> Result<i64, Failure> {
        let out = self.cli(&["LASTSAVE"])?;
        out.trim_start_matches("(integer) ")
            .parse()
            .map_err(|_| Failure::new(format!("Redis's LASTSAVE is not a time: {out}")))
    }

    /// The RDB file's path, once a `BGSAVE` started now has finished.
    fn fresh_rdb(&self) -> Result<PathBuf, Failure> {
        let before = self.lastsave()?;
        // LASTSAVE counts seconds: a save in this same second would not
        // change it.
        let now = jiff::Timestamp::now().as_second();
        if before >= now {
            std::thread::sleep(Duration::from_millis(1100));
        }
        self.cli(&["BGSAVE", "SCHEDULE"])?;
        let deadline = Instant::now() + Duration::from_secs(1800);
        loop {
            if self.lastsave()? > before {
                break;
            }
            let info = self.cli(&["INFO", "persistence"])?;
            if info.contains("rdb_last_bgsave_status:err")
                && !info.contains("rdb_bgsave_in_progress:1")
            {
                return Err(Failure::new(
                    "Redis's BGSAVE failed (see its log: `cove logs`)",
                ));
            }
            if Instant::now() > deadline {
                return Err(Failure::new("Redis's BGSAVE did not finish in 30 minutes"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(PathBuf::from(self.config("dir")?).join(self.config("dbfilename")?))
    }
}

fn backup(project: &Project, only: Option<&str>, services: &[String]) -> Result<(), Failure> {
    let named = !services.is_empty();
    let services = if services.is_empty() {
        let d = default_services(project);
        if d.is_empty() {
            return Err(Failure::new(
                "no service to back up: none runs postgres, mariadb or redis, and none has `x-cove.backup`",
            ));
        }
        d
    } else {
        services.to_vec()
    };
    // Each service's method and targets, checked before anything runs.
    let mut plan: Vec<(String, BackupMethod, Vec<targets::Target>)> = Vec::new();
    for s in &services {
        let m = method_of(project, s)?;
        let copies = match only {
            Some(g) => vec![targets::given(project, g)?],
            None => targets::copies_of(project, s)?,
        };
        plan.push((s.clone(), m, copies));
    }
    let pw = password(project, true)?;
    // Each target opened once (made at its first backup); one that cannot
    // be, with why.
    let mut stores: Vec<(String, Result<Store, Failure>)> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    // Each dump is written here (private, removed once stored) before it
    // goes into the repositories.
    let scratch = state_dir(project).join("backup-scratch");
    for (service, method, copies) in plan {
        let one = backup_one(
            project,
            &service,
            method,
            &copies,
            &mut stores,
            &pw,
            &scratch,
            named,
        );
        // Told to the daemon, whose events and alerts then see it as they
        // see a scheduled backup.
        match &one {
            Ok(None) => {}
            Ok(Some(missed)) if missed.is_empty() => {
                tell(
                    project,
                    &service,
                    false,
                    Ok("stored to every target".into()),
                );
            }
            Ok(Some(missed)) => tell(
                project,
                &service,
                false,
                Err(format!("not stored to {}", missed.join(", "))),
            ),
            Err(f) => tell(project, &service, false, Err(f.message.clone())),
        }
        for target in one?.unwrap_or_default() {
            failed.push(format!("{service} to `{target}`"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "not stored: {} (every other target has its copy)",
            failed.join(", ")
        )))
    }
}

/// Backs up `service` by `method` to each of `copies` (opened into
/// `stores` as needed): the targets it was not stored to (empty when
/// every one has it), or `None` when it was passed over (a Redis cluster
/// replica, whose master's backup holds its keys).
#[allow(clippy::too_many_arguments)]
fn backup_one(
    project: &Project,
    service: &str,
    method: BackupMethod,
    copies: &[targets::Target],
    stores: &mut Vec<(String, Result<Store, Failure>)>,
    pw: &str,
    scratch: &Path,
    named: bool,
) -> Result<Option<Vec<String>>, Failure> {
    let service = service.to_string();
    let mut failed = Vec::new();
    let t = replica(project, &service)?;
    let meta = meta(project, &service, method);
    // This service's targets, opened (made at their first backup)
    // before the data is taken; one that cannot be, with why.
    for target in copies {
        if !stores.iter().any(|(n, _)| *n == target.name) {
            let opened =
                targets::open(project, target, pw, true).map(|s| s.expect("made when missing"));
            stores.push((target.name.clone(), opened));
        }
    }
    let store_of = |name: &str| &stores.iter().find(|(n, _)| n == name).expect("opened").1;
    let open_stores: Vec<&Store> = copies
        .iter()
        .filter_map(|c| store_of(&c.name).as_ref().ok())
        .collect();
    // A stream for one target goes straight into it while it is taken;
    // for several, to a private file first, then into each.
    let sink = match (copies, open_stores.as_slice()) {
        ([target], [store]) => Sink::Stream(store, target),
        _ => Sink::Scratch(scratch),
    };
    let taken = match method {
        BackupMethod::PgDump => {
            let pg = Pg::of(&t)?;
            // Uncompressed (`-Z0`): the repository compresses (zstd),
            // and an uncompressed stream deduplicates across backups.
            // The figures of the dump's snapshot go with it.
            figures::pg_backup(&meta, &pg, &sink, &service)?
        }
        BackupMethod::MariadbDump => {
            let m = Maria::of(&t)?;
            let dbs = m.databases()?;
            if dbs.is_empty() {
                return Err(Failure::new(format!(
                    "service `{service}` has no database of its own to back up"
                )));
            }
            let mut argv = vec![
                "mariadb-dump".to_string(),
                m.first_arg(),
                "--single-transaction".into(),
                "--routines".into(),
                "--events".into(),
                "--databases".into(),
            ];
            argv.extend(dbs);
            let env = [path_env()];
            // Its INSERT statements re-cut where the rows say, so that
            // a row that grew does not move every later statement (and
            // the next backup deduplicates): cove_backup::sqlsplit.
            let cmd = cove_backup::DumpCommand {
                argv: &argv,
                env: &env,
                filter: Some(|out| {
                    Box::new(cove_backup::sqlsplit::Resplit::new(
                        std::io::BufReader::with_capacity(1 << 16, out),
                    ))
                }),
            };
            sink.take(&meta, &cmd, &service, || None)?
        }
        BackupMethod::RedisRdb => {
            let r = RedisConn::of(project, &t)?;
            if let redis_cluster::Role::Replica(master) = redis_cluster::role(&r)? {
                if named {
                    return Err(redis_cluster::replica_refusal(&service, &master, false));
                }
                eprintln!(
                    "cove: {service} is a Redis cluster replica (of {master}): its master's backup holds its keys; passed over"
                );
                return Ok(None);
            }
            let rdb = r.fresh_rdb()?;
            let argv = vec!["cat".to_string(), rdb.display().to_string()];
            let env = [path_env()];
            let cmd = cove_backup::DumpCommand {
                argv: &argv,
                env: &env,
                filter: None,
            };
            sink.take(&meta, &cmd, &service, || None)?
        }
        BackupMethod::Command => {
            let spec = method::spec(project, &service).and_then(|b| b.command.as_ref());
            let argv = command::argv_of(spec.expect("checked by method_of"));
            Taken::Dump(command::backup(&meta, scratch, &t, &argv)?)
        }
        BackupMethod::RabbitmqDefinitions => {
            let (argv, _inetrc) = command::rabbitmqctl(&t, &["-q", "export_definitions", "-"])?;
            Taken::Dump(command::backup(&meta, scratch, &t, &argv)?)
        }
        BackupMethod::Lmdb => Taken::Dump(lmdb::backup(project, &meta, &t, scratch)?),
        // Trees, stored to each open target while taken.
        BackupMethod::Files => Taken::Stored(files::backup(project, &open_stores, &meta, &t)?),
        BackupMethod::Mariabackup => {
            Taken::Stored(physical::mariabackup(&open_stores, &meta, &t, scratch)?)
        }
        BackupMethod::PgBasebackup => {
            Taken::Stored(physical::pg_basebackup(&open_stores, &meta, &t, scratch)?)
        }
    };
    // A stream is stored to each target now; a tree was stored to each
    // open target already (in their order).
    let (taken_dump, mut trees) = match taken {
        Taken::Dump(d) => (Some(d), None),
        Taken::Stored(v) => (None, Some(v.into_iter())),
    };
    for target in copies {
        let store = store_of(&target.name);
        let stored = match (store, &taken_dump) {
            (Err(f), _) => Err(Failure {
                message: f.message.clone(),
                hint: f.hint.clone(),
            }),
            (Ok(store), Some(dump)) => store.store_dump(dump).map_err(|e| {
                let at = format!("`{}` ({})", target.name, target.location.url());
                space::explain(e, &service, &at, scratch)
            }),
            (Ok(_), None) => trees
                .as_mut()
                .and_then(Iterator::next)
                .unwrap_or_else(|| Err(Failure::new("not stored"))),
        };
        // Its `keep` in this target, the backup just taken kept
        // whatever it says; then a prune frees what went.
        let stored = stored.and_then(|b| {
            if let Ok(store) = store {
                let gone = retention::after_backup(project, store, &service, &b.id)?;
                if !gone.is_empty() {
                    retention::prune(store)?;
                }
            }
            Ok(b)
        });
        match stored {
            Ok(b) => eprintln!(
                "cove: backed up {service} ({}): {} ({}, {} added) to `{}` ({})",
                method::name(method),
                short(&b.id),
                bytes(b.size),
                bytes(b.added),
                target.name,
                target.location.url()
            ),
            Err(f) => {
                let style = stderr_style();
                eprintln!(
                    "{}error{}: the backup of {service} was not stored to `{}`: {}",
                    style.red, style.reset, target.name, f.message
                );
                if let Some(h) = &f.hint {
                    eprintln!("  = {}hint{}: {h}", style.cyan, style.reset);
                }
                failed.push(target.name.clone());
            }
        }
    }
    Ok(Some(failed))
}

/// Tells the daemon how a backup (or, `drill`, a restore drill) of
/// `service` run here ended: recorded as a scheduled one's end is (an
/// event, its log, its alerts). Not when the daemon ran this (it records
/// that itself), nor when the app is not running; a daemon that cannot be
/// told is said on stderr, and changes nothing else.
fn tell(project: &Project, service: &str, drill: bool, outcome: Result<String, String>) {
    if std::env::var_os(cove_daemon::api::SCHEDULED_RUN_ENV).is_some() {
        return;
    }
    let Ok(client) = daemon::find(project) else {
        return;
    };
    let Ok(rt) = daemon::runtime() else {
        return;
    };
    let (ok, message) = match outcome {
        Ok(m) => (true, m),
        Err(m) => (false, m),
    };
    let body = cove_daemon::api::BackupOutcome {
        service: service.to_string(),
        drill,
        ok,
        message,
    };
    match rt.block_on(client.post::<serde_json::Value>("/v1/backups/outcome", &body)) {
        Ok(_) | Err(cove_daemon::client::ClientError::NotRunning) => {}
        Err(e) => eprintln!("cove: warning: the daemon was not told how this ended: {e}"),
    }
}

/// What a method took: a dump, to store to each target; or (a tree, or a
/// stream stored while taken) the result of storing it to each open target.
enum Taken {
    Dump(cove_backup::Dump),
    Stored(Vec<Result<Backup, Failure>>),
}

/// Where a dump command's stream goes.
enum Sink<'a> {
    /// Straight into the one target it is for, while the command runs.
    Stream(&'a Store, &'a targets::Target),
    /// To a private file in this directory, stored to each target after.
    Scratch(&'a Path),
}

impl Sink<'_> {
    /// Runs `cmd`, its stream stored or kept as this sink says, described
    /// by what `describe` says once it exited 0. A failed command is an
    /// error (nothing is kept); a target that could not store the stream
    /// is that target's failure.
    fn take(
        &self,
        meta: &Meta,
        cmd: &cove_backup::DumpCommand<'_>,
        service: &str,
        describe: impl FnOnce() -> Option<String>,
    ) -> Result<Taken, Failure> {
        match self {
            Sink::Scratch(scratch) => {
                let mut dump = cove_backup::dump_command_with(meta, cmd, scratch)
                    .map_err(|e| space::explain(e, service, "", scratch))?;
                dump.description = describe();
                Ok(Taken::Dump(dump))
            }
            Sink::Stream(store, target) => match store.stream_command(meta, cmd, describe) {
                Ok(b) => Ok(Taken::Stored(vec![Ok(b)])),
                Err(e) if e.kind() == cove_backup::ErrorKind::Command => Err(e.into()),
                Err(e) => {
                    let at = format!("`{}` ({})", target.name, target.location.url());
                    let f = space::explain(e, service, &at, store.dir());
                    Ok(Taken::Stored(vec![Err(f)]))
                }
            },
        }
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// What `cove backup ls --format json` prints for a backup.
#[derive(serde::Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    backup: &'a Backup,
    /// The target's name.
    target: String,
    /// Where it is (a directory or a URL).
    location: String,
}

fn list(project: &Project, only: Option<&str>, format: &str) -> Result<(), Failure> {
    if format != "table" && format != "json" {
        return Err(Failure::new(format!(
            "--format {format}: `table` or `json`"
        )));
    }
    let opened = if only.is_none() && !any_repository(project)? {
        Opened::default()
    } else {
        open_all(project, only)?
    };
    let mut backups: Vec<(Backup, &Store)> = Vec::new();
    let mut failed = Vec::new();
    for store in &opened.stores {
        match store.list() {
            Ok(l) => backups.extend(l.into_iter().map(|b| (b, store))),
            Err(e) => failed.push((store.name().to_string(), Failure::from(e))),
        }
    }
    backups.sort_by(|a, b| a.0.time.cmp(&b.0.time));
    if format == "json" {
        let rows: Vec<Listed> = backups
            .iter()
            .map(|(b, s)| Listed {
                backup: b,
                target: s.name().to_string(),
                location: s.location().url(),
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| Failure::new(e.to_string()))?
        );
    } else {
        println!(
            "{:<10} {:<16} {:<26} {:>10} {:>10} {:<13} {:<26} TARGET",
            "ID", "SERVICE", "TIME", "SIZE", "ADDED", "METHOD", "VERIFIED"
        );
        for (b, s) in &backups {
            let time: String = b.time.chars().take(25).collect();
            println!(
                "{:<10} {:<16} {:<26} {:>10} {:>10} {:<13} {:<26} {}",
                short(&b.id),
                b.meta.service,
                time,
                bytes(b.size),
                bytes(b.added),
                b.meta.method,
                b.verified
                    .as_deref()
                    .map_or("-".to_string(), |v| v.chars().take(25).collect()),
                s.name()
            );
        }
    }
    let all = Opened {
        stores: Vec::new(),
        failed: opened.failed.into_iter().chain(failed).collect(),
    };
    all.tell_failed();
    all.result()
}

/// Whether any target may hold backups: a local one with a repository, or
/// any remote one (which is only known by reaching it) once a backup was
/// made with this secrets file (it holds the repositories' password).
fn any_repository(project: &Project) -> Result<bool, Failure> {
    let file = cove_runtime::secrets::secrets_file(&project.app, &project.project_dir);
    let has_password = file.is_file()
        && cove_secrets::SecretsFile::load(&file).is_ok_and(|s| s.contains(PASSWORD_SECRET));
    Ok(targets::all(project, None)?
        .iter()
        .any(|t| match &t.location {
            cove_backup::Location::Dir(d) => d.join("config").is_file(),
            _ => has_password,
        }))
}

fn check(
    project: &Project,
    only: Option<&str>,
    id: Option<&str>,
    latest: bool,
) -> Result<(), Failure> {
    let opened = open_all(project, only)?;
    opened.tell_failed();
    let mut bad = Vec::new();
    let mut checked = 0;
    for store in &opened.stores {
        let all = store.list()?;
        let ids: Vec<String> = match (id, latest) {
            (Some(id), _) => all
                .iter()
                .filter(|b| b.id.starts_with(id))
                .map(|b| b.id.clone())
                .collect(),
            (None, true) => all.last().map(|b| b.id.clone()).into_iter().collect(),
            (None, false) => all.iter().map(|b| b.id.clone()).collect(),
        };
        for id in &ids {
            checked += 1;
            match store.check(id) {
                Ok(()) => eprintln!(
                    "cove: backup {} in `{}` reads back intact",
                    short(id),
                    store.name()
                ),
                Err(e) => {
                    eprintln!("cove: {e}");
                    bad.push(format!("{} in `{}`", short(id), store.name()));
                }
            }
        }
    }
    if checked == 0 {
        return Err(match id {
            Some(id) => Failure::new(format!("no backup `{id}` in any target")),
            None => Failure::new("no backups").hint("take one with `cove backup`"),
        });
    }
    if !bad.is_empty() {
        return Err(Failure::new(format!(
            "damaged backup(s): {}",
            bad.join(", ")
        )));
    }
    opened.result()?;
    eprintln!(
        "cove: every byte of {checked} backup(s) read and verified (`cove backup verify` also restores them into a scratch instance and checks the data)"
    );
    Ok(())
}

/// The backup to restore and the store holding it: `--from ID` from the
/// first target (`local` first) that has it; else the service's newest,
/// from `local` when it has that one.
fn find_backup(
    project: &Project,
    only: Option<&str>,
    service: &str,
    from: Option<&str>,
) -> Result<(Backup, Store), Failure> {
    let opened = open_all(project, only)?;
    let mut found: Option<(Backup, usize)> = None;
    for (i, store) in opened.stores.iter().enumerate() {
        let all = match store.list() {
            Ok(a) => a,
            Err(e) => {
                let f = Failure::from(e);
                eprintln!("cove: target `{}` skipped: {}", store.name(), f.message);
                continue;
            }
        };
        let hit = match from {
            Some(id) => all.into_iter().find(|b| b.id.starts_with(id)),
            None => all.into_iter().rfind(|b| b.meta.service == service),
        };
        if let Some(b) = hit {
            let better = match &found {
                None => true,
                // The newest (by time; the earlier target on a tie).
                Some((f, _)) => from.is_none() && b.time > f.time && b.id != f.id,
            };
            if better {
                found = Some((b, i));
            }
            if from.is_some() {
                break;
            }
        }
    }
    let Some((b, i)) = found else {
        opened.tell_failed();
        return Err(match from {
            Some(id) => Failure::new(format!("no backup `{id}` in any target")),
            None => Failure::new(format!("no backup of `{service}` in any target"))
                .hint(format!("take one with `cove backup {service}`")),
        });
    };
    let store = opened.stores.into_iter().nth(i).expect("found in it");
    Ok((b, store))
}

fn restore(project: &Project, service: &String, args: &RestoreArgs) -> Result<(), Failure> {
    let method = method_of(project, service)?;
    if method == BackupMethod::RedisRdb {
        // A cluster replica is refused before any backup is looked for.
        let t = replica(project, service)?;
        if let redis_cluster::Role::Replica(master) =
            redis_cluster::role(&RedisConn::of(project, &t)?)?
        {
            return Err(redis_cluster::replica_refusal(service, &master, true));
        }
    }
    let (chosen, store) = find_backup(
        project,
        args.target.as_deref(),
        service,
        args.from.as_deref(),
    )?;
    let chosen = &chosen;
    if &chosen.meta.service != service {
        return Err(Failure::new(format!(
            "backup {} is of `{}`, not `{service}`",
            short(&chosen.id),
            chosen.meta.service
        )));
    }
    if method::from_name(&chosen.meta.method) != Some(method) {
        return Err(Failure::new(format!(
            "backup {} was made with {}; `{service}` restores {} backups",
            short(&chosen.id),
            chosen.meta.method,
            method::name(method)
        )));
    }
    let t = replica(project, service)?;
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::new(format!(
                "restoring replaces `{service}`'s data: cove asks first, and there is no terminal to ask on"
            ))
            .hint("give --yes to restore without asking"));
        }
        confirm(&format!(
            "replace the data of `{service}` with backup {} of {}?",
            short(&chosen.id),
            chosen.time
        ))?;
    }
    match method {
        BackupMethod::Files => {
            files::restore(project, &store, &chosen.id, &chosen.meta, &t)?;
            return restored(service, chosen, &store);
        }
        BackupMethod::Mariabackup => {
            physical::restore_mariabackup(project, &store, &chosen.id, &chosen.meta, &t)?;
            return restored(service, chosen, &store);
        }
        BackupMethod::PgBasebackup => {
            physical::restore_pg_basebackup(project, &store, &chosen.id, &chosen.meta, &t)?;
            return restored(service, chosen, &store);
        }
        _ => {}
    }
    // The stream, read back and verified in full, before anything changes.
    let state = state_dir(project);
    let mut dump = tempfile::Builder::new()
        .prefix("restore-")
        .tempfile_in(if state.is_dir() {
            state.clone()
        } else {
            std::env::temp_dir()
        })
        .map_err(|e| Failure::new(format!("cannot make a temporary file: {e}")))?;
    store.restore(&chosen.id, dump.as_file_mut())?;
    let input = || {
        fs_err::File::open(dump.path())
            .map(|f| Stdio::from(f.into_parts().0))
            .map_err(|e| Failure::new(e.to_string()))
    };
    match method {
        BackupMethod::PgDump => {
            let pg = Pg::of(&t)?;
            let mut cmd = Command::new("pg_restore");
            cmd.args(["--clean", "--if-exists", "--single-transaction"])
                .args(pg.conn_args())
                .env_clear()
                .envs(pg.env())
                .stdin(input()?);
            run_restore(cmd, "pg_restore")?;
        }
        BackupMethod::MariadbDump => {
            let m = Maria::of(&t)?;
            let mut cmd = Command::new("mariadb");
            cmd.arg(m.first_arg()).stdin(input()?);
            run_restore(cmd, "mariadb")?;
        }
        BackupMethod::RedisRdb => redis_restore(project, &t, dump.path())?,
        BackupMethod::Command => {
            let spec = method::spec(project, service).and_then(|b| b.restore_command.as_ref());
            let Some(spec) = spec else {
                return Err(Failure::new(format!(
                    "service `{service}` has no `x-cove.backup.restore_command` to restore its `command` backups with"
                ))
                .hint("set `restore_command`: a command reading the dump on its standard input"));
            };
            command::restore(&t, &command::argv_of(spec), dump.path())?;
        }
        BackupMethod::RabbitmqDefinitions => {
            let (argv, _inetrc) = command::rabbitmqctl(&t, &["-q", "import_definitions"])?;
            command::restore(&t, &argv, dump.path())?;
            eprintln!(
                "cove: definitions imported (users, vhosts, permissions, queues, exchanges, bindings, policies; messages are not in a definitions backup)"
            );
        }
        BackupMethod::Lmdb => lmdb::restore(project, &t, dump.path())?,
        BackupMethod::Files | BackupMethod::Mariabackup | BackupMethod::PgBasebackup => {
            unreachable!("restored as trees above")
        }
    }
    restored(service, chosen, &store)
}

fn restored(service: &str, chosen: &Backup, store: &Store) -> Result<(), Failure> {
    eprintln!(
        "cove: restored {service} from backup {} ({}) of `{}`",
        short(&chosen.id),
        chosen.time,
        store.name()
    );
    Ok(())
}

/// Asks `question` on the terminal: `Ok` only for a yes.
fn confirm(question: &str) -> Result<(), Failure> {
    eprint!("cove: {question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Failure::new(e.to_string()))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure::new("not restored"))
    }
}

fn run_restore(mut cmd: Command, name: &str) -> Result<(), Failure> {
    let out = cmd
        .stdout(Stdio::null())
        .output()
        .map_err(|e| Failure::new(format!("cannot run `{name}`: {e}")))?;
    if !out.status.success() {
        return Err(Failure::new(format!(
            "`{name}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The replica stopped, the RDB file put in its place (the one there kept
/// beside it), the replica started again.
fn redis_restore(project: &Project, t: &ExecTarget, rdb: &Path) -> Result<(), Failure> {
    let r = RedisConn::of(project, t)?;
    let append_only = r.config("appendonly")? == "yes";
    let role = redis_cluster::role(&r)?;
    if let redis_cluster::Role::Replica(master) = &role {
        return Err(redis_cluster::replica_refusal(&t.service, master, true));
    }
    let layout = redis_cluster::layout(&r)?;
    lifecycle::stop(project, t)?;
    redis_cluster::put_rdb(&layout, rdb, append_only)?;
    lifecycle::start(project, &t.service)?;
    if role == redis_cluster::Role::Master {
        redis_cluster::wait_cluster_ok(&t.service, &r)?;
    }
    Ok(())
}
