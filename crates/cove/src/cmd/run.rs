//! `cove run [OPTIONS] SERVICE [COMMAND...]`: a one-off command (a
//! migration, a seed) in a service's environment: its dependencies are
//! started first through the daemon (and left running, as Compose does;
//! not with `--no-deps`), then the command runs, attached to the
//! terminal, with the service's environment and working directory.
//! Exit code: the command's.
//!
//! A native service's one-off runs here, as a process; a service run as a
//! container (`image:`/`build:` with the Docker driver) gets a container
//! of its own, made as its replicas' are (image, environment, mounts, the
//! project's network), removed when it ends (`--rm` is always so). Options
//! come before SERVICE; everything after it is the command, as in
//! `docker compose run --rm api ls -l`.

use std::process::ExitCode;
use std::time::Duration;

use cove_daemon::api::{Accepted, UpRequest};
use cove_runtime::docker::Published;
use cove_runtime::plan::{Plan, ServicePlan};
use cove_spec::Style;

use crate::cli::{ProjectArgs, RunArgs};
use crate::daemon;
use crate::output::stderr_style;

/// How long dependencies have to become ready.
const DEPS_TIMEOUT: Duration = Duration::from_secs(300);

pub fn run(project_args: &ProjectArgs, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let Some(project) =
        crate::project::load_all_or_report(project_args, std::slice::from_ref(&args.service))
    else {
        return Ok(ExitCode::from(1));
    };
    let Some(plan) = plan(&project)? else {
        return Ok(ExitCode::from(1));
    };
    let Some(svc) = plan.services.iter().find(|s| s.name == args.service) else {
        anyhow::bail!("no such service `{}`", args.service);
    };
    let private = svc
        .secrets_root
        .join(format!("{}-run-{}", svc.name, std::process::id()));
    let _secrets_dir = if svc.secrets.is_empty() {
        None
    } else {
        Some(cove_runtime::secrets::write_dir(&private, &svc.secrets)?)
    };
    let mut env = match environment(&plan, svc, &private, &args.env) {
        Ok(env) => env,
        Err(pair) => {
            eprintln!(
                "{}error{}: `-e {pair}` is not KEY=VALUE",
                style.red, style.reset
            );
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(name) = &args.name {
        for (k, v) in env.iter_mut() {
            if k == "COVE_REPLICA" {
                v.clone_from(name);
            }
        }
    }
    let options = match Options::of(args, &project.app, svc) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}error{}: {e}", style.red, style.reset);
            return Ok(ExitCode::from(2));
        }
    };
    // `-h cache` and `cache:6379` in it, as in the service's own.
    let command = (!args.command.is_empty()).then(|| plan.rewrite_args(&args.command));
    let argv = match (&options.entrypoint, &command) {
        // Natively the entrypoint and the command are one argv: a new
        // entrypoint goes before the command given, else the service's.
        (Some(entry), _) => {
            let rest = command.clone().unwrap_or_else(|| {
                let own = project
                    .app
                    .services
                    .get(&svc.name)
                    .and_then(|s| s.command.clone());
                plan.rewrite_args(&own.unwrap_or_default())
            });
            entry.iter().cloned().chain(rest).collect()
        }
        (None, Some(c)) => c.clone(),
        (None, None) => svc.argv_for(&env),
    };
    if svc.container.is_none() {
        options.say_native_meaning();
        if args.detach && !svc.secrets.is_empty() {
            eprintln!(
                "{}error{}: `-d`: a native one-off of `{}` gets its secrets in a private directory removed when cove returns\n{}hint{}: run it attached (without -d)",
                style.red, style.reset, svc.name, style.cyan, style.reset
            );
            return Ok(ExitCode::from(2));
        }
    }
    // What it depends on: started through the daemon, added to what runs
    // (nothing else is stopped or unrouted).
    let deps: Vec<String> = plan
        .closure(std::slice::from_ref(&svc.name))
        .into_iter()
        .filter(|s| *s != svc.name)
        .collect();
    let rt = daemon::runtime()?;
    rt.block_on(async {
        if !args.no_deps
            && !deps.is_empty()
            && let Some(failed) = start_deps(&project, &deps, &style).await?
        {
            return Ok(failed);
        }
        if svc.container.is_some() {
            let one_off = cove_runtime::driver::OneOff {
                name: args.name.clone().unwrap_or_else(|| {
                    format!(
                        "{}-{}-run-{}",
                        svc.container
                            .as_ref()
                            .map_or("cove", |c| c.network.as_str()),
                        svc.name,
                        std::process::id()
                    )
                }),
                cmd: command.clone(),
                entrypoint: options.entrypoint.clone(),
                env: env.clone(),
                workdir: args.workdir.as_ref().map(|w| w.display().to_string()),
                user: args.user.clone(),
                labels: options.labels.clone(),
                ports: options.ports.clone(),
            };
            return in_container(svc, &one_off, args.detach, &style).await;
        }
        let user = match args.user.as_deref().map(user_ids).transpose() {
            Ok(u) => u,
            Err(e) => {
                eprintln!("{}error{}: -u: {e}", style.red, style.reset);
                return Ok(ExitCode::from(2));
            }
        };
        let workdir = match &args.workdir {
            Some(w) => svc.workdir.join(w),
            None => svc.workdir.clone(),
        };
        let how = How {
            workdir: &workdir,
            user,
            detach: args.detach,
        };
        attached(svc, &argv, &env, &how).await
    })
}

/// What the options ask of the one-off, read and checked.
struct Options {
    entrypoint: Option<Vec<String>>,
    labels: Vec<(String, String)>,
    ports: Vec<Published>,
    /// Flags given whose Compose meaning a process lacks.
    native_notes: Vec<&'static str>,
}

impl Options {
    fn of(args: &RunArgs, app: &cove_spec::App, svc: &ServicePlan) -> Result<Options, String> {
        let entrypoint = match args.entrypoint.as_deref() {
            None => None,
            // `--entrypoint ""`: none (the engine's way of saying so).
            Some("") if svc.container.is_some() => Some(vec![String::new()]),
            Some("") => Some(Vec::new()),
            Some(e) => Some(
                cove_spec::shell_words::split(e)
                    .map_err(|why| format!("--entrypoint `{e}`: {why}"))?,
            ),
        };
        let mut labels = Vec::new();
        for l in &args.label {
            let Some((k, v)) = l.split_once('=') else {
                return Err(format!("-l `{l}` is not KEY=VALUE (e.g. `-l team=blue`)"));
            };
            labels.push((k.to_string(), v.to_string()));
        }
        let mut ports = Vec::new();
        for p in &args.publish {
            ports.push(published(p)?);
        }
        if args.service_ports {
            for p in app
                .services
                .get(&svc.name)
                .map_or(&[][..], |s| &s.ports[..])
            {
                let host_port = p
                    .published
                    .as_deref()
                    .and_then(|h| h.split('-').next()?.parse().ok())
                    .unwrap_or(p.target);
                ports.push(Published {
                    host_ip: p.host_ip.clone().unwrap_or_default(),
                    host_port,
                    container_port: p.target,
                    protocol: p.protocol.clone(),
                });
            }
        }
        let mut native_notes = Vec::new();
        if !args.publish.is_empty() {
            native_notes.push(
                "cove: -p: a native one-off listens where it binds (its environment's HOST and PORT are replica 1's); no port is mapped",
            );
        }
        if args.service_ports {
            native_notes.push(
                "cove: --service-ports: a native one-off binds the service's ports itself (HOST and PORT in its environment); the gateway routes to replicas only",
            );
        }
        if !args.label.is_empty() {
            native_notes.push("cove: -l: a process has no labels; the labels are not kept");
        }
        if args.detach {
            native_notes.push(
                "cove: -d: the one-off runs in the background as a process of its own; its output is not kept",
            );
        }
        Ok(Options {
            entrypoint,
            labels,
            ports,
            native_notes,
        })
    }

    fn say_native_meaning(&self) {
        for n in &self.native_notes {
            eprintln!("{n}");
        }
    }
}

/// `-p [[IP:]HOST:]CONTAINER[/PROTOCOL]`.
fn published(spec: &str) -> Result<Published, String> {
    let bad = || {
        format!("-p `{spec}` is not [[IP:]HOST_PORT:]CONTAINER_PORT[/PROTOCOL] (e.g. `-p 8080:80`)")
    };
    let (ports, protocol) = spec.split_once('/').unwrap_or((spec, "tcp"));
    if !matches!(protocol, "tcp" | "udp") {
        return Err(bad());
    }
    let parts: Vec<&str> = ports.rsplitn(3, ':').collect();
    let port = |p: &str| p.parse::<u16>().map_err(|_| bad());
    let (ip, host, container) = match parts.as_slice() {
        [c] => ("", port(c)?, port(c)?),
        [c, h] => ("", port(h)?, port(c)?),
        [c, h, ip] => (*ip, port(h)?, port(c)?),
        _ => return Err(bad()),
    };
    Ok(Published {
        host_ip: ip.trim_matches(['[', ']']).to_string(),
        host_port: host,
        container_port: container,
        protocol: protocol.to_string(),
    })
}

/// `-u NAME|UID[:GROUP|GID]` as ids, looked up in /etc/passwd and
/// /etc/group.
fn user_ids(spec: &str) -> Result<(u32, Option<u32>), String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let lookup = |file: &str, name: &str, field: usize| -> Option<u32> {
        let text = fs_err::read_to_string(file).ok()?;
        text.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name)).then(|| f.get(field)?.parse().ok())?
        })
    };
    let uid = match user.parse::<u32>() {
        Ok(u) => u,
        Err(_) => lookup("/etc/passwd", user, 2)
            .ok_or_else(|| format!("no user `{user}` on this machine (/etc/passwd)"))?,
    };
    let gid = match group {
        None if user.parse::<u32>().is_err() => lookup("/etc/passwd", user, 3),
        None => None,
        Some(g) => Some(match g.parse::<u32>() {
            Ok(g) => g,
            Err(_) => lookup("/etc/group", g, 2)
                .ok_or_else(|| format!("no group `{g}` on this machine (/etc/group)"))?,
        }),
    };
    Ok((uid, gid))
}

/// Runs `one_off` of `svc` in a container: attached (its output here,
/// Ctrl-C stops it, removed when it ends; its exit code), or (`-d`)
/// started and named.
async fn in_container(
    svc: &ServicePlan,
    one_off: &cove_runtime::driver::OneOff,
    detach: bool,
    style: &Style,
) -> anyhow::Result<ExitCode> {
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let on_line = move |stream, line: String| {
        let _ = tx.send((stream, line));
    };
    let (engine, container) = match cove_runtime::driver::one_off(svc, one_off, on_line).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}error{}: {}: {e}", style.red, style.reset, svc.name);
            return Ok(ExitCode::from(1));
        }
    };
    if detach {
        println!("{}", container.name);
        return Ok(ExitCode::SUCCESS);
    }
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let print = |(stream, line): (cove_runtime::output::Stream, String)| {
        if stream == cove_runtime::output::Stream::Stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    let wait = engine.wait(&container);
    tokio::pin!(wait);
    let code = loop {
        tokio::select! {
            code = &mut wait => break code,
            Some(l) = lines.recv() => print(l),
            _ = int.recv() => {
                let _ = engine
                    .stop(&container, "SIGTERM", svc.stop_grace)
                    .await;
            }
        }
    };
    // What it printed last: its output ends with it.
    while let Ok(Some(l)) = tokio::time::timeout(Duration::from_secs(2), lines.recv()).await {
        print(l);
    }
    let _ = engine.remove(&container).await;
    match code {
        Ok(c) => Ok(ExitCode::from(c.clamp(0, 255) as u8)),
        Err(e) => {
            eprintln!("{}error{}: {}: {e}", style.red, style.reset, svc.name);
            Ok(ExitCode::from(1))
        }
    }
}

/// The app's plan with its secrets (read here, with the user's identity)
/// at the addresses its daemon runs the app at; `None` when it cannot be
/// planned (the errors are printed).
fn plan(project: &cove_spec::Project) -> anyhow::Result<Option<Plan>> {
    let identity = crate::cmd::secrets::identity_path();
    let secrets = match cove_runtime::secrets::resolve(
        &project.app,
        &project.project_dir,
        identity.as_deref(),
    ) {
        Ok(s) => s,
        Err(errors) => {
            crate::project::report_plan_errors(&errors);
            return Ok(None);
        }
    };
    crate::project::lease(project)?;
    match cove_runtime::preflight::checked(
        &project.app,
        cove_runtime::plan::plan_with(&project.app, &project.project_dir, Some(&secrets)),
        cove_runtime::preflight::check(&project.app),
    ) {
        Ok(p) => Ok(Some(p)),
        Err(errors) => {
            crate::project::report_plan_errors(&errors);
            Ok(None)
        }
    }
}

/// The command's environment: replica 1's, as replica `run`, then each
/// `-e KEY=VALUE` (rewritten as `environment` is); the pair that is not
/// `KEY=VALUE` otherwise.
fn environment(
    plan: &Plan,
    svc: &ServicePlan,
    private: &std::path::Path,
    pairs: &[String],
) -> Result<Vec<(String, String)>, String> {
    let mut env = svc.instance_env(1, 1, private);
    for (k, v) in env.iter_mut() {
        if k == "COVE_REPLICA" {
            *v = "run".into();
        }
    }
    for pair in pairs {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(pair.clone());
        };
        // `-e DB=db:5432` reaches the service, as `environment` does.
        env.push((k.to_string(), plan.rewrite_value(v)));
    }
    Ok(env)
}

/// Starts `deps` through the daemon and waits until they are ready; the
/// exit code when they are not (why is printed).
async fn start_deps(
    project: &cove_spec::Project,
    deps: &[String],
    style: &Style,
) -> anyhow::Result<Option<ExitCode>> {
    let client = daemon::client(project)?;
    let request = UpRequest {
        app: project.app.clone(),
        project_dir: project.project_dir.clone(),
        services: deps.to_vec(),
        identity: crate::cmd::secrets::identity_path(),
        remove_orphans: false,
        disabled: project.disabled.keys().cloned().collect(),
        force_recreate: false,
        no_recreate: false,
        build: false,
        timeout: None,
    };
    let accepted: Accepted = match daemon::ensure_and_post(&client, "/v1/up", &request).await {
        Ok(a) => a,
        Err(e) => {
            daemon::print_error(style, &e);
            return Ok(Some(ExitCode::from(1)));
        }
    };
    if let Err(why) = daemon::wait_ready(
        &client,
        deps,
        accepted.seq,
        DEPS_TIMEOUT,
        &accepted.revisions,
    )
    .await
    {
        daemon::print_not_ready(style, &client, &why, DEPS_TIMEOUT);
        return Ok(Some(ExitCode::from(1)));
    }
    Ok(None)
}

/// Where and how a native one-off runs.
struct How<'a> {
    workdir: &'a std::path::Path,
    /// `-u`: uid and gid.
    user: Option<(u32, Option<u32>)>,
    /// `-d`: in the background, its pid printed.
    detach: bool,
}

/// Runs `argv` here, attached to the terminal, in the service's working
/// directory; its exit code (128 + the signal that killed it).
async fn attached(
    svc: &ServicePlan,
    argv: &[String],
    env: &[(String, String)],
    how: &How<'_>,
) -> anyhow::Result<ExitCode> {
    let Some((prog, rest)) = argv.split_first() else {
        anyhow::bail!(
            "service `{}` has no command; give one after its name",
            svc.name
        );
    };
    let mut command = tokio::process::Command::new(prog);
    command
        .args(rest)
        .current_dir(how.workdir)
        .envs(env.iter().map(|(k, v)| (k, v)));
    if let Some((uid, gid)) = how.user {
        if let Some(gid) = gid {
            command.gid(gid);
        }
        command.uid(uid);
    }
    if how.detach {
        use std::process::Stdio;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let child = command.spawn().map_err(|e| {
            anyhow::anyhow!("cannot run `{prog}` in {}: {e}", how.workdir.display())
        })?;
        println!("{}", child.id().unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    wait_attached(command, prog, how.workdir).await
}

/// Spawns `cmd` (running `prog` in `workdir`) attached to the terminal
/// and waits for it, Ctrl-C reaching it rather than cove; its exit code
/// (128 + the signal that killed it). `cove run` and `cove exec`.
pub(crate) async fn wait_attached(
    mut cmd: tokio::process::Command,
    prog: &str,
    workdir: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run `{prog}` in {}: {e}", workdir.display()))?;
    // Ctrl-C reaches the command (same process group); cove waits for it.
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let status = loop {
        tokio::select! {
            s = child.wait() => break s?,
            _ = int.recv() => {}
        }
    };
    use std::os::unix::process::ExitStatusExt as _;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
