#!/usr/bin/env bash
# Where the time of a 1M-key restart and a 1M-key snapshot goes (file backend, warm
# cache): perf with DWARF call graphs over criterion's --profile-time, summarized into
# benches/profile-restart.txt and benches/profile-snapshot.txt (self time, then
# inclusive time of raftkv, imbl, bincode and zstd functions). Setup (building the
# state, writing the data directory) is in the profile too, about a tenth of it.
#
#   benches/profile.sh            # about a minute
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

features=(--features rocksdb)
target_dir=${CARGO_TARGET_DIR:-target}
for bench in restart snapshot; do
  exe=$(cargo bench "${features[@]}" --bench "$bench" --no-run --message-format=json 2>/dev/null |
    grep '"kind":\["bench"\]' | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
  filter=$([ "$bench" = restart ] && echo '1M_x100B/file/tail_0/warm' || echo 'snapshot/1M_x100B/file')
  data="$target_dir/perf-$bench.data"
  RAFTKV_BENCH_QUICK=1 RAFTKV_BENCH_KEYS=1000000 RAFTKV_BENCH_FILTER=$filter RAFTKV_BENCH_RESULTS=/dev/null \
    perf record -F 199 --call-graph dwarf,16384 -o "$data" "$exe" --bench "$filter" --profile-time 15 \
    >"$target_dir/perf-$bench.log" 2>&1
  {
    echo "# perf, $bench $filter, criterion --profile-time 15 (setup included)"
    echo "# self time"
    perf report -i "$data" --no-children --stdio -g none --percent-limit 1.5 2>/dev/null |
      grep -E '^ +[0-9.]+%' | cut -c1-180 | head -25
    echo "# inclusive time (raftkv, imbl, bincode, zstd)"
    perf report -i "$data" --children --stdio -g none --percent-limit 3 2>/dev/null |
      grep -E '^ +[0-9.]+%' | grep -E 'raftkv|imbl|bincode|zstd' | grep -v '(inlined)' |
      cut -c1-180 | head -30
  } >"benches/profile-$bench.txt"
  echo "wrote benches/profile-$bench.txt"
done
