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

# redis-cli for the interop test; that test skips (loudly) if this cannot install it.
if ! have_pkg redis-tools; then
  step "installing redis-tools (redis-cli) for the interop test"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  { "${sudo_cmd[@]}" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq redis-tools >/dev/null; } ||
    echo "!!! could not install redis-tools: the redis-cli interop test will be SKIPPED" >&2
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "cargo test (all targets, all features; benches run once in test mode)"
export RAFTKV_BENCH_QUICK=1
cargo test --workspace --all-targets --all-features --locked

step "doctests"
cargo test --workspace --doc --all-features --locked
