#!/usr/bin/env bash
# redis-benchmark against a 3-member raftkv cluster on loopback (file backend, fsync
# on): SET and GET, 100,000 requests, 50 clients, 100-byte values, without and with
# pipelining (-P 16). Prints one line per run: test, ops/s, p50 and p99 in ms.
#
#   benches/resp_load.sh [--backend file|rocksdb|memory] [--requests N] [--target leader|follower]
#   PROFILE=1 benches/resp_load.sh    # also a system-wide perf profile of 6 s of SET -P 1
#                                     # load, summarized into benches/profile-resp-set.txt
#
# Needs redis-benchmark (Debian's redis-tools; installed if missing when run as root).
set -euo pipefail
cd "$(dirname "$0")/.."

backend=file requests=100000 target=leader base_port=${RAFTKV_BENCH_PORT:-16381}
while [ $# -gt 0 ]; do
  case "$1" in
    --backend) backend=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    --target) target=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

if ! command -v redis-benchmark >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools >/dev/null
fi
source scripts/env.sh >/dev/null
features=()
[ "$backend" = rocksdb ] && features=(--features rocksdb)
cargo build --release --locked "${features[@]}" --bin raftkv >&2
exe=${CARGO_TARGET_DIR:-target}/release/raftkv

work=$(mktemp -d)
"$exe" cluster --nodes 3 --backend "$backend" --data-dir "$work/data" --base-port "$base_port" \
  >"$work/cluster.out" 2>"$work/cluster.log" &
cluster=$!
cleanup() { kill -INT "$cluster" 2>/dev/null; wait "$cluster" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

ports=("$base_port" $((base_port + 1)) $((base_port + 2)))
for p in "${ports[@]}"; do
  for _ in $(seq 300); do
    [ "$(redis-cli -p "$p" SET __ready 1 2>/dev/null)" = OK ] && break
    sleep 0.1
  done
done
port=
for p in "${ports[@]}"; do
  role=$(redis-cli -p "$p" INFO | tr -d '\r' | sed -n 's/^role://p')
  if { [ "$target" = leader ] && [ "$role" = leader ]; } || { [ "$target" = follower ] && [ "$role" = follower ]; }; then
    port=$p; break
  fi
done
[ -n "$port" ] || { echo "no $target found" >&2; cat "$work/cluster.log" >&2; exit 1; }

echo "# raftkv 3 members, backend $backend, fsync on; redis-benchmark against the $target (port $port)"
for pipeline in 1 16; do
  redis-benchmark -p "$port" -t set,get -n "$requests" -c 50 -d 100 -P "$pipeline" --csv 2>/dev/null |
    tr -d '"' | awk -F, -v p="$pipeline" 'NR > 1 { printf "raftkv %-4s -P %-2s %9.0f ops/s  p50 %6.2f ms  p99 %6.2f ms\n", $1, p, $2, $5, $7 }'
done

if [ "${PROFILE:-0}" = 1 ]; then
  command -v perf >/dev/null || { echo "PROFILE=1 needs perf (Debian: linux-perf)" >&2; exit 1; }
  redis-benchmark -p "$port" -t set -n "$((requests * 3))" -c 50 -d 100 -q >"$work/profiled.txt" 2>&1 &
  load=$!
  sleep 2
  perf record -a -g -F 499 -o "$work/perf.data" -- sleep 6 >/dev/null 2>&1
  wait "$load" || true
  out=benches/profile-resp-set.txt
  {
    echo "# perf record -a, 6 s of redis-benchmark -t set -c 50 -d 100 -P 1 against the leader"
    echo "# of a 3-member loopback cluster (backend $backend, fsync on); $(nproc) cores, $(uname -r)"
    echo "# $(tr '\r' '\n' <"$work/profiled.txt" | grep -a 'overall' | tail -1)"
    echo; echo "## CPU by thread"
    perf report -i "$work/perf.data" --no-children --sort comm,pid --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -24
    echo; echo "## user space vs kernel"
    perf report -i "$work/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -6
    echo; echo "## inclusive, by symbol"
    perf report -i "$work/perf.data" --children --sort sym --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -45
  } >"$out"
  echo "profile written to $out" >&2
fi
