#!/usr/bin/env bash
# Fleet benchmark (issue 11 §5): real vrds in network namespaces on one machine, as the fleet
# tests run them (shared/spec/fleet.md §3). Five parts, each on a fleet of its own:
#   dispatch   a 20-proc swarm over 3 hosts, `vr swarm` until routed, against a 1-proc swarm (its
#              critical path: one deploy + uptest + route), trials alternated (target <= 1.5x);
#   artifacts  a > 100 MB build fetched by 2 hosts at once from the coordinator's store, against
#              curl copying the same file from nginx over TLS 1.3 on the same links to the same
#              disks, both at once (target <= 1.2x);
#   detection  default timings (heartbeat 5 s, silence 15 s, grace 60 s): a host cut off (link
#              down, then its vrd killed) to its nodes de-routed (target <= 20 s) and to its swarm
#              at full size on the others (target <= 80 s);
#   memory     the coordinator's vrd with 100 idle procs, alone, then with 3 hosts joined;
#   dashboard  500 procs on 3 hosts in the real browser (Chromium, tests/browser/bench.py): the
#              procs page to its first useful paint and to live, a proc's change from vrd's event
#              to its box (p50/p99, target median <= 250 ms), and GET /api/v1/procs against
#              `vr procs list` over the socket (p50/p99).
# Prints markdown (docs/benchmarks.md, section "The fleet"). The work is the ignored test
# `fleet_bench::benchmark` in tests/it, built with `cargo test --release`; the test harness removes
# what it made (vrds, procs, cgroups, namespaces, temp dirs, nginx).
#
# Usage (as root, from anywhere): bash benches/fleet.sh
# Environment: FLEET_TRIALS (per part, default 5), FLEET_PARTS (comma-separated, default all five),
#              PROFILE (release or debug, default release), CARGO_TARGET_DIR (where cargo builds).
set -euo pipefail

FLEET_TRIALS=${FLEET_TRIALS:-5}
FLEET_PARTS=${FLEET_PARTS:-dispatch,artifacts,detection,memory,dashboard}
prog=fleet.sh
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# shellcheck source=benches/lib.sh
. "$repo/benches/lib.sh"

[ "$(id -u)" = 0 ] || die "must run as root (network namespaces, containers)"
need cargo "install Rust (rustup) so vr can be built"
need git "apt-get install -y git"
need ip "apt-get install -y iproute2"
need nsenter "apt-get install -y util-linux"
need nginx "apt-get install -y nginx"
need curl "apt-get install -y curl"
need openssl "apt-get install -y openssl"
need chromium "apt-get install -y chromium chromium-driver python3-selenium"
need chromedriver "apt-get install -y chromium-driver"
[ -x /bin/busybox ] || die "/bin/busybox is missing: apt-get install -y busybox-static"
[[ $FLEET_TRIALS =~ ^[1-9][0-9]*$ ]] || die "FLEET_TRIALS must be a positive number"
test_profile

report=$(mktemp /tmp/vr-bench-fleet.XXXXXX)
trap 'rm -f "$report"' EXIT

run_ignored_test fleet_bench::benchmark FLEET_TRIALS="$FLEET_TRIALS" FLEET_PARTS="$FLEET_PARTS" FLEET_REPORT="$report"
echo
report_header "$(nginx -v 2>&1 | sed 's/^nginx version: //'), $(curl --version | head -1 | awk '{ print $1, $2, $5 }')." \
  "$FLEET_TRIALS trials per part."
echo
cat "$report"
