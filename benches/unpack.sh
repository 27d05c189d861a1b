#!/usr/bin/env bash
# Benchmarks vr's archive unpack (`vrd unpack`, i.e. host::image::unpack_main: chroot + confined
# extraction with a decompressor thread) against GNU `tar -xzf` on a >=100 MB .tar.gz.
#
# Usage (as root, from anywhere):  benches/unpack.sh
# Environment:
#   SRC=/usr/share          tree to pack into the test tarball (built once, kept in BENCH_DIR)
#   BENCH_DIR=/tmp/vr-unpack-bench   where the tarball, a scratch ext4 image and the output live
#   BENCH_FS=loop           loop (fresh ext4 image, default) or direct (BENCH_DIR's filesystem)
#   RUNS=5                  measured runs per command (plus one warmup)
#   UNPACK_BIN=...          run this binary's `unpack` subcommand instead of auto-detecting
#   CARGO_TARGET_DIR        as for cargo (default: ./target)
# The vr side uses `vrd unpack` once that subcommand is wired into src/bin/vrd.rs, and falls back
# to `examples/unpack.rs` (the same entry point) until then. Results go to docs/benchmarks.md.
set -euo pipefail

cd "$(dirname "$0")/.."
SRC=${SRC:-/usr/share}
BENCH_DIR=${BENCH_DIR:-/tmp/vr-unpack-bench}
RUNS=${RUNS:-5}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
RELEASE=$TARGET_DIR/x86_64-unknown-linux-gnu/release
TARBALL=$BENCH_DIR/bench.tar.gz
OUT=$BENCH_DIR/out

if [[ $EUID -ne 0 ]]; then
    echo "benches/unpack.sh: run as root (the unpack helper chroots, and both sides keep owners)" >&2
    exit 1
fi
command -v hyperfine >/dev/null || apt-get install -y hyperfine

# The vr side: an explicit binary, a vrd with the unpack subcommand wired, or the example.
if [[ -n ${UNPACK_BIN:-} ]]; then
    BIN=$UNPACK_BIN
else
    cargo build --release --bin vrd
    BIN=$RELEASE/vrd
    # A wired `vrd unpack` without arguments exits 2 with its usage line.
    usage=$("$BIN" unpack 2>&1 || true)
    if [[ $usage != *"usage: vrd unpack"* ]]; then
        echo "vrd has no unpack subcommand yet; using examples/unpack.rs" >&2
        cargo build --release --example unpack
        BIN=$RELEASE/examples/unpack
    fi
fi

mkdir -p "$BENCH_DIR"
if [[ ! -s $TARBALL ]]; then
    echo "packing $SRC into $TARBALL" >&2
    tar -C / -cf - "${SRC#/}" | gzip -6 >"$TARBALL.part"
    mv "$TARBALL.part" "$TARBALL"
fi
size=$(stat -c %s "$TARBALL")
if ((size < 100 * 1024 * 1024)); then
    echo "warning: $TARBALL is only $((size / 1024 / 1024)) MiB; pick a bigger SRC" >&2
fi
entries=$(tar -tzf "$TARBALL" | wc -l)
unpacked=$(gzip -dc "$TARBALL" | wc -c)

# Both tools extract into an empty directory on a freshly made, journaled ext4 (a loop device),
# with no dirty pages left from the previous run. A fresh filesystem keeps the numbers independent
# of the host's disk state; in particular this machine's root fs is ext4 *without* a journal,
# where inodes freed in the last 60 s (300 s while their inode table block is dirty) are skipped
# one by one on allocation (fs/ext4/ialloc.c, recently_deleted), so an `rm -rf` between runs
# makes every extraction 4-5x slower. Set BENCH_FS=direct to measure on BENCH_DIR's own
# filesystem instead (each run then gets a new directory and nothing is deleted in between).
MNT=$BENCH_DIR/mnt
IMG=$BENCH_DIR/fs.img
cleanup() {
    if mountpoint -q "$MNT"; then umount "$MNT"; fi
    rm -f "$IMG"
    rm -rf "$BENCH_DIR"/run.* "$OUT"
}
trap cleanup EXIT
cleanup
if [[ ${BENCH_FS:-loop} == loop ]]; then
    truncate -s $((4 * unpacked + (1 << 30))) "$IMG"
    mkfs.ext4 -q -F "$IMG"
    mkdir -p "$MNT"
    mount -o loop "$IMG" "$MNT"
    fs_note="fresh journaled ext4 on a loop device (image on the root fs)"
    prepare="rm -rf '$MNT/out' && mkdir '$MNT/out' && ln -sfn '$MNT/out' '$OUT' && sync"
else
    fs_note="$(df --output=fstype "$BENCH_DIR" | tail -1) at $BENCH_DIR, a new directory per run"
    prepare="ln -sfn \"\$(mktemp -d -p '$BENCH_DIR' run.XXXXXX)\" '$OUT' && sync"
fi

hyperfine --warmup 1 --runs "$RUNS" --prepare "$prepare" \
    --export-json "$BENCH_DIR/result.json" \
    -n "GNU tar -xzf" "tar -xzf '$TARBALL' -C '$OUT/'" \
    -n "vr unpack" "'$BIN' unpack --archive '$TARBALL' --dest '$OUT/' --max-bytes 68719476736 --max-entries 10000000"

python3 - "$BENCH_DIR/result.json" "$size" "$unpacked" "$entries" "$SRC" "$BIN" "$fs_note" <<'EOF'
import json, platform, subprocess, sys
result, size, unpacked, entries, src, binary, fs_note = sys.argv[1:]
runs = {r["command"]: r for r in json.load(open(result))["results"]}
tar, vr = runs["GNU tar -xzf"], runs["vr unpack"]
def cmd(*args):
    return subprocess.run(args, capture_output=True, text=True).stdout
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) // 1024 // 1024
print(f"""
| command | median | mean ± σ | CPU user + sys (mean) | runs |
|---|---|---|---|---|
| `tar -xzf` (GNU tar {cmd("tar", "--version").split()[3]}, gzip {cmd("gzip", "--version").split()[1]}) | {tar["median"]:.2f} s | {tar["mean"]:.2f} ± {tar["stddev"]:.2f} s | {tar["user"]:.2f} + {tar["system"]:.2f} s | {len(tar["times"])} |
| `vrd unpack` ({binary.split("/")[-1]}) | {vr["median"]:.2f} s | {vr["mean"]:.2f} ± {vr["stddev"]:.2f} s | {vr["user"]:.2f} + {vr["system"]:.2f} s | {len(vr["times"])} |

**Speed-up (median): {tar["median"] / vr["median"]:.2f}×**

- Tarball: `{src}` packed with `tar | gzip -6`: {int(size) / 2**20:.0f} MiB compressed, {int(unpacked) / 2**20:.0f} MiB unpacked, {entries.strip()} entries.
- Machine: {cpu}, {cmd("nproc").strip()} cores, {mem} GiB RAM, kernel {platform.release()}.
- Destination: {fs_note}.
""")
EOF
