//! The CLI reference (docs/reference/cli.md) is generated from the binary's
//! own help; this test fails when the committed copy is stale. To refresh:
//! `COVE_UPDATE_DOCS=1 cargo nextest run -p cove reference`.

use std::path::Path;
use std::process::Command;

fn help(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_cove"))
        .args(args)
        .arg("--help")
        .env_clear()
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn cli_reference_is_current() {
    let mut doc = String::from(
        "# CLI reference\n\nGenerated from `cove --help` by `COVE_UPDATE_DOCS=1 cargo nextest run -p cove reference`; do not edit.\n\nExit codes: `0` success, `1` the app is invalid or the command failed, `2` usage error.\n",
    );
    for (title, args) in [
        ("cove", &[][..]),
        ("cove config", &["config"][..]),
        ("cove schema", &["schema"][..]),
        ("cove up", &["up"][..]),
        ("cove down", &["down"][..]),
        ("cove ps", &["ps"][..]),
        ("cove logs", &["logs"][..]),
        ("cove stop", &["stop"][..]),
        ("cove start", &["start"][..]),
        ("cove restart", &["restart"][..]),
        ("cove run", &["run"][..]),
        ("cove gateway", &["gateway"][..]),
    ] {
        doc.push_str(&format!("\n## `{title}`\n\n```text\n{}```\n", help(args)));
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/reference/cli.md");
    if std::env::var_os("COVE_UPDATE_DOCS").is_some() {
        fs_err::write(&path, &doc).unwrap();
        return;
    }
    let committed = fs_err::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == doc,
        "{} is stale; run `COVE_UPDATE_DOCS=1 cargo nextest run -p cove reference` and commit it",
        path.display()
    );
}
