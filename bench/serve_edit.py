#!/usr/bin/env python3
"""The edit cycle (leaf edit, first no-op, one more no-op) of 10,000-node
graphs (bench/gen_dag.py): admf building by itself, admf with `admf
serve` running on its store (the record's questions answered by the
server, the builds with work handed to it and run in its forks), and
ninja, interleaved round by round so that load on the machine hits all
alike. Each figure is the median over REPS rounds of one whole process's
wall time and the mean of its CPU (user + sys), and the CPU of the whole
cycle (the three steps' sum): for the served builds,
the calling process's rusage plus what the server's processes used over
the same steps (read from /proc, 10 ms clock ticks, so a mean over
rounds), so that nothing is hidden in another process.

    bench/serve_edit.py ADMF [REPS] [SHAPES]      (SHAPES: lattice,chain,fanout)
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from procs import cpu_ms_of, run  # noqa: E402

admf = os.path.realpath(sys.argv[1])
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 7
shapes = (sys.argv[3] if len(sys.argv) > 3 else "lattice,chain,fanout").split(",")
repo = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
ninja = shutil.which("ninja") or sys.exit("ninja is not installed")
TOOLS = ("admf", "served", "ninja")
STEPS = ("leaf edit", "first no-op", "no-op")


def server_tree_cpu(pid):
    children = open(f"/proc/{pid}/task/{pid}/children").read().split()
    return cpu_ms_of(pid, True) + sum(cpu_ms_of(int(c), True) for c in children)


def wait_for(path, server):
    deadline = time.time() + 20
    while not os.path.exists(path):
        if time.time() > deadline or server.poll() is not None:
            sys.exit(f"admf serve did not make {path}")
        time.sleep(0.02)


work = tempfile.mkdtemp(prefix="admf-serve-edit.")
env = dict(os.environ, NO_COLOR="1")
env.pop("ADMF_CACHE_DIR", None)
try:
    for shape in shapes:
        dirs = {}
        for tool in TOOLS:
            d = os.path.join(work, f"{shape}-{tool}")
            subprocess.run(
                [sys.executable, f"{repo}/bench/gen_dag.py", "--shape", shape, "--nodes", "10000",
                 "--tool", "admf,ninja", "--out", d],
                check=True, stdout=subprocess.DEVNULL)
            # A project root of its own: the store is <dir>/cache.
            open(os.path.join(d, ".git"), "w").close()
            dirs[tool] = d
        leaf = json.load(open(os.path.join(dirs["ninja"], "meta.json")))["leaf_edit"]["file"]
        admf_build = [admf, "build", "workflow.yaml", "-j2"]
        for tool in ("admf", "served"):
            run(admf_build, dirs[tool], env)
        run([ninja, "-j2"], dirs["ninja"], env)
        time.sleep(1)
        server = subprocess.Popen([admf, "serve"], cwd=dirs["served"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for socket in ("serve.sock", "builds.sock"):
            wait_for(os.path.join(dirs["served"], "cache", socket), server)
        for tool in ("admf", "served"):
            run(admf_build, dirs[tool], env)
        # A handed build, to check the server takes them.
        with open(os.path.join(dirs["served"], leaf), "a") as f:
            f.write("warm-up edit\n")
        _, _, err = run(admf_build, dirs["served"], dict(env, ADMF_TRACE="1"))
        if "built by a process admf serve forked" not in err:
            sys.exit(f"the server did not take the {shape} build:\n{err}")
        run(admf_build, dirs["served"], env)
        walls = {(t, s): [] for t in TOOLS for s in STEPS}
        cpus = {(t, s): [] for t in TOOLS for s in STEPS}
        for _ in range(reps):
            for tool in TOOLS:
                with open(os.path.join(dirs[tool], leaf), "a") as f:
                    f.write("leaf edit\n")
                for step in STEPS:
                    command = [ninja, "-j2"] if tool == "ninja" else admf_build
                    before = server_tree_cpu(server.pid) if tool == "served" else 0
                    cpu, wall, _ = run(command, dirs[tool], env)
                    if tool == "served":
                        # The server finishes what a step started before the next.
                        time.sleep(0.05)
                        cpu += server_tree_cpu(server.pid) - before
                    walls[tool, step].append(wall)
                    cpus[tool, step].append(cpu)
        server.terminate()
        server.wait()
        # A served step's fork may still run (writing the next build's
        # caches) when the next step starts, and its CPU is read only once
        # it is reaped: the steps' CPU split can shift from one step to
        # the next, their sum over the cycle cannot.
        cycle = {t: sum(statistics.mean(cpus[t, s]) for s in STEPS) for t in TOOLS}
        for tool in TOOLS:
            print(f"{shape:8} {'cycle':11} {tool:6} cpu {cycle[tool]:5.0f} ms  "
                  f"vs ninja cpu {cycle[tool] / cycle['ninja']:4.2f}x")
        for step in STEPS:
            n_wall = statistics.median(walls["ninja", step])
            n_cpu = statistics.mean(cpus["ninja", step])
            for tool in TOOLS:
                w = statistics.median(walls[tool, step])
                c = statistics.mean(cpus[tool, step])
                print(f"{shape:8} {step:11} {tool:6} wall {w:5.0f} ms  cpu {c:5.0f} ms  "
                      f"vs ninja wall {w / n_wall:4.2f}x cpu {c / n_cpu:4.2f}x")
finally:
    shutil.rmtree(work, ignore_errors=True)
