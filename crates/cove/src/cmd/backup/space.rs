//! A backup that ran out of disk says which disk: the scratch directory
//! (where the uncompressed dump waits) or the target (the repository), by
//! its path, with what to do. Nothing of it is kept either way: the dump's
//! directory is removed, and packs the repository got before the disk
//! filled belong to no snapshot (no backup is listed, nothing a restore
//! could pick; `restic check` calls them unreferenced; a prune removes them).

use std::path::Path;

use cove_backup::ErrorKind;

use super::Failure;

fn is_no_space(message: &str) -> bool {
    message.contains("No space left on device")
        || message.contains("os error 28")
        || message.contains("StorageFull")
}

/// `e`, from taking `service`'s dump or storing it to `target` (its name
/// and where it is), as the user should read it.
pub(super) fn explain(
    e: cove_backup::Error,
    service: &str,
    target: &str,
    scratch: &Path,
) -> Failure {
    let kind = e.kind();
    let f = Failure::from(e);
    let message = f.message.clone();
    if !is_no_space(&message) {
        return f;
    }
    // The dump command's failure is writing the scratch file; any other is
    // the repository's.
    if matches!(kind, ErrorKind::Command | ErrorKind::Scratch) {
        // The command's own words (after cove's), without a backtrace.
        let said = message
            .split_once("no backup was kept: ")
            .map_or(message.as_str(), |(_, s)| s);
        let said = said.split("\n\nBacktrace:").next().unwrap_or(said).trim();
        Failure::new(format!(
            "no space left in {} for the dump of `{service}` (it waits there, uncompressed, before it is stored); no backup was kept: {said}",
            scratch.display()
        ))
        .hint("free that much space on its disk (the dump's size: `cove backup ls` shows earlier ones)")
    } else {
        Failure::new(format!(
            "no space left on the backup target {target} while storing `{service}` (No space left on device); no backup was kept"
        ))
        .hint("free space there, or give another `--target DIR`; what this backup wrote before the disk filled belongs to no backup (a prune removes it)")
    }
}
