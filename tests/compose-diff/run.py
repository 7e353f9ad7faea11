#!/usr/bin/env python3
"""Differential test of cove's loader against docker compose v2.

For every case of the real-files corpus (cases.tsv beside its README) and every
fixture of tests/compose-diff/fixtures/, runs

    cove <opts> config --format json <args>
    docker-compose <opts> config --format json <args>

in the case's directory, with the same clean environment, and checks that both
refuse, or both load and print the same model after NORMALISATION, every
remaining difference being one listed in ACCEPTED (what, why).
Any other difference fails the run (exit 1). Last line: the counts.

    usage: run.py --cove target/debug/cove --compose PATH/TO/docker-compose
                  [--corpus DIR] [--only SUBSTRING] [--dump FILE] [-v] [-j N]

scripts/compose-diff makes the venv with docker compose and runs this.
--compose must be the Go binary itself (site-packages/compose/docker-compose),
not the package's Python wrapper in VENV/bin, which drops the exit status.
A case that only one side refuses is a difference too, unless it is one of
ACCEPTED_REFUSALS. Fixtures: fixtures/cases.tsv, the corpus's columns.
"""
import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
MISSING = object()

# ---------------------------------------------------------------------------
# Running a case
# ---------------------------------------------------------------------------


def read_cases(tsv, root):
    """Rows of a cases.tsv: (id, directory, opts, env, args); `#` lines skipped."""
    cases = []
    with open(tsv, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            fields = (line.split("\t") + [""] * 5)[:5]
            cid, d, opts, env, args = fields
            cases.append((cid, os.path.join(root, d), opts.split(), env.split(), args.split()))
    return cases


def run_one(binary, wd, opts, env, args, home):
    e = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "PWD": wd}
    for kv in env:
        k, _, v = kv.replace("@HERE@", wd).partition("=")
        e[k] = v
    try:
        p = subprocess.run(
            [binary, *opts, "config", "--format", "json", *args],
            cwd=wd, env=e, capture_output=True, text=True, timeout=60,
        )
    except subprocess.TimeoutExpired:
        return None, "timed out (60 s)"
    if p.returncode != 0:
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        errors = [l for l in lines if l.startswith("error")]
        return None, (errors[0] if errors else lines[-1] if lines else f"exit {p.returncode}")[:300]
    try:
        return json.loads(p.stdout), None
    except ValueError as err:
        return None, f"output is not JSON: {err}"

# ---------------------------------------------------------------------------
# Comparing two models
# ---------------------------------------------------------------------------


def empty(v):
    """Absent, null, "", false, and a list or object of only such values:
    what docker compose omits (Go's `omitempty`) or prints as null, and cove
    omits or prints as written. Normalisation rule N2 (see NORMALISATION)."""
    if v is MISSING or v is None or v == "" or v is False:
        return True
    if isinstance(v, dict):
        return all(empty(x) for x in v.values())
    if isinstance(v, list):
        return len(v) == 0
    return False


def diff(a, b, path=()):
    """(path, cove value, compose value) for each place the two models differ.
    Objects are compared key by key (order ignored), lists of equal length
    item by item; an absent key equals null, {} and [] (see empty)."""
    if empty(a) and empty(b) and not (path and path[-1] == "required" and (a is False) != (b is False)):
        return []  # `required` defaults to true: false is not absent there
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += diff(a.get(k, MISSING), b.get(k, MISSING), path + (k,))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += diff(x, y, path + (i,))
        return out
    if a == b and type(a) is type(b):
        return []
    return [(path, a, b)]


# ---------------------------------------------------------------------------
# Normalisation: what is done to both printed models before they are compared
# (documented in docs/concepts/loading.md, "Differences from docker compose").
# ---------------------------------------------------------------------------
NORMALISATION = [
    ("N1", "key order is ignored", "JSON objects are compared as maps"),
    ("N2", "absent = null = \"\" = false = {} = [] (and an object of only such values)",
     "docker compose omits Go zero values (`omitempty`) and prints `command: null`, "
     "`entrypoint: null`, `ipam: {}`, `volume: {}`; cove omits what the file does not set"),
    ("N3", "blkio_config: docker compose's keys Path/Rate/Weight are lower-cased",
     "docker compose prints its Go field names there, not the spec's keys"),
    ("N4", "extra_hosts (of services and builds): a sorted list of `host:ip`",
     "docker compose prints `host=ip`, sorted; cove `host:ip` (or as written), in the file's order; "
     "the order of /etc/hosts entries for distinct hosts changes nothing"),
]


def normalise_both(m):
    for svc in (m.get("services") or {}).values():
        if not isinstance(svc, dict):
            continue
        for holder in (svc, svc.get("build")):
            if isinstance(holder, dict) and isinstance(holder.get("extra_hosts"), list):
                holder["extra_hosts"] = sorted(
                    h.replace("=", ":", 1) if isinstance(h, str) else h for h in holder["extra_hosts"])
    return m


def normalise_compose(m):
    for svc in (m.get("services") or {}).values():
        blkio = svc.get("blkio_config") if isinstance(svc, dict) else None
        if isinstance(blkio, dict):
            for k, v in blkio.items():
                if isinstance(v, list):
                    blkio[k] = [{kk.lower(): vv for kk, vv in x.items()} if isinstance(x, dict) else x for x in v]
    return m


def size_bytes(v):
    """A Compose size ("12mb", "1024k", 30, "2g") in bytes, or None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    mt = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?\s*", str(v).lower())
    if not mt:
        return None
    return int(float(mt.group(1)) * 1024 ** " kmgtp".index(mt.group(2) or " "))


SHELL_OPERATORS = {"|", "||", "&", "&&", ";", ">", ">>", "<", "2>&1", "1>&2", ">&2", "2>/dev/null", ">/dev/null"}


def _under(path, *keys):
    return any(k in path for k in keys)


def _short_long(a, b):
    """cove's short syntax `a` against docker compose's long form `b`."""
    if isinstance(a, str) and isinstance(b, dict):
        if b.get("source") == a and set(b) <= {"source", "target"} and b.get("target", a) == a:
            return True  # build.secrets: name -> {source: name}
        parts = a.split(":")
        if len(parts) >= 2 and b.get("source") == parts[0] and b.get("target") == parts[1]:
            return b.get("permissions", "rwm") == (parts[2] if len(parts) > 2 else "rwm")  # devices
    if isinstance(a, list) and isinstance(b, dict):
        return sorted(a) == sorted(b) and all(v is None for v in b.values())  # services.*.models
    return False


# Every difference accepted between cove and docker compose, after NORMALISATION:
# (id, what, why, match(path, cove value, compose value)). MISSING = the side omits it.
ACCEPTED = [
    ("unused-resources",
     "a top-level network, volume, secret, config or model no enabled service uses",
     "docker compose drops them from its output; cove prints every resource the file declares",
     lambda p, a, b: p[0] in ("networks", "volumes", "secrets", "configs", "models")
     and len(p) <= 2 and b is MISSING),
    ("x-cove",
     "the top-level `x-cove` block (state_dir, ...) cove adds",
     "cove's own defaults, printed so the output loads back with the same meaning",
     lambda p, a, b: p[0] == "x-cove" and b is MISSING),
    ("extensions",
     "`x-*` extension fields inside services, networks and develop.watch",
     "docker compose drops extension fields below the top level; cove keeps them as written",
     lambda p, a, b: any(isinstance(k, str) and k.startswith("x-") for k in p) and b is MISSING),
    ("extension-numbers",
     "numbers in top-level `x-*` blocks: cove prints 1e3 as 1000.0 and an integer beyond 64 bits as a string",
     "the same number; extension blocks are only read through anchors, whose uses are compared as resolved",
     lambda p, a, b: isinstance(p[0], str) and p[0].startswith("x-") and _num(a) is not None and _num(a) == _num(b)),
    ("env_file",
     "services.*.env_file: cove prints the files (absolute, `required`, `format`)",
     "docker compose reads them into `environment` and drops the key; both print the same environment",
     lambda p, a, b: len(p) >= 3 and p[0] == "services" and p[2] == "env_file" and b is MISSING),
    ("octal-mode",
     "secrets/configs `mode`: cove prints a number (288), docker compose an octal string (\"0440\")",
     "the same permission bits; both forms load back to the same mode",
     lambda p, a, b: p[-1] == "mode" and isinstance(a, int) and isinstance(b, str)
     and re.fullmatch(r"0?[0-7]+", b) is not None and int(b, 8) == a),
    ("stringified-options",
     "logging.options and provider.options values: cove keeps the YAML scalar (1), "
     "docker compose prints a string (\"1\"), a list of strings for provider options ([\"1\"])",
     "the same value; options reach a driver or provider as strings either way",
     lambda p, a, b: "options" in p and not isinstance(a, (dict, list))
     and (b == _str(a) or b == [_str(a)])),
    ("short-syntax",
     "build.secrets, devices and services.*.models printed in short syntax by cove, long by docker compose",
     "the same entries: a name is {source: name}, `a:b` is {source: a, target: b, permissions: rwm}",
     lambda p, a, b: _short_long(a, b)),
    ("clean-paths",
     "a bind mount's source path: cove prints it cleaned (no `..`, `//` or trailing `/`), docker compose as joined",
     "the same directory",
     lambda p, a, b: len(p) >= 2 and p[-1] == "source" and "volumes" in p and isinstance(a, str)
     and isinstance(b, str) and os.path.normpath(a) == os.path.normpath(b)),
    ("blkio-sizes",
     "blkio_config rates: cove keeps the written size (\"12mb\", 120), docker compose prints bytes as a string",
     "the same rate; cove does not apply blkio_config to native processes",
     lambda p, a, b: "blkio_config" in p and p[-1] in ("rate", "weight")
     and size_bytes(a) is not None and size_bytes(a) == size_bytes(b)),
    ("optional-dependency-on-missing-service",
     "depends_on an undefined service with `required: false`",
     "cove drops the dependency when it loads (it cannot start what is not there); docker compose keeps it",
     lambda p, a, b: len(p) >= 3 and p[2] == "depends_on" and a is MISSING
     and (b.get("required") is False if len(p) == 4 and isinstance(b, dict)
          else isinstance(b, dict) and all(isinstance(d, dict) and d.get("required") is False for d in b.values()))),
    ("extends-leftover",
     "services.*.extends printed by docker compose after it resolved it",
     "a leftover of docker compose when the base service is empty; cove prints the merged service only",
     lambda p, a, b: len(p) == 3 and p[2] == "extends" and a is MISSING),
    ("shell-operators",
     "a `command` string with shell operators (`2>&1`, `|`): docker compose drops them, cove keeps them as arguments",
     "neither runs a shell; cove warns when it loads such a command (run it with `sh -c`)",
     lambda p, a, b: isinstance(a, list) and isinstance(b, list)
     and [x for x in a if x not in SHELL_OPERATORS] == b),
]


# Cases only one side refuses, accepted: (id, what, why, match(cove error, compose error)).
# The error is the first `error` line of cove, the last line of docker compose.
ACCEPTED_REFUSALS = [
    ("pre_start",
     "a service with `pre_start` hooks: docker compose 2.40.3 refuses the field",
     "the Compose spec defines `pre_start` (newer than that docker compose); cove runs the hooks",
     lambda a, b: a is None and "additional properties 'pre_start' not allowed" in b),
    ("ssh-json",
     "build.ssh: docker compose cannot print it as JSON (`error calling MarshalJSON for type types.SSHKey`)",
     "a docker compose bug in `config --format json`; its YAML output loads",
     lambda a, b: a is None and "MarshalJSON for type types.SSHKey" in b),
    ("undefined-model",
     "a service `models:` entry naming no top-level model: cove loads it",
     "cove does not run models (it says so when it loads); docker compose refuses the reference",
     lambda a, b: a is None and re.search(r"refers to undefined model", b)),
    ("platform-not-in-build-platforms",
     "`platform` not among `build.platforms`: cove loads it",
     "cove builds for the engine's platform only and ignores build.platforms; docker compose refuses",
     lambda a, b: a is None and "build.platforms MUST include service.platform" in b),
]


def _num(v):
    if isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _str(v):
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def classify(cove, compose):
    """(accepted: Counter of rule id, unlisted: [(path, cove, compose)])."""
    accepted, unlisted = Counter(), []
    for path, a, b in diff(normalise_both(cove), normalise_both(normalise_compose(compose))):
        rule = next((r for r in ACCEPTED if _safe(r[3], path, a, b)), None)
        if rule:
            accepted[rule[0]] += 1
        else:
            unlisted.append((path, a, b))
    return accepted, unlisted


def _safe(match, path, a, b):
    try:
        return bool(match(path, a, b))
    except (AttributeError, TypeError, ValueError, IndexError):
        return False


def show(v):
    return "(absent)" if v is MISSING else json.dumps(v)[:160]



def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cove", required=True)
    ap.add_argument("--compose", required=True)
    ap.add_argument("--corpus", default=None, help="the compose-real corpus folder (skipped when absent)")
    ap.add_argument("--only", default=None, help="only cases whose id contains this")
    ap.add_argument("--dump", default=None, help="save both outputs of every case to this JSON file")
    ap.add_argument("-j", type=int, default=2, help="cases run at once (default 2)")
    ap.add_argument("-v", action="store_true", help="print every case, not only the differences")
    a = ap.parse_args()
    cove = os.path.abspath(a.cove)
    compose = os.path.abspath(a.compose)
    cases = [("fixture:" + c[0],) + c[1:] for c in read_cases(os.path.join(FIXTURES, "cases.tsv"), FIXTURES)]
    if a.corpus and os.path.isfile(os.path.join(a.corpus, "cases.tsv")):
        cases += read_cases(os.path.join(a.corpus, "cases.tsv"), a.corpus)
    elif a.corpus:
        print(f"corpus not found at {a.corpus}: only the fixtures run", file=sys.stderr)
    if a.only:
        cases = [c for c in cases if a.only in c[0]]
    start = time.monotonic()
    home_dir = tempfile.TemporaryDirectory(prefix="compose-diff-home.")
    home = home_dir.name  # an empty HOME, as the corpus's run.sh gives

    def both(case):
        cid, wd, opts, env, args = case
        return case, run_one(cove, wd, opts, env, args, home), run_one(compose, wd, opts, env, args, home)

    with concurrent.futures.ThreadPoolExecutor(max_workers=a.j) as pool:
        results = list(pool.map(both, cases))
    home_dir.cleanup()
    if a.dump:
        with open(a.dump, "w") as f:
            json.dump([[c[0], x, y] for c, x, y in results], f)
    counts = Counter()
    kinds = Counter()
    failed = []
    for (cid, *_), (x, xerr), (y, yerr) in results:
        if x is None and y is None:
            counts["both refuse"] += 1
            if a.v:
                print(f"both refuse: {cid}: cove: {xerr} | docker compose: {yerr}")
        elif x is None or y is None:
            rule = next((r for r in ACCEPTED_REFUSALS if _safe(lambda _p, u, v: r[3](u, v), (), xerr, yerr)), None)
            if rule:
                counts["one refuses (accepted)"] += 1
                kinds[rule[0]] += 1
            else:
                who = "cove" if x is None else "docker compose"
                failed.append(f"DIFF {cid}: only {who} refuses it: {xerr or yerr}")
        else:
            accepted, unlisted = classify(x, y)
            if unlisted:
                lines = [f"  {'.'.join(map(str, p))}: cove {show(u)} | docker compose {show(v)}" for p, u, v in unlisted]
                failed.append(f"DIFF {cid}: {len(unlisted)} unlisted difference(s)\n" + "\n".join(lines))
            elif accepted:
                counts["equal with accepted differences"] += 1
                kinds.update(accepted)
            else:
                counts["equal"] += 1
            if a.v and not unlisted:
                print(f"ok: {cid}" + (f" ({dict(accepted)})" if accepted else ""))
    for f in failed:
        print(f)
    fixtures = sum(1 for c in cases if c[0].startswith("fixture:"))
    if kinds:
        print("accepted differences by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    print(
        f"compared {len(results)} ({fixtures} fixtures, {len(results) - fixtures} corpus cases): "
        f"equal {counts['equal']}; equal with accepted differences {counts['equal with accepted differences']}; "
        f"both refuse {counts['both refuse']}; one refuses (accepted) {counts['one refuses (accepted)']}; different {len(failed)}; {time.monotonic() - start:.0f} s"
    )
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
