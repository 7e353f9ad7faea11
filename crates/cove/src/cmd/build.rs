//! `cove build [--no-cache] [--pull] [-q] [SERVICE...]`: builds what the
//! services run, as `cove up` and `cove deploy` would, without starting
//! anything: the images of services run as containers (`build:`, through
//! the Docker engine) and the native services' `x-cove.build` commands
//! (run here, in the service's working directory and environment, as the
//! daemon runs them). Each build's output is printed as it comes (`-q`:
//! only failures, with their last lines).
//!
//! `--push --registry HOST/PREFIX`: the images a cluster pulls instead
//! (see [`super::push`]); `x-cove.build` then runs only for the
//! native-only services, whose program may become an image.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use cove_runtime::driver::{BuildOptions, Driver as _, Native};
use cove_runtime::plan::ServicePlan;

use crate::cli::{BuildArgs, ProjectArgs};
use crate::output::stderr_style;

/// Lines of a failed build's output shown with `-q`.
const LAST_LINES: usize = 20;

pub fn run(project_args: &ProjectArgs, args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let Some(project) = crate::project::load_or_report(project_args, &args.service_names) else {
        return Ok(ExitCode::from(1));
    };
    let Some(plan) = crate::project::plan_or_report(&project) else {
        return Ok(ExitCode::from(1));
    };
    let named =
        |s: &&ServicePlan| args.service_names.is_empty() || args.service_names.contains(&s.name);
    let images: Vec<_> = plan
        .services
        .iter()
        .filter(|s| s.container.as_ref().is_some_and(|c| c.build.is_some()))
        .filter(named)
        // With --push, images are built under the registry's names.
        .filter(|_| !args.push)
        .collect();
    // With --push, what a native-only service's image is made of.
    let native_only = |s: &&ServicePlan| {
        !args.push
            || project
                .app
                .services
                .get(&s.name)
                .is_some_and(|m| m.build.is_none() && m.image.is_none())
    };
    let commands: Vec<_> = plan
        .services
        .iter()
        // As the supervisor: `x-cove.build` runs natively, but for a
        // container that has its image built instead.
        .filter(|s| s.build.is_some() && s.container.as_ref().is_none_or(|c| c.build.is_none()))
        .filter(named)
        .filter(native_only)
        .collect();
    if images.is_empty() && commands.is_empty() && !args.push {
        eprintln!(
            "cove: nothing to build (no service has `build:` and runs as a container, nor has an `x-cove.build`)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !commands.is_empty() && (args.no_cache || args.pull) {
        eprintln!(
            "cove: --no-cache/--pull: an `x-cove.build` command runs whole every time (cove keeps no cache of it, and pulls nothing for it)"
        );
    }
    let options = BuildOptions {
        no_cache: args.no_cache,
        pull: args.pull,
    };
    let rt = crate::daemon::runtime()?;
    for svc in images {
        let image = svc.container.as_ref().map_or("", |c| c.image.as_str());
        if !args.quiet {
            eprintln!("cove: building {} ({image})", svc.name);
        }
        let seen = Lines::default();
        let (name, quiet, lines) = (svc.name.clone(), args.quiet, seen.clone());
        let result = rt.block_on(cove_runtime::driver::build(svc, options, move |line| {
            lines.line(&name, line, quiet);
        }));
        if let Err(e) = result {
            seen.print();
            eprintln!("{}error{}: {}: {e}", style.red, style.reset, svc.name);
            return Ok(ExitCode::from(1));
        }
        if !args.quiet {
            eprintln!("cove: built {image}");
        }
    }
    for svc in commands {
        let argv = svc.build.clone().unwrap_or_default();
        if !args.quiet {
            eprintln!("cove: building {} (`{}`)", svc.name, argv.join(" "));
        }
        let seen = Lines::default();
        let (name, quiet, lines) = (svc.name.clone(), args.quiet, seen.clone());
        let on_line: cove_runtime::driver::OnLine = Arc::new(move |_, line| {
            lines.line(&name, &line, quiet);
        });
        let code = rt.block_on(async {
            match Native.start_build(svc, &argv, svc.env.clone(), on_line) {
                Ok(mut build) => Ok(build.wait().await),
                Err(e) => Err(e),
            }
        });
        let failure = match code {
            Ok(Some(0)) => None,
            Ok(Some(c)) => Some(format!("its build exited with code {c}")),
            Ok(None) => Some("its build was killed by a signal".to_string()),
            Err(e) => Some(format!("its build could not start: {e}")),
        };
        if let Some(why) = failure {
            seen.print();
            eprintln!("{}error{}: {}: {why}", style.red, style.reset, svc.name);
            return Ok(ExitCode::from(1));
        }
        if !args.quiet {
            eprintln!("cove: built {}", svc.name);
        }
    }
    if args.push && !super::push::run(&project, &plan, args)? {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// A build's output: printed as it comes, or (`-q`) its last lines kept
/// to show if it fails.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn line(&self, service: &str, line: &str, quiet: bool) {
        let line = format!("{service} | {line}");
        if !quiet {
            eprintln!("{line}");
            return;
        }
        if let Ok(mut kept) = self.0.lock() {
            kept.push(line);
            if kept.len() > LAST_LINES {
                kept.remove(0);
            }
        }
    }

    /// The lines kept (with `-q`), on a failure.
    fn print(&self) {
        if let Ok(kept) = self.0.lock() {
            for l in kept.iter() {
                eprintln!("{l}");
            }
        }
    }
}
