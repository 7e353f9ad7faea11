//! `cove run [--no-deps] [-e K=V]... SERVICE [COMMAND...]`: a one-off command
//! (a migration, a seed) in a service's environment: its dependencies are
//! started first through the daemon (and left running, as Compose does),
//! then the command runs here, attached to the terminal, with the service's
//! environment and working directory. Exit code: the command's.

use std::process::ExitCode;
use std::time::Duration;

use cove_daemon::api::{Accepted, UpRequest};
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
    let env = match environment(&plan, svc, &private, &args.env) {
        Ok(env) => env,
        Err(pair) => {
            eprintln!(
                "{}error{}: `-e {pair}` is not KEY=VALUE",
                style.red, style.reset
            );
            return Ok(ExitCode::from(2));
        }
    };
    let argv = if args.command.is_empty() {
        svc.argv_for(&env)
    } else {
        // `-h cache` and `cache:6379` in it, as in the service's own.
        plan.rewrite_args(&args.command)
    };
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
        attached(svc, &argv, &env).await
    })
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

/// Runs `argv` here, attached to the terminal, in the service's working
/// directory; its exit code (128 + the signal that killed it).
async fn attached(
    svc: &ServicePlan,
    argv: &[String],
    env: &[(String, String)],
) -> anyhow::Result<ExitCode> {
    let Some((prog, rest)) = argv.split_first() else {
        anyhow::bail!(
            "service `{}` has no command; give one after its name",
            svc.name
        );
    };
    let mut child = tokio::process::Command::new(prog)
        .args(rest)
        .current_dir(&svc.workdir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run `{prog}` in {}: {e}", svc.workdir.display()))?;
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
