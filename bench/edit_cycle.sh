#!/bin/bash
# CPU time of edit cycles in a directory that compare_build_tools.sh (or
# gen_dag.py plus one cold build) left behind: REPS times (leaf edit, the
# first no-op after it, one more no-op), then the median wall and CPU
# (user + sys, children included) of each step. CPU is the figure to
# compare on a loaded machine, where wall time mostly measures the wait
# for a core.
#
#   bench/edit_cycle.sh DIR COMMAND...         e.g.
#   bench/edit_cycle.sh /tmp/w/lattice-10000/admf target/release/admf build workflow.yaml -j2
#   bench/edit_cycle.sh /tmp/w/lattice-10000/ninja ninja -j2
set -eu
dir=$1; shift
reps=${REPS:-5}
cd "$dir"
export ADMF_CACHE_DIR="$PWD/.admf-cache" NO_COLOR=1
leaf=$(python3 -c "import json; print(json.load(open('meta.json'))['leaf_edit']['file'])")
times=$(mktemp)
for _ in $(seq "$reps"); do
    echo "leaf edit" >> "$leaf"
    for step in leaf first-noop noop; do
        /usr/bin/time -o "$times.one" -f "$step %e %U %S" "$@" > /dev/null 2>&1
        tail -1 "$times.one" >> "$times"
    done
done
python3 - "$times" <<'PY'
import statistics, sys
steps = {}
for line in open(sys.argv[1]):
    step, wall, user, system = line.split()
    steps.setdefault(step, []).append((float(wall), float(user) + float(system)))
for step, runs in steps.items():
    wall = statistics.median(w for w, _ in runs)
    cpu = statistics.median(c for _, c in runs)
    print(f"{step:10} wall {wall * 1000:6.0f} ms  cpu {cpu * 1000:5.0f} ms  "
          f"(cpu of each: {', '.join(f'{c * 1000:.0f}' for _, c in runs)})")
PY
rm -f "$times" "$times.one"
