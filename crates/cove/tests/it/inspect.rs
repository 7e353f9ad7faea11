//! The commands that look at a running app, with Compose's flags and
//! shapes (issue 19): `ps` (`-a`, `-q`, `--services`, `--status`, a
//! service filter, `--format` templates), `logs` (`--until`, `--index`,
//! `--no-log-prefix`, `--no-color`), `top`, `port`, `images`, `version`,
//! `events`, `wait`. Real native processes; a container (real engine) for
//! the engine's side of `top`, `images` and `port`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::daemon::{App, Out, eventually, run_bounded};

fn cove(app: &App, args: &[&str]) -> Out {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_cove"))
            .current_dir(app.dir())
            .args(args)
            .env("NO_COLOR", "1"),
        120,
    )
}

fn ok(app: &App, args: &[&str]) -> String {
    let out = cove(app, args);
    assert_eq!(out.code, Some(0), "cove {args:?}:\n{out}");
    out.stdout
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// A `cove ARGS` left running, its stdout's lines on a channel; killed
/// (by its pid) when dropped.
struct Streaming {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Streaming {
    fn start(app: &App, args: &[&str]) -> Streaming {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cove"))
            .current_dir(app.dir())
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Streaming { child, lines }
    }

    /// Lines until one for which `last` holds (10 s at most).
    fn until(&self, last: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while Instant::now() < deadline {
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(100)) {
                let done = last(&l);
                got.push(l);
                if done {
                    return got;
                }
            }
        }
        panic!("no such line within 10 s; got {got:#?}");
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const APP: &str = r#"
services:
  web:
    ports: ["127.0.0.1:PUBLISHED:8000"]
    x-cove:
      run: [sh, -c, 'sleep 300 & exec python3 -m http.server --bind $$HOST $$PORT']
  api:
    expose: ["9000"]
    deploy: {replicas: 2}
    x-cove:
      run: [python3, -m, http.server, --bind, $$HOST, $$PORT]
  sleeper:
    profiles: [later]
    x-cove:
      run: [sh, -c, 'sleep 2; exit 3']
"#;

#[test]
fn ps_top_port_images_events_and_wait_on_native_replicas() {
    let published = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = App::new(&APP.replace("PUBLISHED", &published.to_string()));
    ok(&app, &["up", "-d"]);
    let ps = app.ps();

    // ps: ids, services, a service filter, states, templates.
    assert_eq!(lines(&ok(&app, &["ps", "-q"])), ["web-1", "api-1", "api-2"]);
    assert_eq!(lines(&ok(&app, &["ps", "--services"])), ["web", "api"]);
    assert_eq!(lines(&ok(&app, &["ps", "-q", "api"])), ["api-1", "api-2"]);
    assert_eq!(
        lines(&ok(&app, &["ps", "-q", "--status", "running"])).len(),
        3
    );
    assert_eq!(ok(&app, &["ps", "-q", "--status", "exited"]), "");
    assert_eq!(ok(&app, &["ps", "-q", "--filter", "status=exited"]), "");
    assert_eq!(
        lines(&ok(
            &app,
            &[
                "ps",
                "-q",
                "--filter",
                "status=running",
                "--no-trunc",
                "--orphans=false"
            ]
        ))
        .len(),
        3
    );
    assert_eq!(cove(&app, &["ps", "--filter", "name=web"]).code, Some(2));
    assert_eq!(
        lines(&ok(
            &app,
            &[
                "ps",
                "--format",
                r"{{.Name}}\t{{.Service}} {{.State}}",
                "web"
            ]
        )),
        ["web-1\tweb running"]
    );
    let table = ok(
        &app,
        &[
            "ps",
            "--format",
            r"table {{.Name}}\t{{.Status}}\t{{.Ports}}\t{{.Command}}",
        ],
    );
    let rows = lines(&table);
    assert!(
        rows[0].starts_with("NAME    STATUS")
            && rows[0].contains("PORTS")
            && rows[0].ends_with("COMMAND"),
        "{table}"
    );
    let web_address = ps[0]["address"].as_str().unwrap();
    assert!(
        rows[1].starts_with("web-1   Up ")
            && rows[1].contains(&format!("127.0.0.1:{published}->8000/tcp, {web_address}"))
            && rows[1]
                .ends_with("sh -c sleep 300 & exec python3 -m http.server --bind $HOST $PORT"),
        "{table}"
    );
    let bad = cove(&app, &["ps", "--format", "{{.Nmae}}"]);
    assert_eq!(bad.code, Some(2), "{bad}");
    assert!(
        bad.stderr.contains("no field `Nmae`") && bad.stderr.contains("Name, ID, Service"),
        "{bad}"
    );
    let bad = cove(&app, &["ps", "--status", "sleeping"]);
    assert_eq!(bad.code, Some(2), "{bad}");
    assert!(bad.stderr.contains("exited"), "{bad}");
    assert_eq!(cove(&app, &["ps", "nope"]).code, Some(2));

    // top: the replica's leader and the child it left, as `ps -ef`.
    let web_pid = ps[0]["pid"].as_u64().unwrap().to_string();
    let top = ok(&app, &["top", "web"]);
    let rows = lines(&top);
    assert_eq!(rows[0], "web-1", "{top}");
    let header: Vec<&str> = rows[1].split_whitespace().collect();
    assert_eq!(
        header,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    );
    let cells = |row: &str| {
        row.split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let leader = cells(rows[2]);
    assert_eq!(leader[1], web_pid, "{top}");
    assert!(rows[2].contains("http.server"), "{top}");
    let child = rows
        .iter()
        .find(|r| r.ends_with("sleep 300"))
        .unwrap_or_else(|| panic!("{top}"));
    assert_eq!(cells(child)[2], web_pid, "its parent is the leader:\n{top}");
    assert!(!top.contains("api-1"), "only the service named:\n{top}");
    assert_eq!(
        lines(&ok(&app, &["top"]))
            .iter()
            .filter(|l| l.starts_with("api-"))
            .count(),
        2
    );

    // port: the published address, else the replica's own.
    assert_eq!(
        ok(&app, &["port", "web", "8000"]).trim(),
        format!("127.0.0.1:{published}")
    );
    let api2 = ps
        .iter()
        .find(|r| r["service"] == "api" && r["replica"] == 2)
        .unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        ok(&app, &["port", "api", "9000", "--index", "2"]).trim(),
        api2
    );
    assert_eq!(
        ok(&app, &["port", "api", "9000/tcp"]).trim(),
        ps[1]["address"]
    );
    let bad = cove(&app, &["port", "api", "1234"]);
    assert_eq!(bad.code, Some(2), "{bad}");
    assert!(bad.stderr.contains("its ports: 9000/tcp"), "{bad}");
    assert_eq!(
        cove(&app, &["port", "api", "9000", "--protocol", "udp"]).code,
        Some(2)
    );
    assert_eq!(
        cove(&app, &["port", "api", "9000", "--index", "3"]).code,
        Some(1)
    );

    // images: what each native replica runs.
    let images = ok(&app, &["images", "api"]);
    assert_eq!(
        lines(&images)
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        [
            vec!["CONTAINER", "REPOSITORY", "TAG", "IMAGE", "ID", "SIZE"],
            vec!["api-1", "python3", "native", "-", "-"],
            vec!["api-2", "python3", "native", "-", "-"],
        ]
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&app, &["images", "--format", "json", "web"])).unwrap();
    assert_eq!(json[0]["ContainerName"], "web-1");
    assert_eq!(json[0]["Repository"], "sh");
    assert_eq!(json[0]["Native"], true);
    assert_eq!(ok(&app, &["images", "-q"]), "", "no image ids natively");

    // events: one line each as they happen, of the services named.
    let text = Streaming::start(&app, &["events", "web"]);
    let json = Streaming::start(&app, &["events", "--json"]);
    std::thread::sleep(Duration::from_millis(500));
    ok(&app, &["stop", "web"]);
    let seen = text.until(|l| l.contains(" stopped web-1 "));
    let stopped = seen.last().unwrap();
    let (time, rest) = stopped.split_once(' ').unwrap();
    assert!(time.len() == 24 && time.ends_with('Z'), "{stopped}");
    assert!(
        rest.starts_with("process stopped web-1 (service=web, replica=1, revision=1"),
        "{stopped}"
    );
    assert!(seen.iter().all(|l| l.contains(" web-1 ")), "{seen:#?}");
    let seen = json.until(|l| l.contains(r#""action":"stopped""#));
    let event: serde_json::Value = serde_json::from_str(seen.last().unwrap()).unwrap();
    assert_eq!(event["type"], "process");
    assert_eq!(event["id"], "web-1");
    assert_eq!(event["service"], "web");
    assert_eq!(event["attributes"]["replica"], "1");
    // Those kept, since a time until another: printed, then it ends.
    let kept = ok(&app, &["events", "--since", "1h", "--until", "0s", "web"]);
    assert!(
        lines(&kept).iter().any(|l| l.contains(" running web-1 "))
            && lines(&kept).last().unwrap().contains(" stopped web-1 ")
            && !kept.contains("api-"),
        "{kept}"
    );
    assert_eq!(
        ok(&app, &["events", "--until", "0s"]),
        "",
        "nothing after now"
    );
    assert_eq!(cove(&app, &["events", "--since", "soon"]).code, Some(2));

    // A stopped replica: `exited` to Compose; `-a` lists it as without.
    assert_eq!(ok(&app, &["ps", "-q", "--status", "exited"]), "web-1\n");
    assert_eq!(ok(&app, &["ps", "-q", "--status", "stopped"]), "web-1\n");
    assert_eq!(
        ok(&app, &["ps", "-q", "--filter", "status=exited"]),
        "web-1\n"
    );
    assert_eq!(ok(&app, &["ps", "-a", "-q"]), ok(&app, &["ps", "-q"]));
    assert_eq!(cove(&app, &["port", "web", "8000"]).code, Some(1));

    // Orphans: listed, unless `--orphans=false`.
    let file = app.dir().join("compose.yaml");
    let yaml = fs_err::read_to_string(&file).unwrap();
    let start = yaml.find("  api:").unwrap();
    let end = yaml.find("  sleeper:").unwrap();
    fs_err::write(&file, format!("{}{}", &yaml[..start], &yaml[end..])).unwrap();
    assert_eq!(lines(&ok(&app, &["ps", "-q"])), ["web-1", "api-1", "api-2"]);
    assert_eq!(ok(&app, &["ps", "-q", "--orphans=false"]), "web-1\n");

    // wait: the first replica's exit code; `--down-project` then stops all.
    ok(&app, &["--profile", "later", "up", "-d", "sleeper"]);
    let waited = cove(&app, &["wait", "sleeper"]);
    assert_eq!(waited.code, Some(3), "{waited}");
    assert_eq!(
        ok(
            &app,
            &[
                "ps",
                "--format",
                "{{.Name}} {{.ExitCode}} {{.State}}",
                "sleeper"
            ]
        ),
        "sleeper-1 3 exited\n"
    );
    let waited = cove(&app, &["wait", "web", "--down-project"]);
    assert_eq!(waited.code, Some(0), "stopped on request:\n{waited}");
    assert_eq!(ok(&app, &["ps", "-q"]), "", "the project is down");
    let none = cove(&app, &["wait", "web"]);
    assert_eq!(none.code, Some(1), "nothing to wait for:\n{none}");
    assert!(none.stderr.contains("no replica of web runs"), "{none}");
}

const TALKERS: &str = r#"
services:
  talker:
    deploy: {replicas: 2}
    x-cove:
      run: [sh, -c, 'echo "hello from $$COVE_REPLICA"; echo bye; sleep 300']
"#;

#[test]
fn logs_until_index_without_prefix_and_colour() {
    let app = App::new(TALKERS);
    ok(&app, &["up", "-d"]);
    eventually(10, "both replicas' lines are kept", || {
        lines(&ok(&app, &["logs"])).len() == 4
    });
    let out = ok(&app, &["logs", "--index", "2", "--no-log-prefix"]);
    assert_eq!(lines(&out), ["hello from 2", "bye"]);
    let out = ok(&app, &["logs", "talker", "--index", "1"]);
    assert_eq!(
        lines(&out)
            .iter()
            .map(|l| l.split_once(" | ").unwrap().0.trim())
            .collect::<Vec<_>>(),
        ["talker-1", "talker-1"]
    );
    assert_eq!(
        ok(&app, &["logs", "--until", "2000-01-01T00:00:00.000Z"]),
        ""
    );
    assert_eq!(
        lines(&ok(&app, &["logs", "--until", "2999-01-01T00:00:00.000Z"])).len(),
        4
    );
    assert_eq!(
        lines(&ok(&app, &["logs", "--since", "1h", "--until", "0s"])).len(),
        4
    );
    let bad = cove(&app, &["logs", "--until", "tomorrow"]);
    assert_eq!(bad.code, Some(2), "{bad}");
    assert!(bad.stderr.contains("`--until tomorrow`"), "{bad}");
    // With timestamps and no prefix: the time, then the line.
    let out = ok(&app, &["logs", "-t", "--no-log-prefix", "--index", "1"]);
    let first = lines(&out)[0];
    assert!(
        first.ends_with("Z hello from 1") && first.starts_with("20"),
        "{out}"
    );

    // On a terminal the prefixes are coloured; not with `--no-color` nor
    // with NO_COLOR.
    let on_a_terminal = |args: &str, no_color: bool| -> String {
        let mut cmd = Command::new("script");
        cmd.args([
            "-qec",
            &format!("{} logs {args}", env!("CARGO_BIN_EXE_cove")),
            "/dev/null",
        ])
        .current_dir(app.dir())
        .env_remove("NO_COLOR");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let out = run_bounded(&mut cmd, 30);
        assert_eq!(out.code, Some(0), "{out}");
        assert!(out.stdout.contains("hello from 1"), "{out}");
        out.stdout
    };
    assert!(on_a_terminal("", false).contains("\x1b[36mtalker-1"));
    assert!(!on_a_terminal("--no-color", false).contains('\x1b'));
    assert!(!on_a_terminal("", true).contains('\x1b'));
}

#[test]
fn version_is_printed_as_compose_prints_its_own() {
    let version = env!("CARGO_PKG_VERSION");
    let run = |args: &[&str]| {
        let out = run_bounded(Command::new(env!("CARGO_BIN_EXE_cove")).args(args), 30);
        assert_eq!(out.code, Some(0), "{out}");
        out.stdout
    };
    assert_eq!(run(&["version"]), format!("cove version v{version}\n"));
    assert_eq!(run(&["version", "--short"]), format!("{version}\n"));
    let json: serde_json::Value = serde_json::from_str(&run(&["version", "-f", "json"])).unwrap();
    assert_eq!(json["version"], format!("v{version}"));
}

/// A container's program: listens on $PORT, and starts a child that
/// sleeps (for `top`).
const BOX: &str = r#"
fn main() {
    if std::env::args().nth(1).as_deref() == Some("nap") {
        std::thread::sleep(std::time::Duration::from_secs(3600));
        return;
    }
    let _nap = std::process::Command::new("/app").arg("nap").spawn().unwrap();
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let l = std::net::TcpListener::bind(format!("0.0.0.0:{port}")).unwrap();
    println!("listening on {port}");
    for c in l.incoming() {
        drop(c);
    }
}
"#;

#[test]
fn top_images_and_port_of_a_container() {
    assert!(
        std::env::var_os("DOCKER_HOST").is_some() || Path::new("/var/run/docker.sock").exists(),
        "no Docker engine: run `bash scripts/test`, which starts one of its own"
    );
    let app = App::new(
        r#"
services:
  box:
    build: ./box
    expose: ["8080"]
    stop_grace_period: 1s
"#,
    );
    let dir = app.dir().join("box");
    crate::containers::static_binary(&dir, BOX);
    fs_err::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\n",
    )
    .unwrap();
    ok(&app, &["up", "-d"]);
    let ps = app.ps();
    let name = ps[0]["container"].as_str().unwrap().to_string();
    assert_eq!(ok(&app, &["ps", "-q"]), format!("{name}\n"));

    // top: the engine's, the program and its child.
    let top = ok(&app, &["top"]);
    let rows = lines(&top);
    assert_eq!(rows[0], name, "{top}");
    assert!(
        rows[1].starts_with("UID") && rows[1].ends_with("CMD"),
        "{top}"
    );
    assert!(rows.iter().any(|r| r.ends_with("/app")), "{top}");
    assert!(rows.iter().any(|r| r.ends_with("/app nap")), "{top}");

    // images: the engine's image, as `docker` names it.
    let inspect = Command::new("docker")
        .args(["inspect", "--format", "{{.Image}}", &name])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&inspect.stdout).trim().to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    let images = ok(&app, &["images"]);
    let row: Vec<&str> = lines(&images)[1].split_whitespace().collect();
    assert_eq!(row[0], name, "{images}");
    assert_eq!(
        row[3],
        &id["sha256:".len().."sha256:".len() + 12],
        "{images}"
    );
    assert!(row[4].ends_with("B"), "a size: {images}");
    assert_eq!(ok(&app, &["images", "-q"]), format!("{id}\n"));
    let json: serde_json::Value =
        serde_json::from_str(&ok(&app, &["images", "--format", "json"])).unwrap();
    assert_eq!(json[0]["ID"], id.as_str());
    assert_eq!(json[0]["Native"], false);
    assert!(json[0]["Size"].as_i64().unwrap() > 0);
    let repo = format!(
        "{}:{}",
        json[0]["Repository"].as_str().unwrap(),
        json[0]["Tag"].as_str().unwrap()
    );
    let tagged = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", &repo])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&tagged.stdout).trim(), id, "{repo}");

    // port: the container's address on the project's network, reached.
    let at = ok(&app, &["port", "box", "8080"]);
    let at = at.trim();
    assert_eq!(at, ps[0]["address"].as_str().unwrap());
    eventually(10, "the container's port answers", || {
        std::net::TcpStream::connect(at).is_ok()
    });
}

/// `cove … | head`: a reader that closed the pipe before cove wrote ends
/// cove quietly with 141 (as a process killed by SIGPIPE), not with a
/// panic's message and backtrace.
#[test]
fn a_closed_stdout_ends_cove_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cove"))
        .args(["schema"])
        .env_clear()
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
