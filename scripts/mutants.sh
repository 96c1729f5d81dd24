#!/usr/bin/env bash
# Mutation testing of the engine core and the market code with cargo-mutants.
#
#   scripts/mutants.sh                      every file listed below
#   scripts/mutants.sh src/key.rs ...       only these files
#
# Each file is mutated on its own, and each mutant is built and tested only
# with the test targets that exercise that file (TARGETS below), one job at
# a time, so the whole run stays well under an hour on two cores. Mutants
# are applied in a scratch copy of the tree ($MUTANTS_TREE, default
# target/mutants/tree), never in the working tree; `cp -a` keeps the
# modification times, so the copied target/ stays fresh and the
# dependencies are not rebuilt.
#
# Results go to $MUTANTS_OUT (default target/mutants)/<file>/mutants.out:
# caught.txt, missed.txt, timeout.txt, unviable.txt. The summary printed at
# the end is the table kept in docs/testing.md; every line of a missed.txt
# must be either killed by a new test or listed there as equivalent.
#
# Environment: MUTANTS_OUT (output root), MUTANTS_TREE (scratch copy), MUTANTS_FILE_LIMIT (seconds one
# file may take, default 1500), MUTANTS_TEST_TIMEOUT (seconds one mutant's
# tests may take, default 120).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-mutants >/dev/null 2>&1; then
    cargo install cargo-mutants --locked
fi

# The library's own unit tests under src/market/ensemble.rs take ten seconds
# in a debug build; they exercise only the ensemble, so files that the
# ensemble does not define skip them.
skip_ensemble="-- --skip market::ensemble"
market_tests="--lib --test=market_reference --test=market_strategies_reference
    --test=objectives_reference"

declare -A TARGETS=(
    [src/key.rs]="--lib --test=keys_golden"
    [src/stat_cache.rs]="--lib --test=uptodate --test=build_incremental"
    [src/uptodate.rs]="--lib --test=uptodate --test=build_incremental"
    [src/plan.rs]="--lib --test=build_incremental --test=keys_golden"
    [src/store/entry.rs]="--lib --test=store_entries --test=store_concurrency --test=store_maintenance"
    [src/store/lookup.rs]="--lib --test=store_entries --test=store_concurrency --test=build_incremental"
    [src/store/manifest.rs]="--lib --test=store_entries --test=store_maintenance"
    [src/store/verify.rs]="--lib --test=store_maintenance --test=store_entries"
    [src/store/gc.rs]="--lib --test=store_maintenance"
    [src/market/metrics.rs]="$market_tests $skip_ensemble"
    [src/market/strategy.rs]="$market_tests $skip_ensemble"
    [src/market/indicators.rs]="$market_tests $skip_ensemble"
    [src/market/classifier.rs]="$market_tests $skip_ensemble"
    [src/market/equity.rs]="$market_tests $skip_ensemble"
    [src/market/trades.rs]="$market_tests $skip_ensemble"
    [src/market/regime.rs]="$market_tests $skip_ensemble"
    [src/market/ensemble.rs]="--lib --test=market_ensemble --test=objectives_reference"
    [src/market/csv_load.rs]="--lib --test=market_loading --test=research_bad_data $skip_ensemble"
    [src/market/signals.rs]="--lib --test=market_signals $skip_ensemble"
)

if [ "$#" -gt 0 ]; then
    files=("$@")
else
    mapfile -t files < <(printf '%s\n' "${!TARGETS[@]}" | sort)
fi

out_root=${MUTANTS_OUT:-target/mutants}
file_limit=${MUTANTS_FILE_LIMIT:-1500}
test_timeout=${MUTANTS_TEST_TIMEOUT:-120}
mkdir -p "$out_root"
out_root=$(cd "$out_root" && pwd)
tree=${MUTANTS_TREE:-$out_root/tree}

# A scratch copy of everything but .git and target/, plus target/ itself
# the first time (later runs keep the copy's own build products).
mkdir -p "$tree"
find "$tree" -mindepth 1 -maxdepth 1 ! -name target -exec rm -rf {} +
for entry in * .[!.]*; do
    case "$entry" in
    .git | target) ;;
    *) cp -a "$entry" "$tree/" ;;
    esac
done
if [ ! -d "$tree/target" ] && [ -d target ]; then
    mkdir -p "$tree/target"
    for entry in target/*; do
        [ "$entry" = target/mutants ] || cp -a "$entry" "$tree/target/"
    done
fi

status=0
for file in "${files[@]}"; do
    targets=${TARGETS[$file]:-}
    if [ -z "$targets" ]; then
        echo "no test targets listed for $file in scripts/mutants.sh" >&2
        exit 2
    fi
    out="$out_root/${file//\//_}"
    rm -rf "$out"
    echo "== $file: cargo test $targets"
    # Targets before `--` go to every cargo invocation (so the build step
    # compiles only them); what follows `--` goes to the test binaries.
    build_args=() test_args=()
    seen_dashes=false
    for word in $targets; do
        if [ "$word" = -- ]; then
            seen_dashes=true
        elif $seen_dashes; then
            test_args+=("$word")
        else
            build_args+=("--cargo-arg=$word")
        fi
    done
    if ! timeout "$file_limit" cargo mutants --in-place --dir "$tree" \
        --file "$file" --no-shuffle --timeout "$test_timeout" \
        --output "$out" "${build_args[@]}" -- -- "${test_args[@]}"; then
        status=1
    fi
done

echo
printf '%-28s %7s %7s %8s %9s\n' file caught missed timeout unviable
for file in "${files[@]}"; do
    dir="$out_root/${file//\//_}/mutants.out"
    count() { [ -f "$dir/$1" ] && grep -c . "$dir/$1" || echo 0; }
    printf '%-28s %7s %7s %8s %9s\n' "$file" "$(count caught.txt)" \
        "$(count missed.txt)" "$(count timeout.txt)" "$(count unviable.txt)"
    if [ -s "$dir/missed.txt" ]; then
        sed 's/^/    missed: /' "$dir/missed.txt"
    fi
done
exit $status
