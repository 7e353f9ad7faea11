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
    let user = env_get(env, "POSTGRES_USER").unwrap_or_else(|| "postgres".into());
    let password = env_get(env, "POSTGRES_PASSWORD");
    let db = env_get(env, "POSTGRES_DB").unwrap_or_else(|| user.clone());
    let auth = match (env_get(env, "POSTGRES_HOST_AUTH_METHOD"), &password) {
        (Some(m), _) => Some(m),
        (None, Some(_)) => Some("scram-sha-256".into()),
        (None, None) => None,
    };
    let local = if password.is_some() {
        Some("scram-sha-256".to_string())
    } else {
        auth.clone()
    };
    if pg.join("PG_VERSION").is_file() {
        // Made by an earlier cove, which let the socket in (`local`) with
        // `trust`: asks for the password now, as a new cluster does.
        if let (Some(local), Some(auth)) = (&local, &auth) {
            untrust_hba(data, local, auth, ids)?;
        }
        // Written as root by earlier versions of cove: the server's now.
        return own_dir(&pg, ids, true);
    }
    let (Some(auth), Some(local)) = (auth, local) else {
        return Err(
            "the database is not initialised and POSTGRES_PASSWORD is not set \
             (set it, or POSTGRES_HOST_AUTH_METHOD=trust to allow connections without one)"
                .into(),
        );
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

/// Where [`untrust_hba`] keeps `pg_hba.conf` as it found it.
pub(super) const HBA_BACKUP: &str = "pg_hba.conf.before-cove";

/// `pg_hba.conf` of an existing cluster (`DATA/pg`) with its `trust` lines
/// asking for the password as a new cluster's would: `local` lines get
/// `local`, `host*` lines `auth` (when those are not `trust` themselves).
/// The file as it was is kept beside it ([`HBA_BACKUP`], once). Done
/// through handles of the directories (the cluster's directory is the
/// server's user's: a link planted in it is not followed), the new file
/// given to `ids`, 0600.
fn untrust_hba(
    data: &Path,
    local: &str,
    auth: &str,
    ids: Option<(u32, u32)>,
) -> Result<(), String> {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let at = |what: &Path, e: rustix::io::Errno| {
        format!("{}: {}", what.display(), std::io::Error::from(e))
    };
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let top = rustix::fs::open(data, dir_flags, Mode::empty()).map_err(|e| at(data, e))?;
    let pg_path = data.join("pg");
    let pg =
        rustix::fs::openat(&top, "pg", dir_flags, Mode::empty()).map_err(|e| at(&pg_path, e))?;
    let hba_path = pg_path.join("pg_hba.conf");
    let read = |name: &str| -> Result<Option<String>, String> {
        let path = pg_path.join(name);
        match rustix::fs::openat(
            &pg,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut text)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(Some(text))
            }
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(at(&path, e)),
        }
    };
    let Some(old) = read("pg_hba.conf")? else {
        return Ok(());
    };
    let new = untrusted(&old, local, auth);
    if new == old {
        return Ok(());
    }
    let write = |name: &str, text: &str| -> Result<(), String> {
        let path = pg_path.join(name);
        let _ = rustix::fs::unlinkat(&pg, name, AtFlags::empty());
        let fd = rustix::fs::openat(
            &pg,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| at(&path, e))?;
        if let Some((uid, gid)) = ids {
            rustix::fs::fchown(
                &fd,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            )
            .map_err(|e| at(&path, e))?;
        }
        let mut f = std::fs::File::from(fd);
        std::io::Write::write_all(&mut f, text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    if read(HBA_BACKUP)?.is_none() {
        write(HBA_BACKUP, &old)?;
    }
    write("pg_hba.conf.cove-tmp", &new)?;
    rustix::fs::renameat(&pg, "pg_hba.conf.cove-tmp", &pg, "pg_hba.conf")
        .map_err(|e| at(&hba_path, e))
}

/// `pg_hba.conf`'s text with the method `trust` of `local` lines made
/// `local` and of `host*` lines made `host` (unless that is `trust`);
/// everything else, comments and spacing included, as it was.
pub(super) fn untrusted(text: &str, local: &str, host: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.split('#').next().unwrap_or("");
        // Words with their offsets.
        let mut words = Vec::new();
        let mut start = None;
        for (i, c) in body.char_indices().chain([(body.len(), ' ')]) {
            match (c.is_whitespace(), start) {
                (false, None) => start = Some(i),
                (true, Some(s)) => {
                    words.push((s, &body[s..i]));
                    start = None;
                }
                _ => {}
            }
        }
        // `local DATABASE USER METHOD`, `host DATABASE USER ADDRESS [MASK] METHOD`.
        let (first_method, to) = match words.first().map(|w| w.1) {
            Some("local") => (3, local),
            Some(t) if t.starts_with("host") => (4, host),
            _ => (usize::MAX, ""),
        };
        match words
            .iter()
            .skip(first_method)
            .take(2)
            .find(|w| w.1 == "trust")
        {
            Some(&(at, _)) if to != "trust" => {
                out.push_str(&line[..at]);
                out.push_str(to);
                out.push_str(&line[at + "trust".len()..]);
            }
            _ => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_lines_of_an_old_cluster_ask_for_the_password() {
        let old = "# TYPE  DATABASE        USER            ADDRESS                 METHOD\n\
                   local   all             all                                     trust\n\
                   host    all             all             127.0.0.1/32            trust # old\n\
                   host    all             all             10.0.0.0 255.0.0.0      trust\n\
                   hostssl trust           trust           ::1/128                 scram-sha-256\n\
                   local   replication     all                                     peer\n";
        let new = untrusted(old, "scram-sha-256", "md5");
        assert_eq!(
            new,
            "# TYPE  DATABASE        USER            ADDRESS                 METHOD\n\
             local   all             all                                     scram-sha-256\n\
             host    all             all             127.0.0.1/32            md5 # old\n\
             host    all             all             10.0.0.0 255.0.0.0      md5\n\
             hostssl trust           trust           ::1/128                 scram-sha-256\n\
             local   replication     all                                     peer\n"
        );
        // What the settings leave as `trust` stays.
        assert_eq!(
            untrusted(old, "scram-sha-256", "trust")
                .matches("trust")
                .count(),
            4
        );
        assert_eq!(untrusted(&new, "scram-sha-256", "md5"), new);
    }
}
