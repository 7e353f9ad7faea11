#!/usr/bin/env python3
"""A/B of two `cove` binaries as a standalone gateway, on the same machine,
alternating: is a change to the request path measurable?

    python3 bench/gateway/ab.py OLD_COVE NEW_COVE [REPS]

Starts nginx (`return 200`, a 34-byte body) on 127.0.0.1:18181 as the one
upstream, then for each rep and binary: `cove gateway --threads 1` pinned to
core 0, wrk -t1 -c32 for 5 s pinned to core 1 (after a 1 s warm-up).
Prints RPS and the gateway's CPU µs per request (from /proc), and the
medians. Stops what it started, by PID. Loopback only; bounded.
"""
import os, re, subprocess, sys, tempfile, time


def cpu_seconds(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    bins = {"A": sys.argv[1], "B": sys.argv[2]}
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    tmp = tempfile.mkdtemp(prefix="cove-ab-")
    conf = os.path.join(tmp, "nginx.conf")
    open(conf, "w").write(f"""worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  server {{ listen 127.0.0.1:18181; location / {{ return 200 "hello world, this is a small body\\n"; }} }}
}}
""")
    nginx = subprocess.Popen(["nginx", "-p", tmp, "-c", conf])
    results = {k: [] for k in bins}
    try:
        time.sleep(0.5)
        for rep in range(reps):
            for name, exe in bins.items():
                port = 18190 + rep * 2 + (name == "B")
                url = f"http://127.0.0.1:{port}/"
                gw = subprocess.Popen(
                    ["taskset", "-c", "0", exe, "gateway", "--listen", f"127.0.0.1:{port}",
                     "--upstream", "127.0.0.1:18181", "--threads", "1"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    time.sleep(0.5)
                    subprocess.run(["wrk", "-t1", "-c32", "-d1s", url], capture_output=True, timeout=30)
                    c0 = cpu_seconds(gw.pid)
                    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c32", "-d5s", url],
                                         capture_output=True, text=True, timeout=30).stdout
                    c1 = cpu_seconds(gw.pid)
                finally:
                    gw.terminate()
                    gw.wait(5)
                n = int(re.search(r"(\d+) requests in", out).group(1))
                rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
                us = (c1 - c0) / n * 1e6
                results[name].append((rps, us))
                print(f"{name} rep {rep}: {rps:,.0f} rps, {us:.1f} µs CPU/request", flush=True)
    finally:
        nginx.terminate()
        nginx.wait(5)
    for name, rows in results.items():
        rps = sorted(r for r, _ in rows)[len(rows) // 2]
        us = sorted(u for _, u in rows)[len(rows) // 2]
        print(f"{name} ({bins[name]}): median {rps:,.0f} rps, {us:.1f} µs CPU/request")


if __name__ == "__main__":
    main()
