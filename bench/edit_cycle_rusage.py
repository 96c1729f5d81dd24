#!/usr/bin/env python3
"""The edit cycle of bench/edit_cycle.sh (leaf edit, first no-op, one more
no-op, REPS times), with each step's CPU (user + sys) read from the
kernel's rusage of the finished process rather than from `time`'s
10 ms figures: differences of a few ms between two builds show. Each
step's wall time is printed beside it (a build may spread its work over
several cores; ninja's no-op runs on one).

    bench/edit_cycle_rusage.py REPS DIR COMMAND...
"""

import json
import os
import statistics
import subprocess
import sys
import time

reps, directory, command = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
os.chdir(directory)
env = dict(os.environ, ADMF_CACHE_DIR=os.path.join(os.getcwd(), ".admf-cache"), NO_COLOR="1")
leaf = json.load(open("meta.json"))["leaf_edit"]["file"]
steps: dict[str, list[float]] = {}
walls: dict[str, list[float]] = {}
for _ in range(reps):
    with open(leaf, "a") as f:
        f.write("leaf edit\n")
    for step in ("leaf", "first-noop", "noop"):
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        _, _, usage = os.wait4(child.pid, 0)
        walls.setdefault(step, []).append((time.perf_counter() - start) * 1000)
        steps.setdefault(step, []).append((usage.ru_utime + usage.ru_stime) * 1000)
for step, cpu in steps.items():
    print(
        f"{step:10} cpu {statistics.median(cpu):5.0f} ms  wall {statistics.median(walls[step]):5.0f} ms"
        f"  (cpu each: {', '.join(f'{c:.0f}' for c in cpu)})"
    )
