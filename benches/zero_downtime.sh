#!/usr/bin/env bash
# Zero-downtime benchmark (issue 5 §6): a 2-proc swarm behind each balancer (the builtin router,
# nginx, haproxy, varnish; real programs, private instances on loopback) is redeployed
# ZDT_REDEPLOYS times (a config change each time: a new release) under continuous HTTP load, then
# 50 concurrent changes of one pool are made on each balancer. Prints markdown (the form used in
# docs/benchmarks.md, section "Zero-downtime redeploys"): requests answered and failed, swap times
# (vrd's "Uptests passed" to the first answer from the new release through the balancer).
#
# The work is the ignored test `zero_downtime::benchmark` in tests/it (the same code as the CI
# tests: tests/it/zero_downtime.rs, the load generator tests/it/load.rs, the proxies
# tests/it/proxies.rs), built with `cargo test --release`. The test harness removes what it made:
# each vrd (and its procs' launchers and cgroups), each proxy, each temp dir.
#
# Usage (as root, from anywhere): bash benches/zero_downtime.sh
# Environment: ZDT_REDEPLOYS (per balancer, default 10), PROFILE (release or debug, default
#              release), CARGO_TARGET_DIR (where cargo builds).
set -euo pipefail

ZDT_REDEPLOYS=${ZDT_REDEPLOYS:-10}
PROFILE=${PROFILE:-release}
prog=zero_downtime.sh
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# shellcheck source=benches/lib.sh
. "$repo/benches/lib.sh"

[ "$(id -u)" = 0 ] || die "must run as root (vrd runs the swarm's containers)"
need cargo "install Rust (rustup) so vr can be built"
need git "apt-get install -y git"
need nginx "apt-get install -y nginx"
need haproxy "apt-get install -y haproxy"
need varnishd "apt-get install -y varnish"
[ -x /bin/busybox ] || die "/bin/busybox is missing: apt-get install -y busybox-static"
[[ $ZDT_REDEPLOYS =~ ^[1-9][0-9]*$ ]] || die "ZDT_REDEPLOYS must be a positive number"
test_profile

report=$(mktemp /tmp/vr-bench-zdt.XXXXXX)
trap 'rm -f "$report"' EXIT

run_ignored_test zero_downtime::benchmark ZDT_REDEPLOYS="$ZDT_REDEPLOYS" ZDT_REPORT="$report"
echo
report_header "$(nginx -v 2>&1 | sed 's/^nginx version: //'), $(haproxy -v | head -1 | awk '{ print $1, $3 }'), $(varnishd -V 2>&1 | head -1 | sed 's/^varnishd (\(.*\)) *$/\1/; s/ revision.*//')." \
  "$ZDT_REDEPLOYS redeploys per balancer; load: 4 workers, each a \`Connection: close\` GET then 5 ms of pause."
echo
cat "$report"
