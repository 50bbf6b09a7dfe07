#!/usr/bin/env bash
# Issue 4 quality check: the quickstart's LoRA job (SmolLM2-135M-Instruct, examples/quickstart)
# on four bases with the same hyperparameters and seed: bf16 (no quantization), NF4 + Double
# Quantization, NF4 without DQ, FP4 + DQ. Prints each run's eval loss before and after, writes
# the eval curves of all four into one PNG (bench/quality_parity.png by default).
#
#   bash bench/quality_parity.sh [--device cpu|cuda] [OUT_PNG]
# Needs the model from scripts/fetch-model.sh imported as scripts/quickstart.sh does; runs under
# .models/parity/. NIBBLE=path and PLOT=path pick other builds of nibble and plot_loss.
set -euo pipefail
cd "$(dirname "$0")/.."

device_args=()
if [ "${1:-}" = "--device" ]; then device_args=(--device "$2"); shift 2; fi
png=${1:-bench/quality_parity.png}
nibble=${NIBBLE:-build/src/cli/nibble}
plot=${PLOT:-build/bench/train/plot_loss}
model=.models/smollm2-135m-instruct
data=examples/quickstart
work=.models/parity
[ -f "$model/config.json" ] || { echo "quality_parity: $model is missing; run scripts/quickstart.sh first" >&2; exit 1; }

declare -A base_args=(
  [bf16]="--no-load-in-4bit"
  [nf4_dq]="--bnb-4bit-quant-type nf4 --bnb-4bit-use-double-quant"
  [nf4]="--bnb-4bit-quant-type nf4 --no-bnb-4bit-use-double-quant"
  [fp4_dq]="--bnb-4bit-quant-type fp4 --bnb-4bit-use-double-quant"
)
rm -rf "$work"
mkdir -p "$work"
inputs=()
for base in bf16 nf4_dq nf4 fp4_dq; do
  # shellcheck disable=SC2086
  "$nibble" train --model "$model" --data "$data/train.jsonl" --eval-data "$data/eval.jsonl" --out "$work/$base" \
    --r 16 --lora-alpha 32 --learning-rate 1e-3 --num-train-epochs 1 --per-device-train-batch-size 4 \
    --max-seq-length 128 --warmup-steps 2 --logging-steps 2 --eval-steps 5 --save-steps 1000 --seed 42 \
    --no-gradient-checkpointing ${base_args[$base]} "${device_args[@]}" 2> "$work/$base.log"
  first=$(grep -m1 '"eval_loss"' "$work/$base/metrics.jsonl" | sed 's/.*"eval_loss": *\([0-9.e-]*\).*/\1/')
  last=$(grep '"eval_loss"' "$work/$base/metrics.jsonl" | tail -1 | sed 's/.*"eval_loss": *\([0-9.e-]*\).*/\1/')
  echo "$base: eval loss $first before, $last after"
  inputs+=("$base=$work/$base/metrics.jsonl")
done
"$plot" --out "$png" --y eval_loss --title "SmolLM2-135M LoRA: eval loss by base precision" "${inputs[@]}"
echo "wrote $png"
