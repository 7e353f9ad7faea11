//! Forked data for previews (`x-cove.preview: fork`): the baseline's
//! data read from its running replica with the dump its users trust
//! (PostgreSQL `pg_dump -Fc`, MariaDB `mariadb-dump --single-transaction`),
//! into a private temporary file, and loaded into the preview's own
//! instance (`pg_restore --clean --if-exists --no-owner`, `mariadb`). The
//! baseline is only read: its data is never written. Credentials go
//! through a `PGPASSFILE` or an option file (0600), never argv.

use std::process::{Command, Stdio};

use cove_daemon::client::Client;
use cove_runtime::recipe::Recipe;

use super::{Maria, Pg, private_file, replica_of, run_restore};

/// `service`'s data in the baseline (`base`) copied into the preview's
/// instance of it (`preview`), both running; `recipe` says how. An error
/// names what failed, with a hint.
pub fn fork(base: &Client, preview: &Client, service: &str, recipe: Recipe) -> anyhow::Result<()> {
    let done = (|| {
        let from = replica_of(base, service)?;
        let to = replica_of(preview, service)?;
        let dump = private_file("")?;
        let file = || {
            fs_err::OpenOptions::new()
                .read(true)
                .write(true)
                .open(dump.path())
                .map(|f| Stdio::from(f.into_parts().0))
                .map_err(|e| super::Failure::new(e.to_string()))
        };
        match recipe {
            Recipe::Postgres => {
                let (a, b) = (Pg::of(&from)?, Pg::of(&to)?);
                let mut cmd = Command::new("pg_dump");
                cmd.arg("-Fc")
                    .args(a.conn_args())
                    .env_clear()
                    .envs(a.env())
                    .stdin(Stdio::null())
                    .stdout(file()?);
                dumped(cmd, "pg_dump")?;
                let mut cmd = Command::new("pg_restore");
                cmd.args(["--clean", "--if-exists", "--no-owner", "--single-transaction"])
                    .args(b.conn_args())
                    .env_clear()
                    .envs(b.env())
                    .stdin(file()?);
                run_restore(cmd, "pg_restore")
            }
            Recipe::Mariadb => {
                let (a, b) = (Maria::of(&from)?, Maria::of(&to)?);
                let databases = a.databases()?;
                let mut cmd = Command::new("mariadb-dump");
                cmd.arg(a.first_arg())
                    .args(["--single-transaction", "--routines", "--events", "--databases"])
                    .args(&databases)
                    .stdin(Stdio::null())
                    .stdout(file()?);
                dumped(cmd, "mariadb-dump")?;
                let mut cmd = Command::new("mariadb");
                cmd.arg(b.first_arg()).stdin(file()?);
                run_restore(cmd, "mariadb")
            }
            other => Err(super::Failure::new(format!(
                "`{service}` ({other:?}): forking its data is not built yet; PostgreSQL and MariaDB are"
            ))
            .hint("mark it `x-cove.preview: run` (an empty instance of its own) or `share`")),
        }
    })();
    done.map_err(|f| match f.hint {
        Some(h) => anyhow::anyhow!("{}\n  = hint: {h}", f.message),
        None => anyhow::anyhow!("{}", f.message),
    })
}

/// Runs a dump whose output goes to a file; its error output says why it
/// failed.
fn dumped(mut cmd: Command, name: &str) -> Result<(), super::Failure> {
    let out = cmd
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| super::Failure::new(format!("cannot run `{name}`: {e}")))?;
    if !out.status.success() {
        return Err(super::Failure::new(format!(
            "`{name}` of the baseline failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
