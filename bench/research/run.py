"""Research benchmarks of issue 6: admf against vectorbt and numpy.

Usage (through run.sh, which creates the virtualenv):

    bench/research/run.sh [--runs N] [--no-cargo-build] [--no-criterion]
                          [--work DIR] [--results DIR]

One run measures, in order:

1. sweep: 1,000 momentum combinations on data/SPY_D.csv
   - admf: `admf build sweep.yaml -j2` with a fresh `--cache-dir` (cold),
     median of --runs;
   - vectorbt: `Portfolio.from_signals` (close fills, no fees) on the same
     combinations: a fresh process twice (the first also fills numba's
     on-disk cache), plus in-process warm calls;
   - the total returns of every combination checked against vectorbt and
     a numpy implementation to 1e-9.
2. kernels (criterion, `cargo bench --bench research`): the momentum sweep
   kernel, the ensemble search of 10,000 weightings × 20 signal sets and
   10,000 full backtests.
3. replay: the `signal_replay` phase through the binary (10,000 random
   weightings of 20 saved signal sets; the sweep upstream cached, the
   replay node forced), against a vectorised numpy implementation of the
   same vote and Sharpe (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for
   that process only); best weights checked against admf on an exhaustive
   grid (step 0.25, 8,855 weightings).
4. replay vs regenerating: the replay's cost against the same number of
   full backtests, in-process and through the binary.

Writes results/research.json (every raw figure) and results/research.md
(the tables), and prints the tables.
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DATA = ROOT / "data" / "SPY_D.csv"
PEERS = HERE / "peers.py"
TOL = 1e-9

SWEEP_THRESHOLDS = [round(0.002 * i, 6) for i in range(25)]


def log(msg):
    print(f"[research] {msg}", file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def timed(cmd, **kw):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, text=True, capture_output=True, **kw)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(map(str, cmd))}\n{p.stderr[-3000:]}")
    return dt, p


def data_rel(work):
    return os.path.relpath(DATA, work)


def write_workflows(work):
    rel = data_rel(work)
    (work / "sweep.yaml").write_text(
        f"""# 1,000 momentum combinations (40 lookbacks x 25 thresholds), no fees.
data: {{source: csv, symbols: [SPY], path: {rel}}}
strategy: {{type: momentum, parameters: {{lookback: 20, threshold: 0.0}}}}
costs: {{fee: 0.0}}
phases:
  - sweep:
      mode: signal_generation
      grid: {{lookback: "range(5, 200, 5)", threshold: {json.dumps(SWEEP_THRESHOLDS)}}}
"""
    )
    (work / "replay.yaml").write_text(
        f"""# 20 saved signal sets; 10,000 random weightings (and an exhaustive grid
# with step 0.25, 8,855 weightings, to check the numpy peer).
data: {{source: csv, symbols: [SPY], path: {rel}}}
strategy: {{type: momentum, parameters: {{lookback: 20, threshold: 0.0}}}}
costs: {{fee: 0.001}}
phases:
  - signals:
      mode: signal_generation
      grid: {{lookback: [10, 20, 40, 80, 160], threshold: [0.0, 0.01, 0.02, 0.03]}}
  - ensemble:
      mode: signal_replay
      depends_on: [signals]
      weights: {{method: random, samples: 10000, seed: 7}}
  - ensemble_grid:
      mode: signal_replay
      depends_on: [signals]
      weights: {{method: grid, step: 0.25}}
"""
    )


def admf_build(admf, wf, cache, *extra):
    cmd = [str(admf), "build", wf, "-j", "2", "--cache-dir", str(cache), "--json", *extra]
    dt, p = timed(cmd, cwd=wf_dir(wf))
    return dt, json.loads(p.stdout)


def wf_dir(wf):
    return str(Path(wf).parent)


def artifacts(admf, wf, node, cache):
    p = sh([str(admf), "show", wf, node, "--cache-dir", str(cache)], cwd=wf_dir(wf))
    m = re.search(r"^artifacts:\s*(.+)$", p.stdout, re.M)
    if not m:
        raise SystemExit(f"no artifacts line in `admf show {node}`:\n{p.stdout[:2000]}")
    return Path(m.group(1).strip()), p.stdout


def machine():
    info = {"platform": platform.platform(), "python": platform.python_version()}
    try:
        lscpu = sh(["lscpu"]).stdout
        for key in ["Model name", "CPU(s)", "Thread(s) per core", "L2 cache", "L3 cache"]:
            m = re.search(rf"^{re.escape(key)}:\s*(.+)$", lscpu, re.M)
            if m:
                info[key] = m.group(1).strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    try:
        mem = Path("/proc/meminfo").read_text().split("\n")[0]
        info["memory"] = mem.split(":")[1].strip()
    except OSError:
        pass
    try:
        info["rustc"] = sh(["rustc", "--version"]).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    info["loadavg_start"] = os.getloadavg()
    return info


def criterion_estimates(target_dir):
    out = {}
    base = target_dir / "criterion"
    for est in base.glob("*/*/new/estimates.json"):
        name = f"{est.parent.parent.parent.name}/{est.parent.parent.name}"
        e = json.loads(est.read_text())
        bench = json.loads((est.parent / "benchmark.json").read_text())
        out[name] = {
            "mean_ns": e["mean"]["point_estimate"],
            "median_ns": e["median"]["point_estimate"],
            "ci_low_ns": e["mean"]["confidence_interval"]["lower_bound"],
            "ci_high_ns": e["mean"]["confidence_interval"]["upper_bound"],
            "throughput": bench.get("throughput"),
        }
    return out


def fmt_s(x):
    if x is None:
        return "–"
    if x >= 1:
        return f"{x:.2f} s"
    if x >= 1e-3:
        return f"{x * 1e3:.1f} ms"
    return f"{x * 1e6:.1f} µs"


def ratio(a, b):
    return a / b if b else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3, help="cold admf builds per figure (median)")
    ap.add_argument("--no-cargo-build", action="store_true")
    ap.add_argument("--no-criterion", action="store_true", help="reuse target/criterion figures")
    ap.add_argument("--criterion-args", default="", help="extra args after `--`, e.g. '--save-baseline main'")
    ap.add_argument("--work", default=str(ROOT / "bench" / "out" / "research"))
    ap.add_argument("--results", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--tables-only", action="store_true", help="rewrite research.md from research.json")
    args = ap.parse_args()
    if args.tables_only:
        md = tables(json.loads((Path(args.results) / "research.json").read_text()))
        (Path(args.results) / "research.md").write_text(md)
        print(md)
        return 0

    py = sys.executable
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    write_workflows(work)
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    admf = target_dir / "release" / "admf"
    if not args.no_cargo_build:
        log("cargo build --release")
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    raw = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    raw["machine"]["admf_commit"] = sh(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT).stdout.strip()

    # 1. sweep ---------------------------------------------------------------
    sweep = {"combinations": 1000, "jobs": 2, "runs": [], "runs_tmpfs": []}
    admf_trials = None
    # Every cold build gets a new store, and the stores are deleted only
    # after the last run: on ext4, files created just after many deletions
    # cost more (the allocator skips recently freed inodes), and deleting
    # one run's store is not part of the next run's work.
    with tempfile.TemporaryDirectory(prefix="admf-research-") as caches:
        for i in range(args.runs):
            cache = Path(caches) / f"sweep-{i}"
            log(f"admf sweep cold build {i + 1}/{args.runs}")
            dt, report = admf_build(admf, str(work / "sweep.yaml"), cache)
            sweep["runs"].append({"wall_s": dt, "ran": report.get("ran"), "cached": report.get("cached")})
            if admf_trials is None:
                art, _ = artifacts(admf, str(work / "sweep.yaml"), "sweep", cache)
                admf_trials = json.loads((art / "trials.json").read_text())
    sweep["admf_wall_median_s"] = statistics.median(r["wall_s"] for r in sweep["runs"])
    # The same with the store in memory, where the file system costs little.
    if Path("/dev/shm").is_dir():
        with tempfile.TemporaryDirectory(prefix="admf-research-", dir="/dev/shm") as caches:
            for i in range(args.runs):
                log(f"admf sweep cold build, store on tmpfs {i + 1}/{args.runs}")
                dt, _ = admf_build(admf, str(work / "sweep.yaml"), Path(caches) / f"sweep-{i}")
                sweep["runs_tmpfs"].append({"wall_s": dt})
        sweep["admf_wall_tmpfs_median_s"] = statistics.median(r["wall_s"] for r in sweep["runs_tmpfs"])

    vbt = []
    # The first process starts with numba's on-disk cache of vectorbt empty.
    pkg = sh([py, "-c", "import vectorbt, os; print(os.path.dirname(vectorbt.__file__))"]).stdout.strip()
    for f in list(Path(pkg).rglob("*.nbi")) + list(Path(pkg).rglob("*.nbc")):
        f.unlink()
    for i in range(2):
        log(f"vectorbt sweep, fresh process {i + 1}/2")
        out = work / f"vectorbt_sweep_{i}.json"
        dt, _ = timed([py, str(PEERS), "sweep", "--data", str(DATA), "--out", str(out)])
        v = json.loads(out.read_text())
        v["process_wall_s"] = dt
        vbt.append(v)
    sweep["vectorbt"] = [{k: x for k, x in v.items() if k.startswith("t_") or k in ("process_wall_s", "vectorbt_version")} for v in vbt]
    v = vbt[-1]
    # Correctness: admf's total return per combination against vectorbt and numpy.
    by_params = {(t["params"]["lookback"], round(t["params"]["threshold"], 6)): t["metrics"]["total_return"] for t in admf_trials}
    diffs_vbt, diffs_np, checked = [], [], 0
    for c, tv, tn in zip(v["combinations"], v["total_return"], v["numpy_total_return"]):
        a = by_params[(c["lookback"], round(c["threshold"], 6))]
        diffs_vbt.append(abs(a - tv))
        diffs_np.append(abs(a - tn))
        checked += 1
    sweep["check"] = {
        "combinations_checked": checked,
        "max_abs_diff_vs_vectorbt": max(diffs_vbt),
        "max_abs_diff_vs_numpy": max(diffs_np),
        "tolerance": TOL,
        "ok": max(diffs_vbt) <= TOL and max(diffs_np) <= TOL,
    }
    log(f"sweep check: {sweep['check']}")
    raw["sweep"] = sweep

    # 2. kernels -------------------------------------------------------------
    if not args.no_criterion:
        log("cargo bench --bench research")
        cmd = ["cargo", "bench", "--quiet", "--bench", "research", "--"]
        cmd += args.criterion_args.split()
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=sys.stderr)
    crit = criterion_estimates(target_dir)
    raw["criterion"] = crit

    # 3. replay --------------------------------------------------------------
    replay = {"weightings": 10000, "signals": 20, "runs": []}
    rcache = Path(tempfile.mkdtemp(prefix="admf-research-replay-"))
    try:
        wf = str(work / "replay.yaml")
        log("admf replay workflow, first build")
        dt, _ = admf_build(admf, wf, rcache)
        replay["first_build_wall_s"] = dt
        for i in range(args.runs):
            dt, rep = admf_build(admf, wf, rcache, "ensemble", "--force", "ensemble")
            node = next(n for n in rep["nodes"] if n["id"] == "ensemble")
            replay["runs"].append({"wall_s": dt, "node_s": node.get("seconds"), "status": node.get("status")})
        art, shown = artifacts(admf, wf, "ensemble", rcache)
        m = re.search(r"searched (\d+) weightings of (\d+) signals in ([0-9.]+) s", shown)
        replay["search_log_s"] = float(m.group(3)) if m else None
        wj = json.loads((art / "weights.json").read_text())
        replay["admf_score"] = wj["score"]
        given = work / "replay_given_weights.json"
        given.write_text(json.dumps([wj["signals"]]))
        gart, _ = artifacts(admf, wf, "ensemble_grid", rcache)
        gj = json.loads((gart / "weights.json").read_text())
        ppy = json.loads((art / "metrics.json").read_text())["train"]["periods_per_year"]
    finally:
        shutil.rmtree(rcache, ignore_errors=True)
    replay["admf_wall_median_s"] = statistics.median(r["wall_s"] for r in replay["runs"])
    replay["admf_node_median_s"] = statistics.median(r["node_s"] for r in replay["runs"])
    log("numpy replay (OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE unset)")
    env = {k: x for k, x in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    out = work / "numpy_replay.json"
    timed(
        [py, str(PEERS), "replay", "--data", str(DATA), "--out", str(out), "--samples", "10000",
         "--seed", "7", "--fee", "0.001", "--ppy", str(ppy), "--grid-step", "0.25",
         "--weights", str(given)],
        env=env,
    )
    npr = json.loads(out.read_text())
    replay["numpy"] = {k: x for k, x in npr.items() if k not in ("grid",)}
    admf_grid_w = [s["weight"] for s in gj["signals"]]
    replay["check"] = {
        "grid_weightings": npr["grid"]["weightings"],
        "admf_grid_score": gj["score"],
        "numpy_grid_score": npr["grid"]["best_score"],
        "grid_same_weights": admf_grid_w == npr["grid"]["best_weights"],
        "grid_score_diff": abs(gj["score"] - npr["grid"]["best_score"]),
        "random_best_score_diff": abs(wj["score"] - npr["scores_of_given"][0]),
        "tolerance": TOL,
    }
    replay["check"]["ok"] = (
        replay["check"]["grid_same_weights"]
        and replay["check"]["grid_score_diff"] <= TOL
        and replay["check"]["random_best_score_diff"] <= TOL
    )
    log(f"replay check: {replay['check']}")
    raw["replay"] = replay
    raw["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    raw["machine"]["loadavg_end"] = os.getloadavg()

    md = tables(raw)
    (results / "research.json").write_text(json.dumps(raw, indent=2) + "\n")
    (results / "research.md").write_text(md)
    print(md)
    return 0 if sweep["check"]["ok"] and replay["check"]["ok"] else 1


def tables(raw):
    s, c, r, mach = raw["sweep"], raw["criterion"], raw["replay"], raw["machine"]
    v = s["vectorbt"]
    vbt_fresh_cold = v[0]["process_wall_s"]
    vbt_fresh = v[-1]["process_wall_s"]
    vbt_warm = v[-1]["t_warm_median_s"]
    admf_e2e = s["admf_wall_median_s"]
    n_bars = raw["replay"]["numpy"]["bars"]
    strategy_bars = n_bars * s["combinations"]
    k1 = c.get("sweep/kernel_one", {}).get("mean_ns")
    k1000 = c.get("sweep/kernel_1000", {}).get("mean_ns")
    search = c.get("replay/search_10000x20", {}).get("mean_ns")
    search1 = c.get("replay/search_10000x20_1thread", {}).get("mean_ns")
    regen = c.get("regenerate/backtests_10000", {}).get("mean_ns")
    L = []
    L.append("### Sweep: momentum, 1,000 combinations × {:,} bars (data/SPY_D.csv)\n".format(n_bars))
    L.append("| what | time | strategy-bars/s | admf is … faster |")
    L.append("|---|---|---|---|")
    L.append(f"| admf build, cold cache, -j2 (median of {len(s['runs'])}) | {fmt_s(admf_e2e)} | {strategy_bars / admf_e2e / 1e6:.2f} M | 1× |")
    tmpfs = s.get("admf_wall_tmpfs_median_s")
    if tmpfs:
        L.append(f"| admf build, cold cache on tmpfs (/dev/shm), -j2 (median of {len(s['runs_tmpfs'])}) | {fmt_s(tmpfs)} | {strategy_bars / tmpfs / 1e6:.2f} M | vs vectorbt fresh: {ratio(vbt_fresh_cold, tmpfs):.0f}× (numba cache empty), {ratio(vbt_fresh, tmpfs):.0f}× (filled) |")
    L.append(f"| vectorbt, fresh process, numba cache empty | {fmt_s(vbt_fresh_cold)} | {strategy_bars / vbt_fresh_cold / 1e6:.2f} M | {ratio(vbt_fresh_cold, admf_e2e):.2f}× |")
    L.append(f"| vectorbt, fresh process, numba cache filled | {fmt_s(vbt_fresh)} | {strategy_bars / vbt_fresh / 1e6:.2f} M | {ratio(vbt_fresh, admf_e2e):.2f}× |")
    L.append(f"| vectorbt, in process, warm (median of {len(v[-1]['t_warm_s'])}) | {fmt_s(vbt_warm)} | {strategy_bars / vbt_warm / 1e6:.2f} M | {ratio(vbt_warm, admf_e2e):.2f}× |")
    if k1000:
        L.append(f"| admf kernel, 1,000 combinations on 1 core (criterion) | {fmt_s(k1000 / 1e9)} | {strategy_bars / (k1000 / 1e9) / 1e6:.0f} M | kernel vs vectorbt warm: {ratio(vbt_warm, k1000 / 1e9):.0f}× |")
    if k1:
        L.append(f"| admf kernel, 1 combination (criterion) | {fmt_s(k1 / 1e9)} | {n_bars / (k1 / 1e9) / 1e6:.0f} M | |")
    ck = s["check"]
    L.append("")
    L.append(
        f"Total returns of all {ck['combinations_checked']} combinations: max |admf − vectorbt| = "
        f"{ck['max_abs_diff_vs_vectorbt']:.1e}, max |admf − numpy| = {ck['max_abs_diff_vs_numpy']:.1e} "
        f"(tolerance {ck['tolerance']:.0e}: {'ok' if ck['ok'] else 'FAILED'})."
    )
    L.append("")
    L.append("### Replay: 10,000 weightings of 20 signal sets (train-part Sharpe, fee 0.001)\n")
    npt = r["numpy"]["t_search_median_s"]
    L.append("| what | time | numpy / admf |")
    L.append("|---|---|---|")
    if search:
        L.append(f"| admf ensemble search, in process, 2 threads (criterion) | {fmt_s(search / 1e9)} | {ratio(npt, search / 1e9):.1f}× |")
    if search1:
        L.append(f"| admf ensemble search, in process, 1 thread (criterion) | {fmt_s(search1 / 1e9)} | {ratio(npt, search1 / 1e9):.1f}× |")
    L.append(f"| admf signal_replay phase: search as logged (last run) | {fmt_s(r['search_log_s'])} | {ratio(npt, r['search_log_s']):.1f}× |")
    L.append(f"| admf signal_replay node (load signals, search, write), -j2 | {fmt_s(r['admf_node_median_s'])} | {ratio(npt, r['admf_node_median_s']):.1f}× |")
    L.append(f"| admf build of the replay node, whole process | {fmt_s(r['admf_wall_median_s'])} | {ratio(npt, r['admf_wall_median_s']):.1f}× |")
    L.append(f"| numpy, vectorised vote + Sharpe (median of {len(r['numpy']['t_search_s'])}) | {fmt_s(npt)} | 1× |")
    rc = r["check"]
    L.append("")
    L.append(
        f"Check: on the exhaustive grid (step 0.25, {rc['grid_weightings']:,} weightings) numpy and admf pick "
        f"{'the same' if rc['grid_same_weights'] else 'DIFFERENT'} weights, scores differ by {rc['grid_score_diff']:.1e}; "
        f"numpy's Sharpe of admf's best random weighting differs from admf's by {rc['random_best_score_diff']:.1e} "
        f"(tolerance {rc['tolerance']:.0e}: {'ok' if rc['ok'] else 'FAILED'})."
    )
    L.append("")
    L.append("### Replay against regenerating: 10,000 ensemble evaluations vs 10,000 full backtests\n")
    L.append("| level | replay (10,000 weightings) | 10,000 full backtests | ratio |")
    L.append("|---|---|---|---|")
    if search1 and regen:
        L.append(f"| in process, 1 core (criterion) | {fmt_s(search1 / 1e9)} | {fmt_s(regen / 1e9)} | {ratio(regen, search1):.1f}× |")
    per_trial = admf_e2e / s["combinations"]
    L.append(
        f"| through the binary, -j2 | {fmt_s(r['admf_wall_median_s'])} (replay build) | "
        f"{fmt_s(per_trial * 10000)} (10 × the 1,000-trial sweep) | {ratio(per_trial * 10000, r['admf_wall_median_s']):.0f}× |"
    )
    L.append("")
    L.append(
        f"Machine: {mach.get('Model name', '?')}, {mach.get('CPU(s)', '?')} CPUs, {mach.get('memory', '?')}, "
        f"{mach.get('platform')}; {mach.get('rustc', '')}; Python {mach.get('python')}, "
        f"vectorbt {v[-1].get('vectorbt_version', '?')}, numpy {r['numpy'].get('numpy_version', '?')}; "
        f"admf at {mach.get('admf_commit')}."
    )
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
