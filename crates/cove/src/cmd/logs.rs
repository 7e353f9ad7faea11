//! `cove logs [-f] [--since WHEN] [--until WHEN] [-n N] [-t] [--index N]
//! [--grep REGEX] [--level LEVEL] [--where FIELD=VALUE]... [--format
//! text|json] [--no-log-prefix] [--no-color] [SERVICE...]`: the output of
//! every replica, merged in time order; each line after its `SERVICE-N |`
//! prefix, coloured by service on a terminal (as `cove up` prints them),
//! or one JSON object per line.
//!
//! The lines come from the daemon (`GET /v1/logs`, a page at a time; a
//! follow is its long poll), so this works over `--host` too. When no
//! daemon runs for the app here (it is down; its logs are kept), the same
//! query ([`cove_runtime::log_query`]) reads the log store in this process
//! instead: nobody else is writing it then.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use cove_daemon::api::{LogLine, LogPage, LogsRequest};
use cove_daemon::client::{Client, ClientError};
use cove_runtime::log_query::{self, Cursor, Filter, Limits, Query};
use cove_runtime::logs;

use crate::cli::{LogsArgs, ProjectArgs};
use crate::daemon;
use crate::output::{stderr_style, stdout_colour};

/// The prefixes' colours, by service, as `cove up` has them.
const COLOURS: [&str; 6] = [
    "\x1b[36m", "\x1b[33m", "\x1b[32m", "\x1b[35m", "\x1b[34m", "\x1b[31m",
];

/// How long a follow's poll may wait at the daemon for a line.
const FOLLOW_WAIT: Duration = Duration::from_secs(55);

/// How each line is printed.
struct Look {
    json: bool,
    width: usize,
    timestamps: bool,
    prefix: bool,
    /// Colour by service; empty: none.
    colours: HashMap<String, &'static str>,
}

/// Where the lines come from.
enum Reader {
    Daemon(Client),
    /// No daemon runs for the app: its log store, read here.
    Files(PathBuf),
}

pub fn run(project_args: &ProjectArgs, args: &LogsArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    // Over `--host`, the host daemon's API answers (through ssh); an
    // environment's hosts each run `cove logs` in their checkout.
    if let Some(place) =
        crate::fleet::elsewhere(&project).filter(|_| crate::remote::current().is_none())
    {
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
    let (since, until) = match window(&args.since, &args.until) {
        Ok(window) => window,
        Err(why) => {
            eprintln!("{}error{}: {why}", style.red, style.reset);
            return Ok(ExitCode::from(2));
        }
    };
    // Checked here first, so a bad filter is said before asking anyone.
    let filter = match Filter::new(args.grep.as_deref(), args.level.as_deref(), &args.wheres) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{}error{}: {}", style.red, style.reset, e.what);
            eprintln!("  = {}hint{}: {}", style.cyan, style.reset, e.hint);
            return Ok(ExitCode::from(2));
        }
    };
    let request = LogsRequest {
        sources: args.service_names.clone(),
        replica: args.index,
        since_ms: since,
        until_ms: until,
        tail: args.tail,
        grep: args.grep.clone(),
        level: args.level.clone(),
        wheres: args.wheres.clone(),
        cursor: None,
        wait_ms: None,
    };
    let query = Query {
        sources: request.sources.clone(),
        replica: request.replica,
        since_ms: since,
        until_ms: until,
        tail: args.tail,
        filter,
    };
    let rt = daemon::runtime()?;
    let reader = match rt.block_on(reader(&project)) {
        Ok(r) => r,
        Err(e) => {
            daemon::print_error(&style, &e);
            return Ok(ExitCode::from(1));
        }
    };
    let colour = !args.no_color && stdout_colour() && args.format != "json";
    let mut look = Look {
        json: args.format == "json",
        width: 8,
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
    let now = |cursor: Option<&str>| rt.block_on(fetch(&reader, &request, &query, cursor, None));
    // The lines there now, a page at a time (bounded count).
    let mut cursor: Option<String> = None;
    for turn in 0.. {
        let page = match now(cursor.as_deref()) {
            Ok(p) => p,
            Err(e) => {
                daemon::print_error(&style, &e);
                return Ok(ExitCode::from(1));
            }
        };
        if turn == 0 {
            look.width = page
                .sources
                .iter()
                .map(String::len)
                .max()
                .unwrap_or(0)
                .max(8);
        }
        print_page(&page, &look)?;
        cursor = Some(page.cursor);
        if !page.more || turn > 10_000_000 {
            break;
        }
    }
    // `--until` a time to come: lines until then (Compose stops there too).
    if !args.follow || until.is_some_and(|t| t <= now_ms()) {
        return Ok(ExitCode::SUCCESS);
    }
    // Until Ctrl-C (handled here, so a SIGINT ignored by whoever started
    // us still ends it: the poll is dropped, which closes its connection
    // and ends the daemon's side) or until `until`.
    let mut interrupt = {
        let _in = rt.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?
    };
    loop {
        let wait = match until {
            Some(t) => FOLLOW_WAIT.min(Duration::from_millis(t.saturating_sub(now_ms()))),
            None => FOLLOW_WAIT,
        };
        let polled = rt.block_on(async {
            tokio::select! {
                page = fetch(&reader, &request, &query, cursor.as_deref(), Some(wait)) => Some(page),
                _ = interrupt.recv() => None,
            }
        });
        let page = match polled {
            None => return Ok(ExitCode::from(130)),
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                daemon::print_error(&style, &e);
                return Ok(ExitCode::from(1));
            }
        };
        print_page(&page, &look)?;
        cursor = Some(page.cursor);
        if until.is_some_and(|t| now_ms() >= t) {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// The app's daemon (here or over `--host`), or its log store when no
/// daemon runs here.
async fn reader(project: &cove_spec::Project) -> Result<Reader, ClientError> {
    let client = daemon::locate(project).await?;
    if client.remote.is_some() {
        return Ok(Reader::Daemon(client));
    }
    match client.status().await? {
        Some(_) => Ok(Reader::Daemon(client)),
        None => Ok(Reader::Files(logs::Writer::dir_of(
            &cove_runtime::plan::state_dir(&project.app, &project.project_dir),
        ))),
    }
}

/// A page after `cursor` (waiting up to `wait` for a line).
async fn fetch(
    reader: &Reader,
    request: &LogsRequest,
    query: &Query,
    cursor: Option<&str>,
    wait: Option<Duration>,
) -> Result<LogPage, ClientError> {
    match reader {
        Reader::Daemon(client) => {
            let request = LogsRequest {
                cursor: cursor.map(str::to_string),
                wait_ms: wait.map(|w| w.as_millis() as u64),
                ..request.clone()
            };
            client.get(&request.to_query()).await
        }
        Reader::Files(dir) => {
            let cursor = cursor.and_then(Cursor::decode);
            let deadline = tokio::time::Instant::now() + wait.unwrap_or_default();
            // Polled: no recorder here to say when lines come.
            loop {
                let page = log_query::page(dir, query, cursor.as_ref(), Limits::default())
                    .map_err(|e| {
                        ClientError::Other(format!(
                            "cannot read the logs in {}: {e}",
                            dir.display()
                        ))
                    })?;
                if !page.lines.is_empty() || page.more || tokio::time::Instant::now() >= deadline {
                    return Ok(page);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

fn print_page(page: &LogPage, look: &Look) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for line in &page.lines {
        print_line(&mut out, line, look)?;
    }
    out.flush()
}

/// A line as `--format json` prints it.
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    time: String,
    #[serde(flatten)]
    line: &'a LogLine,
}

fn print_line(out: &mut impl std::io::Write, e: &LogLine, look: &Look) -> std::io::Result<()> {
    let time = || logs::format_time(SystemTime::UNIX_EPOCH + Duration::from_millis(e.time_ms));
    if look.json {
        let json = serde_json::to_string(&JsonLine {
            time: time(),
            line: e,
        })
        .map_err(std::io::Error::other)?;
        return writeln!(out, "{json}");
    }
    if look.prefix {
        let (c, reset) = match look.colours.get(&e.service) {
            Some(c) => (*c, "\x1b[0m"),
            None => ("", ""),
        };
        let width = look.width;
        write!(out, "{c}{:<width$} |{reset} ", e.source)?;
    }
    if look.timestamps {
        write!(out, "{} ", time())?;
    }
    writeln!(out, "{}", e.text)
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
