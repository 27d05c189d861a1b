#!/bin/sh
# The README's main job: build vr, start vrd on a temporary data dir, deploy the bundled example
# app (examples/hello) on a busybox image through Velociraptor's runner contract, prove it healthy
# with its uptest, show it answering over HTTP, then tear everything down. Run as root.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "demo.sh: vrd makes containers from kernel primitives and must run as root: sudo $0" >&2
  exit 1
fi
sh tests/deps.sh

echo "==> building vr and vrd"
cargo build --bins --quiet
bin=target/x86_64-unknown-linux-gnu/debug
work=$(mktemp -d /tmp/vr-demo.XXXXXX)
cgroup_parent=vr-demo-$$
port=${PORT:-5080}
export VR_SOCKET=$work/run/vrd.sock
cleanup() {
  set +e
  [ -n "${run_pid:-}" ] && kill -TERM "$run_pid" 2>/dev/null && wait "$run_pid" 2>/dev/null
  [ -f "$work/proc.yaml" ] && "$bin/vr" runner teardown "$work/proc.yaml" 2>/dev/null
  [ -n "${vrd_pid:-}" ] && kill -TERM "$vrd_pid" 2>/dev/null && wait "$vrd_pid" 2>/dev/null
  for h in /sys/fs/cgroup/*/"$cgroup_parent" /sys/fs/cgroup/"$cgroup_parent"; do
    [ -d "$h" ] && rmdir "$h" 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "==> making the busybox OS image and the app build"
sh examples/busybox-image.sh "$work/busybox.tar.gz"
tar -C examples/hello -czf "$work/hello.tar.gz" .

echo "==> starting vrd (data in $work/data)"
"$bin/vrd" daemon --data-dir "$work/data" --run-dir "$work/run" --cgroup-parent "$cgroup_parent" 2>"$work/vrd.log" &
vrd_pid=$!
i=0
until "$bin/vr" version >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -lt 100 ] || { cat "$work/vrd.log" >&2; exit 1; }; sleep 0.1
done

cat > "$work/proc.yaml" <<YAML
app_name: hello
version: 1.0-rc1
config_name: demo
release_hash: 0a1b2c3d
proc_name: web
host: 127.0.0.1
port: $port
user: app
group: app
image_url: file://$work/busybox.tar.gz
image_name: busybox
build_url: file://$work/hello.tar.gz
mem_limit: 64M
env:
  GREETING: hello
YAML
echo "==> vr runner setup"
"$bin/vr" runner setup "$work/proc.yaml"
echo "==> vr runner run (in the background)"
"$bin/vr" runner run "$work/proc.yaml" >"$work/app.log" 2>&1 &
run_pid=$!
i=0
until busybox wget -q -O /dev/null "http://127.0.0.1:$port/" 2>/dev/null; do
  i=$((i + 1)); [ $i -lt 100 ] || { cat "$work/app.log" >&2; exit 1; }; sleep 0.1
done
echo "==> vr runner uptest"
"$bin/vr" runner uptest "$work/proc.yaml"
echo "==> GET http://127.0.0.1:$port/"
busybox wget -q -O - "http://127.0.0.1:$port/"
echo "==> the app is served; stopping and tearing down"
