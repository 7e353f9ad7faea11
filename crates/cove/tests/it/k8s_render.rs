//! `cove k8s render` and secrets: the values come from the project's
//! encrypted store (a real `cove secrets` file, opened with the identity
//! of `COVE_IDENTITY`) and from `file:`; they are printed only with
//! `--include-secrets`, with a warning, and never otherwise.

use std::path::Path;

use crate::daemon::Out;

/// `cove ARGS` in `dir` with the identity `who` and `stdin` as input
/// (`K8S_RENDER_TOKEN` set: an `environment:` secret's variable).
fn cove(dir: &Path, who: &Path, args: &[&str], stdin: &[u8]) -> Out {
    crate::secrets::cove_as(
        dir,
        who,
        args,
        stdin,
        &[("K8S_RENDER_TOKEN", Path::new("token-from-env-90ab"))],
    )
}

/// How a value shows in a Secret's `data` (base64).
fn base64(v: &[u8]) -> String {
    let json = serde_json::to_value(k8s_openapi::ByteString(v.to_vec())).unwrap();
    json.as_str().unwrap().to_string()
}

const COMPOSE: &str = "services:
  db:
    image: mariadb:11
    environment:
      MARIADB_ROOT_PASSWORD_FILE: /run/secrets/db_password
    secrets:
      - db_password
      - {source: api_key, x-cove: {env: API_KEY}}
      - team_tls
      - token
secrets:
  db_password:
    x-cove: {store: DB_PASSWORD}
  api_key:
    file: ./api.key
  token:
    environment: K8S_RENDER_TOKEN
  team_tls:
    external: true
    name: team-tls
";

#[test]
fn secrets_values_only_with_include_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app");
    fs_err::create_dir_all(&dir).unwrap();
    fs_err::write(dir.join("compose.yaml"), COMPOSE).unwrap();
    fs_err::write(dir.join("api.key"), "key-from-file-51c2\n").unwrap();
    let who = tmp.path().join("me/id.txt");
    let out = cove(&dir, &who, &["secrets", "init"], b"");
    assert_eq!(out.code, Some(0), "{out}");
    let password = b"pw-k8s-3f9a77";
    let out = cove(&dir, &who, &["secrets", "set", "DB_PASSWORD"], password);
    assert_eq!(out.code, Some(0), "{out}");

    // Without the flag: the Secret objects, no value anywhere.
    let out = cove(&dir, &who, &["k8s", "render"], b"");
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("kind: Secret"), "{out}");
    for v in [
        &password[..],
        b"key-from-file-51c2\n",
        b"token-from-env-90ab",
    ] {
        assert!(!out.stdout.contains(&base64(v)), "{out}");
        assert!(
            !out.stdout
                .contains(std::str::from_utf8(v).unwrap().trim_end()),
            "{out}"
        );
    }
    assert!(!out.stdout.contains("\ndata:"), "{out}");
    assert!(!out.stderr.contains("values"), "{out}");

    // With it: the values in the Secrets' data, and a warning.
    let out = cove(&dir, &who, &["k8s", "render", "--include-secrets"], b"");
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stdout
            .contains(&format!("  db_password: {}\n", base64(password))),
        "{out}"
    );
    assert!(
        out.stdout
            .contains(&format!("  api_key: {}\n", base64(b"key-from-file-51c2\n"))),
        "{out}"
    );
    assert!(
        out.stdout
            .contains(&format!("  token: {}\n", base64(b"token-from-env-90ab"))),
        "{out}"
    );
    assert!(
        out.stderr.contains("warning:") && out.stderr.contains("values"),
        "{out}"
    );
    // The external one is referenced by its name, never rendered.
    assert!(out.stdout.contains("secretName: team-tls"), "{out}");
    assert!(!out.stdout.contains("name: team-tls\n"), "{out}");

    // Into a directory: the Secrets' files readable by their owner only.
    let out = cove(
        &dir,
        &who,
        &["k8s", "render", "--include-secrets", "-o", "manifests"],
        b"",
    );
    assert_eq!(out.code, Some(0), "{out}");
    let mut secrets = 0;
    for e in fs_err::read_dir(dir.join("manifests")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = e.metadata().unwrap().permissions().mode() & 0o777;
        if name.contains("-secret-") {
            secrets += 1;
            assert_eq!(mode, 0o600, "{name}");
        }
    }
    assert_eq!(secrets, 3);

    // A value the store does not hold: an error that names it.
    fs_err::write(
        dir.join("compose.yaml"),
        COMPOSE.replace("store: DB_PASSWORD", "store: NOT_SET"),
    )
    .unwrap();
    let out = cove(&dir, &who, &["k8s", "render", "--include-secrets"], b"");
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("NOT_SET"), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
}
