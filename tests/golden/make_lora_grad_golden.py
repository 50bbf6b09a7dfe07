#!/usr/bin/env python3
"""Golden data for training: LoRA gradients as PyTorch autograd computes them through PEFT.

Run with torch + transformers + peft (written against torch 2.11, transformers 5.17, peft 0.21;
bitsandbytes 0.50.2 on a CUDA GPU for the 4-bit part, skipped without one):
    python tests/golden/make_lora_grad_golden.py [OUT_DIR]      # default tests/golden/lora_grad/
The base is tests/golden/forward/llama3 (grouped-query attention, llama3 RoPE), already committed:
its fp32 folder `model/` and bitsandbytes' own NF4 + DQ folder `model_nf4/`. It writes OUT_DIR/:
    adapter/                  a PEFT adapter (r 8, alpha 16, all linear, dropout 0) with random A
                              AND B (init_lora_weights=False), so every gradient is non-zero
    grads.safetensors         F32, PEFT's parameter names without "base_model.model.":
        fp32.<name>           fp32 base, fp32 compute, on the CPU
        nf4.<name>            (GPU only) bitsandbytes NF4 + DQ base, bf16 compute, on the GPU:
                              what QLoRA users run
        nf4_fp32.<name>       (GPU only) the same 4-bit weights dequantized to fp32, fp32 compute
                              on the CPU: the truth the nf4 run approximates
    header.json               ids [2, T] and labels [2, T] (transformers' unshifted labels, -100 on
                              each row's prompt), the loss of each run, versions, date
The loss is LlamaForCausalLM's: mean cross-entropy over the labels that are not -100.
"""
import copy
import datetime
import json
import os
import shutil
import sys

import torch
import transformers
import peft
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from transformers import LlamaForCausalLM

T = 12
PROMPT = 4  # label -100 on each row's first PROMPT tokens, as a response-only loss has them
HERE = os.path.dirname(os.path.abspath(__file__))
BASE = os.path.join(HERE, "forward", "llama3")


def lora_grads(model):
    grads = {}
    for name, p in model.named_parameters():
        if "lora_" in name:
            # As the adapter file names them: no "base_model.model." prefix, no adapter name.
            key = name.removeprefix("base_model.model.").replace(".default.", ".")
            grads[key] = p.grad.detach().float().cpu().contiguous()
    return grads


def loss_and_grads(model, ids, labels, device):
    model.zero_grad()
    out = model(input_ids=ids.to(device), labels=labels.to(device), use_cache=False)
    out.loss.backward()
    return out.loss.item(), lora_grads(model)


def dequantized_fp32_model(q):
    """A fp32 LlamaForCausalLM holding q's 4-bit weights dequantized straight to fp32."""
    import bitsandbytes
    import bitsandbytes.functional as BF
    state = {}
    for mname, module in q.named_modules():
        if isinstance(module, bitsandbytes.nn.Linear4bit):
            s = copy.copy(module.weight.quant_state)
            s.dtype = torch.float32
            state[mname + ".weight"] = BF.dequantize_4bit(module.weight.data, s).cpu()
    for pname, p in q.named_parameters():
        if pname not in state and not isinstance(p, bitsandbytes.nn.Params4bit):
            state[pname] = p.detach().float().cpu()
    reference = LlamaForCausalLM.from_pretrained(os.path.join(BASE, "model"), dtype=torch.float32)
    missing, unexpected = reference.load_state_dict(state, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    return reference


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "lora_grad")
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    torch.use_deterministic_algorithms(True)

    base = LlamaForCausalLM.from_pretrained(os.path.join(BASE, "model"), dtype=torch.float32)
    vocab = base.config.vocab_size
    g = torch.Generator().manual_seed(31)
    ids = torch.randint(3, vocab, (2, T), generator=g)
    labels = ids.clone()
    labels[:, :PROMPT] = -100

    config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear",
                        init_lora_weights=False, task_type="CAUSAL_LM")
    torch.manual_seed(7)
    model = get_peft_model(base, config)
    adapter_dir = os.path.join(out_dir, "adapter")
    model.save_pretrained(adapter_dir)
    os.remove(os.path.join(adapter_dir, "README.md"))  # PEFT's model card template: nothing to test
    grads = {}
    losses = {}
    losses["fp32"], g32 = loss_and_grads(model, ids, labels, "cpu")
    grads.update({f"fp32.{k}": v for k, v in g32.items()})

    header_bnb = None
    if torch.cuda.is_available():
        try:
            import bitsandbytes
            header_bnb = bitsandbytes.__version__
        except ImportError:
            pass
    if header_bnb is not None:
        from transformers import BitsAndBytesConfig
        bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                 bnb_4bit_compute_dtype=torch.bfloat16)
        q = LlamaForCausalLM.from_pretrained(os.path.join(BASE, "model_nf4"), quantization_config=bnb,
                                             dtype=torch.bfloat16, device_map="cuda")
        reference = dequantized_fp32_model(q)
        q_lora = PeftModel.from_pretrained(q, adapter_dir, is_trainable=True)
        losses["nf4"], gq = loss_and_grads(q_lora, ids, labels, "cuda")
        grads.update({f"nf4.{k}": v for k, v in gq.items()})
        ref_lora = PeftModel.from_pretrained(reference, adapter_dir, is_trainable=True)
        losses["nf4_fp32"], gr = loss_and_grads(ref_lora, ids, labels, "cpu")
        grads.update({f"nf4_fp32.{k}": v for k, v in gr.items()})

    save_file(grads, os.path.join(out_dir, "grads.safetensors"))
    header = {
        "script": "tests/golden/make_lora_grad_golden.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "bitsandbytes": header_bnb,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "base": "tests/golden/forward/llama3",
        "ids": ids.tolist(),
        "labels": labels.tolist(),
        "losses": losses,
    }
    with open(os.path.join(out_dir, "header.json"), "w") as f:
        json.dump(header, f, indent=1)
        f.write("\n")
    print(f"wrote {out_dir}: runs {sorted(losses)}")


if __name__ == "__main__":
    main()
