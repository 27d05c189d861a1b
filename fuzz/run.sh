#!/bin/sh
# Builds every fuzz target and runs each over its corpus for SECONDS (default 20); fails on the
# first crash, panic, hang (10 s) or blow-up (2 GiB), leaving the input in fuzz/artifacts/<target>/.
# Needs the nightly toolchain and cargo-fuzz (.ci/run installs both). New inputs go to a scratch
# directory, so the committed corpora change only on purpose (docs/fuzzing.md).
set -eu
cd "$(dirname "$0")"
seconds=${1:-20}
# Release with overflow checks and debug assertions; no sanitizer: the project forbids unsafe code,
# and without ASan the build and the runs are about twice as fast.
flags="--release --debug-assertions --sanitizer none"
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    flags="$flags --target-dir $CARGO_TARGET_DIR/fuzz"
fi
cargo +nightly fuzz build $flags
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo +nightly fuzz list); do
    echo "== $target: ${seconds}s"
    mkdir -p "$scratch/$target" "corpus/$target"
    log="$scratch/$target.log"
    if ! cargo +nightly fuzz run $flags "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' "$log" || true
done
