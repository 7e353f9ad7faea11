//! Every object `cove k8s render` writes validates with PyPI's
//! kubernetes-validate in strict mode (unknown fields are errors) against
//! the schemas of Kubernetes 1.30, 1.33 and 1.37: the examples (each of
//! which must render), the repository's good fixtures and compose-go's
//! loader fixtures (`../shared/corpus/compose-go`). A fixture cove does
//! not load, or whose render is refused (a native-only service, say), is
//! counted and named, not validated. Examples with a demo identity are
//! rendered with their secrets' values. The validator comes from
//! `scripts/k8s-validate` (a venv made once; `scripts/test` makes it and
//! sets `COVE_TEST_K8S_VALIDATE`); under CI a missing one fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::daemon::run_bounded;

const VERSIONS: [&str; 3] = ["1.30.0", "1.33.0", "1.37.0"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The `kubernetes-validate` program, set up by the script when the
/// environment does not name one; `None` (outside CI, said loudly) when it
/// cannot be.
fn validator() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("COVE_TEST_K8S_VALIDATE") {
        return Some(PathBuf::from(p));
    }
    let out = run_bounded(
        Command::new("bash")
            .arg(repo().join("scripts/k8s-validate"))
            .arg("--bin"),
        900,
    );
    if out.code == Some(0) {
        return Some(PathBuf::from(out.stdout.trim()));
    }
    assert!(
        !ci(),
        "kubernetes-validate could not be set up (python3 and PyPI are needed):\n{out}"
    );
    eprintln!(
        "!!!!!! SKIPPED k8s_validate: kubernetes-validate could not be set up (`bash scripts/k8s-validate --bin`):\n{out} !!!!!!"
    );
    None
}

fn all_yaml(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs_err::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            all_yaml(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}

/// `cove -f FILE ARGS`; an example with a `demo-identity.txt` beside its
/// file is rendered with its secrets' values (`--include-secrets`), so
/// that Secret objects with data are validated too.
fn cove(file: &Path, args: &[&str], home: &Path) -> crate::daemon::Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cove"));
    cmd.arg("-f")
        .arg(file)
        .args(args)
        .current_dir(file.parent().unwrap())
        .env("NO_COLOR", "1")
        .env("HOME", home)
        .env_remove("COVE_ENV")
        .env_remove("COVE_IDENTITY");
    let identity = file.parent().unwrap().join("demo-identity.txt");
    if args.first() == Some(&"k8s") && identity.is_file() {
        cmd.arg("--include-secrets").env("COVE_IDENTITY", identity);
    }
    run_bounded(&mut cmd, 120)
}

/// What became of the compose files given to `render`.
#[derive(Default)]
struct Tally {
    /// Files rendered, and the objects they gave.
    rendered: Vec<(String, usize)>,
    /// Files cove does not load (`cove config -q` refuses them).
    not_loaded: Vec<String>,
    /// Files cove loads but render refuses, with its first line.
    refused: Vec<(String, String)>,
}

/// Renders `file` into `out/<dir>`; `must`: a refusal fails the test.
struct Case<'a> {
    file: &'a Path,
    label: &'a str,
    dir: &'a str,
    must: bool,
}

fn render(case: &Case, out: &Path, home: &Path, tally: &mut Tally) {
    let (file, label, must) = (case.file, case.label, case.must);
    let dir = out.join(case.dir);
    let rendered = cove(
        file,
        &[
            "k8s",
            "render",
            "--registry",
            "registry.test/cove",
            "-o",
            dir.to_str().unwrap(),
        ],
        home,
    );
    if rendered.code == Some(0) {
        let n = fs_err::read_dir(&dir).map_or(0, |d| d.count());
        tally.rendered.push((format!("{} {label}", case.dir), n));
        return;
    }
    assert!(!must, "{label}: `cove k8s render` failed:\n{rendered}");
    let loads = cove(file, &["config", "-q"], home);
    if loads.code == Some(0) {
        let first = rendered.stderr.lines().next().unwrap_or("").to_string();
        tally.refused.push((label.to_string(), first));
    } else {
        tally.not_loaded.push(label.to_string());
    }
}

#[test]
fn rendered_objects_validate_strictly() {
    let Some(validate) = validator() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (out, home) = (tmp.path().join("out"), tmp.path().join("home"));
    fs_err::create_dir_all(&home).unwrap();
    let mut tally = Tally::default();

    // The examples: each must render.
    let mut examples: Vec<PathBuf> = fs_err::read_dir(repo().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path().join("compose.yaml"))
        .filter(|p| p.is_file())
        .collect();
    examples.sort();
    assert!(examples.len() >= 4, "examples: {examples:?}");
    for file in &examples {
        let name = file
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy();
        let label = format!("example-{name}");
        let case = Case {
            file,
            label: &label,
            dir: &label,
            must: true,
        };
        render(&case, &out, &home, &mut tally);
    }

    // The good fixtures and compose-go's: those that load and render.
    let mut fixtures = Vec::new();
    let good = repo().join("fixtures/good");
    for e in fs_err::read_dir(&good).unwrap() {
        let p = e.unwrap().path().join("compose.yaml");
        if p.is_file() {
            let name = p.parent().unwrap().file_name().unwrap().to_string_lossy();
            fixtures.push((format!("good-{name}"), p));
        }
    }
    let corpus = repo().join("../shared/corpus/compose-go");
    assert!(
        corpus.is_dir(),
        "{} is missing: this test renders compose-go's fixtures there (clone the project beside `shared/`, as CI does)",
        corpus.display()
    );
    let mut files = Vec::new();
    all_yaml(&corpus, &mut files);
    for f in files {
        let rel = f.strip_prefix(&corpus).unwrap().display().to_string();
        fixtures.push((format!("compose-go-{rel}"), f));
    }
    fixtures.sort();
    for (i, (label, file)) in fixtures.iter().enumerate() {
        // One directory per file: labels hold `/` and spaces.
        let dir = format!("{i:03}");
        let case = Case {
            file,
            label,
            dir: &dir,
            must: false,
        };
        render(&case, &out, &home, &mut tally);
    }

    let mut manifests = Vec::new();
    all_yaml(&out, &mut manifests);
    let objects: usize = tally.rendered.iter().map(|r| r.1).sum();
    assert_eq!(manifests.len(), objects);
    eprintln!(
        "rendered {} files into {objects} objects; {} not loaded by cove; {} refused by render:",
        tally.rendered.len(),
        tally.not_loaded.len(),
        tally.refused.len()
    );
    for (label, why) in &tally.refused {
        eprintln!("  refused: {label}: {why}");
    }
    for label in &tally.not_loaded {
        eprintln!("  not loaded: {label}");
    }
    // Enough of the corpus renders for the test to mean something.
    assert!(
        tally.rendered.len() >= examples.len() + 20,
        "{:?}",
        tally.rendered
    );

    let mut failures = Vec::new();
    for version in VERSIONS {
        let checked = run_bounded(
            Command::new(&validate)
                .args(["--strict", "--quiet", "-k", version])
                .args(&manifests),
            600,
        );
        // --quiet prints failures and warnings only; a warning (no schema
        // for a kind in this version) is a failure here.
        let said = format!("{}{}", checked.stdout, checked.stderr);
        if checked.code != Some(0) || !said.trim().is_empty() {
            failures.push(format!(
                "Kubernetes {version}: exit {:?}\n{said}",
                checked.code
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "rendered objects that do not validate (the directory numbers are the fixtures above):\n{}\nrendered: {:#?}",
        failures.join("\n"),
        tally.rendered
    );
}
