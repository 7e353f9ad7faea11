//! `cove watch [SERVICE...]`: `cove up --watch` as a command of its own,
//! as `docker compose watch` is: the services start (with what they
//! depend on), their output is followed, and their `develop.watch` rules
//! act on changed files (see [`crate::watch`]) until Ctrl-C stops them.

use std::process::ExitCode;

use clap::{Args as _, FromArgMatches as _};

use crate::cli::{ProjectArgs, UpArgs, WatchArgs};

pub fn run(project_args: &ProjectArgs, args: &WatchArgs) -> anyhow::Result<ExitCode> {
    if args.prune {
        eprintln!(
            "cove: --prune: nothing to prune; the images rebuilt are kept for rollbacks (`cove history`)"
        );
    }
    // `up --watch SERVICE...`, with every other option of `up` at its
    // default (built by clap, so it holds whatever options `up` has).
    let argv = ["up", "--watch"]
        .into_iter()
        .map(String::from)
        .chain(args.service_names.iter().cloned());
    let matches = UpArgs::augment_args(clap::Command::new("up")).try_get_matches_from(argv)?;
    let up = UpArgs::from_arg_matches(&matches)?;
    crate::cmd::up::run(project_args, &up)
}
