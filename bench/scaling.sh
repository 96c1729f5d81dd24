#!/usr/bin/env bash
# Parallel scaling on a many-core machine, every figure a whole fresh
# process, tools interleaved round by round so that the machine's state hits
# all alike:
#   1. the cold 10,000-node lattice (bench/gen_dag.py), admf against ninja,
#      at -j HIGH and -j 2;
#   2. the cold 10,000-combination momentum sweep (100 lookbacks x 100
#      thresholds on data/SPY_D.csv), admf at -j HIGH against admf at -j 2,
#      and bench/research/numpy_sweep.py doing the same.
# Each admf binary given is measured in turn (a release build of this tree and
# an older one, say).
# Every cold lattice build runs in a fresh copy of the generated folder and
# nothing is deleted until the script ends: on ext4 without a journal each
# new inode is found by skipping every inode freed in the last minutes, so a
# build run right after removing the previous build's 40,000 files measures
# those removals, not the tool (see BENCHMARKS.md, "Repeated cold rounds"). Prints one line per run: "<what> <tool> -j<N> <wall> <user> <sys>".
# NODES=N sets the lattice size (smoke tests); JOBS="16" measures only that
# -j; SWEEP=0 leaves the sweeps out; NOOP=1 makes every lattice command
# `: > out/nK.txt` (one process per node instead of two: the tools' own
# work per node stands out).
# Usage: [NODES=N] bench/scaling.sh ROUNDS HIGH NINJA ADMF...
set -euo pipefail
ROUNDS=$1 HIGH=$2
NINJA=$(realpath "$(command -v "$3")")
shift 3
BINS=()
for bin in "$@"; do BINS+=("$(realpath "$(command -v "$bin")")"); done
REPO=$(cd "$(dirname "$0")/.." && pwd)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
NOOP_FLAG=()
[ "${NOOP:-0}" = 1 ] && NOOP_FLAG=(--noop-command)
python3 "$REPO/bench/gen_dag.py" --shape lattice --nodes "${NODES:-10000}" --tool admf,ninja "${NOOP_FLAG[@]}" --out "$W/template" >/dev/null
# A project root of its own: admf looks upwards for one, and a folder above
# holding a store would otherwise serve every build after the first.
touch "$W/template/.git"
fresh=0
# A fresh copy of the lattice to build in, for one cold build.
fresh_lattice() { fresh=$((fresh + 1)); cp -r "$W/template" "$W/lattice.$fresh"; cd "$W/lattice.$fresh"; }
mkdir -p "$W/sweep/data" && cp "$REPO/data/SPY_D.csv" "$W/sweep/data/" && touch "$W/sweep/.git"
TH=$(python3 -c "import json; print(json.dumps([round(0.002 * i, 6) for i in range(100)]))")
cat > "$W/sweep/sweep.yaml" <<YAML
data: {source: csv, symbols: [SPY], path: data/SPY_D.csv}
strategy: {type: momentum, parameters: {lookback: 20, threshold: 0.0}}
costs: {fee: 0.0}
phases:
  - sweep:
      mode: signal_generation
      grid: {lookback: "range(5, 500, 5)", threshold: $TH}
YAML
# Wall, user and system seconds of one command and its children (Python's
# clock and getrusage: GNU time is not on every machine).
cat > "$W/timed.py" <<'PY'
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.call(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=open(sys.argv[1], "w"))
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{wall:.2f} {usage.ru_utime:.2f} {usage.ru_stime:.2f}")
sys.exit(code)
PY
t() { python3 "$W/timed.py" "$W/log" "$@" || { echo "FAILED: $*" >&2; tail -5 "$W/log" >&2; exit 1; }; }
for r in $(seq "$ROUNDS"); do
  for jobs in ${JOBS:-$HIGH 2}; do
    n=0
    for bin in "${BINS[@]}"; do
      n=$((n + 1))
      fresh_lattice
      echo "lattice admf$n -j$jobs $(t "$bin" build workflow.yaml -j"$jobs" --cache-dir cache)"
    done
    fresh_lattice
    echo "lattice ninja -j$jobs $(t "$NINJA" -j"$jobs")"
    n=0
    [ "${SWEEP:-1}" = 0 ] && continue
    for bin in "${BINS[@]}"; do
      n=$((n + 1))
      cd "$W/sweep"
      rm -rf c
      echo "sweep admf$n -j$jobs $(t "$bin" build sweep.yaml -j"$jobs" --cache-dir c)"
    done
  done
  [ "${SWEEP:-1}" = 0 ] && continue
  cd "$W/sweep"
  echo "sweep numpy -j1 $(t python3 "$REPO/bench/research/numpy_sweep.py" data/SPY_D.csv 100 100)"
done
