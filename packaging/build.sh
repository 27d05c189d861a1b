#!/bin/sh
# Builds vr's packages: vrd and vr as .deb (cargo-deb) and .rpm (cargo-generate-rpm), into
# target/packages/. One release build of the static binaries; the man pages and shell completions
# are generated from the built binaries' clap definitions first (packaging/generated/), so they
# always describe the commands that ship.
#
# Usage: sh packaging/build.sh [--deb-version V]   (V: e.g. 0.1.1-1 for an upgrade test)
# Needs: cargo-deb and cargo-generate-rpm (cargo install --locked cargo-deb cargo-generate-rpm);
#        lintian and rpmlint only to check the results (packaging/test.sh).
set -eu
cd "$(dirname "$0")/.."
version=""
if [ "${1:-}" = "--deb-version" ]; then
    version=${2:?usage: sh packaging/build.sh [--deb-version V]}
fi
for tool in cargo-deb cargo-generate-rpm; do
    command -v "$tool" >/dev/null || {
        echo "packaging/build.sh: $tool is missing: cargo install --locked $tool" >&2
        exit 1
    }
done

cargo build --release --bins
bin=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$bin/x86_64-unknown-linux-gnu/release"

gen=packaging/generated
rm -rf "$gen"
mkdir -p "$gen/man" "$gen/completions"
"$bin/vr" man "$gen/man" >/dev/null
"$bin/vrd" man "$gen/man" >/dev/null
# -n: no name or time stamp in the gzip header, so a rebuild makes the same bytes.
gzip -9n "$gen"/man/*.1
"$bin/vr" completions bash >"$gen/completions/vr.bash"
"$bin/vr" completions zsh >"$gen/completions/_vr"
"$bin/vr" completions fish >"$gen/completions/vr.fish"

# The SELinux module (selinux/), for the vrd-selinux rpm.
selinux_make=/usr/share/selinux/devel/Makefile
[ -f "$selinux_make" ] || {
    echo "packaging/build.sh: $selinux_make is missing: apt-get install selinux-policy-dev" >&2
    exit 1
}
mkdir -p "$gen/selinux"
cp selinux/vrd.te selinux/vrd.fc selinux/vrd.if "$gen/selinux/"
make -s -C "$gen/selinux" -f "$selinux_make" vrd.pp >/dev/null

# The maintainer scripts: the postrm's purge is packaging/purge.sh (also shipped in the rpm).
mkdir -p "$gen/debian"
cp packaging/debian/postinst "$gen/debian/"
{ cat packaging/debian/postrm; sed '1,/^set -e$/d' packaging/purge.sh; } >"$gen/debian/postrm"
chmod 755 "$gen/debian/postinst" "$gen/debian/postrm"

out=target/packages
mkdir -p "$out"
for variant in vrd vr; do
    if [ -n "$version" ]; then
        cargo deb --no-build --target x86_64-unknown-linux-gnu --variant "$variant" --deb-version "$version" --output "$out/"
    else
        cargo deb --no-build --target x86_64-unknown-linux-gnu --variant "$variant" --output "$out/"
    fi
done
for variant in vrd vr; do
    cargo generate-rpm --target x86_64-unknown-linux-gnu --variant "$variant" --output "$out/"
done
# The policy module is the same on every architecture.
cargo generate-rpm --target x86_64-unknown-linux-gnu --variant vrd-selinux --arch noarch --output "$out/"
ls -1 "$out"
