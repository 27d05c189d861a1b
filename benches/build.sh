#!/usr/bin/env bash
# Build benchmark: `vr builder build` of an app whose buildpack does real dependency work, cold
# (the app's build cache emptied before each run) against warm (the same app rebuilt with its cache
# from the cold run), in one run; and vr's own time per build beyond the buildpack's compile time,
# for that app and for a no-op buildpack. Prints markdown tables (the form used in
# docs/benchmarks.md, section "Builds").
#
# Usage (as root, from anywhere): bash benches/build.sh
# Environment: RUNS (timed builds of each kind, default 5), CARGO_TARGET_DIR (where cargo builds),
#              BIN_DIR=DIR (use the vr and vrd already in DIR; skips cargo),
#              KEEP_RAW=FILE (copy the per-run numbers there, tab-separated).
#
# The buildpack needs no network. Its bin/compile works as a Ruby or Node buildpack does with its
# cache: the dependencies in the app's deps.lock are installed into vendor/deps, and the install is
# kept in CACHE_DIR under the hash of deps.lock. On a hit it copies the installed tree from the
# cache into the app and checks it against the recorded checksums (`bundle check`); on a miss it
# "fetches" each dependency (generates its deterministic source with awk from a seed made of the
# name and version, gzipped, as a download would arrive) and "compiles" it (bzip2 -9 of the source
# stands in for building the native library; a quarter of the source is kept as headers, split into
# many small files as an installed package is), then stores the install in the cache. Stale keys
# are dropped, as the real buildpacks do.
#
# Everything made here is removed on exit, error or Ctrl-C: a running `vr builder build` (by its
# pid; vrd then stops that build's container), the vrd daemon, any cgroups left under the cgroup
# parent vrd-bench-build-PID (processes in them are killed by pid first), any mount under the temp
# dir, and the temp dir itself (data dir, run dir, repositories, image, build outputs).
set -euo pipefail

RUNS=${RUNS:-5}
prog=build.sh
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
parent=vrd-bench-build-$$
cg=/sys/fs/cgroup

# shellcheck source=benches/lib.sh
. "$repo/benches/lib.sh"

[ "$(id -u)" = 0 ] || die "must run as root (vrd runs the build containers)"
[ -n "${BIN_DIR:-}" ] || need cargo "install Rust (rustup) so vr can be built, or set BIN_DIR"
need git "apt-get install -y git"
need md5sum "apt-get install -y coreutils"
need awk "apt-get install -y gawk (or mawk)"
need findmnt "apt-get install -y util-linux"
[ -x /bin/busybox ] || die "/bin/busybox is missing: apt-get install -y busybox-static"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number"

# ---------------------------------------------------------------------------------------------
# Cleanup: idempotent, runs once, on every exit path.
work=""
vrd_pid=""
vr_pid=""
stamp_pid=""
cleaned=0

procs_in_parent() { # prints the pids in our cgroups (the memory hierarchy has every container)
  local f
  for f in $(find "$cg"/memory/"$parent" "$cg"/unified/"$parent" -name cgroup.procs 2>/dev/null); do
    cat "$f" 2>/dev/null
  done
}

cleanup() {
  [ "$cleaned" = 1 ] && return 0
  cleaned=1
  set +e
  if [ -n "$vr_pid" ] && kill -0 "$vr_pid" 2>/dev/null; then
    # The client going away makes vrd stop the build and its container; give it a moment.
    kill -TERM "$vr_pid" 2>/dev/null
    wait "$vr_pid" 2>/dev/null
    for _ in $(seq 1 50); do [ -z "$(procs_in_parent)" ] && break; sleep 0.1; done
  fi
  if [ -n "$stamp_pid" ] && kill -0 "$stamp_pid" 2>/dev/null; then
    kill -TERM "$stamp_pid" 2>/dev/null
    wait "$stamp_pid" 2>/dev/null
  fi
  if [ -n "$vrd_pid" ] && kill -0 "$vrd_pid" 2>/dev/null; then
    kill -TERM "$vrd_pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$vrd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$vrd_pid" 2>/dev/null
    wait "$vrd_pid" 2>/dev/null
  fi
  local h
  for h in "$cg"/*/"$parent"; do rm_cgroup_tree "$h"; done
  rm_workdir
}
trap_cleanup

# ---------------------------------------------------------------------------------------------
# vr and vrd, the stack image, the daemon.
vr_binaries
bench_workdir build

data=$work/data
run=$work/run
mkdir -p "$data" "$run"
RUST_LOG=warn "$bin/vrd" daemon --data-dir "$data" --run-dir "$run" --cgroup-parent "$parent" \
  >"$work/vrd.log" 2>&1 &
vrd_pid=$!
export VR_SOCKET=$run/vrd.sock
for _ in $(seq 1 100); do
  [ -S "$VR_SOCKET" ] && break
  kill -0 "$vrd_pid" 2>/dev/null || { cat "$work/vrd.log" >&2; die "vrd daemon exited at start"; }
  sleep 0.1
done
[ -S "$VR_SOCKET" ] || { cat "$work/vrd.log" >&2; die "vrd did not create $VR_SOCKET within 10 s"; }

# ---------------------------------------------------------------------------------------------
# Repositories: the deps buildpack and its app, a no-op buildpack and its app.
git_in() { git -C "$1" -c user.name=bench -c user.email=bench@example.com "${@:2}"; }
new_repo() { # $1: dir; files are written into it by the caller afterwards, then commit_all
  mkdir -p "$1"
  git_in "$1" init -q -b main
}
commit_all() { git_in "$1" add -A && git_in "$1" commit -q -m "$2"; }

bp=$work/bp-deps
new_repo "$bp"
mkdir -p "$bp/bin"
cat >"$bp/bin/detect" <<'EOF'
#!/bin/sh
# Apps with a deps.lock are ours.
[ -f "$1/deps.lock" ] || exit 1
echo "Deps (bench)"
EOF
cat >"$bp/bin/compile" <<'EOF'
#!/bin/sh
# bin/compile BUILD_DIR CACHE_DIR ENV_DIR: installs deps.lock's dependencies into vendor/deps,
# keeping the install in the cache under the hash of deps.lock, as a Ruby or Node buildpack does.
set -eu
build=$1
cache=$2
now() { cut -d' ' -f1 /proc/uptime; }
echo "vr-bench: compile start $(now)"
lock=$build/deps.lock
key=$(sha256sum "$lock" | cut -c1-16)
store=$cache/deps/$key
dest=$build/vendor/deps
mkdir -p "$build/vendor"
if [ -f "$store/.complete" ]; then
  echo "-----> Restoring dependencies from the cache (deps.lock $key)"
  cp -a "$store" "$dest"
  rm -f "$dest/.complete"
  echo "-----> Checking the installed dependencies"
  for sum in "$dest"/*/lib/*.sha256; do
    (cd "${sum%/*}" && sha256sum -c -s "${sum##*/}") || { echo "corrupt: $sum" >&2; exit 1; }
  done
else
  echo "-----> Installing dependencies (deps.lock $key is not in the cache)"
  rm -rf "$cache/deps"
  dl=$build/.downloads
  mkdir -p "$dest" "$dl"
  while read -r name version lines; do
    case "$name" in '' | '#'*) continue ;; esac
    seed=$((0x$(printf '%s' "$name-$version" | sha256sum | cut -c1-7)))
    echo "       fetching $name $version"
    awk -v seed="$seed" -v n="$lines" -v name="$name" 'BEGIN {
      srand(seed)
      for (i = 0; i < n; i++)
        printf "static const int %s_%d = 0x%08x; /* %d */\n", name, i, int(rand() * 2147483647), int(rand() * 1000000)
    }' | gzip -6 >"$dl/$name-$version.tar.gz"
    echo "       compiling $name $version"
    d=$dest/$name-$version
    mkdir -p "$d/lib" "$d/include"
    zcat "$dl/$name-$version.tar.gz" | bzip2 -9 >"$d/lib/lib$name.so"
    zcat "$dl/$name-$version.tar.gz" | head -n $((lines / 4)) |
      awk -v dir="$d/include" 'NR % 200 == 1 { if (f) close(f); f = sprintf("%s/part_%04d.h", dir, NR / 200) } { print > f }'
    (cd "$d/lib" && sha256sum "lib$name.so" >"lib$name.so.sha256")
  done <"$lock"
  rm -rf "$dl"
  echo "-----> Caching the installed dependencies"
  mkdir -p "$cache/deps"
  cp -a "$dest" "$store.tmp"
  touch "$store.tmp/.complete"
  mv "$store.tmp" "$store"
fi
echo "vr-bench: compile end $(now)"
EOF
cat >"$bp/bin/release" <<'EOF'
#!/bin/sh
cat <<YAML
---
default_process_types:
  web: sh app.sh
YAML
EOF
chmod 755 "$bp"/bin/*
commit_all "$bp" "deps buildpack"

app=$work/app-deps
new_repo "$app"
cat >"$app/deps.lock" <<'EOF'
# name version lines-of-source
rack 2.2.8 195000
nokogiri 1.15.4 315000
pg 1.5.4 180000
puma 6.4.0 150000
json 2.6.3 120000
msgpack 1.7.2 90000
bcrypt 3.1.19 75000
ffi 1.16.3 105000
EOF
printf 'web: sh app.sh\n' >"$app/Procfile"
printf '#!/bin/sh\nexec httpd -f -p "${PORT:-8000}"\n' >"$app/app.sh"
printf 'An app for benches/build.sh.\n' >"$app/README"
commit_all "$app" "app"

noop_bp=$work/bp-noop
new_repo "$noop_bp"
mkdir -p "$noop_bp/bin"
printf '#!/bin/sh\necho "No-op (bench)"\n' >"$noop_bp/bin/detect"
cat >"$noop_bp/bin/compile" <<'EOF'
#!/bin/sh
now() { cut -d' ' -f1 /proc/uptime; }
echo "vr-bench: compile start $(now)"
echo "vr-bench: compile end $(now)"
EOF
chmod 755 "$noop_bp"/bin/*
commit_all "$noop_bp" "no-op buildpack"

noop_app=$work/app-noop
new_repo "$noop_app"
printf 'web: sh app.sh\n' >"$noop_app/Procfile"
printf '#!/bin/sh\nexec httpd -f -p "${PORT:-8000}"\n' >"$noop_app/app.sh"
commit_all "$noop_app" "app"

build_yaml() { # $1: file, $2: app name, $3: app repo, $4: buildpack repo
  cat >"$1" <<EOF
app_name: $2
app_repo_type: git
app_repo_url: $3
version: main
image_url: file://$img
image_name: busybox
buildpack_urls:
- $4
EOF
}
deps_yaml=$work/deps.yaml
noop_yaml=$work/noop.yaml
build_yaml "$deps_yaml" benchdeps "$app" "$bp"
build_yaml "$noop_yaml" benchnoop "$noop_app" "$noop_bp"
# The deps app's build cache, named as src/services/builder/layout.rs names it:
# <data dir>/builder/cache/<app_name>-<md5(app_repo_url)>.
deps_cache=$data/builder/cache/benchdeps-$(printf '%s' "$app" | md5sum | cut -d' ' -f1)

# ---------------------------------------------------------------------------------------------
# One build: `vr builder build FILE` in a fresh cwd, its output (stdout and stderr) time-stamped
# line by line as it arrives. Sets: wall (s), inside (the compile's own time, s, from
# /proc/uptime inside the container), slug and slug_tar (bytes of build.tar.gz, and of the tar in
# it), slug_files (entries), and leaves the stamps in $work/stamps-NAME.
stamp() {
  local line
  while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done
}
one_build() { # $1: build.yaml, $2: run name
  local file=$1 name=$2 cwd=$work/out-$2 fifo=$work/fifo t0 t1 rc
  mkdir -p "$cwd"
  rm -f "$fifo"
  mkfifo "$fifo"
  stamp <"$fifo" >"$work/stamps-$name" &
  stamp_pid=$!
  t0=$EPOCHREALTIME
  (cd "$cwd" && exec "$bin/vr" builder build "$file") >"$fifo" 2>&1 </dev/null &
  vr_pid=$!
  rc=0
  wait "$vr_pid" || rc=$?
  t1=$EPOCHREALTIME
  vr_pid=""
  wait "$stamp_pid" || true
  stamp_pid=""
  echo "$t0 vr-bench: client start" >>"$work/stamps-$name"
  if [ "$rc" != 0 ]; then
    cat "$work/stamps-$name" >&2
    die "build $name failed (exit status $rc); compile.log above"
  fi
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  inside=$(awk '/vr-bench: compile start/ { s = $NF } /vr-bench: compile end/ { e = $NF }
    END { if (s == "" || e == "") exit 1; printf "%.3f", e - s }' "$cwd/compile.log") ||
    die "build $name: no compile markers in compile.log"
  slug=$(stat -c %s "$cwd/build.tar.gz")
  slug_files=$(tar -tzf "$cwd/build.tar.gz" | wc -l)
  slug_tar=$(gzip -dc "$cwd/build.tar.gz" | wc -c)
  rm -rf "$cwd"
}

# Phases from the stamps (seconds between the lines that open and close each).
phases() { # $1: stamps file; prints 9 numbers, space-separated
  awk '
    function at(pat,   i) { for (i = 1; i <= n; i++) if (index(line[i], pat)) return t[i]; return "" }
    { n++; t[n] = $1; $1 = ""; line[n] = $0 }
    END {
      p[0] = at("vr-bench: client start"); p[1] = at("-----> Preparing the stack image")
      p[2] = at("-----> Fetching "); p[3] = at(" is at "); p[4] = at("-----> Buildpack 1: ")
      p[5] = at("vr-bench: compile start"); p[6] = at("vr-bench: compile end")
      p[7] = at("-----> Packaging build.tar.gz"); p[8] = at("-----> Built ")
      # The last stamp is the client start line appended after the build; the exit is not stamped,
      # so the 9th phase is filled in by the caller from the wall time.
      for (i = 1; i <= 8; i++) { if (p[i] == "" || p[i-1] == "") { printf "? "; continue } printf "%.3f ", p[i] - p[i-1] }
      printf "%.6f\n", p[8] - p[0]
    }' "$1"
}

# ---------------------------------------------------------------------------------------------
# Warm-up (not timed): the first builds unpack the stack image and clone both repositories into
# vrd's caches, as any later build of these apps would find them.
note "warm-up builds (stack image, repository caches)"
one_build "$noop_yaml" warmup-noop
one_build "$deps_yaml" warmup-deps
[ -d "$deps_cache" ] || die "the app cache is not at $deps_cache (did the layout change? see src/services/builder/layout.rs)"

load=$(cut -d' ' -f1-3 /proc/loadavg)
raw=$work/raw.tsv
: >"$raw"
for i in $(seq 1 "$RUNS"); do
  note "run $i/$RUNS: cold, warm, no-op"
  rm -rf "$deps_cache"
  one_build "$deps_yaml" "cold-$i"
  printf 'cold\t%s\t%s\t%s\t%s\t%s\t%s\n' "$wall" "$inside" "$slug" "$slug_files" "$slug_tar" "$(phases "$work/stamps-cold-$i")" >>"$raw"
  one_build "$deps_yaml" "warm-$i"
  printf 'warm\t%s\t%s\t%s\t%s\t%s\t%s\n' "$wall" "$inside" "$slug" "$slug_files" "$slug_tar" "$(phases "$work/stamps-warm-$i")" >>"$raw"
  one_build "$noop_yaml" "noop-$i"
  printf 'noop\t%s\t%s\t%s\t%s\t%s\t%s\n' "$wall" "$inside" "$slug" "$slug_files" "$slug_tar" "$(phases "$work/stamps-noop-$i")" >>"$raw"
done
[ -n "${KEEP_RAW:-}" ] && cp "$raw" "$KEEP_RAW"
cache_size=$(du -sm "$deps_cache" | cut -f1)

# ---------------------------------------------------------------------------------------------
# Report. Columns of raw.tsv: kind wall inside slug slug_files slug_tar, then the phase list.
col() { # $1: kind, $2: awk expression over the fields; prints one value per run
  awk -F'\t' -v k="$1" '$1 == k { split($7, p, " "); print '"$2"' }' "$raw"
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
minmax() { sort -g | awk 'NR == 1 { a = $1 } { b = $1 } END { printf "%.2f–%.2f", a, b }'; }
f2() { awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }

declare -A W I O S F T
for k in cold warm noop; do
  W[$k]=$(col "$k" '$2' | median)
  I[$k]=$(col "$k" '$3' | median)
  O[$k]=$(col "$k" '$2 - $3' | median)
  S[$k]=$(col "$k" '$4' | median)
  F[$k]=$(col "$k" '$5' | median)
  T[$k]=$(col "$k" '$6' | median)
done
mb() { awk -v x="$1" 'BEGIN { printf "%.1f MB", x / 1e6 }'; }

if [ "$(stat -fc %T "$cg")" = cgroup2fs ]; then mode="unified (v2)"
elif [ -d "$cg/unified" ]; then mode="hybrid (v1 controllers + cgroup2 at $cg/unified)"
else mode="legacy (v1)"; fi
rev=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "${BIN_DIR:-}" ]; then rev="$rev (binaries from BIN_DIR, maybe older)"; fi
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)

echo
echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'). Machine: $(nproc) CPUs ($cpu), kernel $(uname -r)," \
  "cgroup $mode, $(git --version), vr at $rev. $RUNS runs of each kind, interleaved (cold, warm," \
  "no-op) after one untimed build of each app; load average before: $load."
echo
echo "| build | median wall (s) | min–max wall (s) | median compile, inside (s) | median vr overhead (s) | slug (build.tar.gz) |"
echo "|---|---|---|---|---|---|"
label_cold="cold: deps app, app cache emptied"
label_warm="warm: deps app, cache from the cold build"
label_noop="no-op buildpack"
for k in cold warm noop; do
  l=label_$k
  echo "| ${!l} | **$(f2 "${W[$k]}")** | $(col "$k" '$2' | minmax) | $(f2 "${I[$k]}") | **$(f2 "${O[$k]}")** | $(mb "${S[$k]}") ($(mb "${T[$k]}") as tar), ${F[$k]} entries |"
done
ratio=$(awk -v a="${W[warm]}" -v b="${W[cold]}" 'BEGIN { printf "%.2f", a / b }')
echo
echo "| measure | value | target | met |"
echo "|---|---|---|---|"
echo "| warm / cold (median wall times) | $ratio | ≤ 0.3 | $(met "$ratio" 0.3) |"
for k in cold warm noop; do
  l=label_$k
  echo "| vr overhead per build, ${!l} | $(f2 "${O[$k]}") s | ≤ 1 s | $(met "${O[$k]}" 1) |"
done
echo
pack=$(col warm 'p[8]' | median)
echo "The app's cache after the runs: $cache_size MB (the installed dependencies under one deps.lock key)." \
  "Packaging ran at $(awk -v b="${T[warm]}" -v t="$pack" 'BEGIN { printf "%.0f", b / 1e6 / t }') MB/s of tar" \
  "($(mb "${T[warm]}") in $(f2 "$pack") s, warm median), so vr's overhead grows with the slug."
echo
echo "Where a build's time goes (medians of the time-stamped output lines; s):"
echo
echo "| phase | cold | warm | no-op |"
echo "|---|---|---|---|"
names=(
  "client start → first line (client, RPC, build files handed over)"
  "stack image check (already unpacked), app cache lock, build dir made"
  "app: git fetch into the cached mirror, resolve, export"
  "buildpack: git fetch, resolve, export"
  "chown, cache dir, container start, builder script, bin/detect"
  "bin/compile (as seen from the host)"
  "bin/release, container exit and teardown"
  "packaging: tar + gzip + md5 of the app dir"
  "after \"Built\": build dir removed, reply, client exit"
)
for j in 1 2 3 4 5 6 7 8; do
  row="| ${names[$((j - 1))]} |"
  for k in cold warm noop; do row="$row $(f2 "$(col "$k" "p[$j]" | median)") |"; done
  echo "$row"
done
row="| ${names[8]} |"
for k in cold warm noop; do row="$row $(f2 "$(col "$k" '$2 - p[9]' | median)") |"; done
echo "$row"
