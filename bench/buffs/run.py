#!/usr/bin/env python3
"""bench/buffs: the buffs example under cove, measured.

1. Cold `cove up -d` to all-healthy (a fresh state directory each round:
   MariaDB initialised, the Redis cluster formed), then warm (the same state
   again after `cove down`): wall time, and when each service turned healthy,
   so the dependency that dominates shows.
2. Steady-state memory of the whole stack after IDLE seconds: RSS and PSS
   summed over every process of every replica, plus cove's daemon and reaper.
3. Throughput through the gateway with wrk (bounded: DURATION seconds, 32
   connections, loopback): GET /buffs (100 buffs stored; the cache answers)
   through the gateway and directly to one server replica, then POST /buff
   (MariaDB insert + STOMP publish with receipt per request).

Measurements only; nothing is asserted. Everything started is stopped with
`cove down`. The services run as release builds (CARGO_FLAGS=--release), cove
as a release build.

Usage: python3 bench/buffs/run.py [ROUNDS] [DURATION] [IDLE]
"""
import json, os, re, shutil, statistics, subprocess, sys, tempfile, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
DURATION = int(sys.argv[2]) if len(sys.argv) > 2 else 10
IDLE = float(sys.argv[3]) if len(sys.argv) > 3 else 10.0
FILE = os.path.join(ROOT, "examples", "buffs", "compose.yaml")

subprocess.run(["bash", "scripts/install-packages", "redis-server", "mariadb-server", "activemq", "wrk"],
               cwd=ROOT, check=True)
subprocess.run(["cargo", "build", "-q", "--release", "-p", "cove"], cwd=ROOT, check=True)
for p in ["buffs-server", "buffs-dashboard"]:
    subprocess.run(["cargo", "build", "-q", "--release", "-p", p], cwd=ROOT, check=True)
COVE = os.path.join(ROOT, "target", "release", "cove")


def env_for(state):
    overrides = os.path.join(state, "override.yaml")
    with open(overrides, "w") as f:
        f.write(f"x-cove:\n  state_dir: {state}/state\n  gateway: {{listen: \"127.0.0.1:0\"}}\n")
    env = dict(os.environ, COMPOSE_FILE=f"{FILE}:{overrides}", COMPOSE_PROJECT_NAME="buffs-bench",
               CARGO_FLAGS="--release", NO_COLOR="1")
    # The example's secrets are encrypted for its demo key (see its README).
    env.setdefault("COVE_IDENTITY", os.path.join(ROOT, "examples", "buffs", "demo-identity.txt"))
    return env


def cove(env, *args):
    return subprocess.run([COVE, *args], env=env, check=True, capture_output=True, text=True, timeout=300)


def up_timed(env):
    """`cove up -d`: total seconds and {service: seconds until all its replicas
    were done}, from `cove ps` polled every 100 ms while `up -d` runs. Done:
    healthy, or completed (exited 0). A replica running without a health
    check is not done: a job (the Redis cluster init) counts when it has
    finished, not when it started. Also {service: seconds} when first seen
    running with no health check, to name what was not counted."""
    t0 = time.monotonic()
    p = subprocess.Popen([COVE, "up", "-d"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ready, unchecked = {}, {}
    while True:
        done = p.poll() is not None
        r = subprocess.run([COVE, "ps", "--format", "json"], env=env, capture_output=True, text=True)
        now = time.monotonic() - t0
        if r.returncode == 0 and r.stdout.strip():
            by = {}
            for row in json.loads(r.stdout):
                ok = row.get("health") == "healthy" or row.get("state") == "completed"
                if row.get("state") == "running" and not row.get("health"):
                    unchecked.setdefault(row["service"], now)
                by[row["service"]] = by.get(row["service"], True) and ok
            for svc, ok in by.items():
                if ok:
                    ready.setdefault(svc, now)
        if done:
            break
        if now > 300:
            p.kill()
            raise SystemExit("cove up -d took over 300 s")
        time.sleep(0.1)
    if p.returncode != 0:
        raise SystemExit("cove up -d failed: " + p.stderr.read())
    return time.monotonic() - t0, ready, unchecked


def proc_kib(pid, field):
    try:
        if field == "Pss":
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Pss:"):
                    return int(line.split()[1])
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def groups():
    """pgid → pids of every process."""
    out = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                stat = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
                out.setdefault(int(stat[2]), []).append(int(p))
            except OSError:
                pass
    return out


def memory(env, state):
    rows = json.loads(cove(env, "ps", "--format", "json").stdout)
    g = groups()
    per = {}
    for r in rows:
        pid = r.get("pid")
        if not pid:
            continue
        pids = g.get(pid, [pid])
        rss = sum(proc_kib(p, "VmRSS") for p in pids)
        pss = sum(proc_kib(p, "Pss") for p in pids)
        s = per.setdefault(r["service"], [0, 0])
        s[0] += rss
        s[1] += pss
    daemon = int(open(os.path.join(state, "state", "daemon.pid")).read())
    per["(cove daemon)"] = [proc_kib(daemon, "VmRSS"), proc_kib(daemon, "Pss")]
    reaper = reaper_pid(os.path.join(state, "state"))
    if reaper is None:
        raise SystemExit("no `cove __reaper` process found for this daemon")
    per["(cove reaper)"] = [proc_kib(reaper, "VmRSS"), proc_kib(reaper, "Pss")]
    return per


def reaper_pid(state_dir):
    """The daemon's reaper (`cove __reaper --state-dir STATE_DIR`)."""
    want = f"__reaper\0--state-dir\0{os.path.realpath(state_dir)}\0".encode()
    alt = f"__reaper\0--state-dir\0{state_dir}\0".encode()
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                cmd = open(f"/proc/{p}/cmdline", "rb").read()
            except OSError:
                continue
            if want in cmd or alt in cmd:
                return int(p)
    return None


def wrk(url, script=None):
    args = ["wrk", "-t2", "-c32", f"-d{DURATION}s", "--latency", url]
    if script:
        args[1:1] = ["-s", script]
    out = subprocess.run(args, capture_output=True, text=True, timeout=DURATION + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return rps, float(p99.group(1)) * scale, int(non2xx.group(1)) if non2xx else 0, errors.group(1) if errors else "none"


def post(url, body):
    req = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()


def main():
    colds, warms, readies, uncheckeds = [], [], [], []
    kept = None
    for i in range(ROUNDS):
        state = tempfile.mkdtemp(prefix="buffs-bench-")
        env = env_for(state)
        try:
            total, ready, unchecked = up_timed(env)
            colds.append(total)
            readies.append(ready)
            uncheckeds.append(unchecked)
            cove(env, "down")
            total, _, _ = up_timed(env)
            warms.append(total)
            if i < ROUNDS - 1:
                cove(env, "down")
            else:
                kept = (state, env)
        except BaseException:
            subprocess.run([COVE, "down"], env=env, capture_output=True)
            shutil.rmtree(state, ignore_errors=True)
            raise
        if kept is None:
            shutil.rmtree(state, ignore_errors=True)

    state, env = kept
    try:
        print(f"## cove up -d to all healthy ({ROUNDS} rounds; services and cove built in release)\n")
        print("| | median s | min–max s |\n|---|---|---|")
        for name, xs in [("cold (fresh state)", colds), ("warm (state kept)", warms)]:
            print(f"| {name} | {statistics.median(xs):.1f} | {min(xs):.1f}–{max(xs):.1f} |")
        print("\nWhen each service was done (every replica healthy; the init job: exited 0), cold,"
              " s after `up -d` began, median (min–max):\n")
        print("| service | median s | min–max s |\n|---|---|---|")
        names = set().union(*readies, *uncheckeds)
        never = float("inf")
        services = sorted(names, key=lambda s: statistics.median(r.get(s, never) for r in readies))
        for s in services:
            xs = [r[s] for r in readies if s in r]
            if len(xs) < len(readies):
                seen = [u[s] for u in uncheckeds if s in u]
                how = (f" (running without a health check from {statistics.median(seen):.1f} s)"
                       if seen else "")
                print(f"| {s} | not done in {len(readies) - len(xs)} of {len(readies)} rounds{how} | |")
                continue
            print(f"| {s} | {statistics.median(xs):.1f} | {min(xs):.1f}–{max(xs):.1f} |")

        time.sleep(IDLE)
        per = memory(env, state)
        print(f"\n## Memory after {IDLE:.0f} s at rest (every process of each service's replicas; cove's daemon and its reaper)\n")
        print("| service | RSS MiB | PSS MiB |\n|---|---|---|")
        for s, (rss, pss) in sorted(per.items(), key=lambda kv: -kv[1][0]):
            print(f"| {s} | {rss / 1024:.1f} | {pss / 1024:.1f} |")
        print(f"| **total** | {sum(v[0] for v in per.values()) / 1024:.1f} | {sum(v[1] for v in per.values()) / 1024:.1f} |")

        routes = json.loads(cove(env, "routes", "--format", "json").stdout)
        gw = routes["url"]
        rows = json.loads(cove(env, "ps", "--format", "json").stdout)
        servers = [r["address"] for r in rows if r["service"] == "server"]
        server1 = servers[0]

        def cache_counts():
            hits = misses = 0
            for a in servers:
                text = urllib.request.urlopen(f"http://{a}/metrics", timeout=10).read().decode()
                hits += int(re.search(r"^buffs_cache_hits_total (\d+)", text, re.M).group(1))
                misses += int(re.search(r"^buffs_cache_misses_total (\d+)", text, re.M).group(1))
            return hits, misses

        for i in range(100):
            post(gw + "/buff", json.dumps({"question": f"q{i}", "answers": ["a", "b"]}))
        time.sleep(0.5)
        script = os.path.join(state, "post.lua")
        with open(script, "w") as f:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    'wrk.body = \'{"question": "bench", "answers": ["a", "b"]}\'\n')
        print(f"\n## Throughput (wrk -t2 -c32 -d{DURATION}s, loopback; 100 buffs stored for the GETs)\n")
        print("| request | RPS | p99 ms | non-2xx | socket errors |\n|---|---|---|---|---|")
        h0, m0 = cache_counts()
        direct = wrk(f"http://{server1}/buffs")
        via = wrk(gw + "/buffs")
        h1, m1 = cache_counts()
        posted = wrk(gw + "/buff", script)
        for name, r in [("GET /buffs, direct to one server replica", direct),
                        ("GET /buffs through the gateway (2 replicas)", via),
                        ("POST /buff through the gateway", posted)]:
            print(f"| {name} | {r[0]:,.0f} | {r[1]:.2f} | {r[2]} | {r[3]} |")
        print(f"\nGateway / direct (GET): {via[0] / direct[0]:.2f}. During the GETs the servers counted"
              f" {h1 - h0:,} cache hits and {m1 - m0:,} misses.")
    finally:
        subprocess.run([COVE, "down"], env=env, capture_output=True)
        shutil.rmtree(state, ignore_errors=True)


main()
