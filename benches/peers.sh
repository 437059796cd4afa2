#!/usr/bin/env bash
# raftkv beside its peers, on this machine, in one run:
#   - raftkv, 3 members on loopback, file backend, fsync on (benches/resp_load.sh);
#   - Redis alone with appendonly yes + appendfsync always, same redis-benchmark command;
#   - etcd, 3 members on loopback: puts and linearizable reads at the same value size
#     (100 B) and number of clients (50), through etcd's JSON gateway with wrk
#     (benches/wrk/etcd.lua); with CHECK_PERF=1 also `etcdctl check perf --load=s`.
# Prints a table and the ratios the README quotes.
#
#   benches/peers.sh            (about 3 minutes; installs missing Debian packages as root)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v redis-server >/dev/null || need+=(redis-server)
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

secs=${PEERS_SECONDS:-20}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

echo "# $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(uname -r)"
echo "# $(redis-server --version | cut -d' ' -f1-3), $(etcd --version | head -1)"

# raftkv
benches/resp_load.sh | tee "$work/raftkv.txt"

# Redis, durable, one process
mkdir -p "$work/redis"
redis-server --port 16390 --dir "$work/redis" --appendonly yes --appendfsync always --save "" \
  --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ "$(redis-cli -p 16390 PING 2>/dev/null)" = PONG ] && break; sleep 0.1; done
echo "# redis-server alone, appendonly yes, appendfsync always"
for pipeline in 1 16; do
  redis-benchmark -p 16390 -t set,get -n 100000 -c 50 -d 100 -P "$pipeline" --csv 2>/dev/null |
    tr -d '"' | awk -F, -v p="$pipeline" 'NR > 1 { printf "redis  %-4s -P %-2s %9.0f ops/s  p50 %6.2f ms  p99 %6.2f ms\n", $1, p, $2, $5, $7 }'
done | tee "$work/redis.txt"

# etcd, 3 members
cluster="e1=http://127.0.0.1:12380,e2=http://127.0.0.1:12390,e3=http://127.0.0.1:12400"
for i in 1 2 3; do
  peer=$((12370 + i * 10)); client=$((peer - 1))
  etcd --name "e$i" --data-dir "$work/etcd$i" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token raftkv-peers \
    --log-level error >"$work/etcd$i.log" 2>&1 &
  pids+=($!)
done
endpoints=http://127.0.0.1:12379,http://127.0.0.1:12389,http://127.0.0.1:12399
for _ in $(seq 200); do ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
leader=$(ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint status -w simple | awk -F', ' '$5 == "true" { print $1 }')
echo "# etcd 3 members, leader $leader; wrk, 50 connections, 100 B values, ${secs}s each"
for mode in put get; do
  wrk -t 2 -c 50 -d "${secs}s" -s benches/wrk/etcd.lua "$leader" -- "$mode" 100 |
    awk -v m="$mode" '/^RESULT/ { split($2, r, "="); split($3, a, "="); split($4, b, "="); printf "etcd   %-4s       %9.0f ops/s  p50 %6.2f ms  p99 %6.2f ms  (%s)\n", m == "put" ? "SET" : "GET", r[2], a[2], b[2], $5 }'
done | tee "$work/etcd.txt"
if [ "${CHECK_PERF:-0}" = 1 ]; then
  ETCDCTL_API=3 etcdctl --endpoints "$endpoints" check perf --load=s
fi

rate() { awk -v t="$2" -v p="$3" '$2 == t && $4 == p { print $5; exit }' "$1"; }
erate() { awk -v t="$2" '$2 == t { print $3; exit }' "$1"; }
rk_set=$(rate "$work/raftkv.txt" SET 1) rk_get=$(rate "$work/raftkv.txt" GET 1)
rd_set=$(rate "$work/redis.txt" SET 1) et_set=$(erate "$work/etcd.txt" SET) et_get=$(erate "$work/etcd.txt" GET)
echo "# ratios at -P 1, 50 clients"
awk -v a="$rk_set" -v b="$et_set" 'BEGIN { printf "raftkv SET / etcd put          %.2fx (target >= 3)\n", a / b }'
awk -v a="$rk_get" -v b="$et_get" 'BEGIN { printf "raftkv GET / etcd linear. get  %.2fx (target >= 3)\n", a / b }'
awk -v a="$rd_set" -v b="$rk_set" 'BEGIN { printf "durable redis SET / raftkv SET %.2fx (target <= 2)\n", a / b }'
