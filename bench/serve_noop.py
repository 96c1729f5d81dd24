#!/usr/bin/env python3
"""Repeated no-op builds of 10,000-node graphs (bench/gen_dag.py): admf
checking its up-to-date record itself, admf asking `admf serve`, and
ninja, interleaved run by run so that load on the machine hits all
alike. Each figure is the median over REPS runs of one whole process:
CPU (user + sys, from the kernel's rusage) and wall. The server's own
CPU for the answers is measured too (its rusage over the served runs,
read from /proc), so that nothing is hidden in the other process.

    bench/serve_noop.py ADMF [REPS] [SHAPES]      (SHAPES: lattice,chain,fanout)
"""

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
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 9
shapes = (sys.argv[3] if len(sys.argv) > 3 else "lattice,chain,fanout").split(",")
repo = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
ninja = shutil.which("ninja") or sys.exit("ninja is not installed")


work = tempfile.mkdtemp(prefix="admf-serve-bench.")
env = dict(os.environ, NO_COLOR="1")
env.pop("ADMF_CACHE_DIR", None)
try:
    for shape in shapes:
        dirs = {}
        for tool in ("admf", "served", "ninja"):
            d = os.path.join(work, f"{shape}-{tool}")
            subprocess.run(
                [sys.executable, f"{repo}/bench/gen_dag.py", "--shape", shape, "--nodes", "10000",
                 "--tool", "admf,ninja", "--out", d],
                check=True, stdout=subprocess.DEVNULL)
            # A project root of its own: the store is <dir>/cache.
            open(os.path.join(d, ".git"), "w").close()
            dirs[tool] = d
        admf_build = [admf, "build", "workflow.yaml", "-j2"]
        for tool in ("admf", "served"):
            run(admf_build, dirs[tool], env)
        run([ninja, "-j2"], dirs["ninja"], env)
        # Old enough files, so that the next builds write and use the record.
        time.sleep(1)
        for tool in ("admf", "served"):
            run(admf_build, dirs[tool], env)
        server = subprocess.Popen([admf, "serve"], cwd=dirs["served"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        socket = os.path.join(dirs["served"], "cache", "serve.sock")
        deadline = time.time() + 20
        while not os.path.exists(socket):
            if time.time() > deadline or server.poll() is not None:
                sys.exit("admf serve did not start")
            time.sleep(0.02)
        # The first question makes the server check every file itself.
        run(admf_build, dirs["served"], env)
        traced = dict(env, ADMF_TRACE="1")
        _, _, err = run(admf_build, dirs["served"], traced)
        if "vouched for by admf serve" not in err:
            sys.exit(f"the server did not vouch for the {shape} record:\n{err}")
        figures = {tool: ([], []) for tool in ("admf", "served", "ninja")}
        served_cpu_before = cpu_ms_of(server.pid)
        for _ in range(reps):
            for tool in ("admf", "served", "ninja"):
                command = [ninja, "-j2"] if tool == "ninja" else admf_build
                cpu, wall, _ = run(command, dirs[tool], env)
                figures[tool][0].append(cpu)
                figures[tool][1].append(wall)
        server_cpu = (cpu_ms_of(server.pid) - served_cpu_before) / reps
        server.terminate()
        server.wait()
        n_cpu = statistics.median(figures["ninja"][0])
        n_wall = statistics.median(figures["ninja"][1])
        for tool, (cpu, wall) in figures.items():
            c, w = statistics.median(cpu), statistics.median(wall)
            print(f"{shape:8} {tool:7} cpu {c:5.0f} ms  wall {w:5.0f} ms  "
                  f"vs ninja cpu {c / n_cpu:4.2f}x wall {w / n_wall:4.2f}x")
        print(f"{shape:8} server  cpu per answer {server_cpu:.1f} ms (mean; 10 ms clock ticks)")
finally:
    shutil.rmtree(work, ignore_errors=True)
