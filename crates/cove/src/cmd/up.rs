//! `cove up [-d] [SERVICE...]`: runs the services and their dependency
//! closure through the project's daemon (started on demand).
//!
//! Foreground: streams every replica's output, prefixed with its name, and
//! its state changes, until Ctrl-C (or SIGTERM), which stops those services,
//! dependents first; exit 1 when one failed. `-d`: returns once all are
//! ready (exit 0) or at the first that fails (exit 1, naming it, with its
//! last lines). Running `up` again converges: unchanged services keep their
//! replicas.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use cove_daemon::api::{Accepted, Event, EventState, Health, Replica, ReplicaState, UpRequest};
use cove_daemon::client::Client;
use cove_runtime::logs;
use cove_spec::Style;

use crate::cli::{ProjectArgs, PullPolicy, UpArgs};
use crate::daemon;
use crate::output::{stderr_style, stdout_colour};

const COLOURS: [&str; 6] = [
    "\x1b[36m", "\x1b[33m", "\x1b[32m", "\x1b[35m", "\x1b[34m", "\x1b[31m",
];

pub fn run(project_args: &ProjectArgs, args: &UpArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let mut project_args = project_args.clone();
    project_args.profiles.extend(args.profiles.iter().cloned());
    // The whole app (the services named enable their profiles): what else
    // runs keeps running and routed; only what is named (and what it
    // depends on) is started.
    let Some(mut project) = crate::project::load_all_or_report(&project_args, &args.service_names)
    else {
        return Ok(ExitCode::from(1));
    };
    if let Err(e) = compose_flags(&mut project.app, args) {
        eprintln!("{}error{}: {e}", style.red, style.reset);
        return Ok(ExitCode::from(2));
    }
    if let Some((env, hosts)) = crate::fleet::hosts(&project) {
        if !args.borrow.is_empty() {
            eprintln!(
                "{}error{}: `--borrow` works for environments on this host; `{env}` runs on its hosts\n  = {}hint{}: borrowing over SSH is not built yet: run the app here without `--env {env}`",
                style.red, style.reset, style.cyan, style.reset
            );
            return Ok(ExitCode::from(2));
        }
        if !args.detach {
            eprintln!(
                "{}error{}: `{env}` runs on its hosts: `cove up` there runs detached\n  = {}hint{}: `cove up -d --env {env}` (or `cove deploy --env {env}`), then `cove logs --env {env}`",
                style.red, style.reset, style.cyan, style.reset
            );
            return Ok(ExitCode::from(2));
        }
        return crate::fleet::deploy(&project, &env, &hosts, &args.service_names, "");
    }
    // Borrowed services (`--borrow`, `x-cove.borrow`): planned as served
    // by the environment that lends them.
    if let Err(r) = borrow(&project_args, &mut project, args) {
        r.report(&project, &style);
        return Ok(ExitCode::from(1));
    }
    let Some(plan) = crate::project::plan_or_report(&project) else {
        return Ok(ExitCode::from(1));
    };
    let mut plan = crate::project::leased(&project, plan)?;
    for (s, b) in &project.app.x_cove.borrowed {
        eprintln!(
            "cove: `{s}` is borrowed from {} ({}:{}): writes go to its data",
            b.env, b.address, b.port
        );
    }
    if !args.service_names.is_empty() {
        let closure = plan.closure(&args.service_names);
        plan.keep(&closure);
    }
    let warnings: Vec<_> = [
        cove_runtime::routes::metrics_warning(&project.app),
        cove_runtime::routes::published_warning(&plan.gateway),
    ]
    .into_iter()
    .flatten()
    .chain(cove_runtime::habits::warnings(&project.app, &plan))
    .collect();
    crate::project::report_located(&project, &warnings, true);
    crate::project::report_pending(&project);
    for s in &plan.services {
        for r in 1..=s.replicas {
            eprintln!(
                "cove: {}-{r} listens on {}:{}",
                s.name,
                s.address(r),
                s.port()
            );
        }
    }
    let services: Vec<String> = plan.services.iter().map(|s| s.name.clone()).collect();
    if let Some(from) = &args.exit_code_from
        && !services.contains(from)
    {
        eprintln!(
            "{}error{}: --exit-code-from: no service `{from}` among those `up` starts ({})\n{}hint{}: name one of them, or start it too",
            style.red,
            style.reset,
            services.join(", "),
            style.cyan,
            style.reset
        );
        return Ok(ExitCode::from(2));
    }
    say_native_meaning(&plan, args);
    if let Some(code) = pull(&plan, args, &style)? {
        return Ok(code);
    }
    if args.no_start {
        return no_start(&plan, args, &style);
    }
    let watch = if args.watch {
        match crate::watch::rules(&project.app, &services) {
            Ok(rules) => Some(rules),
            Err(e) => {
                eprintln!(
                    "{}error{}: cannot watch: {e}\n{}hint{}: add `develop: {{watch: [{{path: ./src, action: rebuild}}]}}` to a service",
                    style.red, style.reset, style.cyan, style.reset
                );
                return Ok(ExitCode::from(1));
            }
        }
    } else {
        None
    };
    let client = daemon::client(&project)?;
    let log_dir = logs::Writer::dir_of(std::path::Path::new(&client.project));
    // From here on, the foreground shows what the replicas print.
    let tail = logs::Tail::new(&log_dir, &services);
    let build = args.build || args.pull == Some(PullPolicy::Build);
    let rt = daemon::runtime()?;
    // `up -d --build`: what runs is redeployed once the rest is up, and
    // waited for (`cove deploy`'s rollout, which says when the build made
    // nothing new), so `up -d` returns with the new replicas serving.
    let redeploy = if build && (args.detach || args.wait) {
        let rows = rt.block_on(super::ps::rows(&client)).unwrap_or_default();
        let mut running: Vec<String> = rows
            .iter()
            .filter(|r| r.state == ReplicaState::Running)
            .filter(|r| services.is_empty() || services.contains(&r.service))
            .map(|r| r.service.clone())
            .collect();
        running.sort();
        running.dedup();
        running
    } else {
        Vec::new()
    };
    let request = UpRequest {
        app: project.app.clone(),
        project_dir: project.project_dir.clone(),
        services: services.clone(),
        identity: crate::cmd::secrets::identity_path(),
        remove_orphans: args.remove_orphans,
        disabled: project.disabled.keys().cloned().collect(),
        force_recreate: args.force_recreate,
        no_recreate: args.no_recreate,
        build: build && redeploy.is_empty(),
        timeout: args.timeout,
    };
    let code = rt.block_on(async {
        let accepted: Accepted = match daemon::ensure_and_post(&client, "/v1/up", &request).await {
            Ok(a) => a,
            Err(e) => {
                daemon::print_error(&style, &e);
                return Ok(ExitCode::from(1));
            }
        };
        announce_gateway(&client).await;
        if let Ok(rows) = client.get::<Vec<Replica>>("/v1/ps").await {
            daemon::warn_orphans(&style, &rows);
        }
        if args.detach || args.wait {
            detached(&client, &style, &services, &accepted, args.wait_timeout).await
        } else {
            let watching = match watch {
                Some(rules) => match Watching::start(rules, &project) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        eprintln!("{}error{}: cannot watch: {e}", style.red, style.reset);
                        None
                    }
                },
                None => None,
            };
            foreground(
                &client,
                &style,
                &services,
                accepted.seq,
                tail,
                watching,
                args,
            )
            .await
        }
    })?;
    if redeploy.is_empty() || code != ExitCode::SUCCESS {
        return Ok(code);
    }
    drop(rt);
    super::deploy::redeploy(&project, &redeploy, "up --build")
}

/// Says where the gateway listens (it may not be the default port, when
/// that was taken).
async fn announce_gateway(client: &Client) {
    if let Ok(r) = client.get::<cove_daemon::api::Routes>("/v1/routes").await
        && !r.routes.is_empty()
    {
        let n = r.routes.len();
        let s = if n == 1 { "" } else { "s" };
        eprintln!(
            "cove: gateway on {} ({n} route{s}; `cove routes` lists them)",
            r.url
        );
        if !r.tls_url.is_empty() {
            eprintln!("cove: HTTPS on {}", r.tls_url);
            if !r.ca.is_empty() {
                eprintln!(
                    "cove: its certificate comes from cove's local CA; trust {} (see the gateway guide)",
                    r.ca
                );
            }
        }
    }
}

async fn detached(
    client: &Client,
    style: &Style,
    services: &[String],
    accepted: &Accepted,
    timeout: u64,
) -> anyhow::Result<ExitCode> {
    let timeout = Duration::from_secs(timeout);
    let (after, revisions) = (accepted.seq, &accepted.revisions);
    match daemon::wait_ready(client, services, after, timeout, revisions).await {
        Ok(ready) => {
            for r in ready {
                let how = if r.health == Health::Unchecked {
                    r.state.to_string()
                } else {
                    r.health.to_string()
                };
                eprintln!("cove: {}-{} {how} ({})", r.service, r.replica, r.address);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            daemon::print_not_ready(style, client, &why, timeout);
            Ok(ExitCode::from(1))
        }
    }
}

/// Prints output and state changes until Ctrl-C or until every replica is
/// finished; then stops the services (the daemon exits when nothing is left).
async fn foreground(
    client: &Client,
    style: &Style,
    services: &[String],
    after: u64,
    tail: logs::Tail,
    mut watching: Option<Watching>,
    args: &UpArgs,
) -> anyhow::Result<ExitCode> {
    let mut shown = Shown::new(client, services, after, tail, args).await;
    let abort = args.abort_on_container_exit || args.exit_code_from.is_some();
    // Listeners made once, so a signal between two polls is not lost.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let interrupted = loop {
        let path = format!("/v1/events?after={}&wait=100", shown.after);
        let events = tokio::select! {
            e = client.get::<Vec<Event>>(&path) => e,
            _ = int.recv() => break true,
            _ = term.recv() => break true,
        };
        match events {
            Ok(events) => shown.events(events),
            Err(e) => {
                shown.logs();
                daemon::print_error(style, &e);
                return Ok(ExitCode::from(1));
            }
        }
        shown.logs();
        if let Some(w) = watching.as_mut() {
            w.poll(client);
        }
        if shown.finished() {
            break false;
        }
        if abort && let Some((replica, _)) = shown.exits.first() {
            eprintln!("cove: {replica} exited; stopping every service (--abort-on-container-exit)");
            break false;
        }
    };
    if interrupted {
        eprintln!("cove: stopping (dependents first)");
    }
    if let Err(e) = stop(client, services, &mut shown, args.timeout).await {
        shown.logs();
        daemon::print_error(style, &e);
        return Ok(ExitCode::from(1));
    }
    if let Some(from) = &args.exit_code_from {
        // The first exit of that service's replicas (none: it was stopped).
        let code = shown
            .exits
            .iter()
            .find(|(replica, _)| replica_of(replica) == from)
            .map_or(0, |(_, code)| *code);
        return Ok(ExitCode::from(code.clamp(0, 255) as u8));
    }
    if abort && let Some((_, code)) = shown.exits.first() {
        return Ok(ExitCode::from((*code).clamp(0, 255) as u8));
    }
    let failed = shown.failed();
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for f in failed {
            eprintln!("{}error{}: {f} failed", style.red, style.reset);
        }
        Ok(ExitCode::from(1))
    }
}

/// Stops (and forgets) `services`, showing their last states meanwhile
/// and those the answer brings (the daemon may be gone after it).
async fn stop(
    client: &Client,
    services: &[String],
    shown: &mut Shown,
    timeout: Option<u64>,
) -> Result<(), cove_daemon::client::ClientError> {
    let mut names = daemon::names(services);
    names.timeout = timeout;
    let down = client.post::<Accepted>("/v1/down", &names);
    tokio::pin!(down);
    let stopped = loop {
        let path = format!("/v1/events?after={}&wait=100", shown.after);
        tokio::select! {
            r = &mut down => break r,
            events = client.get::<Vec<Event>>(&path) => {
                shown.logs();
                match events {
                    Ok(events) => shown.events(events),
                    // The daemon is finishing: wait for its answer alone
                    // (asking again would fail at once, and spin).
                    Err(_) => break (&mut down).await,
                }
            }
        }
    };
    let stopped = stopped?;
    let after = shown.after;
    shown.events(
        stopped
            .events
            .into_iter()
            .filter(|e| e.seq > after)
            .collect(),
    );
    shown.logs();
    Ok(())
}

/// What the foreground has shown: replicas' output (coloured by service)
/// and events up to `after`, and the last state of each replica of ours
/// by revision (a deploy runs an old and a new one side by side).
struct Shown {
    services: Vec<String>,
    after: u64,
    states: BTreeMap<(String, u64), ReplicaState>,
    tail: logs::Tail,
    /// Colour by service, when stdout takes colours.
    colours: HashMap<String, &'static str>,
    width: usize,
    /// `--no-log-prefix`: lines as the replicas printed them.
    prefix: bool,
    /// `--attach`/`--no-attach`: the services whose output is shown.
    attached: Vec<String>,
    /// Replicas that ended by themselves (exited, not stopped), in order,
    /// with their exit code.
    exits: Vec<(String, i32)>,
}

impl Shown {
    async fn new(
        client: &Client,
        services: &[String],
        after: u64,
        tail: logs::Tail,
        args: &UpArgs,
    ) -> Shown {
        let colour = stdout_colour() && !args.no_color;
        let attached = services
            .iter()
            .filter(|s| args.attach.is_empty() || args.attach.contains(s))
            .filter(|s| !args.no_attach.contains(s))
            .cloned()
            .collect();
        let colours = services
            .iter()
            .enumerate()
            .filter(|_| colour)
            .map(|(i, s)| (s.clone(), COLOURS[i % COLOURS.len()]))
            .collect();
        let mut states = BTreeMap::new();
        let rows: Vec<Replica> = client.get("/v1/ps").await.unwrap_or_default();
        for r in rows.iter().filter(|r| services.contains(&r.service)) {
            states.insert(
                (format!("{}-{}", r.service, r.replica), r.revision),
                r.state.clone(),
            );
        }
        let width = states.keys().map(|k| k.0.len()).max().unwrap_or(0);
        Shown {
            services: services.to_vec(),
            after,
            states,
            tail,
            colours,
            width,
            prefix: !args.no_log_prefix,
            attached,
            exits: Vec::new(),
        }
    }

    /// Prints the replicas' new lines.
    fn logs(&mut self) {
        let mut out = std::io::stdout().lock();
        for e in self.tail.poll().unwrap_or_default() {
            let service = replica_of(&e.source);
            if !self.attached.iter().any(|a| a == service) {
                continue;
            }
            if !self.prefix {
                let _ = writeln!(out, "{}", e.text);
                continue;
            }
            let (c, reset) = match self.colours.get(service) {
                Some(c) => (*c, "\x1b[0m"),
                None => ("", ""),
            };
            let width = self.width;
            let _ = writeln!(out, "{c}{:<width$} |{reset} {}", e.source, e.text);
        }
        let _ = out.flush();
    }

    /// Prints the events of our services and keeps their replicas' states.
    fn events(&mut self, events: Vec<Event>) {
        for ev in events {
            self.after = ev.seq;
            if !self.services.contains(&ev.service) {
                continue;
            }
            let EventState::Replica(state) = ev.state else {
                eprintln!("cove: {}: {}", ev.service, ev.detail);
                continue;
            };
            eprintln!("cove: {}-{} {}", ev.service, ev.replica, ev.detail);
            if matches!(
                state,
                ReplicaState::Completed | ReplicaState::Failed | ReplicaState::Restarting
            ) {
                let code = exit_code(&state, &ev.detail);
                self.exits
                    .push((format!("{}-{}", ev.service, ev.replica), code));
            }
            self.states.insert(
                (format!("{}-{}", ev.service, ev.replica), ev.revision),
                state,
            );
        }
    }

    /// Whether every replica of ours has ended.
    fn finished(&self) -> bool {
        !self.states.is_empty() && self.states.values().all(ReplicaState::is_final)
    }

    /// The replicas of ours that failed.
    fn failed(&self) -> Vec<&String> {
        self.states
            .iter()
            .filter(|(_, s)| **s == ReplicaState::Failed)
            .map(|(k, _)| &k.0)
            .collect()
    }
}

/// The service of a replica's name (`api-2` → `api`).
fn replica_of(replica: &str) -> &str {
    replica.rsplit_once('-').map_or(replica, |(s, _)| s)
}

/// The exit code an ended replica's event tells: 0 when it completed,
/// N for `exited with code N`, else 1 (a signal, a failed start).
fn exit_code(state: &ReplicaState, detail: &str) -> i32 {
    if *state == ReplicaState::Completed {
        return 0;
    }
    detail
        .split_once("exited with code ")
        .and_then(|(_, rest)| {
            let digits: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '-')
                .collect();
            digits.parse().ok()
        })
        .unwrap_or(1)
}

/// `--scale SERVICE=N` (over `deploy.replicas`) and `--no-deps` (the
/// services named start without what they depend on) applied to the app
/// sent; the flag that is wrong, in words.
fn compose_flags(app: &mut cove_spec::App, args: &UpArgs) -> Result<(), String> {
    for pair in &args.scale {
        let parsed = pair
            .split_once('=')
            .and_then(|(s, n)| Some((s, n.trim().parse::<u32>().ok()?)));
        let Some((name, n)) = parsed else {
            return Err(format!(
                "--scale `{pair}` is not SERVICE=N (e.g. `--scale api=3`)"
            ));
        };
        let Some(svc) = app.services.get_mut(name) else {
            let known: Vec<&String> = app.services.keys().collect();
            return Err(format!(
                "--scale: no service `{name}` in the app (it has: {})",
                known
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        svc.deploy.get_or_insert_with(Default::default).replicas = Some(n);
        svc.scale = Some(n);
    }
    if args.no_deps {
        for name in &args.service_names {
            if let Some(svc) = app.services.get_mut(name) {
                svc.depends_on.clear();
            }
        }
    }
    Ok(())
}

/// One line for each flag whose Compose meaning native processes lack,
/// saying what cove does instead.
fn say_native_meaning(plan: &cove_runtime::plan::Plan, args: &UpArgs) {
    let containers = plan.services.iter().any(|s| s.container.is_some());
    if args.no_build {
        eprintln!(
            "cove: --no-build: nothing is built for services that run; a service started now still builds its image (or runs its `x-cove.build`), which is how cove makes what it runs"
        );
    }
    if args.pull.is_some_and(|p| p != PullPolicy::Build) && !containers {
        eprintln!(
            "cove: --pull: no service runs as a container (native services run this machine's programs): nothing to pull"
        );
    }
    if args.quiet_pull && !containers {
        eprintln!("cove: --quiet-pull: no service runs as a container: nothing to pull");
    }
}

/// `--pull always` pulls the images of container services again;
/// `--pull never` refuses a missing one. The exit code when it failed.
fn pull(
    plan: &cove_runtime::plan::Plan,
    args: &UpArgs,
    style: &Style,
) -> anyhow::Result<Option<ExitCode>> {
    let policy = args.pull.unwrap_or(PullPolicy::Missing);
    if !matches!(policy, PullPolicy::Always | PullPolicy::Never) {
        return Ok(None);
    }
    // Images named, not built here.
    let images: Vec<&str> = plan
        .services
        .iter()
        .filter_map(|s| s.container.as_ref())
        .filter(|c| c.build.is_none())
        .map(|c| c.image.as_str())
        .collect();
    if images.is_empty() {
        return Ok(None);
    }
    daemon::runtime()?.block_on(async {
        let engine = match cove_runtime::docker::Engine::connect().await {
            Ok(e) => e,
            Err(e) => {
                eprintln!("{}error{}: --pull: {e}", style.red, style.reset);
                return Ok(Some(ExitCode::from(1)));
            }
        };
        for image in images {
            let result = if policy == PullPolicy::Always {
                if !args.quiet_pull {
                    eprintln!("cove: pulling {image}");
                }
                engine.pull(image).await.map(drop).map_err(|e| e.to_string())
            } else {
                match engine.image_id(image).await {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err(format!(
                        "image `{image}` is not on this machine and --pull never forbids pulling it (hint: `cove pull`, or --pull missing)"
                    )),
                    Err(e) => Err(e.to_string()),
                }
            };
            if let Err(e) = result {
                eprintln!("{}error{}: {e}", style.red, style.reset);
                return Ok(Some(ExitCode::from(1)));
            }
        }
        Ok(None)
    })
}

/// `--no-start`: the app checked and planned; the images of container
/// services made ready (built when missing or with `--build`, pulled when
/// missing), as Compose creates its containers; nothing started.
fn no_start(
    plan: &cove_runtime::plan::Plan,
    args: &UpArgs,
    style: &Style,
) -> anyhow::Result<ExitCode> {
    let containers: Vec<_> = plan
        .services
        .iter()
        .filter(|s| s.container.is_some())
        .collect();
    if !containers.is_empty() {
        let rt = daemon::runtime()?;
        let failed = rt.block_on(async {
            let engine = match cove_runtime::docker::Engine::connect().await {
                Ok(e) => e,
                Err(e) => return Some(e.to_string()),
            };
            for svc in containers {
                let Some(c) = &svc.container else { continue };
                let here = matches!(engine.image_id(&c.image).await, Ok(Some(_)));
                let result = if c.build.is_some() {
                    if here && !args.build {
                        continue;
                    }
                    eprintln!("cove: building {} ({})", svc.name, c.image);
                    let name = svc.name.clone();
                    let options = cove_runtime::driver::BuildOptions::default();
                    cove_runtime::driver::build(svc, options, |line| {
                        eprintln!("{name} | {line}");
                    })
                    .await
                } else if here || args.pull == Some(PullPolicy::Never) {
                    continue;
                } else {
                    if !args.quiet_pull {
                        eprintln!("cove: pulling {}", c.image);
                    }
                    engine
                        .ensure_image(&c.image)
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())
                };
                if let Err(e) = result {
                    return Some(format!("{}: {e}", svc.name));
                }
            }
            None
        });
        if let Some(e) = failed {
            eprintln!("{}error{}: {e}", style.red, style.reset);
            return Ok(ExitCode::from(1));
        }
    }
    eprintln!(
        "cove: --no-start: the app is checked and planned ({} service(s)), its images ready; cove makes a replica (process or container) when it starts it, so nothing was started",
        plan.services.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `--watch`: the file watcher and what it gathered.
struct Watching {
    rules: Vec<crate::watch::Rule>,
    changes: std::sync::mpsc::Receiver<std::path::PathBuf>,
    debouncer: crate::watch::Debouncer,
    state_dir: std::path::PathBuf,
    app: cove_spec::App,
    project_dir: std::path::PathBuf,
    /// Services the active profiles leave out.
    disabled: Vec<String>,
    _watcher: notify::RecommendedWatcher,
}

impl Watching {
    fn start(
        rules: Vec<crate::watch::Rule>,
        project: &cove_spec::Project,
    ) -> anyhow::Result<Watching> {
        use notify::Watcher as _;
        let (tx, changes) = std::sync::mpsc::channel();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if let Ok(ev) = res
                    && !matches!(ev.kind, notify::EventKind::Access(_))
                {
                    for p in ev.paths {
                        let _ = tx.send(p);
                    }
                }
            })?;
        for r in &rules {
            watcher
                .watch(&r.path, notify::RecursiveMode::Recursive)
                .map_err(|e| anyhow::anyhow!("{}: {e}", r.path.display()))?;
            eprintln!(
                "cove: watching {} for {} ({:?})",
                r.path.display(),
                r.service,
                r.action
            );
        }
        let state_dir = cove_runtime::plan::state_dir(&project.app, &project.project_dir);
        Ok(Watching {
            rules,
            changes,
            debouncer: Default::default(),
            state_dir: fs_err::canonicalize(&state_dir).unwrap_or(state_dir),
            app: project.app.clone(),
            project_dir: project.project_dir.clone(),
            disabled: project.disabled.keys().cloned().collect(),
            _watcher: watcher,
        })
    }

    /// Takes the changes so far; once quiet, redeploys what they concern
    /// (in the background: the output goes on meanwhile).
    fn poll(&mut self, client: &Client) {
        let now = std::time::Instant::now();
        while let Ok(path) = self.changes.try_recv() {
            self.debouncer
                .change(&self.rules, &path, &self.state_dir, now);
        }
        for (service, action, n) in self.debouncer.ready(now) {
            use crate::watch::Action;
            if action == Action::Sync {
                eprintln!(
                    "cove: watch: {service}: {n} file(s) changed; natively it reads them in place"
                );
                continue;
            }
            let restart = action == Action::Restart;
            eprintln!(
                "cove: watch: {service}: {n} file(s) changed; {}",
                if restart {
                    "replacing its replicas"
                } else {
                    "rebuilding and redeploying"
                }
            );
            let request = cove_daemon::api::DeployRequest {
                app: self.app.clone(),
                project_dir: self.project_dir.clone(),
                services: vec![service.clone()],
                message: format!("watch: {n} file(s) changed"),
                restart,
                identity: crate::cmd::secrets::identity_path(),
                disabled: self.disabled.clone(),
            };
            let client = client.clone();
            tokio::spawn(async move {
                let answer = client
                    .post_for::<cove_daemon::api::Outcomes>(
                        "/v1/deploy",
                        &request,
                        Duration::from_secs(3600),
                    )
                    .await;
                match answer {
                    Ok(o) => {
                        for r in o.results {
                            let word = if r.ok { "cove" } else { "cove: error" };
                            eprintln!("{word}: watch: {}: {}", r.service, r.message);
                        }
                    }
                    Err(e) => eprintln!("cove: error: watch: {service}: {e}"),
                }
            });
        }
    }
}

/// Why a borrow is refused: what is wrong, a hint, and the field of
/// `x-cove.borrow` it is about (`None`: the `--borrow` flag).
struct Refusal {
    message: String,
    hint: String,
    field: Option<Vec<String>>,
}

impl Refusal {
    /// Prints it: located in the files when it is about `x-cove.borrow`.
    fn report(&self, project: &cove_spec::Project, style: &Style) {
        match &self.field {
            Some(field) => crate::project::report_located(
                project,
                &[cove_runtime::plan::PlanError {
                    service: String::new(),
                    message: self.message.clone(),
                    hint: self.hint.clone(),
                    field: field.clone(),
                    machine: false,
                    written: true,
                }],
                false,
            ),
            None => eprintln!(
                "{}error{}: {}\n  = {}hint{}: {}",
                style.red, style.reset, self.message, style.cyan, style.reset, self.hint
            ),
        }
    }
}

/// What is asked to be borrowed: from the flags (`--borrow ENV[:S,...]`,
/// each), else from `x-cove.borrow`; with where it was asked (the flag,
/// or the field). An empty list of services: all the environment runs.
struct Ask {
    env: String,
    services: Vec<String>,
    /// `--borrow VALUE` as given; `None`: from `x-cove.borrow`.
    flag: Option<String>,
}

impl Ask {
    fn all(app: &cove_spec::App, flags: &[String]) -> Result<Vec<Ask>, Refusal> {
        if flags.is_empty() {
            return Ok(app
                .x_cove
                .borrow
                .iter()
                .map(|b| Ask {
                    env: b.env.clone(),
                    services: b.services.clone(),
                    flag: None,
                })
                .collect());
        }
        flags
            .iter()
            .map(|f| {
                let (env, services) = match f.split_once(':') {
                    Some((env, list)) => (
                        env,
                        list.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect(),
                    ),
                    None => (f.as_str(), Vec::new()),
                };
                if env.trim().is_empty() {
                    return Err(Refusal {
                        message: format!("--borrow {f}: no environment named"),
                        hint: "`--borrow staging:db,redis` (an `--env` name, or another checkout's directory)".into(),
                        field: None,
                    });
                }
                Ok(Ask {
                    env: env.trim().to_string(),
                    services,
                    flag: Some(f.clone()),
                })
            })
            .collect()
    }

    /// Where a problem with it is shown: the flag, or `x-cove.borrow.FIELD`.
    fn place(&self, field: &str) -> (String, Option<Vec<String>>) {
        match &self.flag {
            Some(f) => (format!("--borrow {f}: "), None),
            None => (
                format!("`x-cove.borrow.{field}`: "),
                Some(vec!["x-cove".into(), "borrow".into(), field.into()]),
            ),
        }
    }

    fn refuse(&self, field: &str, message: String, hint: String) -> Refusal {
        let (prefix, field) = self.place(field);
        Refusal {
            message: format!("{prefix}{message}"),
            hint,
            field,
        }
    }
}

/// An app's state directory, canonical (made or not): what tells two
/// environments apart.
fn state_key(app: &cove_spec::App, dir: &std::path::Path) -> std::path::PathBuf {
    let state = cove_runtime::plan::state_dir(app, dir);
    fs_err::canonicalize(&state).unwrap_or_else(|_| {
        let relative = app.x_cove.state_dir.as_deref().unwrap_or(".cove");
        fs_err::canonicalize(dir).map_or(state, |d| d.join(relative))
    })
}

/// Fills `x-cove.borrowed` of `project`'s app from `--borrow` (else
/// `x-cove.borrow`): for each service borrowed, the address the lending
/// environment's services reach it at ([`cove_runtime::plan::Plan::reference_address`]
/// of its plan, leased) and its port. Refuses an environment that is not
/// running, a service the app does not have, one the environment does not
/// run, and one `up` is asked to start here. An environment named by the
/// file that is this one lends nothing (its own file names it).
fn borrow(
    project_args: &ProjectArgs,
    project: &mut cove_spec::Project,
    args: &UpArgs,
) -> Result<(), Refusal> {
    project.app.x_cove.borrowed.clear();
    let asks = Ask::all(&project.app, &args.borrow)?;
    if asks.is_empty() {
        return Ok(());
    }
    let own_state = state_key(&project.app, &project.project_dir);
    let rt = daemon::runtime().map_err(|e| Refusal {
        message: e.to_string(),
        hint: "try again".into(),
        field: None,
    })?;
    let mut borrowed = BTreeMap::new();
    for ask in &asks {
        // The lending environment: an `--env` name of this project, or
        // another checkout's directory (its default environment).
        let mut other_args = project_args.clone();
        if ask.env.contains('/') {
            let dir = project.project_dir.join(&ask.env);
            let dir = fs_err::canonicalize(&dir).map_err(|_| {
                ask.refuse(
                    "env",
                    format!("no directory {}", dir.display()),
                    "name an `--env` of this project (`staging`), or the directory of another checkout that runs".into(),
                )
            })?;
            other_args.files = other_args
                .files
                .iter()
                .filter(|f| f.is_absolute())
                .cloned()
                .collect();
            other_args.project_directory = Some(dir);
            other_args.environment = None;
        } else {
            other_args.project_directory = Some(project.project_dir.clone());
            other_args.environment = Some(ask.env.clone());
        }
        other_args.profiles.clear();
        let Some(other) = crate::project::load_all_or_report(&other_args, &[]) else {
            return Err(ask.refuse(
                "env",
                format!("the files of `{}` do not load (above)", ask.env),
                "fix them, or borrow from another environment".into(),
            ));
        };
        let other_state = state_key(&other.app, &other.project_dir);
        if other_state == own_state {
            if ask.flag.is_none() {
                // `x-cove.borrow` read by the environment it names.
                continue;
            }
            return Err(ask.refuse(
                "env",
                format!(
                    "`{}` is this environment: it cannot lend to itself",
                    ask.env
                ),
                "borrow from another one (`--borrow staging:db` in the default environment)".into(),
            ));
        }
        let not_running = || {
            ask.refuse(
                "env",
                format!("the environment `{}` is not running on this host", ask.env),
                format!(
                    "start it first: `cove {}up -d`, or run without borrowing",
                    env_words(&ask.env)
                ),
            )
        };
        let rows = if other_state.is_dir() {
            let client = daemon::find(&other).map_err(|_| not_running())?;
            rt.block_on(super::ps::rows(&client))
                .map_err(|_| not_running())?
        } else {
            Vec::new()
        };
        let runs = |s: &str| {
            rows.iter()
                .any(|r| r.service == s && r.state == cove_daemon::api::ReplicaState::Running)
        };
        if !rows
            .iter()
            .any(|r| r.state == cove_daemon::api::ReplicaState::Running)
        {
            return Err(not_running());
        }
        let names: Vec<String> = if ask.services.is_empty() {
            project
                .app
                .services
                .keys()
                .filter(|s| runs(s) && !args.service_names.contains(s))
                .cloned()
                .collect()
        } else {
            ask.services.clone()
        };
        for s in &names {
            if !project.app.services.contains_key(s) {
                let mut known: Vec<&str> =
                    project.app.services.keys().map(String::as_str).collect();
                known.sort();
                return Err(ask.refuse(
                    "services",
                    format!("the app has no service `{s}` to borrow"),
                    format!("borrow one of its services: {}", known.join(", ")),
                ));
            }
            if !runs(s) {
                return Err(ask.refuse(
                    "services",
                    format!("`{}` does not run `{s}`: there is nothing to borrow", ask.env),
                    format!(
                        "start it there (`cove {}up -d {s}`), or run `{s}` here (leave it out of the borrowed services)",
                        env_words(&ask.env)
                    ),
                ));
            }
            if args.service_names.contains(s) {
                return Err(ask.refuse(
                    "services",
                    format!("`{s}` is borrowed and also asked to start here"),
                    format!("either `cove up {s}` or borrow it, not both"),
                ));
            }
            if borrowed.contains_key(s) {
                return Err(ask.refuse(
                    "services",
                    format!("`{s}` is borrowed twice"),
                    "borrow each service from one environment".into(),
                ));
            }
        }
        if names.is_empty() {
            continue;
        }
        let Some(plan) = crate::project::plan_or_report(&other) else {
            return Err(ask.refuse(
                "env",
                format!("`{}` does not plan (above)", ask.env),
                "fix its files".into(),
            ));
        };
        let plan = crate::project::leased(&other, plan)
            .map_err(|e| ask.refuse("env", e.to_string(), "check its state directory".into()))?;
        for s in names {
            let (Some(address), Some(port)) = (
                plan.reference_address(&s),
                plan.services.iter().find(|p| p.name == s).map(|p| p.port()),
            ) else {
                return Err(ask.refuse(
                    "services",
                    format!(
                        "`{}` does not run `{s}` here: it is served elsewhere",
                        ask.env
                    ),
                    "borrow it from where it runs".into(),
                ));
            };
            borrowed.insert(
                s,
                cove_spec::xcove::Borrowed {
                    env: ask.env.clone(),
                    address,
                    port,
                },
            );
        }
    }
    project.app.x_cove.borrowed = borrowed;
    Ok(())
}

/// How a command names the lending environment `env` before its
/// subcommand: `--env ENV `, or nothing for another checkout's directory
/// (run there).
fn env_words(env: &str) -> String {
    if env.contains('/') {
        String::new()
    } else {
        format!("--env {env} ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrow_flags_name_an_environment_and_its_services() {
        let mut app = cove_spec::App::default();
        app.x_cove.borrow = Some(cove_spec::xcove::Borrow {
            env: "qa".into(),
            services: vec!["cache".into()],
        });
        let flags = ["staging:db, redis,".to_string(), "../main".to_string()];
        let asks = Ask::all(&app, &flags).unwrap_or_else(|r| panic!("{}", r.message));
        assert_eq!(asks.len(), 2, "the flags win over the file");
        assert_eq!(asks[0].env, "staging");
        assert_eq!(asks[0].services, ["db", "redis"]);
        assert_eq!(asks[1].env, "../main");
        assert!(asks[1].services.is_empty(), "all it runs");
        // Without flags: the file's, whose problems point at its field.
        let asks = Ask::all(&app, &[]).unwrap_or_else(|r| panic!("{}", r.message));
        assert_eq!(
            (asks[0].env.as_str(), asks[0].flag.as_deref()),
            ("qa", None)
        );
        let r = asks[0].refuse("services", "bad".into(), "hint".into());
        assert_eq!(r.message, "`x-cove.borrow.services`: bad");
        assert_eq!(
            r.field.as_deref(),
            Some(&["x-cove".to_string(), "borrow".into(), "services".into()][..])
        );
        let Err(r) = Ask::all(&app, &[":db".to_string()]) else {
            panic!("an environment is needed");
        };
        assert!(
            r.message.starts_with("--borrow :db: no environment"),
            "{}",
            r.message
        );
    }
}
