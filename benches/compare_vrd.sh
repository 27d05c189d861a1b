#!/usr/bin/env bash
# Compares vrd builds on the container start path: one daemon per vrd binary (each on its own data
# dir and cgroup parent), the same busybox proc set up on each, then `vr runner run` of it timed
# in interleaved rounds (benches/interleave.py), so that every build meets the same load.
#
# Usage (as root): bash benches/compare_vrd.sh NAME=/path/to/vrd [NAME=/path/to/vrd ...]
# Environment: ROUNDS (default 200), BIN_DIR (where `vr` is; default: a release build of the
#              checkout), CPU_HOG=1 (keep one CPU busy with a shell loop while timing).
#
# To time commits: build each (`git worktree add /tmp/c1 COMMIT && cd /tmp/c1 && cargo build
# --release`) and pass their target/x86_64-unknown-linux-gnu/release/vrd. The client is the same
# `vr` for all, so only the daemon, spawner and launcher differ.
# Everything made here (daemons, containers, mounts, cgroups, the temp dir) goes on exit.
set -euo pipefail

ROUNDS=${ROUNDS:-200}
prog=compare_vrd.sh
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/lib.sh
. "$repo/benches/lib.sh"

[ "$(id -u)" = 0 ] || die "must run as root (containers, mounts and cgroups)"
[ $# -ge 1 ] || die "usage: bash benches/compare_vrd.sh NAME=/path/to/vrd [NAME=/path/to/vrd ...]"
need python3 "apt-get install -y python3"

work=""
pids=()
parents=()
hog=""
cleanup() {
  set +e
  [ -n "$hog" ] && kill "$hog" 2>/dev/null
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  [ -n "$work" ] && for p in $(pgrep -f -- "$work/"); do kill -KILL "$p" 2>/dev/null; done
  local parent h
  for parent in "${parents[@]}"; do
    for h in /sys/fs/cgroup/*/"$parent"; do rm_cgroup_tree "$h"; done
  done
  rm_workdir
}
trap_cleanup

vr_binaries
bench_workdir compare
timed=()
for arg in "$@"; do
  name=${arg%%=*}
  vrd=${arg#*=}
  [ -x "$vrd" ] || die "$vrd is not an executable vrd"
  dir=$work/$name
  mkdir -p "$dir/data" "$dir/run"
  parents+=("vrd-compare-$$-$name")
  RUST_LOG=warn "$vrd" daemon --data-dir "$dir/data" --run-dir "$dir/run" \
    --cgroup-parent "vrd-compare-$$-$name" >"$dir/vrd.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do [ -S "$dir/run/vrd.sock" ] && break; sleep 0.1; done
  [ -S "$dir/run/vrd.sock" ] || { cat "$dir/vrd.log" >&2; die "$name: vrd did not start"; }
  true_proc_yaml "$dir/proc.yaml"
  VR_SOCKET=$dir/run/vrd.sock "$bin/vr" runner setup "$dir/proc.yaml" >/dev/null 2>&1 \
    || die "$name: vr runner setup failed"
  VR_SOCKET=$dir/run/vrd.sock "$bin/vr" runner run "$dir/proc.yaml" || die "$name: a first run failed"
  timed+=("$name=VR_SOCKET=$dir/run/vrd.sock::$bin/vr runner run $dir/proc.yaml")
done
# As in container_start.sh: let setup's writes reach the disk before timing.
sync -f "$work"
sleep 5
if [ "${CPU_HOG:-0}" = 1 ]; then
  sh -c 'while :; do :; done' &
  hog=$!
  note "one CPU kept busy by pid $hog while timing"
fi
python3 "$repo/benches/interleave.py" "$ROUNDS" "${timed[@]}"
