#!/usr/bin/env python3
"""bench/docker: `cove up -d` to all-healthy against `docker-compose up -d`
(Debian's docker-compose 1.29.2, the anchor packaged here), on the same
images and the same app, against the same engine.

The app: six containers of one image built FROM scratch around a static
server (compiled here; no registry is reachable), each with the same Compose
healthcheck (`/app probe`, run inside the container by the engine for both
tools; cove follows the engine's health events), five of them waiting for
the first to be healthy (`depends_on: service_healthy`). cove's `up -d`
returns once all are healthy; docker-compose's returns once all are started,
so its time runs on until `docker inspect` reports all six healthy.

Runs are interleaved (cove, compose, cove, ...), each from nothing to
all-healthy, then down. Medians and the ratio are printed. Measurements
only; nothing is asserted. A Docker engine of its own is started (and
stopped by PID) with scripts/dockerd.

Usage: python3 bench/docker/run.py [RUNS]   (default 5)
Needs: root (dockerd), docker.io and docker-compose (apt-get install).
"""
import json, os, shutil, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
SERVICES = 6

APP = r'''
use std::io::{Read, Write};
fn main() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    if std::env::args().nth(1).as_deref() == Some("probe") {
        let ok = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_ok();
        std::process::exit(if ok { 0 } else { 1 });
    }
    let l = std::net::TcpListener::bind(format!("0.0.0.0:{port}")).unwrap();
    println!("listening on {port}");
    for c in l.incoming() {
        let Ok(mut c) = c else { continue };
        let mut buf = [0u8; 1024];
        let _ = c.read(&mut buf);
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    }
}
'''

HEALTH = """    healthcheck:
      test: ["CMD", "/app", "probe"]
      interval: 1s
      timeout: 2s
      retries: 3
"""


def compose_file():
    out = "services:\n"
    for i in range(SERVICES):
        out += f"  web{i}:\n    image: cove-bench-app:1\n    environment:\n      PORT: '8080'\n" + HEALTH
        out += "    stop_grace_period: 1s\n"
        if i > 0:
            out += "    depends_on:\n      web0: {condition: service_healthy}\n"
    out += "x-cove:\n  gateway: {listen: '127.0.0.1:0'}\n"
    return out


def main():
    if shutil.which("docker-compose") is None:
        sys.exit("docker-compose is missing: apt-get install docker-compose")
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "cove"], cwd=ROOT, check=True)
    cove = os.path.join(ROOT, "target", "release", "cove")
    work = tempfile.mkdtemp(prefix="cove-bench-docker-")
    engine_dir = os.path.join(work, "engine")
    host = subprocess.run(
        ["bash", os.path.join(ROOT, "scripts", "dockerd"), "start", engine_dir],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    env = dict(os.environ, DOCKER_HOST=host)
    try:
        ctx = os.path.join(work, "image")
        os.makedirs(ctx)
        with open(os.path.join(ctx, "app.rs"), "w") as f:
            f.write(APP)
        subprocess.run(
            ["rustc", "--edition", "2021", "-O", "-C", "target-feature=+crt-static", "app.rs", "-o", "app"],
            cwd=ctx, check=True,
        )
        os.remove(os.path.join(ctx, "app.rs"))
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write('FROM scratch\nCOPY app /app\nENTRYPOINT ["/app"]\n')
        subprocess.run(["docker", "build", "-q", "-t", "cove-bench-app:1", ctx], env=env, check=True,
                       capture_output=True)
        app = os.path.join(work, "app")
        os.makedirs(app)
        with open(os.path.join(app, "compose.yaml"), "w") as f:
            f.write(compose_file())

        def run_cove():
            t = time.monotonic()
            r = subprocess.run([cove, "up", "-d"], cwd=app, env=env, capture_output=True, text=True)
            took = time.monotonic() - t
            if r.returncode != 0:
                sys.exit(f"cove up failed:\n{r.stderr}")
            subprocess.run([cove, "down"], cwd=app, env=env, check=True, capture_output=True)
            return took

        def healthy(project):
            ids = subprocess.run(
                ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={project}"],
                env=env, capture_output=True, text=True,
            ).stdout.split()
            if len(ids) < SERVICES:
                return False
            states = json.loads(subprocess.run(["docker", "inspect", *ids], env=env, capture_output=True,
                                               text=True).stdout)
            return all(s["State"].get("Health", {}).get("Status") == "healthy" for s in states)

        def run_compose():
            project = "benchcompose"
            base = ["docker-compose", "-p", project, "-f", os.path.join(app, "compose.yaml")]
            t = time.monotonic()
            r = subprocess.run([*base, "up", "-d"], env=env, capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"docker-compose up failed:\n{r.stderr}")
            deadline = t + 120
            while not healthy(project):
                if time.monotonic() > deadline:
                    sys.exit("docker-compose: not all healthy within 120 s")
                time.sleep(0.05)
            took = time.monotonic() - t
            subprocess.run([*base, "down"], env=env, check=True, capture_output=True)
            return took

        times = {"cove": [], "compose": []}
        for i in range(RUNS):
            times["cove"].append(run_cove())
            times["compose"].append(run_compose())
            print(f"run {i + 1}: cove {times['cove'][-1]:.2f} s, docker-compose {times['compose'][-1]:.2f} s",
                  flush=True)
        c, d = statistics.median(times["cove"]), statistics.median(times["compose"])
        version = subprocess.run(["docker-compose", "version", "--short"], capture_output=True,
                                 text=True).stdout.strip()
        print(f"\n{SERVICES} containers, up -d to all healthy, median of {RUNS} interleaved runs:")
        print(f"| tool | median s | runs |")
        print(f"|---|---|---|")
        print(f"| cove | {c:.2f} | {', '.join(f'{x:.2f}' for x in times['cove'])} |")
        print(f"| docker-compose {version} | {d:.2f} | {', '.join(f'{x:.2f}' for x in times['compose'])} |")
        print(f"\ncove / docker-compose wall time: {c / d:.2f}")
    finally:
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "dockerd"), "stop", engine_dir])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
