#!/usr/bin/env bash
# On the lent GPU machine, the decode-speed work in one call: build the targets it touches, run
# their GPU tests, then the GEMV and decode benchmarks (with and without dependent launches) and
# an ncu look at the fused GEMV. Logs go to $OUT; the last lines printed are a summary.
#   scripts/decode-speed-check.sh [profile] [peer]
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/device-env.sh
OUT=${OUT:-/tmp/decode-speed-check}
mkdir -p "$OUT"
build=build-gpu
summary=$OUT/summary.txt
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }
steps=" $* "

note "decode-speed-check $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader)"
# "all" builds everything and runs every GPU test (ctest -L gpu); otherwise only the targets this
# work touches and their tests.
start=$(date +%s)
cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="90-real;90-virtual" \
  $NIBBLE_CMAKE_ARGS > "$OUT/build.log" 2>&1
if [[ "$steps" == *" all "* ]]; then
  cmake --build $build -j "$(nproc)" >> "$OUT/build.log" 2>&1
else
  cmake --build $build -j "$(nproc)" --target test_backend_cuda test_backward_cuda test_llama_golden_cuda \
    bench_gemv_4bit bench_decode >> "$OUT/build.log" 2>&1
fi
note "build: $([ $? -eq 0 ] && echo ok || echo FAILED) ($(( $(date +%s) - start )) s)"
grep -E "error|FAILED" "$OUT/build.log" | head -20

if [[ "$steps" == *" all "* ]]; then
  ctest --test-dir $build -L gpu --output-on-failure > "$OUT/tests.log" 2>&1
  note "gpu tests: $(grep -E 'tests passed|tests failed' "$OUT/tests.log" | tail -1)"
  grep -E "Failed|\*\*\*" "$OUT/tests.log" | head -10
else
  for t in backend/test_backend_cuda backend/test_backward_cuda model/test_llama_golden_cuda; do
    $build/tests/$t > "$OUT/tests.log.tmp" 2>&1
    rc=$?
    cat "$OUT/tests.log.tmp" >> "$OUT/tests.log"
    note "test $t: rc $rc, $(grep -E '^\[  (PASSED|FAILED) ' "$OUT/tests.log.tmp" | tr '\n' ' ')"
    grep -E '^\[  FAILED  \]' "$OUT/tests.log.tmp" | head -10
  done
  rm -f "$OUT/tests.log.tmp"
fi

jsonl=$OUT/bench.jsonl
: > "$jsonl"
$build/bench/backend/bench_gemv_4bit "$jsonl" > "$OUT/gemv.log" 2>&1
note "bench_gemv_4bit (dependent launches): rc $?"; cat "$OUT/gemv.log" | tee -a "$summary"
NIBBLE_DEPENDENT_LAUNCH=0 $build/bench/backend/bench_gemv_4bit > "$OUT/gemv-plain.log" 2>&1
note "bench_gemv_4bit (plain launches): rc $?"; tail -5 "$OUT/gemv-plain.log" | tee -a "$summary"
$build/bench/model/bench_decode "$jsonl" > "$OUT/decode.log" 2>&1
note "bench_decode: rc $? $(tail -1 "$OUT/decode.log")"
grep -B1 -A16 "GPU time per decode step" "$OUT/decode.log" | grep -v "^decode llama" | tee -a "$summary"
NIBBLE_DEPENDENT_LAUNCH=0 $build/bench/model/bench_decode /dev/null > "$OUT/decode-plain.log" 2>&1
note "bench_decode, plain launches: rc $? $(tail -1 "$OUT/decode-plain.log")"

if [[ "$steps" == *" profile "* ]]; then
  # The first timed launch of the 11008 x 4096 shape (each shape: one checked launch, then graph
  # replays of 20 launches: 3 warm-up and 50 timed replays, 1061 launches in all).
  stalls=""
  for r in short_scoreboard long_scoreboard mio_throttle lg_throttle math_pipe_throttle wait not_selected \
    selected barrier dispatch_stall no_instruction branch_resolving; do
    stalls="$stalls,smsp__average_warps_issue_stalled_${r}_per_issue_active.ratio"
  done
  timeout 120 ncu --clock-control none --kernel-name regex:gemv_4bit_mma --launch-skip 1100 --launch-count 1 \
    --section SpeedOfLight --section Occupancy --section SchedulerStats --section InstructionStats \
    --metrics "${stalls#,},l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum,sm__inst_executed_pipe_alu.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active,l1tex__throughput.avg.pct_of_peak_sustained_active,l1tex__data_pipe_lsu_wavefronts.avg.pct_of_peak_sustained_elapsed" \
    $build/bench/backend/bench_gemv_4bit > "$OUT/ncu.log" 2>&1
  note "ncu: rc $?"
  grep -E "Duration|DRAM Throughput|L1/TEX Cache|Achieved Occupancy|No Eligible|Registers Per|Theoretical Occupancy|Warp Cycles Per Issued|Issued Instructions  |stalled|pipe_|wavefronts|bank_conflicts|l1tex__throughput" "$OUT/ncu.log" | head -40 | tee -a "$summary"
fi

if [[ "$steps" == *" peer "* ]]; then
  timeout 240 python3 bench/peers/decode_bench.py --out "$jsonl" > "$OUT/peer.log" 2>&1
  note "peer decode: rc $? $(tail -1 "$OUT/peer.log")"
fi
