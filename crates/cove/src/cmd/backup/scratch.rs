//! A scratch instance of a recipe's server, restored from a backup: the
//! restore drill's (`cove backup verify`, removed when done) and the one
//! `cove restore --to-new` leaves running. Its own directory (`data/`, the
//! server's; `private/`, 0700, files holding its password; `server.log`),
//! a free loopback port, a random password of its own, the same server
//! binaries and set-up as the service's replicas
//! ([`cove_runtime::recipe::scratch_server`]). Never the service's data
//! directory, address or process.
//!
//! [`Instance`]'s drop stops the server (its whole process group) and
//! removes the directory, whatever happened, unless [`Instance::keep`]
//! was called.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cove_runtime::recipe::{Recipe, ScratchSpec, scratch_server};
use cove_spec::model::Service;

use super::figures::{self, Figures, TableFigures};
use super::{Failure, private_file};

/// How long a scratch server may take to answer.
const READY: Duration = Duration::from_secs(180);
/// How long it may take to stop before it is killed.
const STOP: Duration = Duration::from_secs(30);

/// What the server's account is.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Account {
    /// PostgreSQL's superuser (MariaDB: `root`; Redis: none).
    pub user: Option<String>,
    /// PostgreSQL's database.
    pub database: Option<String>,
}

pub struct Instance {
    pub recipe: Recipe,
    pub dir: PathBuf,
    pub host: String,
    pub port: u16,
    pub account: Account,
    password: String,
    child: Option<Child>,
    pub pid: u32,
    keep: bool,
}

/// A free TCP port on 127.0.0.1 now.
fn free_port() -> Result<u16, Failure> {
    std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Failure::new(format!("no free port on 127.0.0.1: {e}")))
}

/// 24 random bytes as hex.
pub fn random_hex() -> Result<String, Failure> {
    use std::io::Read as _;
    let mut bytes = [0u8; 24];
    fs_err::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Failure::new(format!("no random bytes: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn private_dir(dir: &Path) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::create_dir_all(dir).map_err(|e| Failure::new(e.to_string()))?;
    fs_err::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Failure::new(e.to_string()))
}

/// A compose variable of the service, as written.
fn compose_var(svc: &Service, name: &str) -> Option<String> {
    svc.environment
        .get(name)
        .and_then(|v| v.clone())
        .filter(|v| !v.is_empty())
}

impl Instance {
    /// Sets up `dir` and starts the server on it: for Redis with `rdb` as
    /// its data; PostgreSQL's account as `account` says (else the
    /// service's `POSTGRES_USER`/`POSTGRES_DB`). `persist`: Redis saves
    /// its data (an instance kept beside the service) or never (a drill).
    pub fn start(
        recipe: Recipe,
        svc: &Service,
        dir: &Path,
        account: Option<Account>,
        rdb: Option<&Path>,
        persist: bool,
    ) -> Result<Instance, Failure> {
        private_dir(dir)?;
        let private = dir.join("private");
        private_dir(&private)?;
        let data = dir.join("data");
        let password = random_hex()?;
        let port = free_port()?;
        let host = "127.0.0.1".to_string();
        let mut vars: Vec<(String, String)> = Vec::new();
        let account = match recipe {
            Recipe::Postgres => {
                let given = account.unwrap_or(Account {
                    user: None,
                    database: None,
                });
                let user = given
                    .user
                    .or_else(|| compose_var(svc, "POSTGRES_USER"))
                    .unwrap_or_else(|| "postgres".into());
                let db = given
                    .database
                    .or_else(|| compose_var(svc, "POSTGRES_DB"))
                    .unwrap_or_else(|| user.clone());
                vars.push(("POSTGRES_USER".into(), user.clone()));
                vars.push(("POSTGRES_DB".into(), db.clone()));
                vars.push(("POSTGRES_PASSWORD".into(), password.clone()));
                if let Some(a) = compose_var(svc, "POSTGRES_INITDB_ARGS") {
                    vars.push(("POSTGRES_INITDB_ARGS".into(), a));
                }
                Account {
                    user: Some(user),
                    database: Some(db),
                }
            }
            Recipe::Mariadb => {
                vars.push(("MARIADB_ROOT_PASSWORD".into(), password.clone()));
                Account {
                    user: Some("root".into()),
                    database: None,
                }
            }
            Recipe::Redis => {
                vars.push(("REDIS_PASSWORD".into(), password.clone()));
                if !persist {
                    vars.push(("REDIS_SAVE".into(), "no".into()));
                }
                if let Some(rdb) = rdb {
                    fs_err::create_dir_all(&data).map_err(|e| Failure::new(e.to_string()))?;
                    fs_err::copy(rdb, data.join("dump.rdb"))
                        .map_err(|e| Failure::new(e.to_string()))?;
                }
                Account {
                    user: None,
                    database: None,
                }
            }
            other => {
                return Err(Failure::new(format!(
                    "no scratch instance for the {other:?} recipe"
                )));
            }
        };
        let server = scratch_server(&ScratchSpec {
            recipe,
            service: svc,
            data: &data,
            private: &private,
            host: &host,
            port,
            vars: &vars,
        })
        .map_err(|e| Failure::new(format!("cannot set up the scratch instance: {e}")))?;
        let log = fs_err::File::create(dir.join("server.log"))
            .map_err(|e| Failure::new(e.to_string()))?
            .into_parts()
            .0;
        let log2 = log.try_clone().map_err(|e| Failure::new(e.to_string()))?;
        let (prog, args) = server
            .argv
            .split_first()
            .ok_or_else(|| Failure::new("the scratch server has no command"))?;
        use std::os::unix::process::CommandExt as _;
        let child = Command::new(prog)
            .args(args)
            .env_clear()
            .envs(cove_runtime::environ::with(&[]))
            .current_dir(dir)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| Failure::new(format!("cannot run `{prog}`: {e}")))?;
        // For the sweep of a killed cove's drills ([`sweep`]).
        let pid = child.id();
        let _ = fs_err::write(
            dir.join("server.pid"),
            format!("{pid} {}", start_ticks(pid).unwrap_or(0)),
        );
        let mut inst = Instance {
            recipe,
            dir: dir.to_path_buf(),
            host,
            port,
            account,
            password,
            pid: child.id(),
            child: Some(child),
            keep: false,
        };
        inst.wait_ready(server.probe.as_deref())?;
        Ok(inst)
    }

    /// The server's log, its last lines.
    fn log_tail(&self) -> String {
        let text = fs_err::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    fn wait_ready(&mut self, probe: Option<&[String]>) -> Result<(), Failure> {
        let deadline = Instant::now() + READY;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(Failure::new(format!(
                    "the scratch {:?} server exited ({status}) before it answered:\n{}",
                    self.recipe,
                    self.log_tail()
                )));
            }
            let ready = match (self.recipe, probe) {
                (Recipe::Redis, _) => self.redis(&["PING"]).is_ok_and(|o| o.trim() == "PONG"),
                (_, Some(p)) => Command::new(&p[0])
                    .args(&p[1..])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()),
                (_, None) => std::net::TcpStream::connect((self.host.as_str(), self.port)).is_ok(),
            };
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Failure::new(format!(
                    "the scratch {:?} server did not answer in {} s:\n{}",
                    self.recipe,
                    READY.as_secs(),
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Leaves the server running and its directory when dropped.
    pub fn keep(mut self) -> u32 {
        self.keep = true;
        self.child = None;
        self.pid
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// A `PGPASSFILE` for PostgreSQL's account.
    fn pgpass(&self) -> Result<tempfile::NamedTempFile, Failure> {
        private_file(&format!(
            "{}:{}:*:{}:{}\n",
            self.host,
            self.port,
            self.account.user.as_deref().unwrap_or("postgres"),
            self.password
        ))
    }

    fn pg_args(&self) -> Vec<String> {
        vec![
            "-h".into(),
            self.host.clone(),
            "-p".into(),
            self.port.to_string(),
            "-U".into(),
            self.account.user.clone().unwrap_or_default(),
            "-d".into(),
            self.account.database.clone().unwrap_or_default(),
            "--no-password".into(),
        ]
    }

    /// A MariaDB option file with root's account and the address.
    pub fn maria_options(&self) -> String {
        format!(
            "[client]\nuser=root\npassword=\"{}\"\nhost={}\nport={}\nprotocol=TCP\n",
            self.password, self.host, self.port
        )
    }

    fn redis(&self, args: &[&str]) -> Result<String, Failure> {
        let out = Command::new("redis-cli")
            .args(["-h", &self.host, "-p", &self.port.to_string(), "--no-raw"])
            .args(args)
            .env("REDISCLI_AUTH", &self.password)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Failure::new(format!("cannot run `redis-cli`: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || text.starts_with("(error)") {
            return Err(Failure::new(format!(
                "`redis-cli {}` on the scratch instance failed: {text}",
                args.join(" ")
            )));
        }
        Ok(text)
    }

    /// Loads a dump (PostgreSQL's, MariaDB's); Redis loaded its RDB at start.
    pub fn load(&self, dump: &Path) -> Result<(), Failure> {
        let input = || {
            fs_err::File::open(dump)
                .map(|f| Stdio::from(f.into_parts().0))
                .map_err(|e| Failure::new(e.to_string()))
        };
        let (name, out) = match self.recipe {
            Recipe::Postgres => {
                let pass = self.pgpass()?;
                // Roles other than the dump's owner are not in a database's
                // dump: ownership and grants are left out, the data is not.
                let out = Command::new("pg_restore")
                    .args([
                        "--no-owner",
                        "--no-privileges",
                        "--exit-on-error",
                        "--single-transaction",
                    ])
                    .args(self.pg_args())
                    .env_clear()
                    .env("PATH", std::env::var("PATH").unwrap_or_default())
                    .env("PGPASSFILE", pass.path())
                    .stdin(input()?)
                    .stdout(Stdio::null())
                    .output();
                ("pg_restore", out)
            }
            Recipe::Mariadb => {
                let opts = private_file(&self.maria_options())?;
                let out = Command::new("mariadb")
                    .arg(format!("--defaults-extra-file={}", opts.path().display()))
                    .stdin(input()?)
                    .stdout(Stdio::null())
                    .output();
                ("mariadb", out)
            }
            _ => return Ok(()),
        };
        let out = out.map_err(|e| Failure::new(format!("cannot run `{name}`: {e}")))?;
        if !out.status.success() {
            return Err(Failure::new(format!(
                "the backup does not load: `{name}` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// The restored data's figures.
    pub fn figures(&self) -> Result<Figures, Failure> {
        match self.recipe {
            Recipe::Postgres => {
                let pass = self.pgpass()?;
                let out = Command::new("psql")
                    .args(self.pg_args())
                    .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
                    .env_clear()
                    .env("PATH", std::env::var("PATH").unwrap_or_default())
                    .env("PGPASSFILE", pass.path())
                    .stdin(input_of(&format!(
                        "{}{}",
                        figures::PG_SETTINGS,
                        figures::PG_FIGURES
                    ))?)
                    .output()
                    .map_err(|e| Failure::new(format!("cannot run `psql`: {e}")))?;
                if !out.status.success() {
                    return Err(Failure::new(format!(
                        "the restored data's figures: `psql` failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    )));
                }
                let text = String::from_utf8_lossy(&out.stdout);
                figures::parse_pg(text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("{}"))
            }
            Recipe::Mariadb => self.maria_figures(),
            Recipe::Redis => self.redis_figures(),
            _ => Ok(Figures::new()),
        }
    }

    fn maria(&self, sql: &str) -> Result<String, Failure> {
        let opts = private_file(&self.maria_options())?;
        let out = Command::new("mariadb")
            .arg(format!("--defaults-extra-file={}", opts.path().display()))
            .args(["-N", "-B", "-e", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Failure::new(format!("cannot run `mariadb`: {e}")))?;
        if !out.status.success() {
            return Err(Failure::new(format!(
                "`mariadb` on the scratch instance failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Per table: `COUNT(*)` and `CHECKSUM TABLE … EXTENDED`.
    fn maria_figures(&self) -> Result<Figures, Failure> {
        let tables = self.maria(
            "SELECT table_schema, table_name FROM information_schema.tables \
             WHERE table_type = 'BASE TABLE' AND table_schema NOT IN \
             ('mysql', 'sys', 'information_schema', 'performance_schema') ORDER BY 1, 2",
        )?;
        let tables: Vec<(String, String)> = tables
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let mut out = Figures::new();
        if tables.is_empty() {
            return Ok(out);
        }
        let qi = |s: &str| format!("`{}`", s.replace('`', "``"));
        let q = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
        let counts: Vec<String> = tables
            .iter()
            .map(|(d, t)| {
                format!(
                    "SELECT {}, COUNT(*) FROM {}.{}",
                    q(&format!("{d}.{t}")),
                    qi(d),
                    qi(t)
                )
            })
            .collect();
        for l in self.maria(&counts.join(" UNION ALL "))?.lines() {
            if let Some((t, n)) = l.rsplit_once('\t') {
                out.insert(
                    t.to_string(),
                    TableFigures {
                        rows: n.trim().parse().unwrap_or(0),
                        sum: None,
                    },
                );
            }
        }
        let names: Vec<String> = tables
            .iter()
            .map(|(d, t)| format!("{}.{}", qi(d), qi(t)))
            .collect();
        let sums = self.maria(&format!("CHECKSUM TABLE {} EXTENDED", names.join(", ")))?;
        for l in sums.lines() {
            if let Some((t, s)) = l.rsplit_once('\t')
                && let Some(f) = out.get_mut(t)
            {
                f.sum = Some(s.trim().to_string());
            }
        }
        Ok(out)
    }

    /// Per database its keys (`INFO keyspace`), and `dataset`: all keys and
    /// `DEBUG DIGEST` (a digest of every key and value).
    fn redis_figures(&self) -> Result<Figures, Failure> {
        let mut out = Figures::new();
        let mut total = 0;
        for l in self.redis(&["INFO", "keyspace"])?.lines() {
            // `db0:keys=40,expires=0,avg_ttl=0`
            if let Some((db, rest)) = l.trim().split_once(':')
                && db.starts_with("db")
                && let Some(keys) = rest
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("keys="))
                    .and_then(|n| n.parse::<u64>().ok())
            {
                total += keys;
                out.insert(
                    db.to_string(),
                    TableFigures {
                        rows: keys,
                        sum: None,
                    },
                );
            }
        }
        let digest = self.redis(&["DEBUG", "DIGEST"])?;
        out.insert(
            "dataset".into(),
            TableFigures {
                rows: total,
                sum: Some(digest.trim_matches('"').to_string()),
            },
        );
        Ok(out)
    }

    /// The variables a service's verify command gets: the address, and the
    /// account (`COVE_VERIFY_USER`, `COVE_VERIFY_PASSWORD`,
    /// `COVE_VERIFY_DATABASE`, as the recipe has them).
    pub fn verify_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("COVE_VERIFY_HOST".to_string(), self.host.clone()),
            ("COVE_VERIFY_PORT".to_string(), self.port.to_string()),
            ("COVE_VERIFY_PASSWORD".to_string(), self.password.clone()),
        ];
        if let Some(u) = &self.account.user {
            env.push(("COVE_VERIFY_USER".into(), u.clone()));
        }
        if let Some(d) = &self.account.database {
            env.push(("COVE_VERIFY_DATABASE".into(), d.clone()));
        }
        env
    }
}

fn input_of(text: &str) -> Result<Stdio, Failure> {
    let f = private_file(text)?;
    let file = fs_err::File::open(f.path())
        .map_err(|e| Failure::new(e.to_string()))?
        .into_parts()
        .0;
    Ok(Stdio::from(file))
}

/// Stops the process group of `pid` (PostgreSQL with SIGINT, its fast
/// shutdown; others SIGTERM), waits for `pid` to go (bounded), then kills
/// what is left.
pub fn stop_group(recipe: Recipe, pid: u32, child: Option<&mut Child>) {
    use rustix::process::{Pid, Signal, kill_process_group};
    let Some(p) = Pid::from_raw(pid as i32) else {
        return;
    };
    let sig = if recipe == Recipe::Postgres {
        Signal::INT
    } else {
        Signal::TERM
    };
    let _ = kill_process_group(p, sig);
    let deadline = Instant::now() + STOP;
    let mut child = child;
    loop {
        let gone = match child.as_deref_mut() {
            Some(c) => c.try_wait().map(|s| s.is_some()).unwrap_or(true),
            None => !alive(pid),
        };
        if gone {
            break;
        }
        if Instant::now() > deadline {
            let _ = kill_process_group(p, Signal::KILL);
            if let Some(c) = child.as_deref_mut() {
                let _ = c.wait();
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // What else of the group is left (a server's workers).
    let _ = kill_process_group(p, Signal::KILL);
}

/// Whether the process `PID TICKS` in `file` still runs.
fn recorded_alive(file: &Path) -> Option<(u32, bool)> {
    let text = fs_err::read_to_string(file).ok()?;
    let mut words = text.split_whitespace();
    let pid: u32 = words.next()?.parse().ok()?;
    let ticks: u64 = words.next()?.parse().ok()?;
    Some((pid, alive(pid) && start_ticks(pid) == Some(ticks)))
}

/// Marks `dir` (a drill's) as this process's: [`sweep`] leaves it alone
/// while this process runs.
pub fn claim(dir: &Path) {
    let me = std::process::id();
    let _ = fs_err::write(
        dir.join("owner"),
        format!("{me} {}", start_ticks(me).unwrap_or(0)),
    );
}

/// Removes what drills of a cove that was killed left in `root` (each a
/// directory with an `owner` no longer running): their server stopped,
/// their files deleted.
pub fn sweep(root: &Path, recipe_of: impl Fn(&Path) -> Recipe) {
    let Ok(entries) = fs_err::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let dir = e.path();
        if matches!(recorded_alive(&dir.join("owner")), Some((_, true))) {
            continue;
        }
        if let Some((pid, true)) = recorded_alive(&dir.join("i/server.pid")) {
            stop_group(recipe_of(&dir), pid, None);
        }
        eprintln!(
            "cove: removing a drill left by a cove that was stopped: {}",
            dir.display()
        );
        let _ = fs_err::remove_dir_all(&dir);
    }
}

/// Whether `pid` runs (a zombie does not).
pub fn alive(pid: u32) -> bool {
    fs_err::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| !r.starts_with('Z')))
        .unwrap_or(false)
}

/// When `pid` started (clock ticks since boot; `/proc/PID/stat`'s 22nd
/// field): with the pid, says it is still the same process.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let s = fs_err::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = s.rsplit_once(") ")?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl Drop for Instance {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        stop_group(self.recipe, self.pid, self.child.as_mut());
        if let Err(e) = fs_err::remove_dir_all(&self.dir) {
            eprintln!("cove: warning: the scratch instance's files are left: {e}");
        }
    }
}
