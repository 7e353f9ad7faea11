//! `cove server install`: see [`crate::cli::ServerInstallArgs`].

use std::process::ExitCode;

use crate::cli::{ServerArgs, ServerCommand};

pub fn run(args: &ServerArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        ServerCommand::Install(_) => anyhow::bail!("`cove server install` is not built yet"),
    }
}
