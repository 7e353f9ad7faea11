#!/usr/bin/env python3
"""Writes SIZE bytes of log lines in cove's log store format
(`<RFC 3339 UTC ms> <out|err> <text>`) into DIR/api-1.log ... api-N.log:
mostly JSON request lines, some plain ones, and one line in 10,000
carrying the word `needle` (so a grep returns a few thousand lines, not
millions: the cost measured is the search, not the printing)."""
import sys, time, os

dir_, size, replicas = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(dir_, exist_ok=True)
per = size // replicas
start_ms = int(time.time() * 1000) - 3600 * 1000
def stamp(ms):
    s, m = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + ".%03dZ" % m
for r in range(1, replicas + 1):
    path = os.path.join(dir_, f"api-{r}.log")
    written, n = 0, 0
    with open(path, "w", buffering=1 << 20) as f:
        ms = start_ms + r
        while written < per:
            block = []
            t = stamp(ms)
            for k in range(1000):
                n += 1
                if n % 10_000 == 0:
                    text = f'{{"level":"error","msg":"needle in request {n}","user":"u{n % 97}"}}'
                elif n % 7 == 0:
                    text = f"WARN slow request {n} took {n % 900} ms on shard {n % 13}"
                else:
                    text = f'{{"level":"info","msg":"GET /api/items/{n} 200","took_ms":{n % 50},"user":"u{n % 97}"}}'
                block.append(f"{t} out {text}\n")
            s = "".join(block)
            f.write(s)
            written += len(s)
            ms += 1
print(f"wrote {replicas} files of ~{per} bytes in {dir_}")
