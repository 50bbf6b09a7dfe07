#!/usr/bin/env bash
# On the lent GPU machine, in one call: build for sm_90, run the GPU tests, the end-to-end
# checks against transformers + bitsandbytes, and the benchmarks (ours and the peers'), leaving
# logs and a short table under $OUT. Run scripts/fetch-device-deps.sh on the development machine
# first and carry .deps and .bnb. Steps can be chosen: scripts/gpu-check.sh [build tests golden e2e bench]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/nibble-gpu-check}
LOGS=/tmp/nibble-gpu-check-logs  # the device returns at most 8 files: logs travel as logs.tgz
rm -rf "$LOGS"; mkdir -p "$OUT" "$LOGS"
source scripts/device-env.sh
export PYTHONUNBUFFERED=1
steps=${*:-build tests e2e bench}
build=build-gpu
summary=$OUT/summary.txt
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }
has() { [[ " $steps " == *" $1 "* ]]; }
# ONLY="name ..." limits the e2e scripts and benchmarks to those names (default: all).
only() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }

note "gpu-check $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader)"
note "commit ${NIBBLE_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"

if has build; then
  cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="90-real;90-virtual" \
    $NIBBLE_CMAKE_ARGS > "$LOGS/build.log" 2>&1 &&
    cmake --build $build -j "$(nproc)" -- -k 0 >> "$LOGS/build.log" 2>&1
  note "build: $([ $? -eq 0 ] && echo ok || echo FAILED, see build.log)"
  tail -30 "$LOGS/build.log" | grep -E "error|FAILED" | head -20
fi

if has golden; then
  # Golden data from the Python stack, written into this checkout's tests/golden/ (so the tests
  # below read it) and returned as golden.tgz to be committed.
  golden() {  # name, command...
    local name=$1; shift
    only "$name" || return 0
    "$@" > "$LOGS/golden-$name.log" 2>&1
    note "golden $name: $([ $? -eq 0 ] && echo ok || echo FAILED, see golden-$name.log)"
  }
  golden bnb python3 tests/golden/make_bnb_golden.py tests/golden/bnb
  golden tokenizers python3 tests/golden/make_tokenizer_golden.py tests/golden/tokenizers
  golden chat_templates python3 tests/golden/make_chat_template_golden.py
  golden forward python3 tests/golden/make_forward_golden.py tests/golden/forward
  golden lora python3 tests/golden/make_lora_golden.py tests/golden/lora
  golden optim python3 tests/golden/make_optim_golden.py tests/golden/optim
  golden lora_grad python3 tests/golden/make_lora_grad_golden.py tests/golden/lora_grad
  tar czf "$OUT/golden.tgz" tests/golden
fi

if has tests; then
  ctest --test-dir $build -L gpu -j4 --output-on-failure > "$LOGS/gpu-tests.log" 2>&1
  note "gpu tests: $(grep -E 'tests passed|tests failed' "$LOGS/gpu-tests.log" | tail -1)"
  ctest --test-dir $build -LE "gpu|model" -j16 --output-on-failure > "$LOGS/cpu-tests.log" 2>&1
  note "cpu tests: $(grep -E 'tests passed|tests failed' "$LOGS/cpu-tests.log" | tail -1)"
fi

if has e2e; then
  # The Double Quantization offset must be torch's own float32 CUDA mean, bit for bit.
  if [ -x $build/tests/quant/check_torch_mean ]; then
    python3 tests/golden/check_torch_mean.py /tmp/torch-means.bin > "$LOGS/torch-mean.log" 2>&1 &&
      $build/tests/quant/check_torch_mean /tmp/torch-means.bin >> "$LOGS/torch-mean.log" 2>&1
    note "e2e torch mean emulation: $([ $? -eq 0 ] && echo ok || echo FAILED) $(grep -i match "$LOGS/torch-mean.log" | head -2 | tr '\n' ' ')"
    rm -f /tmp/torch-means.bin
  fi
  for script in tests/e2e/*.py; do
    [ -f "$script" ] || continue
    name=$(basename "$script" .py)
    only "$name" || continue
    python3 "$script" --nibble $build/src/cli/nibble --work /tmp/nibble-e2e/$name --out "$LOGS/$name.json" \
      > "$LOGS/$name.log" 2>&1
    note "e2e $name: $([ $? -eq 0 ] && echo ok || echo FAILED) $(tail -1 "$LOGS/$name.log")"
  done
fi

if has bench; then
  # Ours and the peers' in the same call, on the same GPU. Each appends JSON lines to bench.jsonl.
  jsonl=$OUT/bench.jsonl
  : > "$jsonl"
  run_bench() {  # name, command...
    local name=$1; shift
    only "$name" || return 0
    local program=$1; [ "$1" = python3 ] && program=$2
    [ -e "$program" ] || { note "bench $name: not built"; return; }
    "$@" > "$LOGS/$name.log" 2>&1
    local rc=$?
    # Benchmarks given no output path print their JSON lines instead.
    [[ " $* " == *" $jsonl "* ]] || grep -h '^{' "$LOGS/$name.log" >> "$jsonl.stdout" 2>/dev/null
    note "bench $name: $([ $rc -eq 0 ] && echo ok || echo FAILED)"
    tail -8 "$LOGS/$name.log"
  }
  tok=tests/golden/tokenizers/llama3
  run_bench bench_dequant $build/bench/quant/bench_dequant "$jsonl"
  run_bench peer_bnb_quant python3 bench/peers/bnb_quant_bench.py "$jsonl"
  run_bench bench_gemv_4bit $build/bench/backend/bench_gemv_4bit "$jsonl"
  run_bench bench_decode $build/bench/model/bench_decode "$jsonl"
  run_bench peer_decode python3 bench/peers/decode_bench.py --out "$jsonl"
  run_bench bench_train_step_7b $build/bench/train/bench_train_step "$jsonl" llama2-7b 2048 1 4
  run_bench peer_train_step_7b python3 bench/peers/train_step_peer.py "$jsonl" llama2-7b 2048 1 4
  run_bench bench_tokenizer $build/bench/text/bench_tokenizer $tok 10
  run_bench peer_tokenizers python3 bench/peers/tokenizers_bench.py $tok 10
  [ -f "$jsonl.stdout" ] && cat "$jsonl.stdout" >> "$jsonl" && rm "$jsonl.stdout"
fi
(cd "$LOGS" && tar czf "$OUT/logs.tgz" .)
echo; cat "$summary"
