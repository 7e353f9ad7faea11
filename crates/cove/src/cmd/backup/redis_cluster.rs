//! `redis-rdb` for Redis clusters and append-only servers.
//!
//! In a cluster (`--cluster-enabled yes`, each node a service, as
//! examples/buffs runs its six), a master's RDB holds the keys of its
//! slots: each master is backed up by itself, and restored by itself. A
//! replica is not backed up (`cove backup` without names passes over it,
//! saying so; named, it is refused): it copies its master, and after a
//! master's restore it copies the restored data. A replica is not restored
//! either (refused, naming its master).
//!
//! A master is stopped for its restore; should the cluster promote its
//! replica meanwhile (the stop lasted longer than `cluster-node-timeout`,
//! 15 s by default), the restored node comes back as a replica and drops
//! the restored data: cove says so and fails (what to do: fail over back
//! with `CLUSTER FAILOVER` on it, then restore again). Slots moved between
//! masters since the backup are not checked.
//!
//! With `appendonly yes` Redis 7 loads its AOF and ignores an RDB beside
//! it, so the restored RDB becomes the AOF's base instead: the AOF
//! directory (`appenddirname`) kept aside as `<dir>.before-restore-TIME`,
//! and a new one made of the RDB as base (`<appendfilename>.1.base.rdb`),
//! an empty increment and a manifest naming both.

use std::path::{Path, PathBuf};

use super::{Failure, RedisConn, lifecycle};

/// What a Redis server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Not in a cluster.
    Alone,
    /// A cluster master.
    Master,
    /// A cluster replica, of this master (`HOST:PORT`).
    Replica(String),
}

fn field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':'))
}

pub fn role(r: &RedisConn) -> Result<Role, Failure> {
    let cluster = r.cli(&["INFO", "cluster"])?;
    if field(&cluster, "cluster_enabled") != Some("1") {
        return Ok(Role::Alone);
    }
    let repl = r.cli(&["INFO", "replication"])?;
    match field(&repl, "role") {
        Some("master") => Ok(Role::Master),
        _ => Ok(Role::Replica(format!(
            "{}:{}",
            field(&repl, "master_host").unwrap_or("?"),
            field(&repl, "master_port").unwrap_or("?")
        ))),
    }
}

/// Why `service` (a cluster replica of `master`) is not backed up or
/// restored.
pub fn replica_refusal(service: &str, master: &str, restore: bool) -> Failure {
    let what = if restore { "restored" } else { "backed up" };
    Failure::new(format!(
        "service `{service}` is a replica in a Redis cluster (of {master}): it is not {what} by itself"
    ))
    .hint(if restore {
        "restore its master: the replica copies the restored data"
    } else {
        "back up each master; a replica's keys are its master's"
    })
}

/// Where a server keeps its files: read while it runs, for its restore.
pub struct Layout {
    dir: PathBuf,
    dbfilename: String,
    appenddirname: String,
    appendfilename: String,
}

pub fn layout(r: &RedisConn) -> Result<Layout, Failure> {
    Ok(Layout {
        dir: PathBuf::from(r.config("dir")?),
        dbfilename: r.config("dbfilename")?,
        appenddirname: r.config("appenddirname")?,
        appendfilename: r.config("appendfilename")?,
    })
}

/// Puts `rdb` where the stopped server of `layout` loads it at its next
/// start: as the base of a new AOF when `appendonly yes` (see the module
/// doc), else as its RDB file (`dir`/`dbfilename`); what was there kept
/// aside.
pub fn put_rdb(layout: &Layout, rdb: &Path, append_only: bool) -> Result<(), Failure> {
    let dir = &layout.dir;
    let io = |e: std::io::Error| Failure::new(e.to_string());
    if !append_only {
        let dest = dir.join(&layout.dbfilename);
        let tmp = dest.with_extension("rdb.restoring");
        fs_err::copy(rdb, &tmp).map_err(io)?;
        if let Some(kept) = lifecycle::keep_aside(&dest)? {
            eprintln!("cove: the RDB file it had is kept as {}", kept.display());
        }
        fs_err::rename(&tmp, &dest).map_err(io)?;
        return Ok(());
    }
    let aof_dir = dir.join(&layout.appenddirname);
    let name = &layout.appendfilename;
    // Made beside it, then swapped in.
    let mut new_name = aof_dir.file_name().unwrap_or_default().to_os_string();
    new_name.push(".restoring");
    let new = aof_dir.with_file_name(new_name);
    if new.exists() {
        fs_err::remove_dir_all(&new).map_err(io)?;
    }
    fs_err::create_dir_all(&new).map_err(io)?;
    let base = format!("{name}.1.base.rdb");
    let incr = format!("{name}.1.incr.aof");
    fs_err::copy(rdb, new.join(&base)).map_err(io)?;
    fs_err::write(new.join(&incr), b"").map_err(io)?;
    fs_err::write(
        new.join(format!("{name}.manifest")),
        format!("file {base} seq 1 type b\nfile {incr} seq 1 type i\n"),
    )
    .map_err(io)?;
    if let Some(kept) = lifecycle::keep_aside(&aof_dir)? {
        eprintln!("cove: the AOF it had is kept as {}", kept.display());
    }
    fs_err::rename(&new, &aof_dir).map_err(io)?;
    eprintln!("cove: the backup is the base of a new AOF (`appendonly yes`)");
    Ok(())
}

/// After a master's restart: waits (bounded: 2 minutes) until the
/// cluster serves every slot again (`cluster_state:ok`, as the node sees
/// it), then checks that the node is still a master.
pub fn wait_cluster_ok(service: &str, r: &RedisConn) -> Result<(), Failure> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let info = r.cli(&["CLUSTER", "INFO"])?;
        if field(&info, "cluster_state") == Some("ok") {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(Failure::new(format!(
                "the Redis cluster of `{service}` did not reach cluster_state:ok in 2 minutes after the restore"
            ))
            .hint(format!("see `cove logs {service}` and `redis-cli CLUSTER INFO`")));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if let Role::Replica(master) = role(r)? {
        return Err(Failure::new(format!(
            "`{service}` came back as a replica of {master}: the cluster promoted its replica while it was stopped, and it dropped the restored data"
        ))
        .hint(format!(
            "make it master again (`redis-cli CLUSTER FAILOVER` on `{service}`), then restore again"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn info_fields() {
        let info = "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.5\r\nmaster_port:6379\r\n";
        assert_eq!(field(info, "role"), Some("slave"));
        assert_eq!(field(info, "master_port"), Some("6379"));
        assert_eq!(field(info, "cluster_enabled"), None);
    }
}
