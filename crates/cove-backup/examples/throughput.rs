//! `cargo run --profile release-fast -p cove-backup --example throughput --
//! REPO_DIR FILE`: backs up `cat FILE` (through a temporary file, as `cove
//! backup` does) into a new repository at REPO_DIR and prints the wall time
//! and MiB/s: the repository's own cost, without a database
//! (bench/backup/RESULTS.md).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, file] = &args[..] else {
        eprintln!("usage: throughput REPO_DIR FILE");
        std::process::exit(2);
    };
    let store = cove_backup::Store::open_or_init(std::path::Path::new(dir), "throughput")
        .expect("repository");
    let meta = cove_backup::Meta {
        project: "bench".into(),
        environment: "default".into(),
        service: "file".into(),
        method: "cat".into(),
        cove_version: env!("CARGO_PKG_VERSION").into(),
    };
    let path = (
        "PATH".to_string(),
        std::env::var("PATH").unwrap_or_default(),
    );
    let start = std::time::Instant::now();
    let b = store
        .backup_command(
            &meta,
            &["cat".into(), file.clone()],
            &[path],
            &std::env::temp_dir(),
        )
        .expect("backup");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} bytes in {secs:.1} s: {:.1} MiB/s; {} bytes added",
        b.size,
        b.size as f64 / secs / 1048576.0,
        b.added
    );
}
