#!/usr/bin/env python3
"""bench/core: two builds of cove side by side on the project's own benches
(issue 18: "measure before and after; no figure may get worse beyond its
noise").

For PAIRS rounds, each build in turn (before, after, before, after, ...):
- bench/up/run.py ROUNDS IDLE: `cove up -d` of 10 health-gated services
  (median ms), the daemon at rest (RSS, CPU), 1,000 replicas (up -d s,
  RSS at rest, down s);
- bench/gateway/under-up.py REPS DURATION: the gateway under `cove up`
  (RPS, p99, CPU µs per request of the daemon);
- bench/reliability/run.py --reps 1: failed requests per phase through
  deploys, scaling, rollback, a failed deploy and SIGKILLs.
Each build is given to the scripts as COVE_BIN. Printed: every figure of
every round, then per figure the median of each build and after/before.
Measurements only; nothing is asserted.

Usage: python3 bench/core/run.py BEFORE_BIN AFTER_BIN [PAIRS] [--skip up,gateway,reliability]
"""
import json, os, re, statistics, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def run(bin_, args):
    env = dict(os.environ, COVE_BIN=bin_)
    p = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        print(f"  ({' '.join(args)} exited {p.returncode}: {p.stderr.strip()[-400:]})")
    return p.stdout


def num(pattern, text):
    m = re.search(pattern, text)
    return float(m.group(1).replace(",", "")) if m else None


def bench_up(bin_):
    out = run(bin_, ["python3", "bench/up/run.py", "6", "5"])
    return {
        "up -d, 10 services healthy (ms)": num(r"cove up -d\s+median\s+(\d+) ms", out),
        "daemon RSS at rest, 10 services (MiB)": num(r"10 services up \(\d+ s\): RSS ([\d.]+) MiB", out),
        "1,000 replicas: up -d (s)": num(r"up -d ([\d.]+) s \(exit", out),
        "1,000 replicas: daemon RSS (MiB)": num(r"daemon at rest RSS ([\d.]+) MiB", out),
        "1,000 replicas: down (s)": num(r"; down ([\d.]+) s", out),
    }


def bench_gateway(bin_):
    out = run(bin_, ["python3", "bench/gateway/under-up.py", "2", "5", "50"])
    first = lambda c: float(c.split(" ")[0].replace(",", "")) if c else None
    got = {}
    for prefix, name in (("| under cove up", "gateway under up"), ("| standalone", "gateway standalone")):
        row = next((l for l in out.splitlines() if l.startswith(prefix)), "")
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) < 5:
            got[f"{name}: RPS"] = None
            continue
        got[f"{name}: RPS"] = first(cells[1])
        got[f"{name}: p99 (µs)"] = first(cells[3])
        got[f"{name}: CPU µs/req"] = first(cells[4])
    return got


def bench_reliability(bin_):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        run(bin_, ["python3", "bench/reliability/run.py", "--reps", "1", "--json", f.name])
        try:
            data = json.load(open(f.name))
        except (OSError, ValueError):
            return {"reliability: failed requests": None}
    rows = [r for run_ in data.get("runs", []) for r in run_["rows"] if r.get("judged")]
    if not rows:
        return {"reliability: failed requests": None}
    failed = sum(r["get_failed"] + r["post_failed"] for r in rows)
    total = sum(r["get_ok"] + r["get_failed"] + r["post_ok"] + r["post_failed"] for r in rows)
    return {
        "reliability: failed requests (judged phases)": failed,
        "reliability: requests": total,
        "reliability: goal met (1 = yes)": 1 if data.get("goal_met") else 0,
    }


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--skip")]
    skip = set()
    for i, a in enumerate(sys.argv):
        if a == "--skip" and i + 1 < len(sys.argv):
            skip = set(sys.argv[i + 1].split(","))
            args = [x for x in args if x != sys.argv[i + 1]]
    if len(args) < 2:
        sys.exit(__doc__)
    builds = {"before": os.path.abspath(args[0]), "after": os.path.abspath(args[1])}
    pairs = int(args[2]) if len(args) > 2 else 2
    benches = [(n, f) for n, f in (("up", bench_up), ("gateway", bench_gateway),
                                   ("reliability", bench_reliability)) if n not in skip]
    figures = {}
    for r in range(pairs):
        for name, fn in benches:
            for build, path in builds.items():
                got = fn(path)
                print(f"round {r + 1} {name} {build}: {got}", flush=True)
                for k, v in got.items():
                    figures.setdefault(k, {}).setdefault(build, []).append(v)
    print(f"\n| figure | before (median) | after (median) | after / before |")
    print("|---|---|---|---|")
    for k, by in figures.items():
        med = {b: statistics.median([v for v in by.get(b, []) if v is not None] or [float("nan")])
               for b in builds}
        ratio = med["after"] / med["before"] if med["before"] else float("nan")
        print(f"| {k} | {med['before']:,.1f} | {med['after']:,.1f} | {ratio:.2f} |")


main()
