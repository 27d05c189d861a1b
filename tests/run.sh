#!/bin/sh
# The README's test command: installs what the tests need, then runs every test. Unit tests run
# unprivileged; the root tests in tests/it start real daemons and containers. Without root they
# print SKIPPED; with VRD_TEST_STRICT=1 (CI) a skip is a failure. Then the packages' install
# test and a short fuzz run.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
  sh tests/deps.sh
fi
# The state's tests run on SQLite and on PostgreSQL: pg_virtualenv (postgresql-common) makes a
# throwaway cluster for the run, exports PGHOST and the rest, and drops it after. Without it (and
# without a PGHOST of your own) the PostgreSQL halves print SKIPPED.
if [ -z "${PGHOST:-}" ] && command -v pg_virtualenv >/dev/null; then
  pg_virtualenv cargo test --all-targets
else
  cargo test --all-targets
fi
# The .deb and .rpm packages: built, linted, installed, upgraded under a running proc, purged
# (packaging/README.md). Needs root, and this machine's Debian mirror.
if [ "$(id -u)" = 0 ]; then
  sh packaging/test.sh
  # The client that ships is the musl release build packaging/test.sh just made (README, "Two
  # builds"): the tests that lean on the client most run again with it.
  target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  VR_TEST_CLIENT="$target/x86_64-unknown-linux-musl/release/vr" \
    cargo test --test it -- runner:: https:: privilege:: users:: hostile:: seccomp::
elif [ "${VRD_TEST_STRICT:-}" = 1 ]; then
  echo "tests/run.sh: the packaging test needs root (chroot, mounts, dpkg)" >&2
  exit 1
else
  echo "SKIPPED packaging/test.sh: needs root (chroot, mounts, dpkg)"
fi
# A short run of every fuzz target over its corpus (docs/fuzzing.md): nightly and cargo-fuzz,
# which tests/deps.sh installs when run as root.
if command -v cargo-fuzz >/dev/null && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  exec sh fuzz/run.sh "${VRD_FUZZ_SECONDS:-10}"
elif [ "${VRD_TEST_STRICT:-}" = 1 ]; then
  echo "tests/run.sh: the fuzz run needs the nightly toolchain and cargo-fuzz: run sh tests/deps.sh as root" >&2
  exit 1
else
  echo "SKIPPED fuzz: no nightly toolchain or no cargo-fuzz (sh tests/deps.sh installs both as root)"
fi
