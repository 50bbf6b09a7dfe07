"""End-to-end check of `nibble quantize` against transformers + bitsandbytes (GPU machine).

1. Writes tiny random Llama folders with transformers (bf16 and fp32; shapes with partial
   absmax blocks and an odd number of DQ blocks).
2. Runs `nibble quantize` on them (CUDA and CPU; nf4 + DQ, nf4 without DQ, fp4).
3. Loads every output with AutoModelForCausalLM.from_pretrained (transformers + bitsandbytes)
   and checks that each decoder linear became a Linear4bit with nothing missing or unexpected.
4. Quantizes the same folders with transformers' own BitsAndBytesConfig, saves them, and
   compares every tensor byte for byte with nibble's file. CUDA output must be identical;
   CPU output may differ only in codes adjacent to bnb's (approximate reciprocal on the GPU,
   bnb-format.md 1.3): counted and reported.
5. Compares the logits of both loaded models on the same tokens.
Writes a JSON report to --out and exits non-zero on any failure.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM

import bitsandbytes as bnb


def make_model(path, dtype):
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=320, intermediate_size=864, num_hidden_layers=2, num_attention_heads=5,
                         num_key_value_heads=1, head_dim=64, vocab_size=1000, max_position_embeddings=256,
                         rms_norm_eps=1e-5, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    model.save_pretrained(path)
    return config


def reference_quantized(src, dst, quant_type, double_quant):
    cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant_type,
                             bnb_4bit_use_double_quant=double_quant, bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(src, quantization_config=cfg, device_map="cuda:0")
    model.save_pretrained(dst)
    return model


def code_distance(a, b, quant_type):
    """Per-nibble distance in value order (NF4 codes are sorted; FP4 codes are compared as equal/unequal)."""
    hi_a, lo_a = a >> 4, a & 15
    hi_b, lo_b = b >> 4, b & 15
    if quant_type == "nf4":
        return torch.maximum((hi_a.int() - hi_b.int()).abs(), (lo_a.int() - lo_b.int()).abs())
    return ((hi_a != hi_b) | (lo_a != lo_b)).int()


def compare(ours, theirs, quant_type, exact):
    report = {"tensors": 0, "differing_tensors": [], "differing_bytes": 0, "max_code_distance": 0, "missing": []}
    for name, ref in theirs.items():
        if name not in ours:
            report["missing"].append(name)
            continue
        mine = ours[name]
        report["tensors"] += 1
        if mine.dtype != ref.dtype or mine.shape != ref.shape:
            report["differing_tensors"].append(f"{name}: {mine.dtype}{list(mine.shape)} vs {ref.dtype}{list(ref.shape)}")
            continue
        if torch.equal(mine.view(torch.uint8), ref.view(torch.uint8)):
            continue
        if name.endswith(".weight") and mine.dtype == torch.uint8 and mine.dim() == 2 and mine.shape[1] == 1:
            diff = mine != ref
            report["differing_bytes"] += int(diff.sum())
            dist = int(code_distance(mine[diff], ref[diff], quant_type).max())
            report["max_code_distance"] = max(report["max_code_distance"], dist)
            if exact or dist > 1:
                report["differing_tensors"].append(f"{name}: {int(diff.sum())} bytes, code distance {dist}")
        elif not exact and (name.endswith(".absmax") or name.endswith("quant_state.bitsandbytes__" + quant_type)
                            or name.endswith(".nested_absmax")):
            # Without the GPU's reciprocal a block's codes can move, but absmax and the DQ constants cannot.
            report["differing_tensors"].append(f"{name}: constants differ")
        else:
            report["differing_tensors"].append(f"{name}: bytes differ")
    extra = sorted(set(ours) - set(theirs))
    report["unexpected"] = extra
    return report


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nibble", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    results, ok = [], True
    tokens = torch.randint(0, 1000, (1, 48), device="cuda")
    for dtype_name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        src = os.path.join(args.work, f"tiny-{dtype_name}")
        make_model(src, dtype)
        for quant_type, double_quant in (("nf4", True), ("nf4", False), ("fp4", True)):
            ref_dir = os.path.join(args.work, f"ref-{dtype_name}-{quant_type}-{int(double_quant)}")
            ref_model = reference_quantized(src, ref_dir, quant_type, double_quant)
            theirs = load_file(os.path.join(ref_dir, "model.safetensors"))
            for device in ("cuda", "cpu"):
                out = os.path.join(args.work, f"q-{dtype_name}-{quant_type}-{int(double_quant)}-{device}")
                cmd = [args.nibble, "quantize", "--model", src, "--out", out, "--quant-type", quant_type,
                       "--device", device, "--double-quant" if double_quant else "--no-double-quant"]
                run = subprocess.run(cmd, capture_output=True, text=True)
                case = {"dtype": dtype_name, "quant_type": quant_type, "double_quant": double_quant,
                        "device": device, "returncode": run.returncode, "stdout": run.stdout[-600:],
                        "stderr": run.stderr[-600:]}
                if run.returncode != 0:
                    ok = False
                    results.append(case)
                    continue
                ours = load_file(os.path.join(out, "model.safetensors"))
                case["compare"] = compare(ours, theirs, quant_type, exact=(device == "cuda"))
                model = AutoModelForCausalLM.from_pretrained(out, device_map="cuda:0")
                linears = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
                case["linear4bit_modules"] = len(linears)
                with torch.no_grad():
                    a = model(tokens).logits.float()
                    b = ref_model(tokens).logits.float()
                case["logits_max_abs_diff"] = float((a - b).abs().max())
                case["logits_equal"] = bool(torch.equal(a, b))
                c = case["compare"]
                passed = (not c["missing"] and not c["unexpected"] and not c["differing_tensors"]
                          and len(linears) == 14 and (device != "cuda" or case["logits_equal"]))
                case["passed"] = passed
                ok &= passed
                results.append(case)
                print(json.dumps({k: v for k, v in case.items() if k not in ("stdout", "stderr")}))
            del ref_model
            torch.cuda.empty_cache()
    with open(args.out, "w") as f:
        json.dump({"transformers": __import__("transformers").__version__, "bitsandbytes": bnb.__version__,
                   "torch": torch.__version__, "cases": results}, f, indent=1)
    print("quantize vs transformers+bitsandbytes:", "all passed" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
