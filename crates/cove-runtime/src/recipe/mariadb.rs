//! MariaDB (and MySQL's images): `mariadbd` on the replica's address, its
//! data directory initialised on first start from the image's variables.

use std::path::Path;

use super::runner::{Runner, env_get, own_dir, random_password, run, write_private};
use super::{Host, Recipe};

/// The command of a replica (see [`super::Recipe::command`]).
pub(super) fn command(user: Vec<String>, host: &Host) -> Vec<String> {
    let runner = host.runner(Recipe::Mariadb);
    let (data, private) = runner.dirs();
    let mut argv: Vec<String> = vec![
        host.binary("mariadbd"),
        "--no-defaults".into(),
        format!("--datadir={data}/db"),
        format!("--socket={data}/run/mysqld.sock"),
        format!("--pid-file={data}/run/mysqld.pid"),
        "--bind-address=$HOST".into(),
        "--port=$PORT".into(),
        format!("--init-file={private}/init.sql"),
        "--skip-name-resolve".into(),
        // `SELECT ... INTO OUTFILE` and `LOAD DATA INFILE` only there.
        format!("--secure-file-priv={data}/files"),
    ];
    // Server options given as the image's command (`--character-set-server=...`).
    argv.extend(user.into_iter().filter(|a| a.starts_with("--")));
    runner.argv(argv)
}

/// Before each start: the data directory and its `db/` (the server's
/// files), `run/` (its socket) and `files/` (`--secure-file-priv`) are the
/// server's user's, 0700. First start: `mariadb-install-db`, refused (as
/// the image does) when nothing says what root's password is. Every start:
/// the init file (on the private tmpfs) drops every account without a
/// password that TCP could reach (`root` at `127.0.0.1`, `::1`, the host
/// name; anonymous ones), keeps the health account to the socket, and sets
/// the image's users and database from its variables.
pub(super) fn prepare_mariadb(
    data: &Path,
    private: &Path,
    env: &[(String, String)],
    ids: Option<(u32, u32)>,
) -> Result<(), String> {
    let get = |k: &str| {
        ["MARIADB_", "MYSQL_"]
            .iter()
            .find_map(|p| env_get(env, &format!("{p}{k}")))
    };
    let yes = |k: &str| get(k).is_some_and(|v| v != "0" && v != "no");
    let db_dir = data.join("db");
    own_dir(&db_dir, ids, true)?;
    own_dir(&data.join("run"), ids, false)?;
    own_dir(&data.join("files"), ids, false)?;
    let root_password = get("ROOT_PASSWORD");
    let allow_empty = yes("ALLOW_EMPTY_ROOT_PASSWORD") || yes("ALLOW_EMPTY_PASSWORD");
    let mut random = None;
    if !db_dir.join("mysql").is_dir() {
        if root_password.is_none() && !allow_empty {
            if !yes("RANDOM_ROOT_PASSWORD") {
                return Err("the database is not initialised and root's password is not given: \
                     set MARIADB_ROOT_PASSWORD (from the secrets store: MARIADB_ROOT_PASSWORD_FILE), \
                     MARIADB_RANDOM_ROOT_PASSWORD=1 or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1, as the image asks"
                    .into());
            }
            let pw = random_password()?;
            // Kept for its owner, as the image prints it once.
            write_private(&data.join("generated-root-password"), &pw)?;
            random = Some(pw);
        }
        let runner = Runner::new(ids, data.display(), private.display());
        let (d, _) = runner.dirs();
        let argv = vec![
            "mariadb-install-db".to_string(),
            "--no-defaults".into(),
            format!("--datadir={d}/db"),
            "--auth-root-authentication-method=normal".into(),
            "--skip-test-db".into(),
        ];
        run(&runner.argv(argv), None)?;
    }
    let q = |s: &str| s.replace('\\', "\\\\").replace('\'', "\\'");
    let qi = |s: &str| s.replace('`', "``");
    let mut sql = String::from(
        "-- written by cove before each start\n\
         DELETE FROM mysql.global_priv WHERE User = '' \
           OR (User = 'root' AND Host NOT IN ('localhost', '%')) \
           OR (User = 'cove-health' AND Host <> 'localhost');\n\
         DELETE FROM mysql.proxies_priv WHERE User = '' \
           OR (User = 'root' AND Host NOT IN ('localhost', '%'));\n\
         FLUSH PRIVILEGES;\n\
         CREATE USER IF NOT EXISTS 'cove-health'@'localhost';\n",
    );
    let root = |pw: &str| {
        format!(
            "CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '{0}';\n\
             ALTER USER 'root'@'%' IDENTIFIED BY '{0}';\n\
             ALTER USER 'root'@'localhost' IDENTIFIED BY '{0}';\n\
             GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;\n",
            q(pw)
        )
    };
    match (&root_password, &random) {
        (Some(pw), _) | (None, Some(pw)) => sql.push_str(&root(pw)),
        (None, None) if allow_empty => sql.push_str(&root("")),
        (None, None) => {}
    }
    if let Some(db) = get("DATABASE") {
        sql.push_str(&format!("CREATE DATABASE IF NOT EXISTS `{}`;\n", qi(&db)));
    }
    if let (Some(user), Some(pw)) = (get("USER"), get("PASSWORD")) {
        sql.push_str(&format!("CREATE USER IF NOT EXISTS '{0}'@'%' IDENTIFIED BY '{1}';\nALTER USER '{0}'@'%' IDENTIFIED BY '{1}';\n", q(&user), q(&pw)));
        if let Some(db) = get("DATABASE") {
            sql.push_str(&format!(
                "GRANT ALL ON `{}`.* TO '{}'@'%';\n",
                qi(&db),
                q(&user)
            ));
        }
    }
    write_private(&private.join("init.sql"), &sql)
}
