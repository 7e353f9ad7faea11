//! `cove top [SERVICE...]`: the processes of each running replica, in
//! `ps -ef`'s columns (UID PID PPID C STIME TTY TIME CMD), as `docker
//! compose top` prints them: the replica's name, its table, a blank line.
//!
//! A native replica's processes are its leader (the pid `cove ps` shows)
//! and every descendant, read from `/proc` ([`tree`]); STIME is in UTC.
//! A container's are the engine's (its `top`, run with `-ef`).

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cove_daemon::api::{Replica, ReplicaState};

use crate::cli::{ProjectArgs, TopArgs};
use crate::daemon;
use crate::output::stderr_style;

const TITLES: [&str; 8] = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];

/// Clock ticks a second in `/proc/PID/stat` (USER_HZ: 100 on every
/// architecture Linux exports to user space as such).
const HZ: u64 = 100;

pub fn run(project_args: &ProjectArgs, args: &TopArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let project = match super::ps::load_naming(project_args, &args.service_names) {
        Ok(project) => project,
        Err(code) => return Ok(code),
    };
    let client = daemon::find(&project)?;
    let rt = daemon::runtime()?;
    let rows: Vec<Replica> = match rt.block_on(super::ps::rows(&client)) {
        Ok(rows) => rows
            .into_iter()
            .filter(|r| args.service_names.is_empty() || args.service_names.contains(&r.service))
            .filter(|r| matches!(r.state, ReplicaState::Running | ReplicaState::Stopping))
            .collect(),
        Err(e) => {
            daemon::print_error(&style, &e);
            return Ok(ExitCode::from(1));
        }
    };
    let mut engine = None;
    let mut failed = false;
    let mut out = String::new();
    for r in &rows {
        let table = match &r.container {
            Some(name) => {
                let top = rt.block_on(async {
                    if engine.is_none() {
                        engine = Some(cove_runtime::docker::Engine::connect().await?);
                    }
                    engine.as_ref().expect("connected").top(name).await
                });
                match top {
                    Ok(top) => (top.titles, top.processes),
                    Err(e) => {
                        daemon::print_engine_error(&style, "", &e);
                        failed = true;
                        continue;
                    }
                }
            }
            None => {
                let Some(pid) = r.pid else { continue };
                (
                    TITLES.map(String::from).to_vec(),
                    native(pid, &users(), SystemTime::now()),
                )
            }
        };
        out.push_str(&super::ps::id(r));
        out.push('\n');
        let mut lines = vec![table.0.join("\t")];
        lines.extend(table.1.iter().map(|row| row.join("\t")));
        out.push_str(&aligned(&lines));
        out.push('\n');
    }
    print!("{out}");
    Ok(ExitCode::from(u8::from(failed)))
}

/// Tab-separated cells as columns, the last one (the command) as it is.
fn aligned(lines: &[String]) -> String {
    let cells: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let n = cells.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            cells
                .iter()
                .filter_map(|c| c.get(i))
                .map(|s| s.len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &cells {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// One process, from `/proc/PID/stat` and `/proc/PID/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Proc {
    pid: u32,
    ppid: u32,
    uid: u32,
    tty: u64,
    /// User and system time, in ticks.
    cpu: u64,
    /// Since boot, in ticks.
    start: u64,
    cmd: String,
}

fn read_proc(pid: u32) -> Option<Proc> {
    let stat = fs_err::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name is in parentheses and may hold spaces: fields after the last `)`.
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    let status = fs_err::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())?;
    let cmdline = fs_err::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(Proc {
        pid,
        ppid: num(1)? as u32,
        uid,
        tty: num(4)?,
        cpu: num(11)? + num(12)?,
        start: num(19)?,
        cmd: if args.is_empty() {
            format!("[{comm}]")
        } else {
            args.join(" ")
        },
    })
}

/// `root` and its descendants, parents before children.
fn tree(root: u32) -> Vec<Proc> {
    let all: Vec<Proc> = fs_err::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(read_proc)
                .collect()
        })
        .unwrap_or_default();
    let mut found: Vec<Proc> = all.iter().filter(|p| p.pid == root).cloned().collect();
    let mut i = 0;
    while i < found.len() {
        let parent = found[i].pid;
        let mut children: Vec<Proc> = all.iter().filter(|p| p.ppid == parent).cloned().collect();
        children.sort_by_key(|p| p.pid);
        found.extend(children);
        i += 1;
    }
    found
}

/// User names by uid, from `/etc/passwd`.
fn users() -> HashMap<u32, String> {
    fs_err::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            Some((uid, name.to_string()))
        })
        .collect()
}

/// The rows of `root`'s processes.
fn native(root: u32, users: &HashMap<u32, String>, now: SystemTime) -> Vec<Vec<String>> {
    let uptime = fs_err::read_to_string("/proc/uptime")
        .ok()
        .and_then(|u| u.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    let boot = fs_err::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0u64);
    let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    tree(root)
        .into_iter()
        .map(|p| {
            let started = boot + p.start / HZ;
            let ran = (uptime - (p.start / HZ) as f64).max(1.0);
            let share = ((p.cpu / HZ) as f64 / ran * 100.0) as u64;
            vec![
                users
                    .get(&p.uid)
                    .cloned()
                    .unwrap_or_else(|| p.uid.to_string()),
                p.pid.to_string(),
                p.ppid.to_string(),
                share.to_string(),
                stime(started, now_secs),
                tty(p.tty),
                clock(Duration::from_secs(p.cpu / HZ)),
                p.cmd,
            ]
        })
        .collect()
}

/// `HH:MM` (UTC) today, else `MonDD`, as `ps` writes a start time.
fn stime(started: u64, now: u64) -> String {
    let (day, secs) = (started / 86_400, started % 86_400);
    if day == now / 86_400 {
        return format!("{:02}:{:02}", secs / 3600, secs % 3600 / 60);
    }
    let date = cove_runtime::logs::format_time(UNIX_EPOCH + Duration::from_secs(started));
    // `YYYY-MM-DDT...`: month and day.
    let month: usize = date[5..7].parse().unwrap_or(1);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!("{}{}", MONTHS[(month - 1) % 12], &date[8..10])
}

/// `?` without a terminal, `pts/N`, `ttyN`.
fn tty(nr: u64) -> String {
    if nr == 0 {
        return "?".into();
    }
    let major = (nr >> 8) & 0xfff;
    let minor = (nr & 0xff) | ((nr >> 12) & 0xfff00);
    match major {
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 => format!("tty{minor}"),
        _ => format!("{major}/{minor}"),
    }
}

/// `[DD-]HH:MM:SS`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    let (days, h, m, s) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    if days > 0 {
        format!("{days}-{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_in_its_own_tree() {
        let me = std::process::id();
        let rows = native(me, &users(), SystemTime::now());
        assert_eq!(rows[0][1], me.to_string());
        assert_eq!(rows[0].len(), TITLES.len());
    }

    #[test]
    fn times_and_terminals_read_as_ps_writes_them() {
        assert_eq!(clock(Duration::from_secs(3725)), "01:02:05");
        assert_eq!(clock(Duration::from_secs(90_061)), "1-01:01:01");
        assert_eq!(tty(0), "?");
        assert_eq!(tty((136 << 8) | 3), "pts/3");
        // 2026-12-06T20:46 seen the same day, and the day after.
        let t = 1_796_590_000;
        assert_eq!(stime(t, t + 60), "20:46");
        assert_eq!(stime(t, t + 86_400), "Dec06");
    }
}
