#!/usr/bin/env python3
"""Two admf binaries side by side on served leaf edits: each serves a
10,000-node graph of its own (bench/gen_dag.py) and the two take turns,
round by round, so that load on the machine hits both alike. A round
appends to the graph's leaf input, pauses 0.3 s, builds (the leaf edit),
pauses 0.05 s and builds again (the first no-op). Prints the median wall
time of each step per binary, the first two rounds left out as warm-up,
and the median CPU of the build's coordinator thread where the build
reports it (`ADMF_TRACE=1`: a leaf edit the server forked, a no-op
answered by the calling process), which reflects the build's own work
without the waits that load on the machine adds to wall time.

    bench/serve_ab.py OLD_ADMF NEW_ADMF [ROUNDS] [SHAPE]   (SHAPE: chain, lattice, fanout)
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

binaries = {"old": os.path.realpath(sys.argv[1]), "new": os.path.realpath(sys.argv[2])}
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 10
shape = sys.argv[4] if len(sys.argv) > 4 else "chain"
repo = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
work = tempfile.mkdtemp(prefix="admf-serve-ab.")
env = dict(os.environ, NO_COLOR="1", ADMF_TRACE="1")
env.pop("ADMF_CACHE_DIR", None)
servers = []
try:
    dirs = {}
    for name, admf in binaries.items():
        d = os.path.join(work, name)
        subprocess.run([sys.executable, f"{repo}/bench/gen_dag.py", "--shape", shape, "--nodes",
                        "10000", "--tool", "admf", "--out", d], check=True, stdout=subprocess.DEVNULL)
        open(os.path.join(d, ".git"), "w").close()
        subprocess.run([admf, "build", "workflow.yaml", "-j2"], cwd=d, env=env, check=True,
                       capture_output=True)
        servers.append(subprocess.Popen([admf, "serve"], cwd=d, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        dirs[name] = d
    leaf = json.load(open(os.path.join(dirs["old"], "meta.json")))["leaf_edit"]["file"]
    time.sleep(3)
    walls = {(name, step): [] for name in binaries for step in ("leaf edit", "first no-op")}
    cpus = {key: [] for key in walls}
    for _ in range(rounds):
        for name, admf in binaries.items():
            with open(os.path.join(dirs[name], leaf), "a") as f:
                f.write("leaf edit\n")
            time.sleep(0.3)
            for step in ("leaf edit", "first no-op"):
                started = time.monotonic()
                done = subprocess.run([admf, "build", "workflow.yaml", "-j2"], cwd=dirs[name],
                                      env=env, capture_output=True)
                walls[name, step].append(time.monotonic() - started)
                if done.returncode != 0:
                    sys.exit(f"{name}: {done.stderr.decode()}")
                cpu = re.search(r"coordinator cpu ([0-9.]+)(µs|ms|s)\b", done.stderr.decode())
                scale = {"µs": 0.001, "ms": 1.0, "s": 1000.0}
                cpus[name, step].append(cpu and float(cpu.group(1)) * scale[cpu.group(2)])
                time.sleep(0.05)
            time.sleep(0.5)
    for (name, step), times in walls.items():
        reported = [c for c in cpus[name, step][2:] if c is not None]
        cpu = f"  coordinator cpu {statistics.median(reported):5.1f} ms" if reported else ""
        print(f"{shape:8} {step:11} {name}  wall {1000 * statistics.median(times[2:]):5.0f} ms{cpu}")
finally:
    for server in servers:
        server.terminate()
        server.wait()
    shutil.rmtree(work, ignore_errors=True)
