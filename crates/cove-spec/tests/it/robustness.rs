//! The loader never panics, whatever it is fed: arbitrary bytes, YAML-like
//! token soup, and mutations of real fixtures.

use std::path::Path;

use proptest::prelude::*;

/// Loads `text` (and renders the result) on a thread of its own; a load
/// that takes more than 10 s ends the test process with a failure, naming
/// the input, instead of stalling the suite. A panic in the loader fails
/// the test too.
fn load_text(text: &str) {
    let owned = text.to_string();
    let (done, finished) = std::sync::mpsc::channel();
    let loader = std::thread::spawn(move || {
        load_text_now(&owned);
        let _ = done.send(());
    });
    match finished.recv_timeout(std::time::Duration::from_secs(10)) {
        Ok(()) => loader.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = loader.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            // Not a panic: proptest would shrink the input, each shrunk
            // input that hangs too costing another 10 s and another stuck
            // thread. The whole test process fails now, naming the input.
            eprintln!("the loader did not finish within 10 s on: {text:?}");
            std::process::exit(101)
        }
    }
}

fn load_text_now(text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    fs_err::write(&file, text).unwrap();
    let opts = cove_spec::Options {
        files: vec![file],
        environ: vec![
            ("HOME".into(), "/home/user".into()),
            ("SET".into(), "x".into()),
        ],
        ..Default::default()
    };
    // Either outcome is fine; panicking or hanging is not.
    match cove_spec::load(&opts) {
        Ok(p) => {
            let v = serde_json::to_value(&p.app).unwrap();
            let _ = cove_spec::yaml_out::to_yaml(&v);
        }
        Err(f) => {
            let _ = f.render(&cove_spec::Style::plain());
        }
    }
}

const TOKENS: &[&str] = &[
    "services:",
    "\n",
    "  ",
    "    ",
    "web:",
    "image: x",
    "- ",
    "ports:",
    "\"8080:80\"",
    "depends_on:",
    "[a, b]",
    "{",
    "}",
    "[",
    "]",
    "&a",
    "*a",
    "<<: *a",
    "!reset",
    "!override",
    "${SET}",
    "${X:?e}",
    "$$",
    "${",
    ":",
    "#",
    "'",
    "\"",
    "extends:",
    "include:",
    "volumes:",
    "./x:/y:ro",
    "build: .",
    "healthcheck:",
    "test: x",
    "x-cove:",
    "run: a",
    "environment:",
    "A=1",
    "condition: service_healthy",
    "deploy:",
    "replicas: 2",
    "version: '3'",
    "profiles: [p]",
    "---",
    "~",
    "null",
    "1e9",
    "0x10",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
        load_text(&s);
    }

    #[test]
    fn token_soup_never_panics(tokens in proptest::collection::vec(proptest::sample::select(TOKENS), 0..60)) {
        load_text(&tokens.concat());
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0usize..64,
        cuts in proptest::collection::vec((0usize..4000, 0usize..20, proptest::sample::select(TOKENS)), 1..6),
    ) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let mut files: Vec<_> = ["good", "bad"].iter().flat_map(|k| {
            fs_err::read_dir(root.join(k)).unwrap().map(|e| e.unwrap().path().join("compose.yaml"))
        }).filter(|p| p.is_file()).collect();
        files.sort();
        let mut text = fs_err::read_to_string(&files[which % files.len()]).unwrap();
        for (at, len, insert) in cuts {
            let mut at = at.min(text.len());
            while !text.is_char_boundary(at) { at -= 1; }
            let mut end = (at + len).min(text.len());
            while !text.is_char_boundary(end) { end -= 1; }
            text.replace_range(at..end, insert);
        }
        load_text(&text);
    }
}

#[test]
fn alias_bombs_are_refused() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = i - 1;
        text.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
    }
    load_text(&text);
}

#[test]
fn deep_nesting_does_not_overflow() {
    let text = format!(
        "services:\n  a:\n    image: x\n    labels: {}{}\n",
        "[".repeat(2000),
        "]".repeat(2000)
    );
    load_text(&text);
}
