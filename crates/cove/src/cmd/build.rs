//! `cove build [SERVICE...]`: builds the images of services run as
//! containers (`build:`) through the Docker engine, as `cove up` and
//! `cove deploy` would, without starting anything. Each build's output is
//! printed as it comes.

use std::process::ExitCode;

use crate::cli::{BuildArgs, ProjectArgs};
use crate::output::stderr_style;

pub fn run(project_args: &ProjectArgs, args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let Some(project) = crate::project::load_or_report(project_args, &args.service_names) else {
        return Ok(ExitCode::from(1));
    };
    let Some(plan) = crate::project::plan_or_report(&project) else {
        return Ok(ExitCode::from(1));
    };
    let built: Vec<_> = plan
        .services
        .iter()
        .filter(|s| s.container.as_ref().is_some_and(|c| c.build.is_some()))
        .filter(|s| args.service_names.is_empty() || args.service_names.contains(&s.name))
        .collect();
    if built.is_empty() {
        eprintln!("cove: nothing to build (no service with `build:` runs as containers)");
        return Ok(ExitCode::SUCCESS);
    }
    let rt = crate::daemon::runtime()?;
    for svc in built {
        let image = svc.container.as_ref().map_or("", |c| c.image.as_str());
        eprintln!("cove: building {} ({image})", svc.name);
        let name = svc.name.clone();
        let result = rt.block_on(cove_runtime::driver::build(svc, |line| {
            eprintln!("{name} | {line}");
        }));
        if let Err(e) = result {
            eprintln!("{}error{}: {}: {e}", style.red, style.reset, svc.name);
            return Ok(ExitCode::from(1));
        }
        eprintln!("cove: built {image}");
    }
    Ok(ExitCode::SUCCESS)
}
