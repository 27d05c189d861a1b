#!/bin/sh
# Builds every fuzz target and runs each over its corpus; fails on the first crash, panic, hang
# (10 s) or blow-up (2 GiB), leaving the input in fuzz/artifacts/<target>/.
#
#   fuzz/run.sh [SECONDS]          each target for SECONDS (default 20): the CI run
#   fuzz/run.sh --runs N [TARGET]  each target (or one) for N executions: the long runs
#
# Needs the nightly toolchain and cargo-fuzz (.ci/run installs both). New inputs go to a scratch
# directory, so the committed corpora change only on purpose (docs/fuzzing.md).
set -eu
cd "$(dirname "$0")"
# No sanitizer: the project forbids unsafe code, and without ASan the build and the runs are about
# twice as fast. The timed run (CI's smoke run over the corpora) is a dev build: it compiles in 3.5
# minutes against 8 for release, and its 10 s still replay every corpus and make 10^3-10^5
# executions per target. The long runs (--runs) are release, with the overflow checks and debug
# assertions the dev build has anyway.
limit="-max_total_time=${1:-20}"
only=""
flags="--dev --sanitizer none"
if [ "${1:-}" = "--runs" ]; then
    [ -n "${2:-}" ] || { echo "usage: fuzz/run.sh --runs N [TARGET]" >&2; exit 2; }
    limit="-runs=$2"
    only=${3:-}
    flags="--release --debug-assertions --sanitizer none"
fi
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    flags="$flags --target-dir $CARGO_TARGET_DIR/fuzz"
fi
cargo +nightly fuzz build $flags
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in ${only:-$(cargo +nightly fuzz list)}; do
    echo "== $target: $limit"
    mkdir -p "$scratch/$target" "corpus/$target"
    log="$scratch/$target.log"
    if ! cargo +nightly fuzz run $flags "$target" "$scratch/$target" "corpus/$target" -- \
        "$limit" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
done
