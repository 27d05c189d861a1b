#!/bin/sh
# Peer mode on one machine: a coordinating vrd and two hosts, each in a network namespace of its
# own on a private bridge (198.18.0.0/24, no route out), as shared/spec/fleet.md §3 describes. The
# hosts join with `vr hosts add` + `vrd join`, a 3-proc swarm of examples/hello spreads over all
# three machines behind the coordinator's router, `vr procs list` shows the fleet, then host h2 is
# drained. Everything is removed afterwards. Run as root.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "fleet.sh: vrd makes containers and network namespaces and must run as root: sudo $0" >&2
  exit 1
fi
sh tests/deps.sh

echo "==> building vr and vrd"
cargo build --bins --quiet
bin=$PWD/target/x86_64-unknown-linux-gnu/debug
work=$(mktemp -d /tmp/vr-fleet.XXXXXX)
ns=vrf$$
pids=""
export VR_SOCKET=$work/1/run/vrd.sock
vr() { "$bin/vr" "$@"; }
in_ns() { n=$1; shift; nsenter --net=/run/netns/$ns$n -- "$@"; }
cleanup() {
  set +e
  [ -n "$pids" ] && vr swarms delete hello-prod-web >/dev/null 2>&1 # retires the procs on every host
  for pid in $pids; do kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  # Procs outlive vrd by design: whatever a failed run left in the demo's cgroups is ended here.
  for i in 1 2 3; do
    cat /sys/fs/cgroup/*/vr-fleet-$ns-$i/*/cgroup.procs /sys/fs/cgroup/vr-fleet-$ns-$i/*/cgroup.procs \
      2>/dev/null | while read -r pid; do kill -KILL "$pid"; done
  done
  sleep 0.5
  for i in 1 2 3; do
    for h in /sys/fs/cgroup/*/vr-fleet-$ns-$i /sys/fs/cgroup/vr-fleet-$ns-$i; do
      [ -d "$h" ] && find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    ip netns del "$ns$i" 2>/dev/null
  done
  ip netns del "${ns}s" 2>/dev/null
  findmnt -rn -o TARGET | grep -F "$work/" | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "==> three machines: network namespaces $ns{1,2,3} on a bridge, 198.18.0.{1,2,3}"
ip netns add "${ns}s"
ip -n "${ns}s" link add br0 type bridge
ip -n "${ns}s" link set br0 up
for i in 1 2 3; do
  ip netns add "$ns$i"
  ip link add "${ns}h$i" type veth peer name "${ns}p$i"
  ip link set "${ns}h$i" netns "$ns$i"
  ip link set "${ns}p$i" netns "${ns}s"
  ip -n "${ns}s" link set "${ns}p$i" master br0 up
  ip -n "$ns$i" link set lo up
  ip -n "$ns$i" link set "${ns}h$i" name eth0
  ip -n "$ns$i" addr add "198.18.0.$i/24" dev eth0
  ip -n "$ns$i" link set eth0 up
done

git_repo() { # DIR MESSAGE: a git repository of DIR's files, committed and tagged v1
  git -C "$1" init -q -b main
  git -C "$1" add -A
  git -C "$1" -c user.name=demo -c user.email=demo@example.com commit -q -m "$2"
  git -C "$1" tag v1
}
sh examples/busybox-image.sh "$work/busybox.tar.gz"
cp -a examples/hello "$work/hello" && rm "$work/hello/Procfile"
git_repo "$work/hello" "hello, version 1"
cp -a examples/buildpacks/static "$work/static-buildpack"
git_repo "$work/static-buildpack" "the static buildpack"

start_vrd() { # N NAME EXTRA-TOML: vrd of machine N, host_name NAME
  mkdir -p "$work/$1"
  cat > "$work/$1/vrd.toml" <<TOML
data_dir = "$work/$1/data"
run_dir = "$work/$1/run"
cgroup_parent = "vr-fleet-$ns-$1"
host_name = "$2"
$3
TOML
  # nsenter execs vrd, so $! is vrd itself (a backgrounded shell function would be a subshell).
  nsenter --net=/run/netns/$ns$1 -- "$bin/vrd" daemon --config "$work/$1/vrd.toml" 2>"$work/$1/vrd.log" &
  pids="$pids $!"
  i=0
  until VR_SOCKET=$work/$1/run/vrd.sock "$bin/vr" version >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || { cat "$work/$1/vrd.log" >&2; exit 1; }; sleep 0.1
  done
}

echo "==> the coordinator (machine 1): peer port 198.18.0.1:7443, router 198.18.0.1:8080"
start_vrd 1 coord 'peer_listen = "198.18.0.1:7443"
[balancers.builtin]
kind = "builtin"
pools = { hello = "198.18.0.1:8080" }'

for i in 2 3; do
  name=h$((i - 1))
  echo "==> vr hosts add $name; vrd join on machine $i"
  join=$(vr hosts add "$name" --address "198.18.0.$i" | sed -n 's/^ *vrd join //p')
  mkdir -p "$work/$i"
  printf 'data_dir = "%s"\nrun_dir = "%s"\n' "$work/$i/data" "$work/$i/run" > "$work/$i/join.toml"
  # shellcheck disable=SC2086 # the join arguments are words
  in_ns "$i" "$bin/vrd" join $join --config "$work/$i/join.toml"
  start_vrd "$i" "$name" ""
done
until vr hosts links | grep -q '^h2 .*connected'; do sleep 0.2; done
vr hosts links

echo "==> a 3-proc swarm over the fleet"
vr stacks create busybox --set base_image_url="$work/busybox.tar.gz"
vr buildpacks create static --set repo_url="$work/static-buildpack"
vr apps create hello --set repo_url="$work/hello" --set stack=busybox
vr swarms create --set app=hello --set version=v1 --set size=3 --set pool=hello
vr swarm hello-prod-web v1
echo "==> vr procs list (the whole fleet, from the coordinator)"
vr procs list
echo "==> GET http://198.18.0.1:8080/ from machine 1, three times"
for _ in 1 2 3; do in_ns 1 busybox wget -q -O - http://198.18.0.1:8080/ | grep '<h1>'; done
echo "==> vr hosts list: state, last heartbeat, procs, version of every host"
vr hosts list
echo "==> vr logs --swarm hello-prod-web -n 2: every proc's log, on every host, merged"
vr logs --swarm hello-prod-web -n 2
echo "==> vr hosts drain h2: its proc is replaced and routed elsewhere first"
vr hosts drain h2
vr procs list
echo "==> the fleet served throughout; removing everything"
