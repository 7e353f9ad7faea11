//! `cove stop|start|restart [SERVICE...]`: asks the daemon; `start` and
//! `restart` then wait for the services to be ready, as `up -d` does.

use std::process::ExitCode;
use std::time::Duration;

use cove_daemon::api::Accepted;

use crate::cli::{ProjectArgs, ServicesArgs};
use crate::daemon;
use crate::output::stderr_style;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Stop,
    Start,
    Restart,
}

pub fn run(
    project_args: &ProjectArgs,
    verb: Verb,
    args: &ServicesArgs,
) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    if let Some(place) = crate::fleet::elsewhere(&project) {
        let (env, hosts) = place?;
        let word = match verb {
            Verb::Stop => "stop",
            Verb::Start => "start",
            Verb::Restart => "restart",
        };
        let mut words = vec![word.to_string()];
        words.extend(args.service_names.iter().cloned());
        words.extend(["--wait-timeout".to_string(), args.wait_timeout.to_string()]);
        if let Some(t) = args.timeout {
            words.extend(["--timeout".to_string(), t.to_string()]);
        }
        return Ok(crate::fleet::on_each(&project, &env, &hosts, &words, false));
    }
    let client = daemon::find(&project)?;
    let path = match verb {
        Verb::Stop => "/v1/stop",
        Verb::Start => "/v1/start",
        Verb::Restart => "/v1/restart",
    };
    let mut names = daemon::names(&args.service_names);
    names.timeout = args.timeout;
    if verb == Verb::Start && args.timeout.is_some() {
        eprintln!("cove: -t: `start` stops nothing; the timeout is for `stop` and `restart`");
    }
    daemon::runtime()?.block_on(async {
        let accepted: Accepted = match client.post(path, &names).await {
            Ok(a) => a,
            Err(e) => {
                daemon::print_error(&style, &e);
                return Ok(ExitCode::from(1));
            }
        };
        if verb == Verb::Stop {
            return Ok(ExitCode::SUCCESS);
        }
        let services = if args.service_names.is_empty() {
            match client
                .get::<cove_daemon::api::DaemonStatus>("/v1/status")
                .await
            {
                Ok(s) => s.running,
                Err(e) => {
                    daemon::print_error(&style, &e);
                    return Ok(ExitCode::from(1));
                }
            }
        } else {
            args.service_names.clone()
        };
        let timeout = Duration::from_secs(args.wait_timeout);
        match daemon::wait_ready(
            &client,
            &services,
            accepted.seq,
            timeout,
            &accepted.revisions,
        )
        .await
        {
            Ok(ready) => {
                for r in ready {
                    eprintln!("cove: {}-{} {}", r.service, r.replica, r.detail);
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(why) => {
                daemon::print_not_ready(&style, &client, &why, timeout);
                Ok(ExitCode::from(1))
            }
        }
    })
}
