#!/usr/bin/env bash
# Build benchmark: `kiln build` on the four shared workloads (../shared/bench/workloads), each in four
# scenarios, reporting the median wall time and the peak RSS of the `kiln build` process:
#
#   cold    a fresh --root holding only the base image (imported before the clock starts), fresh context
#   noop    the same build again: every step must hit the cache
#   edit    one line appended to the workload's EDIT_FILE, then build: only the steps reading it re-run
#   touch   `touch` every file and directory of the context (content unchanged), then build: all hits
#
#   bench/build.sh                          # every workload, RUNS=3
#   RUNS=1 KILN_BENCH_WORKLOADS="w1 w3" bench/build.sh
#   KILN_BENCH_DIR=/big/disk bench/build.sh # scratch space (roots, contexts, bases); removed on exit
#
# Environment:
#   RUNS                       runs per workload and scenario (default 3); the table shows their median
#                              wall time and the largest peak RSS among them
#   KILN_BENCH_WORKLOADS       workload names or prefixes to run (default: every w* folder)
#   KILN_BENCH_WORKLOADS_DIR   where the workloads are (default: ../shared/bench/workloads from the repo)
#   KILN_BENCH_DIR             parent of the scratch directory (default: $TMPDIR or /tmp)
#   KILN_BENCH_LOOPFS=0        measure on that directory's filesystem, not a fresh ext4 loop filesystem
#   KILN_BENCH_SKIP_W4=1       skip w4-debian (also skipped, with a message, when debootstrap is missing)
#   KILN_BENCH_DEBIAN_TAR      an existing `debootstrap --variant=minbase bookworm` tarball to import
#                              instead of running debootstrap (it reaches Debian's mirrors)
#
# Bases are made offline where possible: busybox by testdata/images/busybox-rootfs.sh, imported as
# busybox:latest; the workloads' `FROM ${REGISTRY}/busybox:latest` gets `--build-arg
# REGISTRY=docker.io/library`, which names the very image `import` stored (`busybox` normalises to
# docker.io/library/busybox:latest). Only the build is timed (`/usr/bin/time -f '%e %M'`); a failed build
# stops the script with the tail of its output. This is a benchmark, not a test: CI never runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

runs=${RUNS:-3}
workloads_dir=${KILN_BENCH_WORKLOADS_DIR:-$repo/../shared/bench/workloads}
[ -d "$workloads_dir" ] || { echo "build.sh: no workloads at $workloads_dir (set KILN_BENCH_WORKLOADS_DIR)" >&2; exit 1; }
workloads_dir=$(cd "$workloads_dir" && pwd)
[ -x /usr/bin/time ] || { echo "build.sh: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }

machine="$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start, $(uname -r)"

cargo build --release --quiet
kiln=$repo/target/release/kiln

work=$(mktemp -d "${KILN_BENCH_DIR:-${TMPDIR:-/tmp}}/kiln-build-bench.XXXXXX")
fs_image=
cleanup() {
    # A build killed midway may leave overlay mounts under a root: unmount them, deepest first, before
    # removing the tree, so rm never walks into a mounted lower layer.
    awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    if [ -n "$fs_image" ]; then
        umount "$work" 2>/dev/null || umount -l "$work" 2>/dev/null || true
        rm -f "$fs_image"
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# As root (with mkfs.ext4), everything runs on a fresh sparse ext4 loop filesystem, as bench/layer.sh
# does: a long-lived root filesystem (deleted inodes still being reclaimed, `discard` on every unlink)
# makes file creation several times slower and the numbers noisy, measuring the disk's history rather
# than kiln. KILN_BENCH_LOOPFS=0 measures on $KILN_BENCH_DIR's own filesystem instead.
if [ "$(id -u)" = 0 ] && [ "${KILN_BENCH_LOOPFS:-1}" != 0 ] && command -v mkfs.ext4 >/dev/null; then
    fs_image=$work.img
    truncate -s 32G "$fs_image"
    # Inode tables and journal initialised now: left to the kernel (lazy_itable_init), their zeroing
    # runs in the background for minutes after the mount and slows whatever is measured first.
    mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$fs_image"
    mount -o loop "$fs_image" "$work"
    filesystem="a fresh ext4 loop filesystem"
else
    filesystem="$(findmnt -n -o FSTYPE -T "$work") at $work"
fi
machine="$machine; on $filesystem"

# --- bases -------------------------------------------------------------------------------------------
testdata/images/busybox-rootfs.sh "$work/busybox.tar"

debian_tar=""
want_debian() {
    if [ "${KILN_BENCH_SKIP_W4:-0}" = 1 ]; then
        echo "skipping w4-debian: KILN_BENCH_SKIP_W4=1" >&2
        return 1
    fi
    if [ -n "${KILN_BENCH_DEBIAN_TAR:-}" ]; then
        debian_tar=$KILN_BENCH_DEBIAN_TAR
        return 0
    fi
    if ! command -v debootstrap >/dev/null; then
        echo "skipping w4-debian: debootstrap not found (apt-get install debootstrap)" >&2
        return 1
    fi
    echo "making the debian base (debootstrap --variant=minbase bookworm)..." >&2
    if ! debootstrap --variant=minbase bookworm "$work/debian-rootfs" >"$work/debootstrap.log" 2>&1; then
        echo "skipping w4-debian: debootstrap failed:" >&2
        tail -n 15 "$work/debootstrap.log" >&2
        return 1
    fi
    debian_tar=$work/debian.tar
    tar --numeric-owner -C "$work/debian-rootfs" -cf "$debian_tar" . || return 1
    rm -rf "$work/debian-rootfs"
}

# --- measuring ---------------------------------------------------------------------------------------
# timed_build ROOT CTX LOG: one `kiln build`, its "elapsed maxrss_kb" appended to $work/samples.
timed_build() {
    local root=$1 ctx=$2 log=$3
    if ! /usr/bin/time -f '%e %M' -o "$work/time" \
        "$kiln" --root "$root" build --progress=plain --build-arg REGISTRY=docker.io/library \
        -t "bench-$name:latest" "$ctx" >"$log" 2>&1; then
        echo "build.sh: $name/$scenario: kiln build failed; last lines of its output:" >&2
        tail -n 25 "$log" >&2
        exit 1
    fi
    # With a non-zero exit /usr/bin/time writes a "Command exited" line first; the numbers are last.
    tail -n 1 "$work/time" >>"$work/samples"
}

# report: one table row from $work/samples (median elapsed, max peak RSS), then empty it.
report() {
    sort -n "$work/samples" | awk -v w="$name" -v s="$scenario" '
        { t[NR] = $1; if ($2 > rss) rss = $2 }
        END {
            med = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
            printf "%-16s %-8s %9.2f %14.1f\n", w, s, med, rss / 1024
        }' | tee -a "$work/table"
    : >"$work/samples"
}

# fresh_root DIR BASES: a new kiln root holding only the workload's base images.
fresh_root() {
    local root=$1 base
    rm -rf "$root"
    for base in $2; do
        case $base in
        busybox) "$kiln" --root "$root" import "$work/busybox.tar" busybox:latest >/dev/null ;;
        debian) "$kiln" --root "$root" import "$debian_tar" debian:latest >/dev/null ;;
        *) echo "build.sh: unknown base $base" >&2; exit 1 ;;
        esac
    done
}

selected() {
    local w
    [ -z "${KILN_BENCH_WORKLOADS:-}" ] && return 0
    for w in $KILN_BENCH_WORKLOADS; do
        case $1 in "$w"*) return 0 ;; esac
    done
    return 1
}

# --- the runs ----------------------------------------------------------------------------------------
: >"$work/samples"
: >"$work/table"
for dir in "$workloads_dir"/w*/; do
    name=$(basename "$dir")
    selected "$name" || continue
    BASES="" EDIT_FILE=""
    # shellcheck source=/dev/null
    . "$dir/workload.conf"
    case " $BASES " in *" debian "*) want_debian || continue ;; esac
    root=$work/root-$name ctx=$work/ctx-$name log=$work/build-$name.log

    scenario="cold"
    for _ in $(seq "$runs"); do
        fresh_root "$root" "$BASES"
        python3 "$dir/gen.py" "$ctx" >"$work/gen.log" 2>&1 || { cat "$work/gen.log" >&2; exit 1; }
        sync
        timed_build "$root" "$ctx" "$log"
    done
    report

    scenario="noop"
    for _ in $(seq "$runs"); do timed_build "$root" "$ctx" "$log"; done
    report

    scenario="edit"
    for i in $(seq "$runs"); do
        echo "# bench edit $i $(date +%s%N)" >>"$ctx/$EDIT_FILE"
        timed_build "$root" "$ctx" "$log"
    done
    report

    scenario="touch"
    for _ in $(seq "$runs"); do
        find "$ctx" -exec touch {} +
        timed_build "$root" "$ctx" "$log"
    done
    report
    rm -rf "$root" "$ctx"
done

echo
echo "machine: $machine; RUNS=$runs"
printf "%-16s %-8s %9s %14s\n" workload scenario median_s peak_rss_MiB
cat "$work/table"
