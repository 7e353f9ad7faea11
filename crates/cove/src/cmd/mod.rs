//! One module per command.

mod config;
mod logs;
mod schema;
mod up;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Runs the command; errors that are not an invalid app become exit code 1.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Config(args) => config::run(&cli.project, &args),
        Command::Schema(args) => schema::run(&args),
        Command::Up(args) => up::run(&cli.project, &args),
        Command::Logs(args) => logs::run(&cli.project, &args),
    }
}
