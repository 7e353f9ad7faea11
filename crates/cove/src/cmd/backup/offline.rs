//! Restore drills of the methods that need no scratch server: the backup
//! is read back and checked (every blob against its hash and MAC),
//! restored into a private directory under `<state dir>/drill`, checked
//! by what its method's own tool says of it, then by the service's
//! `x-cove.backup.verify.command` if it has one, run with
//! `COVE_VERIFY_PATH` naming what was restored (a file, or the restored
//! directory):
//!
//! - `lmdb`: `mdb_stat` opens the restored environment (its entries are
//!   the drill's figures);
//! - `files`: the restored tree holds as many bytes as the backup read
//!   (its files and bytes are the figures);
//! - `rabbitmq-definitions`: the export parses as RabbitMQ's definitions
//!   (its queues, exchanges, bindings, users and vhosts are counted);
//! - `mariabackup`: `mariabackup --prepare` applies its redo log;
//! - `pg_basebackup`: `pg_verifybackup` checks every file against the
//!   backup's manifest, and the WAL it needs;
//! - `command`: only the service's verify command can say; without one
//!   the drill fails, saying so.
//!
//! The directory goes in every case (a killed cove's, at the next drill).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cove_backup::{Backup, Store};
use cove_spec::xcove::BackupMethod as Method;

use super::figures::{Figures, TableFigures};
use super::{Failure, path_env, short};

/// Whether backups of `method` are drilled here.
pub(super) fn handles(method: &str) -> bool {
    matches!(
        super::method::from_name(method),
        Some(
            Method::Lmdb
                | Method::Files
                | Method::RabbitmqDefinitions
                | Method::Mariabackup
                | Method::PgBasebackup
                | Method::Command
        )
    )
}

/// The drill of `b` (of service `svc`, whose verify command is `check`):
/// the figures it found.
pub(super) fn drill(
    store: &Store,
    b: &Backup,
    work: &Path,
    check: Option<&cove_spec::xcove::StringOrList>,
) -> Result<Figures, Failure> {
    let method = super::method::from_name(&b.meta.method).expect("handled");
    let tree = matches!(
        method,
        Method::Files | Method::Mariabackup | Method::PgBasebackup
    );
    let restored: PathBuf = if tree {
        let dest = work.join("tree");
        let paths = store.restore_tree(&b.id, &dest)?;
        match (method, paths.as_slice()) {
            (Method::Files, _) => dest,
            (_, [one]) => dest.join(one.trim_start_matches('/')),
            _ => {
                return Err(Failure::new(format!(
                    "backup {} holds {} trees, not one {} directory",
                    short(&b.id),
                    paths.len(),
                    b.meta.method
                )));
            }
        }
    } else {
        let file = work.join(b.meta.file_name());
        let mut f = fs_err::File::create(&file).map_err(|e| Failure::new(e.to_string()))?;
        store.restore(&b.id, &mut f)?;
        file
    };
    let figures = match method {
        Method::Lmdb => lmdb(&restored)?,
        Method::Files => files(&restored, b)?,
        Method::RabbitmqDefinitions => rabbitmq(&restored)?,
        Method::Mariabackup => {
            let mut cmd = Command::new("mariabackup");
            cmd.arg("--prepare")
                .arg(format!("--target-dir={}", restored.display()));
            tool(cmd, "mariabackup --prepare")?;
            Figures::new()
        }
        Method::PgBasebackup => {
            let mut cmd = Command::new(pg_tool("pg_verifybackup")?);
            cmd.arg(&restored);
            tool(cmd, "pg_verifybackup")?;
            Figures::new()
        }
        _ => {
            if check.is_none() {
                return Err(Failure::new(format!(
                    "a `command` backup of {} can be checked only by the service's own check: it read back whole, but nothing says it restores",
                    b.meta.service
                ))
                .hint(format!(
                    "give services.{}.x-cove.backup.verify.command: it runs with COVE_VERIFY_PATH naming the restored dump",
                    b.meta.service
                )));
            }
            Figures::new()
        }
    };
    if let Some(cmd) = check {
        let env = [(
            "COVE_VERIFY_PATH".to_string(),
            restored.display().to_string(),
        )];
        super::verify::run_verify_command(&b.meta.service, cmd, &env)?;
    }
    Ok(figures)
}

/// Runs a method's tool on the restored copy: an error with what it said
/// unless it exits 0.
fn tool(mut cmd: Command, name: &str) -> Result<String, Failure> {
    let out = cmd
        .env_clear()
        .envs([path_env()])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Failure::new(format!("cannot run `{name}`: {e}"))
                .hint("scripts/install-packages installs the tools drills use")
        })?;
    if !out.status.success() {
        return Err(Failure::new(format!(
            "`{name}` on the restored copy failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A PostgreSQL client tool: on PATH, else in the newest of Debian's
/// `/usr/lib/postgresql/*/bin`.
fn pg_tool(name: &str) -> Result<PathBuf, Failure> {
    if let Some(p) = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    }) {
        return Ok(p);
    }
    let mut found: Vec<(u32, PathBuf)> = fs_err::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let v: u32 = e.file_name().to_str()?.parse().ok()?;
                    let p = e.path().join("bin").join(name);
                    p.is_file().then_some((v, p))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().map(|(_, p)| p).ok_or_else(|| {
        Failure::new(format!("`{name}` is not installed"))
            .hint("install PostgreSQL's server package (Debian: postgresql)")
    })
}

/// `mdb_stat` of the restored environment file: its entries.
fn lmdb(file: &Path) -> Result<Figures, Failure> {
    let mut cmd = Command::new("mdb_stat");
    cmd.arg("-n").arg(file);
    let said = tool(cmd, "mdb_stat")?;
    let entries = said
        .lines()
        .find_map(|l| l.trim().strip_prefix("Entries:"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            Failure::new(format!(
                "`mdb_stat` said no entry count of the restored environment: {}",
                said.trim()
            ))
        })?;
    Ok(Figures::from([(
        "main".to_string(),
        TableFigures {
            rows: entries,
            sum: None,
        },
    )]))
}

/// The restored tree: as many bytes as the backup read, its files counted.
fn files(dir: &Path, b: &Backup) -> Result<Figures, Failure> {
    let (mut count, mut bytes) = (0u64, 0u64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs_err::read_dir(&d).map_err(|e| Failure::new(e.to_string()))? {
            let e = e.map_err(|e| Failure::new(e.to_string()))?;
            let meta =
                fs_err::symlink_metadata(e.path()).map_err(|e| Failure::new(e.to_string()))?;
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                count += 1;
                bytes += meta.len();
            }
        }
    }
    if bytes != b.size {
        return Err(Failure::new(format!(
            "the restored files hold {bytes} bytes, the backup read {}",
            b.size
        )));
    }
    Ok(Figures::from([(
        "files".to_string(),
        TableFigures {
            rows: count,
            sum: Some(format!("{bytes} bytes")),
        },
    )]))
}

/// RabbitMQ's definitions: parsed, their parts counted.
fn rabbitmq(file: &Path) -> Result<Figures, Failure> {
    let text = fs_err::read_to_string(file).map_err(|e| Failure::new(e.to_string()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Failure::new(format!(
            "the restored export is not RabbitMQ's definitions (JSON): {e}"
        ))
    })?;
    let Some(obj) = v.as_object() else {
        return Err(Failure::new(
            "the restored export is not RabbitMQ's definitions (not a JSON object)",
        ));
    };
    if !obj.contains_key("rabbit_version") && !obj.contains_key("rabbitmq_version") {
        return Err(Failure::new(
            "the restored export is not RabbitMQ's definitions (no rabbit_version)",
        ));
    }
    Ok(["queues", "exchanges", "bindings", "users", "vhosts"]
        .into_iter()
        .map(|k| {
            let n = obj.get(k).and_then(|a| a.as_array()).map_or(0, Vec::len);
            (
                k.to_string(),
                TableFigures {
                    rows: n as u64,
                    sum: None,
                },
            )
        })
        .collect())
}
