#!/usr/bin/env bash
# Mutation testing of the engine core (keys, the rebuild rule in
# src/decide.rs, the store, the stat cache and up-to-date record) and the
# market code with cargo-mutants.
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
# After adding tests, `MUTANTS_ITERATE=1 scripts/mutants.sh FILE` keeps the
# previous results and tests only the mutants they did not catch.
#
# To sample a file, pass cargo-mutants options in MUTANTS_ARGS, e.g.
# MUTANTS_ARGS="--shard 0/3" or MUTANTS_ARGS="--re cagr" (split at spaces).
#
# Environment: MUTANTS_ARGS, MUTANTS_ITERATE, MUTANTS_OUT (output root), MUTANTS_TREE (scratch copy), MUTANTS_FILE_LIMIT (seconds one
# file may take, default 1500), MUTANTS_TEST_TIMEOUT (seconds one mutant's
# tests may take, default 120).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-mutants >/dev/null 2>&1; then
    cargo install cargo-mutants --locked
fi

# Two passes per file, to spend the compile time where it matters: first
# only the integration tests listed in TARGETS (one build of the library),
# then, with `--iterate`, only the mutants that pass survived, against the
# library's unit tests as well (a second, cfg(test) build of the crate).
# The library's unit tests under src/market/ensemble.rs take ten seconds
# in a debug build and exercise only the ensemble, so the other market
# files skip them.
market_tests="--test=market_reference --test=market_strategies_reference
    --test=objectives_reference --test=metrics_edge_reference"
declare -A UNIT_SKIP=(
    [src/market/metrics.rs]="--skip market::ensemble"
    [src/market/strategy.rs]="--skip market::ensemble"
    [src/market/indicators.rs]="--skip market::ensemble"
    [src/market/classifier.rs]="--skip market::ensemble"
    [src/market/equity.rs]="--skip market::ensemble"
    [src/market/trades.rs]="--skip market::ensemble"
    [src/market/regime.rs]="--skip market::ensemble"
    [src/market/csv_load.rs]="--skip market::ensemble"
    [src/market/signals.rs]="--skip market::ensemble"
    [src/key.rs]="--skip market::ensemble"
)

declare -A TARGETS=(
    [src/key.rs]="--test=keys_golden"
    [src/stat_cache.rs]="--test=uptodate --test=build_incremental"
    [src/uptodate.rs]="--test=uptodate --test=build_incremental"
    [src/plan.rs]="--test=build_incremental --test=keys_golden"
    [src/decide.rs]="--test=build_incremental --test=uptodate --test=research_incremental
        --test=pipelines_dirs --test=node_trace"
    [src/store/cas.rs]="--test=store_entries --test=store_concurrency --test=store_maintenance"
    [src/store/index.rs]="--test=store_entries --test=store_concurrency --test=store_maintenance"
    [src/store/entry.rs]="--test=store_entries --test=store_concurrency --test=store_maintenance"
    [src/store/lookup.rs]="--test=store_entries --test=store_concurrency --test=build_incremental"
    [src/store/manifest.rs]="--test=store_entries --test=store_maintenance"
    [src/store/verify.rs]="--test=store_maintenance --test=store_entries"
    [src/store/gc.rs]="--test=store_maintenance"
    [src/market/metrics.rs]="$market_tests"
    [src/market/strategy.rs]="$market_tests"
    [src/market/indicators.rs]="$market_tests"
    [src/market/classifier.rs]="$market_tests"
    [src/market/equity.rs]="$market_tests"
    [src/market/trades.rs]="$market_tests"
    [src/market/regime.rs]="$market_tests"
    [src/market/ensemble.rs]="--test=market_ensemble --test=objectives_reference"
    [src/market/csv_load.rs]="--test=market_loading --test=research_bad_data"
    [src/market/signals.rs]="--test=market_signals"
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

# One cargo-mutants pass: mutate $file in the scratch tree, build and run
# the given cargo test arguments (`--` then test-binary arguments).
mutate() {
    local file=$1 out=$2
    shift 2
    local build_args=() test_args=() seen_dashes=false word
    for word in "$@"; do
        if [ "$word" = -- ]; then
            seen_dashes=true
        elif $seen_dashes; then
            test_args+=("$word")
        else
            # Before `--`: for every cargo invocation, so the build step
            # compiles only these targets.
            build_args+=("--cargo-arg=$word")
        fi
    done
    timeout "$file_limit" cargo mutants --in-place --dir "$tree" \
        --file "$file" --no-shuffle --timeout "$test_timeout" \
        --output "$out" "${ITERATE[@]}" "${SAMPLE[@]}" "${build_args[@]}" -- -- "${test_args[@]}"
}

status=0
for file in "${files[@]}"; do
    targets=${TARGETS[$file]:-}
    if [ -z "$targets" ]; then
        echo "no test targets listed for $file in scripts/mutants.sh" >&2
        exit 2
    fi
    out="$out_root/${file//\//_}"
    ITERATE=()
    if [ "${MUTANTS_ITERATE:-}" = 1 ] && [ -d "$out/mutants.out" ]; then
        ITERATE=(--iterate)
    else
        rm -rf "$out"
    fi
    SAMPLE=()
    read -r -a SAMPLE <<<"${MUTANTS_ARGS:-}"
    echo "== $file: cargo test $targets"
    # shellcheck disable=SC2086 # word lists
    mutate "$file" "$out" $targets || true
    first="$out/mutants.out"
    if [ -s "$first/missed.txt" ]; then
        if [ ${#ITERATE[@]} -eq 0 ]; then
            cp -r "$first" "$out/integration"
        fi
        echo "== $file, survivors: cargo test --lib $targets -- ${UNIT_SKIP[$file]:-}"
        ITERATE=(--iterate)
        # Exactly the survivors: a sample (--shard) taken again after
        # --iterate would pick other mutants.
        SAMPLE=()
        while IFS= read -r name; do
            SAMPLE+=(--re "^$(printf '%s' "$name" | sed 's/[][\\.*^$(){}+?|]/\\&/g')\$")
        done <"$first/missed.txt"
        # shellcheck disable=SC2086
        mutate "$file" "$out" --lib $targets -- ${UNIT_SKIP[$file]:-} || true
    fi
    [ -s "$out/mutants.out/missed.txt" ] && status=1
done

echo
printf '%-28s %7s %7s %8s %9s\n' file caught missed timeout unviable
count() { if [ -f "$1" ]; then grep -c . "$1" || true; else echo 0; fi; }
for file in "${files[@]}"; do
    out="$out_root/${file//\//_}"
    final="$out/mutants.out"
    caught=$(count "$final/caught.txt")
    unviable=$(count "$final/unviable.txt")
    if [ -d "$out/integration" ]; then
        caught=$((caught + $(count "$out/integration/caught.txt")))
        unviable=$((unviable + $(count "$out/integration/unviable.txt")))
    fi
    printf '%-28s %7s %7s %8s %9s\n' "$file" "$caught" \
        "$(count "$final/missed.txt")" "$(count "$final/timeout.txt")" "$unviable"
    if [ -s "$final/missed.txt" ]; then
        sed 's/^/    missed: /' "$final/missed.txt"
    fi
done
echo
echo "The scratch copy $tree is as large as target/; remove it when done."
exit $status
