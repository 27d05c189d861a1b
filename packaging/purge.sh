#!/bin/sh
# Ends everything vrd made on this host, in an order that loses nothing on the way and leaves
# nothing behind: every container and launcher, then every mount under /var/lib/vrd (kept roots,
# rw layers, network namespaces, the private procs mount), the private network's bridge and
# nftables table, and only then the data. Run with vrd stopped. It cleans vrd's default places:
# a data_dir or cgroup_parent moved elsewhere in /etc/vrd/vrd.toml is the operator's to remove.
#
# The .deb runs it on purge (packaging/build.sh appends it to the postrm); on RPM hosts, which
# have no purge, run /usr/libexec/vrd/purge as root before removing the package.
set -e
data=/var/lib/vrd
# The launchers and the spawner, left in vrd.service's cgroup by KillMode=process, then every
# container: each process in the cgroups under "vrd", in every hierarchy (v2, or v1 and hybrid).
for dir in /sys/fs/cgroup/system.slice/vrd.service /sys/fs/cgroup/*/system.slice/vrd.service \
    /sys/fs/cgroup/vrd /sys/fs/cgroup/*/vrd; do
    [ -d "$dir" ] || continue
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        pids=$(find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null || true)
        [ -n "$pids" ] || break
        kill -9 $pids 2>/dev/null || true
        sleep 0.5
    done
    case "$dir" in */vrd) find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || true ;; esac
done
# Every mount under the data dir, deepest first (a tree unmounted under a still-mounted parent).
if [ -d "$data" ] && [ -r /proc/self/mounts ]; then
    awk -v d="$data" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r |
        while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
fi
# The private network (docs/network.md), if procs used it.
if command -v ip >/dev/null 2>&1; then ip link delete vr0 2>/dev/null || true; fi
if command -v nft >/dev/null 2>&1; then nft delete table ip vr_vr0 2>/dev/null || true; fi
rm -rf "$data"
