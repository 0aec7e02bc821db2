#!/usr/bin/env bash
# Build digest-bench and run it pinned to one CPU, with the machine's other work over the
# run recorded (busy time of both CPUs from /proc/stat less the bench's own CPU): the
# figures in bench/files/DIGEST.md come from this.
#
#   bench/files/digest/run.sh                 # 5 rounds: 1 GiB /dev/shm file, 256 MiB buffer
#   bench/files/digest/run.sh --rounds 9      # arguments go to digest-bench
#
# CPU (1): the CPU it runs on.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CPU=${CPU:-1}
cargo build --release --manifest-path "$here/Cargo.toml" >&2
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ), kernel $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs"
echo "# SIMD/SHA flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(sse4_1|avx|avx2|avx512f|avx512vl|sha_ni|vaes)$' | tr '\n' ' ')"
echo "# load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
read -r b0 a0 < <(busy)
TIMEFORMAT='%3R %3U %3S'
t=$({ time taskset -c "$CPU" "$here/target/release/digest-bench" "$@" >/tmp/digest-bench.$$ ; } 2>&1)
read -r b1 a1 < <(busy)
cat /tmp/digest-bench.$$; rm -f /tmp/digest-bench.$$
read -r wall user sys <<<"$t"
tck=$(getconf CLK_TCK)
awk -v b=$((b1 - b0)) -v a=$((a1 - a0)) -v u="$user" -v s="$sys" -v tck="$tck" -v w="$wall" 'BEGIN {
    others = 100 * (b - (u + s) * tck) / a; if (others < 0) others = 0
    printf "\n# %.0f s; other work on the machine over the run: %.0f %% of its 2 CPUs%s\n", w, others,
        (others > 10 ? "  (busy machine: figures preliminary)" : "") }'
echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
