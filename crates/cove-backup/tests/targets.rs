//! Stores at S3-compatible storage: PyPI's `moto` server (the only S3
//! server the package registries offer), started by the test; with its IAM
//! authentication on, a wrong key is refused as S3 refuses it. One dump
//! stored to two stores (a directory and S3) reads back the same from both.
//!
//! moto_server: `$COVE_TEST_MOTO_SERVER`, else
//! `target/moto-venv/bin/moto_server` (`bash scripts/moto-venv` makes it;
//! scripts/test does).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cove_backup::{Location, Meta, S3Keys, Store};

const PASSWORD: &str = "correct horse battery staple";

fn meta(service: &str) -> Meta {
    Meta {
        project: "demo".into(),
        environment: "default".into(),
        service: service.into(),
        method: "test-stream".into(),
        cove_version: "0.1.0".into(),
    }
}

fn stream_cmd(bytes: u64) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("yes 'cove backup stream line' | head -c {bytes}; seq 1 50000"),
    ]
}

fn path_env() -> Vec<(String, String)> {
    vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())]
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn moto_server() -> PathBuf {
    let p = std::env::var_os("COVE_TEST_MOTO_SERVER").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/moto-venv/bin/moto_server"),
        PathBuf::from,
    );
    assert!(
        p.is_file(),
        "{}: no moto_server; make it with `bash scripts/moto-venv` (scripts/test does) or set COVE_TEST_MOTO_SERVER",
        p.display()
    );
    p
}

/// A moto server on a free loopback port, killed (by pid) on drop, with
/// one IAM user allowed everything on S3 (its key in `keys`), and a
/// bucket; authentication off until [`Moto::auth`].
struct Moto {
    child: Child,
    endpoint: String,
    keys: S3Keys,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// moto's IAM authentication on (every request's signature and key
    /// checked) or off (`/moto-api/reset-auth`). Off for round trips:
    /// moto's signature check (botocore's canonical request) refuses
    /// opendal's signed `ListObjectsV2` with a `prefix`, a difference
    /// between the two that AWS itself does not make (opendal lists S3
    /// buckets), so only the refusal of wrong keys is tested with it on.
    fn auth(&self, on: bool) {
        let count = if on { "0" } else { "inf" };
        let script = format!(
            r#"import urllib.request; urllib.request.urlopen(urllib.request.Request("{}/moto-api/reset-auth", data=b"{count}", method="POST", headers={{"Content-Type": "text/plain"}})).read()"#,
            self.endpoint
        );
        let out = Command::new(moto_server().with_file_name("python3"))
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    fn start(bucket: &str) -> Moto {
        let server = moto_server();
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                fs_err::File::create(dir.path().join("moto.log"))
                    .unwrap()
                    .into_parts()
                    .0,
            )
            .spawn()
            .expect("moto_server starts");
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut moto = Moto {
            child,
            endpoint,
            keys: S3Keys {
                access_key_id: String::new(),
                secret_access_key: String::new(),
            },
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                moto.child.try_wait().unwrap().is_none(),
                "moto_server exited: {}",
                fs_err::read_to_string(moto._dir.path().join("moto.log")).unwrap_or_default()
            );
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen in 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // boto3 comes with moto[server]: an IAM user with a key, a bucket.
        let python = server.with_file_name("python3");
        let script = format!(
            r#"
import boto3, json, urllib.request
kw = dict(endpoint_url="{ep}", region_name="us-east-1",
          aws_access_key_id="setup", aws_secret_access_key="setup")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="cove")
iam.put_user_policy(UserName="cove", PolicyName="s3", PolicyDocument=json.dumps(
    {{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}]}}))
k = iam.create_access_key(UserName="cove")["AccessKey"]
boto3.client("s3", **kw).create_bucket(Bucket="{bucket}")
print(k["AccessKeyId"]); print(k["SecretAccessKey"])
"#,
            ep = moto.endpoint
        );
        let out = Command::new(&python)
            .args(["-c", &script])
            .output()
            .expect("moto's python runs");
        assert!(
            out.status.success(),
            "setting up moto: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        moto.keys = S3Keys {
            access_key_id: lines.next().unwrap().to_string(),
            secret_access_key: lines.next().unwrap().to_string(),
        };
        moto
    }

    fn location(&self, bucket: &str, prefix: &str) -> Location {
        Location::S3 {
            bucket: bucket.into(),
            prefix: prefix.into(),
            endpoint: Some(self.endpoint.clone()),
            region: None,
        }
    }
}

#[test]
fn s3_round_trip_and_one_dump_to_two_stores() {
    let moto = Moto::start("backups");
    let tmp = tempfile::tempdir().unwrap();
    let s3 = Store::open_or_init_at(
        "offsite",
        &moto.location("backups", "demo/prod"),
        Some(&moto.keys),
        PASSWORD,
    )
    .expect("a repository made in the bucket");
    let local = Store::open_or_init(&tmp.path().join("repo"), PASSWORD).unwrap();
    assert!(!format!("{s3:?}").contains(&moto.keys.secret_access_key));

    // One dump, stored to both.
    let dump =
        cove_backup::dump_command(&meta("db"), &stream_cmd(4 << 20), &path_env(), tmp.path())
            .unwrap();
    let a = s3.store_dump(&dump).unwrap();
    let b = local.store_dump(&dump).unwrap();
    assert_eq!(a.size, b.size);
    assert_eq!(a.size, dump.size());
    drop(dump);

    // Opened again (a new connection): listed, checked, restored.
    let s3 = Store::open_or_init_at(
        "offsite",
        &moto.location("backups", "demo/prod"),
        Some(&moto.keys),
        PASSWORD,
    )
    .unwrap();
    let listed = s3.list().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, a.id);
    s3.check(&a.id).unwrap();
    let mut from_s3 = Vec::new();
    let _ = s3.restore(&a.id[..8], &mut from_s3).unwrap();
    let mut from_local = Vec::new();
    let _ = local.restore(&b.id, &mut from_local).unwrap();
    assert_eq!(from_s3.len() as u64, a.size);
    assert!(from_s3 == from_local, "the same stream from both stores");
    let expected = Command::new("sh")
        .args(stream_cmd(4 << 20).split_off(1))
        .output()
        .unwrap()
        .stdout;
    assert!(from_s3 == expected, "the stream as the command wrote it");

    // The wrong password is refused, naming the target.
    let e = Store::open_or_init_at(
        "offsite",
        &moto.location("backups", "demo/prod"),
        Some(&moto.keys),
        "nope",
    )
    .expect_err("wrong password");
    assert!(e.to_string().contains("`offsite`"), "{e}");
}

#[test]
fn s3_wrong_keys_and_missing_bucket_are_clear_errors() {
    let moto = Moto::start("backups");
    moto.auth(true);
    let wrong_secret = S3Keys {
        access_key_id: moto.keys.access_key_id.clone(),
        secret_access_key: "not-the-secret".into(),
    };
    let unknown_id = S3Keys {
        access_key_id: "AKIAUNKNOWNUNKNOWN00".into(),
        secret_access_key: "whatever".into(),
    };
    for keys in [&wrong_secret, &unknown_id] {
        let e = Store::open_or_init_at(
            "offsite",
            &moto.location("backups", "x"),
            Some(keys),
            PASSWORD,
        )
        .expect_err("a wrong key is refused");
        let e = e.to_string();
        assert!(e.contains("backup target `offsite`"), "{e}");
        assert!(e.contains("s3://backups/x at http://127.0.0.1"), "{e}");
        assert!(e.contains("the S3 access key was refused"), "{e}");
        assert!(!e.contains(&moto.keys.secret_access_key), "{e}");
    }
    let e = Store::open_or_init_at(
        "offsite",
        &moto.location("no-such-bucket", ""),
        Some(&moto.keys),
        PASSWORD,
    )
    .expect_err("no bucket");
    assert!(e.to_string().contains("make the bucket first"), "{e}");
}
