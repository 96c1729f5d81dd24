#!/usr/bin/env bash
# Research benchmarks (issue 6): admf against vectorbt and numpy, one run.
# Creates bench/.venv-research with numpy, pandas and vectorbt when missing,
# then runs run.py (arguments are passed through; see run.py --help).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/bench/.venv-research"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import numpy, pandas, vectorbt" 2>/dev/null; then
    echo "[research] creating $venv (numpy, pandas, vectorbt)" >&2
    python3 -m venv "$venv"
    echo '*' > "$venv/.gitignore"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet numpy pandas vectorbt
fi
exec "$venv/bin/python" "$here/run.py" "$@"
