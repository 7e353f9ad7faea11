//! What a process the daemon starts inherits of the daemon's own
//! environment: only the variables of [`PASSED`] (and `LC_*`). Replicas,
//! `x-cove.build` commands, exec health probes and recipes' set-up
//! commands start from a cleared environment plus these, then what
//! Compose gives them (`environment`, `env_file`, secrets asked for as
//! variables) and cove's own (`HOST`, `PORT`, `COVE_*`, the marker).
//!
//! The daemon's environment is that of the `cove` command that started it
//! — under a host daemon, of some other project's shell — so anything
//! else it holds (`AWS_SECRET_ACCESS_KEY`, a token, `COVE_IDENTITY`) is
//! kept from replicas. A variable of the shell a service needs is named
//! under its `environment:` without a value (`- AWS_PROFILE`), as in
//! Compose, and then comes from the shell that runs `cove up`.
//!
//! Containers (the docker driver) never saw the daemon's environment.

use std::ffi::OsString;

/// Variables passed on from the daemon's environment, besides `LC_*`:
/// where programs and the user are (`PATH`, `HOME`, `USER`, `LOGNAME`,
/// `SHELL`, `TMPDIR`), language and time (`LANG`, `LANGUAGE`, `TZ`), the
/// terminal type (`TERM`), the TLS trust store (`SSL_CERT_FILE`,
/// `SSL_CERT_DIR`), and where the Rust toolchain is (`CARGO_HOME`,
/// `RUSTUP_HOME`, `RUSTUP_TOOLCHAIN`, `CARGO_TARGET_DIR`: a service run
/// with `cargo run` then finds what `cargo build` built). None holds a
/// secret; tokens (`CARGO_REGISTRY_TOKEN`), proxies (whose URLs may hold
/// passwords), `LD_PRELOAD`/`LD_LIBRARY_PATH` and `COVE_IDENTITY` are not
/// passed.
pub const PASSED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "TERM",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "CARGO_TARGET_DIR",
];

/// Never passed on, whatever the list says (the path of the key that
/// decrypts the app's secrets).
pub const NEVER: &[&str] = &["COVE_IDENTITY"];

/// Whether the daemon's variable `name` is passed on to its children.
pub fn passed(name: &str) -> bool {
    !NEVER.contains(&name) && (PASSED.contains(&name) || name.starts_with("LC_"))
}

/// The part of this process's environment its children inherit: the
/// variables [`passed`] allows.
pub fn inherited() -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(k, _)| k.to_str().is_some_and(passed))
        .collect()
}

/// The whole environment of a child the daemon starts with `own`
/// variables: [`inherited`], then `own` (later ones win, as with
/// `Command::envs`), never [`NEVER`]. Use it on a cleared command:
/// `cmd.env_clear().envs(environ::with(&own))`.
pub fn with(own: &[(String, String)]) -> Vec<(OsString, OsString)> {
    let mut env = inherited();
    env.extend(
        own.iter()
            .filter(|(k, _)| !NEVER.contains(&k.as_str()))
            .map(|(k, v)| (k.into(), v.into())),
    );
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_variables_and_locales_pass() {
        for ok in ["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM"] {
            assert!(passed(ok), "{ok}");
        }
        for no in [
            "AWS_SECRET_ACCESS_KEY",
            "COVE_IDENTITY",
            "GITHUB_TOKEN",
            "CARGO_REGISTRY_TOKEN",
            "http_proxy",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "path",
            "LC",
            "",
        ] {
            assert!(!passed(no), "{no}");
        }
    }

    #[test]
    fn inherited_is_a_subset_of_this_environment() {
        let all: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        let kept = inherited();
        assert!(kept.iter().all(|kv| all.contains(kv)));
        assert!(kept.iter().all(|(k, _)| passed(k.to_str().unwrap())));
        if let Some(path) = std::env::var_os("PATH") {
            assert!(kept.contains(&("PATH".into(), path)));
        }
    }

    /// A replica started by [`crate::process::spawn`] sees the passed
    /// variables and its own, nothing else of this process's environment.
    #[tokio::test]
    async fn a_spawned_process_gets_the_allowlist_and_its_own_variables() {
        let spec = crate::process::ProcessSpec {
            argv: vec!["env".into()],
            workdir: std::env::temp_dir(),
            env: vec![
                ("GREETING".into(), "hello".into()),
                ("COVE_IDENTITY".into(), "/some/key".into()),
            ],
            cgroup: None,
        };
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let l = lines.clone();
        let mut r =
            crate::process::spawn(&spec, move |_, line| l.lock().unwrap().push(line)).unwrap();
        r.wait().await.unwrap();
        let seen = lines.lock().unwrap().clone();
        let names: Vec<&str> = seen
            .iter()
            .filter_map(|l| l.split_once('='))
            .map(|(k, _)| k)
            .collect();
        assert!(seen.contains(&"GREETING=hello".to_string()), "{seen:?}");
        assert!(!names.contains(&"COVE_IDENTITY"), "{seen:?}");
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            assert_eq!(names.contains(&k.as_ref()), passed(&k), "{k}: {seen:?}");
        }
        // The test runner's own variables (cargo sets some) are not passed.
        assert!(
            names.iter().all(|k| passed(k) || *k == "GREETING"),
            "{seen:?}"
        );
    }
}
