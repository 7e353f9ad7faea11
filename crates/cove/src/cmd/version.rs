//! `cove version [--short] [--format pretty|json]`: cove's version, as
//! `docker compose version` prints its own.

use std::process::ExitCode;

use crate::cli::{VersionArgs, VersionFormat};

pub fn run(args: &VersionArgs) -> anyhow::Result<ExitCode> {
    let version = env!("CARGO_PKG_VERSION");
    match (args.short, args.format) {
        (true, _) => println!("{version}"),
        (false, VersionFormat::Pretty) => println!("cove version v{version}"),
        (false, VersionFormat::Json) => {
            println!(
                "{}",
                serde_json::json!({ "version": format!("v{version}") })
            )
        }
    }
    Ok(ExitCode::SUCCESS)
}
