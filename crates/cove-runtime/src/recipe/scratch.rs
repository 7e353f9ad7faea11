//! A recipe's server on a data directory and port of the caller's choosing,
//! beside (never on) a replica's: the restore drill's scratch instance
//! (`cove backup verify`) and an instance restored beside the running
//! service (`cove restore --to-new`). The same binaries, the same set-up
//! ([`super::prepare`]: `initdb`, `mariadb-install-db`, as the server's
//! system user when cove runs as root) and the same command
//! ([`super::Recipe::command`]) as a replica's, with `$HOST`, `$PORT`,
//! `$COVE_DATA` and `$COVE_SECRETS` given here instead of by the plan.
//!
//! Redis is the exception: a replica's command may make it a replica of
//! another server (which would replace the restored data), a cluster node
//! or a sentinel, or load an AOF instead of the RDB; the scratch server
//! gets a configuration file of its own (`bind`, `port`, `dir`, its
//! password, no AOF, no cluster, `DEBUG` from loopback for `DEBUG
//! DIGEST`), keeping only the service's `--loadmodule` arguments (an RDB
//! holding a module's types loads only with the module).

use std::path::Path;

use cove_spec::model::Service;

use super::runner::write_private;
use super::{Host, Recipe, prepare, user_command};
use crate::health::Probe;
use crate::vars::expand_known;

/// How to run a scratch server, once its directories are set up.
#[derive(Debug, Clone)]
pub struct ScratchServer {
    /// The server's command (as root, wrapped to run as its system user).
    pub argv: Vec<String>,
    /// A command that exits 0 once the server answers (the recipe's probe).
    pub probe: Option<Vec<String>>,
}

/// What a scratch server is made with: where, and its variables (as a
/// replica's environment: `POSTGRES_USER`, `POSTGRES_PASSWORD`,
/// `POSTGRES_DB`, `POSTGRES_INITDB_ARGS`; `MARIADB_ROOT_PASSWORD`; for
/// Redis `REDIS_PASSWORD`, its `requirepass`, and `REDIS_SAVE` (`no`: it
/// never writes its RDB)).
#[derive(Debug, Clone)]
pub struct ScratchSpec<'a> {
    pub recipe: Recipe,
    pub service: &'a Service,
    /// The server's data directory (made 0700, the server's user's).
    pub data: &'a Path,
    /// A private directory (0700) for files holding passwords.
    pub private: &'a Path,
    pub host: &'a str,
    pub port: u16,
    pub vars: &'a [(String, String)],
}

/// Sets up `spec.data` (initialised on first use, as a replica's) and says
/// how to run the server on it. Blocking.
pub fn scratch_server(spec: &ScratchSpec) -> Result<ScratchServer, String> {
    let mut env: Vec<(String, String)> = spec.vars.to_vec();
    env.push(("COVE_SECRETS".into(), spec.private.display().to_string()));
    let expand = vec![
        ("HOST".to_string(), spec.host.to_string()),
        ("PORT".to_string(), spec.port.to_string()),
        ("COVE_DATA".to_string(), spec.data.display().to_string()),
        (
            "COVE_SECRETS".to_string(),
            spec.private.display().to_string(),
        ),
    ];
    let host = Host::here();
    let argv = match spec.recipe {
        Recipe::Postgres | Recipe::Mariadb => {
            prepare(spec.recipe, spec.data, &env)?;
            spec.recipe.command(spec.service, &host)
        }
        Recipe::Redis => {
            prepare(spec.recipe, spec.data, &env)?;
            redis_conf(spec)?;
            vec![
                "redis-server".to_string(),
                spec.private.join("scratch.conf").display().to_string(),
            ]
        }
        other => return Err(format!("no scratch server for the {other:?} recipe")),
    };
    let argv = argv.iter().map(|a| expand_known(a, &expand)).collect();
    let probe = match (spec.recipe, spec.recipe.probe(spec.service, &host)) {
        // Answers even without the password; the caller asks with it.
        (Recipe::Redis, _) => None,
        (_, Some(Probe::Exec(p))) => Some(p.iter().map(|a| expand_known(a, &expand)).collect()),
        _ => None,
    };
    Ok(ScratchServer { argv, probe })
}

/// The scratch Redis's configuration file, private (it holds the password).
fn redis_conf(spec: &ScratchSpec) -> Result<(), String> {
    let var = |k: &str| crate::vars::env_value(spec.vars, k).map(str::to_string);
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut conf = format!(
        "# written by cove for a scratch server\nbind {}\nport {}\ndir {}\ndaemonize no\n\
         protected-mode yes\nappendonly no\ncluster-enabled no\nenable-debug-command local\n",
        spec.host,
        spec.port,
        quote(&spec.data.display().to_string()),
    );
    if var("REDIS_SAVE").as_deref() == Some("no") {
        conf.push_str("save \"\"\n");
    }
    if let Some(pw) = var("REDIS_PASSWORD") {
        conf.push_str(&format!("requirepass {}\n", quote(&pw)));
    }
    let user = user_command(spec.service);
    for (i, a) in user.iter().enumerate() {
        if a == "--loadmodule"
            && let Some(m) = user.get(i + 1)
        {
            conf.push_str(&format!("loadmodule {m}\n"));
        }
    }
    write_private(&spec.private.join("scratch.conf"), &conf)
}
