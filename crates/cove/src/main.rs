//! The `cove` binary: parses the command line and runs one command.
//!
//! Exit codes: 0 success; 1 the app is invalid or the command failed;
//! 2 usage error (bad flags or arguments).

mod argv;
mod checkout;
mod cli;
mod cmd;
mod daemon;
mod fleet;
mod output;
mod project;
mod remote;
mod ship;
mod watch;

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser as _};

/// mimalloc, only with the `mimalloc` feature (off by default): faster for
/// the gateway's small per-request allocations, but it cost the daemon's
/// resident memory (see bench/gateway/RESULTS.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    quiet_on_a_closed_stdout();
    // Project options after the subcommand too, as Compose users type them.
    let args = argv::rewrite(&cli::Cli::command(), std::env::args_os().collect());
    let cli = cli::Cli::parse_from(args);
    match cmd::run(cli) {
        Ok(code) => code,
        Err(e) => {
            let style = output::stderr_style();
            // `WHAT; hint: HINT` (an I/O error that carries its hint).
            let text = format!("{e:#}");
            match text.rsplit_once("; hint: ") {
                Some((what, hint)) => {
                    eprintln!("{}error{}: {what}", style.red, style.reset);
                    eprintln!("  = {}hint{}: {hint}", style.cyan, style.reset);
                }
                None => eprintln!("{}error{}: {text}", style.red, style.reset),
            }
            ExitCode::from(1)
        }
    }
}

/// `cove ps | head`: the reader has what it wants and closed the pipe, so
/// the rest of the output is not wanted: cove ends at once with 141 (what
/// a shell reports for a process killed by SIGPIPE, as `docker` is)
/// instead of a panic's message and backtrace. Any other panic is left to
/// the default hook.
fn quiet_on_a_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info.payload_as_str().unwrap_or_default();
        if text.starts_with("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
