//! Tests of [`SecretsFile`] through its public API: round trips, recipients,
//! tampering, malformed files, saving, and no panic on any input.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::{Error, Identity, SecretsFile};

/// An identity saved under `dir`, so errors can name its path.
fn identity(dir: &Path, name: &str) -> Identity {
    let mut id = Identity::generate();
    id.save(&dir.join(format!("{name}.txt")), false).unwrap();
    id
}

fn file_for(ids: &[&Identity]) -> SecretsFile {
    let keys: Vec<String> = ids.iter().map(|i| i.recipient()).collect();
    SecretsFile::new(keys.iter().map(|k| (k.as_str(), None))).unwrap()
}

fn read(p: &Path) -> String {
    fs_err::read_to_string(p).unwrap()
}

/// The base64 text of secret `name` in the file text.
fn value_of(text: &str, name: &str) -> String {
    let prefix = format!("  {name}: age:");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap()
        .to_owned()
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let alice = identity(dir.path(), "alice");
    let path = dir.path().join("secrets.yaml");
    let mut f = file_for(&[&alice]);
    f.set("DB_PASSWORD", b"hunter2").unwrap();
    let binary = [0u8, 255, 0, 10, 13, 1];
    f.set("blob.bin", &binary).unwrap();
    f.set("empty", b"").unwrap();
    f.save(&path).unwrap();
    assert_eq!(
        fs_err::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o644
    );

    let f = SecretsFile::load(&path).unwrap();
    assert_eq!(
        f.names().collect::<Vec<_>>(),
        ["DB_PASSWORD", "blob.bin", "empty"]
    );
    assert_eq!(f.recipients().len(), 1);
    assert_eq!(f.recipients()[0].key(), alice.recipient());
    assert_eq!(&*f.get("DB_PASSWORD", &alice).unwrap(), b"hunter2");
    assert_eq!(&*f.get_string("DB_PASSWORD", &alice).unwrap(), "hunter2");
    assert_eq!(&*f.get("blob.bin", &alice).unwrap(), &binary);
    assert!(matches!(
        f.get_string("blob.bin", &alice),
        Err(Error::NotUtf8 { .. })
    ));
    assert!(f.get("empty", &alice).unwrap().is_empty());

    let text = read(&path);
    assert!(text.starts_with("# cove secrets:"), "{text}");
    assert!(!text.contains("hunter2"));
    // One line per value: the file has header, 2 section lines, 1
    // recipient and 3 values.
    assert_eq!(text.lines().count(), 7, "{text}");
}

#[test]
fn set_remove_and_unknown_names() {
    let dir = tempfile::tempdir().unwrap();
    let alice = identity(dir.path(), "alice");
    let path = dir.path().join("secrets.yaml");
    let mut f = file_for(&[&alice]);
    f.set("DB_PASSWORD", b"one").unwrap();
    f.set("DB_PASSWORD", b"two").unwrap();
    assert_eq!(f.names().count(), 1);
    assert_eq!(&*f.get("DB_PASSWORD", &alice).unwrap(), b"two");
    f.save(&path).unwrap();

    let e = f.get("DB_PASSWROD", &alice).unwrap_err();
    assert!(matches!(e, Error::UnknownSecret { .. }), "{e}");
    assert!(e.to_string().contains("secrets.yaml"), "{e}");
    assert_eq!(e.hint().unwrap(), "did you mean `DB_PASSWORD`?");
    assert!(f.get("ZZZ", &alice).unwrap_err().hint().is_some());

    for bad in ["", "1X", "-x", ".x", "a b", "a:b", "é", "a\0b"] {
        let e = f.set(bad, b"v").unwrap_err();
        assert!(matches!(e, Error::InvalidName { .. }), "{bad:?}: {e}");
    }
    for good in ["_", "a", "A_1.b-c", "_x9"] {
        f.set(good, b"v").unwrap();
    }
    f.remove("DB_PASSWORD").unwrap();
    assert!(!f.contains("DB_PASSWORD"));
    assert!(matches!(
        f.remove("DB_PASSWORD"),
        Err(Error::UnknownSecret { .. })
    ));
    f.save(&path).unwrap();
    assert_eq!(SecretsFile::load(&path).unwrap().names().count(), 4);
}

#[test]
fn empty_file_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let alice = identity(dir.path(), "alice");
    let path = dir.path().join("secrets.yaml");
    let mut f = SecretsFile::new([(alice.recipient().as_str(), Some("alice@laptop"))]).unwrap();
    f.save(&path).unwrap();
    assert!(read(&path).ends_with("secrets: {}\n"));
    let f = SecretsFile::load(&path).unwrap();
    assert_eq!(f.names().count(), 0);
    assert_eq!(f.recipients()[0].comment(), Some("alice@laptop"));
    assert!(matches!(
        SecretsFile::new([]),
        Err(Error::NoRecipients { .. })
    ));
}

#[test]
fn two_recipients_each_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, server) = (
        identity(dir.path(), "alice"),
        identity(dir.path(), "server"),
    );
    let path = dir.path().join("secrets.yaml");
    let (a, s) = (alice.recipient(), server.recipient());
    let mut f = SecretsFile::new([(a.as_str(), Some("alice@laptop")), (s.as_str(), None)]).unwrap();
    f.set("KEY", b"v").unwrap();
    f.save(&path).unwrap();
    let f = SecretsFile::load(&path).unwrap();
    assert_eq!(&*f.get("KEY", &alice).unwrap(), b"v");
    assert_eq!(&*f.get("KEY", &server).unwrap(), b"v");
    assert_eq!(f.recipients()[0].comment(), Some("alice@laptop"));
    assert_eq!(f.recipients()[1].comment(), None);
}

#[test]
fn adding_a_recipient_reencrypts_and_keeps_its_comment() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob, eve) = (
        identity(dir.path(), "alice"),
        identity(dir.path(), "bob"),
        identity(dir.path(), "eve"),
    );
    let path = dir.path().join("secrets.yaml");
    let mut f = file_for(&[&alice]);
    f.set("A", b"1").unwrap();
    f.set("B", b"2").unwrap();
    f.save(&path).unwrap();

    // Bob cannot read yet, and cannot add himself.
    let e = f.get("A", &bob).unwrap_err();
    assert!(matches!(e, Error::NotARecipient { .. }), "{e}");
    let before = read(&path);
    let e = f
        .add_recipient(&bob.recipient(), Some("bob"), &bob)
        .unwrap_err();
    assert!(matches!(e, Error::NotARecipient { .. }), "{e}");
    assert_eq!(f.recipients().len(), 1, "a failed add changes nothing");

    f.add_recipient(&bob.recipient(), Some("bob@desk"), &alice)
        .unwrap();
    assert!(matches!(
        f.add_recipient(&bob.recipient(), None, &alice),
        Err(Error::DuplicateRecipient { .. })
    ));
    f.save(&path).unwrap();
    assert_ne!(read(&path), before);
    let f = SecretsFile::load(&path).unwrap();
    assert_eq!(&*f.get("B", &bob).unwrap(), b"2");
    assert_eq!(&*f.get("A", &alice).unwrap(), b"1");
    assert_eq!(f.recipients()[1].comment(), Some("bob@desk"));
    assert!(f.get("A", &eve).is_err());
}

#[test]
fn removing_a_recipient_locks_it_out() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (identity(dir.path(), "alice"), identity(dir.path(), "bob"));
    let path = dir.path().join("secrets.yaml");
    let mut f = file_for(&[&alice, &bob]);
    f.set("A", b"1").unwrap();
    f.save(&path).unwrap();

    f.remove_recipient(&bob.recipient(), &alice).unwrap();
    f.save(&path).unwrap();
    let f = SecretsFile::load(&path).unwrap();
    assert_eq!(&*f.get("A", &alice).unwrap(), b"1");
    let e = f.get("A", &bob).unwrap_err();
    assert!(matches!(e, Error::NotARecipient { .. }), "{e}");
    let msg = e.to_string();
    let bob_path = bob.path().unwrap().display().to_string();
    assert!(msg.contains("secret `A`"), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains(&bob_path), "{msg}");
    assert!(msg.contains("not one of the file's recipients"), "{msg}");
    assert!(
        e.hint()
            .unwrap()
            .contains(&format!("cove secrets recipients add {}", bob.recipient())),
        "{e:?}"
    );

    let mut f = f;
    assert!(matches!(
        f.remove_recipient(&bob.recipient(), &alice),
        Err(Error::UnknownRecipient { .. })
    ));
    assert!(matches!(
        f.remove_recipient(&alice.recipient(), &alice),
        Err(Error::NoRecipients { .. })
    ));
}

#[test]
fn bad_recipients_are_refused_without_echoing_private_keys() {
    let dir = tempfile::tempdir().unwrap();
    let alice = identity(dir.path(), "alice");
    let mut f = file_for(&[&alice]);
    let private = read(alice.path().unwrap())
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .to_owned();
    for bad in [
        private.as_str(),
        &private.to_lowercase(),
        "",
        "age1",
        "age1qqqq",
        "ssh-ed25519 AAAA",
        &alice.recipient().to_uppercase(),
    ] {
        let e = f.add_recipient(bad, None, &alice).unwrap_err();
        assert!(matches!(e, Error::InvalidRecipient { .. }), "{e}");
        let shown = format!("{e} {e:?}");
        assert!(!shown.to_uppercase().contains(&private), "{shown}");
    }
    let e = f
        .add_recipient(&Identity::generate().recipient(), Some("a\nb"), &alice)
        .unwrap_err();
    assert!(matches!(e, Error::InvalidComment), "{e}");

    // In a file, too: the line is named, the key is not shown.
    let text = format!("recipients:\n  - {private}\nsecrets:\n");
    let e = SecretsFile::parse(text.as_bytes(), "s.yaml").unwrap_err();
    assert!(e.to_string().starts_with("s.yaml:2: "), "{e}");
    assert!(!format!("{e} {e:?}").contains(&private), "{e}");
}

#[test]
fn every_flipped_byte_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let alice = identity(dir.path(), "alice");
    let mut f = file_for(&[&alice]);
    f.set("KEY", b"value").unwrap();
    let path = dir.path().join("secrets.yaml");
    f.save(&path).unwrap();
    let text = read(&path);
    let b64 = value_of(&text, "KEY");
    let ciphertext = BASE64.decode(&b64).unwrap();
    for i in 0..ciphertext.len() {
        let mut c = ciphertext.clone();
        c[i] ^= 0x01;
        let changed = text.replace(&b64, &BASE64.encode(&c));
        let f = SecretsFile::parse(changed.as_bytes(), "s.yaml").unwrap();
        match f.get("KEY", &alice) {
            Err(Error::Tampered { .. } | Error::NotARecipient { .. }) => {}
            other => panic!("byte {i}: {other:?}"),
        }
    }
    // The payload's last byte: the value's own integrity check, reported as
    // tampering with the file, line and name.
    let mut c = ciphertext.clone();
    *c.last_mut().unwrap() ^= 0x80;
    let changed = text.replace(&b64, &BASE64.encode(&c));
    fs_err::write(&path, changed).unwrap();
    let e = SecretsFile::load(&path)
        .unwrap()
        .get("KEY", &alice)
        .unwrap_err();
    assert!(matches!(e, Error::Tampered { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("secret `KEY` in {}:5", path.display())),
        "{e}"
    );
    assert!(e.hint().is_some());

    // Not base64, truncated, not age at all.
    for bad in [
        format!("{}!", &b64[..b64.len() - 1]),
        BASE64.encode(&ciphertext[..ciphertext.len() - 10]),
        BASE64.encode(b"hello"),
    ] {
        let changed = text.replace(&b64, &bad);
        let f = SecretsFile::parse(changed.as_bytes(), "s.yaml").unwrap();
        let e = f.get("KEY", &alice).unwrap_err();
        assert!(matches!(e, Error::Tampered { .. }), "{e}");
    }
}

#[test]
fn a_value_moved_under_another_name_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let alice = identity(dir.path(), "alice");
    let mut f = file_for(&[&alice]);
    f.set("PUBLIC_URL", b"https://example.com").unwrap();
    f.set("ADMIN_TOKEN", b"s3cret").unwrap();
    let path = dir.path().join("secrets.yaml");
    f.save(&path).unwrap();
    let text = read(&path);
    let (url, token) = (
        value_of(&text, "PUBLIC_URL"),
        value_of(&text, "ADMIN_TOKEN"),
    );
    let swapped = text
        .replace(&url, "@SWAP@")
        .replace(&token, &url)
        .replace("@SWAP@", &token);
    fs_err::write(&path, swapped).unwrap();
    let f = SecretsFile::load(&path).unwrap();
    let e = f.get("PUBLIC_URL", &alice).unwrap_err();
    assert!(matches!(e, Error::Tampered { .. }), "{e}");
    assert!(
        e.to_string().contains("another name (`ADMIN_TOKEN`)"),
        "{e}"
    );
    assert!(!e.to_string().contains("s3cret"));
}

#[test]
fn untouched_values_keep_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let alice = identity(dir.path(), "alice");
    let path = dir.path().join("secrets.yaml");
    let mut f = file_for(&[&alice]);
    for n in ["A", "B", "C"] {
        f.set(n, n.as_bytes()).unwrap();
    }
    f.save(&path).unwrap();
    let before = read(&path);
    let mut f = SecretsFile::load(&path).unwrap();
    f.set("B", b"new").unwrap();
    f.save(&path).unwrap();
    let after = read(&path);
    let changed: Vec<_> = before
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed.len(), 1);
    assert!(changed[0].0.starts_with("  B: "));
    assert_eq!(before.lines().count(), after.lines().count());
}

#[test]
fn malformed_files_name_the_file_and_line() {
    let r = Identity::generate().recipient();
    let v = "age:AAAA";
    let cases: Vec<(String, usize, &str)> = vec![
        ("".into(), 1, "missing `recipients:`"),
        ("secrets:\n".into(), 1, "expected `recipients:` before"),
        ("hello: 1\n".into(), 1, "expected `recipients:`"),
        ("recipients:\nsecrets:\n".into(), 2, "no recipients"),
        (format!("recipients:\n  - {r}\n"), 2, "missing `secrets:`"),
        (
            format!("recipients:\n  - {r}\n  - {r}\nsecrets:\n"),
            3,
            "listed twice (first on line 2)",
        ),
        (
            format!("recipients:\n  - {r}x\nsecrets:\n"),
            2,
            "bad recipient",
        ),
        (
            format!("recipients:\n  - {r}\nsecrets:\n  A: {v}\n  A: {v}\n"),
            5,
            "`A` appears twice (first on line 4)",
        ),
        (
            format!("recipients:\n  - {r}\nsecrets:\n  1A: {v}\n"),
            4,
            "bad secret name",
        ),
        (
            format!("recipients:\n  - {r}\nsecrets:\n  A: plain\n"),
            4,
            "must start with `age:`",
        ),
        (
            format!("recipients:\n  - {r}\nsecrets:\n  A: age:\n"),
            4,
            "one word of base64",
        ),
        (
            format!("recipients:\n  - {r}\nsecrets:\n  A: age:AA AA\n"),
            4,
            "one word",
        ),
        (
            format!("recipients:\n  - {r}\nsecrets:\n   A: {v}\n"),
            4,
            "bad secret name",
        ),
        (
            format!("recipients:\n  - {r}\nsecrets:\n\tA: {v}\n"),
            4,
            "tabs",
        ),
        (
            format!("recipients:\n  - {r}\nsecrets:\nA: {v}\n"),
            4,
            "expected a secret",
        ),
        (
            format!("recipients:\n  - {r}\nsecrets: {{}}\n  A: {v}\n"),
            4,
            "nothing may follow",
        ),
        (
            format!("recipients:\n  - {r}\nsecrets:\nrecipients:\n"),
            4,
            "appears twice",
        ),
        (
            format!("recipients:\n  - {r}\n  A: {v}\nsecrets:\n"),
            3,
            "expected a recipient",
        ),
        (
            format!("recipients:\n  - {r}\nsecrets:\n  A:{v}\n"),
            4,
            "expected `  NAME: age:…`",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    for (text, line, message) in cases {
        fs_err::write(&path, &text).unwrap();
        let e = SecretsFile::load(&path).unwrap_err();
        let Error::Syntax { line: l, .. } = &e else {
            panic!("{text:?}: {e}")
        };
        assert_eq!(*l, line, "{text:?}: {e}");
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("{}:{line}: ", path.display())),
            "{shown}"
        );
        assert!(shown.contains(message), "{text:?}: {shown}");
    }
    // Not UTF-8: the line of the first bad byte.
    fs_err::write(&path, b"recipients:\n\xff\n").unwrap();
    let e = SecretsFile::load(&path).unwrap_err();
    assert!(e.to_string().contains("bad.yaml:2: not UTF-8"), "{e}");
    // Missing file: the path is named.
    let e = SecretsFile::load(&dir.path().join("nope.yaml")).unwrap_err();
    assert!(e.to_string().contains("nope.yaml"), "{e}");
}

#[test]
fn accepts_comments_blank_lines_and_crlf() {
    let r = Identity::generate().recipient();
    let text = format!(
        "# a comment\r\n\r\nrecipients:\r\n  # who\r\n  - {r}   #   ops  \r\nsecrets:   \r\n  A: age:AAAA\r\n"
    );
    let f = SecretsFile::parse(text.as_bytes(), "s.yaml").unwrap();
    assert_eq!(f.recipients()[0].comment(), Some("ops"));
    assert_eq!(f.names().collect::<Vec<_>>(), ["A"]);
}

fn probe_writable(dir: &Path) -> bool {
    let probe = dir.join(".probe");
    let ok = fs_err::write(&probe, b"").is_ok();
    let _ = fs_err::remove_file(&probe);
    ok
}

#[test]
fn a_failed_save_leaves_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let alice = identity(dir.path(), "alice");
    let sub = dir.path().join("app");
    fs_err::create_dir(&sub).unwrap();
    let path = sub.join("secrets.yaml");
    let mut f = file_for(&[&alice]);
    f.set("A", b"old").unwrap();
    f.save(&path).unwrap();
    // The mode the team chose is kept.
    fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    f.save(&path).unwrap();
    assert_eq!(
        fs_err::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let before = read(&path);

    f.set("A", b"new").unwrap();
    fs_err::set_permissions(&sub, std::fs::Permissions::from_mode(0o555)).unwrap();
    let writable = probe_writable(&sub); // root ignores the mode
    let result = f.save(&path);
    fs_err::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
    if !writable {
        let e = result.unwrap_err();
        assert!(e.to_string().contains("secrets.yaml"), "{e}");
        assert_eq!(read(&path), before);
        let entries: Vec<PathBuf> = fs_err::read_dir(&sub)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(entries, std::slice::from_ref(&path));
    }
    // A directory that does not exist: nothing written anywhere.
    let e = f.save(&dir.path().join("no/such/dir/s.yaml")).unwrap_err();
    assert!(e.to_string().contains("s.yaml"), "{e}");
    // (The step-by-step failure cases, as root too, are in `atomic`.)
}

#[test]
fn debug_and_errors_show_no_secret_material() {
    let dir = tempfile::tempdir().unwrap();
    let alice = identity(dir.path(), "alice");
    let bob = identity(dir.path(), "bob");
    let private = read(alice.path().unwrap());
    let private = private
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    let mut f = file_for(&[&alice]);
    f.set("TOKEN", b"very-secret-value").unwrap();
    let mut shown = format!("{f:?} {alice:?} {:?}", f.recipients());
    for e in [
        f.get("TOKEN", &bob).unwrap_err(),
        f.get("TOKN", &alice).unwrap_err(),
        f.get_string("TOKEN", &bob).unwrap_err(),
    ] {
        shown.push_str(&format!("{e} {e:?} {:?}", e.hint()));
    }
    assert!(shown.contains("TOKEN"), "{shown}");
    assert!(!shown.contains("very-secret-value"), "{shown}");
    assert!(!shown.contains(private), "{shown}");
    assert!(!shown.contains("AGE-SECRET-KEY"), "{shown}");
}

/// xorshift64*: a small deterministic generator for the no-panic test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn no_input_makes_load_or_get_panic() {
    let dir = tempfile::tempdir().unwrap();
    let alice = identity(dir.path(), "alice");
    let bob = Identity::generate();
    let mut f = file_for(&[&alice, &bob]);
    f.set("DB_PASSWORD", b"hunter2").unwrap();
    f.set("api.key", b"k").unwrap();
    let path = dir.path().join("secrets.yaml");
    f.save(&path).unwrap();
    let valid = fs_err::read(&path).unwrap();
    let alphabet: &[u8] = b"  \n\n:-#age1AZaz09+/={}\t\r\0\xff_.";

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut loaded = 0;
    for round in 0..600 {
        let input: Vec<u8> = if round % 5 == 0 {
            // Random bytes from an alphabet that hits the grammar.
            (0..rng.below(300))
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect()
        } else {
            // The valid file, mutated a few times.
            let mut v = valid.clone();
            for _ in 0..=rng.below(3) {
                let at = rng.below(v.len());
                match rng.below(5) {
                    0 => v[at] ^= 1 << rng.below(8),
                    1 => {
                        let end = (at + rng.below(40)).min(v.len());
                        v.drain(at..end);
                    }
                    2 => v.insert(at, alphabet[rng.below(alphabet.len())]),
                    3 => v[at] = alphabet[rng.below(alphabet.len())],
                    _ => {
                        let end = (at + rng.below(80)).min(v.len());
                        let copy = v[at..end].to_vec();
                        let to = rng.below(v.len());
                        v.splice(to..to, copy);
                    }
                }
                if v.is_empty() {
                    break;
                }
            }
            v
        };
        if let Ok(f) = SecretsFile::parse(&input, "fuzz.yaml") {
            loaded += 1;
            let names: Vec<String> = f.names().map(Into::into).collect();
            for n in &names {
                let _ = f.get(n, &alice);
                let _ = f.get_string(n, &bob);
            }
            let _ = format!("{f:?}");
        }
    }
    // The mutations are small enough that many files still load, so
    // decryption of damaged values is exercised too.
    assert!(loaded > 50, "only {loaded} inputs loaded");
}
