//! kvstore-client: sends key-value calls to a kvstore front end — through
//! cove's gateway by default — and prints each answer on stdout, one line
//! each, with the replica that served it. Failures go to stderr
//! (`error: ...`) and make the exit code 1 (2: a usage error).
//!
//! ```text
//! kvstore-client [--addr URL] [batch [N]]   N puts, then N gets that read them back (default 10)
//! kvstore-client [--addr URL] put KEY VALUE [KEY VALUE...]   (VALUE `@FILE`: the file's contents)
//! kvstore-client [--addr URL] get KEY... | delete KEY... | list [PREFIX]
//! kvstore-client [--addr URL] health        the standard gRPC health check
//! ```

mod calls;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tonic::transport::{Channel, Endpoint};

/// A client of the kvstore example: sends calls, prints the answers.
#[derive(Debug, Parser)]
#[command(name = "kvstore-client")]
struct Args {
    /// The front end's URL: cove's gateway (its default address) or a replica.
    #[arg(long, env = "KV_ADDR", default_value = "http://127.0.0.1:2683")]
    addr: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand)]
enum Command {
    /// N puts (key-1 … key-N), then N gets checking each value (the default).
    Batch {
        #[arg(default_value_t = 10)]
        n: u32,
    },
    /// Stores each VALUE under its KEY (`@FILE`: the file's contents).
    Put {
        /// KEY VALUE pairs.
        #[arg(required = true, num_args = 2.., value_names = ["KEY", "VALUE"])]
        pairs: Vec<String>,
    },
    /// Prints the value of each KEY.
    Get {
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Removes each KEY.
    Delete {
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Lists the entries whose key starts with PREFIX.
    List {
        #[arg(default_value = "")]
        prefix: String,
    },
    /// Asks the standard gRPC health service (through the gateway: a
    /// `server` replica's).
    Health,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let channel = match connect(&args.addr).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot connect to {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    let mut calls = calls::Calls::new(channel);
    let ok = match args.command.unwrap_or(Command::Batch { n: 10 }) {
        Command::Batch { n } => calls.batch(n).await,
        Command::Put { pairs } => {
            if pairs.len() % 2 != 0 {
                eprintln!("error: `put` takes KEY VALUE pairs; the last key has no value");
                return ExitCode::from(2);
            }
            let mut ok = true;
            for pair in pairs.chunks(2) {
                let value = match pair[1].strip_prefix('@') {
                    Some(path) => match fs_err::read(path) {
                        Ok(v) => v,
                        Err(e) => {
                            eprintln!("error: {e}");
                            return ExitCode::from(2);
                        }
                    },
                    None => pair[1].clone().into_bytes(),
                };
                ok &= calls.put(&pair[0], &value).await;
            }
            ok
        }
        Command::Get { keys } => {
            let mut ok = true;
            for key in keys {
                ok &= calls.get(&key).await.is_some();
            }
            ok
        }
        Command::Delete { keys } => {
            let mut ok = true;
            for key in keys {
                ok &= calls.delete(&key).await;
            }
            ok
        }
        Command::List { prefix } => calls.list(&prefix).await,
        Command::Health => calls.health().await,
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A connection (HTTP/2 without TLS, as gRPC clients speak to the gateway).
async fn connect(addr: &str) -> Result<Channel, String> {
    Endpoint::from_shared(addr.to_string())
        .map_err(|e| format!("not a URL ({e})"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| {
            // The whole chain, each cause once (tonic repeats some).
            let mut parts = vec![e.to_string()];
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                let part = s.to_string();
                if !parts.iter().any(|p| p.contains(&part)) {
                    parts.push(part);
                }
                source = s.source();
            }
            parts.join(": ")
        })
}
