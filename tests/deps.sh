#!/bin/sh
# Installs the Debian packages the demo and the tests use, when any is missing. Run as root.
# One list for both, so the README's commands and CI cannot drift apart.
set -eu
packages=$(cat "$(dirname "$0")/packages.txt")
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "tests/deps.sh: installing$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
if ! command -v cargo >/dev/null; then
  echo "tests/deps.sh: cargo is missing: install a Rust toolchain >= 1.89 (https://rustup.rs), then rerun" >&2
  exit 1
fi
# The vr client ships built against musl (README, "Two builds"): packaging/build.sh needs the
# target (musl-gcc, for its C dependencies, is in packages.txt).
if command -v rustup >/dev/null; then
  if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
    echo "tests/deps.sh: installing the x86_64-unknown-linux-musl target (for the vr client)"
    rustup target add x86_64-unknown-linux-musl
  fi
elif ! [ -d "$(rustc --print target-libdir --target x86_64-unknown-linux-musl 2>/dev/null)" ]; then
  echo "tests/deps.sh: the x86_64-unknown-linux-musl target is missing and there is no rustup to add it" >&2
  exit 1
fi
# The packages and their install test (packaging/test.sh).
for tool in cargo-deb cargo-generate-rpm; do
  if ! command -v "$tool" >/dev/null; then
    echo "tests/deps.sh: installing $tool"
    cargo install "$tool" --locked
  fi
done
# The fuzz run (tests/run.sh, docs/fuzzing.md) needs the nightly toolchain and cargo-fuzz.
if command -v rustup >/dev/null; then
  if ! rustup toolchain list | grep -q '^nightly'; then
    echo "tests/deps.sh: installing the nightly toolchain (for cargo-fuzz)"
    rustup toolchain install nightly --profile minimal
  fi
  if ! command -v cargo-fuzz >/dev/null; then
    echo "tests/deps.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
  fi
fi
