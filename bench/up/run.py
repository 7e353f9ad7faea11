#!/usr/bin/env python3
"""bench/up: what the daemon costs.

1. `cove up -d` until all ten services of compose.yaml are healthy, against
   start.sh starting the same processes by hand: ROUNDS rounds, interleaved
   (cove, script, cove, ...); medians and min–max of each, and the ratio
   cove / script of each round, with its median and min–max.
2. The daemon at rest with those ten services up: RSS and CPU over IDLE seconds.
3. 1,000 trivial replicas (`sleep`; 40 services of 25, natively a service
   runs at most 31): time to all running, then the daemon's
   RSS and CPU at rest, and `cove down` time.

Measurements only; nothing is asserted. Every process started is stopped by
PID (or by `cove down`). Usage: python3 bench/up/run.py [ROUNDS] [IDLE]
(`COVE_BIN=PATH` measures that build instead of this checkout's).
"""
import json, os, shutil, signal, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
IDLE = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
TICK = os.sysconf("SC_CLK_TCK")

# COVE_BIN: another build to measure (bench/core compares two), else
# this checkout's release build.
COVE = os.environ.get("COVE_BIN")
if not COVE:
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "cove"], cwd=ROOT, check=True)
    COVE = os.path.join(ROOT, "target", "release", "cove")


def cove(d, *args, check=True):
    r = subprocess.run([COVE, *args], cwd=d, capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        sys.exit(f"`cove {' '.join(args)}` exited {r.returncode}:\n{r.stdout}{r.stderr}")
    return r


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def at_rest(pid, seconds):
    c0, t0 = cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_s(pid), time.monotonic()
    return rss_kib(pid), 100.0 * (c1 - c0) / (t1 - t0)


def daemon_pid(d):
    return int(open(os.path.join(d, ".cove", "daemon.pid")).read())


def reaper_pid(d):
    """The daemon's reaper (`cove __reaper --state-dir <d>/.cove`)."""
    want = f"__reaper\0--state-dir\0{os.path.realpath(os.path.join(d, '.cove'))}\0".encode()
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if want in open(f"/proc/{p}/cmdline", "rb").read():
                    return int(p)
            except OSError:
                pass
    return None


def up_round(d):
    t = time.monotonic()
    cove(d, "up", "-d")
    took = time.monotonic() - t
    cove(d, "down")
    return took


def shell_round(d):
    pids = os.path.join(d, "pids")
    t = time.monotonic()
    subprocess.run(["bash", os.path.join(HERE, "start.sh"), pids], check=True, timeout=120)
    took = time.monotonic() - t
    for p in open(pids).read().split():
        try:
            os.kill(int(p), signal.SIGTERM)
        except ProcessLookupError:
            pass
    for p in open(pids).read().split():
        end = time.monotonic() + 10
        while os.path.exists(f"/proc/{p}") and time.monotonic() < end:
            try:
                os.waitpid(int(p), os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.01)
            try:
                if open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            except OSError:
                break
    return took


def main():
    work = tempfile.mkdtemp(prefix="cove-bench-up-")
    try:
        app = os.path.join(work, "ten")
        os.makedirs(app)
        shutil.copy(os.path.join(HERE, "compose.yaml"), app)
        cove(app, "up", "-d")  # warm-up (also checks the fixture)
        cove(app, "down")
        ups, shells = [], []
        for _ in range(ROUNDS):
            ups.append(up_round(app))
            shells.append(shell_round(work))
        ratios = [a / b for a, b in zip(ups, shells)]
        mu, ms = statistics.median(ups), statistics.median(shells)
        print(f"10 services, 4 tiers, to all healthy ({ROUNDS} interleaved rounds):")
        print(f"  cove up -d   median {mu*1000:5.0f} ms  (min {min(ups)*1000:.0f}, max {max(ups)*1000:.0f})")
        print(f"  start.sh     median {ms*1000:5.0f} ms  (min {min(shells)*1000:.0f}, max {max(shells)*1000:.0f})")
        print(f"  ratio cove / start.sh per round: median {statistics.median(ratios):.2f}"
              f" (min {min(ratios):.2f}, max {max(ratios):.2f}); ratio of the medians {mu/ms:.2f}")

        cove(app, "up", "-d")
        pid = daemon_pid(app)
        rss, cpu = at_rest(pid, IDLE)
        reaper = rss_kib(reaper_pid(app))
        print(f"daemon at rest, 10 services up ({IDLE:.0f} s): RSS {rss/1024:.1f} MiB, CPU {cpu:.2f} %;"
              f" its reaper RSS {reaper/1024:.1f} MiB")
        cove(app, "down")

        many = os.path.join(work, "many")
        os.makedirs(many)
        with open(os.path.join(many, "compose.yaml"), "w") as f:
            # Natively a service runs at most 31 replicas: 40 services of 25.
            f.write("services:\n" + "".join(
                f"  tiny{i}:\n    x-cove:\n      run: [sleep, '3600']\n    deploy: {{replicas: 25}}\n"
                for i in range(40)))
        t = time.monotonic()
        out = cove(many, "up", "-d")
        started = time.monotonic() - t
        rows = json.loads(cove(many, "ps", "--format", "json").stdout)
        running = sum(1 for r in rows if r["state"] == "running")
        pid = daemon_pid(many)
        rss, cpu = at_rest(pid, IDLE)
        t = time.monotonic()
        cove(many, "down")
        down = time.monotonic() - t
        print(f"1,000 replicas of `sleep` (40 services x 25): up -d {started:.2f} s (exit {out.returncode}, {running} running);"
              f" daemon at rest RSS {rss/1024:.1f} MiB, CPU {cpu:.2f} %; down {down:.2f} s")
    finally:
        for d in ("ten", "many"):
            p = os.path.join(work, d)
            if os.path.isdir(p):
                cove(p, "down", check=False)
        shutil.rmtree(work, ignore_errors=True)


main()
