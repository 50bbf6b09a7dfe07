#!/usr/bin/env bash
# On the lent GPU machine, in one call: build for sm_90, run the GPU tests, the end-to-end
# checks against transformers + bitsandbytes, and the benchmarks (ours and the peers'), leaving
# logs and a short table under $OUT. Run scripts/fetch-device-deps.sh on the development machine
# first and carry .deps and .bnb. Steps can be chosen: scripts/gpu-check.sh [build tests golden e2e bench]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/nibble-gpu-check}
mkdir -p "$OUT"
source scripts/device-env.sh
export PYTHONUNBUFFERED=1
steps=${*:-build tests e2e bench}
build=build-gpu
summary=$OUT/summary.txt
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }
has() { [[ " $steps " == *" $1 "* ]]; }

note "gpu-check $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader)"
note "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"

if has build; then
  cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="90-real;90-virtual" \
    $NIBBLE_CMAKE_ARGS > "$OUT/build.log" 2>&1 &&
    cmake --build $build -j "$(nproc)" >> "$OUT/build.log" 2>&1
  note "build: $([ $? -eq 0 ] && echo ok || echo FAILED, see build.log)"
  tail -30 "$OUT/build.log" | grep -E "error|FAILED" | head -20
fi

if has golden; then
  # Golden data from the Python stack, committed under tests/golden/ after a run.
  mkdir -p "$OUT/golden"
  for script in tests/golden/make_*.py; do
    name=$(basename "$script" .py)
    python3 "$script" --out "$OUT/golden/${name#make_}" > "$OUT/golden/$name.log" 2>&1
    note "golden $name: $([ $? -eq 0 ] && echo ok || echo FAILED)"
  done
  (cd "$OUT/golden" && tar czf ../golden.tgz --exclude='*.log' .)
fi

if has tests; then
  ctest --test-dir $build -L gpu --output-on-failure > "$OUT/gpu-tests.log" 2>&1
  note "gpu tests: $(grep -E 'tests passed|tests failed' "$OUT/gpu-tests.log" | tail -1)"
  ctest --test-dir $build -LE gpu --output-on-failure > "$OUT/cpu-tests.log" 2>&1
  note "cpu tests: $(grep -E 'tests passed|tests failed' "$OUT/cpu-tests.log" | tail -1)"
fi

if has e2e; then
  for script in tests/e2e/*.py; do
    [ -f "$script" ] || continue
    name=$(basename "$script" .py)
    python3 "$script" --nibble $build/src/cli/nibble --work /tmp/nibble-e2e/$name --out "$OUT/$name.json" \
      > "$OUT/$name.log" 2>&1
    note "e2e $name: $([ $? -eq 0 ] && echo ok || echo FAILED) $(tail -1 "$OUT/$name.log")"
  done
fi

if has bench; then
  : > "$OUT/bench.jsonl"
  for b in $build/bench/*/bench_*; do
    [ -x "$b" ] || continue
    "$b" "$OUT/bench.jsonl" > "$OUT/$(basename "$b").log" 2>&1
    note "bench $(basename "$b"): $([ $? -eq 0 ] && echo ok || echo FAILED)"
    cat "$OUT/$(basename "$b").log" | tail -12
  done
  for p in bench/peers/*.py; do
    [ -f "$p" ] || continue
    python3 "$p" --out "$OUT/bench.jsonl" > "$OUT/$(basename "$p" .py).log" 2>&1
    note "peer $(basename "$p"): $([ $? -eq 0 ] && echo ok || echo FAILED)"
    tail -6 "$OUT/$(basename "$p" .py).log"
  done
fi
echo; cat "$summary"
