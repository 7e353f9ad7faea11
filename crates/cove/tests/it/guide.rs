//! docs/guides/first-app.md works as written: its files are written from
//! its `file=` blocks, and every `$` command of its console blocks runs in
//! order (but the set-up ones: installing packages and cove, changing
//! directory), exits 0, and prints the lines the guide shows under it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::recipes::require;

/// One step of the guide.
#[derive(Debug)]
enum Step {
    File { name: String, text: String },
    Run { cmd: String, shows: Vec<String> },
}

/// The guide's steps, in order.
fn steps(guide: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        if let Some(name) = info
            .split_whitespace()
            .find_map(|w| w.strip_prefix("file="))
        {
            out.push(Step::File {
                name: name.to_string(),
                text: body.join("\n") + "\n",
            });
        } else if info == "console" {
            for l in body {
                match l.strip_prefix("$ ") {
                    Some(cmd) => out.push(Step::Run {
                        cmd: cmd.to_string(),
                        shows: Vec::new(),
                    }),
                    None => {
                        if let Some(Step::Run { shows, .. }) = out.last_mut() {
                            shows.push(l.to_string());
                        }
                    }
                }
            }
        }
    }
    out
}

/// Set-up the test machine has done already (packages, cove itself) or
/// that would leave the test's directory.
fn set_up(cmd: &str) -> bool {
    ["sudo ", "cargo install", "mkdir ", "cd ", "git "]
        .iter()
        .any(|p| cmd.starts_with(p))
}

/// `cove down` of the guide's app, whatever happens.
struct Down<'a>(&'a Path, &'a str);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .args(["-c", "cove down"])
            .current_dir(self.0)
            .env("PATH", self.1)
            .status();
    }
}

#[test]
fn the_first_app_guide_works_as_written() {
    require(&["redis-server", "curl"]);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let guide = fs_err::read_to_string(root.join("docs/guides/first-app.md")).unwrap();
    let steps = steps(&guide);
    assert!(
        steps
            .iter()
            .any(|s| matches!(s, Step::Run { cmd, .. } if cmd.starts_with("cove deploy"))),
        "{steps:?}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let bin = Path::new(env!("CARGO_BIN_EXE_cove")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let _down = Down(dir, &path);
    // The gateway's port: 2683 unless another program holds it.
    let mut port: Option<String> = None;
    for step in &steps {
        match step {
            Step::File { name, text } => fs_err::write(dir.join(name), text).unwrap(),
            Step::Run { cmd, shows } => {
                if set_up(cmd) {
                    continue;
                }
                let cmd = match &port {
                    Some(p) => cmd.replace(":2683/", &format!(":{p}/")),
                    None => cmd.clone(),
                };
                let out = Command::new("sh")
                    .args(["-c", &cmd])
                    .current_dir(dir)
                    .env("PATH", &path)
                    .env("NO_COLOR", "1")
                    .output()
                    .unwrap();
                let stdout = String::from_utf8_lossy(&out.stdout);
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.status.code(), Some(0), "`{cmd}`:\n{stdout}{stderr}");
                if !shows.is_empty() {
                    let got: Vec<&str> = stdout.lines().collect();
                    assert_eq!(got, *shows, "`{cmd}`:\n{stdout}{stderr}");
                }
                if cmd.starts_with("cove up") {
                    let routes = Command::new(env!("CARGO_BIN_EXE_cove"))
                        .args(["routes", "--format", "json"])
                        .current_dir(dir)
                        .output()
                        .unwrap();
                    let v: serde_json::Value = serde_json::from_slice(&routes.stdout).unwrap();
                    let url = v["url"].as_str().unwrap().to_string();
                    port = url.rsplit(':').next().map(str::to_string);
                }
            }
        }
    }
    assert!(port.is_some(), "the guide's app came up");
}
