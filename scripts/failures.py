#!/usr/bin/env python3
"""Prints again what each failing test printed, from a `cargo test` (or
nextest) log: the `---- NAME stdout ----` sections of cargo test, or
nextest's `--- STDOUT/STDERR: ... NAME ---` ones; each cut to its last
6000 characters (where a panic's message and the daemon's log end)."""
import re
import sys

KEEP = 20000

text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
sections = []
# cargo test: "---- name stdout ----" up to the next such header or the
# "failures:" list that ends them.
for m in re.finditer(r"^---- (\S+) stdout ----\n(.*?)(?=^---- \S+ stdout ----\n|^failures:\n|\Z)",
                     text, re.S | re.M):
    sections.append((m.group(1), m.group(2)))
# nextest: "--- STDOUT: binary name ---" / "--- STDERR: ..." sections.
for m in re.finditer(r"^\s*--- (STDOUT|STDERR):\s+(.+?) ---\n(.*?)(?=^\s*--- (?:STDOUT|STDERR):|^\s*(?:PASS|FAIL|SIGABRT|SIGSEGV|TIMEOUT)\b|\Z)",
                     text, re.S | re.M):
    sections.append((f"{m.group(2)} ({m.group(1).lower()})", m.group(3)))
names = re.findall(r"^test (\S+) \.\.\. FAILED$", text, re.M)
print("\n======== failing tests, their output again (last %d characters each) ========" % KEEP)
for name in names:
    print("  FAILED", name)
for name, body in sections:
    body = body.rstrip()
    cut = body[-KEEP:]
    print(f"\n---- {name} ----")
    if len(body) > KEEP:
        print(f"[... {len(body) - KEEP} characters before cut ...]")
    print(cut)
print("======== end of the failing tests' output ========")
