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
//! The repository: `--target DIR`, else `<state dir>/backups` (never
//! deleted by `cove down`, even with `--volumes`).

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use cove_backup::{Backup, Meta, Store};
use cove_daemon::api::ExecTarget;
use cove_runtime::recipe::Recipe;
use cove_spec::Project;

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
    /// The backup repository (a directory). Default: `<state dir>/backups`.
    #[arg(long, value_name = "DIR", global = true)]
    pub target: Option<PathBuf>,
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
    /// them against their hashes and MACs. Not yet the restore drill into a
    /// scratch instance.
    Check {
        /// A backup's id (or a prefix of it).
        id: Option<String>,
        /// The newest backup.
        #[arg(long, conflicts_with = "id")]
        latest: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The service whose data is replaced.
    #[arg(required_unless_present = "all")]
    pub service: Option<String>,
    /// Every service with backups, each from its newest, in dependency
    /// order (bringing the app up first when it is down), then waits until
    /// every service is ready: a host that lost its data, in one command.
    #[arg(long, conflicts_with_all = ["service", "from"])]
    pub all: bool,
    /// The backup (its id or a prefix). Default: the service's newest.
    #[arg(long, value_name = "ID")]
    pub from: Option<String>,
    /// Do not ask for confirmation (required without a terminal).
    #[arg(long)]
    pub yes: bool,
    /// The backup repository (a directory). Default: `<state dir>/backups`.
    #[arg(long, value_name = "DIR")]
    pub target: Option<PathBuf>,
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
        Failure::new(e.to_string())
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
    let target = target_dir(&project, args.target.as_deref());
    Ok(report(match &args.command {
        None => backup(&project, &target, &args.services),
        Some(BackupCommand::Ls { format }) => list(&project, &target, format),
        Some(BackupCommand::Check { id, latest }) => {
            check(&project, &target, id.as_deref(), *latest)
        }
    }))
}

pub fn restore_cmd(project_args: &ProjectArgs, args: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    let target = target_dir(&project, args.target.as_deref());
    if args.all {
        return Ok(report(restore_all::restore_all(
            project_args,
            &project,
            &target,
            args,
        )));
    }
    Ok(report(restore(&project, &target, args)))
}

fn state_dir(project: &Project) -> PathBuf {
    cove_runtime::plan::state_dir(&project.app, &project.project_dir)
}

fn target_dir(project: &Project, given: Option<&Path>) -> PathBuf {
    match given {
        Some(d) if d.is_absolute() => d.to_path_buf(),
        Some(d) => std::env::current_dir().unwrap_or_default().join(d),
        None => state_dir(project).join("backups"),
    }
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

fn open(project: &Project, target: &Path, create: bool) -> Result<Store, Failure> {
    if !create && !target.join("config").is_file() {
        return Err(Failure::new(format!(
            "no backups: {} holds no repository",
            target.display()
        ))
        .hint("take one with `cove backup`"));
    }
    let pw = password(project, create)?;
    Ok(Store::open_or_init(target, &pw)?)
}

/// How a service is backed up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    PgDump,
    MariadbDump,
    RedisRdb,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::PgDump => "pg_dump",
            Method::MariadbDump => "mariadb-dump",
            Method::RedisRdb => "redis-rdb",
        }
    }

    fn from_name(name: &str) -> Option<Method> {
        [Method::PgDump, Method::MariadbDump, Method::RedisRdb]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

/// The method of `service`, or why it has none.
fn method_of(project: &Project, service: &str) -> Result<Method, Failure> {
    let Some(svc) = project.app.services.get(service) else {
        return Err(
            Failure::new(format!("no such service `{service}`")).hint(project.app.services_hint())
        );
    };
    match Recipe::detect(svc) {
        Some(Recipe::Postgres) => Ok(Method::PgDump),
        Some(Recipe::Mariadb) => Ok(Method::MariadbDump),
        Some(Recipe::Redis) if !is_redis_server(svc) => Err(Failure::new(format!(
            "service `{service}` runs a Redis sentinel or `redis-cli`, which keep no data to back up"
        ))),
        Some(Recipe::Redis) => Ok(Method::RedisRdb),
        Some(other) => Err(Failure::new(format!(
            "service `{service}` ({other:?}) has no backup method yet"
        ))
        .hint("methods exist for postgres, mariadb and redis; `x-cove.backup.command` (a service's own dump on stdout) is not built yet")),
        None => Err(Failure::new(format!(
            "service `{service}` has no recipe and no backup method"
        ))
        .hint("methods exist for the postgres, mariadb and redis recipes; `x-cove.backup.command` (a service's own dump on stdout) is not built yet")),
    }
}

fn is_redis_server(svc: &cove_spec::model::Service) -> bool {
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

fn meta(project: &Project, service: &str, method: Method) -> Meta {
    Meta {
        project: project.app.name.clone(),
        environment: project
            .app
            .x_cove
            .env
            .clone()
            .unwrap_or_else(|| "default".into()),
        service: service.to_string(),
        method: method.name().to_string(),
        cove_version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// Where replica 1 of `service` runs, from the daemon.
fn replica(project: &Project, service: &str) -> Result<ExecTarget, Failure> {
    let client = daemon::find(project).map_err(|e| Failure::new(e.to_string()))?;
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

fn backup(project: &Project, target: &Path, services: &[String]) -> Result<(), Failure> {
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
    let methods: Vec<(String, Method)> = services
        .iter()
        .map(|s| method_of(project, s).map(|m| (s.clone(), m)))
        .collect::<Result<_, _>>()?;
    let store = open(project, target, true)?;
    // Each dump is written here (private, removed once stored) before it
    // goes into the repository.
    let scratch = state_dir(project).join("backup-scratch");
    for (service, method) in methods {
        let t = replica(project, &service)?;
        let meta = meta(project, &service, method);
        let b = match method {
            Method::PgDump => {
                let pg = Pg::of(&t)?;
                // Uncompressed (`-Z0`): the repository compresses (zstd),
                // and an uncompressed stream deduplicates across backups.
                let mut argv = vec!["pg_dump".to_string(), "-Fc".into(), "-Z0".into()];
                argv.extend(pg.conn_args());
                store
                    .backup_command(&meta, &argv, &pg.env(), &scratch)
                    .map_err(|e| space::explain(e, &service, target, &scratch))?
            }
            Method::MariadbDump => {
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
                store
                    .backup_command(&meta, &argv, &[path_env()], &scratch)
                    .map_err(|e| space::explain(e, &service, target, &scratch))?
            }
            Method::RedisRdb => {
                let r = RedisConn::of(project, &t)?;
                let rdb = r.fresh_rdb()?;
                let argv = vec!["cat".to_string(), rdb.display().to_string()];
                store
                    .backup_command(&meta, &argv, &[path_env()], &scratch)
                    .map_err(|e| space::explain(e, &service, target, &scratch))?
            }
        };
        eprintln!(
            "cove: backed up {service} ({}): {} ({}, {} added) in {}",
            method.name(),
            short(&b.id),
            bytes(b.size),
            bytes(b.added),
            target.display()
        );
    }
    Ok(())
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
    target: String,
}

fn list(project: &Project, target: &Path, format: &str) -> Result<(), Failure> {
    if format != "table" && format != "json" {
        return Err(Failure::new(format!(
            "--format {format}: `table` or `json`"
        )));
    }
    let backups = if target.join("config").is_file() {
        open(project, target, false)?.list()?
    } else {
        Vec::new()
    };
    if format == "json" {
        let rows: Vec<Listed> = backups
            .iter()
            .map(|b| Listed {
                backup: b,
                target: target.display().to_string(),
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| Failure::new(e.to_string()))?
        );
        return Ok(());
    }
    println!(
        "{:<10} {:<16} {:<26} {:>10} {:>10} {:<13} TARGET",
        "ID", "SERVICE", "TIME", "SIZE", "ADDED", "METHOD"
    );
    for b in &backups {
        let time: String = b.time.chars().take(25).collect();
        println!(
            "{:<10} {:<16} {:<26} {:>10} {:>10} {:<13} {}",
            short(&b.id),
            b.meta.service,
            time,
            bytes(b.size),
            bytes(b.added),
            b.meta.method,
            target.display()
        );
    }
    Ok(())
}

fn check(project: &Project, target: &Path, id: Option<&str>, latest: bool) -> Result<(), Failure> {
    let store = open(project, target, false)?;
    let all = store.list()?;
    let ids: Vec<String> = match (id, latest) {
        (Some(id), _) => vec![id.to_string()],
        (None, true) => all.last().map(|b| b.id.clone()).into_iter().collect(),
        (None, false) => all.iter().map(|b| b.id.clone()).collect(),
    };
    if ids.is_empty() {
        return Err(Failure::new(format!("no backups in {}", target.display())));
    }
    let mut bad = Vec::new();
    for id in &ids {
        match store.check(id) {
            Ok(()) => eprintln!("cove: backup {} reads back intact", short(id)),
            Err(e) => {
                eprintln!("cove: {e}");
                bad.push(short(id).to_string());
            }
        }
    }
    if bad.is_empty() {
        eprintln!(
            "cove: every byte of {} backup(s) read and verified (not yet a restore drill into a scratch instance)",
            ids.len()
        );
        Ok(())
    } else {
        Err(Failure::new(format!(
            "damaged backup(s): {}",
            bad.join(", ")
        )))
    }
}

fn restore(project: &Project, target: &Path, args: &RestoreArgs) -> Result<(), Failure> {
    let Some(service) = &args.service else {
        return Err(Failure::new("which service? name one, or give --all"));
    };
    let method = method_of(project, service)?;
    let store = open(project, target, false)?;
    let all = store.list()?;
    let of_service: Vec<&Backup> = all.iter().filter(|b| &b.meta.service == service).collect();
    let chosen = match &args.from {
        Some(id) => all
            .iter()
            .find(|b| b.id.starts_with(id.as_str()))
            .ok_or_else(|| Failure::new(format!("no backup `{id}` in {}", target.display())))?,
        None => *of_service.last().ok_or_else(|| {
            Failure::new(format!("no backup of `{service}` in {}", target.display()))
                .hint(format!("take one with `cove backup {service}`"))
        })?,
    };
    if &chosen.meta.service != service {
        return Err(Failure::new(format!(
            "backup {} is of `{}`, not `{service}`",
            short(&chosen.id),
            chosen.meta.service
        )));
    }
    if Method::from_name(&chosen.meta.method) != Some(method) {
        return Err(Failure::new(format!(
            "backup {} was made with {}; `{service}` restores {} backups",
            short(&chosen.id),
            chosen.meta.method,
            method.name()
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
        eprint!(
            "cove: replace the data of `{service}` with backup {} of {}? [y/N] ",
            short(&chosen.id),
            chosen.time
        );
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .map_err(|e| Failure::new(e.to_string()))?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(Failure::new("not restored"));
        }
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
        Method::PgDump => {
            let pg = Pg::of(&t)?;
            let mut cmd = Command::new("pg_restore");
            cmd.args(["--clean", "--if-exists", "--single-transaction"])
                .args(pg.conn_args())
                .env_clear()
                .envs(pg.env())
                .stdin(input()?);
            run_restore(cmd, "pg_restore")?;
        }
        Method::MariadbDump => {
            let m = Maria::of(&t)?;
            let mut cmd = Command::new("mariadb");
            cmd.arg(m.first_arg()).stdin(input()?);
            run_restore(cmd, "mariadb")?;
        }
        Method::RedisRdb => redis_restore(project, &t, dump.path())?,
    }
    eprintln!(
        "cove: restored {service} from backup {} ({})",
        short(&chosen.id),
        chosen.time
    );
    Ok(())
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
    if r.config("appendonly")? == "yes" {
        return Err(Failure::new(format!(
            "service `{}` runs with `appendonly yes`: Redis would load its AOF, not the restored RDB; restoring it is not built yet",
            t.service
        )));
    }
    let dest = PathBuf::from(r.config("dir")?).join(r.config("dbfilename")?);
    let client = daemon::find(project).map_err(|e| Failure::new(e.to_string()))?;
    let rt = daemon::runtime().map_err(|e| Failure::new(e.to_string()))?;
    let names = daemon::names(std::slice::from_ref(&t.service));
    rt.block_on(client.post::<cove_daemon::api::Accepted>("/v1/stop", &names))
        .map_err(|e| Failure::new(format!("cannot stop `{}`: {e}", t.service)))?;
    // Stopped: its process gone (bounded).
    if let Some(pid) = t.pid {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Path::new(&format!("/proc/{pid}")).exists() {
            if Instant::now() > deadline {
                return Err(Failure::new(format!(
                    "`{}` did not stop in 2 minutes",
                    t.service
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    if dest.exists() {
        let kept = dest.with_extension(format!(
            "rdb.before-restore-{}",
            jiff::Timestamp::now().as_second()
        ));
        fs_err::rename(&dest, &kept).map_err(|e| Failure::new(e.to_string()))?;
        eprintln!("cove: the RDB file it had is kept as {}", kept.display());
    }
    let tmp = dest.with_extension("rdb.restoring");
    fs_err::copy(rdb, &tmp).map_err(|e| Failure::new(e.to_string()))?;
    fs_err::rename(&tmp, &dest).map_err(|e| Failure::new(e.to_string()))?;
    let accepted: cove_daemon::api::Accepted = rt
        .block_on(client.post("/v1/start", &names))
        .map_err(|e| Failure::new(format!("cannot start `{}` again: {e}", t.service)))?;
    rt.block_on(daemon::wait_ready(
        &client,
        std::slice::from_ref(&t.service),
        accepted.seq,
        Duration::from_secs(300),
        &accepted.revisions,
    ))
    .map_err(|_| {
        Failure::new(format!(
            "`{}` did not become ready after the restore",
            t.service
        ))
        .hint("see `cove logs`")
    })?;
    Ok(())
}
