//! One module per command.

mod alerts;
pub(crate) mod backup;
mod build;
mod config;
mod control;
mod cp;
mod deploy;
mod down;
mod events;
mod exec;
mod gateway;
mod images;
pub(crate) mod k8s;
mod kill;
mod logs;
mod ls;
mod pause;
mod port;
pub(crate) mod preview;
pub(crate) mod ps;
mod pull;
pub(crate) mod push;
mod routes;
mod run;
mod schema;
mod secrets;
mod server;
mod top;
mod up;
mod version;
mod wait;
mod watchcmd;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Runs the command; errors that are not an invalid app become exit code 1.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(target) = &cli.host {
        crate::remote::check_supported(&cli.command, target)?;
        crate::remote::set(target.clone());
    }
    match cli.command {
        Command::Config(args) => config::run(&cli.project, &args),
        Command::Schema(args) => schema::run(&args),
        Command::Up(args) => up::run(&cli.project, &args),
        Command::Logs(args) => logs::run(&cli.project, &args),
        Command::Down(args) => down::run(&cli.project, &args),
        Command::Ps(args) => ps::run(&cli.project, &args),
        Command::Ls(args) => ls::run(&args),
        Command::Routes(args) => routes::run(&cli.project, &args),
        Command::Build(args) => build::run(&cli.project, &args),
        Command::Stop(args) => control::run(&cli.project, control::Verb::Stop, &args),
        Command::Start(args) => control::run(&cli.project, control::Verb::Start, &args),
        Command::Restart(args) => control::run(&cli.project, control::Verb::Restart, &args),
        Command::Run(args) => run::run(&cli.project, &args),
        Command::Deploy(args) => deploy::deploy(&cli.project, &args),
        Command::Scale(args) => deploy::scale(&cli.project, &args),
        Command::Rollback(args) => deploy::rollback(&cli.project, &args),
        Command::History(args) => deploy::history(&cli.project, &args),
        Command::Secrets(args) => secrets::run(&cli.project, &args),
        Command::Backup(args) => backup::run(&cli.project, &args),
        Command::K8s(args) => k8s::run(&cli.project, &args),
        Command::Preview(args) => preview::run(&cli.project, &args),
        Command::Restore(args) => backup::restore_cmd(&cli.project, &args),
        Command::Gateway(args) => gateway::run(&args),
        Command::Top(args) => top::run(&cli.project, &args),
        Command::Port(args) => port::run(&cli.project, &args),
        Command::Images(args) => images::run(&cli.project, &args),
        Command::Version(args) => version::run(&args),
        Command::Events(args) => events::run(&cli.project, &args),
        Command::Alerts(args) => alerts::run(&cli.project, &args),
        Command::Wait(args) => wait::run(&cli.project, &args),
        Command::Exec(args) => exec::run(&cli.project, &args),
        Command::Kill(args) => kill::run(&cli.project, &args),
        Command::Pause(args) => pause::run(&cli.project, &args, true),
        Command::Unpause(args) => pause::run(&cli.project, &args, false),
        Command::Cp(args) => cp::run(&cli.project, &args),
        Command::Pull(args) => pull::run(&cli.project, &args),
        Command::Watch(args) => watchcmd::run(&cli.project, &args),
        Command::Server(args) => server::run(&args),
        Command::System(args) => match args.command {
            crate::cli::SystemCommand::Receive { project, env } => {
                Ok(crate::checkout::receive(&project, &env))
            }
            crate::cli::SystemCommand::In {
                project,
                env,
                checkout,
                args,
            } => Ok(crate::checkout::run_in(
                &project,
                &env,
                checkout.as_deref(),
                &args,
            )),
            crate::cli::SystemCommand::DialStdio => {
                let socket = cove_daemon::Paths::new(&cove_daemon::host_dir()).socket();
                Ok(ExitCode::from(
                    cove_daemon::remote::dial_stdio(&socket) as u8
                ))
            }
        },
        Command::Reaper(args) => {
            cove_daemon::server::reaper(&args.state_dir);
            Ok(ExitCode::SUCCESS)
        }
        Command::Daemon(args) => match cove_daemon::server::main(&args.state_dir, args.host) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) => {
                eprintln!("cove-daemon: {e}");
                Ok(ExitCode::from(1))
            }
        },
    }
}
