//! PostgreSQL: `postgres` on the replica's address, its data directory
//! initialised on first start (`initdb`) from the image's variables.

use std::path::Path;

use super::runner::{Runner, env_get, own_dir, run, write_private};
use super::{Host, Recipe, binary};

/// The command of a replica (see [`super::Recipe::command`]).
pub(super) fn command(user: Vec<String>, host: &Host) -> Vec<String> {
    let runner = host.runner(Recipe::Postgres);
    let (data, _) = runner.dirs();
    let mut argv = vec![
        host.binary("postgres"),
        "-D".into(),
        format!("{data}/pg"),
        "-h".into(),
        "$HOST".into(),
        "-p".into(),
        "$PORT".into(),
        "-k".into(),
        format!("{data}/run"),
    ];
    // `command: postgres -c max_connections=200`: the options.
    let args = match user.first().map(String::as_str) {
        Some("postgres") => &user[1..],
        _ => &user[..],
    };
    argv.extend(args.iter().cloned());
    runner.argv(argv)
}

/// Before each start: the data directory and the socket's (`run/`) are
/// the server's user's, 0700. First start: `initdb` (superuser
/// `POSTGRES_USER`, password `POSTGRES_PASSWORD`, given in a file on the
/// replica's private tmpfs) into a scratch directory, `POSTGRES_DB` created
/// in single-user mode, then renamed into place, so a failed
/// initialisation leaves nothing half-made. Connections need the password
/// (`scram-sha-256`), over TCP and over the socket, unless
/// `POSTGRES_HOST_AUTH_METHOD` says otherwise.
pub(super) fn prepare_postgres(
    data: &Path,
    private: &Path,
    env: &[(String, String)],
    ids: Option<(u32, u32)>,
) -> Result<(), String> {
    own_dir(&data.join("run"), ids, false)?;
    let pg = data.join("pg");
    if pg.join("PG_VERSION").is_file() {
        // Written as root by earlier versions of cove: the server's now.
        return own_dir(&pg, ids, true);
    }
    let user = env_get(env, "POSTGRES_USER").unwrap_or_else(|| "postgres".into());
    let password = env_get(env, "POSTGRES_PASSWORD");
    let db = env_get(env, "POSTGRES_DB").unwrap_or_else(|| user.clone());
    let auth = match (env_get(env, "POSTGRES_HOST_AUTH_METHOD"), &password) {
        (Some(m), _) => m,
        (None, Some(_)) => "scram-sha-256".into(),
        (None, None) => {
            return Err(
                "the database is not initialised and POSTGRES_PASSWORD is not set \
                 (set it, or POSTGRES_HOST_AUTH_METHOD=trust to allow connections without one)"
                    .into(),
            );
        }
    };
    let local = if password.is_some() {
        "scram-sha-256".to_string()
    } else {
        auth.clone()
    };
    let scratch = data.join("pg.init");
    if scratch.exists() {
        fs_err::remove_dir_all(&scratch).map_err(|e| e.to_string())?;
    }
    let runner = Runner::new(ids, data.display(), private.display());
    let (d, p) = runner.dirs();
    let pwfile = private.join("pwfile");
    let mut argv = vec![
        binary("initdb"),
        "-D".to_string(),
        format!("{d}/pg.init"),
        "-U".into(),
        user.clone(),
        "--encoding=UTF8".into(),
        format!("--auth-local={local}"),
        format!("--auth-host={auth}"),
    ];
    if let Some(pw) = &password {
        write_private(&pwfile, pw)?;
        argv.push(format!("--pwfile={p}/pwfile"));
    }
    if let Some(extra) = env_get(env, "POSTGRES_INITDB_ARGS") {
        argv.extend(
            cove_spec::shell_words::split(&extra)
                .map_err(|e| format!("POSTGRES_INITDB_ARGS cannot be split: {e}"))?,
        );
    }
    let out = run(&runner.argv(argv), None);
    let _ = fs_err::remove_file(&pwfile);
    out?;
    if db != "postgres" {
        let argv = vec![
            binary("postgres"),
            "--single".to_string(),
            "-D".into(),
            format!("{d}/pg.init"),
            "postgres".into(),
        ];
        let sql = format!("CREATE DATABASE \"{}\";\n", db.replace('"', "\"\""));
        run(&runner.argv(argv), Some(&sql))?;
    }
    fs_err::rename(&scratch, &pg).map_err(|e| e.to_string())
}
