"""End-to-end check of `nibble train` against transformers + PEFT + bitsandbytes (GPU machine):
the same base, data, starting adapter and hyperparameters, step for step.

1. Writes a small random Llama (bf16) with transformers, with the byte-level BPE tokenizer of
   tests/golden/tokenizers/smollm2 (3000 ids), and a JSONL of completion lines ("text").
2. Makes the starting adapter with PEFT (r 16, alpha 32, all linear; PEFT's own init: A Kaiming,
   B zero) and saves it: both runs start from these exact weights (nibble: --init-adapter).
3. nibble train on CUDA: NF4 + DQ quantized on load, bf16 compute, batch 1, no packing, no
   shuffle (file order), linear schedule with warmup, paged_adamw_32bit, max_grad_norm 1,
   gradient checkpointing; its metrics.jsonl gives the loss of every step.
4. The peer, the same job written out in PyTorch: BitsAndBytesConfig(nf4, double quant, bf16),
   PeftModel.from_pretrained(the starting adapter, is_trainable=True), the lines in file order,
   each tokenized with `tokenizers` exactly as nibble does (special tokens, then EOS), mean token
   loss, clip_grad_norm_(1.0), bnb.optim.PagedAdamW32bit, get_linear_schedule_with_warmup.
5. Compares the two loss curves: both computed in bf16 with different kernels, they drift apart
   by rounding only. Band: the 10-step moving averages differ by at most 2 % of the first loss
   at every step, and both fall by more than half. Writes both curves to --out (JSON), and the
   peer's as a metrics JSONL next to nibble's so bench/ can plot them together.
6. The adapter nibble wrote loads with PeftModel.from_pretrained onto the bitsandbytes base with
   no warning, and the loss PEFT computes with it on held-out lines equals `nibble eval
   --adapter` on them within 2x PEFT's own bf16 error (its per-token |bf16 - fp32| mean, the
   fp32 run being the same 4-bit weights with fp32 compute), plus 1e-3 of the loss.
7. Resume on CUDA: a second run that starts from the first run's checkpoint-120 (copied into a
   fresh folder, as a kill right after that save leaves it) with --resume logs the same losses
   for steps 121..240 as the uninterrupted run. nibble's CUDA kernels sum in a fixed order (no
   atomics), so the bound is equality to 1e-6.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TOKENIZER = os.path.join(ROOT, "tests", "golden", "tokenizers", "smollm2")

STEPS_DATA = 240
HYPER = dict(learning_rate=1e-3, warmup_steps=10, r=16, lora_alpha=32, max_grad_norm=1.0, seed=3)


def write_model(path):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8,
                         num_key_value_heads=4, vocab_size=3000, max_position_embeddings=512, rms_norm_eps=1e-5,
                         tie_word_embeddings=False, bos_token_id=0, eos_token_id=2, initializer_range=0.1)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(path)
    shutil.copy(os.path.join(TOKENIZER, "tokenizer.json"), path)
    shutil.copy(os.path.join(TOKENIZER, "tokenizer_config.json"), path)


def write_data(path):
    animals = [("cat", "meow"), ("dog", "woof"), ("cow", "moo"), ("duck", "quack"), ("sheep", "baa"),
               ("owl", "hoot")]
    colours = ["red", "blue", "green", "small", "big", "happy", "old", "young", "fast", "slow"]
    g = torch.Generator().manual_seed(5)
    with open(path, "w") as f:
        for _ in range(STEPS_DATA):
            a, s = animals[torch.randint(len(animals), (1,), generator=g).item()]
            c = colours[torch.randint(len(colours), (1,), generator=g).item()]
            f.write(json.dumps({"text": f"The {c} {a} says {s}. Every {a} says {s}, and so does this {c} one."})
                    + "\n")


def make_start_adapter(model_dir, path):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    torch.manual_seed(HYPER["seed"])
    config = LoraConfig(r=HYPER["r"], lora_alpha=HYPER["lora_alpha"], lora_dropout=0.0,
                        target_modules="all-linear", task_type="CAUSAL_LM")
    get_peft_model(model, config).save_pretrained(path)


def run_nibble(nibble, model_dir, data, adapter, out, extra=()):
    cmd = [nibble, "train", "--model", model_dir, "--data", data, "--out", out, "--init-adapter", adapter,
           "--device", "cuda", "--per-device-train-batch-size", "1", "--no-packing", "--no-shuffle",
           "--learning-rate", str(HYPER["learning_rate"]), "--warmup-steps", str(HYPER["warmup_steps"]),
           "--lr-scheduler-type", "linear", "--optim", "paged_adamw_32bit",
           "--max-grad-norm", str(HYPER["max_grad_norm"]), "--r", str(HYPER["r"]),
           "--lora-alpha", str(HYPER["lora_alpha"]), "--logging-steps", "1",
           "--max-seq-length", "128", "--seed", str(HYPER["seed"]), "--save-total-limit", "0"]
    cmd += list(extra)
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return read_losses(out)


def read_losses(out):
    losses = []
    with open(os.path.join(out, "metrics.jsonl")) as f:
        for line in f:
            record = json.loads(line)
            if "loss" in record and "step" in record:
                losses.append(record["loss"])
    return losses


def run_peer(model_dir, data, adapter, metrics_path):
    import bitsandbytes as bnb
    from peft import PeftModel
    from tokenizers import Tokenizer
    from transformers import BitsAndBytesConfig, LlamaForCausalLM, get_linear_schedule_with_warmup
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
    base = LlamaForCausalLM.from_pretrained(model_dir, quantization_config=quant, dtype=torch.bfloat16,
                                            device_map="cuda")
    base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    base.config.use_cache = False
    model = PeftModel.from_pretrained(base, adapter, is_trainable=True)
    model.train()
    tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    eos = tokenizer.token_to_id("<|im_end|>")
    with open(data) as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = bnb.optim.PagedAdamW32bit(params, lr=HYPER["learning_rate"], betas=(0.9, 0.999), eps=1e-8,
                                          weight_decay=0.0)
    schedule = get_linear_schedule_with_warmup(optimizer, HYPER["warmup_steps"], len(texts))
    losses = []
    with open(metrics_path, "w") as log:
        for step, text in enumerate(texts):
            ids = tokenizer.encode(text, add_special_tokens=True).ids + [eos]
            ids = torch.tensor([ids], device="cuda")
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, HYPER["max_grad_norm"])
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            log.write(json.dumps({"step": step + 1, "loss": losses[-1]}) + "\n")
    return losses


def peft_loads_nibble_adapter(nibble, model_dir, adapter_dir, texts, work):
    """PEFT's loss with nibble's adapter (bf16 and fp32 compute) against nibble eval's."""
    import warnings
    from peft import PeftModel
    from tokenizers import Tokenizer
    from transformers import BitsAndBytesConfig, LlamaForCausalLM
    tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    eos = tokenizer.token_to_id("<|im_end|>")
    eval_file = os.path.join(work, "heldout.jsonl")
    with open(eval_file, "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    losses = {}
    caught_all = []
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=dtype)
        base = LlamaForCausalLM.from_pretrained(model_dir, quantization_config=quant, dtype=dtype, device_map="cuda")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = PeftModel.from_pretrained(base, adapter_dir)
        caught_all += [str(w.message)[:200] for w in caught if "is_gradient_checkpointing" not in str(w.message)]
        model.eval()
        per_token = []
        with torch.no_grad():
            for t in texts:
                ids = torch.tensor([tokenizer.encode(t, add_special_tokens=True).ids + [eos]], device="cuda")
                logits = model(input_ids=ids).logits[0, :-1].float()
                per_token.append(torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="none"))
        losses[name] = torch.cat(per_token)
    out = subprocess.run([nibble, "eval", "--model", model_dir, "--quantize", "nf4", "--adapter", adapter_dir,
                          "--data", eval_file, "--device", "cuda", "--json"], check=True, capture_output=True, text=True)
    ours = json.loads(out.stdout)["loss"]
    peft_bf16, truth = losses["bf16"].mean().item(), losses["fp32"].mean().item()
    peft_error = (losses["bf16"] - losses["fp32"]).abs().mean().item()
    bound = 2 * peft_error + 1e-3 * truth
    return {"nibble_eval_loss": ours, "peft_bf16_loss": peft_bf16, "peft_fp32_loss": truth,
            "peft_per_token_bf16_error": peft_error, "bound": bound, "warnings": caught_all,
            "ok": abs(ours - truth) <= bound and not caught_all}


def moving_average(values, window=10):
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1):i + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nibble", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    model_dir = os.path.join(args.work, "model")
    data = os.path.join(args.work, "train.jsonl")
    adapter = os.path.join(args.work, "start_adapter")
    write_model(model_dir)
    write_data(data)
    make_start_adapter(model_dir, adapter)
    nibble_out = os.path.join(args.work, "nibble_out")
    ours = run_nibble(args.nibble, model_dir, data, adapter, nibble_out, ["--save-steps", "120"])
    theirs = run_peer(model_dir, data, adapter, os.path.join(args.work, "peer_metrics.jsonl"))
    resumed_out = os.path.join(args.work, "resumed_out")
    os.makedirs(resumed_out)
    # What a kill right after the step-120 save leaves: that checkpoint and the log so far (the
    # resumed run cuts the log back to step 120 itself).
    shutil.copytree(os.path.join(nibble_out, "checkpoint-120"), os.path.join(resumed_out, "checkpoint-120"))
    shutil.copy(os.path.join(nibble_out, "metrics.jsonl"), os.path.join(resumed_out, "metrics.jsonl"))
    resumed = run_nibble(args.nibble, model_dir, data, adapter, resumed_out, ["--save-steps", "120", "--resume"])
    heldout = ["The small owl says hoot. Every owl says hoot, and so does this small one.",
               "The fast sheep says baa. Every sheep says baa, and so does this fast one.",
               "The old duck says quack. Every duck says quack, and so does this old one."]
    peft_check = peft_loads_nibble_adapter(args.nibble, model_dir, nibble_out, heldout, args.work)

    failures = []
    if len(ours) != len(theirs):
        failures.append(f"nibble logged {len(ours)} steps, the peer took {len(theirs)}")
    n = min(len(ours), len(theirs))
    band = 0.02 * theirs[0] if theirs else 0.0
    ma_ours, ma_theirs = moving_average(ours[:n]), moving_average(theirs[:n])
    worst = max((abs(a - b) for a, b in zip(ma_ours, ma_theirs)), default=math.inf)
    if worst > band:
        failures.append(f"10-step moving averages differ by up to {worst:.4f}, band {band:.4f}")
    for name, curve in (("nibble", ma_ours), ("peer", ma_theirs)):
        if curve and curve[-1] > 0.5 * curve[0]:
            failures.append(f"{name}'s loss fell only from {curve[0]:.3f} to {curve[-1]:.3f}")
    resume_gap = max((abs(a - b) for a, b in zip(ours[120:], resumed[120:])), default=math.inf)
    if len(resumed) != len(ours) or resume_gap > 1e-6:
        failures.append(f"resumed run: {len(resumed)} logged steps, largest loss gap {resume_gap} after step 120")
    if not peft_check["ok"]:
        failures.append(f"PEFT with nibble's adapter: {peft_check}")
    report = {"nibble": ours, "peer": theirs, "band": band, "max_moving_average_difference": worst,
              "resumed": resumed, "resume_max_gap": resume_gap, "peft_loads_nibble_adapter": peft_check,
              "failures": failures}
    with open(args.out, "w") as f:
        json.dump(report, f)
    shutil.copy(os.path.join(args.work, "peer_metrics.jsonl"), os.path.join(os.path.dirname(args.out),
                                                                            "train_vs_peft_peer.jsonl"))
    shutil.copy(os.path.join(args.work, "nibble_out", "metrics.jsonl"),
                os.path.join(os.path.dirname(args.out), "train_vs_peft_nibble.jsonl"))
    print(f"steps {n}; first loss nibble {ours[0] if ours else float('nan'):.4f} peer "
          f"{theirs[0] if theirs else float('nan'):.4f}; last (10-step mean) nibble {ma_ours[-1] if n else 0:.4f} "
          f"peer {ma_theirs[-1] if n else 0:.4f}; max moving-average difference {worst:.4f} (band {band:.4f}); "
          f"resume gap {resume_gap}; PEFT with nibble's adapter: loss {peft_check['peft_fp32_loss']:.5f} (fp32), "
          f"nibble eval {peft_check['nibble_eval_loss']:.5f}, bound {peft_check['bound']:.5f}")
    if failures:
        print("FAILED: " + "; ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
