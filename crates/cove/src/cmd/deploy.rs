//! `cove deploy [SERVICE...]`, `cove scale SERVICE=N...`, `cove rollback
//! SERVICE [--to N]`, `cove history SERVICE`: the daemon does the work
//! (see the supervisor's rollouts); these show its steps while it runs and
//! how each service ended. Exit 1 when one did not do what was asked.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cove_daemon::api::{DeployRequest, Event, History, Outcomes, RollbackRequest, ScaleRequest};
use cove_daemon::client::Client;
use serde::Serialize;

use crate::cli::{DeployArgs, HistoryArgs, ProjectArgs, RollbackArgs, ScaleArgs};
use crate::daemon;
use crate::output::stderr_style;

/// Longest a deploy, scaling or rollback may take before the CLI stops
/// waiting (the daemon goes on).
const PATIENCE: Duration = Duration::from_secs(3600);

pub fn deploy(project_args: &ProjectArgs, args: &DeployArgs) -> anyhow::Result<ExitCode> {
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    let message = match &args.message {
        Some(m) => m.clone(),
        None => git_commit(&project.project_dir).unwrap_or_default(),
    };
    // The environment's hosts: sent there and deployed there (planned
    // there: this machine may lack what they have).
    if let Some((env, hosts)) = crate::fleet::hosts(&project) {
        return crate::fleet::deploy(&project, &env, &hosts, &args.service_names, &message);
    }
    if crate::project::plan_or_report(&project).is_none() {
        return Ok(ExitCode::from(1));
    }
    redeploy(&project, &args.service_names, &message)
}

/// `services` (all running ones when empty) built again and rolled out,
/// waited for (unchanged when the build made nothing new): `cove deploy`,
/// and `up -d --build`'s second step for what ran before it.
pub fn redeploy(
    project: &cove_spec::Project,
    services: &[String],
    message: &str,
) -> anyhow::Result<ExitCode> {
    let request = DeployRequest {
        app: project.app.clone(),
        project_dir: project.project_dir.clone(),
        services: services.to_vec(),
        message: message.into(),
        restart: false,
        identity: crate::cmd::secrets::identity_path(),
        disabled: project.disabled.keys().cloned().collect(),
    };
    let client = daemon::find(project)?;
    call(&client, "/v1/deploy", &request, &[])
}

pub fn scale(project_args: &ProjectArgs, args: &ScaleArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let mut scale = BTreeMap::new();
    for pair in &args.pairs {
        let parsed = pair
            .split_once('=')
            .and_then(|(s, n)| Some((s.to_string(), n.trim().parse::<u32>().ok()?)));
        match parsed {
            Some((s, n)) if !s.is_empty() => {
                scale.insert(s, n);
            }
            _ => {
                eprintln!(
                    "{}error{}: `{pair}` is not SERVICE=N\n{}hint{}: e.g. `cove scale api=5 worker=2`",
                    style.red, style.reset, style.cyan, style.reset
                );
                return Ok(ExitCode::from(2));
            }
        }
    }
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    if let Some(place) = crate::fleet::elsewhere(&project) {
        let (env, hosts) = place?;
        let mut words = vec!["scale".to_string()];
        words.extend(args.pairs.iter().cloned());
        return Ok(crate::fleet::on_each(&project, &env, &hosts, &words, false));
    }
    let client = daemon::find(&project)?;
    // The replicas it adds are waited for as `up -d` waits for them.
    let wait: Vec<String> = scale
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(s, _)| s.clone())
        .collect();
    call(&client, "/v1/scale", &ScaleRequest { scale }, &wait)
}

pub fn rollback(project_args: &ProjectArgs, args: &RollbackArgs) -> anyhow::Result<ExitCode> {
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    if let Some(place) = crate::fleet::elsewhere(&project) {
        let (env, hosts) = place?;
        let mut words = vec!["rollback".to_string(), args.service.clone()];
        if let Some(n) = args.to {
            words.extend(["--to".to_string(), n.to_string()]);
        }
        return Ok(crate::fleet::on_each(&project, &env, &hosts, &words, false));
    }
    let client = daemon::find(&project)?;
    call(
        &client,
        "/v1/rollback",
        &RollbackRequest {
            service: args.service.clone(),
            to: args.to,
        },
        &[],
    )
}

pub fn history(project_args: &ProjectArgs, args: &HistoryArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    if let Some(place) = crate::fleet::elsewhere(&project) {
        let (env, hosts) = place?;
        let mut words = vec!["history".to_string(), args.service.clone()];
        if args.format == crate::cli::PsFormat::Json {
            words.extend(["--format".to_string(), "json".to_string()]);
        }
        return Ok(crate::fleet::on_each(&project, &env, &hosts, &words, false));
    }
    let client = daemon::find(&project)?;
    let path = format!("/v1/history?service={}", args.service);
    let h: History = match daemon::runtime()?.block_on(client.get(&path)) {
        Ok(h) => h,
        Err(e) => {
            daemon::print_error(&style, &e);
            return Ok(ExitCode::from(1));
        }
    };
    if args.format == crate::cli::PsFormat::Json {
        println!("{}", serde_json::to_string_pretty(&h)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![["REVISION", "CREATED", "DIGEST", "KEPT", "MESSAGE"].map(String::from)];
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    for r in &h.revisions {
        let mut mark = String::new();
        if h.current == Some(r.number) {
            mark.push_str(" (running)");
        }
        if r.pinned {
            mark.push_str(" (held)");
        }
        rows.push([
            format!("{}{mark}", r.number),
            format!(
                "{} ago",
                daemon::human_duration(Duration::from_millis(now.saturating_sub(r.time_ms)))
            ),
            if r.digest.is_empty() {
                "-".into()
            } else {
                r.digest.clone()
            },
            if r.kept { "yes".into() } else { "no".into() },
            r.message.clone(),
        ]);
    }
    print!("{}", crate::output::columns(&rows));
    Ok(ExitCode::SUCCESS)
}

/// How long `scale` waits for the replicas it added to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(300);

/// Sends the command, prints the daemon's steps while it runs, then each
/// service's outcome; then, when all went well, waits for every replica of
/// `wait` to be ready (as `up -d` does).
fn call(
    client: &Client,
    path: &str,
    body: &impl Serialize,
    wait: &[String],
) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    daemon::runtime()?.block_on(async {
        let mut after = match client
            .get::<cove_daemon::api::DaemonStatus>("/v1/status")
            .await
        {
            Ok(s) => s.seq,
            Err(e) => {
                daemon::print_error(&style, &e);
                return Ok(ExitCode::from(1));
            }
        };
        let since = after;
        let answer = client.post_for::<Outcomes>(path, body, PATIENCE);
        tokio::pin!(answer);
        let result = loop {
            let poll = format!("/v1/events?after={after}&wait=200");
            tokio::select! {
                r = &mut answer => break r,
                events = client.get::<Vec<Event>>(&poll) => {
                    for ev in events.unwrap_or_default() {
                        after = ev.seq;
                        print_event(&ev);
                    }
                }
            }
        };
        let outcomes = match result {
            Ok(o) => o,
            Err(e) => {
                daemon::print_error(&style, &e);
                return Ok(ExitCode::from(1));
            }
        };
        // Steps recorded after the last poll.
        if let Ok(events) = client
            .get::<Vec<Event>>(&format!("/v1/events?after={after}"))
            .await
        {
            events.iter().for_each(print_event);
        }
        let mut ok = true;
        for r in &outcomes.results {
            if r.ok {
                eprintln!("cove: {}: {}", r.service, r.message);
            } else {
                ok = false;
                eprintln!(
                    "{}error{}: {}: {}",
                    style.red, style.reset, r.service, r.message
                );
            }
        }
        if !ok {
            return Ok(ExitCode::from(1));
        }
        if !wait.is_empty()
            && let Err(why) =
                daemon::wait_ready(client, wait, since, READY_TIMEOUT, &Default::default()).await
        {
            daemon::print_not_ready(&style, client, &why, READY_TIMEOUT);
            return Ok(ExitCode::from(1));
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn print_event(ev: &Event) {
    if ev.state.replica().is_none() {
        eprintln!("cove: {}: {}", ev.service, ev.detail);
    } else {
        eprintln!(
            "cove: {}-{} (revision {}) {}",
            ev.service, ev.replica, ev.revision, ev.detail
        );
    }
}

/// `abc1234 subject` of the project's HEAD commit, if it is in git.
fn git_commit(dir: &std::path::Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["log", "-1", "--format=%h %s"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}
