#!/usr/bin/env python3
"""The measurement of bench/model/bench_decode, through transformers + bitsandbytes (the peer).

  python bench/peers/decode_bench.py --out OUT.jsonl

A Llama-2-7B-shaped LlamaForCausalLM from a config with random weights (no download), loaded in
4-bit as QLoRA does (BitsAndBytesConfig nf4 + double quant, bf16 compute), then model.generate
greedy: a 16-token prompt, 128 new tokens, batch 1, EOS disabled. tokens/s counts the decode
steps after the first token (the first comes from the prefill, timed apart), as bench_decode
does. Appends one JSON line to OUT.
"""
import argparse
import datetime
import json
import tempfile
import time

import torch
import transformers
import bitsandbytes
from transformers import BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM

PROMPT_TOKENS = 16
NEW_TOKENS = 128


def llama2_7b_config():
    return LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5)


def timed_generate(model, prompt, new_tokens):
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = model.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                         eos_token_id=None, pad_token_id=0)
    torch.cuda.synchronize()
    assert out.shape[1] == prompt.shape[1] + new_tokens
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    # Random bf16 weights saved once to a temporary folder, then loaded the way users load
    # models in 4-bit (from_pretrained with a quantization_config).
    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        with torch.device("cuda"):
            dense = LlamaForCausalLM(llama2_7b_config()).to(torch.bfloat16)
        dense.save_pretrained(folder)
        del dense
        torch.cuda.empty_cache()
        bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                 bnb_4bit_compute_dtype=torch.bfloat16)
        model = LlamaForCausalLM.from_pretrained(folder, quantization_config=bnb, dtype=torch.bfloat16,
                                                 device_map="cuda").eval()

    prompt = torch.tensor([[100 + 37 * t for t in range(PROMPT_TOKENS)]], device="cuda")
    with torch.no_grad():
        timed_generate(model, prompt, NEW_TOKENS)  # warm-up
        prefill = timed_generate(model, prompt, 1)
        total = timed_generate(model, prompt, NEW_TOKENS)
    decode = total - prefill
    line = {
        "bench": "decode", "impl": "transformers+bitsandbytes",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
        "transformers": transformers.__version__, "bitsandbytes": bitsandbytes.__version__,
        "model": "llama-2-7b shape, random weights", "quant": "nf4+dq", "compute_dtype": "bf16",
        "prompt_tokens": PROMPT_TOKENS, "new_tokens": NEW_TOKENS, "prefill_s": prefill, "decode_s": decode,
        "tokens_per_s": (NEW_TOKENS - 1) / decode,
    }
    with open(args.out, "a") as f:
        f.write(json.dumps(line) + "\n")
    print(json.dumps(line))


if __name__ == "__main__":
    main()
