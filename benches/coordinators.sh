#!/usr/bin/env bash
# Several coordinators on one PostgreSQL model (issue 15 §4), on a throwaway cluster from
# pg_virtualenv. Two parts:
#   failover  two coordinators (default lease, 15 s): the leader killed (SIGKILL, at a random point
#             of its renewal period) COORD_TRIALS times, alternately, timed to the standby leading
#             and to it accepting a `vr swarm` (target <= 20 s, median and max); before the
#             trials, a `vr swarm --detach` answered by the leader against one a standby
#             forwards to it (p50 of 10 each: what forwarding costs);
#   state     the model's operations through vrd's typed state methods on PostgreSQL against a
#             SQLite file in the same run (list 500 swarm procs, create a release, a 10-proc
#             dispatch's writes), and the same on PostgreSQL fenced as a leader's writes are.
# Prints markdown (docs/benchmarks.md, "Several coordinators"). The work is the ignored test
# `coordinators::benchmark` in tests/it; the harness removes what it made.
#
# Usage (as root): bash benches/coordinators.sh
# Environment: COORD_TRIALS (default 10), COORD_PARTS (default failover,state), COORD_LEASE
#              (seconds, default 15), PROFILE (release or debug), CARGO_TARGET_DIR.
set -euo pipefail

COORD_TRIALS=${COORD_TRIALS:-10}
COORD_PARTS=${COORD_PARTS:-failover,state}
COORD_LEASE=${COORD_LEASE:-15}
prog=coordinators.sh
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# shellcheck source=benches/lib.sh
. "$repo/benches/lib.sh"

[ "$(id -u)" = 0 ] || die "must run as root (containers, cgroups)"
need cargo "install Rust (rustup) so vr can be built"
need git "apt-get install -y git"
need pg_virtualenv "apt-get install -y postgresql"
[ -x /bin/busybox ] || die "/bin/busybox is missing: apt-get install -y busybox-static"
[[ $COORD_TRIALS =~ ^[1-9][0-9]*$ ]] || die "COORD_TRIALS must be a positive number"
test_profile

report=$(mktemp /tmp/vr-bench-coordinators.XXXXXX)
trap 'rm -f "$report"' EXIT

# pg_virtualenv makes the cluster, exports PGHOST and the rest, and drops it after.
run_ignored_test coordinators::benchmark pg_virtualenv env COORD_TRIALS="$COORD_TRIALS" \
  COORD_PARTS="$COORD_PARTS" COORD_LEASE="$COORD_LEASE" COORD_REPORT="$report"
echo
report_header "PostgreSQL $(psql --version | awk '{ print $3 }') (pg_virtualenv)." \
  "$COORD_TRIALS failover trials."
echo
cat "$report"
