//! Built-in native recipes for well-known images: the host's own binaries
//! run what the image would, with data under the project's state directory
//! (`<state_dir>/data/<service>-<replica>`, kept across runs; cove never
//! deletes it).
//!
//! | image | binaries (Debian package) | honours |
//! |---|---|---|
//! | `redis` | `redis-server`, `redis-cli` (`redis-server`) | `command` arguments (`--cluster-enabled yes`, ...); a `redis-cli ...` command runs as is |
//! | `mariadb`, `mysql` | `mariadbd`, `mariadb-install-db`, `mariadb-admin` (`mariadb-server`) | `MARIADB_`/`MYSQL_` `ROOT_PASSWORD`, `DATABASE`, `USER`, `PASSWORD`, first-start initialisation |
//! | `postgres` | `postgres`, `initdb`, `pg_isready` (`postgresql`; found in `/usr/lib/postgresql/<newest>/bin` too) | `POSTGRES_USER`, `POSTGRES_PASSWORD`, `POSTGRES_DB`, `POSTGRES_INITDB_ARGS`, `POSTGRES_HOST_AUTH_METHOD`, `command: postgres -c ...`, first-start initialisation |
//!
//! | `activemq`, `activemq-classic` | `java`, `/usr/share/activemq/bin/activemq.jar` (`activemq`) | OpenWire on port 61616 and STOMP on 61613 of the replica's address, `ACTIVEMQ_CONNECTION_USER`/`ACTIVEMQ_CONNECTION_PASSWORD` (authentication), `ACTIVEMQ_OPTS` (JVM options; default `-Xms64M -Xmx256M`) |
//! | `rabbitmq` | `/usr/lib/rabbitmq/bin/rabbitmq-server` (`rabbitmq-server`) | AMQP on port 5672 of the replica's address, `RABBITMQ_DEFAULT_USER`/`RABBITMQ_DEFAULT_PASS` (required: no default `guest`), `RABBITMQ_DEFAULT_VHOST`; a `*-management` tag enables the management plugin on 15672 |
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
//!   replica's private tmpfs.
//! - Redis, ActiveMQ: a service without authentication (no `--requirepass`,
//!   no `ACTIVEMQ_CONNECTION_USER`/`PASSWORD`) may not be published
//!   (`ports:`) on an address other than loopback.
//! - RabbitMQ: no default `guest` account: `RABBITMQ_DEFAULT_USER` and
//!   `RABBITMQ_DEFAULT_PASS` are required (and not `guest`/`guest`).
//!
//! A recipe brings its own health probe (the image's usual one, pointed at
//! the replica's address), timed by the service's `healthcheck` settings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cove_spec::model::Service;

use crate::health::Probe;

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
    pub fn check(self, svc: &Service) -> Result<(), (String, String)> {
        let env = |k: &str| compose_env(svc, k);
        let has = |k: &str| env(k).is_some() || env(&format!("{k}_FILE")).is_some();
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
        if let Some(what) = self.unauthenticated(svc)
            && let Some(port) = svc
                .ports
                .iter()
                .find(|p| !host_ip_is_loopback(p.host_ip.as_deref()))
        {
            let ip = port.host_ip.as_deref().unwrap_or("0.0.0.0");
            let hint = match self {
                Recipe::Redis => {
                    "give it a password (`--requirepass`, or a config file from the secrets store with `requirepass`), or publish it on loopback only (`127.0.0.1:HOST:CONTAINER`)"
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
    pub fn unauthenticated(self, svc: &Service) -> Option<String> {
        let env = |k: &str| compose_env(svc, k);
        match self {
            Recipe::Redis => {
                // Redis's command names nothing of the machine.
                let argv = self.command(svc, &Host::default());
                if argv.first().is_some_and(|p| p == "redis-cli") {
                    return None;
                }
                let config_file = argv.get(1).is_some_and(|a| !a.starts_with('-'));
                let protected = argv
                    .iter()
                    .any(|a| a == "--requirepass" || a == "--aclfile" || a == "--user");
                (!protected && !config_file)
                    .then(|| "redis-server has no password (`--requirepass`)".to_string())
            }
            Recipe::Activemq => {
                let user = env("ACTIVEMQ_CONNECTION_USER");
                (user.is_none()).then(|| {
                    "the broker has no user (`ACTIVEMQ_CONNECTION_USER`/`ACTIVEMQ_CONNECTION_PASSWORD`)".to_string()
                })
            }
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
        let user: Vec<String> = svc
            .entrypoint
            .iter()
            .flatten()
            .chain(svc.command.iter().flatten())
            .cloned()
            .collect();
        match self {
            Recipe::Redis => {
                // `redis-cli ...` (a cluster-init job, say) runs as written.
                if user.first().is_some_and(|p| p == "redis-cli") {
                    return user;
                }
                let args = match user.first().map(String::as_str) {
                    Some("redis-server") => user[1..].to_vec(),
                    _ => user,
                };
                let clustered = args.iter().any(|a| a == "--cluster-enabled");
                let mut argv = vec!["redis-server".to_string()];
                // A config file given first stays first.
                argv.extend(args);
                if clustered {
                    // Cluster nodes must tell each other the replica's own address.
                    argv.extend(["--cluster-announce-ip", "$HOST"].map(String::from));
                }
                argv.extend(
                    [
                        "--bind",
                        "$HOST",
                        "--port",
                        "$PORT",
                        "--dir",
                        "$COVE_DATA",
                        "--daemonize",
                        "no",
                        "--protected-mode",
                        "no",
                    ]
                    .map(String::from),
                );
                argv
            }
            Recipe::Mariadb => {
                let runner = host.runner(self);
                let (data, private) = runner.dirs();
                let mut argv: Vec<String> = vec![
                    host.binary("mariadbd"),
                    "--no-defaults".into(),
                    format!("--datadir={data}/db"),
                    format!("--socket={data}/run/mysqld.sock"),
                    format!("--pid-file={data}/run/mysqld.pid"),
                    "--bind-address=$HOST".into(),
                    "--port=$PORT".into(),
                    format!("--init-file={private}/init.sql"),
                    "--skip-name-resolve".into(),
                    // `SELECT ... INTO OUTFILE` and `LOAD DATA INFILE` only there.
                    format!("--secure-file-priv={data}/files"),
                ];
                // Server options given as the image's command (`--character-set-server=...`).
                argv.extend(user.into_iter().filter(|a| a.starts_with("--")));
                runner.argv(argv)
            }
            Recipe::Postgres => {
                let runner = host.runner(self);
                let (data, _) = runner.dirs();
                let mut argv = vec![
                    host.binary("postgres"),
                    "-D".into(),
                    format!("{data}/pg"),
                    "-h".into(),
                    "$HOST".into(),
                    "-p".into(),
                    "$PORT".into(),
                    "-k".into(),
                    format!("{data}/run"),
                ];
                // `command: postgres -c max_connections=200`: the options.
                let args = match user.first().map(String::as_str) {
                    Some("postgres") => &user[1..],
                    _ => &user[..],
                };
                argv.extend(args.iter().cloned());
                runner.argv(argv)
            }
            Recipe::Rabbitmq { .. } => {
                // The settings are in the env file `prepare` writes.
                [
                    "env",
                    "HOME=$COVE_DATA",
                    "RABBITMQ_CONF_ENV_FILE=$COVE_SECRETS/rabbitmq-env.conf",
                    "ERL_EPMD_ADDRESS=127.0.0.1",
                    RABBITMQ_SERVER,
                ]
                .map(String::from)
                .to_vec()
            }
            Recipe::Activemq => {
                let mut argv = vec![host.binary("java")];
                let opts = svc
                    .environment
                    .get("ACTIVEMQ_OPTS")
                    .and_then(|v| v.as_deref())
                    .and_then(|v| cove_spec::shell_words::split(v).ok())
                    .unwrap_or_else(|| vec!["-Xms64M".into(), "-Xmx256M".into()]);
                argv.extend(opts);
                argv.extend(
                    [
                        &format!("-Dactivemq.home={ACTIVEMQ_HOME}"),
                        "-Dactivemq.base=$COVE_DATA",
                        "-Dactivemq.conf=$COVE_SECRETS/conf",
                        "-Dactivemq.data=$COVE_DATA/data",
                        "-Dlog4j.configuration=file:$COVE_SECRETS/conf/log4j.properties",
                        "-jar",
                        &format!("{ACTIVEMQ_HOME}/bin/activemq.jar"),
                        "start",
                        "xbean:file:$COVE_SECRETS/conf/activemq.xml",
                    ]
                    .map(String::from),
                );
                argv
            }
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
            Recipe::Rabbitmq { .. } => Some(Probe::Tcp { port: AMQP_PORT }),
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
        Recipe::Mariadb => prepare_mariadb(data, &private()?, env, ids),
        Recipe::Postgres => prepare_postgres(data, &private()?, env, ids),
        Recipe::Activemq => prepare_activemq(data, &private()?, env),
        Recipe::Rabbitmq { management } => prepare_rabbitmq(data, &private()?, env, management),
    }
}

/// Writes the node's environment and configuration before each start: a
/// node name unique on this host (from the replica's address), AMQP (and
/// distribution) on the replica's address, data and logs under its data
/// directory, the image's default user.
fn prepare_rabbitmq(
    data: &Path,
    private: &Path,
    env: &[(String, String)],
    management: bool,
) -> Result<(), String> {
    let host = env_get(env, "HOST").ok_or("the replica has no HOST")?;
    let octets: Vec<&str> = host.split('.').collect();
    let d = data.display();
    let [epmd, dist] = free_loopback_ports()?;
    let env_file = format!(
        "# Written by cove before each start.\n\
         ERL_EPMD_PORT={epmd}\n\
         NODENAME=cove-{node}@localhost\n\
         NODE_IP_ADDRESS={host}\n\
         NODE_PORT={AMQP_PORT}\n\
         DIST_PORT={dist}\n\
         MNESIA_BASE={d}/mnesia\n\
         LOG_BASE={d}/log\n\
         LOGS=-\n\
         CONFIG_FILE={p}/rabbitmq\n\
         ENABLED_PLUGINS_FILE={d}/enabled_plugins\n\
         PID_FILE={d}/rabbitmq.pid\n\
         SERVER_ADDITIONAL_ERL_ARGS=\"-kernel inet_dist_use_interface {{{erl_ip}}}\"\n",
        node = octets.join("-"),
        erl_ip = octets.join(","),
        p = private.display(),
    );
    write_private(&private.join("rabbitmq-env.conf"), &env_file)?;
    // `rabbitmq.conf` values run to the end of the line.
    let one_line = |k: &str, v: String| -> Result<String, String> {
        if v.contains(['\n', '\r']) {
            return Err(format!("{k} must be on one line"));
        }
        Ok(v)
    };
    let user = one_line(
        "RABBITMQ_DEFAULT_USER",
        env_get(env, "RABBITMQ_DEFAULT_USER")
            .ok_or("RABBITMQ_DEFAULT_USER is not set (cove makes no `guest` account)")?,
    )?;
    let pass = one_line(
        "RABBITMQ_DEFAULT_PASS",
        env_get(env, "RABBITMQ_DEFAULT_PASS")
            .ok_or("RABBITMQ_DEFAULT_PASS is not set (cove makes no `guest` account)")?,
    )?;
    let mut conf = format!(
        "# Written by cove before each start.\n\
         loopback_users = none\n\
         default_user = {user}\n\
         default_pass = {pass}\n"
    );
    if let Some(vhost) = env_get(env, "RABBITMQ_DEFAULT_VHOST") {
        conf.push_str(&format!(
            "default_vhost = {}\n",
            one_line("RABBITMQ_DEFAULT_VHOST", vhost)?
        ));
    }
    let plugins = if management {
        conf.push_str(&format!(
            "management.tcp.ip = {host}\nmanagement.tcp.port = {RABBITMQ_MANAGEMENT_PORT}\n"
        ));
        "[rabbitmq_management].\n"
    } else {
        "[].\n"
    };
    write_private(&private.join("rabbitmq.conf"), &conf)?;
    write_private(&data.join("enabled_plugins"), plugins)
}

/// Writes the broker's configuration before each start: OpenWire and STOMP
/// on the replica's address, KahaDB under its data directory, logs to the
/// console (which cove keeps), and a user when the image's variables ask.
fn prepare_activemq(data: &Path, private: &Path, env: &[(String, String)]) -> Result<(), String> {
    let host = env_get(env, "HOST").ok_or("the replica has no HOST")?;
    let conf = private.join("conf");
    fs_err::create_dir_all(&conf).map_err(|e| e.to_string())?;
    fs_err::create_dir_all(data.join("data")).map_err(|e| e.to_string())?;
    let x = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let auth = match (
        env_get(env, "ACTIVEMQ_CONNECTION_USER"),
        env_get(env, "ACTIVEMQ_CONNECTION_PASSWORD"),
    ) {
        (Some(user), Some(password)) => format!(
            r#"
    <plugins>
      <simpleAuthenticationPlugin>
        <users>
          <authenticationUser username="{}" password="{}" groups="users,admins"/>
        </users>
      </simpleAuthenticationPlugin>
    </plugins>"#,
            x(&user),
            x(&password)
        ),
        _ => String::new(),
    };
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by cove before each start. -->
<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
                           http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="cove" useJmx="false"
          dataDirectory="{data}/data">
    <persistenceAdapter>
      <kahaDB directory="{data}/data/kahadb"/>
    </persistenceAdapter>{auth}
    <transportConnectors>
      <transportConnector name="openwire" uri="tcp://{host}:{OPENWIRE_PORT}"/>
      <transportConnector name="stomp" uri="stomp://{host}:{STOMP_PORT}"/>
    </transportConnectors>
  </broker>
</beans>
"#,
        data = x(&data.display().to_string()),
        host = x(&host),
    );
    write_private(&conf.join("activemq.xml"), &xml)?;
    // Debian's broker logs with log4j 1.2.
    let log4j = "log4j.rootLogger=INFO, console\n\
                 log4j.appender.console=org.apache.log4j.ConsoleAppender\n\
                 log4j.appender.console.layout=org.apache.log4j.PatternLayout\n\
                 log4j.appender.console.layout.ConversionPattern=%-5p | %m%n\n";
    write_private(&conf.join("log4j.properties"), log4j)
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

/// A non-empty value of `name` in the service's Compose `environment`.
fn compose_env(svc: &Service, name: &str) -> Option<String> {
    svc.environment
        .get(name)
        .and_then(|v| v.clone())
        .filter(|v| !v.is_empty())
}

/// Whether a published port's `host_ip` keeps it on this machine (none
/// means every interface, as in Compose).
fn host_ip_is_loopback(ip: Option<&str>) -> bool {
    ip.map(|i| i.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|i| i.parse::<std::net::IpAddr>().ok())
        .is_some_and(|i| i.is_loopback())
}

/// How a recipe's server and set-up tools run: as root, as the server's
/// system user (`ids`) in a mount namespace of their own (see
/// [`as_service_user`]); otherwise as they are. `data` and `private` are
/// the replica's directories as cove names them (`$COVE_DATA` and
/// `$COVE_SECRETS` in a command, expanded per replica; real paths at
/// set-up).
struct Runner {
    ids: Option<(u32, u32)>,
    data: String,
    private: String,
    /// `unshare`, as found.
    unshare: String,
}

impl Runner {
    fn new(ids: Option<(u32, u32)>, data: impl ToString, private: impl ToString) -> Runner {
        Runner {
            ids,
            data: data.to_string(),
            private: private.to_string(),
            unshare: binary("unshare"),
        }
    }

    /// Where the program sees the data and private directories.
    fn dirs(&self) -> (String, String) {
        match self.ids {
            Some(_) => (NS_DATA.to_string(), NS_PRIVATE.to_string()),
            None => (self.data.clone(), self.private.clone()),
        }
    }

    /// The command that runs `argv` as this runner says.
    fn argv(&self, argv: Vec<String>) -> Vec<String> {
        match self.ids {
            Some(ids) => as_service_user(ids, &self.data, &self.private, &self.unshare, argv),
            None => argv,
        }
    }
}

/// `argv` run as `uid`/`gid` in a mount namespace of its own, where
/// `data` (the replica's data directory, its owner's) is bound at
/// [`NS_DATA`] and a copy of `private` (the replica's private directory,
/// if any) is on a tmpfs at [`NS_PRIVATE`] owned by `uid`, 0700. The
/// process keeps its pid through the chain (`unshare`, `sh`, `setpriv`
/// each exec the next), so signals and the process group stay the
/// server's. No capability survives `setpriv`, and no set-uid program
/// can give one back (`--no-new-privs`).
fn as_service_user(
    (uid, gid): (u32, u32),
    data: &str,
    private: &str,
    unshare: &str,
    argv: Vec<String>,
) -> Vec<String> {
    let script = format!(
        "set -e; mount --bind \"$1\" {NS_DATA}; \
         mount -t tmpfs -o mode=0700,uid={uid},gid={gid},size=16m cove-private {NS_PRIVATE}; \
         if [ -d \"$2\" ]; then cp -R \"$2\"/. {NS_PRIVATE}/; chown -R {uid}:{gid} {NS_PRIVATE}; fi; \
         shift 2; \
         exec setpriv --reuid={uid} --regid={gid} --clear-groups --no-new-privs \
         --inh-caps=-all --bounding-set=-all -- \"$@\""
    );
    let mut out = vec![
        unshare.into(),
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
        "--".into(),
        "/bin/sh".into(),
        "-c".into(),
        script,
        "cove-as-service-user".into(),
        data.into(),
        private.into(),
    ];
    out.extend(argv);
    out
}

/// Makes the empty directories servers' namespaces mount over
/// ([`NS_DATA`], [`NS_PRIVATE`]): root's, 0755, real directories (`/run`
/// is root's alone, so nobody else can plant them).
fn ensure_ns_dirs() -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for d in ["/run/cove-ns", NS_DATA, NS_PRIVATE] {
        match fs_err::symlink_metadata(d) {
            Ok(m) if m.is_dir() && m.uid() == 0 => {}
            Ok(_) => {
                return Err(format!(
                    "{d} is not a directory of root's; remove it (cove makes it)"
                ));
            }
            Err(_) => {
                fs_err::create_dir(d).map_err(|e| e.to_string())?;
                fs_err::set_permissions(d, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

/// Makes `dir` (if missing) owned by `ids` (when given) and 0700; with
/// `deep`, what is inside too (a data directory written by an earlier cove
/// as root), without following symbolic links.
fn own_dir(dir: &Path, ids: Option<(u32, u32)>, deep: bool) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    fs_err::create_dir_all(dir).map_err(|e| e.to_string())?;
    let meta = fs_err::symlink_metadata(dir).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    if let Some((uid, gid)) = ids
        && (meta.uid() != uid || meta.gid() != gid)
    {
        chown_tree(dir, uid, gid, deep).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    if meta.mode() & 0o777 != 0o700 {
        fs_err::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn chown_tree(path: &Path, uid: u32, gid: u32, deep: bool) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if deep && fs_err::symlink_metadata(path)?.is_dir() {
        for e in fs_err::read_dir(path)? {
            chown_tree(&e?.path(), uid, gid, true)?;
        }
    }
    Ok(())
}

/// `(uid, gid)` of a user in `/etc/passwd`.
pub(crate) fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = fs_err::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name))
            .then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))?
    })
}

/// A non-empty value of `name` in `env`.
/// A variable of the replica, else the contents of the file its `_FILE`
/// twin names (as the official images read `MARIADB_PASSWORD_FILE`), without
/// the last line breaks.
fn env_get(env: &[(String, String)], name: &str) -> Option<String> {
    crate::vars::env_value(env, name)
        .filter(|v| !v.is_empty())
        .map(String::from)
        .or_else(|| {
            let path = crate::vars::env_value(env, &format!("{name}_FILE"))?;
            let text = fs_err::read_to_string(path).ok()?;
            Some(text.trim_end_matches(['\n', '\r']).to_string()).filter(|v| !v.is_empty())
        })
}

/// Before each start: the data directory and the socket's (`run/`) are
/// the server's user's, 0700. First start: `initdb` (superuser
/// `POSTGRES_USER`, password `POSTGRES_PASSWORD`, given in a file on the
/// replica's private tmpfs) into a scratch directory, `POSTGRES_DB` created
/// in single-user mode, then renamed into place, so a failed
/// initialisation leaves nothing half-made. Connections need the password
/// (`scram-sha-256`), over TCP and over the socket, unless
/// `POSTGRES_HOST_AUTH_METHOD` says otherwise.
fn prepare_postgres(
    data: &Path,
    private: &Path,
    env: &[(String, String)],
    ids: Option<(u32, u32)>,
) -> Result<(), String> {
    own_dir(&data.join("run"), ids, false)?;
    let pg = data.join("pg");
    if pg.join("PG_VERSION").is_file() {
        // Written as root by earlier versions of cove: the server's now.
        return own_dir(&pg, ids, true);
    }
    let user = env_get(env, "POSTGRES_USER").unwrap_or_else(|| "postgres".into());
    let password = env_get(env, "POSTGRES_PASSWORD");
    let db = env_get(env, "POSTGRES_DB").unwrap_or_else(|| user.clone());
    let auth = match (env_get(env, "POSTGRES_HOST_AUTH_METHOD"), &password) {
        (Some(m), _) => m,
        (None, Some(_)) => "scram-sha-256".into(),
        (None, None) => {
            return Err(
                "the database is not initialised and POSTGRES_PASSWORD is not set \
                 (set it, or POSTGRES_HOST_AUTH_METHOD=trust to allow connections without one)"
                    .into(),
            );
        }
    };
    let local = if password.is_some() {
        "scram-sha-256".to_string()
    } else {
        auth.clone()
    };
    let scratch = data.join("pg.init");
    if scratch.exists() {
        fs_err::remove_dir_all(&scratch).map_err(|e| e.to_string())?;
    }
    let runner = Runner::new(ids, data.display(), private.display());
    let (d, p) = runner.dirs();
    let pwfile = private.join("pwfile");
    let mut argv = vec![
        binary("initdb"),
        "-D".to_string(),
        format!("{d}/pg.init"),
        "-U".into(),
        user.clone(),
        "--encoding=UTF8".into(),
        format!("--auth-local={local}"),
        format!("--auth-host={auth}"),
    ];
    if let Some(pw) = &password {
        write_private(&pwfile, pw)?;
        argv.push(format!("--pwfile={p}/pwfile"));
    }
    if let Some(extra) = env_get(env, "POSTGRES_INITDB_ARGS") {
        argv.extend(
            cove_spec::shell_words::split(&extra)
                .map_err(|e| format!("POSTGRES_INITDB_ARGS cannot be split: {e}"))?,
        );
    }
    let out = run(&runner.argv(argv), None);
    let _ = fs_err::remove_file(&pwfile);
    out?;
    if db != "postgres" {
        let argv = vec![
            binary("postgres"),
            "--single".to_string(),
            "-D".into(),
            format!("{d}/pg.init"),
            "postgres".into(),
        ];
        let sql = format!("CREATE DATABASE \"{}\";\n", db.replace('"', "\"\""));
        run(&runner.argv(argv), Some(&sql))?;
    }
    fs_err::rename(&scratch, &pg).map_err(|e| e.to_string())
}

/// Runs a set-up command to completion; its last error line on failure.
fn run(argv: &[String], stdin: Option<&str>) -> Result<(), String> {
    use std::io::Write as _;
    let (prog, args) = argv.split_first().ok_or("empty command")?;
    let mut child = std::process::Command::new(prog)
        .args(args)
        // The daemon's allowlisted variables only (see `environ`).
        .env_clear()
        .envs(crate::environ::with(&[]))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.unwrap_or("").as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{prog}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    // Name the tool, not the `unshare` wrapper around it.
    let name = argv
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(|a| {
            Path::new(a)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
        })
        .find(|n| n != "unshare")
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&out.stderr);
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output");
    Err(format!("{name} failed: {last}"))
}

/// Before each start: the data directory and its `db/` (the server's
/// files), `run/` (its socket) and `files/` (`--secure-file-priv`) are the
/// server's user's, 0700. First start: `mariadb-install-db`, refused (as
/// the image does) when nothing says what root's password is. Every start:
/// the init file (on the private tmpfs) drops every account without a
/// password that TCP could reach (`root` at `127.0.0.1`, `::1`, the host
/// name; anonymous ones), keeps the health account to the socket, and sets
/// the image's users and database from its variables.
fn prepare_mariadb(
    data: &Path,
    private: &Path,
    env: &[(String, String)],
    ids: Option<(u32, u32)>,
) -> Result<(), String> {
    let get = |k: &str| {
        ["MARIADB_", "MYSQL_"]
            .iter()
            .find_map(|p| env_get(env, &format!("{p}{k}")))
    };
    let yes = |k: &str| get(k).is_some_and(|v| v != "0" && v != "no");
    let db_dir = data.join("db");
    own_dir(&db_dir, ids, true)?;
    own_dir(&data.join("run"), ids, false)?;
    own_dir(&data.join("files"), ids, false)?;
    let root_password = get("ROOT_PASSWORD");
    let allow_empty = yes("ALLOW_EMPTY_ROOT_PASSWORD") || yes("ALLOW_EMPTY_PASSWORD");
    let mut random = None;
    if !db_dir.join("mysql").is_dir() {
        if root_password.is_none() && !allow_empty {
            if !yes("RANDOM_ROOT_PASSWORD") {
                return Err("the database is not initialised and root's password is not given: \
                     set MARIADB_ROOT_PASSWORD (from the secrets store: MARIADB_ROOT_PASSWORD_FILE), \
                     MARIADB_RANDOM_ROOT_PASSWORD=1 or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1, as the image asks"
                    .into());
            }
            let pw = random_password()?;
            // Kept for its owner, as the image prints it once.
            write_private(&data.join("generated-root-password"), &pw)?;
            random = Some(pw);
        }
        let runner = Runner::new(ids, data.display(), private.display());
        let (d, _) = runner.dirs();
        let argv = vec![
            "mariadb-install-db".to_string(),
            "--no-defaults".into(),
            format!("--datadir={d}/db"),
            "--auth-root-authentication-method=normal".into(),
            "--skip-test-db".into(),
        ];
        run(&runner.argv(argv), None)?;
    }
    let q = |s: &str| s.replace('\\', "\\\\").replace('\'', "\\'");
    let qi = |s: &str| s.replace('`', "``");
    let mut sql = String::from(
        "-- written by cove before each start\n\
         DELETE FROM mysql.global_priv WHERE User = '' \
           OR (User = 'root' AND Host NOT IN ('localhost', '%')) \
           OR (User = 'cove-health' AND Host <> 'localhost');\n\
         DELETE FROM mysql.proxies_priv WHERE User = '' \
           OR (User = 'root' AND Host NOT IN ('localhost', '%'));\n\
         FLUSH PRIVILEGES;\n\
         CREATE USER IF NOT EXISTS 'cove-health'@'localhost';\n",
    );
    let root = |pw: &str| {
        format!(
            "CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '{0}';\n\
             ALTER USER 'root'@'%' IDENTIFIED BY '{0}';\n\
             ALTER USER 'root'@'localhost' IDENTIFIED BY '{0}';\n\
             GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;\n",
            q(pw)
        )
    };
    match (&root_password, &random) {
        (Some(pw), _) | (None, Some(pw)) => sql.push_str(&root(pw)),
        (None, None) if allow_empty => sql.push_str(&root("")),
        (None, None) => {}
    }
    if let Some(db) = get("DATABASE") {
        sql.push_str(&format!("CREATE DATABASE IF NOT EXISTS `{}`;\n", qi(&db)));
    }
    if let (Some(user), Some(pw)) = (get("USER"), get("PASSWORD")) {
        sql.push_str(&format!("CREATE USER IF NOT EXISTS '{0}'@'%' IDENTIFIED BY '{1}';\nALTER USER '{0}'@'%' IDENTIFIED BY '{1}';\n", q(&user), q(&pw)));
        if let Some(db) = get("DATABASE") {
            sql.push_str(&format!(
                "GRANT ALL ON `{}`.* TO '{}'@'%';\n",
                qi(&db),
                q(&user)
            ));
        }
    }
    write_private(&private.join("init.sql"), &sql)
}

/// 24 random bytes from the kernel, as hex.
fn random_password() -> Result<String, String> {
    use std::io::Read as _;
    let mut buf = [0u8; 24];
    fs_err::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("no random bytes: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Two TCP ports free on 127.0.0.1 now: for a node's own port mapper
/// (`epmd`), which it starts and which then lives and dies with it, and
/// for its distribution. One mapper shared by every node on 4369 (Erlang's
/// default) would belong to the replica that started it, and go with it
/// under the others' feet; one distribution port for all (25672) makes
/// nodes that start together refuse each other ("could not bind to
/// distribution port": each checks it on 127.0.0.1).
fn free_loopback_ports() -> Result<[u16; 2], String> {
    let bind = || {
        std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| format!("no free port on 127.0.0.1 for the Erlang node: {e}"))
    };
    // Both held at once, so they differ.
    let (a, b) = (bind()?, bind()?);
    let port =
        |l: &std::net::TcpListener| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string());
    Ok([port(&a)?, port(&b)?])
}

/// Writes a file readable only by its owner, atomically (temp + rename).
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use fs_err::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = fs_err::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| e.to_string())?;
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(|e| e.to_string())?;
    fs_err::rename(&tmp, path).map_err(|e| e.to_string())
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
