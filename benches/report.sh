#!/usr/bin/env bash
# Restart and snapshot report, in one command: runs the `snapshot`, `restart` and
# `throughput` criterion benches in quick mode (RAFTKV_BENCH_QUICK=1: 10 samples, short
# measurements; 10k, 100k, 1M keys × 100 B and 100k × 1 KiB) on every backend,
# loads the same 1M keys into Redis and etcd and times their snapshot and restart
# (benches/peer_restart.py), then writes benches/REPORT.md and benches/report.svg
# (benches/report.rs). Criterion's HTML report is in $CARGO_TARGET_DIR/criterion.
#
#   benches/report.sh                # about 15 minutes on 2 cores
#   FULL=1 benches/report.sh         # criterion's longer runs, all log tails, 4M keys
#   PEERS=0 benches/report.sh        # without Redis and etcd
#   PROFILE=1 benches/report.sh      # also perf profiles of a 1M-key restart and snapshot
#                                    # (benches/profile.sh)
#
# Extra arguments go to criterion (e.g. a filter: `benches/report.sh 1M`), which
# narrows the benches but still regenerates the report from what was recorded.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

features=(--features rocksdb)
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir = /* ]] || target_dir=$PWD/$target_dir
export RAFTKV_BENCH_RESULTS=${RAFTKV_BENCH_RESULTS:-$target_dir/raftkv-bench-results.tsv}
[ "${FULL:-0}" = 1 ] || export RAFTKV_BENCH_QUICK=1
mode=$([ "${FULL:-0}" = 1 ] && echo full || echo "quick (RAFTKV_BENCH_QUICK=1)")
mkdir -p "$(dirname "$RAFTKV_BENCH_RESULTS")"
: >"$RAFTKV_BENCH_RESULTS"

printf 'kind=machine\tcores=%s\tcpu=%s\tram=%s\tkernel=%s\trustc=%s\tmode=%s\n' \
  "$(nproc)" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')" \
  "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)" \
  "Linux $(uname -r), $(df -T . | awk 'NR == 2 { print $2 }')" \
  "$(rustc --version | cut -d' ' -f1-2)" \
  "$mode" >>"$RAFTKV_BENCH_RESULTS"

cargo bench "${features[@]}" --bench snapshot --bench restart --bench throughput -- "$@"

if [ "${PEERS:-1}" = 1 ]; then
  python3 benches/peer_restart.py --keys "${PEER_KEYS:-1000000}" --results "$RAFTKV_BENCH_RESULTS"
fi

if [ "${PROFILE:-0}" = 1 ]; then
  benches/profile.sh || echo "profiling failed; the report goes on without it" >&2
fi

cargo bench "${features[@]}" --bench report
