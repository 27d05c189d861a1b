#!/bin/sh
# Builds vr's packages: vrd and vr as .deb (cargo-deb) and .rpm (cargo-generate-rpm), into
# target/packages/. A release build of each static binary (vrd against glibc, the vr client against
# musl: see README, "Two builds"); the man pages and shell completions
# are generated from the built binaries' clap definitions first (packaging/generated/), so they
# always describe the commands that ship.
#
# Usage: sh packaging/build.sh [--deb-version V]   (V: e.g. 0.1.1-1 for an upgrade test)
# Needs: cargo-deb and cargo-generate-rpm (cargo install --locked cargo-deb cargo-generate-rpm);
#        the musl target and musl-gcc for the client (rustup target add x86_64-unknown-linux-musl;
#        apt-get install musl-tools); lintian and rpmlint only to check the results (packaging/test.sh).
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

rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl || {
    echo "packaging/build.sh: the musl target is missing (vr is built against musl): rustup target add x86_64-unknown-linux-musl" >&2
    exit 1
}
command -v musl-gcc >/dev/null || {
    echo "packaging/build.sh: musl-gcc is missing (vr's C dependencies are built with it): apt-get install musl-tools" >&2
    exit 1
}
cargo build --release --bin vrd
cargo build --release --target x86_64-unknown-linux-musl --bin vr
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
vrd="$target/x86_64-unknown-linux-gnu/release/vrd"
vr="$target/x86_64-unknown-linux-musl/release/vr"

gen=packaging/generated
rm -rf "$gen"
mkdir -p "$gen/man" "$gen/completions"
"$vr" man "$gen/man" >/dev/null
"$vrd" man "$gen/man" >/dev/null
# -n: no name or time stamp in the gzip header, so a rebuild makes the same bytes.
gzip -9n "$gen"/man/*.1
"$vr" completions bash >"$gen/completions/vr.bash"
"$vr" completions zsh >"$gen/completions/_vr"
"$vr" completions fish >"$gen/completions/vr.fish"

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
# Each package from its own target dir: target/release/X in the assets means target/TRIPLE/release/X.
for pair in vrd:x86_64-unknown-linux-gnu vr:x86_64-unknown-linux-musl; do
    variant=${pair%%:*} triple=${pair#*:}
    if [ -n "$version" ]; then
        cargo deb --no-build --target "$triple" --variant "$variant" --deb-version "$version" --output "$out/"
    else
        cargo deb --no-build --target "$triple" --variant "$variant" --output "$out/"
    fi
    cargo generate-rpm --target "$triple" --variant "$variant" --output "$out/"
done
# The policy module is the same on every architecture.
cargo generate-rpm --target x86_64-unknown-linux-gnu --variant vrd-selinux --arch noarch --output "$out/"
ls -1 "$out"
