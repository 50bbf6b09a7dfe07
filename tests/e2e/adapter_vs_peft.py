"""End-to-end check of LoRA adapters in nibble against transformers + PEFT (+ bitsandbytes) (GPU machine).

1. Writes a tiny random Llama (bf16) with transformers and a tiny byte-level BPE tokenizer trained
   here with `tokenizers` on ASCII text made here (nothing is downloaded), and the same base
   quantized by transformers + bitsandbytes (NF4 + double quant) and saved as a 4-bit folder.
2. Makes a random LoRA adapter with PEFT: LoraConfig(r=8, lora_alpha=16, all linear,
   init_lora_weights=False so that B != 0), saved with save_pretrained.
3. (a) `nibble eval --adapter` on both bases, CPU and CUDA, against the loss PEFT computes on the
       same tokens (mean cross-entropy per target token; text lines: every token after the first,
       EOS appended). `nibble generate --adapter` greedy text against PeftModel.generate.
   (b) `nibble merge` of both bases loads with AutoModelForCausalLM.from_pretrained, and its
       logits and weights are compared with PeftModel.merge_and_unload().
   (c) An adapter written by nibble loading in PeftModel.from_pretrained without warnings: skipped,
       no nibble command writes adapters yet (`nibble train` will; add the check with it).
Writes a JSON report to --out and exits non-zero on any failure.

Bounds and where they come from:
- fp32 compute (nibble --dtype f32; transformers in float32, bitsandbytes compute dtype float32):
  the same weights (bf16 widened exactly, or the same NF4 codes dequantized) summed in another
  order: logits within 1e-4 x max |logit| (tests/model/test_llama_golden.cpp's fp32 bound). A
  token's cross-entropy logsumexp(z) - z[t] moves by at most 2 max |dz|, so the losses agree within
  2e-4 x max |logit|. Greedy text: identical, or the first different token comes at a step where
  PEFT's two best logits are closer than 2e-4 x max |logit| (a tie at this precision).
- bf16 compute: nibble and PEFT round at different points, so neither is exact. nibble's loss
  must be no further from the fp32 truth than 2x PEFT's mean per-token |bf16 - fp32| error (a
  per-token scale: the mean loss can cancel its errors by luck, the per-token errors cannot).
- merge, --dtype fp32: every merged weight within 2^-20 x (|W| + s |B| |A|) of W + s B A computed
  here in float64 (the fp32 sum of R + 1 terms errs by at most ~(R + 1) 2^-24 of the sum of
  |terms|); logits against PEFT's fp32 merge_and_unload() within the fp32 bound.
- merge, bf16: every merged weight within half a bf16 ulp (2^-8 x |w|: 8 significant bits) of the float64 sum, plus
  the fp32 slack above; logits no further from PEFT's fp32 merge than 2x those of PEFT's own
  merge onto a bf16-loaded base (which rounds the same sum to bf16).
- merge of the 4-bit base (dequantized, not re-quantized; PEFT would re-quantize): compared with
  PEFT's unmerged adapter on the 4-bit base in fp32 compute, the fp32 bound.
"""
import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is made here; nothing may be fetched
import random
import shutil
import subprocess
import sys
import warnings

import peft
import torch
import torch.nn.functional as F
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM

TORCH_DEVICE = "cuda:0"  # --no-gpu: "cpu", for a smoke run of the 16-bit cases on a machine without a GPU
NIBBLE_DEVICES = ["cuda", "cpu"]
FP32_LOGIT_BOUND = 1e-4  # x max |logit|
BF16_FACTOR = 2.0
VOCAB = 512
SEED = 20250101
WORDS = ("the quick brown fox jumps over lazy dog model training tokenizer weights gradient adapter "
         "quantize memory batch token sequence learning rate schedule warmup epoch checkpoint resume "
         "evaluation perplexity loss merge rank alpha dropout hello world").split()


def sentences(rng, count):
    out = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 24))]
        out.append(" ".join(words).capitalize() + rng.choice([".", "!", "?", ", and more."]))
    return out


def make_tokenizer(path):
    """Byte-level BPE trained on ASCII only: every token decodes to whole characters."""
    rng = random.Random(SEED)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<s>", "</s>"], show_progress=False)
    tok.train_from_iterator(sentences(rng, 4000), trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    tok.save(os.path.join(path, "tokenizer.json"))
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "tokenizer_class": "PreTrainedTokenizerFast"}, f)
    return tok


def make_model(path, tok):
    torch.manual_seed(SEED)
    config = LlamaConfig(hidden_size=256, intermediate_size=704, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=64, vocab_size=VOCAB, max_position_embeddings=512,
                         rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=tok.token_to_id("<s>"),
                         eos_token_id=tok.token_to_id("</s>"))
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.normal_(1.0, 0.1)
            else:
                p.normal_(0, 0.02)
    model.save_pretrained(path)
    return config


def copy_tokenizer(src, dst):
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(src, name), os.path.join(dst, name))


def bnb_config(compute_dtype):
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype)


def load_base(src, dtype, four_bit):
    if four_bit:
        return AutoModelForCausalLM.from_pretrained(src, quantization_config=bnb_config(dtype), dtype=dtype,
                                                    device_map=TORCH_DEVICE).eval()
    return AutoModelForCausalLM.from_pretrained(src, dtype=dtype, device_map=TORCH_DEVICE).eval()


def make_adapter(src, out):
    base = LlamaForCausalLM.from_pretrained(src, dtype=torch.float32)
    torch.manual_seed(SEED + 1)
    config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", init_lora_weights=False,
                        task_type="CAUSAL_LM")
    get_peft_model(base, config).save_pretrained(out)


def peft_model(src, adapter, dtype, four_bit):
    return PeftModel.from_pretrained(load_base(src, dtype, four_bit), adapter).eval()


def token_losses(model, seqs):
    """Per-token cross-entropy (fp32 logits) of every token after the first, and max |logit|."""
    losses, max_logit = [], 0.0
    with torch.no_grad():
        for ids in seqs:
            x = torch.tensor([ids], device=TORCH_DEVICE)
            logits = model(x).logits[0].float()
            max_logit = max(max_logit, float(logits.abs().max()))
            losses.append(F.cross_entropy(logits[:-1], x[0, 1:], reduction="none").double().cpu())
    return torch.cat(losses), max_logit


def logits_of(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids], device=TORCH_DEVICE)).logits[0].float().cpu()


def empty_cache():
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


def nibble_eval(args, model_dir, adapter, data, device, dtype):
    cmd = [args.nibble, "eval", "--model", model_dir, "--adapter", adapter, "--data", data, "--device", device,
           "--json", "--max-seq-length", "512", "--batch-size", "2"]
    if dtype:
        cmd += ["--dtype", dtype]
    rc, out, err = run(cmd)
    if rc != 0:
        return None, err[-800:]
    return json.loads(out), None


def eval_cases(args, report, bases, adapter, data, seqs):
    ok = True
    for base_name, (model_dir, src, four_bit) in bases.items():
        truth_model = peft_model(src, adapter, torch.float32, four_bit)
        truth, max_logit = token_losses(truth_model, seqs)
        del truth_model
        bf16_model = peft_model(src, adapter, torch.bfloat16, four_bit)
        bf16, _ = token_losses(bf16_model, seqs)
        del bf16_model
        empty_cache()
        truth_loss = float(truth.mean())
        bf16_token_error = float((bf16 - truth).abs().mean())
        for device in NIBBLE_DEVICES:
            for dtype in ("f32", ""):
                case = {"part": "a-eval", "base": base_name, "device": device, "dtype": dtype or "default (bf16)",
                        "peft_fp32_loss": truth_loss, "peft_bf16_loss": float(bf16.mean()),
                        "target_tokens": int(truth.numel())}
                result, err = nibble_eval(args, model_dir, adapter, data, device, dtype)
                if result is None:
                    case.update(passed=False, error=err)
                else:
                    diff = abs(result["loss"] - truth_loss)
                    bound = (2 * FP32_LOGIT_BOUND * max_logit if dtype == "f32"
                             else BF16_FACTOR * bf16_token_error)
                    case.update(nibble_loss=result["loss"], nibble_target_tokens=result["target_tokens"],
                                abs_diff=diff, bound=bound,
                                passed=bool(diff <= bound and result["target_tokens"] == truth.numel()))
                ok &= case["passed"]
                report.append(case)
                print(json.dumps(case))
    return ok


def generate_cases(args, report, bases, adapter, tok, prompts, new_tokens):
    ok = True
    eos = tok.token_to_id("</s>")
    for base_name, (model_dir, src, four_bit) in bases.items():
        model = peft_model(src, adapter, torch.float32, four_bit)
        for device in NIBBLE_DEVICES:
            for prompt in prompts:
                ids = tok.encode(prompt).ids
                with torch.no_grad():
                    gen = model.generate(torch.tensor([ids], device=TORCH_DEVICE), max_new_tokens=new_tokens,
                                         do_sample=False, eos_token_id=eos, pad_token_id=eos,
                                         output_scores=True, return_dict_in_generate=True)
                new = gen.sequences[0, len(ids):].tolist()
                scores = [s[0].float() for s in gen.scores]
                bound = 2 * FP32_LOGIT_BOUND * max(float(s.abs().max()) for s in scores)
                peft_text = tok.decode(new, skip_special_tokens=True)
                rc, out, err = run([args.nibble, "generate", "--model", model_dir, "--adapter", adapter, "--device",
                                    device, "--dtype", "f32", "--prompt", prompt, "--max-new-tokens",
                                    str(new_tokens)])
                case = {"part": "a-generate", "base": base_name, "device": device, "prompt": prompt,
                        "peft_text": peft_text}
                if rc != 0:
                    case.update(passed=False, error=err[-800:])
                else:
                    text = out[:-1] if out.endswith("\n") else out
                    case["nibble_text"] = text
                    if text == peft_text:
                        case.update(identical=True, passed=True)
                    else:
                        # The first step whose PEFT text is no longer a prefix of nibble's.
                        step = next((i for i in range(len(new))
                                     if not text.startswith(tok.decode(new[:i + 1], skip_special_tokens=True))),
                                    len(new))
                        gap = None
                        if step < len(scores):
                            top2 = torch.topk(scores[step], 2).values
                            gap = float(top2[0] - top2[1])
                        case.update(identical=False, first_difference_step=step, peft_top2_gap=gap, tie_bound=bound,
                                    passed=bool(gap is not None and gap <= bound))
                ok &= case["passed"]
                report.append(case)
                print(json.dumps(case))
        del model
        empty_cache()
    return ok


def exact_merge(base_dir, adapter_dir):
    """W + s B A in float64 for every adapted linear, and the fp32 slack 2^-20 (|W| + s |B| |A|)."""
    base = load_file(os.path.join(base_dir, "model.safetensors"))
    lora = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        config = json.load(f)
    scaling = config["lora_alpha"] / config["r"]
    exact = {}
    for name, a in lora.items():
        if ".lora_A." not in name:
            continue
        module = name[len("base_model.model."):-len(".lora_A.weight")]
        a = a.double()
        b = lora[name.replace(".lora_A.", ".lora_B.")].double()
        w = base[module + ".weight"].double()
        exact[module + ".weight"] = (w + scaling * (b @ a), 2.0 ** -20 * (w.abs() + scaling * (b.abs() @ a.abs())))
    return exact


def max_weight_excess(merged_file, exact, bf16):
    """max over merged linears of |ours - exact| - bound (<= 0 passes); bounds as in the docstring."""
    ours = load_file(merged_file)
    worst = -float("inf")
    for name, (value, slack) in exact.items():
        bound = slack + (2.0 ** -8 * value.abs() if bf16 else 0)
        worst = max(worst, float(((ours[name].double() - value).abs() - bound).max()))
    return worst


def merge_cases(args, report, bases, adapter, ids):
    ok = True
    src16 = bases["bf16"][1]
    truth_model = peft_model(src16, adapter, torch.float32, False).merge_and_unload()
    truth = logits_of(truth_model, ids)
    del truth_model
    exact = exact_merge(src16, adapter)
    peft_bf16 = peft_model(src16, adapter, torch.bfloat16, False).merge_and_unload().to(torch.float32)
    peft_bf16_error = float((logits_of(peft_bf16, ids) - truth).abs().max())
    del peft_bf16
    scale = float(truth.abs().max())
    for dtype in ("fp32", "bf16"):
        out = os.path.join(args.work, f"merged-16bit-{dtype}")
        rc, stdout, err = run([args.nibble, "merge", "--model", bases["bf16"][0], "--adapter", adapter, "--out", out,
                               "--dtype", dtype])
        case = {"part": "b-merge", "base": "bf16", "dtype": dtype}
        if rc != 0:
            case.update(passed=False, error=err[-800:])
        else:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, device_map=TORCH_DEVICE).eval()
            diff = float((logits_of(merged, ids) - truth).abs().max())
            bound = FP32_LOGIT_BOUND * scale if dtype == "fp32" else BF16_FACTOR * peft_bf16_error
            excess = max_weight_excess(os.path.join(out, "model.safetensors"), exact, dtype == "bf16")
            case.update(logits_max_abs_diff=diff, bound=bound, peft_bf16_merge_error=peft_bf16_error,
                        logit_scale=scale, weight_bound_excess=excess,
                        load_warnings=[str(w.message)[:200] for w in caught],
                        passed=bool(diff <= bound and excess <= 0))
            del merged
        ok &= case["passed"]
        report.append(case)
        print(json.dumps(case))

    if "nf4-dq" not in bases:
        return ok
    q_dir, src4 = bases["nf4-dq"][0], bases["nf4-dq"][1]
    unmerged = peft_model(src4, adapter, torch.float32, True)
    truth4 = logits_of(unmerged, ids)
    del unmerged
    out = os.path.join(args.work, "merged-nf4-fp32")
    rc, stdout, err = run([args.nibble, "merge", "--model", q_dir, "--adapter", adapter, "--out", out,
                           "--dtype", "fp32"])
    case = {"part": "b-merge", "base": "nf4-dq", "dtype": "fp32"}
    if rc != 0:
        case.update(passed=False, error=err[-800:])
    else:
        merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, device_map=TORCH_DEVICE).eval()
        diff = float((logits_of(merged, ids) - truth4).abs().max())
        bound = FP32_LOGIT_BOUND * float(truth4.abs().max())
        case.update(logits_max_abs_diff=diff, bound=bound, passed=bool(diff <= bound))
        del merged
    ok &= case["passed"]
    report.append(case)
    print(json.dumps(case))
    empty_cache()
    return ok


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nibble", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--no-gpu", action="store_true",
                        help="smoke run without a GPU: the 16-bit base only, torch and nibble on the CPU")
    args = parser.parse_args()
    global TORCH_DEVICE, NIBBLE_DEVICES
    if args.no_gpu:
        TORCH_DEVICE, NIBBLE_DEVICES = "cpu", ["cpu"]
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)

    src = os.path.join(args.work, "tiny-bf16")
    os.makedirs(src)
    tok = make_tokenizer(src)
    make_model(src, tok)
    adapter = os.path.join(args.work, "adapter")
    make_adapter(src, adapter)
    # name -> (folder nibble reads, 16-bit folder PEFT loads, 4-bit in PEFT)
    bases = {"bf16": (src, src, False)}
    if not args.no_gpu:
        q_dir = os.path.join(args.work, "tiny-nf4-dq")
        quantized = load_base(src, torch.bfloat16, True)
        quantized.save_pretrained(q_dir)
        del quantized
        copy_tokenizer(src, q_dir)
        bases["nf4-dq"] = (q_dir, src, True)

    rng = random.Random(SEED + 2)
    texts = sentences(rng, 12)
    data = os.path.join(args.work, "eval.jsonl")
    with open(data, "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    eos = tok.token_to_id("</s>")
    seqs = [tok.encode(t).ids + [eos] for t in texts]

    report = []
    ok = eval_cases(args, report, bases, adapter, data, seqs)
    ok &= generate_cases(args, report, bases, adapter, tok, ["The quick brown fox", "Hello world"], 24)
    ok &= merge_cases(args, report, bases, adapter, seqs[0] + seqs[1])
    report.append({"part": "c-nibble-adapter-in-peft", "passed": True,
                   "skipped": "no nibble command writes adapters yet (nibble train will)"})

    with open(args.out, "w") as f:
        json.dump({"transformers": transformers.__version__, "peft": peft.__version__, "torch": torch.__version__,
                   "cases": report}, f, indent=1)
    print("adapters vs transformers+PEFT:", "all passed" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
