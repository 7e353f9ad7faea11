//! Built-in native recipes for well-known images: the host's own binaries
//! run what the image would, with data under the project's state directory
//! (`<state_dir>/data/<service>-<replica>`, kept across runs; cove never
//! deletes it).
//!
//! | image | binaries (Debian package) | honours |
//! |---|---|---|
//! | `redis` | `redis-server`, `redis-cli` (`redis-server`) | `command` arguments (`--cluster-enabled yes`, ...); a `redis-cli ...` command runs as is |
//! | `mariadb`, `mysql` | `mariadbd`, `mariadb-install-db`, `mariadb-admin` (`mariadb-server`) | `MARIADB_`/`MYSQL_` `ROOT_PASSWORD`, `DATABASE`, `USER`, `PASSWORD`, first-start initialisation |
//!
//! A recipe brings its own health probe (the image's usual one, pointed at
//! the replica's address), timed by the service's `healthcheck` settings.

use std::path::{Path, PathBuf};

use cove_spec::model::Service;

use crate::health::Probe;

/// A built-in recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipe {
    Redis,
    Mariadb,
}

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
            _ => None,
        }
    }

    /// The port the image listens on.
    pub fn default_port(self) -> u16 {
        match self {
            Recipe::Redis => 6379,
            Recipe::Mariadb => 3306,
        }
    }

    /// Binaries that must be installed, with their Debian package.
    fn needs(self) -> (&'static [&'static str], &'static str) {
        match self {
            Recipe::Redis => (&["redis-server", "redis-cli"], "redis-server"),
            Recipe::Mariadb => (
                &["mariadbd", "mariadb-install-db", "mariadb-admin"],
                "mariadb-server",
            ),
        }
    }

    /// The first missing binary and its package, if any.
    pub fn missing(self) -> Option<(&'static str, &'static str)> {
        let (bins, package) = self.needs();
        bins.iter()
            .find(|b| find_in_path(b).is_none())
            .map(|b| (*b, package))
    }

    /// The command of a replica. `$HOST`, `$PORT` and `$COVE_DATA` are
    /// expanded per replica.
    pub fn command(self, svc: &Service) -> Vec<String> {
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
                let mut argv: Vec<String> = [
                    "mariadbd",
                    "--no-defaults",
                    "--datadir=$COVE_DATA/db",
                    "--socket=$COVE_DATA/mysqld.sock",
                    "--pid-file=$COVE_DATA/mysqld.pid",
                    "--bind-address=$HOST",
                    "--port=$PORT",
                    "--init-file=$COVE_DATA/init.sql",
                    "--skip-name-resolve",
                ]
                .map(String::from)
                .to_vec();
                if rustix::process::geteuid().is_root() {
                    argv.push("--user=root".into());
                }
                // Server options given as the image's command (`--character-set-server=...`).
                argv.extend(user.into_iter().filter(|a| a.starts_with("--")));
                argv
            }
        }
    }

    /// The probe that says a replica is ready.
    pub fn probe(self, svc: &Service) -> Option<Probe> {
        match self {
            Recipe::Redis if self.command(svc).first().is_some_and(|p| p == "redis-cli") => None,
            Recipe::Redis => Some(Probe::Exec(
                ["redis-cli", "-h", "$HOST", "-p", "$PORT", "ping"]
                    .map(String::from)
                    .to_vec(),
            )),
            Recipe::Mariadb => Some(Probe::Exec(
                [
                    "mariadb-admin",
                    "--no-defaults",
                    "--protocol=tcp",
                    "-h",
                    "$HOST",
                    "-P",
                    "$PORT",
                    "-u",
                    "cove-health",
                    "ping",
                ]
                .map(String::from)
                .to_vec(),
            )),
        }
    }

    /// Whether replicas keep data under the state directory.
    pub fn has_data(self, svc: &Service) -> bool {
        !(self == Recipe::Redis && self.command(svc).first().is_some_and(|p| p == "redis-cli"))
    }
}

/// Prepares a replica's data directory before each start: creates it, and
/// for MariaDB initialises it on first start and writes the init file from
/// the official image's variables. Blocking; run off the async threads.
pub fn prepare(recipe: Recipe, data: &Path, env: &[(String, String)]) -> Result<(), String> {
    fs_err::create_dir_all(data).map_err(|e| e.to_string())?;
    if recipe != Recipe::Mariadb {
        return Ok(());
    }
    let get = |k: &str| {
        ["MARIADB_", "MYSQL_"].iter().find_map(|p| {
            let name = format!("{p}{k}");
            env.iter()
                .rev()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        })
    };
    let db_dir = data.join("db");
    if !db_dir.join("mysql").is_dir() {
        let mut cmd = std::process::Command::new("mariadb-install-db");
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", db_dir.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .stdin(std::process::Stdio::null());
        if rustix::process::geteuid().is_root() {
            cmd.arg("--user=root");
        }
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run mariadb-install-db: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mariadb-install-db failed: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or_default()
            ));
        }
    }
    let q = |s: &str| s.replace('\\', "\\\\").replace('\'', "\\'");
    let qi = |s: &str| s.replace('`', "``");
    let mut sql = String::from("-- written by cove before each start\n");
    sql.push_str("CREATE USER IF NOT EXISTS 'cove-health'@'%';\n");
    if let Some(pw) = get("ROOT_PASSWORD") {
        sql.push_str(&format!("CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '{0}';\nALTER USER 'root'@'%' IDENTIFIED BY '{0}';\nALTER USER 'root'@'localhost' IDENTIFIED BY '{0}';\nGRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;\n", q(&pw)));
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
    write_private(&data.join("init.sql"), &sql)
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

/// `name` on `PATH` (plus the sbin directories, where Debian puts daemons).
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
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
    fn redis_commands() {
        let s = svc("redis:7", Some(vec!["redis-server", "--appendonly", "yes"]));
        let argv = Recipe::Redis.command(&s);
        assert_eq!(&argv[..3], ["redis-server", "--appendonly", "yes"]);
        assert!(argv.contains(&"$HOST".to_string()) && argv.contains(&"$COVE_DATA".to_string()));
        let init = svc(
            "redis:7",
            Some(vec!["redis-cli", "--cluster", "create", "redis-1:6379"]),
        );
        assert_eq!(
            Recipe::Redis.command(&init),
            ["redis-cli", "--cluster", "create", "redis-1:6379"]
        );
        assert_eq!(Recipe::Redis.probe(&init), None);
        assert!(!Recipe::Redis.has_data(&init));
    }
}
