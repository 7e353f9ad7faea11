//! `cove ps [SERVICE...] [-q | --services] [--status S] [--format
//! table|json|TEMPLATE]`: every replica the daemon knows, with its
//! revision, state, health, pid, address, restarts, uptime and why it is
//! not serving (during a deploy a replica's old and new instances are
//! both listed).
//!
//! Compose's shapes: `-q` prints ids (`SERVICE-N` natively, the
//! container's name for a container), `--services` the services,
//! `--status` filters by Compose's state words (cove's states mapped onto
//! them by [`compose_state`]), and `--format` takes a Go-template-like
//! line of `{{.Field}}`s ([`Template`]), `--filter status=S` is
//! `--status S`, `--orphans=false` leaves orphans out. `-a` and
//! `--no-trunc` are accepted: cove lists every replica it keeps, whole.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cove_daemon::api::{Health, Replica, ReplicaState};
use cove_daemon::client::{Client, ClientError};

use crate::cli::{ProjectArgs, PsListArgs};
use crate::daemon;
use crate::output::stderr_style;

pub fn run(project_args: &ProjectArgs, args: &PsListArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let format = match Format::parse(&args.format) {
        Ok(f) => f,
        Err(why) => {
            eprintln!("{}error{}: {why}", style.red, style.reset);
            eprintln!(
                "  = {}hint{}: the fields are {}",
                style.cyan,
                style.reset,
                FIELDS.join(", ")
            );
            return Ok(ExitCode::from(2));
        }
    };
    let mut statuses = args.status.clone();
    for f in &args.filter {
        match f.split_once('=') {
            Some(("status", s)) => statuses.push(s.to_string()),
            _ => {
                eprintln!(
                    "{}error{}: `--filter {f}`: the one filter is `status=STATUS`",
                    style.red, style.reset
                );
                return Ok(ExitCode::from(2));
            }
        }
    }
    for status in &statuses {
        if !STATUS_WORDS.contains(&status.as_str()) {
            eprintln!(
                "{}error{}: `--status {status}` is not a state",
                style.red, style.reset
            );
            eprintln!(
                "  = {}hint{}: one of {}",
                style.cyan,
                style.reset,
                STATUS_WORDS.join(", ")
            );
            return Ok(ExitCode::from(2));
        }
    }
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    if let Some((env, hosts)) = crate::fleet::hosts(&project) {
        let json = match format {
            Format::Json => true,
            Format::Table => false,
            Format::Template(_) => {
                eprintln!(
                    "{}error{}: `--format TEMPLATE` does not work across the hosts of `{env}` yet\n  = {}hint{}: `--format json` (each row has its `host`), or `cove --host ssh://... ps --format ...` for one host",
                    style.red, style.reset, style.cyan, style.reset
                );
                return Ok(ExitCode::from(2));
            }
        };
        if args.quiet || args.services || !statuses.is_empty() {
            eprintln!(
                "{}error{}: `-q`, `--services` and `--status` do not work across the hosts of `{env}` yet\n  = {}hint{}: `--format json` (each row has its `host`), or `cove --host ssh://... ps` for one host",
                style.red, style.reset, style.cyan, style.reset
            );
            return Ok(ExitCode::from(2));
        }
        return crate::fleet::ps(&project, &hosts, &args.service_names, json);
    }
    let rt = daemon::runtime()?;
    let found = rt.block_on(async {
        let client = daemon::locate(&project).await?;
        let rows = rows(&client).await?;
        Ok::<_, ClientError>((client, rows))
    });
    let (client, rows) = match found {
        Ok(found) => found,
        Err(e) => {
            daemon::print_error(&style, &e);
            return Ok(ExitCode::from(1));
        }
    };
    for name in &args.service_names {
        if !known(&project, name) && !rows.iter().any(|r| &r.service == name) {
            eprintln!(
                "{}error{}: no such service `{name}`",
                style.red, style.reset
            );
            return Ok(ExitCode::from(2));
        }
    }
    let rows: Vec<Replica> = rows
        .into_iter()
        .filter(|r| args.service_names.is_empty() || args.service_names.contains(&r.service))
        .filter(|r| {
            statuses.is_empty()
                || statuses
                    .iter()
                    .any(|s| s == compose_state(&r.state) || s == r.state.as_str())
        })
        // An orphan: so marked at the last `up`, or gone from the file since.
        .filter(|r| args.orphans || (!r.orphan && known(&project, &r.service)))
        .collect();
    if args.services {
        let mut seen = BTreeSet::new();
        for r in &rows {
            if seen.insert(r.service.as_str()) {
                println!("{}", r.service);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.quiet {
        for r in &rows {
            println!("{}", id(r));
        }
        return Ok(ExitCode::SUCCESS);
    }
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Table => print!("{}", table(&rows, SystemTime::now())),
        Format::Template(t) => {
            let plan = cove_runtime::plan::plan(&project.app, &project.project_dir).ok();
            // Ports published through the gateway (none when it is not running).
            let routes = if t.names("Ports") {
                rt.block_on(client.get::<cove_daemon::api::Routes>("/v1/routes"))
                    .map(|r| r.routes)
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            let now = SystemTime::now();
            let views: Vec<View> = rows
                .iter()
                .map(|r| {
                    let mut v = View::of(r, &project.app.name, plan.as_ref(), now);
                    v.ports = ports(r, &routes);
                    v
                })
                .collect();
            print!("{}", t.render(&views));
        }
    }
    daemon::warn_orphans(&style, &rows);
    Ok(ExitCode::SUCCESS)
}

/// The replicas the daemon knows; none when it is not running (a
/// pidfile whose daemon is gone is warned about: it did not stop cleanly).
pub async fn rows(client: &Client) -> Result<Vec<Replica>, ClientError> {
    match client.get("/v1/ps").await {
        Ok(rows) => Ok(rows),
        Err(ClientError::NotRunning) => {
            // One still there is finishing its exit.
            let pid = fs_err::read_to_string(client.paths.pidfile())
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok());
            if pid.is_some_and(|p| !cove_runtime::process::alive(p)) {
                let style = stderr_style();
                eprintln!(
                    "{}warning{}: the daemon is not running but did not stop cleanly; `cove up -d` starts the app again, `cove down` stops what it left",
                    style.yellow, style.reset
                );
            }
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}

/// Whether the app has a service `name` (enabled, or left out by its
/// profiles: it may run, started with them).
pub fn known(project: &cove_spec::Project, name: &str) -> bool {
    project.app.services.contains_key(name) || project.disabled.contains_key(name)
}

/// The app, when every name in `names` is one of its services (see
/// [`known`]); else the error is printed: exit 1 when the app does not
/// load, 2 for a name it does not have.
pub fn load_naming(
    project_args: &crate::cli::ProjectArgs,
    names: &[String],
) -> Result<cove_spec::Project, ExitCode> {
    let style = crate::output::stderr_style();
    let project =
        crate::project::load_or_report(project_args, &[]).ok_or_else(|| ExitCode::from(1))?;
    if let Some(name) = names.iter().find(|n| !known(&project, n)) {
        eprintln!(
            "{}error{}: no such service `{name}`",
            style.red, style.reset
        );
        return Err(ExitCode::from(2));
    }
    Ok(project)
}

/// A replica's id, as `ps -q` prints it: the container's name, else
/// `SERVICE-N` (what `cove logs` takes).
pub fn id(r: &Replica) -> String {
    r.container
        .clone()
        .unwrap_or_else(|| format!("{}-{}", r.service, r.replica))
}

/// What `--status` takes: Compose's words, then cove's own.
const STATUS_WORDS: &[&str] = &[
    "paused",
    "restarting",
    "removing",
    "running",
    "dead",
    "created",
    "exited",
    "waiting",
    "starting",
    "completed",
    "failed",
    "stopping",
    "stopped",
    "borrowed",
];

/// Compose's word for a replica's state: not yet running is `created`;
/// running (and being stopped, as the engine says of a container within
/// its grace period) is `running`; ended is `exited`. A word of a newer
/// daemon is kept.
pub fn compose_state(state: &ReplicaState) -> &str {
    match state {
        ReplicaState::Waiting | ReplicaState::Starting => "created",
        ReplicaState::Running | ReplicaState::Stopping => "running",
        ReplicaState::Restarting => "restarting",
        ReplicaState::Paused => "paused",
        ReplicaState::Completed | ReplicaState::Failed | ReplicaState::Stopped => "exited",
        ReplicaState::Other(word) => word,
    }
}

/// `--format`.
#[derive(Debug)]
enum Format {
    Table,
    Json,
    Template(Template),
}

impl Format {
    fn parse(text: &str) -> Result<Format, String> {
        match text {
            "table" | "" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            _ => Template::parse(text).map(Format::Template),
        }
    }
}

/// The fields a template may name, in the order `--help` lists them.
pub const FIELDS: &[&str] = &[
    "Name",
    "ID",
    "Service",
    "Project",
    "Replica",
    "Revision",
    "State",
    "Status",
    "Health",
    "ExitCode",
    "Ports",
    "Address",
    "Pid",
    "Restarts",
    "RunningFor",
    "Command",
    "Image",
    "Reason",
];

/// A line of text and `{{.Field}}`s (`\t` and `\n` written as such are a
/// tab and a newline); after `table `, a header of the fields' names and
/// tab-separated columns aligned.
#[derive(Debug, PartialEq, Eq)]
struct Template {
    header: bool,
    parts: Vec<Part>,
}

#[derive(Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(&'static str),
}

impl Template {
    fn parse(text: &str) -> Result<Template, String> {
        let (header, mut rest) = match text.strip_prefix("table") {
            Some(r) if r.is_empty() || r.starts_with([' ', '\t']) => (true, r.trim_start()),
            _ => (false, text),
        };
        if rest.is_empty() {
            return Ok(Template {
                header,
                parts: Vec::new(),
            });
        }
        let mut parts = Vec::new();
        while !rest.is_empty() {
            let Some(open) = rest.find("{{") else {
                parts.push(Part::Text(unescape(rest)));
                break;
            };
            if open > 0 {
                parts.push(Part::Text(unescape(&rest[..open])));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(format!("`--format {text}`: a `{{{{` without its `}}}}`"));
            };
            let inner = after[..close].trim();
            let Some(name) = inner.strip_prefix('.') else {
                return Err(format!(
                    "`--format {text}`: `{{{{{inner}}}}}` is not a field; write `{{{{.Field}}}}`"
                ));
            };
            let Some(field) = FIELDS.iter().find(|f| **f == name) else {
                return Err(format!("`--format {text}`: no field `{name}` in a replica"));
            };
            parts.push(Part::Field(field));
            rest = &after[close + 2..];
        }
        Ok(Template { header, parts })
    }

    /// Whether it prints `field`.
    fn names(&self, field: &str) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Field(f) if *f == field))
    }

    fn render(&self, views: &[View]) -> String {
        let line = |f: &dyn Fn(&'static str) -> String| -> String {
            self.parts
                .iter()
                .map(|p| match p {
                    Part::Text(t) => t.clone(),
                    Part::Field(name) => f(name),
                })
                .collect()
        };
        let mut lines: Vec<String> = Vec::new();
        if self.header {
            lines.push(line(&|name| title(name)));
        }
        for v in views {
            lines.push(line(&|name| v.field(name)));
        }
        if !self.header {
            return lines.into_iter().map(|l| l + "\n").collect();
        }
        aligned(&lines)
    }
}

fn unescape(text: &str) -> String {
    text.replace("\\t", "\t").replace("\\n", "\n")
}

/// `RunningFor` → `RUNNING FOR`, `ID` → `ID`.
fn title(field: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in field.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push(' ');
        }
        prev_lower = c.is_ascii_lowercase();
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Tab-separated lines as columns, three spaces apart (as `docker`'s
/// tables).
fn aligned(lines: &[String]) -> String {
    let cells: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let n = cells.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            cells
                .iter()
                .filter_map(|c| c.get(i).map(|s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &cells {
        let last = row.len().saturating_sub(1);
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            line.push_str(c);
            if i < last {
                let pad = widths[i] - c.chars().count() + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A replica as a template sees it: Compose's fields and cove's.
struct View {
    name: String,
    service: String,
    project: String,
    replica: u32,
    revision: u64,
    state: String,
    status: String,
    health: String,
    exit_code: i32,
    address: String,
    /// Compose's `Ports`: published ones (`127.0.0.1:8080->80/tcp`), then
    /// where it listens.
    ports: String,
    pid: String,
    restarts: u32,
    running_for: String,
    command: String,
    image: String,
    reason: String,
}

impl View {
    fn of(
        r: &Replica,
        project: &str,
        plan: Option<&cove_runtime::plan::Plan>,
        now: SystemTime,
    ) -> View {
        let svc = plan.and_then(|p| p.services.iter().find(|s| s.name == r.service));
        let (command, image) = match svc {
            Some(s) => match &s.container {
                Some(c) => (
                    c.entrypoint
                        .iter()
                        .flatten()
                        .chain(c.command.iter().flatten())
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" "),
                    c.image.clone(),
                ),
                None => (s.argv.join(" "), String::new()),
            },
            None => (String::new(), String::new()),
        };
        let age = age(r, now);
        View {
            name: id(r),
            service: r.service.clone(),
            project: project.to_string(),
            replica: r.replica,
            revision: r.revision,
            state: compose_state(&r.state).to_string(),
            status: status(r, age),
            health: r.health.to_string(),
            exit_code: r.exit_code.unwrap_or(0),
            address: r.address.clone(),
            ports: r.address.clone(),
            pid: r.pid.map_or(String::new(), |p| p.to_string()),
            restarts: r.restarts,
            running_for: format!("{} ago", daemon::human_duration(age)),
            command,
            image,
            reason: reason(r),
        }
    }

    fn field(&self, name: &str) -> String {
        match name {
            "Name" | "ID" => self.name.clone(),
            "Service" => self.service.clone(),
            "Project" => self.project.clone(),
            "Replica" => self.replica.to_string(),
            "Revision" => self.revision.to_string(),
            "State" => self.state.clone(),
            "Status" => self.status.clone(),
            "Health" => self.health.clone(),
            "ExitCode" => self.exit_code.to_string(),
            "Ports" => self.ports.clone(),
            "Address" => self.address.clone(),
            "Pid" => self.pid.clone(),
            "Restarts" => self.restarts.to_string(),
            "RunningFor" => self.running_for.clone(),
            "Command" => self.command.clone(),
            "Image" => self.image.clone(),
            "Reason" => self.reason.clone(),
            _ => String::new(),
        }
    }
}

/// Compose's `Ports` of a replica: the addresses its service's ports are
/// published on (`LISTEN->PORT/tcp`), then its own address.
fn ports(r: &Replica, routes: &[cove_daemon::api::RouteInfo]) -> String {
    let mut ports: Vec<String> = routes
        .iter()
        .filter(|route| {
            route.service == r.service
                && route.protocol == cove_daemon::api::Protocol::Tcp
                && !route.listen.is_empty()
                && !route.internal
        })
        .map(|route| format!("{}->{}/tcp", route.listen, route.port))
        .collect();
    if !r.address.is_empty() {
        ports.push(r.address.clone());
    }
    ports.join(", ")
}

/// How long it has been in its state.
fn age(r: &Replica, now: SystemTime) -> Duration {
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    Duration::from_millis(now_ms.saturating_sub(r.since_ms))
}

/// Compose's `Status`: `Up 2m3s (healthy)`, `Exited (3) 5s ago`,
/// `Restarting (1)`, `Created`.
fn status(r: &Replica, age: Duration) -> String {
    let code = r.exit_code.unwrap_or(0);
    match &r.state {
        ReplicaState::Running | ReplicaState::Stopping => match &r.health {
            Health::Unchecked => format!("Up {}", daemon::human_duration(age)),
            h => format!("Up {} ({h})", daemon::human_duration(age)),
        },
        ReplicaState::Restarting => format!("Restarting ({code})"),
        ReplicaState::Paused => format!("Up {} (Paused)", daemon::human_duration(age)),
        ReplicaState::Completed | ReplicaState::Failed | ReplicaState::Stopped => {
            format!("Exited ({code}) {} ago", daemon::human_duration(age))
        }
        ReplicaState::Waiting | ReplicaState::Starting => "Created".into(),
        ReplicaState::Other(word) => word.clone(),
    }
}

fn table(rows: &[Replica], now: SystemTime) -> String {
    let cells = cells(rows, now);
    if rows.iter().all(|r| r.container.is_none()) {
        return crate::output::columns(&cells);
    }
    // A last column for services run as containers.
    let with: Vec<[String; 11]> = cells
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            let extra = match i {
                0 => "CONTAINER".to_string(),
                _ => rows
                    .get(i - 1)
                    .and_then(|r| r.container.clone())
                    .unwrap_or_else(|| "-".into()),
            };
            let [a, b, c, d, e, f, g, h, k, l] = row;
            [a, b, c, d, e, f, g, h, k, l, extra]
        })
        .collect();
    crate::output::columns(&with)
}

pub(crate) fn cells(rows: &[Replica], now: SystemTime) -> Vec<[String; 10]> {
    let mut cells = vec![
        [
            "SERVICE", "REPLICA", "REVISION", "STATE", "HEALTH", "PID", "ADDRESS", "RESTARTS",
            "UPTIME", "REASON",
        ]
        .map(String::from),
    ];
    for r in rows {
        let up = r.state == ReplicaState::Running;
        cells.push([
            r.service.clone(),
            r.replica.to_string(),
            if r.revision == 0 {
                "-".into()
            } else {
                r.revision.to_string()
            },
            if r.retiring {
                format!("{} (retiring)", r.state)
            } else {
                r.state.to_string()
            },
            r.health.to_string(),
            r.pid.map_or("-".into(), |p| p.to_string()),
            r.address.clone(),
            r.restarts.to_string(),
            if up {
                daemon::human_duration(age(r, now))
            } else {
                "-".into()
            },
            reason(r),
        ]);
    }
    cells
}

/// Why a replica is not serving, when it is not: a failure's reason, a
/// failed check, the exit before a restart, a port refusing connections;
/// else `-`.
fn reason(r: &Replica) -> String {
    if let Some(port) = r.refusing {
        return format!("not accepting connections on :{port}");
    }
    match &r.state {
        // Served by another environment (`cove up --borrow`).
        ReplicaState::Other(word) if word == "borrowed" => r.detail.clone(),
        ReplicaState::Failed => r
            .detail
            .strip_prefix("failed: ")
            .unwrap_or(&r.detail)
            .to_string(),
        ReplicaState::Restarting => r.detail.clone(),
        _ if r.health == Health::Unhealthy || r.detail.starts_with("unhealthy") => r.detail.clone(),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: ReplicaState, detail: &str) -> Replica {
        Replica {
            service: "web".into(),
            replica: 1,
            revision: 2,
            retiring: false,
            state,
            health: Health::Unchecked,
            detail: detail.into(),
            pid: Some(42),
            address: "127.0.0.1:8080".into(),
            container: None,
            restarts: 0,
            since_ms: 0,
            ready: false,
            refusing: None,
            orphan: false,
            exit_code: None,
        }
    }

    #[test]
    fn a_state_a_newer_daemon_names_is_shown_as_it_came() {
        let now = UNIX_EPOCH + Duration::from_secs(90);
        let cells = cells(
            &[
                row(ReplicaState::Running, "running (pid 42)"),
                row(ReplicaState::Failed, "failed: exited with code 3"),
                row("hibernating".into(), "asleep"),
            ],
            now,
        );
        assert_eq!(cells[1][3], "running");
        assert_eq!(cells[1][8], "1m30s", "uptime of a running one");
        assert_eq!(cells[2][3], "failed");
        assert_eq!(cells[2][9], "exited with code 3");
        // Unknown: its word, not up (no uptime), no reason.
        assert_eq!(cells[3][3], "hibernating");
        assert_eq!(cells[3][8], "-");
        assert_eq!(cells[3][9], "-");
    }

    #[test]
    fn every_state_has_a_compose_word_that_status_takes() {
        for s in ReplicaState::KNOWN {
            assert!(STATUS_WORDS.contains(&compose_state(s)), "{s}");
            assert!(STATUS_WORDS.contains(&s.as_str()), "{s}");
        }
        assert_eq!(compose_state(&ReplicaState::Failed), "exited");
        assert_eq!(compose_state(&"paused".into()), "paused");
    }

    #[test]
    fn a_template_names_known_fields_only() {
        let t = Template::parse("table {{.Name}}\\t{{ .RunningFor }}").unwrap();
        assert!(t.header);
        assert_eq!(
            t.parts,
            [
                Part::Field("Name"),
                Part::Text("\t".into()),
                Part::Field("RunningFor")
            ]
        );
        let bad = Template::parse("{{.Nmae}}").unwrap_err();
        assert!(bad.contains("no field `Nmae`"), "{bad}");
        assert!(Template::parse("{{.Name").is_err());
        assert!(Template::parse("{{json .}}").is_err());
        assert_eq!(title("RunningFor"), "RUNNING FOR");
        assert_eq!(title("ID"), "ID");
        assert_eq!(
            aligned(&["A\tBB".into(), "CCC\tD".into()]),
            "A     BB\nCCC   D\n"
        );
    }
}
