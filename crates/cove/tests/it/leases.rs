//! Address leases: two projects whose names and directories hash to the
//! same block of addresses both run (each gets a block of its own), and a
//! project keeps its block across `down` and `up`.

use crate::daemon::{App, eventually};

fn compose(name: &str) -> String {
    format!(
        r#"
name: {name}
services:
  web:
    x-cove:
      run: python3 -m http.server --bind $$HOST $$PORT
      health: {{http: /}}
    expose: ["8000"]
"#
    )
}

/// The project directory as cove sees it.
fn project_dir(app: &App) -> std::path::PathBuf {
    fs_err::canonicalize(app.dir()).unwrap()
}

fn web_address(app: &App) -> String {
    let mut at = String::new();
    eventually(60, "web running", || {
        let ps = app.ps();
        match ps
            .iter()
            .find(|r| r["service"] == "web" && r["state"] == "running")
        {
            Some(r) => {
                at = r["address"].as_str().unwrap().to_string();
                true
            }
            None => false,
        }
    });
    at
}

fn serves(address: &str) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(address) else {
        return false;
    };
    use std::io::{Read as _, Write as _};
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200")
}

#[test]
fn projects_whose_addresses_hash_alike_each_get_a_block_and_keep_it() {
    let a = App::new(&compose("first"));
    let b = App::new(&compose("second"));
    let hash = cove_runtime::plan::project_net;
    // A name for a whose block no live project holds now: leases are
    // host-wide, and the other tests' projects running meanwhile hold some
    // blocks. A lease whose project is gone (a test's temporary directory,
    // say) is stale: the next project that wants its block takes it.
    let leases = cove_runtime::lease::dir();
    let live: std::collections::HashSet<u16> = cove_runtime::lease::holders()
        .iter()
        .filter_map(|h| cove_runtime::lease::recorded(h))
        .collect();
    let (first, wanted) = (0..10_000)
        .map(|i| format!("first{i}"))
        .map(|n| {
            let block = hash(&n, &project_dir(&a));
            (n, block)
        })
        .find(|(_, block)| !live.contains(block))
        .expect("a block no live project holds");
    fs_err::write(a.dir().join("compose.yaml"), compose(&first)).unwrap();
    // A name for b that hashes to a's block (about 1 in 1,024 do).
    let name = (0..200_000)
        .map(|i| format!("second{i}"))
        .find(|n| hash(n, &project_dir(&b)) == wanted)
        .expect("a name that hashes alike");
    fs_err::write(b.dir().join("compose.yaml"), compose(&name)).unwrap();

    for app in [&a, &b] {
        let (code, out) = app.merged(&["up", "-d"]);
        assert_eq!(code, Some(0), "{out}");
    }
    let (at_a, at_b) = (web_address(&a), web_address(&b));
    assert_ne!(at_a, at_b, "two projects were given the same address");
    assert!(serves(&at_a), "first's web at {at_a}");
    assert!(serves(&at_b), "second's web at {at_b}");

    // Each records its block; the leases name their holders.
    let record = |app: &App| -> u16 {
        let text = fs_err::read_to_string(app.dir().join(".cove/lease")).unwrap();
        text.trim().parse().unwrap()
    };
    let (na, nb) = (record(&a), record(&b));
    assert_eq!(na, wanted, "the first takes the block it hashes to");
    assert_ne!(na, nb);
    let holder = fs_err::read_to_string(leases.join(format!("{nb:04}"))).unwrap();
    assert_eq!(
        holder.trim_end(),
        project_dir(&b).join(".cove").display().to_string()
    );

    // Kept across down and up, whatever the other project does.
    let (code, out) = b.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = b.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(web_address(&b), at_b, "the same address after down and up");
    assert!(serves(&at_a) && serves(&at_b));
}
