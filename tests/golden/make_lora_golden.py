#!/usr/bin/env python3
"""Golden data for lora/ and io/peft_adapter: a LoRA adapter as Hugging Face PEFT writes it, and the
weights PEFT's merge_and_unload() produces from it.

Run with torch + transformers + peft (written against torch 2.15, transformers 5.x, peft 0.21; CPU):
    python tests/golden/make_lora_golden.py [OUT_DIR]      # default tests/golden/lora/
It writes OUT_DIR/:
    model/                  a tiny random Llama (hidden 64, 2 layers, GQA 4/2 heads, intermediate
                            96), fp32, as save_pretrained writes it (config.json, model.safetensors)
    adapter/                PEFT's save_pretrained of LoraConfig(r=4, lora_alpha=8, the seven block
                            linears, init_lora_weights=False so lora_B is not zero): adapter_config.json
                            and adapter_model.safetensors exactly as PEFT wrote them (README.md removed)
    adapter_rank_pattern/   the same model with target_modules a regex string, rank_pattern
                            {"k_proj": 2} and alpha_pattern {"down_proj": 4}, use_rslora
    merged.safetensors      F32: merge_and_unload() of adapter/ for the layer-1 linears (names
                            model.layers.1.<module path>.weight), and the same for adapter_rank_pattern/
                            prefixed "rank_pattern."
    header.json             script, versions, date, the configs used
Total size is a few hundred kB.
"""
import datetime
import json
import os
import shutil
import sys

import peft
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

SEED = 20240611
LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PATHS = {"q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj",
         "o_proj": "self_attn.o_proj", "gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj",
         "down_proj": "mlp.down_proj"}
MERGED_LAYER = 1


def tiny_model():
    config = LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=64, max_position_embeddings=64,
                         tie_word_embeddings=False)
    torch.manual_seed(SEED)
    return LlamaForCausalLM(config).to(torch.float32).eval()


def save_adapter(model_dir, lora_config, out_dir, seed):
    base = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    base.name_or_path = "nibble/tiny-llama"  # what PEFT records as base_model_name_or_path, not a local path
    torch.manual_seed(seed)
    peft_model = get_peft_model(base, lora_config)
    peft_model.save_pretrained(out_dir)
    readme = os.path.join(out_dir, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    # Merge from the adapter as saved, loaded through the public API, so the merged weights are
    # what a user of the folder gets.
    base = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, out_dir).merge_and_unload()
    state = merged.state_dict()
    return {f"model.layers.{MERGED_LAYER}.{PATHS[n]}.weight":
            state[f"model.layers.{MERGED_LAYER}.{PATHS[n]}.weight"].detach().clone().contiguous() for n in LINEARS}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "lora")
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    model_dir = os.path.join(out, "model")
    tiny_model().save_pretrained(model_dir, safe_serialization=True)

    plain = dict(r=4, lora_alpha=8, lora_dropout=0.05, target_modules=LINEARS, init_lora_weights=False,
                 task_type="CAUSAL_LM")
    patterned = dict(r=4, lora_alpha=8, lora_dropout=0.0,
                     target_modules=r".*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
                     rank_pattern={"k_proj": 2}, alpha_pattern={"down_proj": 4}, use_rslora=True,
                     init_lora_weights=False, task_type="CAUSAL_LM")
    merged = save_adapter(model_dir, LoraConfig(**plain), os.path.join(out, "adapter"), SEED + 1)
    merged_rp = save_adapter(model_dir, LoraConfig(**patterned), os.path.join(out, "adapter_rank_pattern"),
                             SEED + 2)
    tensors = dict(merged)
    tensors.update({"rank_pattern." + k: v for k, v in merged_rp.items()})
    save_file(tensors, os.path.join(out, "merged.safetensors"), metadata={"format": "pt"})

    header = {
        "script": "tests/golden/make_lora_golden.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__},
        "date": datetime.date.today().isoformat(),
        "seed": SEED,
        "merged_layer": MERGED_LAYER,
        "configs": {"adapter": plain, "adapter_rank_pattern": patterned},
    }
    with open(os.path.join(out, "header.json"), "w") as f:
        json.dump(header, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
