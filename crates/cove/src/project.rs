//! From command-line options and the environment to a loaded project:
//! finds the Compose files the way `docker compose` does.

use std::path::{Path, PathBuf};

use cove_spec::{LoadFailure, Options, Project};

use crate::cli::ProjectArgs;
use crate::output::stderr_style;

/// Default file names, in the order Compose tries them.
pub const FILE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// Override file names tried in the directory of the file found.
pub const OVERRIDE_NAMES: [&str; 4] = [
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// Finds the default files: the first directory from `start` upwards that
/// holds one of [`FILE_NAMES`], with its override if there is one.
pub fn discover(start: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut dir = Some(start);
    while let Some(d) = dir {
        let found: Vec<PathBuf> = FILE_NAMES
            .iter()
            .map(|n| d.join(n))
            .filter(|p| p.is_file())
            .collect();
        if let Some(main) = found.first() {
            if found.len() > 1 {
                warnings.push(format!(
                    "found several compose files in {}; using {}",
                    d.display(),
                    main.file_name().unwrap_or_default().to_string_lossy()
                ));
            }
            let mut files = vec![main.clone()];
            let overrides: Vec<PathBuf> = OVERRIDE_NAMES
                .iter()
                .map(|n| d.join(n))
                .filter(|p| p.is_file())
                .collect();
            if let Some(o) = overrides.first() {
                if overrides.len() > 1 {
                    warnings.push(format!(
                        "found several override files in {}; using {}",
                        d.display(),
                        o.file_name().unwrap_or_default().to_string_lossy()
                    ));
                }
                files.push(o.clone());
            }
            return (files, warnings);
        }
        dir = d.parent();
    }
    (Vec::new(), warnings)
}

/// [`load`], with its errors printed to stderr (`None` then: exit 1).
pub fn load_or_report(args: &ProjectArgs, services: &[String]) -> Option<Project> {
    report(load(args, services))
}

/// As [`load_or_report`], but the whole app: `services` only enables their
/// profiles (and must exist). For commands that add to a running app.
pub fn load_all_or_report(args: &ProjectArgs, services: &[String]) -> Option<Project> {
    report(load_with(args, services, true))
}

fn report(loaded: Result<Project, LoadFailure>) -> Option<Project> {
    loaded
        .map_err(|failure| eprint!("{}", failure.render(&crate::output::stderr_style())))
        .ok()
}

/// Plans `project` natively, with the checks `cove up` makes (the plan's,
/// then its daemon's), each error printed to stderr where it is written
/// (`None` then: exit 1). Starts nothing.
pub fn plan_or_report(project: &Project) -> Option<cove_runtime::plan::Plan> {
    let planned = cove_runtime::preflight::checked(
        &project.app,
        cove_runtime::plan::plan(&project.app, &project.project_dir),
        cove_runtime::preflight::check(&project.app),
    );
    let mut errors = planned.as_ref().err().cloned().unwrap_or_default();
    errors.extend(daemon_checks(&project.app));
    if errors.is_empty() {
        return planned.ok();
    }
    refuse(project, &errors);
    None
}

/// `plan`, at the addresses the project leases (as its daemon does at its
/// first `up`; see [`cove_runtime::lease`]), so what `up` says is where
/// its replicas listen.
pub fn leased(
    project: &Project,
    plan: cove_runtime::plan::Plan,
) -> anyhow::Result<cove_runtime::plan::Plan> {
    let net = lease(project)?;
    if plan.services.first().is_none_or(|s| s.net == net) {
        return Ok(plan);
    }
    Ok(cove_runtime::plan::plan(&project.app, &project.project_dir).unwrap_or(plan))
}

/// The project's block of addresses, leased (see [`cove_runtime::lease`])
/// before anything is planned to run: `up`, `run`.
pub fn lease(project: &Project) -> anyhow::Result<u16> {
    let (app, dir) = (&project.app, &project.project_dir);
    let state = cove_runtime::plan::state_dir(app, dir);
    let preferred = cove_runtime::plan::project_net(&app.name, dir);
    let net = cove_runtime::lease::acquire(&state, preferred)
        .map_err(|e| anyhow::anyhow!("cannot lease this project's addresses: {e}"))?;
    // What `cove ls` says of it.
    let about = cove_daemon::about::About {
        name: app.name.clone(),
        env: app.x_cove.env.clone(),
        project_dir: dir.clone(),
        files: project.files.clone(),
    };
    about.write(&state)?;
    Ok(net)
}

/// `cove config`'s check: what [`plan_or_report`] refuses, but problems of
/// this machine (a program not installed) are warnings, not errors: the
/// file may be meant for another. False when the app cannot run anywhere
/// (its errors printed).
pub fn check_or_report(project: &Project) -> bool {
    let mut problems = cove_runtime::preflight::checked(
        &project.app,
        cove_runtime::plan::plan(&project.app, &project.project_dir),
        cove_runtime::preflight::check(&project.app),
    )
    .err()
    .unwrap_or_default();
    problems.extend(daemon_checks(&project.app));
    // What cove cannot run here or yet (a program not installed, a UDP
    // port) is a warning: Compose accepts the file, and it may be meant
    // for another machine. A value the file gets wrong is an error.
    let (machine, errors): (Vec<_>, Vec<_>) =
        problems.into_iter().partition(|e| e.machine || !e.written);
    report_located(project, &machine, true);
    if errors.is_empty() {
        return true;
    }
    refuse(project, &errors);
    false
}

/// Prints `errors` where they are written, then that the app cannot run.
fn refuse(project: &Project, errors: &[cove_runtime::plan::PlanError]) {
    report_located(project, errors, false);
    let style = crate::output::stderr_style();
    let n = errors.len();
    eprintln!(
        "{}error{}: the app cannot run ({n} error{})",
        style.red,
        style.reset,
        if n == 1 { "" } else { "s" }
    );
}

/// What the daemon refuses at `cove up` beyond the plan: autoscaling
/// settings it cannot follow.
fn daemon_checks(app: &cove_spec::App) -> Vec<cove_runtime::plan::PlanError> {
    app.services
        .iter()
        .filter_map(|(name, svc)| {
            let a = svc.x_cove.as_ref()?.autoscale.as_ref()?;
            let e = cove_daemon::autoscale::Policy::from_spec(a).err()?;
            Some(
                cove_runtime::plan::PlanError {
                    service: name.clone(),
                    message: format!("`x-cove.autoscale` {e}"),
                    hint: "e.g. `autoscale: {min: 2, max: 5, target_concurrency: 32}`".into(),
                    field: Vec::new(),
                    machine: false,
                    written: false,
                }
                .at(&["x-cove", "autoscale"])
                .written(),
            )
        })
        .collect()
}

/// Prints planning problems to stderr as errors, or as warnings when
/// `warning`, each with the place in the Compose files of the field it is
/// about (as the loader's errors show it) and its hint.
pub fn report_located(project: &Project, errors: &[cove_runtime::plan::PlanError], warning: bool) {
    let style = crate::output::stderr_style();
    for e in errors {
        let span = cove_spec::locate::locate(&project.sources, &e.path());
        let d = if warning {
            cove_spec::Diagnostic::warning(span, e.to_string())
        } else {
            cove_spec::Diagnostic::error(span, e.to_string())
        };
        eprintln!(
            "{}",
            d.with_hint(e.hint.clone()).render(&project.sources, &style)
        );
    }
}

/// Prints the warnings for `x-cove` fields used and not acted on yet
/// (`config` and `up` show them).
pub fn report_pending(project: &Project) {
    let style = crate::output::stderr_style();
    for w in &project.pending {
        eprint!("{}", w.render(&project.sources, &style));
    }
}

/// Prints planning errors to stderr, each with its hint.
pub fn report_plan_errors(errors: &[cove_runtime::plan::PlanError]) {
    report_plan_problems(errors, false);
}

/// Prints planning problems to stderr as errors, or as warnings when
/// `warning`, each with its hint.
pub fn report_plan_problems(errors: &[cove_runtime::plan::PlanError], warning: bool) {
    let style = crate::output::stderr_style();
    let (color, what) = if warning {
        (style.yellow, "warning")
    } else {
        (style.red, "error")
    };
    for e in errors {
        eprintln!(
            "{color}{what}{}: {e}\n  = {}hint{}: {}",
            style.reset, style.cyan, style.reset, e.hint
        );
    }
}

/// Loads the project the options describe. Warnings go to stderr.
/// `services` cuts the app down to them and their dependencies.
pub fn load(args: &ProjectArgs, services: &[String]) -> Result<Project, LoadFailure> {
    load_with(args, services, false)
}

fn load_with(
    args: &ProjectArgs,
    services: &[String],
    keep_all: bool,
) -> Result<Project, LoadFailure> {
    if args.files.iter().any(|f| f.as_os_str() == "-") {
        return Err(LoadFailure {
            diagnostics: vec![
                cove_spec::Diagnostic::error(
                    None,
                    "reading a compose file from stdin (`-f -`) is not supported",
                )
                .with_hint("save it to a file and pass its path with `-f`"),
            ],
            sources: Default::default(),
        });
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let absolute = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            cwd.join(p)
        }
    };
    let project_dir = args.project_directory.as_deref().map(absolute);
    let style = stderr_style();
    let disable_env_file = std::env::var("COMPOSE_DISABLE_ENV_FILE")
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true"));
    let start = project_dir.as_deref().unwrap_or(&cwd);
    // As in Compose, `.env` in the starting directory may name the files.
    let from_dotenv: Vec<PathBuf> = if args.files.is_empty() && !disable_env_file {
        let dotenv = start.join(".env");
        let lookup = |n: &str| std::env::var(n).ok();
        cove_spec::dotenv::read_values(&dotenv, &lookup)
            .ok()
            .and_then(|vars| vars.get("COMPOSE_FILE").cloned())
            .map(|v| {
                v.split(':')
                    .filter(|p| !p.is_empty())
                    .map(|p| start.join(p))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let files: Vec<PathBuf> = if !from_dotenv.is_empty() {
        from_dotenv
    } else if args.files.is_empty() {
        let (files, warnings) = discover(start);
        for w in warnings {
            eprintln!("{}warning{}: {w}", style.yellow, style.reset);
        }
        files
    } else {
        args.files
            .iter()
            .filter(|f| !f.as_os_str().is_empty())
            .map(|f| absolute(f))
            .collect()
    };
    let mut files = files;
    // `--env-file`, else `COMPOSE_ENV_FILES` (comma-separated), as Compose.
    let from_env: Vec<PathBuf> = std::env::var("COMPOSE_ENV_FILES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|f| absolute(Path::new(f)))
        .collect();
    let mut env_files: Option<Vec<PathBuf>> = if !args.env_files.is_empty() {
        Some(args.env_files.iter().map(|f| absolute(f)).collect())
    } else if !from_env.is_empty() {
        Some(from_env)
    } else if disable_env_file {
        Some(Vec::new())
    } else {
        None
    };
    // An environment with no file of its own: defined only if the file
    // names it (`x-cove.environments`), known once loaded.
    let mut undefined = None;
    if let Some(name) = args.environment.as_deref().filter(|n| !n.is_empty()) {
        let dir = project_dir
            .clone()
            .or_else(|| {
                files
                    .first()
                    .and_then(|f| f.parent())
                    .map(Path::to_path_buf)
            })
            .unwrap_or_else(|| start.to_path_buf());
        undefined = environment(name, &dir, &mut files, &mut env_files, disable_env_file)?;
    }
    let opts = Options {
        files,
        project_dir,
        project_name: args.project_name.clone(),
        env_files,
        environ: std::env::vars().collect(),
        profiles: args.profiles.clone(),
        services: services.to_vec(),
        keep_all,
    };
    let mut project = cove_spec::load(&opts)?;
    if let Some(failure) = undefined
        && let Some(name) = args.environment.as_deref()
        && !project.app.x_cove.environments.contains_key(name)
    {
        return Err(failure);
    }
    for w in &project.warnings {
        eprint!("{}", w.render(&project.sources, &style));
    }
    if let Some(name) = args.environment.as_deref().filter(|n| !n.is_empty()) {
        project.app.x_cove.env = Some(name.to_string());
    }
    separate_state(&mut project);
    Ok(project)
}

/// Another project of the same files (`-p NAME`), or another environment
/// (`--env NAME`), keeps its state apart: its own daemon (or key in the
/// host's), store, data, logs and addresses, in
/// `STATE_DIR/projects/NAME` and `…/env/ENV` under the state directory the
/// files name (`.cove` by default).
fn separate_state(project: &mut cove_spec::Project) {
    // `cove system in` on a host: the app's state directory is the same
    // whichever checkout runs (see crate::checkout).
    if let Some(d) = std::env::var_os("COVE_STATE_DIR").filter(|d| !d.is_empty()) {
        project.app.x_cove.state_dir = Some(PathBuf::from(d).display().to_string());
        return;
    }
    let x = &project.app.x_cove;
    let mut dir = PathBuf::from(x.state_dir.as_deref().unwrap_or(".cove"));
    let mut apart = false;
    if project.own_name.as_deref() != Some(project.app.name.as_str()) {
        dir = dir.join("projects").join(&project.app.name);
        apart = true;
    }
    if let Some(env) = &x.env {
        dir = dir.join("env").join(env);
        apart = true;
    }
    if apart {
        project.app.x_cove.state_dir = Some(dir.display().to_string());
    }
}

/// `--env NAME`: `compose.NAME.yaml` (or `.yml`) after the other files,
/// `.env.NAME` after `.env`; at least one of them, or the environment's
/// secrets file, must exist in `dir`, or the loaded file must name it
/// under `x-cove.environments` (the failure to report when it does not).
fn environment(
    name: &str,
    dir: &Path,
    files: &mut Vec<PathBuf>,
    env_files: &mut Option<Vec<PathBuf>>,
    disable_env_file: bool,
) -> Result<Option<LoadFailure>, LoadFailure> {
    let fail = |message: String, hint: String| LoadFailure {
        diagnostics: vec![cove_spec::Diagnostic::error(None, message).with_hint(hint)],
        sources: Default::default(),
    };
    let valid = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(fail(
            format!("`{name}` is not an environment name"),
            "use letters, digits, `-` and `_` (e.g. `--env prod`)".into(),
        ));
    }
    let compose = [
        format!("compose.{name}.yaml"),
        format!("compose.{name}.yml"),
    ]
    .into_iter()
    .map(|f| dir.join(f))
    .find(|p| p.is_file());
    let dotenv = dir.join(format!(".env.{name}"));
    let secrets = dir.join(cove_runtime::secrets::default_file_name(Some(name)));
    let mut undefined = None;
    if compose.is_none() && !dotenv.is_file() && !secrets.is_file() {
        undefined = Some(fail(
            format!(
                "environment `{name}` is not defined: {} has no compose.{name}.yaml, .env.{name} nor {}",
                dir.display(),
                secrets.file_name().unwrap_or_default().to_string_lossy()
            ),
            format!(
                "create compose.{name}.yaml with what differs in `{name}`, name it under `x-cove.environments`, or check the name (`--env`, `COVE_ENV`)"
            ),
        ));
    }
    if let Some(c) = compose
        && !files.contains(&c)
    {
        files.push(c);
    }
    if dotenv.is_file() && !disable_env_file {
        let list = env_files.get_or_insert_with(|| {
            let base = dir.join(".env");
            if base.is_file() {
                vec![base]
            } else {
                Vec::new()
            }
        });
        list.push(dotenv);
    }
    Ok(undefined)
}
