//! Redis: `redis-server` on the replica's address (a `redis-cli ...`
//! command, a cluster-init job say, runs as written).
//!
//! Replication and Sentinel, as a Compose file writes them for `redis:7`:
//! - `redis-server [CONF] --replicaof NAME PORT`: `NAME` is another
//!   service; natively it has no host name, so the pair is handed to a
//!   small `sh` as one `NAME:PORT` word, which cove rewrites to the
//!   service's address like any `service:port` reference, and split again
//!   into redis's two words. Every non-cluster server announces its own
//!   address (`--replica-announce-ip $HOST`): Sentinel finds replicas by
//!   what the master says of them.
//! - `redis-sentinel CONF` or `redis-server CONF --sentinel`: Sentinel
//!   rewrites its configuration file (what it learns: replicas, other
//!   sentinels, epochs), so it runs on a writable copy of `CONF` on the
//!   replica's private tmpfs (`$COVE_SECRETS/cove-sentinel.conf`: the file
//!   holds `auth-pass`, so never with the data), made at each start. In
//!   the copy, `sentinel monitor MASTER HOST PORT QUORUM` lines whose `HOST`
//!   is a service the sentinel `depends_on` get that service's address (as
//!   Docker's DNS would give with `sentinel resolve-hostnames yes`); the
//!   sentinel announces its own address (`sentinel announce-ip $HOST`).

/// The image's programs a command may start with, for the server.
fn server_args(user: &[String]) -> (bool, Vec<String>) {
    match user.first().map(String::as_str) {
        Some("redis-server") => (false, user[1..].to_vec()),
        Some("redis-sentinel") => (true, user[1..].to_vec()),
        _ => (false, user.to_vec()),
    }
}

/// Whether the command runs a sentinel.
pub(super) fn is_sentinel(user: &[String]) -> bool {
    let (sentinel, args) = server_args(user);
    sentinel || args.iter().any(|a| a == "--sentinel")
}

/// The arguments `redis-server` gets, as written (before cove's own):
/// what [`super::Recipe::unauthenticated`] judges.
pub(super) fn written_args(user: &[String]) -> Vec<String> {
    let mut argv = vec!["redis-server".to_string()];
    argv.extend(server_args(user).1);
    argv
}

/// Whether a Redis configuration asks clients for a password: a
/// `requirepass` with a value, an `aclfile`, or a `user NAME on ...` line
/// with a password (`>password` or `#sha256`). Comments and blank lines
/// are skipped; directives are case-insensitive, as Redis reads them.
pub(super) fn conf_has_password(text: &str) -> bool {
    text.lines().any(|line| {
        let words = cove_spec::shell_words::split(line.trim()).unwrap_or_default();
        let Some(first) = words.first().filter(|w| !w.starts_with('#')) else {
            return false;
        };
        let value = words.get(1).is_some_and(|v| !v.is_empty());
        match first.to_ascii_lowercase().as_str() {
            "requirepass" | "aclfile" => value,
            "user" => {
                // `user NAME RULE...`
                let rules = words.get(2..).unwrap_or_default();
                rules.iter().any(|r| r.eq_ignore_ascii_case("on"))
                    && !rules.iter().any(|r| r.eq_ignore_ascii_case("nopass"))
                    && rules
                        .iter()
                        .any(|r| r.len() > 1 && (r.starts_with('>') || r.starts_with('#')))
            }
            _ => false,
        }
    })
}

/// The command of a replica (see [`super::Recipe::command`]); `depends_on`
/// are the services the replica depends on (what a sentinel may monitor).
pub(super) fn command(user: Vec<String>, depends_on: &[String]) -> Vec<String> {
    // `redis-cli ...` (a cluster-init job, say) runs as written.
    if user.first().is_some_and(|p| p == "redis-cli") {
        return user;
    }
    if is_sentinel(&user) {
        return sentinel(&user, depends_on);
    }
    let (_, mut args) = server_args(&user);
    let clustered = args.iter().any(|a| a == "--cluster-enabled");
    // `--replicaof NAME PORT` (or `--slaveof`), taken out: see the `//!`.
    let mut primary = None;
    if let Some(i) = args
        .iter()
        .position(|a| a == "--replicaof" || a == "--slaveof")
        && let (Some(host), Some(port)) = (args.get(i + 1), args.get(i + 2))
        && !host.starts_with("--")
        && !port.starts_with("--")
    {
        primary = Some(format!("{host}:{port}"));
        args.drain(i..i + 3);
    }
    let mut argv = vec!["redis-server".to_string()];
    // A config file given first stays first.
    argv.extend(args);
    if clustered {
        // Cluster nodes must tell each other the replica's own address.
        argv.extend(["--cluster-announce-ip", "$HOST"].map(String::from));
    } else {
        argv.extend(["--replica-announce-ip", "$HOST"].map(String::from));
    }
    argv.extend(own());
    match primary {
        None => argv,
        Some(p) => {
            // `$1` is `HOST:PORT` once cove rewrote the service's name.
            let mut sh: Vec<String> = [
                "sh",
                "-c",
                "set -- \"$@\" --replicaof \"${1%:*}\" \"${1##*:}\"; shift; exec \"$@\"",
                "redis-server",
            ]
            .map(String::from)
            .to_vec();
            sh.push(p);
            sh.extend(argv);
            sh
        }
    }
}

/// What cove sets on every server: the replica's address, port and data
/// directory, in the foreground.
fn own() -> Vec<String> {
    [
        "--bind",
        "$HOST",
        "--port",
        "$PORT",
        "--dir",
        "$COVE_DATA",
        "--daemonize",
        "no",
        "--protected-mode",
        "no",
    ]
    .map(String::from)
    .to_vec()
}

/// The script that makes a sentinel's writable configuration and runs it:
/// `$1` the written file (or empty), then `NAME=NAME:PORT` words (the
/// second half rewritten by cove to the service's address) up to `--`,
/// then the server's own arguments.
const SENTINEL_SCRIPT: &str = r#"set -e
umask 077
cove_rw="$COVE_SECRETS/cove-sentinel.conf"
rm -f "$cove_rw"
if [ -n "$1" ]; then cp "$1" "$cove_rw"; else : > "$cove_rw"; fi
chmod 600 "$cove_rw"
shift
while [ "$1" != -- ]; do
  cove_name=${1%%=*}; cove_addr=${1#*=}; cove_addr=${cove_addr%:*}
  sed "s/^\([[:space:]]*sentinel[[:space:]]\{1,\}monitor[[:space:]]\{1,\}[^[:space:]]\{1,\}[[:space:]]\{1,\}\)$cove_name\([[:space:]]\)/\1$cove_addr\2/" "$cove_rw" > "$cove_rw.new"
  mv "$cove_rw.new" "$cove_rw"
  shift
done
shift
exec redis-server "$cove_rw" --sentinel "$@""#;

fn sentinel(user: &[String], depends_on: &[String]) -> Vec<String> {
    let (_, args) = server_args(user);
    // The config file, if given, is the first argument.
    let conf = match args.first() {
        Some(a) if !a.starts_with('-') => a.clone(),
        _ => String::new(),
    };
    let mut argv: Vec<String> = ["sh", "-c", SENTINEL_SCRIPT, "redis-sentinel"]
        .map(String::from)
        .to_vec();
    argv.push(conf);
    argv.extend(depends_on.iter().map(|d| format!("{d}={d}:6379")));
    argv.push("--".into());
    // The user's options, then cove's: given later, they win.
    argv.extend(restore_sentinel_flags(user));
    argv.extend(own());
    argv.extend(
        [
            "--sentinel",
            "announce-ip",
            "$HOST",
            "--sentinel",
            "announce-port",
            "$PORT",
        ]
        .map(String::from),
    );
    argv
}

/// The user's options after the config file, with `--sentinel` kept where
/// it starts a config line (`--sentinel monitor ...`) and dropped where it
/// only asks for sentinel mode (the script gives that).
fn restore_sentinel_flags(user: &[String]) -> Vec<String> {
    let (_, args) = server_args(user);
    let start = usize::from(args.first().is_some_and(|a| !a.starts_with('-')));
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate().skip(start) {
        let next_is_word = args.get(i + 1).is_some_and(|n| !n.starts_with("--"));
        if a == "--sentinel" && !next_is_word {
            continue;
        }
        out.push(a.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn a_replica_names_its_primary_in_one_rewritable_word() {
        let argv = command(
            words(
                "redis-server /run/secrets/redis.conf --replicaof redis-master 6379 --appendonly yes",
            ),
            &[],
        );
        assert_eq!(&argv[..2], ["sh", "-c"]);
        assert_eq!(argv[4], "redis-master:6379");
        assert_eq!(
            &argv[5..9],
            [
                "redis-server",
                "/run/secrets/redis.conf",
                "--appendonly",
                "yes"
            ]
        );
        assert!(!argv[5..].contains(&"--replicaof".to_string()));
        assert!(
            argv.windows(2)
                .any(|w| w == ["--replica-announce-ip", "$HOST"])
        );
    }

    #[test]
    fn the_script_splits_the_primary_again() {
        // What sh runs once cove rewrote `redis-master:6379`.
        let argv = command(words("redis-server --replicaof redis-master 6379"), &[]);
        let mut run = argv.clone();
        run[4] = "127.0.0.9:6379".into();
        run[5] = "echo".into();
        let out = std::process::Command::new(&run[0])
            .args(&run[1..])
            .output()
            .unwrap();
        let said = String::from_utf8(out.stdout).unwrap();
        assert!(
            said.trim_end().ends_with("--replicaof 127.0.0.9 6379"),
            "{said}"
        );
    }

    #[test]
    fn a_sentinel_runs_on_a_writable_copy_with_its_masters_addresses() {
        let tmp = tempfile::tempdir().unwrap();
        let conf = tmp.path().join("written.conf");
        fs_err::write(
            &conf,
            "sentinel resolve-hostnames yes\nsentinel monitor ticker redis-master 6379 2\nsentinel auth-pass ticker pw\n",
        )
        .unwrap();
        for user in [
            format!("redis-sentinel {}", conf.display()),
            format!("redis-server {} --sentinel", conf.display()),
        ] {
            let argv = command(words(&user), &["redis-master".into(), "other".into()]);
            assert_eq!(&argv[..2], ["sh", "-c"]);
            assert_eq!(argv[4], conf.display().to_string());
            assert_eq!(
                &argv[5..8],
                ["redis-master=redis-master:6379", "other=other:6379", "--"]
            );
            assert!(
                argv.windows(3)
                    .any(|w| w == ["--sentinel", "announce-ip", "$HOST"])
            );
            // Run the script as cove would, with `echo` in place of redis.
            let mut run = argv.clone();
            run[5] = "redis-master=127.0.0.9:6379".into();
            run[2] = run[2].replace("exec redis-server", "exec echo");
            let out = std::process::Command::new(&run[0])
                .args(&run[1..])
                .env("COVE_SECRETS", tmp.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            let rw = tmp.path().join("cove-sentinel.conf");
            let copy = fs_err::read_to_string(&rw).unwrap();
            assert!(
                copy.contains("sentinel monitor ticker 127.0.0.9 6379 2\n"),
                "{copy}"
            );
            assert!(copy.contains("sentinel auth-pass ticker pw\n"));
            let said = String::from_utf8(out.stdout).unwrap();
            assert!(
                said.starts_with(&format!("{} --sentinel", rw.display())),
                "{said}"
            );
            assert_eq!(said.matches("--sentinel --bind").count(), 1, "{said}");
        }
    }

    #[test]
    fn sentinel_options_on_the_command_line_stay() {
        let argv = command(
            words("redis-sentinel /c.conf --sentinel monitor m redis-master 6379 2"),
            &[],
        );
        let dash = argv.iter().position(|a| a == "--").unwrap();
        assert_eq!(
            &argv[dash + 1..dash + 7],
            ["--sentinel", "monitor", "m", "redis-master", "6379", "2"]
        );
        assert!(is_sentinel(&words("redis-server /c.conf --sentinel")));
        assert!(!is_sentinel(&words("redis-server --appendonly yes")));
    }

    #[test]
    fn a_password_is_judged_on_the_command_as_written() {
        let svc = |cmd: &str| -> cove_spec::model::Service {
            serde_json::from_value(serde_json::json!({"image": "redis:7", "command": words(cmd)}))
                .unwrap()
        };
        let r = super::super::Recipe::Redis;
        assert!(
            r.unauthenticated(&svc("redis-server --replicaof redis-master 6379"), None)
                .is_some(),
            "a replica without a password is one"
        );
        // A configuration file that is no secret: cove cannot read it.
        let e = r
            .unauthenticated(&svc("redis-server /usr/local/etc/redis/redis.conf"), None)
            .unwrap();
        assert!(e.contains("not one of its secrets"), "{e}");
        // One that is a secret: judged by what it says, once read.
        let with_secret = |cmd: &str, source: &str, target: Option<&str>| {
            let mut v = serde_json::json!({"image": "redis:7", "command": words(cmd)});
            v["secrets"] = serde_json::json!([{"source": source, "target": target}]);
            serde_json::from_value::<cove_spec::model::Service>(v).unwrap()
        };
        let read = |text: &str| crate::secrets::Resolved {
            values: [(
                "conf".to_string(),
                crate::secrets::Value::new(text.as_bytes().to_vec()),
            )]
            .into(),
        };
        let replica = with_secret(
            "redis-server /run/secrets/conf --replicaof m 6379",
            "conf",
            None,
        );
        assert!(r.unauthenticated(&replica, None).is_none(), "not read yet");
        assert!(
            r.unauthenticated(&replica, Some(&read("requirepass s3cret-long\n")))
                .is_none()
        );
        let e = r
            .unauthenticated(&replica, Some(&read("appendonly yes\n# requirepass x\n")))
            .unwrap();
        assert!(
            e.contains("`/run/secrets/conf` (secret `conf`) has no `requirepass`"),
            "{e}"
        );
        let elsewhere = with_secret(
            "redis-server /usr/local/etc/redis/redis.conf",
            "conf",
            Some("/usr/local/etc/redis/redis.conf"),
        );
        assert!(
            r.unauthenticated(&elsewhere, Some(&read("appendonly yes\n")))
                .is_some()
        );
        assert!(
            r.unauthenticated(&elsewhere, Some(&read("aclfile /run/secrets/users.acl\n")))
                .is_none()
        );
        assert!(
            r.unauthenticated(&svc("redis-sentinel /run/secrets/s.conf"), None)
                .is_some(),
            "the sentinel's file is not among its secrets"
        );
    }

    #[test]
    fn a_configuration_sets_a_password_with_requirepass_an_aclfile_or_a_user() {
        for (conf, has) in [
            ("requirepass s3cret", true),
            ("  REQUIREPASS \"s3 cret\"", true),
            ("aclfile /etc/redis/users.acl", true),
            ("user app on >s3cret ~* +@all", true),
            (
                "user app on #5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8 ~*",
                true,
            ),
            ("", false),
            ("# requirepass s3cret", false),
            ("requirepass \"\"", false),
            ("requirepass", false),
            ("appendonly yes\nsave 60 1", false),
            ("user default on nopass ~* +@all", false),
            ("user app off >s3cret", false),
            ("user app on ~* +@all", false),
        ] {
            assert_eq!(conf_has_password(conf), has, "{conf:?}");
        }
    }
}
