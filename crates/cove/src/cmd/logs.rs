//! `cove logs [-f] [--since WHEN] [-n N] [-t] [SERVICE...]`: the output of
//! every replica, as kept on disk by `cove up`, merged in time order.

use std::collections::HashMap;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use cove_runtime::logs::{self, Entry};

use crate::cli::{LogsArgs, ProjectArgs};
use crate::output::stderr_style;

pub fn run(project_args: &ProjectArgs, args: &LogsArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let project = match crate::project::load(project_args, &[]) {
        Ok(p) => p,
        Err(failure) => {
            eprint!("{}", failure.render(&style));
            return Ok(ExitCode::from(1));
        }
    };
    for name in &args.service_names {
        let service = name
            .rsplit_once('-')
            .filter(|(s, r)| r.parse::<u32>().is_ok() && project.app.services.contains_key(*s))
            .map_or(name.as_str(), |(s, _)| s);
        if !project.app.services.contains_key(service) {
            eprintln!(
                "{}error{}: no such service `{name}`",
                style.red, style.reset
            );
            return Ok(ExitCode::from(2));
        }
    }
    let dir = logs::Writer::dir_of(&cove_runtime::plan::state_dir(
        &project.app,
        &project.project_dir,
    ));
    let since = match &args.since {
        None => None,
        Some(s) => match logs::since(s, SystemTime::now()) {
            Some(t) => Some(t),
            None => {
                eprintln!(
                    "{}error{}: `--since {s}` is neither a duration (`10m`) nor a time (`2026-11-23T21:00:00.000Z`)",
                    style.red, style.reset
                );
                return Ok(ExitCode::from(2));
            }
        },
    };
    let mut entries = logs::read(&dir, &args.service_names)?;
    if let Some(t) = since {
        entries.retain(|e| e.time_ms >= t);
    }
    if let Some(n) = args.tail {
        let mut left: HashMap<String, usize> = HashMap::new();
        for e in &entries {
            *left.entry(e.source.clone()).or_default() += 1;
        }
        entries.retain(|e| {
            let remaining = left.get_mut(&e.source).expect("counted");
            *remaining -= 1;
            *remaining < n
        });
    }
    let width = entries
        .iter()
        .map(|e| e.source.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let mut out = std::io::stdout().lock();
    for e in &entries {
        print_entry(&mut out, e, width, args.timestamps)?;
    }
    out.flush()?;
    if args.follow {
        follow(&dir, &args.service_names, width, args.timestamps)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_entry(
    out: &mut impl std::io::Write,
    e: &Entry,
    width: usize,
    timestamps: bool,
) -> std::io::Result<()> {
    if timestamps {
        let t = logs::format_time(SystemTime::UNIX_EPOCH + Duration::from_millis(e.time_ms));
        writeln!(out, "{:<width$} | {t} {}", e.source, e.text)
    } else {
        writeln!(out, "{:<width$} | {}", e.source, e.text)
    }
}

/// Prints lines appended to the log files from now on, until interrupted.
fn follow(dir: &Path, wanted: &[String], width: usize, timestamps: bool) -> anyhow::Result<()> {
    let mut offsets: HashMap<PathBuf, u64> = HashMap::new();
    for (_, path) in logs::files(dir, wanted, false) {
        let len = fs_err::metadata(&path).map(|m| m.len()).unwrap_or(0);
        offsets.insert(path, len);
    }
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let mut fresh: Vec<Entry> = Vec::new();
        for (source, path) in logs::files(dir, wanted, false) {
            let len = fs_err::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let at = offsets.entry(path.clone()).or_insert(0);
            if len < *at {
                *at = 0; // rotated
            }
            if len == *at {
                continue;
            }
            let mut f = fs_err::File::open(&path)?;
            f.seek(SeekFrom::Start(*at))?;
            let mut text = String::new();
            f.read_to_string(&mut text)?;
            // Only whole lines; a partial last line waits for the next round.
            let whole = text.rfind('\n').map_or(0, |i| i + 1);
            *at += whole as u64;
            fresh.extend(logs::parse_lines(&source, &text[..whole]));
        }
        fresh.sort_by_key(|e| e.time_ms);
        let mut out = std::io::stdout().lock();
        for e in &fresh {
            print_entry(&mut out, e, width, timestamps)?;
        }
        out.flush()?;
    }
}
