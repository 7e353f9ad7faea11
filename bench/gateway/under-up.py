#!/usr/bin/env python3
"""bench/gateway/under-up.py: the gateway as users run it, under `cove up`
(access log on, default settings), side by side with the standalone
`cove gateway` (no access log) that bench/gateway/run.sh measures, in the
same run, on the same upstream program.

The upstream: nginx (1 worker, `return 200 "ok"`, no access log), two
instances. Standalone: started here on 127.0.0.1:18301/18302, with
`cove gateway --listen 127.0.0.1:18300 --upstream ... --threads 2` in front
(2 = the HTTP threads the daemon's gateway uses on this 2-core machine).
Under `cove up`: a compose file whose one service `web` runs the same nginx
as 2 replicas (`x-cove.run`, on the addresses cove gives them), with the
gateway on 127.0.0.1:18310 and its defaults otherwise: the access log on
(`cove logs gateway`), the route `Host: web.localhost`. Both get the same
`Host: web.localhost` header from wrk.

Each rep, for each setup in turn (interleaved): a 1 s wrk warm-up, then
`wrk -t1 -cCONNS -dDURATIONs --latency` (keep-alive), nothing pinned. Printed
per setup: RPS, p50 and p99 (median and min–max over reps), the CPU µs per
request of the process that runs the gateway (`cove gateway`; the daemon
under `cove up`, whose supervisor shares it and probes health every 30 s),
its RSS after the load, and the ratio under-up / standalone of each rep's RPS.

Usage: python3 bench/gateway/under-up.py [REPS] [DURATION] [CONNS]
       (default 5 5 50). Loopback only; every load is bounded by DURATION;
everything started is stopped by PID (or `cove down`).
Needs: nginx wrk (apt-get install nginx wrk).
"""
import json, os, re, shutil, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
DURATION = int(sys.argv[2]) if len(sys.argv) > 2 else 5
CONNS = int(sys.argv[3]) if len(sys.argv) > 3 else 50
TICK = os.sysconf("SC_CLK_TCK")

# One nginx on $HOST:$PORT, its files in a directory of its own.
UPSTREAM_SH = r'''set -eu
d="$(mktemp -d -p "$UPSTREAM_TMP")"
cat > "$d/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $d;
  server { listen $HOST:$PORT; location / { return 200 "ok"; } }
}
CONF
exec nginx -p "$d" -c "$d/nginx.conf"
'''

COMPOSE = '''services:
  web:
    x-cove:
      run: [sh, {script}]
      health: {{tcp: 8080}}
    environment: {{UPSTREAM_TMP: {work}}}
    expose: ["8080"]
    deploy:
      replicas: 2
x-cove:
  gateway: {{listen: "127.0.0.1:18310"}}
'''


def cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wrk(url, seconds):
    out = subprocess.run(["wrk", "-t1", f"-c{CONNS}", f"-d{seconds}s", "--latency",
                          "-H", "Host: web.localhost", url],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    n = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out)
        return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    err = re.search(r"Socket errors: (.*)", out)
    return {"n": n, "rps": rps, "p50": pct(50), "p99": pct(99),
            "non2xx": int(bad.group(1)) if bad else 0, "errors": err.group(1) if err else "none"}


def measure(pid, url):
    wrk(url, 1)
    c0 = cpu_s(pid)
    r = wrk(url, DURATION)
    r["cpu_us"] = (cpu_s(pid) - c0) / r["n"] * 1e6
    r["rss"] = rss_mib(pid)
    return r


def wait_answers(url, seconds=20):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: web.localhost",
                            url], capture_output=True, text=True, timeout=5)
        if r.stdout == "200":
            return
        time.sleep(0.2)
    sys.exit(f"{url} does not answer 200")


def main():
    # COVE_BIN: another build to measure (bench/core compares two).
    cove = os.environ.get("COVE_BIN")
    if not cove:
        subprocess.run(["cargo", "build", "-q", "--release", "-p", "cove"], cwd=ROOT, check=True)
        cove = os.path.join(ROOT, "target", "release", "cove")
    work = tempfile.mkdtemp(prefix="cove-bench-gw-up-")
    script = os.path.join(work, "upstream.sh")
    open(script, "w").write(UPSTREAM_SH)
    app = os.path.join(work, "app")
    os.makedirs(app)
    open(os.path.join(app, "compose.yaml"), "w").write(COMPOSE.format(script=script, work=work))
    started = []
    try:
        for port in (18301, 18302):
            started.append(subprocess.Popen(["sh", script], env=dict(os.environ, HOST="127.0.0.1", PORT=str(port), UPSTREAM_TMP=work),
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        gw = subprocess.Popen([cove, "gateway", "--listen", "127.0.0.1:18300", "--upstream", "127.0.0.1:18301",
                               "--upstream", "127.0.0.1:18302", "--threads", "2"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(gw)
        up = subprocess.run([cove, "up", "-d"], cwd=app, capture_output=True, text=True, timeout=120)
        if up.returncode != 0:
            sys.exit(f"cove up -d failed:\n{up.stdout}{up.stderr}")
        daemon = int(open(os.path.join(app, ".cove", "daemon.pid")).read())
        setups = {"standalone (no access log)": (gw.pid, "http://127.0.0.1:18300/"),
                  "under cove up (access log on)": (daemon, "http://127.0.0.1:18310/")}
        for _, url in setups.values():
            wait_answers(url)
        res = {k: [] for k in setups}
        for rep in range(REPS):
            for name, (pid, url) in setups.items():
                r = measure(pid, url)
                res[name].append(r)
                print(f"rep {rep + 1} {name}: {r['rps']:,.0f} rps, p50 {r['p50']:.0f} µs, p99 {r['p99']:.0f} µs, "
                      f"{r['cpu_us']:.1f} µs CPU/req, RSS {r['rss']:.1f} MiB, non-2xx {r['non2xx']}, "
                      f"socket errors {r['errors']}", flush=True)
        logs = subprocess.run([cove, "logs", "gateway"], cwd=app, capture_output=True, text=True, timeout=60)
        log_lines = logs.stdout.count("\n")

        def mm(xs, fmt):
            return f"{fmt.format(statistics.median(xs))} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"
        print(f"\nwrk -t1 -c{CONNS} -d{DURATION}s keep-alive, {REPS} interleaved reps; median (min–max):\n")
        print("| gateway | RPS | p50 µs | p99 µs | CPU µs/req | RSS MiB | non-2xx / socket errors |")
        print("|---|---|---|---|---|---|---|")
        for name, rs in res.items():
            print(f"| {name} | {mm([r['rps'] for r in rs], '{:,.0f}')} | {mm([r['p50'] for r in rs], '{:.0f}')} | "
                  f"{mm([r['p99'] for r in rs], '{:.0f}')} | {mm([r['cpu_us'] for r in rs], '{:.1f}')} | "
                  f"{mm([r['rss'] for r in rs], '{:.1f}')} | {sum(r['non2xx'] for r in rs)} / "
                  f"{', '.join(sorted(set(r['errors'] for r in rs)))} |")
        names = list(res)
        ratios = [b["rps"] / a["rps"] for a, b in zip(res[names[0]], res[names[1]])]
        print(f"\nRPS under cove up / standalone, per rep: {', '.join(f'{x:.2f}' for x in ratios)}; "
              f"median {statistics.median(ratios):.2f} (min–max {min(ratios):.2f}–{max(ratios):.2f})")
        print(f"`cove logs gateway` holds {log_lines:,} lines after the run "
              f"({sum(r['n'] for r in res[names[1]]):,} measured requests under cove up, plus warm-ups).")
    finally:
        subprocess.run([cove, "down"], cwd=app, capture_output=True, timeout=120)
        for p in reversed(started):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
