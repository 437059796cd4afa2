#!/usr/bin/env bash
# Runs every check and every test of raftkv, RocksDB included, on a fresh Debian machine
# with a Rust toolchain. Installs the system packages it needs (libclang for RocksDB's
# bindgen, the system RocksDB library) when they are missing.
#
#   scripts/test.sh            # fmt, clippy, all tests (benches run once in test mode)
#
# Environment:
#   CARGO_TARGET_DIR           reuse a build directory (CI points it outside the clone)
#   RAFTKV_SIM_SEEDS           seeds for the simulation sweep (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

step() { printf '\n== %s\n' "$*"; }

# redis-cli and redis-benchmark for the interop tests and the client matrix.
if ! have_pkg redis-tools; then
  step "installing redis-tools (redis-cli) for the interop test"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  { "${sudo_cmd[@]}" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq redis-tools >/dev/null; } ||
    echo "!!! could not install redis-tools: the client tests that need redis-cli will fail" >&2
fi

# redis-py (its current major, 8, which speaks RESP3 by default) for the client matrix
# (kvservice/tests/client_matrix.rs); redis-tools above gives redis-cli and
# redis-benchmark. RAFTKV_REQUIRE_CLIENTS makes a missing client fail its test rather
# than skip it.
if ! python3 -c 'import redis, sys; sys.exit(int(redis.__version__.split(".")[0]) < 8)' 2>/dev/null; then
  step "installing redis-py 8 for the client matrix"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore 'redis>=8,<9'
fi
export RAFTKV_REQUIRE_CLIENTS=1

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "cargo test (all targets, all features; benches run once in test mode)"
export RAFTKV_BENCH_QUICK=1
cargo test --workspace --all-targets --all-features --locked

step "doctests"
cargo test --workspace --doc --all-features --locked
