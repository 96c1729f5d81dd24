#!/usr/bin/env python3
"""What a variable per upstream node costs a shell step: the fan-out
sink's command of bench/gen_dag.py (`xargs cksum` over 9,998 files) run
with the caller's environment and with 10,000 ADMF_UPSTREAM_<NAME>
variables of kept-folder paths added, medians of REPS runs each, in
turn. The reason a node with more than 1,000 upstream nodes gets
ADMF_UPSTREAM_JSON alone (README, "Upstream results in shell steps").

    bench/env_vars.py [REPS]
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

reps = int(sys.argv[1]) if len(sys.argv) > 1 else 7
with tempfile.TemporaryDirectory(prefix="admf-env-vars.") as work:
    os.makedirs(os.path.join(work, "out"))
    names = [f"out/n{i}.txt" for i in range(1, 9999)]
    for name in names:
        with open(os.path.join(work, name), "w") as f:
            f.write(f"{name}\n")
    with open(os.path.join(work, "list.txt"), "w") as f:
        f.write(" ".join(names) + "\n")
    plain = dict(os.environ)
    many = dict(plain)
    for i in range(10000):
        many[f"ADMF_UPSTREAM_N{i}"] = (
            f"{work}/cache/upstream/0012c1c69e87687de4ecdef05a0ea5fa.6807.{17001631151137 + i}"
        )
    command = ["/bin/sh", "-c", "xargs cksum < list.txt > sink.txt"]
    times = {"plain": [], "10,000 variables": []}
    for _ in range(reps):
        for label, env in (("plain", plain), ("10,000 variables", many)):
            start = time.perf_counter()
            subprocess.run(command, cwd=work, env=env, check=True)
            times[label].append(time.perf_counter() - start)
    base = statistics.median(times["plain"])
    for label, runs in times.items():
        median = statistics.median(runs)
        print(f"{label:18} {median * 1000:7.1f} ms  ({median / base:.2f}x)")
