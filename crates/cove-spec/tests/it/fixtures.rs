//! Every app under `fixtures/good` loads, and its resolved form is
//! snapshotted; every app under `fixtures/bad` fails, and its diagnostics are
//! snapshotted (file, line, column, caret, hint).

use crate::support::{options_for, render, repo_root};

fn each(kind: &str, expect_ok: bool) {
    let root = repo_root().join("fixtures").join(kind);
    let mut dirs: Vec<_> = fs_err::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no fixtures in {}", root.display());
    let mut wrong = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let (ok, text) = render(dir, &options_for(dir));
        if ok != expect_ok {
            wrong.push(format!(
                "{name}: expected {}, got:\n{text}",
                if expect_ok { "success" } else { "failure" }
            ));
            continue;
        }
        insta::assert_snapshot!(format!("{kind}__{name}"), text);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn good_fixtures_load() {
    each("good", true);
}

#[test]
fn bad_fixtures_fail_with_their_diagnostics() {
    each("bad", false);
}

#[test]
fn every_bad_fixture_error_has_a_place_and_a_hint() {
    let root = repo_root().join("fixtures/bad");
    for entry in fs_err::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let Err(f) = cove_spec::load(&options_for(&dir)) else {
            panic!("{} loaded", dir.display());
        };
        for d in f.diagnostics.iter().filter(|d| d.is_error()) {
            assert!(
                d.span.is_some(),
                "{}: `{}` has no place",
                dir.display(),
                d.message
            );
            assert!(
                d.hint.is_some(),
                "{}: `{}` has no hint",
                dir.display(),
                d.message
            );
        }
    }
}

#[test]
fn the_multi_error_fixture_reports_every_error() {
    let dir = repo_root().join("fixtures/bad/many-errors");
    let Err(f) = cove_spec::load(&options_for(&dir)) else {
        panic!("loaded");
    };
    let errors = f.diagnostics.iter().filter(|d| d.is_error()).count();
    assert!(errors >= 5, "only {errors} errors:\n{f}");
}

/// The daemon receives the App as JSON and stores it so: it must come back
/// the same.
#[test]
fn every_good_app_round_trips_through_json() {
    let root = repo_root().join("fixtures/good");
    let mut n = 0;
    for entry in fs_err::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let project = cove_spec::load(&options_for(&dir)).unwrap();
        let json = serde_json::to_string(&project.app).unwrap();
        let back: cove_spec::App = serde_json::from_str(&json).unwrap();
        assert_eq!(back, project.app, "{}", dir.display());
        n += 1;
    }
    assert!(n >= 9, "only {n} apps");
}

/// A tab in the indentation is reported where the tab is (its own line and
/// column), saying why; the scanner alone points at the end of the line
/// before it.
#[test]
fn a_tab_in_the_indentation_is_reported_at_the_tab() {
    let dir = repo_root().join("fixtures/bad/tab-indentation");
    let Err(f) = cove_spec::load(&options_for(&dir)) else {
        panic!("loaded");
    };
    let errors: Vec<_> = f.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "{f}");
    let d = errors[0];
    assert!(
        d.message
            .contains("YAML does not allow tabs for indentation"),
        "{f}"
    );
    let span = d.span.expect("a place");
    // Line 4 is `  \tports: ...`: the tab is its third character.
    assert_eq!((span.line, span.col), (4, 3), "{f}");
    assert!(
        d.hint.as_deref().is_some_and(|h| h.contains("spaces")),
        "{f}"
    );

    // Indented by a tab alone, on the line of the error itself.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("compose.yaml");
    fs_err::write(
        &file,
        "services:\n  web:\n    image: nginx\n    environment:\n\t  A: b\n",
    )
    .unwrap();
    let mut opts = options_for(tmp.path());
    opts.files = vec![file];
    let Err(f) = cove_spec::load(&opts) else {
        panic!("loaded");
    };
    let d = &f.diagnostics[0];
    assert!(d.message.contains("tabs for indentation"), "{f}");
    let span = d.span.expect("a place");
    assert_eq!((span.line, span.col), (5, 1), "{f}");
}
