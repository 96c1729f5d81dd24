#!/usr/bin/env bash
# The store's figures in one run, each tool as a whole fresh process,
# interleaved round by round so that load on the machine hits all alike:
#   1. the cold 1,000-combination momentum sweep on data/SPY_D.csv, admf
#      (this tree's release build, and an older build given as OLD) against
#      bench/research/numpy_sweep.py; files and bytes the store holds after it;
#   2. the cold 1,000-node `--noop-command` lattice, admf against ninja.
# With SWEEP=10000 the sweep is 100 lookbacks x 100 thresholds instead of
# 40 x 25 (and LATTICE=0 leaves the lattice out).
# Usage: [SWEEP=10000] [LATTICE=0] bench/store/store_v2.sh [ROUNDS] [OLD_ADMF]
set -euo pipefail
ROUNDS=${1:-5}
OLD=${2:-}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
NEW="$REPO/target/release/admf"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/sweep/data" && cp "$REPO/data/SPY_D.csv" "$W/sweep/data/" && touch "$W/sweep/.git"
case "${SWEEP:-1000}" in
  1000) LB=40; NT=25 ;;
  10000) LB=100; NT=100 ;;
  *) echo "SWEEP is 1000 or 10000" >&2; exit 2 ;;
esac
TH=$(python3 -c "import json; print(json.dumps([round(0.002 * i, 6) for i in range($NT)]))")
cat > "$W/sweep/sweep.yaml" <<YAML
data: {source: csv, symbols: [SPY], path: data/SPY_D.csv}
strategy: {type: momentum, parameters: {lookback: 20, threshold: 0.0}}
costs: {fee: 0.0}
phases:
  - sweep:
      mode: signal_generation
      grid: {lookback: "range(5, $((5 * LB)), 5)", threshold: $TH}
YAML
python3 "$REPO/bench/gen_dag.py" --shape lattice --nodes 1000 --tool admf,ninja --noop-command --out "$W/lattice" >/dev/null
t() { /usr/bin/time -f "%e %U %S" "$@" 2>&1 >/dev/null | tail -1; }
for r in $(seq "$ROUNDS"); do
  cd "$W/sweep"
  rm -rf c; echo "sweep admf $(t "$NEW" build sweep.yaml -j2 --cache-dir c)"
  echo "store files $(find c -type f | wc -l) bytes $(du -sb c | cut -f1) disk_kb $(du -sk c | cut -f1)"
  if [ -n "$OLD" ]; then rm -rf o; echo "sweep old $(t "$OLD" build sweep.yaml -j2 --cache-dir o)"
    echo "old_store files $(find o -type f | wc -l) bytes $(du -sb o | cut -f1) disk_kb $(du -sk o | cut -f1)"; fi
  echo "sweep numpy $(t python3 "$REPO/bench/research/numpy_sweep.py" data/SPY_D.csv $LB $NT)"
  [ "${LATTICE:-1}" = 0 ] && continue
  cd "$W/lattice"
  rm -rf cache out/* .ninja_log .ninja_deps; echo "lattice admf $(t "$NEW" build workflow.yaml -j2)"
  if [ -n "$OLD" ]; then rm -rf cache out/*; echo "lattice old $(t "$OLD" build workflow.yaml -j2)"; fi
  rm -rf cache out/* .ninja_log .ninja_deps; echo "lattice ninja $(t ninja -j2)"
done
