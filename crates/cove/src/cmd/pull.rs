//! `cove pull [SERVICE...] [-q] [--ignore-pull-failures]`: the images of
//! services run as containers pulled again from their registry through
//! the engine, as `docker compose pull` does (present or not: a newer
//! image under the same tag replaces the old). A service that builds its
//! image (`build:`) or runs natively has nothing to pull; each says so.

use std::process::ExitCode;

use cove_runtime::docker::Engine;

use crate::cli::{ProjectArgs, PullArgs};
use crate::daemon;
use crate::output::stderr_style;

pub fn run(project_args: &ProjectArgs, args: &PullArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let Some(project) = crate::project::load_or_report(project_args, &args.service_names) else {
        return Ok(ExitCode::from(1));
    };
    let plan = match cove_runtime::plan::plan(&project.app, &project.project_dir) {
        Ok(p) => p,
        Err(errors) => {
            crate::project::report_plan_errors(&errors);
            return Ok(ExitCode::from(1));
        }
    };
    let mut images: Vec<(String, String)> = Vec::new();
    for svc in &plan.services {
        if !args.service_names.is_empty() && !args.service_names.contains(&svc.name) {
            continue;
        }
        match &svc.container {
            None if !args.quiet => {
                eprintln!("cove: {} runs natively: nothing to pull", svc.name);
            }
            Some(c) if c.build.is_some() && !args.quiet => eprintln!(
                "cove: {} builds its image ({}): nothing to pull (`cove build` builds it)",
                svc.name, c.image
            ),
            Some(c) if c.build.is_none() => images.push((svc.name.clone(), c.image.clone())),
            _ => {}
        }
    }
    if images.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    daemon::runtime()?.block_on(async {
        let engine = match Engine::connect().await {
            Ok(e) => e,
            Err(e) => {
                daemon::print_engine_error(&style, "", &e);
                return Ok(ExitCode::from(1));
            }
        };
        let mut failed = false;
        for (service, image) in &images {
            if !args.quiet {
                eprintln!("cove: {service}: pulling {image}");
            }
            match engine.pull(image).await {
                Ok(id) if !args.quiet => eprintln!("cove: {service}: pulled {image} ({id})"),
                Ok(_) => {}
                Err(e) if args.ignore_pull_failures => {
                    eprintln!("{}warning{}: {service}: {e}", style.yellow, style.reset);
                }
                Err(e) => {
                    daemon::print_engine_error(&style, &format!("{service}: "), &e);
                    failed = true;
                }
            }
        }
        Ok(if failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    })
}
