#!/usr/bin/env python3
"""bench/reliability: does cove drop requests while it changes a running app?

A three-replica Python HTTP service behind cove's gateway is kept under
continuous load (N threads, keep-alive, 3 GETs per POST) while cove rolls
through six phases, in order:

  1. baseline       5 s of load, nothing happening
  2. deploy         VERSION 2, `cove deploy web` (must exit 0)
  3. scale 3→5→2    `cove scale web=5`, wait for 5 healthy, `cove scale web=2`
  4. rollback       `cove rollback web` (back to revision 1; must exit 0)
  5. failed deploy  VERSION 3 with a failing health check, `cove deploy web`
                    (must exit 1: rolled back by itself); the file is then
                    restored to VERSION 1 (no deploy)
  6. SIGKILL        every second for 20 s, SIGKILL one running replica
                    (`restart: always` brings it back); before it, outside
                    any phase, `cove scale web=3`

Every request counts into the phase current when it started: ok (status 200)
or failed (another status, or an exception), for GET and POST separately.
A phase lasts as long as its cove command(s), plus ~1 s of load before and
after. Goal: 0 failed requests in every phase except SIGKILL, where GET
failures must be 0 and POST failures at most 0.1 %.

Usage: python3 bench/reliability/run.py [--threads 8] [--reps 1]
           [--json out.json] [--logs DIR] [--no-build]
Exits non-zero when a cove command fails unexpectedly or the goal is not met
(the table is printed either way). Every rep runs in a fresh temp directory
and ends with `cove down` (also on failure).
"""
import argparse, collections, http.client, json, os, random, shutil, signal
import subprocess, sys, tempfile, threading, time, urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
# COVE_BIN: another build to measure (bench/core compares two).
COVE = os.environ.get("COVE_BIN") or os.path.join(ROOT, "target", "release", "cove")

SERVER_PY = '''\
import http.server, os, socket
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def setup(self):
        super().setup()
        # Head and body go out as two writes: without this, Nagle's
        # algorithm and the peer's delayed ACK hold each answer 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    def do_GET(self): self.answer()
    def do_POST(self):
        n = int(self.headers.get("content-length") or 0); self.rfile.read(n); self.answer()
    def answer(self):
        broken = os.environ.get("BROKEN") == "1"
        code = 500 if (self.path == "/healthz" and broken) else 200
        body = ("v" + os.environ["VERSION"]).encode()
        self.send_response(code); self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
'''

COMPOSE = '''\
services:
  web:
    x-cove:
      run: python3 server.py
      health: {{http: /healthz}}
    environment: {{VERSION: "{version}", BROKEN: "{broken}"}}
    expose: ["8000"]
    restart: always
    deploy:
      replicas: 3
      update_config: {{parallelism: 1, order: start-first}}
    healthcheck: {{interval: 1s, timeout: 1s, retries: 2, start_period: 5s, start_interval: 100ms}}
x-cove:
  gateway: {{listen: "127.0.0.1:0"}}
'''

PHASES = ["baseline", "deploy", "scale 3→5→2", "rollback", "failed deploy", "SIGKILL"]
SETUP = "(setup: scale 2→3)"  # between phases 5 and 6; shown, not judged

DEADLINE_S = 600.0          # per rep: load threads stop by themselves after this
MAX_REQUESTS = 5_000_000    # per rep, all threads together
CMD_TIMEOUT_S = 300
PAD_S = 1.0                 # load before and after each phase's commands


class CoveError(Exception):
    pass


def cove(app, *args, expect=(0,)):
    """Run `cove ARGS` in app; raise CoveError unless its exit code is expected."""
    try:
        p = subprocess.run([COVE, *args], cwd=app, capture_output=True, text=True,
                           timeout=CMD_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise CoveError(f"`cove {' '.join(args)}` timed out after {CMD_TIMEOUT_S} s") from e
    if expect is not None and p.returncode not in expect:
        raise CoveError(f"`cove {' '.join(args)}` exited {p.returncode} (expected {list(expect)}):\n"
                        f"{p.stdout}{p.stderr}".rstrip())
    return p


def write_compose(app, version, broken):
    tmp = os.path.join(app, "compose.yaml.tmp")
    with open(tmp, "w") as f:
        f.write(COMPOSE.format(version=version, broken=broken))
    os.replace(tmp, os.path.join(app, "compose.yaml"))


def web_replicas(app):
    rows = json.loads(cove(app, "ps", "--format", "json").stdout)
    return [r for r in rows if r.get("service") == "web"]


def wait_healthy(app, n, timeout=60.0):
    """Poll `cove ps` until exactly n live web replicas are running and healthy."""
    end = time.monotonic() + timeout
    while True:
        reps = web_replicas(app)
        live = [r for r in reps if not r.get("retiring")]
        good = [r for r in live if r.get("state") == "running" and r.get("health") == "healthy"]
        if len(good) == n and len(live) == n:
            return
        if time.monotonic() > end:
            raise CoveError(f"not {n} healthy web replicas after {timeout:.0f} s: "
                            + ", ".join(f"web-{r.get('replica')} r{r.get('revision')} {r.get('state')}/"
                                        f"{r.get('health')}{' retiring' if r.get('retiring') else ''}"
                                        for r in reps))
        time.sleep(0.2)


class Load:
    """N threads of keep-alive HTTP/1.1 to the gateway; 3 GETs per POST."""

    def __init__(self, host, port, threads, deadline_s, max_requests):
        self.host, self.port = host, port
        self.nthreads = threads
        self.deadline = time.monotonic() + deadline_s
        self.max_requests = max_requests
        self.phase = None           # name of the bucket requests count into now
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent = 0
        self.counts = collections.defaultdict(lambda: collections.Counter())
        self.errors = collections.defaultdict(lambda: collections.Counter())
        self.versions = collections.defaultdict(lambda: collections.Counter())
        self.first_errors = collections.defaultdict(list)
        self.threads = []

    def start(self):
        for i in range(self.nthreads):
            t = threading.Thread(target=self.worker, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)

    def record(self, phase, method, ok, version=None, err=None):
        with self.lock:
            self.counts[phase][f"{method} {'ok' if ok else 'failed'}"] += 1
            if version is not None:
                self.versions[phase][version] += 1
            if err is not None:
                self.errors[phase][f"{method} {err}"] += 1
                if len(self.first_errors[phase]) < 20:
                    self.first_errors[phase].append(
                        f"{time.strftime('%H:%M:%S')} {method} {err}")

    def worker(self, i):
        conn = None
        n = i  # staggers the GET/POST pattern between threads
        body = b'{"n": 1, "pad": "xxxxxxxxxxxxxxxx"}'
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            with self.lock:
                if self.sent >= self.max_requests:
                    break
                self.sent += 1
            phase = self.phase
            method = "POST" if n % 4 == 3 else "GET"
            n += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=15)
                if method == "GET":
                    conn.request("GET", "/", headers={"Host": "web.localhost"})
                else:
                    conn.request("POST", "/", body=body,
                                 headers={"Host": "web.localhost",
                                          "Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                if resp.status == 200:
                    self.record(phase, method, True, version=data.decode(errors="replace")[:16])
                else:
                    self.record(phase, method, False,
                                err=f"status {resp.status}: {data[:120]!r}")
                if resp.will_close:
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001 - every failure counts
                self.record(phase, method, False, err=f"{type(e).__name__}: {e}"[:160])
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()


def run_rep(rep, args):
    """One fresh app through every phase. Returns (rows, verdict, problems)."""
    app = tempfile.mkdtemp(prefix=f"cove-bench-reliability-{rep}-")
    durations = {}
    notes = collections.defaultdict(list)
    problems = []
    load = None
    try:
        with open(os.path.join(app, "server.py"), "w") as f:
            f.write(SERVER_PY)
        write_compose(app, 1, 0)
        cove(app, "up", "-d")
        routes = json.loads(cove(app, "routes", "--format", "json").stdout)
        u = urllib.parse.urlsplit(routes["url"])
        if u.hostname not in ("127.0.0.1", "::1", "localhost"):
            raise CoveError(f"gateway is not on loopback: {routes['url']}")
        load = Load(u.hostname, u.port, args.threads, DEADLINE_S, MAX_REQUESTS)
        load.phase = "(warm-up)"
        load.start()
        time.sleep(1.0)

        def phase(name, body):
            load.phase = name
            t = time.monotonic()
            try:
                time.sleep(PAD_S)
                body()
                time.sleep(PAD_S)
            finally:
                durations[name] = time.monotonic() - t
                load.phase = "(between)"

        def baseline():
            time.sleep(5.0 - 2 * PAD_S)

        def deploy():
            write_compose(app, 2, 0)
            cove(app, "deploy", "web", "--message", "v2")

        def scale():
            cove(app, "scale", "web=5")
            wait_healthy(app, 5)
            cove(app, "scale", "web=2")

        def rollback():
            cove(app, "rollback", "web")
            revs = sorted({r.get("revision") for r in web_replicas(app) if not r.get("retiring")})
            notes["rollback"].append(f"revisions after: {revs}")

        def failed_deploy():
            write_compose(app, 3, 1)
            p = cove(app, "deploy", "web", "--message", "v3 broken", expect=(1,))
            tail = [l for l in (p.stdout + p.stderr).splitlines() if l.strip()][-1:]
            notes["failed deploy"].append(f"deploy exit {p.returncode}: {' '.join(tail)}"[:200])
            write_compose(app, 1, 0)

        def sigkill():
            kills = 0
            end = time.monotonic() + 20.0
            nxt = time.monotonic()
            seen = []  # running/healthy web replicas just before each kill
            while time.monotonic() < end:
                reps = web_replicas(app)
                running = [r for r in reps if r.get("state") == "running" and r.get("pid")]
                healthy = [r for r in running if r.get("health") == "healthy"]
                seen.append(f"{len(running)}/{len(healthy)}")
                if running:
                    victim = random.choice(running)
                    try:
                        os.kill(int(victim["pid"]), signal.SIGKILL)
                        kills += 1
                    except ProcessLookupError:
                        pass
                nxt += 1.0
                time.sleep(max(0.0, nxt - time.monotonic()))
            restarts = {f"web-{r.get('replica')}": r.get("restarts") for r in web_replicas(app)}
            notes["SIGKILL"].append(f"{kills} replicas killed; running/healthy before each kill: "
                                    f"{' '.join(seen)}; restarts after: {restarts}")

        phase("baseline", baseline)
        phase("deploy", deploy)
        phase("scale 3→5→2", scale)
        phase("rollback", rollback)
        phase("failed deploy", failed_deploy)
        load.phase = SETUP
        t = time.monotonic()
        cove(app, "scale", "web=3")
        wait_healthy(app, 3)
        durations[SETUP] = time.monotonic() - t
        phase("SIGKILL", sigkill)
        load.phase = "(after)"
        time.sleep(0.5)
    except CoveError as e:
        problems.append(str(e))
    except Exception as e:  # noqa: BLE001 - still print what was measured
        problems.append(f"{type(e).__name__}: {e}")
    finally:
        if load is not None:
            load.finish()
        if args.logs:
            os.makedirs(args.logs, exist_ok=True)
            for what, cmd in (("logs", ["logs", "-t"]), ("ps", ["ps"]), ("history", ["history", "web"])):
                try:
                    p = subprocess.run([COVE, *cmd], cwd=app, capture_output=True, text=True, timeout=60)
                    with open(os.path.join(args.logs, f"rep{rep}-{what}.txt"), "w") as f:
                        f.write(p.stdout + p.stderr)
                except Exception:  # noqa: BLE001
                    pass
            dlog = os.path.join(app, ".cove", "daemon.log")
            if os.path.exists(dlog):
                shutil.copy(dlog, os.path.join(args.logs, f"rep{rep}-daemon.log"))
        try:
            cove(app, "down", expect=None)
        finally:
            shutil.rmtree(app, ignore_errors=True)

    rows = []
    for name in PHASES[:5] + [SETUP, "SIGKILL"]:
        if load is None or (name not in durations and not load.counts.get(name)):
            continue
        c = load.counts[name]
        total = sum(c.values())
        failed = c["GET failed"] + c["POST failed"]
        rows.append({
            "phase": name,
            "duration_s": round(durations.get(name, 0.0), 1),
            "get_ok": c["GET ok"], "get_failed": c["GET failed"],
            "post_ok": c["POST ok"], "post_failed": c["POST failed"],
            "failed_pct": round(100.0 * failed / total, 3) if total else 0.0,
            "versions": dict(load.versions[name]),
            "errors": dict(load.errors[name]),
            "first_errors": load.first_errors[name],
            "notes": notes.get(name, []),
            "judged": name != SETUP,
        })
    verdict = []
    ok = not problems
    by = {r["phase"]: r for r in rows}
    for name in PHASES:
        r = by.get(name)
        if r is None:
            verdict.append(f"{name}: not run")
            ok = False
            continue
        if name == "SIGKILL":
            posts = r["post_ok"] + r["post_failed"]
            pct = 100.0 * r["post_failed"] / posts if posts else 0.0
            met = r["get_failed"] == 0 and pct <= 0.1
            verdict.append(f"{name}: {'met' if met else 'NOT met'} (GET failed {r['get_failed']}, "
                           f"POST failed {r['post_failed']} = {pct:.3f} % of POSTs; limit 0 / 0.1 %)")
        else:
            failed = r["get_failed"] + r["post_failed"]
            met = failed == 0
            verdict.append(f"{name}: {'met' if met else 'NOT met'} ({failed} failed; limit 0)")
        ok = ok and met
    return rows, verdict, problems, ok


def table(rows):
    out = ["| phase | duration s | GET ok | GET failed | POST ok | POST failed | failed % |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['phase']} | {r['duration_s']:.1f} | {r['get_ok']:,} | {r['get_failed']:,} | "
                   f"{r['post_ok']:,} | {r['post_failed']:,} | {r['failed_pct']:.3f} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--json", help="write the tables as JSON here")
    ap.add_argument("--logs", help="save `cove logs -t`, ps, history and daemon.log per rep here")
    ap.add_argument("--no-build", action="store_true", help="use target/release/cove as it is")
    args = ap.parse_args()
    if not args.no_build and not os.environ.get("COVE_BIN"):
        subprocess.run(["nice", "-n", "10", "cargo", "build", "-q", "--release", "-p", "cove"],
                       cwd=ROOT, check=True)

    results, all_ok = [], True
    for rep in range(1, args.reps + 1):
        t0 = time.strftime("%Y-%m-%d %H:%M:%S")
        rows, verdict, problems, ok = run_rep(rep, args)
        all_ok = all_ok and ok
        print(f"\n## run {rep}/{args.reps} ({t0}, {args.threads} threads)\n")
        print(table(rows))
        print()
        for r in rows:
            extra = []
            if r["versions"]:
                extra.append("served " + ", ".join(f"{v} ×{n:,}" for v, n in sorted(r["versions"].items())))
            extra += r["notes"]
            if r["errors"]:
                extra.append("failures: " + "; ".join(f"{n:,}× {e}" for e, n in
                                                     sorted(r["errors"].items(), key=lambda x: -x[1])))
            if extra:
                print(f"- {r['phase']}: " + " | ".join(extra))
        print()
        for p in problems:
            print(f"PROBLEM: {p}")
        for v in verdict:
            print(f"- {v}")
        print(f"verdict run {rep}: {'goal met' if ok else 'goal NOT met'}")
        sys.stdout.flush()
        results.append({"rep": rep, "started": t0, "threads": args.threads, "rows": rows,
                        "verdict": verdict, "problems": problems, "goal_met": ok})
    print(f"\noverall: {'goal met in every run' if all_ok else 'goal NOT met'} ({args.reps} run(s))")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "reps": args.reps, "goal_met": all_ok,
                       "runs": results}, f, indent=2, ensure_ascii=False)
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
