#!/usr/bin/env python3
"""Writes a Compose file with N services (default 500) that exercises the
common features: short-form ports and volumes, environment lists, long-form
depends_on with conditions, healthchecks, deploy, and interpolation.

Usage: generate.py [N] [DEPS]. DEPS is the shape of depends_on:
  mesh   (default) each service depends on i-1, i-7 and i-31: the number of
         dependency paths grows exponentially with N (docker compose v2
         walks them: 60 services took it 7.7 s here, 500 did not finish);
  chain  each service depends on i-1 only: one path between two services."""
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
shape = sys.argv[2] if len(sys.argv) > 2 else "mesh"
if shape not in ("mesh", "chain"):
    sys.exit("DEPS: mesh or chain")
out = ["services:"]
for i in range(n):
    out += [
        f"  svc-{i}:",
        f"    image: registry.example/svc-{i}:${{TAG:-1.0}}",
        f"    command: ./svc --port 80{i % 10} --name svc-{i}",
        f"    ports: [\"{20000 + i}:80\"]",
        f"    environment:",
        f"      - SERVICE=svc-{i}",
        f"      - REPLICA_LIMIT={i % 7}",
        f"    volumes: [\"data-{i}:/data\", \"./conf/{i}:/conf:ro\"]",
        f"    healthcheck:",
        f"      test: [\"CMD\", \"true\"]",
        f"      interval: 10s",
        f"      retries: 3",
        f"    deploy:",
        f"      replicas: {1 + i % 3}",
        f"      resources: {{limits: {{memory: 256M}}}}",
    ]
    steps = (1, 7, 31) if shape == "mesh" else (1,)
    deps = [i - s for s in steps if i - s >= 0]
    if deps:
        out.append("    depends_on:")
        for j in deps:
            out.append(f"      svc-{j}: {{condition: service_healthy}}")
out.append("volumes:")
for i in range(n):
    out.append(f"  data-{i}: {{}}")
print("\n".join(out))
