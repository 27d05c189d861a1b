# Shared by the benchmark scripts (sourced, not run): messages, tool checks, vr and vrd, and the
# busybox image. The sourcing script sets $prog (its name) and $repo (the checkout) first.

die() { echo "$prog: $*" >&2; exit 1; }
note() { echo "$prog: $*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is missing: $2"; }

# Sets $bin to a directory holding vrd and vr: $BIN_DIR when set, else the release binaries as
# they ship (packaging/build.sh): vrd for the gnu target, vr for musl (README, "Two builds"),
# linked side by side into <target dir>/bench-bin. The target dir is $CARGO_TARGET_DIR, default
# <repo>/target.
vr_binaries() {
  if [ -n "${BIN_DIR:-}" ]; then
    bin=$BIN_DIR
    note "using the vrd and vr already built in $bin (BIN_DIR)"
  else
    local target_dir=${CARGO_TARGET_DIR:-$repo/target}
    note "building vrd and vr (release, as packaging/build.sh does)"
    (cd "$repo" && cargo build --release --quiet --bin vrd) || die "cargo build --release --bin vrd failed"
    (cd "$repo" && cargo build --release --quiet --target x86_64-unknown-linux-musl --bin vr) \
      || die "cargo build of vr for musl failed (rustup target add x86_64-unknown-linux-musl; apt-get install -y musl-tools)"
    bin=$target_dir/bench-bin
    mkdir -p "$bin"
    ln -sf "$target_dir/x86_64-unknown-linux-gnu/release/vrd" "$bin/vrd"
    ln -sf "$target_dir/x86_64-unknown-linux-musl/release/vr" "$bin/vr"
  fi
  [ -x "$bin/vrd" ] && [ -x "$bin/vr" ] || die "vrd/vr not found in $bin"
}

# Sets $work to a fresh temp dir named after $1 and $img to the busybox image made in it.
bench_workdir() {
  work=$(mktemp -d "/tmp/vr-bench-$1.XXXXXX")
  chmod 755 "$work"
  img=$work/busybox.tar.gz
  sh "$repo/examples/busybox-image.sh" "$img" || die "examples/busybox-image.sh failed"
}

# Writes to $1 the proc.yaml the start benchmarks time: `/bin/true` as root in the image $img.
true_proc_yaml() {
  cat >"$1" <<EOF
app_name: bench
version: "1"
config_name: bench
proc_name: "true"
cmd: /bin/true
user: root
image_url: file://$img
image_name: busybox
${PROC_EXTRA:-}
EOF
}

# Every pid in the cgroup dirs given (recursively).
pids_in_cgroups() {
  local dir d
  for dir in "$@"; do
    [ -d "$dir" ] || continue
    while read -r d; do
      [ -r "$d/cgroup.procs" ] && cat "$d/cgroup.procs" 2>/dev/null
    done < <(find "$dir" -type d 2>/dev/null)
  done
}

# $1: a cgroup directory; kills what is left in it (by pid) and removes it bottom-up.
rm_cgroup_tree() {
  local dir=$1 pid i
  [ -d "$dir" ] || return 0
  for pid in $(pids_in_cgroups "$dir"); do kill -KILL "$pid" 2>/dev/null || true; done
  for i in $(seq 1 50); do
    find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [ -d "$dir" ] || return 0
    sleep 0.1
  done
  note "WARNING: could not remove cgroup $dir"
}

# Sets $profile_flag from $PROFILE (release or debug) for the benchmarks that run an ignored test.
test_profile() {
  case ${PROFILE:-release} in
    release) profile_flag=--release ;;
    debug) profile_flag="" ;;
    *) die "PROFILE must be release or debug" ;;
  esac
}

# Builds tests/it, then runs the ignored test $1 with the environment given after it (NAME=VALUE
# words; one of them tells the test to write its report to $report). The harness removes what
# the test made.
run_ignored_test() {
  local test=$1
  shift
  note "building the tests (${PROFILE:-release})"
  (cd "$repo" && cargo test $profile_flag --quiet --test it --no-run) || die "cargo test --no-run failed"
  load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  note "running $test"
  started=$SECONDS
  (cd "$repo" && env VRD_TEST_STRICT=1 "$@" \
    cargo test $profile_flag --quiet --test it "$test" -- --ignored --exact --nocapture >&2) \
    || die "the benchmark failed (its output is above)"
  [ -s "$report" ] || die "the benchmark wrote no report"
}

# The first words of a report: when, on what machine, which vr (and its build), then its arguments.
report_header() {
  local rev dirty
  rev=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'). Machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r)." \
    "vr at $rev$dirty (${PROFILE:-release} build). $*" \
    "Load average before: $load_before; the whole run took $((SECONDS - started)) s."
}

# "yes" when ratio $1 is at most target $2, else a bold "no" (for the markdown tables).
# Removes the bench's temp dir $work. vrd keeps its procs dir as a private mount of its own, and a
# proc's root and mount namespace mounted until teardown: unmount what is left, deepest first.
rm_workdir() {
  [ -n "${work:-}" ] && [ -d "$work" ] || return 0
  local m
  for m in $(findmnt -rn -o TARGET | grep -F "$work/" | sort -r); do umount -l "$m"; done
  rm -rf "$work"
}

# Runs the script's `cleanup` on exit, and turns INT, TERM and HUP into exits so it runs then too.
trap_cleanup() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
}

met() { awk -v r="$1" -v t="$2" 'BEGIN { print (r <= t) ? "yes" : "**no**" }'; }
