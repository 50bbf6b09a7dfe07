#!/usr/bin/env python3
"""The peer of bench/train/bench_train_step: the same QLoRA training step through transformers +
PEFT + bitsandbytes, on random weights made on the GPU (no files).

Llama-shaped model in bf16, every block linear replaced by bitsandbytes' Linear4bit (NF4, double
quantization, bf16 compute): what BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16) makes of a checkpoint.
PEFT LoRA r=64, alpha 16, dropout 0 on all seven block linears; gradient checkpointing
(use_reentrant=False); bitsandbytes' PagedAdamW32bit (transformers' optim="paged_adamw_32bit");
max_grad_norm 1.0; loss = LlamaForCausalLM's mean token cross-entropy. Not applied:
prepare_model_for_kbit_training (it would cast norms and embeddings to fp32, costing memory);
nibble keeps them in bf16 too.

Usage: train_step_peer.py OUT.jsonl [SHAPE=llama2-7b] [SEQ=2048] [BATCH=1] [STEPS=4]
"""
import datetime
import json
import sys
import time

import torch

SHAPES = {
    "llama2-7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=32, vocab_size=32000, rope_theta=10000.0),
    "llama3-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0),
    "llama2-13b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40,
                       num_key_value_heads=40, vocab_size=32000, rope_theta=10000.0),
}
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def quantize_blocks(model):
    import bitsandbytes as bnb
    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name in LINEARS:
                old = getattr(parent, name, None)
                if old is None:
                    continue
                new = bnb.nn.Linear4bit(old.in_features, old.out_features, bias=False, compute_dtype=torch.bfloat16,
                                        compress_statistics=True, quant_type="nf4", device="meta")
                new.weight = bnb.nn.Params4bit(old.weight.data, requires_grad=False, compress_statistics=True,
                                               quant_type="nf4")
                new.weight = new.weight.to("cuda")  # quantizes
                setattr(parent, name, new)
                del old
    torch.cuda.empty_cache()


def main():
    out_path = sys.argv[1]
    shape = sys.argv[2] if len(sys.argv) > 2 else "llama2-7b"
    seq = int(sys.argv[3]) if len(sys.argv) > 3 else 2048
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    steps = int(sys.argv[5]) if len(sys.argv) > 5 else 4
    import bitsandbytes as bnb
    import peft
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM
    from peft import LoraConfig, get_peft_model

    fields = dict(SHAPES[shape])
    rope_theta = fields.pop("rope_theta")
    config = LlamaConfig(**fields, max_position_embeddings=max(4096, seq), rms_norm_eps=1e-5,
                         rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
                         tie_word_embeddings=False, use_cache=False)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM._from_config(config, dtype=torch.bfloat16)
    quantize_blocks(model)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    lora = LoraConfig(r=64, lora_alpha=16, lora_dropout=0.0, target_modules=list(LINEARS), task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    model.train()
    optimizer = bnb.optim.PagedAdamW32bit([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, config.vocab_size, (batch, seq), generator=g).cuda()

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    step()  # warm-up
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tokens_per_s = steps * batch * seq / seconds
    line = {
        "bench": "train_step", "impl": "transformers+peft+bitsandbytes",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(0), "model": f"{shape} shape, random weights", "quant": "nf4+dq",
        "compute_dtype": "bf16", "seq": seq, "batch": batch, "lora_rank": 64, "gradient_checkpointing": True,
        "optim": "paged_adamw_32bit", "steps": steps, "seconds": seconds, "tokens_per_s": tokens_per_s,
        "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
        "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                     "bitsandbytes": bnb.__version__},
    }
    with open(out_path, "a") as f:
        f.write(json.dumps(line) + "\n")
    print(f"peer train step {shape} seq {seq} batch {batch}: {tokens_per_s:.0f} tokens/s, peak "
          f"{line['peak_allocated_gib']:.2f} GiB allocated, {line['peak_reserved_gib']:.2f} GiB reserved")


if __name__ == "__main__":
    main()
