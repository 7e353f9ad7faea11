//! The host's daemon serves every app's HTTP routes on one listener per
//! address: the environments of an app (`web.localhost`,
//! `web.prod.localhost`) are one origin; a host belongs to one app there,
//! so another app that asks for it is refused, naming the one that has it
//! (or, on the default address, goes to the next port); each app's access
//! log gets its own requests; the socket closes with its last app.

use std::net::SocketAddr;
use std::path::Path;

use crate::daemon::{App, HostDaemon};
use crate::gateway::http;

/// `web` answers with the environment's name (from `.env`/`.env.prod`).
fn compose(listen: Option<SocketAddr>) -> String {
    let gateway = listen.map_or(String::new(), |l| {
        format!("x-cove:\n  gateway: {{listen: \"{l}\"}}\n")
    });
    format!(
        r#"
services:
  web:
    x-cove:
      run: [python3, -c, "import http.server,os\nclass H(http.server.BaseHTTPRequestHandler):\n  def do_GET(s):\n    b=os.environ['WHO'].encode(); s.send_response(200); s.send_header('content-length',str(len(b))); s.end_headers(); s.wfile.write(b)\nhttp.server.HTTPServer((os.environ['HOST'],int(os.environ['PORT'])),H).serve_forever()"]
    environment:
      WHO: ${{WHO}}
    expose: ["8000"]
{gateway}"#
    )
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// `cove [PROJECT…] routes --format json`: the HTTP listener's address.
pub fn listener(app: &App, project: &[&str]) -> SocketAddr {
    let mut args = project.to_vec();
    args.extend(["routes", "--format", "json"]);
    let (code, out) = app.merged(&args);
    assert_eq!(code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["url"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .parse()
        .unwrap()
}

/// The downs of the test's projects, whatever happens.
struct Downs<'a>(&'a App, Vec<Vec<&'a str>>);

impl Drop for Downs<'_> {
    fn drop(&mut self) {
        for p in &self.1 {
            let mut a = p.clone();
            a.push("down");
            let _ = self.0.merged(&a);
        }
    }
}

fn host_env(host: &HostDaemon) -> [(&'static str, &Path); 2] {
    [
        ("COVE_DAEMON", Path::new("host")),
        ("COVE_HOST_DIR", host.dir.path()),
    ]
}

#[test]
fn the_environments_of_an_app_share_one_gateway_listener() {
    let host = HostDaemon {
        dir: tempfile::tempdir().unwrap(),
    };
    let at = free_port();
    let app = App::with_env(&compose(Some(at)), &host_env(&host));
    fs_err::write(app.dir().join(".env"), "WHO=dev\n").unwrap();
    fs_err::write(app.dir().join(".env.prod"), "WHO=prod\n").unwrap();
    let _downs = Downs(
        &app,
        vec![vec![], vec!["--env", "prod"], vec!["-p", "other"]],
    );

    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = app.merged(&["--env", "prod", "up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    // One address for both, each environment by its host.
    assert_eq!(listener(&app, &[]), at);
    assert_eq!(listener(&app, &["--env", "prod"]), at);
    let (code, out) = app.merged(&["--env", "prod", "routes", "--format", "json"]);
    assert_eq!(code, Some(0), "{out}");
    let routes: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        routes["routes"][0]["url"],
        format!("http://web.prod.localhost:{}/", at.port()),
        "{out}"
    );
    let (status, _, body) = http(at, "GET", "web.localhost", "/dev-only", b"");
    assert_eq!((status, body.as_str()), (200, "dev"));
    let (status, _, body) = http(
        at,
        "GET",
        &format!("web.prod.localhost:{}", at.port()),
        "/prod-only",
        b"",
    );
    assert_eq!((status, body.as_str()), (200, "prod"));
    let (status, _, _) = http(at, "GET", "web.staging.localhost", "/", b"");
    assert_eq!(status, 404, "a host nobody serves");

    // Another project of the same files asks for `web.localhost` there:
    // refused, naming the project that has it; nothing of it starts.
    let (code, out) = app.merged(&["-p", "other", "up", "-d"]);
    assert_eq!(code, Some(1), "{out}");
    let dir = fs_err::canonicalize(app.dir()).unwrap();
    // The project's name: the directory's, as Compose makes it.
    let name: String = dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    assert!(
        out.contains(&format!(
            "the gateway cannot listen on {at}: the address is in use, by the gateway of cove project `{name}` in {}, which serves `web.localhost` there",
            dir.display()
        )),
        "{out}"
    );
    assert!(out.contains("x-cove.gateway.listen"), "{out}");
    let (code, out) = app.merged(&["-p", "other", "ps", "--format", "json"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.trim(), "[]", "nothing of `other` runs");

    // Each environment's access log has its own requests only.
    crate::daemon::eventually(10, "the access log records", || {
        let (_, out) = app.merged(&["--env", "prod", "logs", "gateway"]);
        out.contains("/prod-only")
    });
    let (_, dev_log) = app.merged(&["logs", "gateway"]);
    let (_, prod_log) = app.merged(&["--env", "prod", "logs", "gateway"]);
    assert!(
        dev_log.contains("/dev-only") && !dev_log.contains("/prod-only"),
        "{dev_log}"
    );
    assert!(!prod_log.contains("/dev-only"), "{prod_log}");
    assert!(!dev_log.contains("/nowhere") && !prod_log.contains("staging"));

    // The default environment down: prod is still served there; the
    // socket closes with its last app.
    let (code, out) = app.merged(&["down"]);
    assert_eq!(code, Some(0), "{out}");
    let (status, _, body) = http(at, "GET", "web.prod.localhost", "/", b"");
    assert_eq!((status, body.as_str()), (200, "prod"));
    let (status, _, _) = http(at, "GET", "web.localhost", "/", b"");
    assert_eq!(status, 404, "dev's routes left with it");
    let (code, out) = app.merged(&["--env", "prod", "down"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        std::net::TcpStream::connect(at).is_err(),
        "the socket is closed"
    );
}

/// On the default address, an app whose host is taken there serves on the
/// next port above it, as it does when the port itself is taken.
#[test]
fn a_taken_host_on_the_default_listener_moves_to_the_next_port() {
    let host = HostDaemon {
        dir: tempfile::tempdir().unwrap(),
    };
    let app = App::with_env(&compose(None), &host_env(&host));
    fs_err::write(app.dir().join(".env"), "WHO=one\n").unwrap();
    let _downs = Downs(&app, vec![vec![], vec!["-p", "two"]]);
    let (code, out) = app.merged(&["up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = app.merged(&["-p", "two", "up", "-d"]);
    assert_eq!(code, Some(0), "{out}");
    let (one, two) = (listener(&app, &[]), listener(&app, &["-p", "two"]));
    assert_ne!(one, two, "both serve web.localhost: not on one listener");
    assert!(two.port() > one.port(), "{one} {two}");
    for at in [one, two] {
        let (status, _, body) = http(at, "GET", "web.localhost", "/", b"");
        assert_eq!((status, body.as_str()), (200, "one"));
    }
}
