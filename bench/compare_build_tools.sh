#!/bin/sh
# Installs the peers, builds admf and runs the comparison; see README.md.
exec python3 "$(dirname "$0")/compare_build_tools.py" "$@"
