#!/bin/sh
# The packages' install test, as root, in a throwaway Debian root: builds this version and a
# "next" one (packaging/build.sh), makes a bookworm root with systemd (mmdebstrap), and there:
# installs vr and vrd (group, files, conffile, enabled units, the binaries and man pages from their
# installed paths, systemd-analyze verify). Then the installed vrd runs on this machine's kernel
# (chrooted into that root, with /proc, /sys and /dev bound in) and deploys a proc; the next
# version is installed under it with an edited conffile kept; vrd is restarted the way systemd
# does (SIGTERM to the main process only, KillMode=process) from the new binary and adopts the
# proc with its pid and its log intact; `dpkg -r` leaves the proc and the data; `dpkg -P` ends the
# proc and leaves no mount, cgroup or data. Then checks the rpms' contents and scriptlets
# statically (no RPM userland here).
#
# Usage: sh packaging/test.sh      Needs: mmdebstrap, rpm, rpmlint, lintian, busybox-static, cargo-deb,
# cargo-generate-rpm (tests/deps.sh installs them all), this machine's Debian mirror (or
# VR_DEBIAN_MIRROR), and no other vrd on this machine using the default cgroup_parent "vrd" (the
# purge ends every process under it).
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "packaging/test.sh: run as root (chroot, mmdebstrap, mounts)" >&2; exit 1; }
for cg in /sys/fs/cgroup/vrd /sys/fs/cgroup/*/vrd; do
    [ ! -d "$cg" ] || {
        echo "packaging/test.sh: $cg exists: a vrd with the default cgroup_parent runs here, and the purge test would end its procs; stop it first" >&2
        exit 1
    }
done
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
sh packaging/build.sh >/dev/null
sh packaging/build.sh --deb-version "$version-2" >/dev/null
out=target/packages
root=$(mktemp -d /tmp/vr-pkgtest.XXXXXX)
vrd_pid=""

# Ends whatever the test started, even on failure: vrd, the procs under the default cgroup parent,
# the mounts under the root; the root is deleted only once nothing is mounted there.
cleanup() {
    [ -z "$vrd_pid" ] || kill -9 "$vrd_pid" 2>/dev/null || true
    for cg in /sys/fs/cgroup/vrd /sys/fs/cgroup/*/vrd; do
        [ -d "$cg" ] || continue
        find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        sleep 0.5
        find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
    awk -v r="$root" 'index($2, r "/") == 1 || $2 == r { print $2 }' /proc/self/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
    if awk -v r="$root" 'index($2, r) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
        echo "packaging/test.sh: mounts are left under $root; not deleting it" >&2
    else
        rm -rf "$root"
    fi
}
trap cleanup EXIT
fail() { echo "packaging/test.sh: FAILED: $*" >&2; exit 1; }
in_root() { chroot "$root" sh -c "$1"; }

# The Debian mirror this machine's apt uses (VR_DEBIAN_MIRROR overrides it).
mirror=${VR_DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\([^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
mirror=${mirror:-http://deb.debian.org/debian}
mmdebstrap --quiet --variant=apt --include=systemd,systemd-sysv,passwd,man-db bookworm "$root" "$mirror" \
    || fail "mmdebstrap could not make a Debian root from $mirror (network? set VR_DEBIAN_MIRROR)"
cp "$out/vr_${version}-1_amd64.deb" "$out/vrd_${version}-1_amd64.deb" \
    "$out/vrd_${version}-2_amd64.deb" "$root/tmp/"

echo "== install"
in_root "dpkg -i /tmp/vr_${version}-1_amd64.deb /tmp/vrd_${version}-1_amd64.deb" >/dev/null \
    || fail "dpkg -i"
in_root "getent group vr" >/dev/null || fail "no vr group"
[ "$(in_root 'cat /var/lib/dpkg/info/vrd.conffiles')" = "/etc/vrd/vrd.toml" ] || fail "conffiles"
in_root "vrd --version" | grep -q "vrd $version" || fail "vrd --version"
in_root "vr --help" | grep -q "Usage: vr" || fail "vr --help"
[ "$(in_root 'readlink /usr/bin/vrun')" = "vr" ] || fail "vrun link"
[ "$(in_root 'systemctl is-enabled vrd.socket vrd.service' | tr '\n' ' ')" = "enabled enabled " ] \
    || fail "units not enabled"
in_root "systemd-analyze verify /usr/lib/systemd/system/vrd.socket /usr/lib/systemd/system/vrd.service" \
    || fail "systemd-analyze verify"
in_root "man -w vr vrd vrun vr-swarm" >/dev/null || fail "man pages"

echo "== the installed vrd runs a proc"
# The installed binaries run on this machine, on the root's /var/lib/vrd and /run/vrd (a vrd in a
# chroot would pivot its containers to a root below its namespace's, which a proc's later runs,
# entering its kept namespace, do not see). The root gets this machine's /proc and /sys (rslave:
# unmounting them there never propagates back) for the maintainer scripts, which run chrooted.
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --make-rslave "$root/sys"
sh examples/busybox-image.sh "$root/tmp/busybox.tar.gz"
export VR_SOCKET="$root/run/vrd/vrd.sock"
vr() { "$root/usr/bin/vr" "$@"; }
start_vrd() {
    NO_COLOR=1 "$root/usr/bin/vrd" daemon --config "$root/etc/vrd/vrd.toml" --data-dir "$root/var/lib/vrd" \
        --run-dir "$root/run/vrd" --socket "$VR_SOCKET" >>"$root/tmp/vrd.log" 2>&1 &
    vrd_pid=$!
    for _ in $(seq 100); do
        vr procs list >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    cat "$root/tmp/vrd.log" >&2
    fail "the installed vrd did not answer on $VR_SOCKET"
}
# What systemd does on `systemctl restart vrd` with KillMode=process: SIGTERM to vrd alone.
stop_vrd() {
    kill -TERM "$vrd_pid"
    wait "$vrd_pid" || true
    vrd_pid=""
}
proc_pid() { vr procs list --json | sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p' | head -1; }
start_vrd
cat >"$root/tmp/counter.yaml" <<'YAML'
app_name: counter
version: v1
config_name: pkgtest
release_hash: abcd1234
proc_name: web
port: 0
host: 127.0.0.1
image_url: file://BUSYBOX
image_name: busybox
cmd: "i=0; while true; do echo n=$i; i=$((i+1)); usleep 20000; done"
YAML
sed -i "s|BUSYBOX|$root/tmp/busybox.tar.gz|" "$root/tmp/counter.yaml"
vr proc deploy "$root/tmp/counter.yaml" >/dev/null || fail "vr proc deploy"
for _ in $(seq 100); do
    pid=$(proc_pid)
    [ -n "$pid" ] && break
    sleep 0.2
done
if [ -z "$pid" ]; then
    { vr procs list; vr logs counter-v1-pkgtest-abcd1234-web-0; } >&2 || true
    tail -20 "$root/tmp/vrd.log" >&2
    fail "the proc never ran"
fi
sleep 0.5

echo "== upgrade under the running proc, with an edited conffile"
in_root "echo 'drain_secs = 5' >>/etc/vrd/vrd.toml"
inode=$(stat -c %i "$root/usr/bin/vrd")
in_root "dpkg -i --force-confold /tmp/vrd_${version}-2_amd64.deb" >/dev/null || fail "upgrade"
in_root "dpkg-query -W -f='\${Version}' vrd" | grep -q -- "-2$" || fail "not upgraded"
in_root "grep -q '^drain_secs = 5' /etc/vrd/vrd.toml" || fail "the edited conffile was replaced"
kill -0 "$pid" 2>/dev/null || fail "the upgrade ended the proc"
[ "$(stat -c %i "$root/usr/bin/vrd")" != "$inode" ] || fail "dpkg did not replace /usr/bin/vrd"
stop_vrd
kill -0 "$pid" 2>/dev/null || fail "stopping vrd ended the proc"
sleep 0.5
start_vrd
[ "$(proc_pid)" = "$pid" ] || fail "the proc's pid changed across the upgrade: $pid -> $(proc_pid)"
vr logs counter-v1-pkgtest-abcd1234-web-0 | sed -n 's/.*n=\([0-9][0-9]*\)$/\1/p' >"$root/tmp/numbers"
lines=$(wc -l <"$root/tmp/numbers")
[ "$lines" -gt 40 ] || fail "the proc logged only $lines lines through the upgrade"
[ "$(tail -1 "$root/tmp/numbers")" = "$((lines - 1))" ] || fail "lines lost or repeated across the upgrade"

echo "== remove: the proc and the data stay"
stop_vrd  # the prerm's `deb-systemd-invoke stop` without systemd as PID 1
in_root "dpkg -r vrd" >/dev/null || fail "dpkg -r"
in_root "test -d /var/lib/vrd/procs && test -f /etc/vrd/vrd.toml" || fail "remove lost data or config"
kill -0 "$pid" 2>/dev/null || fail "dpkg -r ended the proc"

echo "== purge: the proc, its mounts and cgroups, config and data go"
in_root "dpkg -P vrd" >/dev/null 2>&1 || fail "dpkg -P"
in_root "test ! -e /var/lib/vrd && test ! -e /etc/vrd" || fail "purge left /var/lib/vrd or /etc/vrd"
! kill -0 "$pid" 2>/dev/null || fail "purge left the proc running"
! awk -v d="$root/var/lib/vrd" 'index($2, d) == 1 { found = 1 } END { exit !found }' /proc/self/mounts \
    || fail "purge left mounts under /var/lib/vrd"
for cg in /sys/fs/cgroup/vrd /sys/fs/cgroup/*/vrd; do
    [ ! -d "$cg" ] || fail "purge left the cgroup $cg"
done
in_root "dpkg -P vr" >/dev/null || fail "dpkg -P vr"

echo "== rpms"
rpms="$out/vrd-${version}-1.x86_64.rpm $out/vr-${version}-1.x86_64.rpm $out/vrd-selinux-${version}-1.noarch.rpm"
rpm -qpl "$out/vrd-${version}-1.x86_64.rpm" | grep -qx /usr/bin/vrd || fail "vrd rpm: no /usr/bin/vrd"
rpm -qpc "$out/vrd-${version}-1.x86_64.rpm" | grep -qx /etc/vrd/vrd.toml || fail "vrd rpm: config"
rpm -qpl "$out/vr-${version}-1.x86_64.rpm" | grep -qx /usr/bin/vr || fail "vr rpm: no /usr/bin/vr"
rpm -qpl "$out/vrd-selinux-${version}-1.noarch.rpm" | grep -qx /usr/share/selinux/packages/vrd.pp \
    || fail "vrd-selinux rpm: no module"
for rpm_file in $rpms; do
    rpm -qp --scripts "$rpm_file" | sed -n '/^#\|^[^a-z]*scriptlet/!p' >"$root/scripts.sh"
    sh -n "$root/scripts.sh" || fail "$rpm_file: a scriptlet is not valid sh"
done

echo "== lintian and rpmlint"
lintian --fail-on error,warning "$out/vrd_${version}-1_amd64.deb" "$out/vr_${version}-1_amd64.deb" \
    || fail "lintian (overrides with their reasons: packaging/debian/*.lintian-overrides)"
# Every tag rpmlint may leave is explained in packaging/README.md ("Checks"); any other fails.
explained="statically-linked-binary no-signature no-packager-tag no-group-tag no-buildhost-tag
no-changelogname-tag invalid-license manpage-not-compressed no-manual-page-for-binary no-url-tag
only-non-binary-in-usr-lib"
# shellcheck disable=SC2086
unexplained=$(rpmlint $rpms 2>/dev/null | sed -n 's/^[^ ]*: [EW]: \([a-z0-9-]*\).*/\1/p' | sort -u |
    while read -r tag; do echo " $explained " | tr '\n' ' ' | grep -q " $tag " || echo "$tag"; done)
[ -z "$unexplained" ] || fail "rpmlint tags not explained in packaging/README.md: $unexplained"
echo "packaging/test.sh: all passed"
