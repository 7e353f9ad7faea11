//! The CLI reference (docs/reference/cli.md) is generated from the binary's
//! own help; this test fails when the committed copy is stale, and names
//! any command (or subcommand) of the CLI that has no section in it. The
//! commands are read from the help itself (its `Commands:` lists, followed
//! down), so a new command is covered without touching this test. To
//! refresh: `COVE_UPDATE_DOCS=1 cargo nextest run -p cove reference`.

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
    assert!(o.status.success(), "cove {args:?} --help failed");
    String::from_utf8(o.stdout).unwrap()
}

/// The subcommands a help text lists under `Commands:` (clap's `help`
/// pseudo-command left out).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A description wrapped onto its own line is indented further.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// Every command path, depth first in the help's order: `[]` (cove
/// itself), `["config"]`, ..., `["secrets", "recipients", "add"]`.
fn command_tree(path: Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
    let args: Vec<&str> = path.iter().map(String::as_str).collect();
    let text = help(&args);
    let children = subcommands(&text);
    out.push((path.clone(), text));
    for c in children {
        let mut child = path.clone();
        child.push(c);
        command_tree(child, out);
    }
}

#[test]
fn the_command_list_is_read_from_the_help() {
    let mut tree = Vec::new();
    command_tree(Vec::new(), &mut tree);
    let names: Vec<String> = tree.iter().map(|(p, _)| p.join(" ")).collect();
    // A few known ones, so a parser that finds nothing cannot pass.
    for known in [
        "config",
        "routes",
        "deploy",
        "secrets",
        "secrets recipients add",
        "gateway",
    ] {
        assert!(names.iter().any(|n| n == known), "{known} in {names:?}");
    }
    assert!(
        !names
            .iter()
            .any(|n| n.contains("__") || n.ends_with("help")),
        "hidden commands and clap's `help` are not documented: {names:?}"
    );
}

#[test]
fn cli_reference_is_current() {
    let mut tree = Vec::new();
    command_tree(Vec::new(), &mut tree);
    let mut doc = String::from(
        "# CLI reference\n\nGenerated from `cove --help` by `COVE_UPDATE_DOCS=1 cargo nextest run -p cove reference`; do not edit.\n\nExit codes: `0` success, `1` the app is invalid or the command failed, `2` usage error.\n",
    );
    for (path, text) in &tree {
        let title = std::iter::once("cove")
            .chain(path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        doc.push_str(&format!("\n## `{title}`\n\n```text\n{text}```\n"));
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/reference/cli.md");
    if std::env::var_os("COVE_UPDATE_DOCS").is_some() {
        fs_err::write(&path, &doc).unwrap();
        return;
    }
    let committed = fs_err::read_to_string(&path).unwrap_or_default();
    // Named first: a command the CLI has and the reference lacks.
    let missing: Vec<String> = tree
        .iter()
        .map(|(p, _)| {
            format!(
                "## `cove{}`",
                p.iter().map(|c| format!(" {c}")).collect::<String>()
            )
        })
        .filter(|heading| !committed.lines().any(|l| l == heading))
        .collect();
    assert!(
        missing.is_empty(),
        "{} has no section for: {missing:?}; run `COVE_UPDATE_DOCS=1 cargo nextest run -p cove reference` and commit it",
        path.display()
    );
    assert!(
        committed == doc,
        "{} is stale; run `COVE_UPDATE_DOCS=1 cargo nextest run -p cove reference` and commit it",
        path.display()
    );
}
