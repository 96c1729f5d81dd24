#!/usr/bin/env python3
"""Bad-input stress: files too large for the test suite.

Writes a workflow whose one line is 100 MB long, and a CSV data file with a
100 MB line, and checks that `admf validate` / `admf build` reject them with
exit 2 naming file:line, without a panic, in bounded time and memory, and
that the store is left clean. Then runs the proptest fuzz suite with many
cases (PROPTEST_CASES, default 3000).

Usage: scripts/stress_bad_input.py [--mb 100] [--cases 3000] [--admf PATH]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(admf, cwd, *args):
    t0 = time.monotonic()
    out = subprocess.run(["/usr/bin/time", "-f", "maxrss_kb=%M", str(admf), *args], cwd=cwd,
                         capture_output=True, text=True, errors="replace",
                         env=dict(os.environ, NO_COLOR="1"))
    rss = int(re.search(r"maxrss_kb=(\d+)", out.stderr).group(1))
    return out.returncode, out.stderr, time.monotonic() - t0, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--admf", type=Path)
    args = ap.parse_args()
    if args.admf is None:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
        args.admf = REPO / "target" / "release" / "admf"
    scratch = Path(tempfile.mkdtemp(prefix="admf-stress-input-"))
    big = "x" * (args.mb << 20)
    failures = 0
    checks = [
        ("workflow line", "wf.yaml",
         f"phases:\n  - {{name: a, mode: command, run: '{big}'}}\n  - {{name: b, mode: comand}}\n", "wf.yaml:"),
        ("workflow key", "wf.yaml", f"phases:\n  - {{name: a, mode: command, {big}: 1}}\n", "wf.yaml:"),
    ]
    spy = (REPO / "data" / "SPY_D.csv").read_text().splitlines()[:60]
    spy[30] = spy[30].replace(",", "," + "x" * (args.mb << 20), 1)
    for what, name, text, where in checks:
        d = scratch / what.replace(" ", "_")
        d.mkdir()
        (d / name).write_text(text)
        code, err, secs, rss = run(args.admf, d, "validate", name)
        ok = (code == 2 and "panicked" not in err and re.search(re.escape(where) + r"\d", err)
              and len(err) < 10_000)
        print(f"{what} ({args.mb} MB): exit {code} in {secs:.1f}s, max RSS {rss // 1024} MB, {'ok' if ok else 'FAILED'}")
        failures += not ok
    d = scratch / "csv_line"
    d.mkdir()
    (d / "data.csv").write_text("\n".join(spy) + "\n")
    (d / "wf.yaml").write_text("data: {source: csv, symbols: [SPY], path: data.csv}\n"
                               "strategy: {type: momentum, parameters: {lookback: 5}}\n")
    code, err, secs, rss = run(args.admf, d, "build", "wf.yaml", "--cache-dir", "cache")
    vcode, verr, _, _ = run(args.admf, d, "cache", "--cache-dir", "cache", "verify")
    ok = (code == 2 and "panicked" not in err and re.search(r"data\.csv:\d", err) and len(err) < 10_000
          and vcode == 0 and "0 corrupt, 0 temporaries" in verr)
    print(f"CSV line ({args.mb} MB): exit {code} in {secs:.1f}s, max RSS {rss // 1024} MB, store clean: {vcode == 0}, {'ok' if ok else 'FAILED'}")
    failures += not ok
    shutil.rmtree(scratch, ignore_errors=True)

    t0 = time.monotonic()
    fuzz = subprocess.run(["cargo", "test", "--quiet", "--test", "reliability_fuzz"], cwd=REPO,
                          env=dict(os.environ, PROPTEST_CASES=str(args.cases)), capture_output=True, text=True)
    ok = fuzz.returncode == 0
    print(f"fuzz: PROPTEST_CASES={args.cases} per property (2 properties) in {time.monotonic() - t0:.0f}s: {'ok' if ok else 'FAILED'}")
    if not ok:
        print(fuzz.stdout[-4000:], fuzz.stderr[-4000:], file=sys.stderr)
    failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
