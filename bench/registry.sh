#!/usr/bin/env bash
# Registry benchmark: `kiln push` / `kiln pull` against skopeo moving the same image to and from a
# local registry, and `kiln save` / `kiln load`, on an image of 20,000 files / ~300 MB (the
# w2-bigcontext tree from shared/bench, imported as one layer). Every phase runs as its own process
# under `/usr/bin/time -v`, which gives its wall time, CPU time and peak RSS.
#
#   bench/registry.sh              # every phase once; one line per phase
#   RUNS=3 bench/registry.sh       # each phase 3 times: best wall time, highest peak RSS
#   KILN_BENCH_DIR=/some/dir bench/registry.sh
#
# Each push goes to a freshly started registry (empty storage), so neither tool finds the other's
# blobs there; each pull goes into a fresh root or directory. The registry is Debian's
# `docker-registry` on 127.0.0.1, as in the tests: it shares the machine's CPUs and disk with the
# client, so these numbers measure both. MB/s is the image's blob bytes (compressed layer, config,
# manifest; the archive's bytes for save and load) per wall second.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
gen=${KILN_BENCH_GEN:-$repo/../shared/bench/workloads/w2-bigcontext/gen.py}
runs=${RUNS:-1}
for tool in docker-registry skopeo python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench/registry.sh needs $tool" >&2; exit 1; }
done

cargo build --release --bin kiln --quiet
kiln=$repo/target/release/kiln

work=$(mktemp -d "${KILN_BENCH_DIR:-${TMPDIR:-/tmp}}/kiln-registry-bench.XXXXXX")
registry_pid=""
stop_registry() {
    if [ -n "$registry_pid" ]; then
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
        registry_pid=""
    fi
}
trap 'stop_registry; rm -rf "$work"' EXIT
export DOCKER_CONFIG=$work/docker-config # no logins: never the user's
mkdir -p "$DOCKER_CONFIG"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
# fresh_registry: (re)starts the registry on $host with empty storage.
fresh_registry() {
    stop_registry
    rm -rf "$work/registry"
    REGISTRY_HTTP_ADDR=$host REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=$work/registry \
        docker-registry serve testdata/registry/plain.yml 2>"$work/registry.log" &
    registry_pid=$!
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return
        sleep 0.05
    done
    echo "docker-registry did not start:" >&2
    cat "$work/registry.log" >&2
    exit 1
}

echo "generating the tree and importing it..." >&2
python3 "$gen" "$work/tree" >/dev/null
files=$(find "$work/tree" -type f | wc -l)
tar -C "$work/tree" -cf "$work/rootfs.tar" .
rm -rf "$work/tree"
"$kiln" --root "$work/source" import "$work/rootfs.tar" "$host/big:1" >/dev/null
rm "$work/rootfs.tar"
"$kiln" --root "$work/source" save -o "$work/big.tar" "$host/big:1"
image_bytes=$(du -sb --apparent-size "$work/source/blobs" | cut -f1)
archive_bytes=$(stat -c %s "$work/big.tar")
echo "image: $files files, blobs $((image_bytes / 1000000)) MB, archive $((archive_bytes / 1000000)) MB" >&2

# phase NAME BYTES SETUP COMMAND...: runs SETUP (untimed), then COMMAND under /usr/bin/time, $runs
# times; prints the best wall time, its MB/s, CPU time and the highest peak RSS.
phase() {
    local name=$1 bytes=$2 setup=$3
    shift 3
    local best="" cpu="" rss=0
    for _ in $(seq "$runs"); do
        eval "$setup"
        sync
        /usr/bin/time -v -o "$work/time" "$@" >/dev/null 2>"$work/err" || {
            echo "$name failed:" >&2
            cat "$work/err" >&2
            exit 1
        }
        read -r wall run_cpu run_rss < <(awk '
            /Elapsed \(wall clock\)/ { n = split($NF, t, ":"); wall = (n == 3) ? t[1]*3600 + t[2]*60 + t[3] : t[1]*60 + t[2] }
            /User time/ { user = $NF }
            /System time/ { sys = $NF }
            /Maximum resident set size/ { rss = $NF }
            END { printf "%.2f %.2f %d\n", wall, user + sys, rss }' "$work/time")
        if [ -z "$best" ] || awk -v a="$wall" -v b="$best" 'BEGIN { exit !(a < b) }'; then
            best=$wall
            cpu=$run_cpu
        fi
        [ "$run_rss" -gt "$rss" ] && rss=$run_rss
    done
    awk -v name="$name" -v wall="$best" -v cpu="$cpu" -v rss="$rss" -v bytes="$bytes" 'BEGIN {
        printf "%-34s wall %7.2f s  %7.1f MB/s  cpu %7.2f s  peak RSS %6.1f MB\n",
            name, wall, bytes / 1e6 / (wall > 0 ? wall : 0.01), cpu, rss / 1024
    }'
}

phase "kiln push" "$image_bytes" fresh_registry \
    "$kiln" --root "$work/source" push -q "$host/big:1"
phase "skopeo copy oci-archive: -> docker:" "$archive_bytes" fresh_registry \
    skopeo copy --quiet --dest-tls-verify=false "oci-archive:$work/big.tar" "docker://$host/big:1"
# The registry now holds the image as skopeo pushed it (the same blobs kiln pushes).
phase "kiln pull (fresh root)" "$image_bytes" 'rm -rf "$work/pulled"' \
    "$kiln" --root "$work/pulled" pull -q "$host/big:1"
phase "skopeo copy docker: -> oci:" "$image_bytes" 'rm -rf "$work/oci"' \
    skopeo copy --quiet --src-tls-verify=false "docker://$host/big:1" "oci:$work/oci:big"
stop_registry
phase "kiln save -o" "$archive_bytes" 'rm -f "$work/saved.tar"' \
    "$kiln" --root "$work/source" save -o "$work/saved.tar" "$host/big:1"
phase "kiln load -i (fresh root)" "$archive_bytes" 'rm -rf "$work/loaded"' \
    "$kiln" --root "$work/loaded" load -q -i "$work/big.tar"
