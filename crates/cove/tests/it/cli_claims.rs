//! Claims of the README about `cove config` (issue 27): each test fails
//! when the behaviour it backs breaks.

use std::path::Path;

use crate::daemon::run_bounded;

/// `cove ARGS` in `dir` with only `env` (killed after 60 s); it must
/// succeed. Its standard output.
fn cove(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = run_bounded(
        std::process::Command::new(env!("CARGO_BIN_EXE_cove"))
            .current_dir(dir)
            .args(args)
            .env_clear()
            .env("HOME", "/home/user")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied()),
        60,
    );
    assert_eq!(out.code, Some(0), "cove {args:?} with {env:?}:\n{out}");
    out.stdout
}

fn write(dir: &Path, name: &str, text: &str) {
    fs_err::write(dir.join(name), text).unwrap();
}

/// README: `COMPOSE_DISABLE_ENV_FILE` works as in Compose — set to a true
/// value, `.env` is not read (neither for interpolation nor for naming the
/// compose file); otherwise it is.
#[test]
fn compose_disable_env_file_keeps_dotenv_unread() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  a:\n    image: \"a:${TAG:-unset}\"\n",
    );
    write(
        tmp.path(),
        "other.yaml",
        "services:\n  other:\n    image: \"other:${TAG:-unset}\"\n",
    );
    write(tmp.path(), ".env", "TAG=from-dotenv\n");
    let images = |env: &[(&str, &str)]| {
        let o = cove(tmp.path(), &["config", "--format", "json"], env);
        let v: serde_json::Value = serde_json::from_str(&o).unwrap();
        v["services"]
            .as_object()
            .unwrap()
            .values()
            .map(|s| s["image"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    // The control: `.env` is read.
    assert_eq!(images(&[]), ["a:from-dotenv"]);
    assert_eq!(
        images(&[("COMPOSE_DISABLE_ENV_FILE", "0")]),
        ["a:from-dotenv"]
    );
    for on in ["1", "true"] {
        assert_eq!(
            images(&[("COMPOSE_DISABLE_ENV_FILE", on)]),
            ["a:unset"],
            "COMPOSE_DISABLE_ENV_FILE={on}"
        );
    }
    // `.env` naming the compose file is not read either.
    write(
        tmp.path(),
        ".env",
        "TAG=from-dotenv\nCOMPOSE_FILE=other.yaml\n",
    );
    assert_eq!(images(&[]), ["other:from-dotenv"]);
    assert_eq!(images(&[("COMPOSE_DISABLE_ENV_FILE", "1")]), ["a:unset"]);
}

/// README: `cove config --profiles` prints the profiles the app defines:
/// every one (enabled or not), once, sorted, one per line, as `docker
/// compose config --profiles` does; `--format json` gives the same list.
#[test]
fn config_profiles_prints_every_profile_sorted_one_per_line() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  always:\n    image: a\n  tools:\n    image: t\n    profiles: [zeta, debug]\n  db-admin:\n    image: d\n    profiles: [debug, Admin]\n  seed:\n    image: s\n    profiles: [alpha]\n",
    );
    let o = cove(tmp.path(), &["config", "--profiles"], &[]);
    assert_eq!(o, "Admin\nalpha\ndebug\nzeta\n");
    // The same whichever profiles are enabled.
    let o = cove(
        tmp.path(),
        &["--profile", "debug", "config", "--profiles"],
        &[("COMPOSE_PROFILES", "alpha")],
    );
    assert_eq!(o, "Admin\nalpha\ndebug\nzeta\n");
    let o = cove(
        tmp.path(),
        &["config", "--profiles", "--format", "json"],
        &[],
    );
    let v: Vec<String> = serde_json::from_str(&o).unwrap();
    assert_eq!(v, ["Admin", "alpha", "debug", "zeta"]);
    // An app without profiles prints nothing.
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  a:\n    image: a\n",
    );
    let o = cove(tmp.path(), &["config", "--profiles"], &[]);
    assert_eq!(o, "");
}
