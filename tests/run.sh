#!/bin/sh
# The README's test command: installs what the tests need, then runs every test. Unit tests run
# unprivileged; the root tests in tests/it start real daemons and containers. Without root they
# print SKIPPED; with VRD_TEST_STRICT=1 (CI) a skip is a failure.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then
  sh tests/deps.sh
fi
exec cargo test --all-targets
