//! `cove kill [-s SIGNAL] [SERVICE...]`: a signal to the services'
//! running replicas, through the daemon (`POST /v1/kill`). As Docker
//! does, SIGKILL (the default) or a service's own stop signal stops the
//! service: its restart policy does not bring it back, `cove start` or
//! `cove up` does; any other signal is only delivered, and a replica that
//! dies of it is restarted, or not, per its restart policy.

use std::process::ExitCode;

use cove_daemon::api::{Acted, KillRequest};
use rustix::process::Signal;

use crate::cli::{KillArgs, ProjectArgs};
use crate::daemon;
use crate::output::stderr_style;

/// The signals `-s` names (with or without `SIG`), as `kill -l` lists them.
const SIGNALS: &[(&str, Signal)] = &[
    ("HUP", Signal::HUP),
    ("INT", Signal::INT),
    ("QUIT", Signal::QUIT),
    ("ILL", Signal::ILL),
    ("TRAP", Signal::TRAP),
    ("ABRT", Signal::ABORT),
    ("IOT", Signal::ABORT),
    ("BUS", Signal::BUS),
    ("FPE", Signal::FPE),
    ("KILL", Signal::KILL),
    ("USR1", Signal::USR1),
    ("SEGV", Signal::SEGV),
    ("USR2", Signal::USR2),
    ("PIPE", Signal::PIPE),
    ("ALRM", Signal::ALARM),
    ("TERM", Signal::TERM),
    ("CHLD", Signal::CHILD),
    ("CONT", Signal::CONT),
    ("STOP", Signal::STOP),
    ("TSTP", Signal::TSTP),
    ("TTIN", Signal::TTIN),
    ("TTOU", Signal::TTOU),
    ("URG", Signal::URG),
    ("XCPU", Signal::XCPU),
    ("XFSZ", Signal::XFSZ),
    ("VTALRM", Signal::VTALARM),
    ("PROF", Signal::PROF),
    ("WINCH", Signal::WINCH),
    ("IO", Signal::IO),
    ("POLL", Signal::IO),
    ("PWR", Signal::POWER),
    ("SYS", Signal::SYS),
];

/// `SIGHUP`, `hup`, `HUP` or `1`; the signal's number.
pub fn parse_signal(text: &str) -> Option<i32> {
    if let Ok(n) = text.parse::<i32>() {
        return Signal::from_named_raw(n).map(|s| s.as_raw());
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s.as_raw())
}

pub fn run(project_args: &ProjectArgs, args: &KillArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let Some(signal) = parse_signal(&args.signal) else {
        eprintln!(
            "{}error{}: `{}` is no signal",
            style.red, style.reset, args.signal
        );
        eprintln!(
            "  = {}hint{}: name one (SIGKILL, SIGTERM, SIGHUP, SIGUSR1, ...) or give its number",
            style.cyan, style.reset
        );
        return Ok(ExitCode::from(2));
    };
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    let client = daemon::find(&project)?;
    let request = KillRequest {
        services: args.service_names.clone(),
        signal,
    };
    daemon::runtime()?.block_on(async {
        let acted: Acted = match client.post("/v1/kill", &request).await {
            Ok(a) => a,
            Err(e) => {
                daemon::print_error(&style, &e);
                return Ok(ExitCode::from(1));
            }
        };
        let done = if signal == Signal::KILL.as_raw() {
            "killed".to_string()
        } else {
            format!("sent signal {}", args.signal.to_ascii_uppercase())
        };
        Ok(report(&style, &acted, &done, "no running replica to kill"))
    })
}

/// One line per replica acted on (`cove: web-1 killed`), or `none`; exit
/// code 1 when one failed.
pub fn report(style: &cove_spec::Style, acted: &Acted, done: &str, none: &str) -> ExitCode {
    if acted.replicas.is_empty() {
        eprintln!("cove: {none}");
    }
    let mut code = ExitCode::SUCCESS;
    for r in &acted.replicas {
        match &r.error {
            None => eprintln!("cove: {}-{} {done}", r.service, r.replica),
            Some(e) => {
                eprintln!(
                    "{}error{}: {}-{}: {e}",
                    style.red, style.reset, r.service, r.replica
                );
                code = ExitCode::from(1);
            }
        }
    }
    code
}
