#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (AddressSanitizer + UndefinedBehaviorSanitizer)
# into build-fuzz/ and runs each for a bounded time. Fails if any target crashes, leaks, hangs
# (-timeout), runs out of memory (-rss_limit_mb) or escapes with a non-nibble exception.
#
#   scripts/fuzz.sh [seconds-per-target]      (default 20)
#   FUZZ_TARGETS="safetensors hf_config" scripts/fuzz.sh 60     only these targets
#   FUZZ_JOBS=1 scripts/fuzz.sh                                  targets run side by side (default: nproc)
#
# New inputs that reach new code are kept in build-fuzz/corpus/<target>/ (not committed); the
# committed seeds are read from fuzz/corpus/<target>/. A failing input is written to
# build-fuzz/artifacts/<target>/ and the end of its log is printed: add it as a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-20}
build_dir=${NIBBLE_FUZZ_BUILD_DIR:-build-fuzz}
jobs=${FUZZ_JOBS:-$(nproc)}

command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (scripts/setup.sh installs it)" >&2; exit 1; }
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DNIBBLE_FUZZ=ON -DNIBBLE_CUDA=OFF \
  -DNIBBLE_BUILD_TESTS=OFF -DNIBBLE_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" >/dev/null
cmake --build "$build_dir" --target fuzzers -j "$(nproc)"

if [ -n "${FUZZ_TARGETS:-}" ]; then
  targets=($FUZZ_TARGETS)
else
  targets=()
  for exe in "$build_dir"/fuzz/fuzz_*; do targets+=("$(basename "$exe" | sed 's/^fuzz_//')"); done
fi

# The dictionary fuzz/dict/<target>.dict, else the JSON one for the JSON parsers.
dict_for() {
  if [ -f "fuzz/dict/$1.dict" ]; then echo "fuzz/dict/$1.dict"
  elif [ "$1" != tokenizer_encode ] && [ "$1" != gguf ]; then echo fuzz/dict/json.dict
  fi
}

run_target() {
  local t=$1 log="$build_dir/logs/$1.log" dict
  mkdir -p "$build_dir/corpus/$t" "$build_dir/artifacts/$t" "$build_dir/logs"
  dict=$(dict_for "$t")
  # NIBBLE_FUZZ_TMP: the targets that need files write them there, removed below.
  NIBBLE_FUZZ_TMP="$build_dir/tmp" "$build_dir/fuzz/fuzz_$t" "$build_dir/corpus/$t" "fuzz/corpus/$t" \
    ${dict:+-dict="$dict"} -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$build_dir/artifacts/$t/" >"$log" 2>&1
}

mkdir -p "$build_dir/tmp"
failed=()
pending=("${targets[@]}")
while [ ${#pending[@]} -gt 0 ]; do
  batch=("${pending[@]:0:$jobs}")
  pending=("${pending[@]:$jobs}")
  pids=()
  for t in "${batch[@]}"; do run_target "$t" & pids+=($!); done
  for i in "${!batch[@]}"; do
    t=${batch[$i]}
    log="$build_dir/logs/$t.log"
    if wait "${pids[$i]}"; then
      execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
      echo "fuzz $t: ok, ${execs:-?} executions in ${seconds}s"
    else
      echo "fuzz $t: FAILED (see $log, input in $build_dir/artifacts/$t/)"
      tail -n 40 "$log"
      failed+=("$t")
    fi
  done
done
rm -rf "$build_dir/tmp"

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, no crash, leak, hang or stray exception in ${seconds}s each"
