//! Built-in native recipes for well-known images: the host's own binaries
//! run what the image would, with data under the project's state directory
//! (`<state_dir>/data/<service>-<replica>`, kept across runs; cove never
//! deletes it).
//!
//! | image | binaries (Debian package) | honours |
//! |---|---|---|
//! | `redis` | `redis-server`, `redis-cli` (`redis-server`) | `command` arguments (`--cluster-enabled yes`, ...); `--replicaof SERVICE PORT`; Sentinel (`redis-sentinel CONF`, `redis-server CONF --sentinel`: a writable copy of `CONF`, its `sentinel monitor` naming a service it depends on); a `redis-cli ...` command runs as is |
//! | `mariadb`, `mysql` | `mariadbd`, `mariadb-install-db`, `mariadb-admin` (`mariadb-server`) | `MARIADB_`/`MYSQL_` `ROOT_PASSWORD`, `DATABASE`, `USER`, `PASSWORD`, first-start initialisation |
//! | `postgres` | `postgres`, `initdb`, `pg_isready` (`postgresql`; found in `/usr/lib/postgresql/<newest>/bin` too) | `POSTGRES_USER`, `POSTGRES_PASSWORD`, `POSTGRES_DB`, `POSTGRES_INITDB_ARGS`, `POSTGRES_HOST_AUTH_METHOD`, `command: postgres -c ...`, first-start initialisation |
//!
//! | `activemq`, `activemq-classic` | `java`, `/usr/share/activemq/bin/activemq.jar` (`activemq`) | OpenWire on port 61616 and STOMP on 61613 of the replica's address, `ACTIVEMQ_CONNECTION_USER`/`ACTIVEMQ_CONNECTION_PASSWORD` (authentication), `ACTIVEMQ_OPTS` (JVM options; default `-Xms64M -Xmx256M`) |
//! | `rabbitmq` | `/usr/lib/rabbitmq/bin/rabbitmq-server` (`rabbitmq-server`) | AMQP on port 5672 of the replica's address, `RABBITMQ_DEFAULT_USER`/`RABBITMQ_DEFAULT_PASS` (required: no default `guest`), `RABBITMQ_DEFAULT_VHOST`; a `*-management` tag enables the management plugin on 15672; TLS from `rabbitmq.conf`/`conf.d` files and key files given as `secrets` (see `rabbitmq.rs`) |
//!
//! RabbitMQ needs Erlang's port mapper (`epmd`): each node starts its own,
//! on 127.0.0.1 at a port free when the replica starts (`ERL_EPMD_PORT` in
//! its env file), so it is stopped with the replica and no other node (of
//! this app or another) depends on it; its distribution port is another
//! port free then (`DIST_PORT`), so nodes starting together never clash.
//!
//! When cove runs as root, MariaDB and PostgreSQL run as their system users
//! (`mysql`, `postgres`, made by their Debian packages), never as root: the
//! server (and its set-up tools) start in a mount namespace of their own
//! (`unshare --mount`) where the replica's data directory is bound at
//! [`NS_DATA`] and a copy of its private files sits on a tmpfs at
//! [`NS_PRIVATE`] owned by that user, then drop to the user with `setpriv`
//! (no capabilities, no new privileges). So the data directory can live
//! anywhere root can reach (a 0700 home or temporary directory) while the
//! server reaches nothing else of the project. The data directory is owned
//! by that user, 0700; the server's socket is in its 0700 `run/`.
//!
//! What each recipe allows (see docs/guides/security.md):
//! - MariaDB: no account without a password answers over TCP: the accounts
//!   `mariadb-install-db` makes for `127.0.0.1`, `::1` and the host name,
//!   and anonymous ones, are dropped at every start; root gets
//!   `MARIADB_ROOT_PASSWORD` (or the image's `MARIADB_ALLOW_EMPTY_ROOT_PASSWORD`
//!   / `MARIADB_RANDOM_ROOT_PASSWORD`; a first start with none is refused,
//!   as the image does); the health check's account (`cove-health`, no
//!   privileges) is `localhost`, which with `--skip-name-resolve` means the
//!   private socket only; `--secure-file-priv` is the data directory's
//!   `files/`.
//! - PostgreSQL: `scram-sha-256` for TCP and for the socket when a password
//!   is set (`POSTGRES_HOST_AUTH_METHOD` otherwise, as in the image); the
//!   socket is in a 0700 directory; the password file of `initdb` is on the
//!   replica's private tmpfs. A cluster of an earlier cove gets its `trust`
//!   lines made so at its next start (`postgres::untrust_hba`).
//! - Redis, ActiveMQ: a service without authentication (Redis: no
//!   `--requirepass`, and no configuration file among its secrets that sets
//!   a password; ActiveMQ: not both `ACTIVEMQ_CONNECTION_USER` and
//!   `PASSWORD`) may not be published (`ports:`) on an address other than
//!   loopback; ActiveMQ with only one of the two is refused anywhere.
//! - RabbitMQ: no default `guest` account: `RABBITMQ_DEFAULT_USER` and
//!   `RABBITMQ_DEFAULT_PASS` are required (and not `guest`/`guest`).
//!
//! A recipe brings its own health probe (the image's usual one, pointed at
//! the replica's address), timed by the service's `healthcheck` settings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cove_spec::model::Service;

use crate::health::Probe;

mod activemq;
mod mariadb;
mod postgres;
mod rabbitmq;
mod redis;
mod runner;
mod scratch;

pub(crate) use runner::user_ids;
use runner::{Runner, ensure_ns_dirs, env_get, own_dir};
pub use scratch::{ScratchServer, ScratchSpec, scratch_server};

/// A built-in recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipe {
    Redis,
    Mariadb,
    Postgres,
    Activemq,
    /// `management`: the image's tag asks for the management plugin.
    Rabbitmq {
        management: bool,
    },
}

/// Debian's RabbitMQ server script (not the `/usr/sbin` wrapper, which
/// switches to the `rabbitmq` user and its system directories).
const RABBITMQ_SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
/// AMQP and management ports of a RabbitMQ replica (on its own address).
pub const AMQP_PORT: u16 = 5672;
pub const RABBITMQ_MANAGEMENT_PORT: u16 = 15672;

/// Where a server run as its system user (as root) sees its data directory
/// and its private files, inside its own mount namespace. The directories
/// exist empty on the host (root's, 0755); each server's namespace mounts
/// over them, invisibly to everyone else.
pub const NS_DATA: &str = "/run/cove-ns/data";
pub const NS_PRIVATE: &str = "/run/cove-ns/private";

/// Where Debian's `activemq` package keeps the broker.
const ACTIVEMQ_HOME: &str = "/usr/share/activemq";
/// OpenWire and STOMP ports of an ActiveMQ replica (on its own address).
pub const OPENWIRE_PORT: u16 = 61616;
pub const STOMP_PORT: u16 = 61613;

/// The names `x-cove.recipe` takes (checked by the loader).
pub use cove_spec::xcove::RECIPES as NAMES;

impl Recipe {
    /// The recipe for a service: `x-cove.recipe`, else its image's name.
    pub fn detect(svc: &Service) -> Option<Recipe> {
        let named = svc.x_cove.as_ref().and_then(|x| x.recipe.clone());
        let name = named.or_else(|| {
            let image = svc.image.as_deref()?;
            let repo = image.split(['@']).next()?.rsplit('/').next()?;
            Some(repo.split(':').next()?.to_string())
        })?;
        match name.as_str() {
            "redis" => Some(Recipe::Redis),
            "mariadb" | "mysql" => Some(Recipe::Mariadb),
            "postgres" | "postgresql" => Some(Recipe::Postgres),
            "activemq" | "activemq-classic" => Some(Recipe::Activemq),
            "rabbitmq" => Some(Recipe::Rabbitmq {
                management: svc
                    .image
                    .as_deref()
                    .and_then(|i| i.rsplit_once(':'))
                    .is_some_and(|(_, tag)| tag.contains("management")),
            }),
            _ => None,
        }
    }

    /// The port the image listens on.
    pub fn default_port(self) -> u16 {
        match self {
            Recipe::Redis => 6379,
            Recipe::Mariadb => 3306,
            Recipe::Postgres => 5432,
            Recipe::Activemq => OPENWIRE_PORT,
            Recipe::Rabbitmq { .. } => AMQP_PORT,
        }
    }

    /// Binaries that must be installed (as root, with the tools that run
    /// a server as its system user), with their Debian package; checked
    /// by the preflight (`preflight.rs`).
    pub fn needs(self, as_root: bool) -> (&'static [&'static str], &'static str) {
        match self {
            Recipe::Redis => (&["redis-server", "redis-cli"], "redis-server"),
            Recipe::Mariadb if as_root => (
                &[
                    "mariadbd",
                    "mariadb-install-db",
                    "mariadb-admin",
                    "unshare",
                    "setpriv",
                    "mount",
                ],
                "mariadb-server",
            ),
            Recipe::Postgres if as_root => (
                &[
                    "postgres",
                    "initdb",
                    "pg_isready",
                    "unshare",
                    "setpriv",
                    "mount",
                ],
                "postgresql",
            ),
            Recipe::Mariadb => (
                &["mariadbd", "mariadb-install-db", "mariadb-admin"],
                "mariadb-server",
            ),
            Recipe::Postgres => (&["postgres", "initdb", "pg_isready"], "postgresql"),
            Recipe::Activemq => (
                &["java", "/usr/share/activemq/bin/activemq.jar"],
                "activemq",
            ),
            Recipe::Rabbitmq { .. } => (&[RABBITMQ_SERVER], "rabbitmq-server"),
        }
    }

    /// The system user the server runs as when cove runs as root.
    pub fn service_user(self) -> Option<&'static str> {
        match self {
            Recipe::Mariadb => Some("mysql"),
            Recipe::Postgres => Some("postgres"),
            _ => None,
        }
    }

    /// `(uid, gid)` the server drops to: as root, its system user's.
    fn runs_as(self) -> Option<(u32, u32)> {
        if !rustix::process::geteuid().is_root() {
            return None;
        }
        user_ids(self.service_user()?)
    }

    /// What the service's settings make unsafe to run, as (what, hint):
    /// a server without authentication published beyond loopback, a broker
    /// left with a well-known account. (A server that would run as root
    /// because its system user is missing is the preflight's.)
    /// `secrets`: their values when they were read (then a Redis
    /// configuration given as a secret is judged by what it says).
    pub fn check(
        self,
        svc: &Service,
        secrets: Option<&crate::secrets::Resolved>,
    ) -> Result<(), (String, String)> {
        let env = |k: &str| compose_env(svc, k);
        let has = |k: &str| given(svc, k);
        if self == Recipe::Activemq {
            let (user, password) = (
                has("ACTIVEMQ_CONNECTION_USER"),
                has("ACTIVEMQ_CONNECTION_PASSWORD"),
            );
            if user != password {
                let (set, missing) = match user {
                    true => ("ACTIVEMQ_CONNECTION_USER", "ACTIVEMQ_CONNECTION_PASSWORD"),
                    false => ("ACTIVEMQ_CONNECTION_PASSWORD", "ACTIVEMQ_CONNECTION_USER"),
                };
                return Err((
                    format!("sets `{set}` but not `{missing}`: the broker turns on authentication only with both, so it would accept anyone"),
                    "set both in `environment:` (the password from the secrets store: a secret with `x-cove: {env: ACTIVEMQ_CONNECTION_PASSWORD}`), or neither".into(),
                ));
            }
        }
        if let Recipe::Rabbitmq { .. } = self {
            if !has("RABBITMQ_DEFAULT_USER") || !has("RABBITMQ_DEFAULT_PASS") {
                return Err((
                    "has no `RABBITMQ_DEFAULT_USER` and `RABBITMQ_DEFAULT_PASS`: cove does not make the well-known `guest` account".into(),
                    "set both in `environment:` (the password from the secrets store: a secret with `x-cove: {env: RABBITMQ_DEFAULT_PASS}`)".into(),
                ));
            }
            if env("RABBITMQ_DEFAULT_USER").as_deref() == Some("guest")
                && env("RABBITMQ_DEFAULT_PASS").as_deref() == Some("guest")
            {
                return Err((
                    "uses the well-known account `guest`/`guest`".into(),
                    "choose another user name and password for RABBITMQ_DEFAULT_USER / RABBITMQ_DEFAULT_PASS".into(),
                ));
            }
        }
        if let Some(what) = self.unauthenticated(svc, secrets)
            && let Some(port) = svc
                .ports
                .iter()
                .find(|p| !host_ip_is_loopback(p.host_ip.as_deref()))
        {
            let ip = port.host_ip.as_deref().unwrap_or("0.0.0.0");
            let hint = match self {
                Recipe::Redis => {
                    "give it a configuration file with `requirepass` as a secret (`command: redis-server /run/secrets/redis.conf`, the file from the secrets store, so the password is on no command line), or publish it on loopback only (`127.0.0.1:HOST:CONTAINER`)"
                }
                Recipe::Activemq => {
                    "set ACTIVEMQ_CONNECTION_USER and ACTIVEMQ_CONNECTION_PASSWORD (from the secrets store), or publish it on loopback only (`127.0.0.1:HOST:CONTAINER`)"
                }
                _ => {
                    "give it a password, or publish it on loopback only (`127.0.0.1:HOST:CONTAINER`)"
                }
            };
            return Err((
                format!(
                    "publishes port {} on {ip}, which is reachable from other machines, but {what}",
                    port.target
                ),
                hint.into(),
            ));
        }
        Ok(())
    }

    /// Why anyone who reaches the server may use it, if so: no password.
    /// A Redis configuration file counts when it is one of the service's
    /// secrets and says so (see [`redis::conf_has_password`]); while
    /// `secrets` were not read, a secret counts (`up` judges it again with
    /// their values); a file that is not a secret does not (the plan reads
    /// no file of the machine).
    pub fn unauthenticated(
        self,
        svc: &Service,
        secrets: Option<&crate::secrets::Resolved>,
    ) -> Option<String> {
        let env = |k: &str| compose_env(svc, k);
        match self {
            Recipe::Redis => {
                // Redis's command names nothing of the machine.
                if self
                    .command(svc, &Host::default())
                    .first()
                    .is_some_and(|p| p == "redis-cli")
                {
                    return None;
                }
                // As written: replication and Sentinel wrap it in `sh`.
                let argv = redis::written_args(&user_command(svc));
                let protected = argv
                    .iter()
                    .any(|a| a == "--requirepass" || a == "--aclfile" || a == "--user");
                let Some(conf) = argv.get(1).filter(|a| !a.starts_with('-') && !protected) else {
                    return (!protected).then(|| {
                        "redis-server has no password (no `requirepass` in a configuration file)"
                            .to_string()
                    });
                };
                match secret_named(svc, conf) {
                    None => Some(format!(
                        "redis-server's configuration file `{conf}` is not one of its secrets, so cove cannot tell that it sets a password"
                    )),
                    Some(source) => match secrets {
                        None => None,
                        Some(r) => {
                            let text = r.values.get(source).map(|v| v.bytes()).unwrap_or(&[]);
                            (!redis::conf_has_password(&String::from_utf8_lossy(text))).then(|| {
                                format!(
                                    "redis-server has no password: its configuration file `{conf}` (secret `{source}`) has no `requirepass`, `aclfile` or `user ... on >PASSWORD`"
                                )
                            })
                        }
                    },
                }
            }
            // `prepare_activemq` turns authentication on with both only.
            Recipe::Activemq => (!given(svc, "ACTIVEMQ_CONNECTION_USER")
                || !given(svc, "ACTIVEMQ_CONNECTION_PASSWORD"))
            .then(|| {
                "the broker has no user and password (`ACTIVEMQ_CONNECTION_USER` and `ACTIVEMQ_CONNECTION_PASSWORD`)".to_string()
            }),
            Recipe::Postgres => (env("POSTGRES_HOST_AUTH_METHOD").as_deref() == Some("trust"))
                .then(|| "POSTGRES_HOST_AUTH_METHOD is `trust`".to_string()),
            Recipe::Mariadb => {
                let empty = [
                    "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD",
                    "MYSQL_ALLOW_EMPTY_PASSWORD",
                ]
                .iter()
                .any(|k| env(k).is_some_and(|v| v != "0" && v != "no"));
                empty.then(|| {
                    "root may have an empty password (`MARIADB_ALLOW_EMPTY_ROOT_PASSWORD`)"
                        .to_string()
                })
            }
            Recipe::Rabbitmq { .. } => None,
        }
    }

    /// The command of a replica. `$HOST`, `$PORT` and `$COVE_DATA` are
    /// expanded per replica.
    pub fn command(self, svc: &Service, host: &Host) -> Vec<String> {
        let user = user_command(svc);
        match self {
            Recipe::Redis => {
                let deps: Vec<String> = svc.depends_on.keys().cloned().collect();
                redis::command(user, &deps)
            }
            Recipe::Mariadb => mariadb::command(user, host),
            Recipe::Postgres => postgres::command(user, host),
            Recipe::Rabbitmq { .. } => rabbitmq::command(),
            Recipe::Activemq => activemq::command(svc, host),
        }
    }

    /// The probe that says a replica is ready.
    pub fn probe(self, svc: &Service, host: &Host) -> Option<Probe> {
        match self {
            Recipe::Redis
                if self
                    .command(svc, host)
                    .first()
                    .is_some_and(|p| p == "redis-cli") =>
            {
                None
            }
            Recipe::Redis => Some(Probe::Exec(
                ["redis-cli", "-h", "$HOST", "-p", "$PORT", "ping"]
                    .map(String::from)
                    .to_vec(),
            )),
            // Over the private socket: the health account has no password
            // and exists for `localhost` only, which is the socket.
            Recipe::Mariadb => Some(Probe::Exec(
                [
                    "mariadb-admin",
                    "--no-defaults",
                    "--protocol=socket",
                    "--socket=$COVE_DATA/run/mysqld.sock",
                    "--connect-timeout=5",
                    "-u",
                    "cove-health",
                    "ping",
                ]
                .map(String::from)
                .to_vec(),
            )),
            Recipe::Activemq => Some(Probe::Tcp { port: STOMP_PORT }),
            Recipe::Rabbitmq { .. } => Some(Probe::Tcp {
                port: rabbitmq::probe_port(svc),
            }),
            Recipe::Postgres => Some(Probe::Exec(vec![
                host.binary("pg_isready"),
                "-q".into(),
                "-h".into(),
                "$HOST".into(),
                "-p".into(),
                "$PORT".into(),
            ])),
        }
    }

    /// Whether replicas keep data under the state directory.
    pub fn has_data(self, svc: &Service) -> bool {
        !(self == Recipe::Redis
            && self
                .command(svc, &Host::default())
                .first()
                .is_some_and(|p| p == "redis-cli"))
    }
}

/// Prepares a replica's data directory before each start: creates it, and
/// for MariaDB initialises it on first start and writes the init file from
/// the official image's variables. Files that hold passwords (MariaDB's
/// init file, the brokers' configuration) go to the replica's private
/// directory (`COVE_SECRETS`, on a tmpfs, gone with the replica), never
/// to the data directory. Blocking; run off the async threads.
pub fn prepare(recipe: Recipe, data: &Path, env: &[(String, String)]) -> Result<(), String> {
    let ids = recipe.runs_as();
    if ids.is_some() {
        ensure_ns_dirs()?;
    }
    own_dir(data, ids, false)?;
    let private = || {
        env_get(env, "COVE_SECRETS")
            .map(PathBuf::from)
            .ok_or("the replica has no private directory (COVE_SECRETS)")
    };
    // Left by cove versions that kept them with the data.
    for old in [
        "init.sql",
        "conf/activemq.xml",
        "rabbitmq.conf",
        "rabbitmq-env.conf",
        "pwfile",
    ] {
        let _ = fs_err::remove_file(data.join(old));
    }
    match recipe {
        Recipe::Redis => Ok(()),
        Recipe::Mariadb => mariadb::prepare_mariadb(data, &private()?, env, ids),
        Recipe::Postgres => postgres::prepare_postgres(data, &private()?, env, ids),
        Recipe::Activemq => activemq::prepare_activemq(data, &private()?, env),
        Recipe::Rabbitmq { management } => {
            rabbitmq::prepare_rabbitmq(data, &private()?, env, management)
        }
    }
}

/// What recipes' commands and probes name of the machine: where their
/// programs are, and, as root, the system users their servers run as.
/// Looked up once ([`Host::here`]) and given to the plan in its
/// placement, so that planning reads nothing itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    /// Programs found, name → path; one not here runs by its bare name.
    pub programs: BTreeMap<String, String>,
    /// When cove runs as root: `(uid, gid)` of the system users found
    /// (`mysql`, `postgres`), which servers drop to.
    pub users: BTreeMap<String, (u32, u32)>,
}

/// The programs recipes' commands and probes name by path.
const PROGRAMS: [&str; 5] = ["mariadbd", "postgres", "java", "pg_isready", "unshare"];

impl Host {
    /// This machine's.
    pub fn here() -> Host {
        let programs = PROGRAMS
            .iter()
            .filter_map(|p| Some((p.to_string(), find_in_path(p)?.display().to_string())))
            .collect();
        let users = match rustix::process::geteuid().is_root() {
            true => [Recipe::Mariadb, Recipe::Postgres]
                .iter()
                .filter_map(|r| {
                    let user = r.service_user()?;
                    Some((user.to_string(), user_ids(user)?))
                })
                .collect(),
            false => BTreeMap::new(),
        };
        Host { programs, users }
    }

    /// `bin` as found, else the bare name.
    fn binary(&self, bin: &str) -> String {
        self.programs
            .get(bin)
            .cloned()
            .unwrap_or_else(|| bin.to_string())
    }

    /// How `recipe`'s server is run: as its system user when there is one.
    fn runner(&self, recipe: Recipe) -> Runner {
        let ids = recipe
            .service_user()
            .and_then(|u| self.users.get(u))
            .copied();
        Runner {
            ids,
            data: "$COVE_DATA".into(),
            private: "$COVE_SECRETS".into(),
            unshare: self.binary("unshare"),
        }
    }
}

/// `bin` as found on `PATH`, in the sbin directories or in the newest
/// `/usr/lib/postgresql/*/bin`; else the bare name.
fn binary(bin: &str) -> String {
    find_in_path(bin).map_or(bin.to_string(), |p| p.display().to_string())
}

/// The system users recipes run their servers as when cove runs as root
/// (`mysql`, `postgres`): their uids, for the sweep of a killed daemon's
/// leftovers, which otherwise stops only processes of its own uid.
pub fn service_uids() -> Vec<u32> {
    [Recipe::Mariadb, Recipe::Postgres]
        .iter()
        .filter_map(|r| r.runs_as().map(|(uid, _)| uid))
        .collect()
}

/// The service's `entrypoint` and `command`, as written.
fn user_command(svc: &Service) -> Vec<String> {
    svc.entrypoint
        .iter()
        .flatten()
        .chain(svc.command.iter().flatten())
        .cloned()
        .collect()
}

/// A non-empty value of `name` in the service's Compose `environment`.
fn compose_env(svc: &Service, name: &str) -> Option<String> {
    svc.environment
        .get(name)
        .and_then(|v| v.clone())
        .filter(|v| !v.is_empty())
}

/// The secret (its top-level name) the service sees at `path` (its
/// target: `/run/secrets/NAME` unless given), if any.
fn secret_named<'a>(svc: &'a Service, path: &str) -> Option<&'a str> {
    svc.secrets.iter().find_map(|r| {
        let target = match &r.target {
            Some(t) if t.starts_with('/') => t.clone(),
            Some(t) => format!("/run/secrets/{t}"),
            None => format!("/run/secrets/{}", r.source),
        };
        (target == path).then_some(r.source.as_str())
    })
}

/// Whether the service gives its replicas `name`: in `environment:`, as
/// its `_FILE` twin there (a path the recipe reads, as the official
/// images do), or from a secret (`x-cove: {env: NAME}`).
fn given(svc: &Service, name: &str) -> bool {
    compose_env(svc, name).is_some()
        || compose_env(svc, &format!("{name}_FILE")).is_some()
        || svc.secrets.iter().any(|r| {
            r.x_cove
                .as_ref()
                .and_then(|x| x.env.as_deref())
                .is_some_and(|e| e == name)
        })
}

/// Whether a published port's `host_ip` keeps it on this machine (none
/// means every interface, as in Compose).
fn host_ip_is_loopback(ip: Option<&str>) -> bool {
    ip.map(|i| i.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|i| i.parse::<std::net::IpAddr>().ok())
        .is_some_and(|i| i.is_loopback())
}

/// `name` on `PATH`, else in the sbin directories (where Debian puts
/// daemons), else in the newest `/usr/lib/postgresql/<version>/bin`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut postgres: Vec<(u32, PathBuf)> = fs_err::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let v = e.file_name().to_str()?.parse().ok()?;
                    Some((v, e.path().join("bin")))
                })
                .collect()
        })
        .unwrap_or_default();
    postgres.sort();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .chain(postgres.into_iter().rev().map(|(_, p)| p))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(image: &str, command: Option<Vec<&str>>) -> Service {
        let mut v = serde_json::json!({ "image": image });
        if let Some(c) = command {
            v["command"] = serde_json::json!(c);
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn detection_by_image_and_override() {
        assert_eq!(Recipe::detect(&svc("redis:7", None)), Some(Recipe::Redis));
        assert_eq!(
            Recipe::detect(&svc("docker.io/library/mariadb:11", None)),
            Some(Recipe::Mariadb)
        );
        assert_eq!(Recipe::detect(&svc("mysql", None)), Some(Recipe::Mariadb));
        assert_eq!(Recipe::detect(&svc("nginx", None)), None);
    }

    #[test]
    fn an_activemq_broker_is_authenticated_only_with_a_user_and_a_password() {
        let broker = |v: serde_json::Value| -> Service {
            let mut s = serde_json::json!({
                "image": "apache/activemq-classic",
                "ports": [{"target": 61616, "published": "61616"}],
            });
            s.as_object_mut()
                .unwrap()
                .extend(v.as_object().unwrap().clone());
            serde_json::from_value(s).unwrap()
        };
        let r = Recipe::Activemq;
        for (v, open) in [
            (serde_json::json!({}), true),
            (
                serde_json::json!({"environment": {"ACTIVEMQ_CONNECTION_USER": "app"}}),
                true,
            ),
            (
                serde_json::json!({"environment": {"ACTIVEMQ_CONNECTION_PASSWORD": "pw"}}),
                true,
            ),
            (
                serde_json::json!({"environment": {"ACTIVEMQ_CONNECTION_USER": "app", "ACTIVEMQ_CONNECTION_PASSWORD": ""}}),
                true,
            ),
            (
                serde_json::json!({"environment": {"ACTIVEMQ_CONNECTION_USER": "app", "ACTIVEMQ_CONNECTION_PASSWORD": "pw"}}),
                false,
            ),
            (
                serde_json::json!({"environment": {"ACTIVEMQ_CONNECTION_USER": "app", "ACTIVEMQ_CONNECTION_PASSWORD_FILE": "/run/secrets/mq"}}),
                false,
            ),
            (
                serde_json::json!({
                    "environment": {"ACTIVEMQ_CONNECTION_USER": "app"},
                    "secrets": [{"source": "mq", "x-cove": {"env": "ACTIVEMQ_CONNECTION_PASSWORD"}}],
                }),
                false,
            ),
        ] {
            let s = broker(v.clone());
            assert_eq!(r.unauthenticated(&s, None).is_some(), open, "{v}");
            assert_eq!(r.check(&s, None).is_err(), open, "{v}");
        }
        // Only one of the two: refused even on loopback, naming the other.
        let s = broker(serde_json::json!({
            "environment": {"ACTIVEMQ_CONNECTION_USER": "app"},
            "ports": [{"target": 61616, "published": "61616", "host_ip": "127.0.0.1"}],
        }));
        let (what, hint) = r.check(&s, None).unwrap_err();
        assert!(
            what.contains("`ACTIVEMQ_CONNECTION_USER` but not `ACTIVEMQ_CONNECTION_PASSWORD`")
                && what.contains("accept anyone"),
            "{what}"
        );
        assert!(hint.contains("secrets store"), "{hint}");
        // And at start, whatever the plan said: no broker without a password.
        let tmp = tempfile::tempdir().unwrap();
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let e = activemq::prepare_activemq(
            &tmp.path().join("data"),
            &tmp.path().join("private"),
            &env(&[("HOST", "127.0.0.1"), ("ACTIVEMQ_CONNECTION_USER", "app")]),
        )
        .unwrap_err();
        assert!(e.contains("accept anyone"), "{e}");
        assert!(!tmp.path().join("private/conf/activemq.xml").exists());
        activemq::prepare_activemq(
            &tmp.path().join("data"),
            &tmp.path().join("private"),
            &env(&[
                ("HOST", "127.0.0.1"),
                ("ACTIVEMQ_CONNECTION_USER", "app"),
                ("ACTIVEMQ_CONNECTION_PASSWORD", "pw"),
            ]),
        )
        .unwrap();
        let xml = fs_err::read_to_string(tmp.path().join("private/conf/activemq.xml")).unwrap();
        assert!(xml.contains(r#"username="app" password="pw""#), "{xml}");
    }

    #[test]
    fn variables_can_come_from_files() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("pw");
        fs_err::write(&file, "from-file\n").unwrap();
        let env = vec![
            (
                "MARIADB_PASSWORD_FILE".to_string(),
                file.display().to_string(),
            ),
            ("MARIADB_USER".to_string(), "u".to_string()),
            ("MARIADB_USER_FILE".to_string(), "/nonexistent".to_string()),
        ];
        assert_eq!(
            env_get(&env, "MARIADB_PASSWORD").as_deref(),
            Some("from-file")
        );
        assert_eq!(
            env_get(&env, "MARIADB_USER").as_deref(),
            Some("u"),
            "the variable wins"
        );
        assert_eq!(env_get(&env, "MARIADB_DATABASE"), None);
    }

    #[test]
    fn redis_commands() {
        let s = svc("redis:7", Some(vec!["redis-server", "--appendonly", "yes"]));
        let argv = Recipe::Redis.command(&s, &Host::default());
        assert_eq!(&argv[..3], ["redis-server", "--appendonly", "yes"]);
        assert!(argv.contains(&"$HOST".to_string()) && argv.contains(&"$COVE_DATA".to_string()));
        let init = svc(
            "redis:7",
            Some(vec!["redis-cli", "--cluster", "create", "redis-1:6379"]),
        );
        assert_eq!(
            Recipe::Redis.command(&init, &Host::default()),
            ["redis-cli", "--cluster", "create", "redis-1:6379"]
        );
        assert_eq!(Recipe::Redis.probe(&init, &Host::default()), None);
        assert!(!Recipe::Redis.has_data(&init));
    }
}
