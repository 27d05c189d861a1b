#!/usr/bin/env bash
# Supervision benchmark, in one run:
#   1. memory of 100 idle supervised procs (`sleep 1000000`): PSS of vrd plus every per-proc
#      launcher (`vrd init --detach`), against Debian's supervisord supervising the same 100
#      commands without containers (PSS of the supervisord process alone: its children, the
#      sleeps, are the apps, not helpers);
#   2. vrd's idle RSS/PSS (no procs, 2 s after start);
#   3. `vr procs list` and `vr procs list --json` latency with 500 procs (hyperfine).
# Prints markdown tables (the form used in docs/benchmarks.md, section "Supervision").
#
# Usage (as root, from anywhere): bash benches/supervision.sh
# Environment: N_MEM (default 100), N_LIST (default 500), PAR (parallel deploys, default 4),
#              RUNS (default 30), WARMUP (default 3), SETTLE (seconds before memory is read,
#              default 3), DEPLOY_BUDGET (seconds allowed for deploying up to N_LIST, default 900;
#              past it the list benchmark uses the procs that are up and says so),
#              CARGO_TARGET_DIR (where cargo builds), BIN_DIR (use the vrd and vr in this dir
#              instead of building).
#
# Everything made here is removed on exit, error or Ctrl-C: every proc (vr procs destroy), the vrd
# daemon, any launcher left (its command line names our data dir), supervisord and its children
# (kept in their own pids cgroup), the cgroups (vrd-bench-PID and vrd-bench-PID-supervisord) and
# the temp dir.
set -euo pipefail

N_MEM=${N_MEM:-100}
N_LIST=${N_LIST:-500}
PAR=${PAR:-4}
RUNS=${RUNS:-30}
WARMUP=${WARMUP:-3}
SETTLE=${SETTLE:-3}
DEPLOY_BUDGET=${DEPLOY_BUDGET:-900}
prog=supervision.sh
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
parent=vrd-bench-$$
sup_cg_name=vrd-bench-$$-supervisord
cg=/sys/fs/cgroup

# shellcheck source=benches/lib.sh
. "$repo/benches/lib.sh"

[ "$(id -u)" = 0 ] || die "must run as root (containers and cgroups)"
[ "$N_LIST" -ge "$N_MEM" ] || die "N_LIST ($N_LIST) must be at least N_MEM ($N_MEM)"
[ -n "${BIN_DIR:-}" ] || need cargo "install Rust (rustup) so vrd can be built"
need hyperfine "apt-get install -y hyperfine"
need supervisord "apt-get install -y supervisor"
need supervisorctl "apt-get install -y supervisor"
need jq "apt-get install -y jq"
need xargs "apt-get install -y findutils"
need timeout "apt-get install -y coreutils"
[ -x /bin/busybox ] || die "/bin/busybox is missing: apt-get install -y busybox-static"
[ -d "$cg/pids" ] || die "no v1 pids hierarchy at $cg/pids (supervisord's children are kept there)"

# ---------------------------------------------------------------------------------------------
# Cleanup: idempotent, runs once, on every exit path.
work=""
data=""
bin=""
vrd_pid=""
bg_pid=""
sup_pid=""
cleaned=0

vrd_helpers() { # pids named $1 (a comm: vrd-init or vrd-spawner) whose command line names our temp dir
  local f pid cmd comm
  [ -n "$work" ] || return 0
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}; pid=${pid%/cmdline}
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
    [ "$comm" = "$1" ] || continue
    cmd=$( { tr '\0' ' ' <"$f"; } 2>/dev/null) || continue
    case $cmd in *"$work/"*) echo "$pid" ;; esac
  done
}

# Launchers: exec'd (`vrd init --plan $data/...`) or forked by the spawner (which keeps its own
# command line, `vrd spawner --socket $work/run/...`); both name themselves vrd-init.
launchers() { vrd_helpers vrd-init; }
spawner() { vrd_helpers vrd-spawner; }

helpers() { # xargs, vr and hyperfine started here: their command lines name the temp dir
  local f pid cmd
  [ -n "$work" ] || return 0
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}; pid=${pid%/cmdline}
    [ "$pid" = "$$" ] || [ "$pid" = "${vrd_pid:-x}" ] || [ "$pid" = "${BASHPID:-x}" ] && continue
    cmd=$( { tr '\0' ' ' <"$f"; } 2>/dev/null) || continue
    case $(cat "/proc/$pid/comm" 2>/dev/null) in vrd-init | vrd-spawner) continue ;; esac
    case $cmd in *"$work/"*) echo "$pid" ;; esac
  done
}

cleanup() {
  [ "$cleaned" = 1 ] && return 0
  cleaned=1
  set +e
  local p
  trap '' INT TERM HUP  # a second Ctrl-C must not cut the cleanup short
  # supervisord stops its programs on SIGTERM; anything left is killed with its cgroup below.
  if [ -n "$sup_pid" ] && kill -0 "$sup_pid" 2>/dev/null; then
    kill -TERM "$sup_pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$sup_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$sup_pid" 2>/dev/null
  fi
  rm_cgroup_tree "$cg/pids/$sup_cg_name"
  if [ -n "$bg_pid" ] && kill -0 "$bg_pid" 2>/dev/null; then
    kill -TERM "$bg_pid" 2>/dev/null
    wait "$bg_pid" 2>/dev/null
  fi
  # Background jobs ignore SIGINT, so xargs, its `vr proc deploy`s and hyperfine may still run:
  # stop xargs and hyperfine, let a deploy in flight finish (so that no proc appears after the
  # destroy below), then kill whatever is left.
  local h i
  for i in $(seq 1 50); do
    h=$(helpers)
    [ -n "$h" ] || break
    for p in $h; do
      case $(cat "/proc/$p/comm" 2>/dev/null) in xargs | hyperfine) kill -TERM "$p" 2>/dev/null ;; esac
    done
    sleep 0.2
  done
  for p in $(helpers); do kill -KILL "$p" 2>/dev/null; done
  if [ -n "$vrd_pid" ] && kill -0 "$vrd_pid" 2>/dev/null && [ -S "${VR_SOCKET:-}" ]; then
    local names n
    names=$(timeout 30 "$bin/vr" procs list --json 2>/dev/null | jq -r '.[].name' 2>/dev/null)
    n=$(printf '%s\n' "$names" | grep -c . )
    if [ "$n" -gt 0 ]; then
      note "cleanup: destroying $n procs"
      printf '%s\n' "$names" | xargs -r -P "$PAR" -n 1 timeout 60 "$bin/vr" procs destroy >/dev/null 2>&1
    fi
  fi
  if [ -n "$vrd_pid" ] && kill -0 "$vrd_pid" 2>/dev/null; then
    kill -TERM "$vrd_pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$vrd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$vrd_pid" 2>/dev/null
    wait "$vrd_pid" 2>/dev/null
  fi
  local left
  left=$(launchers)
  if [ -n "$left" ]; then
    note "cleanup: killing $(echo "$left" | wc -l) leftover launchers"
    for p in $left; do kill -KILL "$p" 2>/dev/null; done
  fi
  for h in "$cg"/*/"$parent"; do rm_cgroup_tree "$h"; done
  rm_workdir
}
trap_cleanup

# Long steps run in the background and are waited for, so a signal is handled at once.
bg() { "$@" & bg_pid=$!; local rc=0; wait "$bg_pid" || rc=$?; bg_pid=""; return "$rc"; }

# ---------------------------------------------------------------------------------------------
# Helpers: memory of a process (kB) and medians.
smaps_kb() { # $1 pid, $2 field (Pss, Rss): from /proc/PID/smaps_rollup
  awk -v f="$2:" '$1 == f { print $2; found = 1 } END { if (!found) print 0 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0
}
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
sum() { awk '{ s += $1 } END { print s + 0 }'; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
kb() { awk -v k="$1" 'BEGIN { printf "%.0f", k }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# Per-mapping breakdown of one process's smaps (kB), mappings with Rss > 0, largest Pss first.
smaps_table() {
  awk '
    /^[0-9a-f]+-[0-9a-f]+ / { key = (NF >= 6 ? $6 : "[anon]") " " $2; if (!(key in seen)) { seen[key] = 1; order[++n] = key } next }
    $1 ~ /^(Rss|Pss|Private_Dirty|Private_Clean|Shared_Dirty|Shared_Clean|Anonymous):$/ { v[key, $1] += $2 }
    END {
      for (i = 1; i <= n; i++) {
        k = order[i]
        if (v[k, "Rss:"] > 0)
          printf "%d\t| %s | %d | %d | %d | %d | %d |\n", v[k, "Pss:"], k, v[k, "Rss:"], v[k, "Pss:"],
            v[k, "Private_Dirty:"] + v[k, "Private_Clean:"], v[k, "Shared_Dirty:"] + v[k, "Shared_Clean:"], v[k, "Anonymous:"]
      }
    }' "/proc/$1/smaps" | sort -t "$(printf '\t')" -k1,1nr | cut -f2-
}

# ---------------------------------------------------------------------------------------------
# Build vrd, make the image.
vr_binaries
bench_workdir supervision
data=$work/data
run=$work/run
mkdir -p "$data" "$run" "$work/procs"

mem_total=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
# A generous 8 MiB per container (launcher + app + kernel objects) must fit with room to spare.
[ "$mem_total" -gt $((N_LIST * 8192 + 1048576)) ] \
  || die "MemAvailable is $(mb "$mem_total") MB; $N_LIST procs want about $(mb $((N_LIST * 8192))) MB plus 1 GiB spare"
pid_max=$(cat /proc/sys/kernel/pid_max)
[ "$pid_max" -gt $((N_LIST * 4 + 1000)) ] || die "kernel.pid_max ($pid_max) is too small for $N_LIST procs"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------
# vrd daemon in its own session (a Ctrl-C reaches only this script, which then destroys the procs
# through the API), idle measurement.
RUST_LOG=warn setsid "$bin/vrd" daemon --data-dir "$data" --run-dir "$run" --cgroup-parent "$parent" \
  >"$work/vrd.log" 2>&1 </dev/null &
vrd_pid=$!
export VR_SOCKET=$run/vrd.sock
for _ in $(seq 1 100); do
  [ -S "$VR_SOCKET" ] && break
  kill -0 "$vrd_pid" 2>/dev/null || { cat "$work/vrd.log" >&2; die "vrd daemon exited at start"; }
  sleep 0.1
done
[ -S "$VR_SOCKET" ] || { cat "$work/vrd.log" >&2; die "vrd did not create $VR_SOCKET within 10 s"; }
[ "$(cat "/proc/$vrd_pid/comm")" = vrd ] || die "pid $vrd_pid is not vrd (setsid forked?)"
sleep 2
idle_rss=$(smaps_kb "$vrd_pid" Rss)
idle_pss=$(smaps_kb "$vrd_pid" Pss)
note "vrd idle: RSS $idle_rss kB, PSS $idle_pss kB"

# ---------------------------------------------------------------------------------------------
# Deploying procs.
proc_yaml() { # $1: index -> path of its proc.yaml
  local f
  f=$work/procs/p$(printf '%03d' "$1").yaml
  cat >"$f" <<EOF
app_name: idle
version: "1"
config_name: bench
release_hash: ""
proc_name: p$(printf '%03d' "$1")
port: 0
cmd: sleep 1000000
user: root
image_url: file://$img
image_name: busybox
EOF
  echo "$f"
}
for i in $(seq 1 "$N_LIST"); do proc_yaml "$i" >/dev/null; done

running_count() {
  timeout 30 "$bin/vr" procs list --json 2>/dev/null | jq '[.[] | select(.statename == "RUNNING")] | length' 2>/dev/null || echo 0
}
wait_running() { # $1: how many, $2: seconds allowed; returns 1 if not all are RUNNING by then
  local want=$1 deadline=$((SECONDS + $2)) n
  while :; do
    n=$(running_count)
    [ "$n" -ge "$want" ] && return 0
    [ "$SECONDS" -ge "$deadline" ] && { note "only $n of $want procs RUNNING after $2 s"; return 1; }
    sleep 0.5
  done
}
deploy_range() { # $1..$2 inclusive, PAR at a time; failures are counted, not fatal
  seq -f "$work/procs/p%03g.yaml" "$1" "$2" \
    | xargs -P "$PAR" -n 1 sh -c '"$0" proc deploy "$1" >/dev/null 2>>"'"$work"'/deploy.err" || echo "$1" >>"'"$work"'/deploy.failed"' "$bin/vr"
}

# The first deploy fetches and unpacks the image; the rest reuse it.
"$bin/vr" proc deploy "$work/procs/p001.yaml" >/dev/null || die "the first vr proc deploy failed"
wait_running 1 60 || { cat "$work/vrd.log" >&2; die "the first proc did not reach RUNNING"; }

note "deploying $N_MEM procs ($PAR in parallel)"
t0=$(date +%s.%N)
bg deploy_range 2 "$N_MEM"
wait_running "$N_MEM" 300 || die "not all of the first $N_MEM procs reached RUNNING (see $work/deploy.err)"
t_mem=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
sleep "$SETTLE"

measure_vrd() { # sets vrd_rss vrd_pss l_n l_pss_sum l_rss_sum l_pss_med l_rss_med l_med_pid shm_pss
  local p
  vrd_rss=$(smaps_kb "$vrd_pid" Rss)
  vrd_pss=$(smaps_kb "$vrd_pid" Pss)
  # Pss_Shmem: their share of the sealed memfd's pages (vrd runs from it too); summed over every
  # process that maps it, each mapped page counts once.
  shm_pss=$(smaps_kb "$vrd_pid" Pss_Shmem)
  sp_pss=0; sp_rss=0
  for p in $(spawner); do
    sp_pss=$((sp_pss + $(smaps_kb "$p" Pss))); sp_rss=$((sp_rss + $(smaps_kb "$p" Rss)))
    shm_pss=$((shm_pss + $(smaps_kb "$p" Pss_Shmem)))
  done
  : >"$work/launchers.txt"
  for p in $(launchers); do
    echo "$p $(smaps_kb "$p" Pss) $(smaps_kb "$p" Rss) $(smaps_kb "$p" Pss_Shmem)" >>"$work/launchers.txt"
  done
  shm_pss=$((shm_pss + $(awk '{ print $4 }' "$work/launchers.txt" | sum)))
  l_n=$(wc -l <"$work/launchers.txt")
  l_pss_sum=$(awk '{ print $2 }' "$work/launchers.txt" | sum)
  l_rss_sum=$(awk '{ print $3 }' "$work/launchers.txt" | sum)
  l_pss_med=$(awk '{ print $2 }' "$work/launchers.txt" | median)
  l_rss_med=$(awk '{ print $3 }' "$work/launchers.txt" | median)
  l_med_pid=$(sort -k2,2n "$work/launchers.txt" | awk -v m="$((l_n / 2 + 1))" 'NR == m { print $1 }')
}
measure_vrd
[ "$l_n" -eq "$N_MEM" ] || die "found $l_n launchers for $N_MEM procs"
m_vrd_rss=$vrd_rss; m_vrd_pss=$vrd_pss; m_l_pss_sum=$l_pss_sum; m_l_rss_sum=$l_rss_sum
m_l_pss_med=$l_pss_med; m_l_rss_med=$l_rss_med
m_sp_pss=$sp_pss; m_sp_rss=$sp_rss
m_total=$((vrd_pss + sp_pss + l_pss_sum))
# The sealed memfd copy of vrd that vrd, the spawner and the launchers run from: shmem held open by
# vrd. Only the pages they map are in their PSS; the rest of it is in nobody's PSS.
memfd_kb=0
for f in /proc/"$vrd_pid"/fd/*; do
  if [ "$(readlink "$f" 2>/dev/null)" = "/memfd:vrd (deleted)" ]; then
    memfd_kb=$(( $(stat -L -c %s "$f") / 1024 )); break
  fi
done
# memfd pages mapped by any of them (their summed Pss_Shmem; the copied-on-write pages of their
# memfd mappings are anonymous, not shmem; state.db-shm would count too on a tmpfs data dir).
memfd_mapped_kb=$shm_pss
l_pte=$(awk '$1 == "VmPTE:" { print $2 }' "/proc/$l_med_pid/status")
breakdown=$(smaps_table "$l_med_pid")
vrd_breakdown=$(smaps_table "$vrd_pid")
l_priv=$(awk '$1 == "Private_Dirty:" || $1 == "Private_Clean:" { s += $2 } END { print s + 0 }' "/proc/$l_med_pid/smaps_rollup")
l_anon=$(smaps_kb "$l_med_pid" Anonymous)
l_pss_shmem=$(smaps_kb "$l_med_pid" Pss_Shmem)
note "vrd + spawner + $l_n launchers: PSS $m_total kB (vrd $vrd_pss, spawner $sp_pss, launchers $l_pss_sum)"

# ---------------------------------------------------------------------------------------------
# supervisord with the same commands, its own config, socket, logs and pids cgroup.
sup=$work/supervisord
mkdir -p "$sup/logs"
{
  echo "[unix_http_server]"
  echo "file=$sup/supervisor.sock"
  echo "chmod=0700"
  echo "[supervisord]"
  echo "logfile=$sup/supervisord.log"
  echo "pidfile=$sup/supervisord.pid"
  echo "childlogdir=$sup/logs"
  echo "nodaemon=false"
  echo "minfds=4096"
  echo "[rpcinterface:supervisor]"
  echo "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface"
  echo "[supervisorctl]"
  echo "serverurl=unix://$sup/supervisor.sock"
  for i in $(seq 1 "$N_MEM"); do
    printf '[program:p%03d]\ncommand=sleep 1000000\nautostart=true\nautorestart=true\nuser=root\n' "$i"
  done
} >"$sup/supervisord.conf"
mkdir "$cg/pids/$sup_cg_name"
# It daemonizes (double fork); its children inherit the cgroup, so cleanup can find every one.
sh -c 'echo $$ >"$1/cgroup.procs" && exec supervisord -c "$2"' sh "$cg/pids/$sup_cg_name" "$sup/supervisord.conf" \
  || die "supervisord did not start (see $sup/supervisord.log)"
for _ in $(seq 1 100); do [ -s "$sup/supervisord.pid" ] && break; sleep 0.1; done
sup_pid=$(cat "$sup/supervisord.pid" 2>/dev/null) || die "supervisord wrote no pidfile"
sup_running() { supervisorctl -c "$sup/supervisord.conf" status 2>/dev/null | grep -c ' RUNNING ' || true; }
deadline=$((SECONDS + 120))
until [ "$(sup_running)" -ge "$N_MEM" ]; do
  [ "$SECONDS" -lt "$deadline" ] || die "supervisord: only $(sup_running) of $N_MEM programs RUNNING after 120 s"
  sleep 0.5
done
sleep "$SETTLE"
sup_kids=$(pids_in_cgroups "$cg/pids/$sup_cg_name" | grep -vx "$sup_pid" | wc -l)
sup_rss=$(smaps_kb "$sup_pid" Rss)
sup_pss=$(smaps_kb "$sup_pid" Pss)
sup_version=$(supervisord --version)
python_version=$(readlink -f "/proc/$sup_pid/exe" | xargs basename)
note "supervisord: PSS $sup_pss kB, RSS $sup_rss kB, $sup_kids children"
kill -TERM "$sup_pid"
for _ in $(seq 1 100); do kill -0 "$sup_pid" 2>/dev/null || break; sleep 0.1; done
sup_pid=""
rm_cgroup_tree "$cg/pids/$sup_cg_name"

# ---------------------------------------------------------------------------------------------
# `vr procs list` latency at N_MEM procs (extra row) and at N_LIST procs.
json100=$work/hyperfine-$N_MEM.json
json500=$work/hyperfine-$N_LIST.json
hf() { # $1: json file
  bg hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$1" --style basic \
    -n "vr procs list" "$bin/vr procs list" \
    -n "vr procs list --json" "$bin/vr procs list --json" >&2 || die "hyperfine failed"
}
note "timing vr procs list with $N_MEM procs"
hf "$json100"

note "deploying procs $((N_MEM + 1))..$N_LIST ($PAR in parallel, budget $DEPLOY_BUDGET s)"
t1=$(date +%s.%N)
# In chunks, so that the budget can stop it between chunks.
chunk=50
next=$((N_MEM + 1))
over_budget=0
while [ "$next" -le "$N_LIST" ]; do
  if [ "$(awk -v a="$t1" -v b="$(date +%s.%N)" 'BEGIN { print int(b - a) }')" -ge "$DEPLOY_BUDGET" ]; then
    over_budget=1; note "deploy budget of $DEPLOY_BUDGET s used up at $((next - 1)) procs"; break
  fi
  last=$((next + chunk - 1)); [ "$last" -le "$N_LIST" ] || last=$N_LIST
  bg deploy_range "$next" "$last"
  next=$((last + 1))
done
deployed=$((next - 1))
wait_running "$deployed" 300 || true
t_list=$(awk -v a="$t1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
n_list=$(running_count)
n_all=$(timeout 30 "$bin/vr" procs list --json | jq length)
failed=0; [ -f "$work/deploy.failed" ] && failed=$(wc -l <"$work/deploy.failed")
note "$n_list of $n_all procs RUNNING ($failed deploys failed) after $t_list s"
sleep "$SETTLE"
measure_vrd
b_vrd_rss=$vrd_rss; b_vrd_pss=$vrd_pss; b_l_n=$l_n; b_l_pss_sum=$l_pss_sum; b_l_pss_med=$l_pss_med
note "timing vr procs list with $n_list procs"
hf "$json500"

# ---------------------------------------------------------------------------------------------
# Report.
hfv() { jq -r --arg n "$2" --arg f "$3" '.results[] | select(.command == $n) | .[$f] * 1000' "$1"; }
f1() { awk -v x="$1" 'BEGIN { printf "%.1f", x }'; }
f2() { awk -v x="$1" 'BEGIN { printf "%.2f", x }'; }
if [ -r "$cg/unified/cgroup.controllers" ] && [ "$(stat -fc %T "$cg")" != cgroup2fs ]; then
  mode="hybrid (v1 controllers + cgroup2 at $cg/unified)"
elif [ "$(stat -fc %T "$cg")" = cgroup2fs ]; then
  mode="unified (v2)"
else
  mode="legacy (v1)"
fi
rev=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)
r_mem=$(ratio "$m_total" "$sup_pss")
r_mem_fd=$(ratio "$((m_total + memfd_kb - memfd_mapped_kb))" "$sup_pss")

echo
echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'). Machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(mb "$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)") MB RAM, kernel $(uname -r), cgroup $mode." \
  "vrd at $rev$dirty (release build, $(mb $(( $(stat -c %s "$bin/vrd") / 1024 ))) MB static binary); supervisord $sup_version on $python_version." \
  "Load average before: $load_before."
echo
echo "**1. $N_MEM idle procs (\`sleep 1000000\`), memory** (kB; PSS from /proc/PID/smaps_rollup, read $SETTLE s after all were RUNNING)"
echo
echo "| what | processes | PSS total (kB) | RSS total (kB) |"
echo "|---|---|---|---|"
echo "| vrd daemon | 1 | $m_vrd_pss | $m_vrd_rss |"
echo "| spawner (\`vrd spawner\`: forks the launchers) | 1 | $m_sp_pss | $m_sp_rss |"
echo "| launchers (one per proc, forked by the spawner) | $N_MEM | $m_l_pss_sum | $m_l_rss_sum |"
echo "| **vrd + spawner + launchers** | $((N_MEM + 2)) | **$m_total** | $((m_vrd_rss + m_sp_rss + m_l_rss_sum)) |"
echo "| **supervisord** (the process alone; its $sup_kids children are the apps) | 1 | **$sup_pss** | $sup_rss |"
echo
echo "| per process | PSS (kB) | RSS (kB) |"
echo "|---|---|---|"
echo "| one launcher (median of $N_MEM) | $(kb "$m_l_pss_med") | $(kb "$m_l_rss_med") |"
echo "| vrd with $N_MEM procs | $m_vrd_pss | $m_vrd_rss |"
echo "| vrd with $b_l_n procs | $b_vrd_pss | $b_vrd_rss |"
echo "| one launcher (median of $b_l_n) | $(kb "$b_l_pss_med") | – |"
echo
echo "| ratio | value | target | met |"
echo "|---|---|---|---|"
echo "| (vrd + spawner + launchers) PSS / supervisord PSS | $r_mem | ≤ 1.0 | $(met "$r_mem" 1.0) |"
echo "| the same, plus the unmapped rest of vrd's sealed memfd ($memfd_kb kB shmem, $memfd_mapped_kb kB of it mapped by vrd, the spawner or launchers) | $r_mem_fd | – | – |"
echo
echo "**2. vrd idle** (no procs, 2 s after start)"
echo
echo "| what | value | target | met |"
echo "|---|---|---|---|"
echo "| vrd RSS | $(mb "$idle_rss") MB ($idle_rss kB) | ≤ 15 MB | $(met "$(awk -v k="$idle_rss" 'BEGIN { print k / 1024 }')" 15) |"
echo "| vrd PSS | $(mb "$idle_pss") MB ($idle_pss kB) | – | – |"
echo
echo "**3. \`vr procs list\` latency** (hyperfine -N --warmup $WARMUP --runs $RUNS)"
echo
echo "| command | procs | median (ms) | mean ± σ (ms) | min (ms) |"
echo "|---|---|---|---|---|"
for pair in "$json100:$N_MEM" "$json500:$n_list"; do
  j=${pair%%:*}; n=${pair##*:}
  for c in "vr procs list" "vr procs list --json"; do
    echo "| \`$c\` | $n | **$(f1 "$(hfv "$j" "$c" median)")** | $(f1 "$(hfv "$j" "$c" mean)") ± $(f1 "$(hfv "$j" "$c" stddev)") | $(f1 "$(hfv "$j" "$c" min)") |"
  done
done
echo
echo "Deploying: $N_MEM procs ($PAR \`vr proc deploy\` in parallel, after the first) took $t_mem s to all RUNNING;" \
  "procs $((N_MEM + 1))..$deployed took $t_list s more; $n_list of $n_all RUNNING, $failed deploys failed$( [ "$over_budget" = 1 ] && echo ", **deploy budget of $DEPLOY_BUDGET s used up: only $deployed of $N_LIST deployed**")."
echo
echo "One launcher (the median, pid $l_med_pid, at $N_MEM procs): private $l_priv kB, anonymous $l_anon kB, PSS of shared memfd pages $l_pss_shmem kB; in the kernel and in no PSS, page tables $l_pte kB and a 16 kB kernel stack. Its mappings with RSS > 0 (kB):"
echo
echo "| mapping | perms | RSS | PSS | private | shared | anonymous |"
echo "|---|---|---|---|---|---|---|"
echo "$breakdown" | sed 's/^| \([^ ]*\) \([^ ]*\) |/| \1 | \2 |/'
echo
echo "vrd at $N_MEM procs (pid $vrd_pid): its mappings with RSS > 0 (kB):"
echo
echo "| mapping | perms | RSS | PSS | private | shared | anonymous |"
echo "|---|---|---|---|---|---|---|"
echo "$vrd_breakdown" | sed 's/^| \([^ ]*\) \([^ ]*\) |/| \1 | \2 |/'
