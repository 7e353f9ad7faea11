//! `cove logs [-f] [--since WHEN] [--until WHEN] [-n N] [-t] [--index N]
//! [--no-log-prefix] [--no-color] [SERVICE...]`: the output of every
//! replica, as kept on disk by `cove up`, merged in time order; each line
//! after its `SERVICE-N |` prefix, coloured by service on a terminal (as
//! `cove up` prints them).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use cove_runtime::logs::{self, Entry};

use crate::cli::{LogsArgs, ProjectArgs};
use crate::output::{stderr_style, stdout_colour};

/// The prefixes' colours, by service, as `cove up` has them.
const COLOURS: [&str; 6] = [
    "\x1b[36m", "\x1b[33m", "\x1b[32m", "\x1b[35m", "\x1b[34m", "\x1b[31m",
];

/// How each line is printed.
struct Look {
    width: usize,
    timestamps: bool,
    prefix: bool,
    /// Colour by service; empty: none.
    colours: HashMap<String, &'static str>,
}

pub fn run(project_args: &ProjectArgs, args: &LogsArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    if let Some(place) = crate::fleet::elsewhere(&project) {
        let (env, hosts) = place?;
        return Ok(crate::fleet::on_each(
            &project,
            &env,
            &hosts,
            &remote_args(args),
            true,
        ));
    }
    for name in &args.service_names {
        let service = name
            .rsplit_once('-')
            .filter(|(s, r)| r.parse::<u32>().is_ok() && super::ps::known(&project, s))
            .map_or(name.as_str(), |(s, _)| s);
        // `gateway`: the access log of the app's gateway.
        if !super::ps::known(&project, service) && service != "gateway" {
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
    let (since, until) = match window(&args.since, &args.until) {
        Ok(window) => window,
        Err(why) => {
            eprintln!("{}error{}: {why}", style.red, style.reset);
            return Ok(ExitCode::from(2));
        }
    };
    // `--index N`: replica N of the named services, or of every one.
    let wanted: Vec<String> = match args.index {
        None => args.service_names.clone(),
        Some(n) => {
            let services: Vec<String> = if args.service_names.is_empty() {
                project.app.services.keys().cloned().collect()
            } else {
                args.service_names.clone()
            };
            services.iter().map(|s| format!("{s}-{n}")).collect()
        }
    };
    let mut entries = logs::read(&dir, &wanted)?;
    if let Some(t) = since {
        entries.retain(|e| e.time_ms >= t);
    }
    if let Some(t) = until {
        entries.retain(|e| e.time_ms < t);
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
    let colour = !args.no_color && stdout_colour();
    let look = Look {
        width: entries
            .iter()
            .map(|e| e.source.len())
            .max()
            .unwrap_or(0)
            .max(8),
        timestamps: args.timestamps,
        prefix: !args.no_log_prefix,
        colours: project
            .app
            .services
            .keys()
            .chain(["gateway".to_string()].iter())
            .enumerate()
            .filter(|_| colour)
            .map(|(i, s)| (s.clone(), COLOURS[i % COLOURS.len()]))
            .collect(),
    };
    let mut out = std::io::stdout().lock();
    for e in &entries {
        print_entry(&mut out, e, &look)?;
    }
    out.flush()?;
    // `--until` a time to come: lines until then (Compose stops there too).
    if args.follow && until.is_none_or(|t| t > now_ms()) {
        follow(&dir, &wanted, &look, until)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

fn print_entry(out: &mut impl std::io::Write, e: &Entry, look: &Look) -> std::io::Result<()> {
    if look.prefix {
        let service = e
            .source
            .rsplit_once('-')
            .filter(|(_, n)| n.parse::<u32>().is_ok())
            .map_or(e.source.as_str(), |(s, _)| s);
        let (c, reset) = match look.colours.get(service) {
            Some(c) => (*c, "\x1b[0m"),
            None => ("", ""),
        };
        let width = look.width;
        write!(out, "{c}{:<width$} |{reset} ", e.source)?;
    }
    if look.timestamps {
        let t = logs::format_time(SystemTime::UNIX_EPOCH + Duration::from_millis(e.time_ms));
        write!(out, "{t} ")?;
    }
    writeln!(out, "{}", e.text)
}

/// Prints lines appended to the log files from now on, until interrupted
/// (or until `until`, milliseconds since the epoch).
fn follow(dir: &Path, wanted: &[String], look: &Look, until: Option<u64>) -> anyhow::Result<()> {
    let mut tail = logs::Tail::new(dir, wanted);
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let fresh = tail.poll()?;
        let mut out = std::io::stdout().lock();
        for e in &fresh {
            if until.is_some_and(|t| e.time_ms >= t) {
                continue;
            }
            print_entry(&mut out, e, look)?;
        }
        out.flush()?;
        if until.is_some_and(|t| now_ms() >= t) {
            return Ok(());
        }
    }
}

/// `--since` and `--until` (a duration back from now, or a time) as
/// milliseconds since the epoch; the error names the flag and its value.
pub fn window(
    since: &Option<String>,
    until: &Option<String>,
) -> Result<(Option<u64>, Option<u64>), String> {
    let when = |flag: &str, value: &Option<String>| {
        match value {
        None => Ok(None),
        Some(s) => logs::since(s, SystemTime::now()).map(Some).ok_or_else(|| {
            format!(
                "`--{flag} {s}` is neither a duration (`10m`) nor a time (`2026-11-23T21:00:00.000Z`)"
            )
        }),
    }
    };
    Ok((when("since", since)?, when("until", until)?))
}

/// `args` as the host's `cove logs` takes them.
fn remote_args(args: &LogsArgs) -> Vec<String> {
    let mut words = vec!["logs".to_string()];
    words.extend(args.service_names.iter().cloned());
    let flags = [
        (args.follow, "--follow"),
        (args.timestamps, "--timestamps"),
        (args.no_log_prefix, "--no-log-prefix"),
        // Colours do not cross ssh: the host's output is not a terminal.
        (true, "--no-color"),
    ];
    words.extend(
        flags
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, f)| f.to_string()),
    );
    for (value, flag) in [
        (args.since.clone(), "--since"),
        (args.until.clone(), "--until"),
        (args.tail.map(|n| n.to_string()), "--tail"),
        (args.index.map(|n| n.to_string()), "--index"),
    ] {
        if let Some(v) = value {
            words.extend([flag.to_string(), v]);
        }
    }
    words
}
