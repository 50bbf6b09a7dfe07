#!/usr/bin/env bash
# Runs every test that needs no GPU. GPU tests carry the ctest label `gpu`
# and run on a GPU machine through scripts/gpu-check.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${NIBBLE_BUILD_DIR:-build}
ctest --test-dir "$build_dir" -LE gpu --output-on-failure -j "$(nproc)"
