//! `cove logs [-f] [--since WHEN] [-n N] [-t] [SERVICE...]`: the output of
//! every replica, as kept on disk by `cove up`, merged in time order.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use cove_runtime::logs::{self, Entry};

use crate::cli::{LogsArgs, ProjectArgs};
use crate::output::stderr_style;

pub fn run(project_args: &ProjectArgs, args: &LogsArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    for name in &args.service_names {
        let service = name
            .rsplit_once('-')
            .filter(|(s, r)| r.parse::<u32>().is_ok() && project.app.services.contains_key(*s))
            .map_or(name.as_str(), |(s, _)| s);
        // `gateway`: the access log of the app's gateway.
        if !project.app.services.contains_key(service) && service != "gateway" {
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
    let mut tail = logs::Tail::new(dir, wanted);
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let fresh = tail.poll()?;
        let mut out = std::io::stdout().lock();
        for e in &fresh {
            print_entry(&mut out, e, width, timestamps)?;
        }
        out.flush()?;
    }
}
