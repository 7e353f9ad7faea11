//! `cargo run --profile release-fast -p cove-backup --example chunking --
//! REPO_DIR AVG_KIB FIRST SECOND...`: makes a repository whose chunker cuts
//! chunks of AVG_KIB on average (rabin, as restic: minimum half of it,
//! maximum eight times), backs up FIRST, then each next file as a later
//! backup of the same stream (as `cove backup` stores a dump), and prints
//! the bytes each added: how well a changed dump deduplicates at that chunk
//! size (bench/backup/chunks.sh, RESULTS.md). The repository stays for
//! `restic` to read.

use std::path::Path;

use bytesize::ByteSize;
use rustic_core::{ConfigOptions, Credentials, KeyOptions, Repository, RepositoryOptions};

const PASSWORD: &str = "chunking";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, avg, files @ ..] = &args[..] else {
        eprintln!("usage: chunking REPO_DIR AVG_KIB FILE...");
        std::process::exit(2);
    };
    let avg: u64 = avg.parse().expect("AVG_KIB: a number");
    let backends = rustic_backend::BackendOptions::default()
        .repository(dir)
        .to_backends()
        .expect("backend");
    fs_err::create_dir_all(dir).expect("repository directory");
    let config = ConfigOptions::default()
        .set_chunk_size(ByteSize::kib(avg))
        .set_chunk_min_size(ByteSize::kib(avg / 2))
        .set_chunk_max_size(ByteSize::kib(avg * 8));
    Repository::new(&RepositoryOptions::default(), &backends)
        .expect("repository")
        .init(
            &Credentials::password(PASSWORD),
            &KeyOptions::default(),
            &config,
        )
        .expect("init with that chunk size");
    let store = cove_backup::Store::open_or_init(Path::new(dir), PASSWORD).expect("open");
    let meta = cove_backup::Meta {
        project: "bench".into(),
        environment: "default".into(),
        service: "db".into(),
        method: "dump".into(),
        cove_version: env!("CARGO_PKG_VERSION").into(),
    };
    let path = (
        "PATH".to_string(),
        std::env::var("PATH").unwrap_or_default(),
    );
    let scratch = tempfile::tempdir_in(Path::new(dir).parent().unwrap_or(Path::new("/tmp")))
        .expect("scratch");
    for f in files {
        let start = std::time::Instant::now();
        let b = store
            .backup_command(
                &meta,
                &["cat".into(), f.clone()],
                std::slice::from_ref(&path),
                scratch.path(),
            )
            .expect("backup");
        println!(
            "{avg} KiB {f}: {} bytes, {} added, {:.1} s",
            b.size,
            b.added,
            start.elapsed().as_secs_f64()
        );
    }
}
