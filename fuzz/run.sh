#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 300) and prints the executions run.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); libFuzzer's -Z flags are enabled on the
# stable toolchain with RUSTC_BOOTSTRAP=1. Corpora live in fuzz/corpus/<target> (not
# committed); crashes in fuzz/artifacts/<target>, replayed with
# `RUSTC_BOOTSTRAP=1 cargo fuzz run -O <target> fuzz/artifacts/<target>/<file>`.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
source ../scripts/env.sh
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
secs=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
cargo fuzz build -O >&2
printf '%-14s %12s %8s %s\n' target executions seconds result
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log=$(mktemp)
  if cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 \
      -malloc_limit_mb=512 -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result="FAILED (see fuzz/artifacts/$t)"
    tail -30 "$log" >&2
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  printf '%-14s %12s %8s %s\n' "$t" "${runs:-?}" "$secs" "$result"
  rm -f "$log"
done
