#!/usr/bin/env python3
"""Two admf binaries side by side on served leaf edits of the 10,000-node
fan-out (bench/gen_dag.py), each serving a graph of its own, taking turns
round by round: the CPU the forked build's coordinator thread used
(`ADMF_TRACE=1` prints it) and the calling process's wall time, medians
over ROUNDS rounds after two of warm-up. The coordinator's CPU moves far
less with load on the machine than wall time does, so it shows a change
in the sink's own work that the wall time of one run cannot.

    bench/serve_fork_cpu.py OLD_ADMF NEW_ADMF [ROUNDS]
"""

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
repo = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
work = tempfile.mkdtemp(prefix="admf-serve-fork-cpu.")
env = dict(os.environ, NO_COLOR="1")
env.pop("ADMF_CACHE_DIR", None)
servers = []


def build(which, trace=False):
    run_env = dict(env, ADMF_TRACE="1") if trace else env
    done = subprocess.run([binaries[which], "build", "workflow.yaml", "-j2"], cwd=dirs[which],
                          env=run_env, capture_output=True, text=True)
    return done.stderr


try:
    dirs = {}
    for which in binaries:
        d = os.path.join(work, which)
        subprocess.run([sys.executable, f"{repo}/bench/gen_dag.py", "--shape", "fanout",
                        "--nodes", "10000", "--tool", "admf", "--out", d],
                       check=True, stdout=subprocess.DEVNULL)
        open(os.path.join(d, ".git"), "w").close()
        dirs[which] = d
        build(which)
    time.sleep(1)
    for which in binaries:
        servers.append(subprocess.Popen([binaries[which], "serve"], cwd=dirs[which], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + 20
        while not os.path.exists(os.path.join(dirs[which], "cache", "builds.sock")):
            if time.time() > deadline:
                sys.exit(f"admf serve ({which}) did not start")
            time.sleep(0.05)
    time.sleep(1.5)
    cpu = {w: [] for w in binaries}
    wall = {w: [] for w in binaries}
    for r in range(rounds + 2):
        for which in binaries:
            with open(os.path.join(dirs[which], "in", "n1.txt"), "a") as f:
                f.write("leaf edit\n")
            time.sleep(0.3)
            started = time.time()
            err = build(which, trace=True)
            took = time.time() - started
            time.sleep(0.05)
            build(which)
            if "forked" not in err:
                sys.exit(f"the server ({which}) did not take the build:\n{err}")
            found = re.search(r"coordinator cpu ([0-9.]+)(ms|s)", err)
            if r >= 2 and found:
                value = float(found.group(1)) * (1000 if found.group(2) == "s" else 1)
                cpu[which].append(value)
                wall[which].append(took * 1000)
    for which in binaries:
        print(f"fanout leaf edit {which:3}  coordinator cpu {statistics.median(cpu[which]):5.1f} ms"
              f"  wall {statistics.median(wall[which]):4.0f} ms")
finally:
    for server in servers:
        server.terminate()
        server.wait()
    shutil.rmtree(work, ignore_errors=True)
