//! `cove schema`: prints the generated JSON schema of `x-cove`.

use std::process::ExitCode;

use crate::cli::{SchemaArgs, SchemaName};

pub fn run(args: &SchemaArgs) -> anyhow::Result<ExitCode> {
    match args.name {
        SchemaName::XCove => {
            println!(
                "{}",
                serde_json::to_string_pretty(&cove_spec::xcove::json_schema())?
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
