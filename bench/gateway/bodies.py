#!/usr/bin/env python3
"""Long bodies through a proxy, side by side: direct, nginx, HAProxy and one or more cove binaries.

Usage:
    python3 bench/gateway/bodies.py --cove copy=/tmp/cove-fast4 --cove splice=/tmp/cove-splice \
        [--reps 3] [--duration 5] [--scenarios get1m,get64k,post1m] [--json-out FILE] [--shared]

Starts two upstream nginx instances (1 worker each, 127.0.0.1 only) serving a 1 MiB file at /1m,
a 64 KiB one at /64k and taking a 1 MiB upload at POST /sink (the upstream reads the whole body
before it answers: /sink is proxied, body not passed on, to a tiny `return 200` server of the
same nginx on base+3/base+4, so nginx buffers the request body first; checked at start), then for each
rep, scenario and target runs wrk -t1 -c10 -d5s (keep-alive) and reports, median (min-max) over the
interleaved reps: requests/s, MiB/s of body moved, the proxy's CPU time (utime+stime of its process
tree from /proc) per request and per GiB of body, p99 latency, errors and non-2xx answers (wrk's
read/write/connect/timeout errors and status >= 400), and the proxy's RSS (max of 0.5 s samples).
Pinned by default: proxy (1 worker/thread) and both upstreams on CPU 0, wrk alone on CPU 1 (`--shared`:
nothing pinned, proxies with one worker/thread per CPU). Processes outside this script are sampled
during every run (CPU of the box minus this script's process tree, as in ../shared/bench/proxy);
a run where they used more than --noisy-pct of a core is flagged noisy and retried once.
nginx as the proxy runs with its defaults for buffering (proxy_buffering on, proxy_request_buffering
on, client_body_buffer_size 16k, proxy_buffers 8 4k: a 1 MiB body spills to a temp file under the
temp dir; --nginx-big-buffers keeps it in memory instead); HAProxy 1 thread, http-keep-alive,
no splice option (its default); cove `gateway --threads 1 --policy round-robin`.
Every process is started here, stopped by pid at exit (also on Ctrl-C / SIGTERM); every wait is
bounded; the script refuses to start if one of its ports is taken (see --base-port).

Needs nginx, haproxy and wrk (and taskset from util-linux):
    apt-get install -y nginx-light haproxy wrk
Python 3 standard library only.
"""
import argparse
import atexit
import http.client
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
NPROC = os.cpu_count() or 1
MIB = 1024 * 1024
GIB = 1024 * MIB

# scenario -> (method, path, body bytes moved per request, in which direction)
SCENARIOS = {
    "get1m": ("GET", "/1m", MIB, "download 1 MiB"),
    "get64k": ("GET", "/64k", 64 * 1024, "download 64 KiB"),
    "post1m": ("POST", "/sink", MIB, "upload 1 MiB"),
}

REPORT_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BODIESJSON {"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,' ..
    '"err_write":%d,"err_status":%d,"err_timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""

UPLOAD_LUA = r"""
wrk.method = "POST"
wrk.body = string.rep("x", %d)
wrk.headers["Content-Type"] = "application/octet-stream"
"""


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ /proc accounting
def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rfind(")") + 2:].split()


def children_map():
    m = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                m.setdefault(int(_stat_fields(d)[1]), []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return m


def tree(pid):
    """pid and its descendants."""
    m = children_map()
    out, todo = [], [pid]
    while todo and len(out) < 10000:
        p = todo.pop()
        if os.path.exists(f"/proc/{p}"):
            out.append(p)
            todo.extend(m.get(p, []))
    return out


def cpu_ticks(pids):
    tot = 0
    for p in pids:
        try:
            f = _stat_fields(p)
            tot += int(f[11]) + int(f[12])
        except (OSError, ValueError, IndexError):
            pass
    return tot


def rss_kb(pids):
    tot = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/statm") as f:
                tot += int(f.read().split()[1]) * PAGE_KB
        except (OSError, ValueError, IndexError):
            pass
    return tot


def busy_jiffies():
    """user+nice+system of the whole box (softirq left out: loopback traffic of the run lands there)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2]


def own_jiffies():
    """This script, its reaped children (wrk) and its live descendants."""
    me = os.getpid()
    f = _stat_fields(me)
    return int(f[11]) + int(f[12]) + int(f[13]) + int(f[14]) + cpu_ticks([p for p in tree(me) if p != me])


def foreign_snapshot():
    return busy_jiffies(), own_jiffies()


def foreign_pct(f0, f1, seconds):
    """Share of one core used by processes not started here, between two snapshots."""
    return 100.0 * max(0, (f1[0] - f0[0]) - (f1[1] - f0[1])) / CLK_TCK / seconds if seconds > 0 else 0.0


def per_cpu():
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu"):
                break
            parts = line.split()
            v = [int(x) for x in parts[1:]]
            out[parts[0]] = (sum(v), v[3] + v[4])
    return out


def busy_pct(s0, s1, key):
    tot = s1[key][0] - s0[key][0]
    return 100.0 * (tot - (s1[key][1] - s0[key][1])) / tot if tot else 0.0


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ------------------------------------------------------------------ processes
class Proc:
    """A process started here, stopped by its pid (and its descendants by theirs)."""

    def __init__(self, name, argv, tmp, cpus=None):
        self.name = name
        if cpus is not None:
            argv = ["taskset", "-c", cpus] + argv  # taskset execs: same pid
        self.logpath = os.path.join(tmp, f"{name}.log")
        self.logf = open(self.logpath, "ab")
        log(f"start {name}: {' '.join(shlex.quote(a) for a in argv)}")
        self.p = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def pids(self):
        return tree(self.pid) if self.alive() else []

    def stop(self):
        if not self.alive():
            self.logf.close()
            return
        kids = tree(self.pid)
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log(f"{self.name} ignored SIGTERM: SIGKILL pid {self.pid}")
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.p.wait(timeout=5)
        for k in kids:
            if k != self.pid and os.path.exists(f"/proc/{k}"):
                try:
                    os.kill(k, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.logf.close()
        log(f"stopped {self.name} (pid {self.pid})")


STARTED = []  # Proc, in start order
WRK = []  # the running wrk Popen, if any


def stop_everything():
    for w in list(WRK):
        if w.poll() is None:
            try:
                os.kill(w.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            w.wait(timeout=5)
        WRK.remove(w)
    for p in reversed(list(STARTED)):
        p.stop()
        STARTED.remove(p)


def pin(pids, cpus):
    for p in pids:
        subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(p)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)


def port_free(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def http_get(port, path, timeout=3):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.getheader("X-Upstream"), r.read()
    finally:
        c.close()


def http_post(port, path, body, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", path, body=body, headers={"Content-Type": "application/octet-stream"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_ready(name, port, proc, sizes, timeout=20.0, both=True):
    """Until GET /64k and /1m answer 200 with their full bodies and (through a proxy) both upstreams
    have answered; then one full upload must answer 200 "ok"."""
    t0 = time.time()
    last = None
    while time.time() - t0 < timeout:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{name} exited early; see {proc.logpath}")
        try:
            seen = set()
            for i in range(6 if both else 1):
                for path, n in sizes.items():
                    st, up, body = http_get(port, path)
                    if st != 200 or len(body) != n:
                        raise RuntimeError(f"GET {path}: {st}, {len(body)} bytes (want 200, {n})")
                    seen.add(up)
            if both and not {"1", "2"} <= seen:
                raise RuntimeError(f"not both upstreams answered: {seen}")
            st, body = http_post(port, "/sink", b"y" * MIB)
            if st != 200 or body.strip() != b"ok":
                raise RuntimeError(f"POST /sink: {st} {body[:60]!r}")
            return
        except (OSError, RuntimeError, http.client.HTTPException) as ex:
            last = ex
            time.sleep(0.3)
    raise RuntimeError(f"{name} on :{port} not ready after {timeout:.0f}s: {last}")


def check_sink_reads_body(port):
    """The upstream must not answer POST /sink before it has the whole body: send the head and half
    the body, expect silence, send the rest, expect 200."""
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    try:
        s.sendall(b"POST /sink HTTP/1.1\r\nHost: bench\r\nContent-Length: %d\r\n\r\n" % MIB + b"z" * (MIB // 2))
        s.settimeout(0.5)
        try:
            early = s.recv(100)
        except socket.timeout:
            early = b""
        if early:
            raise RuntimeError(f"upstream answered POST /sink before the body was complete: {early[:60]!r}")
        s.settimeout(5)
        s.sendall(b"z" * (MIB - MIB // 2))
        got = s.recv(200)
        if not got.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"upstream POST /sink after the whole body: {got[:60]!r}")
    finally:
        s.close()


# ------------------------------------------------------------------ configs
def nginx_dirs(tmp, name):
    d = os.path.join(tmp, f"ngx-{name}")
    os.makedirs(d, exist_ok=True)
    head = f"daemon off;\nmaster_process on;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n"
    temps = (f"  client_body_temp_path {d}/cb;\n  proxy_temp_path {d}/pt;\n  fastcgi_temp_path {d}/ft;\n"
             f"  uwsgi_temp_path {d}/ut;\n  scgi_temp_path {d}/st;\n")
    return head, temps, d


def write_conf(d, text, name="nginx.conf"):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def upstream_argv(tmp, idx, port, ok_port, www):
    head, temps, d = nginx_dirs(tmp, f"up{idx}")
    conf = f"""{head}worker_processes 1;
events {{ worker_connections 4096; }}
http {{
{temps}  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  default_type application/octet-stream;
  upstream ok {{ server 127.0.0.1:{ok_port}; keepalive 16; }}
  server {{
    listen 127.0.0.1:{ok_port};
    access_log off;
    location / {{ return 200 "ok"; }}
  }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    root {www};
    add_header X-Upstream {idx} always;
    location = /sink {{
      # read (buffer in memory) the whole body, then answer: a bodyless request to the server above
      client_max_body_size 2m;
      client_body_buffer_size 2m;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Content-Length "";
      proxy_pass_request_body off;
      proxy_pass http://ok/ok;
    }}
  }}
}}
"""
    path = write_conf(d, conf)
    return ["nginx", "-p", d, "-e", f"{d}/error.log", "-c", path]


def nginx_proxy_argv(tmp, port, ups, threads, big_buffers):
    head, temps, d = nginx_dirs(tmp, "proxy")
    # defaults: a request body over client_body_buffer_size (16k) and an answer over proxy_buffers
    # (8 x 4k) + proxy_busy_buffers_size go through temp files on disk
    bufs = ("  client_body_buffer_size 2m;\n  proxy_buffers 32 64k;\n  proxy_busy_buffers_size 128k;\n"
            if big_buffers else "")
    servers = "".join(f"    server 127.0.0.1:{u};\n" for u in ups)
    conf = f"""{head}worker_processes {threads};
events {{ worker_connections 4096; }}
http {{
{temps}  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_max_body_size 2m;
{bufs}  upstream ups {{
{servers}    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
  }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      # proxy_buffering and proxy_request_buffering: defaults (on)
      proxy_pass http://ups;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""
    path = write_conf(d, conf)
    return ["nginx", "-p", d, "-e", f"{d}/error.log", "-c", path]


def haproxy_argv(tmp, port, ups, threads):
    d = os.path.join(tmp, "haproxy")
    os.makedirs(d, exist_ok=True)
    servers = "".join(f"  server u{i + 1} 127.0.0.1:{u}\n" for i, u in enumerate(ups))
    conf = f"""global
  nbthread {threads}
  maxconn 4000
  pidfile {d}/haproxy.pid

defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout http-keep-alive 120s
  option http-keep-alive
  http-reuse always

frontend fe
  bind 127.0.0.1:{port} backlog 4096
  default_backend be

backend be
  balance roundrobin
{servers}"""
    path = write_conf(d, conf, "haproxy.cfg")
    chk = subprocess.run(["haproxy", "-c", "-q", "-f", path], capture_output=True, text=True, timeout=30)
    if chk.returncode != 0:
        raise RuntimeError("haproxy config check failed:\n" + chk.stdout + chk.stderr)
    return ["haproxy", "-db", "-f", path]


def cove_argv(binary, port, ups, threads):
    argv = [binary, "gateway", "--listen", f"127.0.0.1:{port}"]
    for u in ups:
        argv += ["--upstream", f"127.0.0.1:{u}"]
    return argv + ["--threads", str(threads), "--policy", "round-robin"]


# ------------------------------------------------------------------ load
def run_wrk(args, tmp, port, scen, cpus, duration, label):
    method, path, _, _ = SCENARIOS[scen]
    lua = os.path.join(tmp, f"wrk-{scen}.lua")
    argv = ["wrk", "-t1", f"-c{args.connections}", f"-d{duration}s", "--latency", "--timeout", "5s",
            "-s", lua, f"http://127.0.0.1:{port}{path}"]
    if cpus is not None:
        argv = ["taskset", "-c", cpus] + argv
    w = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL)
    WRK.append(w)
    try:
        out, err = w.communicate(timeout=duration + 30)
    except BaseException as ex:  # timed out, or interrupted (Ctrl-C): stop this wrk by its pid
        if w.poll() is None:
            os.kill(w.pid, signal.SIGKILL)
            w.wait(timeout=5)
        if isinstance(ex, subprocess.TimeoutExpired):
            raise RuntimeError(f"wrk did not finish: {label}") from ex
        raise
    finally:
        WRK.remove(w)
    with open(os.path.join(tmp, "wrk.log"), "a") as f:
        f.write(f"### {label}\n$ {' '.join(shlex.quote(a) for a in argv)}\n{out}{err}\n")
    for line in out.splitlines():
        if line.startswith("BODIESJSON "):
            res = json.loads(line[len("BODIESJSON "):])
            # wrk prints "Non-2xx or 3xx responses: N" for status >= 300 (its summary.errors.status counts
            # >= 400 only): take the larger
            for l2 in out.splitlines():
                if "Non-2xx or 3xx responses:" in l2:
                    res["err_status"] = max(res["err_status"], int(l2.rsplit(":", 1)[1]))
            return res
    raise RuntimeError(f"wrk gave no result (rc={w.returncode}): {out[-400:]} {err[-400:]}")


def measure(args, tmp, port, scen, watch, cpus, label):
    """One wrk run; CPU and RSS of the process tree under test, other processes' CPU."""
    samples = []
    stop = threading.Event()

    def sampler():
        while not stop.wait(0.5):
            samples.append(rss_kb(watch()))

    th = threading.Thread(target=sampler, daemon=True)
    f0 = foreign_snapshot()
    c0 = cpu_ticks(watch())
    s0 = per_cpu()
    th.start()
    try:
        res = run_wrk(args, tmp, port, scen, cpus, args.duration, label)
    finally:
        stop.set()
        th.join(timeout=5)
    c1 = cpu_ticks(watch())
    s1 = per_cpu()
    f1 = foreign_snapshot()
    dur = res["duration_us"] / 1e6
    n = res["requests"]
    body = SCENARIOS[scen][2]
    cpu_s = (c1 - c0) / CLK_TCK
    moved = n * body
    res.update({
        "rps": n / dur if dur else 0.0,
        "mib_s": moved / MIB / dur if dur else 0.0,
        "cpu_s": cpu_s,
        "cpu_us_per_req": 1e6 * cpu_s / n if n else 0.0,
        "cpu_ms_per_gib": 1e3 * cpu_s / (moved / GIB) if moved else 0.0,
        "rss_max_kb": max(samples) if samples else rss_kb(watch()),
        "cpu_busy_pct": [busy_pct(s0, s1, f"cpu{i}") for i in range(NPROC) if f"cpu{i}" in s1],
        "foreign_cpu_pct": foreign_pct(f0, f1, dur),
        "errors": res["err_connect"] + res["err_read"] + res["err_write"] + res["err_timeout"],
        "non2xx": res["err_status"],
        # a download whose bytes read fall short of the bodies counted is a broken run
        "short_read": scen.startswith("get") and res["bytes"] < moved,
    })
    return res


def wait_quiet(args, budget):
    """Wait (bounded) until other processes use at most --noisy-pct of a core; returns seconds waited."""
    t0 = time.time()
    for i in range(1000):
        f0 = foreign_snapshot()
        time.sleep(1.0)
        pct = foreign_pct(f0, foreign_snapshot(), 1.0)
        if pct <= args.noisy_pct or time.time() - t0 >= budget:
            if i and pct > args.noisy_pct:
                log(f"still {pct:.0f}% of a core used by other processes; measuring anyway")
            break
        if i == 0:
            log(f"box busy ({pct:.0f}% of a core used by other processes): waiting up to {budget:.0f}s")
    return time.time() - t0


# ------------------------------------------------------------------ report
def med(xs):
    return statistics.median(xs) if xs else float("nan")


def cell(xs, fmt):
    return f"{fmt.format(med(xs))} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"


def table(results, targets, scenarios):
    groups = {}
    for r in results:
        groups.setdefault((r["scenario"], r["target"]), []).append(r)
    lines = ["| scenario | target | req/s | MiB/s (body) | CPU µs/req | CPU ms/GiB | p99 ms | err/non-2xx "
             "| RSS MiB | noisy |", "|---|---|---|---|---|---|---|---|---|---|"]
    for scen in scenarios:
        for t in targets:
            g = groups.get((scen, t))
            if not g:
                continue
            errs = sum(x["errors"] for x in g) + sum(1 for x in g if x["short_read"])
            lines.append(
                f"| {SCENARIOS[scen][3]} | {t} | {cell([x['rps'] for x in g], '{:,.0f}')} "
                f"| {cell([x['mib_s'] for x in g], '{:,.0f}')} "
                f"| {cell([x['cpu_us_per_req'] for x in g], '{:,.0f}')} "
                f"| {cell([x['cpu_ms_per_gib'] for x in g], '{:,.0f}')} "
                f"| {cell([x['p99_us'] / 1000 for x in g], '{:.1f}')} "
                f"| {errs}/{sum(x['non2xx'] for x in g)} "
                f"| {med([x['rss_max_kb'] / 1024 for x in g]):.1f} "
                f"| {sum(1 for x in g if x['noisy'])}/{len(g)} |")
    return "\n".join(lines)


def version(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return ((r.stdout + r.stderr).strip().splitlines() or ["?"])[0]
    except (OSError, subprocess.TimeoutExpired) as ex:
        return f"n/a ({ex})"


# ------------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cove", action="append", default=[], metavar="NAME=PATH",
                    help="a cove binary to measure as a standalone gateway (repeatable)")
    ap.add_argument("--targets", default="direct,nginx,haproxy,cove",
                    help="comma list of direct,nginx,haproxy,cove (cove = every --cove binary)")
    ap.add_argument("--scenarios", default="get1m,get64k,post1m", help="comma list of get1m,get64k,post1m")
    ap.add_argument("--reps", type=int, default=3, help="repetitions, interleaved across targets (default 3)")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    ap.add_argument("--connections", type=int, default=10, help="wrk -c (default 10; wrk -t1)")
    ap.add_argument("--warmup", type=int, default=1, help="seconds of unrecorded load per target and scenario "
                    "before the first rep (default 1)")
    ap.add_argument("--shared", action="store_true", help="pin nothing; proxies use one worker per CPU")
    ap.add_argument("--base-port", type=int, default=18400,
                    help="upstreams base+1, base+2 (their inner `ok` servers base+3, base+4); nginx base+10, "
                         "haproxy base+11, cove binaries base+20...")
    ap.add_argument("--noisy-pct", type=float, default=10.0,
                    help="a run during which other processes used more than this %% of a core is noisy")
    ap.add_argument("--quiet-wait", type=float, default=20.0,
                    help="before each run wait up to this many s for the box to be quiet (0: don't)")
    ap.add_argument("--quiet-budget", type=float, default=300.0, help="total s all quiet waits may take")
    ap.add_argument("--nginx-big-buffers", action="store_true",
                    help="nginx (the proxy) keeps 1 MiB bodies in memory (client_body_buffer_size 2m, "
                         "proxy_buffers 32 64k) instead of its defaults, which spill them to temp files")
    ap.add_argument("--noisy-retries", type=int, default=1, help="re-run a noisy run up to N times (default 1)")
    ap.add_argument("--cooldown", type=float, default=0.5, help="pause between runs, s")
    ap.add_argument("--json-out", help="write every run and the table to this JSON file")
    args = ap.parse_args()

    for tool in ("nginx", "haproxy", "wrk", "taskset"):
        if not any(os.access(os.path.join(p, tool), os.X_OK) for p in os.environ.get("PATH", "").split(":")):
            sys.exit(f"missing tool: {tool} (apt-get install -y nginx-light haproxy wrk)")
    scenarios = [s for s in args.scenarios.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS:
            sys.exit(f"unknown scenario {s!r} (known: {', '.join(SCENARIOS)})")
    coves = {}
    for spec in args.cove:
        name, sep, path = spec.partition("=")
        if not sep or not name or not os.access(path, os.X_OK):
            sys.exit(f"--cove {spec!r}: want NAME=PATH to an executable")
        if name in ("direct", "nginx", "haproxy") or name in coves:
            sys.exit(f"--cove {spec!r}: name taken")
        coves[name] = os.path.abspath(path)
    kinds = [t for t in args.targets.split(",") if t]
    targets = []
    for k in kinds:
        if k == "cove":
            targets += list(coves)
        elif k in ("direct", "nginx", "haproxy"):
            targets.append(k)
        else:
            sys.exit(f"unknown target {k!r}")
    if not targets:
        sys.exit("no targets")
    pinned = not args.shared
    if pinned and NPROC < 2:
        sys.exit("pinned mode needs 2 CPUs (or --shared)")
    threads = 1 if pinned else NPROC
    proxy_cpus, wrk_cpus = ("0", "1") if pinned else (None, None)

    bp = args.base_port
    up_ports = [bp + 1, bp + 2]
    ports = {"direct": up_ports[0], "nginx": bp + 10, "haproxy": bp + 11}
    for i, name in enumerate(coves):
        ports[name] = bp + 20 + i
    ok_ports = [bp + 3, bp + 4]
    busy = [p for p in up_ports + ok_ports + [ports[t] for t in targets if t != "direct"] if not port_free(p)]
    if busy:
        sys.exit(f"ports in use on 127.0.0.1: {busy} (choose another --base-port)")

    tmp = tempfile.mkdtemp(prefix="cove-bodies.")
    os.chmod(tmp, 0o755)  # nginx workers (user nobody when started as root) read the files under it
    log(f"temp dir: {tmp}")
    www = os.path.join(tmp, "www")
    os.makedirs(www)
    for name, n in (("1m", MIB), ("64k", 64 * 1024)):
        with open(os.path.join(www, name), "wb") as f:
            f.write(os.urandom(n))
    with open(os.path.join(tmp, "wrk-get1m.lua"), "w") as f:
        f.write(REPORT_LUA)
    with open(os.path.join(tmp, "wrk-get64k.lua"), "w") as f:
        f.write(REPORT_LUA)
    with open(os.path.join(tmp, "wrk-post1m.lua"), "w") as f:
        f.write(UPLOAD_LUA % MIB + REPORT_LUA)

    meta = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "nginx": version(["nginx", "-v"]), "haproxy": version(["haproxy", "-v"]), "wrk": version(["wrk", "-v"]),
        "kernel": os.uname().release, "cpus": NPROC, "coves": coves, "ports": ports, "tmp": tmp,
        "mode": "pinned" if pinned else "shared", "nginx_big_buffers": args.nginx_big_buffers,
        "loadavg_before": loadavg(), "args": vars(args),
    }

    atexit.register(stop_everything)

    class Interrupted(Exception):
        pass

    def on_signal(signum, _frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Interrupted(f"signal {signum}")

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    results = []
    interrupted = None
    sizes = {"/64k": 64 * 1024, "/1m": MIB}
    try:
        ups = []
        for i, port in enumerate(up_ports, 1):
            p = Proc(f"upstream{i}", upstream_argv(tmp, i, port, ok_ports[i - 1], www), tmp, cpus=proxy_cpus)
            STARTED.append(p)
            ups.append(p)
        for i, (p, port) in enumerate(zip(ups, up_ports), 1):
            wait_ready(f"upstream{i}", port, p, sizes, both=False)
            check_sink_reads_body(port)
        if pinned:
            for u in ups:
                pin(u.pids(), "0")
        procs = {}
        for t in targets:
            if t == "direct":
                continue
            if t == "nginx":
                argv = nginx_proxy_argv(tmp, ports[t], up_ports, threads, args.nginx_big_buffers)
            elif t == "haproxy":
                argv = haproxy_argv(tmp, ports[t], up_ports, threads)
            else:
                argv = cove_argv(coves[t], ports[t], up_ports, threads)
            procs[t] = Proc(t, argv, tmp, cpus=proxy_cpus)
            STARTED.append(procs[t])
        for t, p in procs.items():
            wait_ready(t, ports[t], p, sizes)

        def watcher(t):
            return ups[0].pids if t == "direct" else procs[t].pids

        waited = 0.0
        for rep in range(args.reps):
            for scen in scenarios:
                for t in targets:
                    if rep == 0 and args.warmup > 0:
                        run_wrk(args, tmp, ports[t], scen, wrk_cpus, args.warmup, f"warmup {scen} {t}")
                        time.sleep(args.cooldown)
                    label = f"{scen} {t} rep{rep + 1}"
                    best = None
                    for attempt in range(args.noisy_retries + 1):
                        if args.quiet_wait > 0 and waited < args.quiet_budget:
                            waited += wait_quiet(args, min(args.quiet_wait, args.quiet_budget - waited))
                        r = measure(args, tmp, ports[t], scen, watcher(t), wrk_cpus, label)
                        if best is None or r["foreign_cpu_pct"] < best["foreign_cpu_pct"]:
                            best = r
                        if r["foreign_cpu_pct"] <= args.noisy_pct:
                            break
                        log(f"{label}: other processes used {r['foreign_cpu_pct']:.0f}% of a core"
                            + ("; once more" if attempt < args.noisy_retries
                               else "; keeping the quietest run (flagged)"))
                    r = best
                    r.update({"scenario": scen, "target": t, "rep": rep + 1,
                              "noisy": r["foreign_cpu_pct"] > args.noisy_pct})
                    results.append(r)
                    log(f"{label}: {r['rps']:,.0f} req/s {r['mib_s']:,.0f} MiB/s "
                        f"cpu {r['cpu_us_per_req']:.0f} µs/req {r['cpu_ms_per_gib']:.0f} ms/GiB "
                        f"p99 {r['p99_us'] / 1000:.1f} ms err {r['errors']} non2xx {r['non2xx']} "
                        f"rss {r['rss_max_kb'] / 1024:.1f} MiB foreign {r['foreign_cpu_pct']:.0f}%")
                    time.sleep(args.cooldown)
    except Interrupted as ex:
        interrupted = ex
        log(f"{ex}: stopping everything; partial results follow")
    finally:
        stop_everything()

    meta["loadavg_after"] = loadavg()
    meta["foreign_cpu_pct_per_run"] = [round(r["foreign_cpu_pct"], 1) for r in results]
    md = table(results, targets, scenarios)
    foreign = [r["foreign_cpu_pct"] for r in results]
    head = (f"bodies bench {meta['started']}: {meta['mode']}"
            + (" (proxy 1 worker/thread + both upstreams on CPU 0, wrk on CPU 1)" if pinned else "")
            + f", wrk -t1 -c{args.connections} -d{args.duration}s keep-alive, {args.reps} interleaved reps, "
            f"median (min–max); nginx proxy buffers: "
            + ("big (bodies in memory)" if args.nginx_big_buffers else "defaults (1 MiB bodies spill to temp files)")
            + f"\n{meta['nginx']} | {meta['haproxy']} | {meta['wrk']} | kernel {meta['kernel']}\n"
            f"cove: {', '.join(f'{k}={v}' for k, v in coves.items())}\n"
            f"load average before {meta['loadavg_before']}, after {meta['loadavg_after']}; other processes' CPU "
            f"during runs: median {med(foreign):.0f}%, max {max(foreign) if foreign else 0:.0f}% of a core "
            f"(noisy > {args.noisy_pct:.0f}%)\n"
            "CPU = utime+stime of the proxy's process tree (for direct: upstream1's); MiB/s and ms/GiB count "
            "body bytes only; err = wrk socket errors/timeouts (+ short downloads), non-2xx = wrk's "
            "'Non-2xx or 3xx responses'.\n")
    out = head + "\n" + md + "\n"
    print(out)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"meta": meta, "results": results, "table_md": out}, f, indent=1)
    with open(os.path.join(tmp, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": results, "table_md": out}, f, indent=1)
    log(f"configs, logs and wrk output kept in {tmp}")
    if interrupted:
        sys.exit(130)


if __name__ == "__main__":
    main()
