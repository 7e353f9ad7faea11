//! A replica's memory, for `memory_mb` alerts: its cgroup's
//! `memory.current` where the daemon has a cgroup tree with the memory
//! controller, else the resident memory (`VmRSS`) of its process and that
//! process's descendants (`/proc/PID/task/*/children`). Read on the
//! blocking pool: these are files.

use std::path::Path;

/// Most descendants of one replica walked.
const MAX_PROCESSES: usize = 4096;

/// Bytes of memory of the replica whose cgroup is `leaf` (if any) and
/// whose process is `pid`; `None` when neither can be read.
pub fn replica_bytes(leaf: Option<&Path>, pid: Option<u32>) -> Option<u64> {
    if let Some(leaf) = leaf
        && let Ok(text) = fs_err::read_to_string(leaf.join("memory.current"))
        && let Ok(bytes) = text.trim().parse::<u64>()
    {
        return Some(bytes);
    }
    let pid = pid?;
    let mut total = None;
    let mut todo = vec![pid];
    let mut seen = 0;
    while let Some(p) = todo.pop() {
        seen += 1;
        if seen > MAX_PROCESSES {
            break;
        }
        if let Some(kib) = fs_err::read_to_string(format!("/proc/{p}/status"))
            .ok()
            .and_then(|s| vm_rss_kib(&s))
        {
            *total.get_or_insert(0) += kib * 1024;
        }
        let Ok(tasks) = fs_err::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            if let Ok(children) = fs_err::read_to_string(t.path().join("children")) {
                todo.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
    }
    total
}

/// `VmRSS:` of a `/proc/PID/status`, in KiB (none for a kernel thread or
/// a zombie).
fn vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_from_status() {
        let status = "Name:\tsleep\nVmPeak:\t  8000 kB\nVmRSS:\t    1234 kB\nThreads:\t1\n";
        assert_eq!(vm_rss_kib(status), Some(1234));
        assert_eq!(vm_rss_kib("Name:\tkworker\n"), None);
    }

    #[test]
    fn this_process_has_memory_and_a_gone_one_none() {
        let own = replica_bytes(None, Some(std::process::id())).unwrap();
        assert!(own > 1024 * 1024, "{own}");
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("memory.current"), "4096\n").unwrap();
        assert_eq!(replica_bytes(Some(dir.path()), None), Some(4096));
        assert_eq!(replica_bytes(Some(&dir.path().join("gone")), None), None);
    }
}
