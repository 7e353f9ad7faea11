#!/usr/bin/env bash
# Where the gateway's CPU per request goes: `cove gateway --threads 1`
# (standalone) under `valgrind --tool=callgrind`, in front of two nginx
# upstreams (1 worker, `return 200 "ok"`), driven by a fixed number of
# requests. Instruction counts are repeatable on a busy machine, unlike
# wall-clock figures. Measurements only; nothing is asserted.
#
# Usage: bash bench/gateway/profile.sh [--binary PATH] [--keepalive N]
#          [--close N] [--conns C] [--out DIR] [--top K] [--no-native]
#          [--native-factor F] [--phase-timeout S]
#
#   --binary PATH   profile this `cove` binary (default: build the release
#                   binary into $CARGO_TARGET_DIR, or target/, and use it)
#   --keepalive N   keep-alive requests, spread over --conns connections (20000)
#   --close N       requests with `Connection: close`, --conns at a time (5000)
#   --conns C       concurrent connections (10)
#   --out DIR       keep the callgrind files and the report there (default: a
#                   fresh temp dir, kept and printed)
#   --top K         functions listed by inclusive and by self cost (25)
#   --no-native     skip the run without valgrind (CPU per request with its
#                   user/system split, and syscalls per request under strace)
#   --native-factor F  the native run sends F times the requests (5)
#   --phase-timeout S  deadline of each load phase, seconds (900)
#
# What it does: start two nginx upstreams on free loopback ports; start the
# gateway under callgrind with instrumentation off (startup is not counted);
# warm up (200 keep-alive + 20 close requests); turn instrumentation on
# (`callgrind_control -i on`), zero the counters, run the keep-alive phase,
# dump; run the close phase, dump. Every answer must be a 200 with the body
# "ok" (a count of the others is printed; they are not excluded from the
# denominator). Then it prints instructions per request for each phase and
# the top functions by inclusive and self cost, with self cost grouped into
# areas (hyper's path and the HTTP/1.1 fast path's `proxy/h1` alike; see
# RUST_AREAS), and the callers of the hot leaves (memcpy, malloc, free,
# `core::fmt::write`, SipHash). Callgrind counts user-space instructions only: the kernel's share
# (the syscalls themselves) is not in these figures, which is why the native
# run (unless --no-native) prints, for the same load without valgrind, the
# gateway's CPU per request (/proc/PID/task/*/schedstat, split by
# utime/stime; noisy: the Python driver shares the machine) and its
# syscalls per request (`strace -f -c`, one gateway per scenario).
#
# Bounded: every phase has a deadline (--phase-timeout, 900 s), every socket
# a 60 s timeout; everything started is stopped by pid on exit.
# Needs: valgrind (callgrind_control, callgrind_annotate), nginx, python3;
# strace for the syscall counts (skipped if missing).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

binary=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --binary=*) binary="${1#--binary=}"; shift ;;
    -h|--help) sed -n '2,45p' "$0"; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done

for tool in valgrind callgrind_control callgrind_annotate nginx python3; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool (apt-get install valgrind nginx-light)" >&2; exit 2; }
done

if [ -z "$binary" ]; then
  cargo build -q --release -p cove --manifest-path "$root/Cargo.toml"
  binary="${CARGO_TARGET_DIR:-$root/target}/release/cove"
fi
[ -x "$binary" ] || { echo "not an executable: $binary" >&2; exit 2; }
binary="$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")"

exec python3 - "$binary" ${args[@]+"${args[@]}"} <<'PY'
import argparse, glob, os, re, signal, socket, subprocess, sys, tempfile, threading, time
from collections import defaultdict

ap = argparse.ArgumentParser(prog="profile.sh")
ap.add_argument("binary")
ap.add_argument("--keepalive", type=int, default=20000)
ap.add_argument("--close", type=int, default=5000)
ap.add_argument("--conns", type=int, default=10)
ap.add_argument("--out", default=None)
ap.add_argument("--top", type=int, default=25)
ap.add_argument("--phase-timeout", type=float, default=900.0)
ap.add_argument("--no-native", action="store_true")
ap.add_argument("--native-factor", type=int, default=5,
                help="the native run sends this many times the requests of the callgrind run (finer CPU figures)")
opt = ap.parse_args()

out = opt.out or tempfile.mkdtemp(prefix="cove-profile-")
os.makedirs(out, exist_ok=True)
started = []  # Popen objects, stopped by pid on exit


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def stop_all():
    for p in reversed(started):
        if p.poll() is None and p.args[0] == "strace":
            for child in children(p.pid):
                try:
                    os.kill(child, signal.SIGTERM)
                except ProcessLookupError:
                    pass
    for p in reversed(started):
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for p in reversed(started):
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
    started.clear()


def on_signal(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, deadline_s, proc):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args[0]} exited ({proc.returncode}) before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {deadline_s} s")


def start_nginx(idx, port):
    d = os.path.join(out, f"nginx-up{idx}")
    os.makedirs(d, exist_ok=True)
    temps = "".join(f"  {k}_temp_path {d}/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = (f"daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\n"
            f"error_log {d}/error.log warn;\nevents {{ worker_connections 4096; }}\n"
            f"http {{\n{temps}  access_log off;\n  keepalive_requests 1000000;\n"
            f"  keepalive_timeout 120s;\n  default_type text/plain;\n"
            f"  server {{\n    listen 127.0.0.1:{port};\n"
            f"    location / {{ return 200 \"ok\"; }}\n  }}\n}}\n")
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    p = subprocess.Popen(["nginx", "-p", d, "-e", f"{d}/error.log", "-c", path],
                         stdout=subprocess.DEVNULL, stderr=open(f"{d}/stderr", "w"))
    started.append(p)
    wait_port(port, 20, p)


# ----------------------------------------------------------------------------- load
REQ_KA = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: profile.sh\r\nAccept: */*\r\n\r\n"
REQ_CLOSE = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: profile.sh\r\nAccept: */*\r\nConnection: close\r\n\r\n"


def read_answer(sock, buf, until_eof):
    """One response from sock: (status, body, rest of buf). Content-Length framing
    (or EOF with until_eof)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("EOF before the end of the head")
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None and not until_eof:
        raise ConnectionError("answer without Content-Length on a kept-alive connection")
    if length is not None:
        while len(buf) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("EOF inside the body")
            buf += chunk
        body, buf = buf[:length], buf[length:]
    else:
        body = buf
        buf = b""
    if until_eof:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk if length is None else b""
    return status, body, buf


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = 0
        self.bad = defaultdict(int)

    def add(self, status, body):
        with self.lock:
            if status == 200 and body == b"ok":
                self.ok += 1
            else:
                self.bad[f"{status} {body[:20]!r}"] += 1

    def err(self, what):
        with self.lock:
            self.bad[what] += 1


def drive(port, n, conns, keepalive, deadline):
    """n requests over conns threads; each keep-alive thread holds one
    connection, each close thread opens one per request. Bounded by count and
    by deadline (time.monotonic())."""
    tally = Tally()
    share = [n // conns + (1 if i < n % conns else 0) for i in range(conns)]

    def worker(count):
        sock, buf = None, b""
        for _ in range(count):
            if time.monotonic() > deadline:
                tally.err("phase deadline reached")
                return
            try:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    buf = b""
                sock.sendall(REQ_KA if keepalive else REQ_CLOSE)
                status, body, buf = read_answer(sock, buf, until_eof=not keepalive)
                tally.add(status, body)
                if not keepalive:
                    sock.close()
                    sock = None
            except (OSError, ValueError, IndexError) as e:
                tally.err(type(e).__name__)
                if sock is not None:
                    sock.close()
                sock = None
        if sock is not None:
            sock.close()

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in share]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 70)
    return tally, time.monotonic() - t0


# ----------------------------------------------------------------------------- areas
# Functions outside the binary (libc, ld.so, vdso) are grouped by name and
# file; the binary's own by their Rust path, first match wins (with LTO and
# inlining, a function's self cost includes what was inlined into it).
LIBC_AREAS = [
    ("allocator", r"malloc|free|realloc|calloc|tcache|unlink_chunk|memalign|arena"),
    ("memcpy/memmove/memset", r"mem(cpy|move|set|cmp|chr)|bcmp|strlen|string/"),
    ("syscall wrappers (user side only)", r".*"),
]
RUST_AREAS = [
    ("allocator", r"^(__rust_alloc|__rust_dealloc|__rust_realloc|__rust_alloc_zeroed|__rdl_|__rg_|_?mi_|mimalloc)"
                  r"|alloc::raw_vec|RawVecInner|finish_grow|^alloc::alloc::"),
    ("memcpy/memmove/memset", r"^(memcpy|memmove|memset|memcmp|bcmp)$|compiler_builtins::mem"),
    ("string formatting (core::fmt)", r"^core::fmt::|^alloc::fmt::|as core::fmt::(Display|Debug|Write)>|write_fmt|Formatter"),
    ("HTTP/1 head parsing", r"cove_gateway::proxy::h1::head::|cove_gateway::proxy::h1::chunked::|httparse::|h1::Http1Transaction>::parse|proto::h1::role::.*parse|record_header_indices"
                  r"|h1::io::Buffered<T,B>::parse|http::uri::|http::method::"),
    ("header map building", r"http::header::|http::extensions|http::request::|http::response::|http::status::"),
    ("response/request encoding", r"cove_gateway::proxy::h1::(.*::)?(upstream_head|decimal|ip_text|own)\b"
                  r"|h1::Http1Transaction>::encode|proto::h1::role::|h1::encode::|h1::io::WriteBuf"
                  r"|hyper::common::date|httpdate::|encode_headers"),
    ("client dispatch channel and pool", r"cove_gateway::proxy::h1::conns::|hyper::client::dispatch|^want::|tokio::sync::oneshot|tokio::sync::mpsc"
                  r"|futures_channel::|hyper_util::client::legacy|hyper::client::conn"),
    ("hyper h1 connection state machine", r"hyper::|hyper_util::|http_body"),
    ("tokio scheduling/IO", r"tokio::|mio::|slab::|futures_util::|futures_core::|core::task::|std::sync::"
                  r"|std::sys::|parking_lot|<core::future::|std::thread::"),
    ("routing/balancing", r"cove_gateway::table|cove_gateway::balance"),
    ("fast path connection loop (proxy/h1)", r"cove_gateway::proxy::h1::"),
    ("metrics", r"cove_gateway::metrics|cove_gateway::stats|^metrics::|metrics_exporter"),
    ("cove proxy logic", r"cove_gateway::|^cove::"),
    ("tracing", r"tracing::|tracing_core::|tracing_subscriber::"),
]
LIBC_RE = [(n, re.compile(rx)) for n, rx in LIBC_AREAS]
RUST_RE = [(n, re.compile(rx)) for n, rx in RUST_AREAS]
OBJ = re.compile(r"^(?:(?P<file>[^:\[ ]*[./][^:\[ ]*):(?!:))?(?P<fn>.*?)(?: \[(?P<obj>[^\]]*)\])?$")


def area_of(entry):
    m = OBJ.match(entry)
    fn, obj, file = m.group("fn"), m.group("obj") or "", m.group("file") or ""
    if file or (obj and obj != opt.binary):
        for name, rx in LIBC_RE:
            if rx.search(fn) or rx.search(file):
                return name
    for name, rx in RUST_RE:
        if rx.search(fn):
            return name
    return "other"


LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$")


def annotate(path, inclusive):
    cmd = ["callgrind_annotate", "--threshold=100", f"--inclusive={'yes' if inclusive else 'no'}", path]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    total, rows = None, []
    for line in res.stdout.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        n = int(m.group(1).replace(",", ""))
        name = m.group(2).strip()
        if name.startswith("PROGRAM TOTALS"):
            total = n
            continue
        name = re.sub(r"^\?\?\?:", "", name)
        rows.append((n, name))
    return total, rows


# Leaf functions whose callers are listed: copies, the allocator, formatting, hashing.
CALLERS_OF = [r"memmove-vec-unaligned-erms.S:__memcpy", r"malloc.c:malloc \[", r"malloc.c:free \[",
              r"^\?\?\?:core::fmt::write \[", r"sip::Hasher<S> as core::hash::Hasher>::write \["]


def callers(path, requests, k=6):
    res = subprocess.run(["callgrind_annotate", "--threshold=100", "--inclusive=yes", "--tree=caller", path],
                         capture_output=True, text=True, check=True)
    pending, found = [], {}
    for line in res.stdout.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+([<*])\s+(.*)$", line)
        if not m:
            pending = []
            continue
        n, kind, name = int(m.group(1).replace(",", "")), m.group(2), m.group(3).strip()
        if kind == "<":
            pending.append((n, re.sub(r"^\?\?\?:", "", name)))
            continue
        for rx in CALLERS_OF:
            if re.search(rx, name) and rx not in found:
                found[rx] = (n, name, sorted(pending, reverse=True)[:k])
        pending = []
    print(f"\nCallers of the hot leaf functions (inclusive Ir/request of each call site, top {k}):\n")
    for rx in CALLERS_OF:
        if rx not in found:
            continue
        n, name, rows = found[rx]
        print(f"- `{short(re.sub(r'^[?]{3}:', '', name))}`: {n / requests:,.0f} Ir/request, from "
              + "; ".join(f"`{short(re.sub(r' [(][0-9,]+x[)]', '', c), 80)}` {c_n / requests:,.0f}"
                          for c_n, c in rows))


def short(name, width=110):
    name = re.sub(r" \[(/[^\]]*/)?([^\]/]+)\]$", r" [\2]", name)
    name = re.sub(r"^[^:\[ ]*/([^/:]+):", r"\1:", name)
    return name if len(name) <= width else name[: width - 1] + "…"


def report(label, path, requests, top):
    total, self_rows = annotate(path, inclusive=False)
    _, incl_rows = annotate(path, inclusive=True)
    per = total / requests if requests else float("nan")
    print(f"\n### {label}: {total:,} Ir over {requests:,} requests = **{per:,.0f} instructions/request**\n")
    areas = defaultdict(int)
    for n, name in self_rows:
        areas[area_of(name)] += n
    print("| area (self cost) | Ir/request | share |\n|---|---|---|")
    for name, n in sorted(areas.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {n / requests:,.0f} | {100 * n / total:.1f} % |")
    print(f"\nTop {top} by self cost:\n\n| Ir/request | share | area | function |\n|---|---|---|---|")
    for n, name in self_rows[:top]:
        print(f"| {n / requests:,.0f} | {100 * n / total:.1f} % | {area_of(name)} | `{short(name)}` |")
    print(f"\nTop {top} by inclusive cost:\n\n| Ir/request | share | function |\n|---|---|---|")
    for n, name in incl_rows[:top]:
        print(f"| {n / requests:,.0f} | {100 * n / total:.1f} % | `{short(name)}` |")
    callers(path, requests)
    return per


def sched_ns(pid):
    """CPU time of all of a process's threads, in ns (/proc/PID/task/*/schedstat)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def proc_cpu(pid):
    """(user, system) seconds of a process and all its threads."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(f[11]) / tck, int(f[12]) / tck


def describe(tally, n, secs, what):
    bad = ", ".join(f"{k}: {v}" for k, v in sorted(tally.bad.items())) or "none"
    log(f"{what}: {tally.ok}/{n} answered 200 \"ok\" in {secs:.1f} s; others: {bad}")
    return tally.ok + sum(tally.bad.values())


# ----------------------------------------------------------------------------- main
def main():
    ups = [free_port(), free_port()]
    for i, port in enumerate(ups):
        start_nginx(i + 1, port)
    gw_port = free_port()
    gw_cmd = [opt.binary, "gateway", "--listen", f"127.0.0.1:{gw_port}",
              "--upstream", f"127.0.0.1:{ups[0]}", "--upstream", f"127.0.0.1:{ups[1]}", "--threads", "1"]
    cg_out = os.path.join(out, f"callgrind.{time.strftime('%Y%m%dT%H%M%S')}.out")
    vg = subprocess.Popen(["valgrind", "--tool=callgrind", "--dump-instr=no", "--instr-atstart=no",
                           f"--callgrind-out-file={cg_out}", *gw_cmd],
                          stdout=open(os.path.join(out, "gateway.stdout"), "w"),
                          stderr=open(os.path.join(out, "valgrind.log"), "w"))
    started.append(vg)
    wait_port(gw_port, 120, vg)
    log(f"gateway (under callgrind, pid {vg.pid}) on 127.0.0.1:{gw_port}; upstreams {ups}; files in {out}")

    t, s = drive(gw_port, 200, opt.conns, True, time.monotonic() + 300)
    describe(t, 200, s, "warm-up keep-alive")
    t, s = drive(gw_port, 20, min(opt.conns, 20), False, time.monotonic() + 300)
    describe(t, 20, s, "warm-up close")

    def ctl(*a):
        # callgrind_control exits 0 even when it reaches no process: check its "OK".
        res = subprocess.run(["callgrind_control", *a, str(vg.pid)], capture_output=True, text=True, timeout=120)
        if "OK" not in res.stdout:
            raise RuntimeError(f"callgrind_control {' '.join(a)}: {res.stdout}{res.stderr}")

    def dumped():
        return set(glob.glob(cg_out + ".*"))

    ctl("-i", "on")
    ctl("-z")
    results = {}
    for label, n, keepalive in (("keep-alive", opt.keepalive, True), ("close", opt.close, False)):
        before = dumped()
        tally, secs = drive(gw_port, n, opt.conns, keepalive, time.monotonic() + opt.phase_timeout)
        done = describe(tally, n, secs, label)
        ctl("-d", label)
        end = time.monotonic() + 60
        while not (dumped() - before) and time.monotonic() < end:
            time.sleep(0.5)
        new = sorted(dumped() - before)
        if not new:
            raise RuntimeError(f"callgrind wrote no dump for {label}")
        results[label] = (new[-1], done, tally)
    stop(vg)

    print(f"## callgrind: `{os.path.basename(opt.binary)} gateway --threads 1`, "
          f"{opt.keepalive:,} keep-alive requests over {opt.conns} connections, "
          f"{opt.close:,} `Connection: close` requests {opt.conns} at a time")
    print(f"\nbinary: {opt.binary}; files: {out}")
    summary = []
    for label, (path, done, tally) in results.items():
        per = report(label, path, done, opt.top)
        summary.append((label, per, tally.ok, done))
    print("\n### summary\n\n| scenario | instructions/request | 200 \"ok\" / requests |\n|---|---|---|")
    for label, per, ok, done in summary:
        print(f"| {label} | {per:,.0f} | {ok:,} / {done:,} |")

    if not opt.no_native:
        native(ups)


def children(pid):
    try:
        return [int(c) for t in os.listdir(f"/proc/{pid}/task")
                for c in open(f"/proc/{pid}/task/{t}/children").read().split()]
    except OSError:
        return []


def stop(p):
    """Stop p by pid. Under strace, stop the traced gateway (strace's child)
    first: strace itself would detach and leave it running, without a report."""
    if p.poll() is None and p.args[0] == "strace":
        for child in children(p.pid):
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    if p.poll() is None:
        os.kill(p.pid, signal.SIGTERM)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
    started.remove(p)


def gateway(ups, wrapper=()):
    port = free_port()
    cmd = [*wrapper, opt.binary, "gateway", "--listen", f"127.0.0.1:{port}",
           "--upstream", f"127.0.0.1:{ups[0]}", "--upstream", f"127.0.0.1:{ups[1]}", "--threads", "1"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(out, "native.log"), "a"))
    started.append(p)
    wait_port(port, 60, p)
    return p, port


def native(ups):
    """The same load without valgrind: user/system CPU per request from /proc
    (wall-clock figures: noisy on a shared machine), and syscalls per request
    from strace -c (strace slows the process; the counts are what matters)."""
    rows = {}
    p, port = gateway(ups)
    drive(port, 200, opt.conns, True, time.monotonic() + 120)
    f = max(1, opt.native_factor)
    for label, n, keepalive in (("keep-alive", f * opt.keepalive, True), ("close", f * opt.close, False)):
        u0, s0 = proc_cpu(p.pid)
        c0 = sched_ns(p.pid)
        tally, secs = drive(port, n, opt.conns, keepalive, time.monotonic() + opt.phase_timeout)
        c1 = sched_ns(p.pid)
        u1, s1 = proc_cpu(p.pid)
        done = describe(tally, n, secs, f"native {label}")
        user_share = (u1 - u0) / max(1e-9, (u1 - u0) + (s1 - s0))
        cpu = (c1 - c0) / 1e3 / done
        rows[label] = [done, done / secs, cpu, cpu * user_share, cpu * (1 - user_share), "-", "-"]
    stop(p)
    if subprocess.run(["sh", "-c", "command -v strace"], capture_output=True).returncode == 0:
        # strace -c reports at exit only: one gateway per scenario; the
        # counts include its startup and the readiness probe (one connection).
        for label, n, keepalive in (("keep-alive", opt.keepalive, True), ("close", opt.close, False)):
            st_file = os.path.join(out, f"strace-{label}.txt")
            p, port = gateway(ups, ["strace", "-f", "-c", "-o", st_file])
            tally, secs = drive(port, n, opt.conns, keepalive, time.monotonic() + opt.phase_timeout)
            done = describe(tally, n, secs, f"strace {label}")
            stop(p)
            counts = strace_counts(st_file)
            rows[label][5] = f"{sum(counts.values()) / done:.2f}"
            rows[label][6] = ", ".join(f"{k} {v / done:.2f}"
                                       for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:7])
    else:
        log("strace missing: no syscall counts")
    print("\n### native run (no valgrind): CPU split and syscalls per request\n")
    print("| scenario | requests | req/s (Python driver) | CPU µs/req | user µs/req | system µs/req "
          "| syscalls/req (strace -f -c) | most frequent, per request |")
    print("|---|---|---|---|---|---|---|---|")
    for label, (n, rps, cpu, u, s, sc, top) in rows.items():
        print(f"| {label} | {n:,} | {rps:,.0f} | {cpu:.1f} | {u:.1f} | {s:.1f} | {sc} | {top} |")
    print("\n(CPU: the gateway's threads' run time from /proc/PID/task/*/schedstat, split into user and "
          "system in the ratio of utime/stime (100 Hz ticks); the Python load driver shares the cores and "
          "sends one request at a time per connection, so these are noisy and not the harness's figures; "
          "syscall counts: a separate gateway per scenario, its startup and one probe connection included)")


def strace_counts(path):
    counts = {}
    for line in open(path):
        parts = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            try:
                counts[parts[-1]] = int(parts[3])
            except ValueError:
                pass
    return counts


try:
    main()
finally:
    stop_all()
PY
