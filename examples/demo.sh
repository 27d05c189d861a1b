#!/bin/sh
# The README's main job: build vr, start vrd on a temporary data dir with the builtin router, build
# the example app (examples/hello, from a git repository) with the example buildpack
# (examples/buildpacks/static) on a busybox stack, swarm 2 procs of it behind the router, show
# `vr procs list`, and fetch the page through the router. Everything is removed afterwards.
# Run as root: vrd makes containers from kernel primitives.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "demo.sh: vrd makes containers from kernel primitives and must run as root: sudo $0" >&2
  exit 1
fi
sh tests/deps.sh

echo "==> building vr and vrd"
cargo build --bins --quiet
bin=$PWD/target/x86_64-unknown-linux-gnu/debug
work=$(mktemp -d /tmp/vr-demo.XXXXXX)
cgroup_parent=vr-demo-$$
router=${PORT:-8080}
export VR_SOCKET=$work/run/vrd.sock
vr() { "$bin/vr" "$@"; }
cleanup() {
  set +e
  if [ -n "${vrd_pid:-}" ]; then
    vr swarms delete hello-prod-web >/dev/null 2>&1
    kill -TERM "$vrd_pid" 2>/dev/null && wait "$vrd_pid" 2>/dev/null
  fi
  for h in /sys/fs/cgroup/*/"$cgroup_parent" /sys/fs/cgroup/"$cgroup_parent"; do
    [ -d "$h" ] && rmdir "$h" 2>/dev/null
  done
  # vrd keeps its procs dir as a private mount of its own (and a proc's root mounted until it is
  # torn down): unmount what is left under the temp dir, deepest first, before removing it.
  findmnt -rn -o TARGET | grep -F "$work/" | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

git_repo() { # DIR: a git repository of DIR's files, committed and tagged v1
  git -C "$1" init -q -b main
  git -C "$1" add -A
  git -C "$1" -c user.name=demo -c user.email=demo@example.com commit -q -m "$2"
  git -C "$1" tag v1
}

echo "==> the busybox stack image, and git repositories of the app and the buildpack"
sh examples/busybox-image.sh "$work/busybox.tar.gz"
cp -a examples/hello "$work/hello" && rm "$work/hello/Procfile" # web comes from the buildpack
git_repo "$work/hello" "hello, version 1"
cp -a examples/buildpacks/static "$work/static-buildpack"
git_repo "$work/static-buildpack" "the static buildpack"

echo "==> starting vrd (data in $work/data; the builtin router serves pool 'hello' on 127.0.0.1:$router)"
cat > "$work/vrd.toml" <<TOML
[balancers.builtin]
kind = "builtin"
pools = { hello = "127.0.0.1:$router" }
TOML
"$bin/vrd" daemon --config "$work/vrd.toml" --data-dir "$work/data" --run-dir "$work/run" \
  --cgroup-parent "$cgroup_parent" 2>"$work/vrd.log" &
vrd_pid=$!
i=0
until vr version >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -lt 100 ] || { cat "$work/vrd.log" >&2; exit 1; }; sleep 0.1
done

echo "==> defining the stack, the buildpack, the app and its swarm"
vr stacks create busybox --set base_image_url="$work/busybox.tar.gz"
vr buildpacks create static --set repo_url="$work/static-buildpack"
vr apps create hello --set repo_url="$work/hello" --set stack=busybox
vr swarms create --set app=hello --set version=v1 --set size=2 --set pool=hello

echo "==> vr swarm hello-prod-web v1 (build, release, deploy, uptests, route)"
vr swarm hello-prod-web v1
echo "==> vr procs list"
vr procs list
echo "==> GET http://127.0.0.1:$router/ (through the builtin router)"
busybox wget -q -O - "http://127.0.0.1:$router/"
echo "==> the app is served by 2 procs behind the router; removing everything"
