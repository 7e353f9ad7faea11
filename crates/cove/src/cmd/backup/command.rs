//! `command`: `x-cove.backup.command` run in the service's environment
//! (replica 1's, as `cove exec` gets it from the daemon: its variables,
//! secrets given as variables with their values, its working directory),
//! its standard output stored; `restore_command` gets the dump on its
//! standard input. A string is run by `sh -c`; a list as is.
//!
//! `rabbitmq-definitions`: the same with a fixed command,
//! `rabbitmqctl export_definitions -` (and `import_definitions` to
//! restore) against the running node, reached as the recipe's server
//! does (its node name, `epmd` port and cookie: `HOME` and the env file
//! in the replica's private directory). Definitions are the broker's
//! users (password hashes), virtual hosts, permissions, queues,
//! exchanges, bindings and policies; messages in queues are not in them.
//!
//! The environment goes to the command through `Command::envs`, never on
//! a command line (`cove_backup::Store::backup_command` runs `env -i K=V`,
//! which is only for values that are not secrets).

use std::path::Path;
use std::process::{Command, Stdio};

use cove_backup::{Dump, Meta};
use cove_daemon::api::ExecTarget;
use cove_spec::xcove::StringOrList;

use super::Failure;

/// Debian's `rabbitmqctl` (not the `/usr/sbin` wrapper, which switches to
/// the `rabbitmq` user and its system node).
const RABBITMQCTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";

/// A command as written: a string by `sh -c`, a list as is.
pub fn argv_of(c: &StringOrList) -> Vec<String> {
    match c {
        StringOrList::String(s) => vec!["sh".into(), "-c".into(), s.clone()],
        StringOrList::List(l) => l.clone(),
    }
}

/// The replica's environment, with the values of its secrets.
fn replica_env(t: &ExecTarget) -> Result<Vec<(String, String)>, Failure> {
    let mut env = t.env.clone();
    for (var, file) in &t.secret_env {
        let value = fs_err::read_to_string(file).map_err(|e| {
            Failure::new(format!(
                "cannot read the secret set as `{var}` for `{}`: {e}",
                t.service
            ))
            .hint("run cove as the user the daemon runs as")
        })?;
        env.push((var.clone(), value));
    }
    Ok(env)
}

fn command(t: &ExecTarget, argv: &[String]) -> Result<Command, Failure> {
    let (prog, rest) = argv
        .split_first()
        .ok_or_else(|| Failure::new(format!("`{}`: an empty backup command", t.service)))?;
    let mut cmd = Command::new(prog);
    cmd.args(rest)
        .current_dir(&t.workdir)
        .env_clear()
        .envs(cove_runtime::environ::with(&replica_env(t)?));
    Ok(cmd)
}

/// Runs `argv` beside replica `t` with its standard output stored as a
/// backup of `meta` (none when it fails).
pub fn backup(
    meta: &Meta,
    scratch: &Path,
    t: &ExecTarget,
    argv: &[String],
) -> Result<Dump, Failure> {
    let mut cmd = command(t, argv)?;
    let shown = argv.join(" ");
    let mut failed = None;
    let b = cove_backup::dump_with(meta, scratch, |out| {
        let done = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::piped())
            .output();
        let err = match done {
            Ok(o) if o.status.success() => return Ok(()),
            Ok(o) => format!(
                "the backup command `{shown}` of `{}` failed ({}), no backup was kept: {}",
                t.service,
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => format!(
                "cannot run the backup command `{shown}` of `{}`: {e}",
                t.service
            ),
        };
        failed = Some(err.clone());
        Err(cove_backup::Error::command(err))
    });
    match (b, failed) {
        (Ok(b), _) => Ok(b),
        (Err(_), Some(f)) => Err(Failure::new(f)),
        (Err(e), None) => Err(e.into()),
    }
}

/// Runs `argv` beside replica `t` with `dump` on its standard input.
pub fn restore(t: &ExecTarget, argv: &[String], dump: &Path) -> Result<(), Failure> {
    let mut cmd = command(t, argv)?;
    let input = fs_err::File::open(dump)
        .map_err(|e| Failure::new(e.to_string()))?
        .into_parts()
        .0;
    let shown = argv.join(" ");
    let out = cmd
        .stdin(input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Failure::new(format!("cannot run `{shown}`: {e}")))?;
    if !out.status.success() {
        return Err(Failure::new(format!(
            "the restore command `{shown}` of `{}` failed ({}): {} {}",
            t.service,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        )));
    }
    Ok(())
}

/// `rabbitmqctl ARGS` as the recipe's node is reached: the replica's
/// environment, with `HOME` (the cookie) and the node's env file. The node
/// is `cove-...@localhost` and listens for the CLI (Erlang distribution)
/// on the replica's address only, at its fixed `DIST_PORT`: the CLI is
/// told that `localhost` is that address (an `ERL_INETRC` file, kept
/// while the returned guard lives) and that port (`-erl_epmd_port`, so it
/// asks no `epmd`), and listens itself for nothing (`-dist_listen false`).
pub fn rabbitmqctl(
    t: &ExecTarget,
    args: &[&str],
) -> Result<(Vec<String>, tempfile::NamedTempFile), Failure> {
    let get = |k: &str| {
        t.env
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                Failure::new(format!(
                    "the replica of `{}` has no {k}: is it the rabbitmq recipe's?",
                    t.service
                ))
            })
    };
    let data = get("COVE_DATA")?;
    let private = get("COVE_SECRETS")?;
    let host: std::net::Ipv4Addr = get("HOST")?.parse().map_err(|_| {
        Failure::new(format!(
            "the replica of `{}` has no IPv4 address",
            t.service
        ))
    })?;
    let env_file = format!("{private}/rabbitmq-env.conf");
    let conf = fs_err::read_to_string(&env_file).map_err(|e| {
        Failure::new(format!("cannot read the node's settings: {e}"))
            .hint("run cove as the user the daemon runs as")
    })?;
    let dist_port = conf
        .lines()
        .find_map(|l| l.strip_prefix("DIST_PORT="))
        .ok_or_else(|| Failure::new(format!("{env_file} has no DIST_PORT")))?
        .trim()
        .to_string();
    let octets = host.octets().map(|o| o.to_string()).join(",");
    let inetrc = super::private_file(&format!(
        "{{host, {{{octets}}}, [\"localhost\"]}}.\n{{lookup, [file, native]}}.\n"
    ))?;
    let mut argv = vec![
        "env".to_string(),
        format!("HOME={data}"),
        format!("RABBITMQ_CONF_ENV_FILE={env_file}"),
        format!("ERL_INETRC={}", inetrc.path().display()),
        format!("RABBITMQ_CTL_ERL_ARGS=-erl_epmd_port {dist_port} -dist_listen false"),
        RABBITMQCTL.into(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    Ok((argv, inetrc))
}
