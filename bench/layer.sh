#!/usr/bin/env bash
# Layer benchmark: diff+gzip, diff+zstd and apply on a generated tree of 20,000 files / ~300 MB (mostly
# small files, ten of 20 MB, content that compresses about 2:1). Each phase runs as its own process under
# `/usr/bin/time -v`, which gives its wall time, CPU time and peak RSS.
#
#   bench/layer.sh                 # run every phase; prints one line per phase
#   KILN_BENCH_DIR=/some/dir bench/layer.sh
#
# As root (and with mkfs.ext4 present) the phases run on a fresh 4 GiB ext4 loop filesystem: ext4 slows
# inode allocation for minutes after many files were deleted (`recently_deleted` scans), so a used
# filesystem measures its own history more than kiln. Otherwise they run in $KILN_BENCH_DIR or a temp dir.
#
# KILN_BENCH_RT=1 runs each phase under `chrt --fifo 10` (root only): on a machine shared with busy
# neighbours, this measures the code rather than the neighbours (the kernel still keeps 5% for them).
#
# Each line ends with the 1-minute load average when the phase started: compare runs made under similar
# load. MB/s is input (uncompressed tar) bytes per wall second; "MB/CPU-s" per second of user+sys CPU, which
# is what to look at on a busy machine (two cores at full use give about twice that per wall second when
# the work spreads over both, as the compressors and the apply reader thread make it).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --profile bench -p kiln-builder --bench layer --quiet
bin=$(cargo bench -p kiln-builder --bench layer --no-run --message-format=json 2>/dev/null \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)

work=$(mktemp -d "${KILN_BENCH_DIR:-${TMPDIR:-/tmp}}/kiln-layer-bench.XXXXXX")
mounted=""
cleanup() {
    [ -n "$mounted" ] && umount "$work/fs"
    rm -rf "$work"
}
trap cleanup EXIT
if [ "$(id -u)" = 0 ] && command -v mkfs.ext4 >/dev/null; then
    truncate -s 4G "$work/fs.img"
    # Initialised now, not by the kernel in the background while the phases are measured.
    mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$work/fs.img"
    mkdir "$work/fs"
    mount -o loop "$work/fs.img" "$work/fs"
    mounted=yes
    dir="$work/fs"
else
    dir="$work"
fi

mkdir "$dir/tree"
"$bin" generate "$dir/tree" >/dev/null
size=$(du -sb --apparent-size "$dir/tree" | cut -f1)

# phase NAME ARGS...: runs the bench binary, prints wall, CPU and peak RSS for it.
phase() {
    local name=$1
    shift
    sync
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)
    ${KILN_BENCH_RT:+chrt --fifo 10} /usr/bin/time -v -o "$work/time" "$bin" "$@" >"$work/out"
    awk -v name="$name" -v bytes="$size" -v load="$load" '
        /Elapsed \(wall clock\)/ { n = split($NF, t, ":"); wall = (n == 3) ? t[1]*3600 + t[2]*60 + t[3] : t[1]*60 + t[2] }
        /User time/ { user = $NF }
        /System time/ { sys = $NF }
        /Maximum resident set size/ { rss = $NF }
        END {
            cpu = user + sys
            printf "%-12s %7.1f MB/s  %6.2f s wall  %6.2f s cpu (%5.1f user %5.1f sys) %7.1f MB/CPU-s  peak RSS %5.1f MiB  load %s\n",
                name, bytes / 1e6 / wall, wall, cpu, user, sys, bytes / 1e6 / cpu, rss / 1024, load
        }' "$work/time"
}

echo "tree: $(find "$dir/tree" -type f | wc -l) files, $((size / 1000000)) MB; $(nproc) cores; $(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg)"
phase "diff+tar" diff "$dir/tree" none "$dir/layer.tar"
phase "diff+gzip" diff "$dir/tree" gzip "$dir/layer.tar.gz"
phase "diff+zstd" diff "$dir/tree" zstd "$dir/layer.tar.zst"
mkdir "$dir/a-gzip" "$dir/a-zstd"
phase "apply gzip" apply "$dir/layer.tar.gz" "$dir/a-gzip"
phase "apply zstd" apply "$dir/layer.tar.zst" "$dir/a-zstd"
ls -l "$dir"/layer.* | awk '{ printf "  %s %d MB\n", $NF, $5 / 1e6 }'
