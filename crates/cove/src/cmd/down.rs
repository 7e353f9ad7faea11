//! `cove down [--volumes]`: stops every service (dependents first) and
//! forgets them; the daemon exits. Data and logs are kept unless
//! `--volumes` is given, and then every data directory (and Docker volume)
//! is named before it is deleted, and the logs go too.
//!
//! When the daemon is not running (it crashed, or was SIGKILLed), `down`
//! stops what it left behind (its cgroups, the process groups its store
//! recorded, processes carrying its marker: see
//! [`cove_daemon::leftovers`]) and clears what the store says should run.

use std::process::ExitCode;
use std::time::Duration;

use cove_daemon::api::{Accepted, Names};
use cove_daemon::client::{Client, ClientError};
use cove_daemon::leftovers::Leftovers;
use cove_daemon::store::Store;

use cove_spec::Style;

use crate::cli::{DownArgs, ProjectArgs, Rmi};
use crate::daemon;
use crate::output::stderr_style;

/// Grace given to processes of a daemon that is gone.
const LEFTOVER_GRACE: Duration = Duration::from_secs(10);

/// How long `down` waits for an exiting daemon to let go of the store
/// (it holds it at most 5 s after removing its socket).
const STORE_PATIENCE: Duration = Duration::from_secs(15);

pub fn run(project_args: &ProjectArgs, args: &DownArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    if let Some(place) = crate::fleet::elsewhere(&project) {
        let (env, hosts) = place?;
        if args.volumes || args.rmi.is_some() {
            anyhow::bail!(
                "`down -v` and `--rmi` do not work on the hosts of `{env}` yet: nothing was stopped; hint: `cove down --env {env}` stops the app there and keeps its data"
            );
        }
        let mut words = vec!["down".to_string()];
        if args.remove_orphans {
            words.push("--remove-orphans".into());
        }
        if let Some(t) = args.timeout {
            words.extend(["--timeout".to_string(), t.to_string()]);
        }
        return Ok(crate::fleet::on_each(&project, &env, &hosts, &words, false));
    }
    let client = daemon::find(&project)?;
    if let Err(e) = daemon::runtime()?.block_on(down(&client, args.timeout)) {
        daemon::print_error(&style, &e);
        return Ok(ExitCode::from(1));
    }
    remove_one_offs(&project)?;
    if args.volumes {
        delete_data(&client.project)?;
        delete_volumes(&project, &style)?;
    }
    if let Some(rmi) = args.rmi {
        remove_images(&project, rmi, &style)?;
    }
    eprintln!("cove: down");
    if let Some(line) = crate::cmd::backup::still_running(&project) {
        eprintln!("cove: {line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks the daemon to stop everything and waits for a project's daemon to
/// exit; without a daemon, stops what it left.
async fn down(client: &Client, timeout: Option<u64>) -> Result<(), ClientError> {
    // Past a daemon that is exiting (a foreground `cove up` just
    // stopped): then it is gone, and its store is waited for, below.
    let all = Names {
        timeout,
        ..Names::default()
    };
    let answer = cove_daemon::client::past_exit(|| client.post::<Accepted>("/v1/down", &all)).await;
    match answer {
        Ok(_) => {
            // A project's daemon exits once it has answered (a host's stays).
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while !client.host
                && client.paths.pidfile().exists()
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(())
        }
        Err(ClientError::NotRunning) => without_daemon(client),
        Err(e) => Err(e),
    }
}

/// No daemon answers: stops what the last one left of this project and
/// clears what its store says should run.
fn without_daemon(client: &Client) -> Result<(), ClientError> {
    let (paths, key) = (&client.paths, &client.project);
    // A daemon that is exiting (a foreground `cove up` just
    // stopped, Ctrl-C) has removed its socket but may hold the
    // store a few seconds more: wait for it to let go first.
    let store = if paths.store().exists() {
        Some(
            Store::open_waiting(&paths.store(), STORE_PATIENCE).map_err(|e| {
                ClientError::Other(format!(
                    "{e} (a daemon still held it after {STORE_PATIENCE:?}: is one starting right now?)"
                ))
            })?,
        )
    } else {
        None
    };
    // Only this project's: a host's daemon runs others too.
    let left = Leftovers::of_project(paths, key, store.as_ref())
        .stop(rustix::process::Signal::TERM, LEFTOVER_GRACE);
    if !left.is_empty() {
        eprintln!(
            "cove: stopped {} process(es) left by a daemon that did not stop cleanly",
            left.len()
        );
    }
    if let Some(store) = store {
        store
            .set_desired(key, None)
            .map_err(|e| ClientError::Other(e.to_string()))?;
    }
    if !client.host {
        let _ = fs_err::remove_file(paths.pidfile());
        let _ = fs_err::remove_file(paths.socket());
    }
    Ok(())
}

/// `--volumes`: every data directory of the project (named first), and
/// its logs.
fn delete_data(key: &str) -> anyhow::Result<()> {
    let data = std::path::Path::new(key).join("data");
    let mut dirs: Vec<_> = fs_err::read_dir(&data)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    for dir in dirs {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        eprintln!("cove: deleting the data of {name}: {}", dir.display());
        if dir.is_dir() {
            fs_err::remove_dir_all(&dir)?;
        } else {
            fs_err::remove_file(&dir)?;
        }
    }
    // The app's logs go with its data: `cove logs` after `down
    // --volumes` shows only what runs next. (`down` alone keeps them.)
    let logs = cove_runtime::logs::Writer::dir_of(std::path::Path::new(key));
    if logs.is_dir() {
        eprintln!("cove: deleting the logs: {}", logs.display());
        fs_err::remove_dir_all(&logs)?;
    }
    Ok(())
}

/// `--volumes`: the named Docker volumes of services run as containers.
fn delete_volumes(project: &cove_spec::Project, style: &Style) -> anyhow::Result<()> {
    let app = &project.app;
    let net = cove_runtime::plan::net_of(app, &project.project_dir);
    let containers: Vec<String> = cove_runtime::plan::plan(app, &project.project_dir)
        .map(|p| {
            p.services
                .into_iter()
                .filter(|s| s.container.is_some())
                .map(|s| s.name)
                .collect()
        })
        .unwrap_or_default();
    let named: Vec<String> = app
        .services
        .iter()
        .filter(|(n, _)| containers.contains(n))
        .flat_map(|(_, s)| s.volumes.iter())
        .filter(|m| m.kind == cove_spec::model::MountKind::Volume)
        .filter_map(|m| m.source.clone())
        .map(|v| cove_runtime::plan::volume_name(&app.name, net, &v))
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    daemon::runtime()?.block_on(async {
        let Ok(engine) = cove_runtime::docker::Engine::connect().await else {
            return;
        };
        for v in named {
            eprintln!("cove: deleting the Docker volume {v}");
            if let Err(e) = engine.remove_volume(&v).await {
                eprintln!("{}warning{}: {e}", style.yellow, style.reset);
            }
        }
    });
    Ok(())
}

/// The containers `cove run` left (`-d`, or an interrupted cove): every
/// container of the project's goes at `down`, as in Compose.
fn remove_one_offs(project: &cove_spec::Project) -> anyhow::Result<()> {
    let Ok(plan) = cove_runtime::plan::plan(&project.app, &project.project_dir) else {
        return Ok(());
    };
    let Some(c) = plan.services.iter().find_map(|s| s.container.as_ref()) else {
        return Ok(());
    };
    let state = std::path::PathBuf::from(&c.project);
    daemon::runtime()?.block_on(cove_runtime::driver::remove_containers(&state, None, &[]));
    Ok(())
}

/// `--rmi all|local`: the images of the services run as containers:
/// `all`, every image they use (pulled or built); `local`, those cove
/// built with no `image:` of the file's naming them. Natively there are
/// none, which it says.
fn remove_images(project: &cove_spec::Project, rmi: Rmi, style: &Style) -> anyhow::Result<()> {
    let app = &project.app;
    let plan = cove_runtime::plan::plan(app, &project.project_dir).ok();
    let containers: Vec<&cove_runtime::plan::ServicePlan> = plan
        .iter()
        .flat_map(|p| p.services.iter())
        .filter(|s| s.container.is_some())
        .collect();
    if containers.is_empty() {
        eprintln!(
            "cove: --rmi: no service runs as a container (native services run this machine's programs): no image to remove"
        );
        return Ok(());
    }
    // Built here without a name of the file's (`local`), or all.
    let mut images: Vec<String> = Vec::new();
    let mut projects: Vec<String> = Vec::new();
    for svc in &containers {
        let Some(c) = &svc.container else { continue };
        let named = app
            .services
            .get(&svc.name)
            .is_some_and(|s| s.image.is_some());
        if rmi == Rmi::All || (c.build.is_some() && !named) {
            images.push(c.image.clone());
            if c.build.is_some() && !projects.contains(&c.project) {
                projects.push(c.project.clone());
            }
        }
    }
    if images.is_empty() {
        eprintln!(
            "cove: --rmi local: every image has an `image:` name of the file's: none removed"
        );
        return Ok(());
    }
    daemon::runtime()?.block_on(async {
        let engine = match cove_runtime::docker::Engine::connect().await {
            Ok(e) => e,
            Err(e) => {
                eprintln!("{}warning{}: --rmi: {e}", style.yellow, style.reset);
                return;
            }
        };
        // The revisions' tags of what cove built (`cove-APP-SERVICE:rN`)
        // go with it: every image carrying the project's label.
        let mut ids = Vec::new();
        for p in &projects {
            let label = format!("{}={p}", cove_runtime::docker::LABEL_PROJECT);
            ids.extend(engine.images_labelled(&label).await.unwrap_or_default());
        }
        images.sort();
        images.dedup();
        for image in images.iter().chain(ids.iter()) {
            if image.starts_with("sha256:") && !ids.contains(image) {
                continue;
            }
            match engine.image_id(image).await {
                Ok(Some(_)) => {}
                _ => continue,
            }
            if !image.starts_with("sha256:") {
                eprintln!("cove: removing the image {image}");
            }
            if let Err(e) = engine.remove_image(image).await {
                eprintln!("{}warning{}: {e}", style.yellow, style.reset);
            }
        }
    });
    Ok(())
}
