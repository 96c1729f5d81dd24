"""What bench/serve_noop.py and bench/serve_edit.py share: one whole
process run with its CPU from the kernel's rusage, and a process's CPU
read from /proc."""

import os
import subprocess
import sys
import tempfile
import time


def run(command, cwd, env):
    """Run `command`; (CPU ms, wall ms, stderr). Exits on failure."""
    # stderr into a file: a cold build's progress would fill a pipe.
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=log)
        _, status, usage = os.wait4(child.pid, 0)
        wall = (time.perf_counter() - start) * 1000
        log.seek(0)
        err = log.read().decode(errors="replace")
    if status != 0:
        sys.exit(f"{' '.join(command)} failed in {cwd}:\n{err}")
    return (usage.ru_utime + usage.ru_stime) * 1000, wall, err


def cpu_ms_of(pid, waited_children=False):
    """CPU (user + sys) of process `pid`, with that of the children it has
    waited for when asked."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    end = 15 if waited_children else 13
    return sum(int(f) for f in fields[11:end]) * 1000 / ticks
