#!/usr/bin/env python3
"""Golden data for model/: the Llama-family forward pass as Hugging Face transformers computes it.

Run with torch + transformers (written against torch 2.11, transformers 5.17; bitsandbytes 0.50.2
for the 4-bit part, which needs a CUDA GPU and is skipped without one):
    python tests/golden/make_forward_golden.py [OUT_DIR]      # default tests/golden/forward/
For each variant (tiny random models of every family nibble loads) it writes OUT_DIR/<variant>/:
    model/               the model as save_pretrained writes it (config.json, model.safetensors)
    model_nf4/           (GPU only) the same model loaded with BitsAndBytesConfig nf4 + double
                         quant, bf16 compute, and saved again: bitsandbytes' own 4-bit bytes
    logits.safetensors   F32 [T, V] logits for the fixed ids of header.json:
        fp32             transformers in fp32 on the CPU
        bf16             transformers in bf16 on the CPU (the model cast with .to(bfloat16))
        fp32_of_bf16     the model rounded to bf16, computed in fp32: the truth the bf16 run
                         approximates, so a bf16 tolerance can be "no worse than k x transformers"
        nf4              (GPU only) transformers + bitsandbytes, bf16 compute, on the GPU
        nf4_fp32         (GPU only) the same 4-bit weights dequantized to fp32, computed in fp32 on
                         the CPU (the embeddings and norms are the bf16 ones of the 4-bit model)
and OUT_DIR/header.json: script, versions, date, and per variant the ids, the greedy prompt and
the 32 tokens transformers' generate() picks greedily in fp32 (EOS disabled, so all 32 come).
Weights: transformers' own init (N(0, 0.02)), then norm weights 1 + N(0, 0.1) and biases
N(0, 0.1), since the init leaves those at exactly 1 and 0 where a mistake would not show.
"""
import copy
import datetime
import json
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM
from transformers import Qwen2Config, Qwen2ForCausalLM

T = 12             # tokens of the logits check
PROMPT = 6         # tokens of the greedy prompt
NEW_TOKENS = 32

COMMON = dict(num_hidden_layers=2, max_position_embeddings=512, rms_norm_eps=1e-5, bos_token_id=1,
              eos_token_id=2, initializer_range=0.02)

# name: (config class, model class, storage dtype, config fields)
VARIANTS = {
    "llama2": (LlamaConfig, LlamaForCausalLM, torch.float32, dict(
        hidden_size=64, intermediate_size=172, num_attention_heads=4, num_key_value_heads=4, vocab_size=256,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, tie_word_embeddings=False)),
    "llama3": (LlamaConfig, LlamaForCausalLM, torch.float32, dict(
        hidden_size=128, intermediate_size=160, num_attention_heads=4, num_key_value_heads=2, vocab_size=320,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
        tie_word_embeddings=False, eos_token_id=[2, 3])),
    # head_dim set apart from hidden/heads (Mistral-Nemo style): q_proj is [128, 64].
    "mistral": (MistralConfig, MistralForCausalLM, torch.float32, dict(
        hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
        vocab_size=256, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, sliding_window=4096,
        tie_word_embeddings=False)),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM, torch.float32, dict(
        hidden_size=64, intermediate_size=160, num_attention_heads=4, num_key_value_heads=2, vocab_size=288,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, tie_word_embeddings=True,
        use_sliding_window=False)),
    # Stored in bf16, as SmolLM2 ships: nibble's default compute dtype is then bf16.
    "smollm2": (LlamaConfig, LlamaForCausalLM, torch.bfloat16, dict(
        hidden_size=96, intermediate_size=160, num_attention_heads=6, num_key_value_heads=2, vocab_size=256,
        rope_parameters={"rope_type": "default", "rope_theta": 100000.0}, tie_word_embeddings=True,
        bos_token_id=0, eos_token_id=0)),
    # Stored in fp16, with linear RoPE scaling.
    "tinyllama": (LlamaConfig, LlamaForCausalLM, torch.float16, dict(
        hidden_size=64, intermediate_size=176, num_attention_heads=4, num_key_value_heads=1, vocab_size=256,
        rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0},
        tie_word_embeddings=False)),
}


def make_model(name, seed):
    config_class, model_class, dtype, fields = VARIANTS[name]
    config = config_class(**{**COMMON, **fields})
    torch.manual_seed(seed)
    model = model_class(config).eval()
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif pname.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return model.to(dtype)


def logits_of(model, ids, device="cpu"):
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids], device=device), use_cache=False)
    return out.logits[0].float().cpu().contiguous()


def greedy(model, prompt):
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=NEW_TOKENS, do_sample=False, min_new_tokens=0,
                             eos_token_id=None)
    return out[0, len(prompt):].tolist()


def bnb_available():
    if not torch.cuda.is_available():
        return False
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return False
    return True


def nf4_runs(name, model_dir, out_dir, ids):
    """transformers + bitsandbytes NF4 + DQ logits, the saved 4-bit folder, and the fp32 logits of
    the very same 4-bit weights dequantized."""
    import bitsandbytes
    import bitsandbytes.functional as BF
    from transformers import BitsAndBytesConfig
    config_class, model_class, _, _ = VARIANTS[name]
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=torch.bfloat16)
    q = model_class.from_pretrained(model_dir, quantization_config=bnb, dtype=torch.bfloat16,
                                    device_map="cuda").eval()
    nf4 = logits_of(q, ids, device="cuda")
    q_dir = os.path.join(out_dir, "model_nf4")
    q.save_pretrained(q_dir)

    state = {}
    for mname, module in q.named_modules():
        if isinstance(module, bitsandbytes.nn.Linear4bit):
            w = module.weight
            # Dequantized straight to fp32 (not to the bf16 of the quant_state and then up):
            # the exact values absmax x code, which nibble's fp32 path computes too.
            state_fp32 = copy.copy(w.quant_state)
            state_fp32.dtype = torch.float32
            state[mname + ".weight"] = BF.dequantize_4bit(w.data, state_fp32).cpu()
            if module.bias is not None:
                state[mname + ".bias"] = module.bias.float().cpu()
    for pname, p in q.named_parameters():
        if pname not in state and not isinstance(p, bitsandbytes.nn.Params4bit):
            state[pname] = p.detach().float().cpu()
    reference = model_class(config_class.from_pretrained(model_dir)).eval().float()
    missing, unexpected = reference.load_state_dict(state, strict=False)
    # lm_head.weight is missing when tied: it is embed_tokens itself.
    assert not unexpected and all(m == "lm_head.weight" for m in missing), (missing, unexpected)
    if "lm_head.weight" in missing:
        reference.tie_weights()
    return nf4, logits_of(reference, ids), bitsandbytes.__version__


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                 "forward")
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    torch.use_deterministic_algorithms(True)
    with_bnb = bnb_available()
    header = {
        "script": "tests/golden/make_forward_golden.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "bitsandbytes": None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "tokens": T,
        "new_tokens": NEW_TOKENS,
        "variants": {},
    }
    for index, name in enumerate(VARIANTS):
        variant_dir = os.path.join(out_dir, name)
        model_dir = os.path.join(variant_dir, "model")
        model = make_model(name, seed=100 + index)
        model.save_pretrained(model_dir)
        vocab = model.config.vocab_size
        g = torch.Generator().manual_seed(200 + index)
        ids = torch.randint(3, vocab, (T,), generator=g).tolist()
        model_class = VARIANTS[name][1]

        fp32_model = model_class.from_pretrained(model_dir, dtype=torch.float32).eval()
        logits = {"fp32": logits_of(fp32_model, ids)}
        tokens = greedy(fp32_model, ids[:PROMPT])
        bf16_model = model_class.from_pretrained(model_dir, dtype=torch.bfloat16).eval()
        logits["bf16"] = logits_of(bf16_model, ids)
        logits["fp32_of_bf16"] = logits_of(bf16_model.float(), ids)
        if with_bnb:
            logits["nf4"], logits["nf4_fp32"], header["bitsandbytes"] = nf4_runs(name, model_dir, variant_dir, ids)
        save_file(logits, os.path.join(variant_dir, "logits.safetensors"))
        header["variants"][name] = {"ids": ids, "prompt": ids[:PROMPT], "greedy": tokens, "nf4": with_bnb,
                                    "storage_dtype": str(VARIANTS[name][2]).replace("torch.", "")}

    with open(os.path.join(out_dir, "header.json"), "w") as f:
        json.dump(header, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(out_dir) for f in files)
    print(f"wrote {out_dir}: {total / 1e6:.2f} MB, bitsandbytes part {'done' if with_bnb else 'skipped (no GPU)'}")


if __name__ == "__main__":
    main()
