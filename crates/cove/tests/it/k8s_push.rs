//! `cove build --push --registry HOST/PREFIX` against a real registry
//! (Debian's `docker-registry`, on a free loopback port, with its data in
//! a temporary directory) through the Docker engine `scripts/test` starts
//! (`DOCKER_HOST`): a `build:` service and a native-only service whose
//! program is a static binary (an image `FROM scratch`) are built and
//! pushed; `cove k8s render --registry` names them by the digests the
//! registry serves. A native-only service with a dynamically linked
//! program gets no image, and render refuses it with the hint to add
//! `build:`. Under CI a missing registry program fails the test.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::daemon::App;

const REGISTRY: &str = "/usr/bin/docker-registry";

/// A registry of the test's own, killed by its pid when dropped.
struct Registry {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Option<Registry> {
        if !Path::new(REGISTRY).exists() {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "{REGISTRY} is missing: `bash scripts/install-packages docker-registry` (scripts/test does)"
            );
            eprintln!(
                "!!!!!! SKIPPED k8s_push: {REGISTRY} is missing (`bash scripts/install-packages docker-registry`) !!!!!!"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let config = dir.path().join("config.yml");
        fs_err::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log: std::fs::File = fs_err::File::create(dir.path().join("registry.log"))
            .unwrap()
            .into();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let registry = Registry {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while registry.get("HEAD", "/v2/").0 != 200 {
            assert!(
                Instant::now() < deadline,
                "the registry did not answer on {addr} within 30 s: {}",
                fs_err::read_to_string(registry._dir.path().join("registry.log"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(registry)
    }

    /// `METHOD PATH` over HTTP/1.1: the status and the headers (0 when
    /// nothing answers).
    fn get(&self, method: &str, path: &str) -> (u16, String) {
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)) else {
            return (0, String::new());
        };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
                      application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        if s.write_all(request.as_bytes()).is_err() {
            return (0, String::new());
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, answer)
    }

    /// The digest the registry serves `repo:tag` by.
    fn digest(&self, repo: &str, tag: &str) -> String {
        let (status, head) = self.get("HEAD", &format!("/v2/{repo}/manifests/{tag}"));
        assert_eq!(status, 200, "{repo}:{tag} is not in the registry:\n{head}");
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("docker-content-digest")
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no Docker-Content-Digest:\n{head}"))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const APP: &str = r#"
name: pushy
services:
  web:
    build: ./web
    # Waits for `tool`: an init container running cove's own image.
    depends_on: [tool]
  tool:
    expose: ["7000"]
    x-cove:
      run: ./tool/app serve --fast
"#;

/// A program that runs alone: it prints its arguments and waits.
const TOOL: &str = r#"
fn main() {
    println!("{:?}", std::env::args().collect::<Vec<_>>());
    std::thread::sleep(std::time::Duration::from_secs(3600));
}
"#;

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn pushed_images_are_named_by_their_digests_and_native_static_programs_get_a_scratch_image() {
    assert!(
        std::env::var_os("DOCKER_HOST").is_some() || Path::new("/var/run/docker.sock").exists(),
        "no Docker engine: run `bash scripts/test`, which starts one of its own"
    );
    let Some(registry) = Registry::start() else {
        return;
    };
    let app = App::new(APP);
    let dir = app.dir();
    crate::containers::static_binary(&dir.join("web"), TOOL);
    fs_err::write(
        dir.join("web/Dockerfile"),
        "FROM scratch\nCOPY app /web\nENTRYPOINT [\"/web\"]\n",
    )
    .unwrap();
    crate::containers::static_binary(&dir.join("tool"), TOOL);
    let reg = format!("{}/team", registry.addr);

    // Without a push, render names the tag it would push to, and a native
    // service cannot be rendered.
    let (code, out) = app.merged(&["k8s", "render", "--registry", &reg]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("service \"tool\": x-cove.run"), "{out}");

    let out = crate::deploy::cove_ok(&app, &["build", "--push", "--registry", &reg]);
    let web = registry.digest("team/pushy-web", "latest");
    let tool = registry.digest("team/pushy-tool", "latest");
    assert!(
        web.starts_with("sha256:") && tool.starts_with("sha256:"),
        "{out}"
    );
    assert!(
        out.contains(&format!("cove: pushed {reg}/pushy-web@{web}")),
        "{out}"
    );
    // The scratch image runs the program with the command's arguments.
    assert_eq!(
        docker(&[
            "image",
            "inspect",
            "--format",
            "{{json .Config.Entrypoint}} {{json .Config.Cmd}}",
            &format!("{reg}/pushy-tool:latest"),
        ]),
        r#"["/app"] ["serve","--fast"]"#
    );

    // cove's own image (for the init containers): this binary and what it
    // loads, FROM scratch; it runs in a container of the engine.
    let version = env!("CARGO_PKG_VERSION");
    let cove = registry.digest("team/cove", version);
    assert!(
        out.contains(&format!("cove: pushed {reg}/cove@{cove}")),
        "{out}"
    );
    let ran = Command::new("docker")
        .args(["run", "--rm", "--network", "none"])
        .arg(format!("{reg}/cove:{version}"))
        .args(["k8s", "wait-for", "--tcp", "127.0.0.1:9", "--timeout", "1s"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&ran.stderr);
    assert_eq!(ran.status.code(), Some(1), "{said}");
    assert!(said.contains("127.0.0.1:9"), "{said}");

    // Render names what the registry serves, by digest.
    let (code, out) = app.merged(&["k8s", "render", "--registry", &reg]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("image: {reg}/cove@{cove}")), "{out}");
    assert!(
        out.contains(&format!("image: {reg}/pushy-web@{web}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("image: {reg}/pushy-tool@{tool}")),
        "{out}"
    );
    // Another registry: nothing pushed there, so the tag for `web` and no
    // image for `tool`.
    let (code, out) = app.merged(&["k8s", "render", "--registry", "other.test/x"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("service \"tool\""), "{out}");

    // A native program linked dynamically: no image, and render says why.
    fs_err::create_dir_all(dir.join("dyn")).unwrap();
    fs_err::copy("/bin/true", dir.join("dyn/app")).unwrap();
    fs_err::write(
        dir.join("compose.override.yaml"),
        "services:\n  dynamic:\n    x-cove:\n      run: ./dyn/app\n",
    )
    .unwrap();
    let (code, out) = app.merged(&["build", "--push", "--registry", &reg]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("dynamic: no image pushed: it runs natively and its program (./dyn/app) is not a static binary"),
        "{out}"
    );
    let (code, out) = app.merged(&["k8s", "render", "--registry", &reg]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("service \"dynamic\": x-cove.run") && out.contains("add `build:`"),
        "{out}"
    );

    for image in [
        "pushy-web:latest",
        "pushy-tool:latest",
        &format!("cove:{version}"),
    ] {
        docker(&["image", "rm", "-f", &format!("{reg}/{image}")]);
    }
}
