//! `cargo run --profile release-fast -p cove-backup --example resplit <
//! DUMP > OUT`: a mariadb-dump stream with its INSERT statements re-cut
//! where the rows say ([`cove_backup::sqlsplit`]); what it did and its
//! MB/s on stderr (bench/backup/RESULTS.md).

use std::io::{BufReader, BufWriter};

fn main() {
    let input = BufReader::with_capacity(1 << 16, std::io::stdin().lock());
    let output = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let start = std::time::Instant::now();
    let stats = match cove_backup::sqlsplit::resplit(input, output) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("resplit: {e}");
            std::process::exit(1);
        }
    };
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "{} bytes in, {} out; {} INSERT statements re-cut into {}, {} rows; {} passed through unchanged{}; {:.2} s, {:.0} MB/s",
        stats.bytes_in,
        stats.bytes_out,
        stats.statements_in,
        stats.statements_out,
        stats.rows,
        stats.passed,
        stats
            .stopped
            .as_deref()
            .map(|w| format!("; stopped: {w}"))
            .unwrap_or_default(),
        secs,
        stats.bytes_in as f64 / 1e6 / secs.max(1e-9)
    );
}
