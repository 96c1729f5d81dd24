#!/usr/bin/env python3
"""Crash-safety stress test: SIGKILL `admf build` at random moments.

A scratch project holds a workflow that writes sizeable outputs (command
phases writing several MB each, a backtest and a six-trial parameter sweep
on data/SPY_D.csv). Each round builds one of several variants of it (a
`--set` salt changes the keys), sometimes with `--force-all`, and kills the
build with SIGKILL after a random delay. After every kill:

  1. `admf cache verify` must report 0 corrupt entries (debris under tmp/
     is allowed: it belongs to the dead writer and is never an entry);
  2. the next, uninterrupted build must succeed, and every node's stored
     outputs and every workspace output must be byte-identical to those of
     a clean build of the same variant in a fresh project and cache.

Every `--repair-every` rounds `admf cache verify --repair` runs and a
following `admf cache verify` must find the store fully clean.

A SIGKILLed process cannot take its children with it, so after killing
admf the script also kills what is left of its process group (the running
`sh -c` commands), as a terminal or a job scheduler would. This keeps a
stray command from writing into the next round's workspace.

Usage:
  scripts/stress_kill.py                 # 200 kills, release binary
  scripts/stress_kill.py --kills 20      # a quick run (the integration
                                         # test tests/reliability_kill.rs does 10)
  scripts/stress_kill.py --admf target/debug/admf --seed 7

Exit status 0 when nothing was lost; the last line sums up the figures.
"""

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

WORKFLOW = """\
data: {source: csv, symbols: [SPY], path: data/SPY.csv}
strategy: {type: momentum, parameters: {lookback: 20, threshold: 0.0}}
phases:
  - name: gen_a
    mode: command
    env: {SALT: "0", MB: "MBYTES"}
    run: 'yes "alpha $SALT" | head -c $((MB * 1048576)) > big/a.bin'
    outputs: [big/a.bin]
    depends_on: []
  - name: gen_b
    mode: command
    env: {MB: "MBYTES"}
    run: 'yes "beta" | head -c $((MB * 1048576)) > big/b.bin'
    outputs: [big/b.bin]
    depends_on: []
  - name: join
    mode: command
    run: 'cat big/a.bin big/b.bin big/a.bin > big/ab.bin'
    outputs: [big/ab.bin]
    depends_on: [gen_a, gen_b]
  - name: digest
    mode: command
    run: 'cksum < big/ab.bin > big/sum.txt'
    outputs: [big/sum.txt]
  - name: bt
    mode: backtest
    depends_on: []
  - name: sweep
    mode: signal_generation
    grid: {lookback: [10, 20, 30], threshold: [0.0, 0.01]}
    depends_on: []
"""

OUTPUTS = ["big/a.bin", "big/b.bin", "big/ab.bin", "big/sum.txt"]


def make_project(path: Path, mbytes: int) -> None:
    (path / "data").mkdir(parents=True)
    shutil.copyfile(REPO / "data" / "SPY_D.csv", path / "data" / "SPY.csv")
    (path / "wf.yaml").write_text(WORKFLOW.replace("MBYTES", str(mbytes)))


def variant_args(v: int) -> list:
    return [
        "--set", f"gen_a.env.SALT={v}",
        "--set", f"strategy.parameters.lookback={10 + v % 40}",
    ]


def file_hash(path: Path) -> str:
    h = hashlib.blake2b()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Admf:
    def __init__(self, binary: Path, jobs: int):
        self.binary = binary
        self.jobs = jobs

    def cmd(self, project: Path, *args) -> list:
        return [str(self.binary), *args]

    def run(self, project: Path, *args, check=True) -> subprocess.CompletedProcess:
        env = dict(os.environ, NO_COLOR="1")
        env.pop("ADMF_CACHE_DIR", None)
        out = subprocess.run(
            self.cmd(project, *args), cwd=project, env=env,
            capture_output=True, text=True,
        )
        if check and out.returncode != 0:
            raise Failure(f"admf {' '.join(args)} exited {out.returncode}:\n{out.stderr}")
        return out

    def build(self, project: Path, extra: list) -> dict:
        out = self.run(project, "build", "wf.yaml", "--json", "-j", str(self.jobs),
                       "--cache-dir", "cache", *extra)
        return json.loads(out.stdout)

    def verify(self, project: Path, repair=False) -> tuple:
        args = ["cache", "--cache-dir", "cache", "verify"] + (["--repair"] if repair else [])
        out = self.run(project, *args, check=False)
        m = re.search(r"checked (\d+) entries and \d+ blobs: (\d+) ok, (\d+) corrupt, (\d+) temporaries", out.stderr)
        if not m or "panicked" in out.stderr:
            raise Failure(f"cache verify: unexpected output (exit {out.returncode}):\n{out.stderr}")
        checked, ok, corrupt, debris = map(int, m.groups())
        return checked, corrupt, debris, out


class Failure(Exception):
    pass


def entry_hash(cache: Path, key: str) -> dict:
    """Output name -> hash of its bytes, for the store entry `key`: the
    action row names the blobs; a small blob lives in the index, a
    trial's larger output in a pack under packs/, a large one in blobs/."""
    db = sqlite3.connect(cache / "index" / "index.db", timeout=60)
    try:
        row = db.execute("SELECT outputs FROM actions WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise Failure(f"no entry for key {key}")
        got = {}
        for name, rec in json.loads(row[0]).items():
            digest = rec["blake3"]
            blob = db.execute("SELECT data FROM blobs WHERE digest = ?", (digest,)).fetchone()
            packed = db.execute(
                "SELECT pack, offset, size FROM packed WHERE digest = ?", (digest,)
            ).fetchone()
            if blob:
                data = blob[0]
            elif packed:
                with open(cache / "packs" / packed[0], "rb") as f:
                    f.seek(packed[1])
                    data = f.read(packed[2])
            else:
                data = (cache / "blobs" / digest[:2] / digest).read_bytes()
            got[name] = hashlib.sha256(data).hexdigest()
        return got
    finally:
        db.close()


def artifacts(project: Path, report: dict) -> dict:
    """Node id -> hashes of its entry's outputs; plus workspace outputs."""
    got = {}
    for node in report["nodes"]:
        if node["status"] not in ("ran", "cached"):
            raise Failure(f"node {node['id']} is {node['status']}")
        got[node["id"]] = entry_hash(project / "cache", node["key"])
    for rel in OUTPUTS:
        got["workspace:" + rel] = file_hash(project / rel)
    return got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=200,
                    help="SIGKILLs that land mid-build (default 200); a build that ends before its kill is a round without one")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--admf", type=Path, help="the binary (default: build and use target/release/admf)")
    ap.add_argument("--jobs", type=int, default=2, help="-j for every build (default 2)")
    ap.add_argument("--mb", type=int, default=8, help="MB written by each generating command (default 8)")
    ap.add_argument("--repair-every", type=int, default=10)
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()

    if args.admf is None:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
        args.admf = REPO / "target" / "release" / "admf"
    admf = Admf(args.admf.resolve(), args.jobs)
    rng = random.Random(args.seed)

    scratch = Path(tempfile.mkdtemp(prefix="admf-stress-kill-"))
    project = scratch / "project"
    make_project(project, args.mb)

    references: dict = {}

    def reference(v: int) -> dict:
        if v not in references:
            clean = scratch / f"reference-{v}"
            make_project(clean, args.mb)
            references[v] = artifacts(clean, admf.build(clean, variant_args(v)))
            shutil.rmtree(clean)
        return references[v]

    # Calibrate: how long does a full build take?
    t0 = time.monotonic()
    reference(0)
    full = time.monotonic() - t0

    # How long restoring a built variant into the workspace takes.
    make_project(scratch / "calibrate", args.mb)
    admf.build(scratch / "calibrate", variant_args(0))
    admf.build(scratch / "calibrate", variant_args(1))
    t0 = time.monotonic()
    admf.build(scratch / "calibrate", variant_args(0))
    restore = max(time.monotonic() - t0, 0.05)
    shutil.rmtree(scratch / "calibrate")
    print(f"admf {args.admf}: full build {full:.2f}s, restore {restore:.2f}s, {args.kills} kills", flush=True)

    finish_times: dict = {"new": [], "force": [], "restore": []}
    built: set = set()
    next_variant = 0
    stats = dict(kills=0, finished_first=0, new=0, force=0, restore=0, corrupt=0, debris_seen=0,
                 repairs=0, rebuilds=0, entries_max=0)
    started = time.monotonic()
    try:
        round_ = -1
        while stats["kills"] < args.kills:
            round_ += 1
            # What the killed build has to do: a variant never built here
            # (everything runs), a built one with --force-all (everything
            # reruns over existing entries), or a built one whose outputs
            # must be restored into the workspace from the store.
            kind = rng.choices(["new", "force", "restore"], [0.5, 0.3, 0.2])[0]
            if kind == "new" or not built:
                kind = "new"
                v = next_variant
                next_variant += 1
            else:
                v = rng.choice(sorted(built))
            extra = variant_args(v)
            if kind == "force":
                extra.append("--force-all")
            stats[kind] += 1
            built.add(v)
            # Kill within the time this kind of build takes (learnt from the
            # builds that finished before their kill).
            seen = sorted(finish_times[kind])
            expected = seen[len(seen) // 2] if seen else (restore if kind == "restore" else full)
            delay = rng.uniform(0.0, expected * 1.1)
            env = dict(os.environ, NO_COLOR="1")
            env.pop("ADMF_CACHE_DIR", None)
            proc = subprocess.Popen(
                admf.cmd(project, "build", "wf.yaml", "-j", str(args.jobs), "--cache-dir", "cache", *extra),
                cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            t0 = time.monotonic()
            try:
                proc.wait(timeout=delay)
                stats["finished_first"] += 1
                finish_times[kind].append(time.monotonic() - t0)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                stats["kills"] += 1
            proc.wait()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            time.sleep(0.01)

            checked, corrupt, debris, out = admf.verify(project)
            stats["entries_max"] = max(stats["entries_max"], checked)
            if corrupt:
                stats["corrupt"] += corrupt
                raise Failure(f"round {round_}: verify found corrupt entries:\n{out.stderr}")
            stats["debris_seen"] += debris

            report = admf.build(project, variant_args(v))
            stats["rebuilds"] += 1
            got = artifacts(project, report)
            want = reference(v)
            if got != want:
                diff = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
                raise Failure(f"round {round_}: artifacts differ from a clean build: {diff}")

            if (round_ + 1) % args.repair_every == 0:
                admf.verify(project, repair=True)
                stats["repairs"] += 1
                checked, corrupt, debris, out = admf.verify(project)
                if corrupt or debris or out.returncode != 0:
                    raise Failure(f"round {round_}: store not clean after --repair:\n{out.stderr}")
            if (round_ + 1) % 10 == 0:
                print(f"  round {round_ + 1}: {stats}", flush=True)
    except Failure as e:
        print(f"FAILED: {e}", file=sys.stderr)
        print(f"scratch directory kept: {scratch}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    print(
        f"OK: {round_ + 1} rounds in {elapsed:.0f}s: {stats['kills']} SIGKILLs mid-build "
        f"({stats['finished_first']} builds finished before their kill); "
        f"{stats['new']} new variants, {stats['force']} --force-all, {stats['restore']} restores; "
        f"0 corrupt entries, {stats['rebuilds']} rebuilds byte-identical to a clean build, "
        f"{stats['debris_seen']} debris paths seen, {stats['repairs']} repairs left a clean store; "
        f"up to {stats['entries_max']} entries"
    )
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
