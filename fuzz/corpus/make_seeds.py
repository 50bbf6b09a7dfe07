#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/ from the test fixtures in tests/ and tests/golden/.

Seeds are small, real-looking inputs: the fuzzer mutates them, so each one should reach deep
into its parser (a valid file, or one a step away from valid). Run from anywhere; it only reads
tests/ and rewrites fuzz/corpus/<target>/seed_*. Standard library only.
"""
import json
import os
import struct
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOLDEN = os.path.join(ROOT, "tests", "golden")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def write_seeds(target, seeds):
    folder = os.path.join(CORPUS, target)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    for i, (name, data) in enumerate(seeds):
        if isinstance(data, str):
            data = data.encode("utf-8")
        with open(os.path.join(folder, "seed_%02d_%s" % (i, name)), "wb") as f:
            f.write(data)


def safetensors_bytes(tensors, metadata=None):
    """tensors: [(name, dtype, shape, bytes)] laid out in order; header padded to 8 like the writer."""
    header, offset, data = {}, 0, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors_tensor_bytes(path, name):
    raw = read(path, "rb")
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    begin, end = header[name]["data_offsets"]
    return raw[8 + n + begin:8 + n + end]


def safetensors_seeds():
    bnb = os.path.join(GOLDEN, "bnb")
    seeds = [(f, read(os.path.join(bnb, f), "rb")) for f in
             ["nf4_bf16_n5_b64_dq.safetensors", "fp4_f32_n5_b64_nodq.safetensors"]]
    seeds += [
        ("mixed_dtypes", safetensors_bytes(
            [("a", "F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)), ("b", "BF16", [3], b"\x80\x3f" * 3),
             ("c", "I64", [1], struct.pack("<q", -7)), ("d", "U8", [0], b""), ("e", "F8_E4M3", [2], b"\x38\x40"),
             ("f", "BOOL", [2], b"\x01\x00")], {"format": "pt"})),
        ("unaligned", safetensors_bytes([("x", "U8", [3], b"abc"), ("y", "F16", [2], b"\x00\x3c\x00\x40")])),
        ("scalar_and_empty", safetensors_bytes([("s", "F64", [], struct.pack("<d", 0.5)), ("z", "F32", [0, 4], b"")])),
        ("empty_header", safetensors_bytes([])),
    ]
    return seeds


def index_seeds():
    # The shard and tensor names the fuzz_safetensors_index target writes into its folder.
    first, second = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    full = {"metadata": {"total_size": 40},
            "weight_map": {"lm_head.weight": second, "model.embed_tokens.weight": first, "model.norm.weight": first}}
    return [
        ("two_shards", json.dumps(full, indent=2)),
        ("one_shard", json.dumps({"metadata": {"total_size": 24}, "weight_map": {"model.norm.weight": first}})),
        ("escaping_path", json.dumps({"weight_map": {"lm_head.weight": "../" + second}})),
        ("missing_tensor", json.dumps({"weight_map": {"model.layers.0.mlp.up_proj.weight": first}})),
    ]


def config_seeds():
    seeds = [("lora_model", read(os.path.join(GOLDEN, "lora", "model", "config.json")))]
    for arch in ["llama3", "mistral", "qwen2", "tinyllama"]:
        seeds.append((arch, read(os.path.join(GOLDEN, "forward", arch, "model", "config.json"))))
    nf4 = os.path.join(GOLDEN, "forward", "llama3", "model_nf4", "config.json")
    if os.path.exists(nf4):
        seeds.append(("llama3_nf4", read(nf4)))
    seeds.append(("rope_parameters_v5", json.dumps({
        "model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 256,
        "eos_token_id": [1, 2], "dtype": "bfloat16",
        "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        "quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                                "bnb_4bit_use_double_quant": True, "bnb_4bit_compute_dtype": "bfloat16",
                                "llm_int8_skip_modules": ["lm_head"]}}, indent=2)))
    return seeds


def bnb_seeds():
    seeds = []
    for arch in ["llama3", "qwen2"]:
        path = os.path.join(GOLDEN, "forward", arch, "model_nf4", "model.safetensors")
        raw = read(path, "rb")
        (n,) = struct.unpack("<Q", raw[:8])
        blob = sorted(k for k in json.loads(raw[8:8 + n]) if ".quant_state.bitsandbytes__" in k)[0]
        seeds.append((arch, safetensors_tensor_bytes(path, blob)))
    # The 8x8 weights of the fuzz target itself, with and without double quantization.
    seeds.append(("target_dq", '{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [8, 8], '
                               '"nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.0353}'))
    seeds.append(("target_nodq", '{"quant_type": "fp4", "blocksize": 64, "dtype": "float16", "shape": [8, 8]}'))
    return seeds


def adapter_seeds():
    lora = os.path.join(GOLDEN, "lora")
    seeds = [(d, read(os.path.join(lora, d, "adapter_config.json"))) for d in ["adapter", "adapter_rank_pattern"]]
    seeds.append(("regex_targets", json.dumps({
        "peft_type": "LORA", "r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "task_type": "CAUSAL_LM",
        "target_modules": ".*\\.(q_proj|v_proj)", "exclude_modules": ["layers.0.self_attn.q_proj"],
        "init_lora_weights": "gaussian", "use_rslora": True, "layers_pattern": "layers", "bias": "none"})))
    seeds.append(("all_linear", json.dumps({"peft_type": "LORA", "r": 8, "target_modules": "all-linear",
                                            "layers_to_transform": [0, 1], "alpha_pattern": {"q_proj": 4.5}})))
    return seeds


def trimmed_tokenizer(path, keep=320):
    """tokenizer.json with the vocab cut to its first `keep` ids (plus those other parts name)."""
    t = json.loads(read(path))
    model = t["model"]
    needed = {a["content"] for a in t.get("added_tokens") or []}
    if model.get("unk_token"):
        needed.add(model["unk_token"])
    vocab = {tok: i for tok, i in model["vocab"].items() if i < keep or tok in needed}
    merges = []
    for m in model["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(m)
    model["vocab"], model["merges"] = vocab, merges
    return json.dumps(t, ensure_ascii=False)


def tokenizer_json_seeds():
    tok = os.path.join(GOLDEN, "tokenizers")
    seeds = [(name, trimmed_tokenizer(os.path.join(tok, name, "tokenizer.json")))
             for name in ["gpt2", "llama2", "llama3", "qwen2", "smollm2", "metaspace_first"]]
    # The minimal tokenizer of tests/text/test_tokenizer_errors.cpp with a few pre-tokenizers and
    # normalizers of tests/golden/tokenizers/{pre_tokenizers,normalizers}.jsonl swapped in.
    minimal = {
        "version": "1.0",
        "added_tokens": [{"id": 5, "content": "<s>", "special": True, "normalized": False, "lstrip": False,
                          "rstrip": False, "single_word": False}],
        "normalizer": None, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
        "post_processor": None, "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3, "Ġab": 4, "<s>": 5},
                  "merges": ["a b", "Ġ ab"]}}
    seeds.append(("minimal", json.dumps(minimal)))
    picked = {}
    for kind in ["pre_tokenizer", "normalizer"]:
        for line in open(os.path.join(tok, kind + "s.jsonl")):
            case = json.loads(line)
            if kind in case:
                picked.setdefault((kind, case[kind].get("type")), case[kind])
    for (kind, type_name), config in sorted(picked.items(), key=lambda kv: str(kv[0])):
        variant = dict(minimal)
        variant[kind] = config
        seeds.append(("minimal_%s_%s" % (kind, type_name), json.dumps(variant)))
    return seeds


def tokenizer_encode_seeds():
    lines = [l for l in read(os.path.join(GOLDEN, "tokenizers", "corpus.jsonl")).split("\n")[1:] if l]
    texts = [json.loads(l) for l in lines]
    picks = [t for t in texts if t.strip()][::max(1, len(texts) // 12)][:12]
    return [("text", t) for t in picks]


def tokenizer_config_seeds():
    tok = os.path.join(GOLDEN, "tokenizers")
    tpl = os.path.join(GOLDEN, "chat_templates")
    seeds = [(name, read(os.path.join(tok, name, "tokenizer_config.json"))) for name in ["llama2", "llama3", "smollm2"]]
    for name, bos, eos in [("smollm2_instruct", None, "<|im_end|>"), ("llama2_chat", "<s>", "</s>"),
                           ("zephyr", "<s>", "</s>")]:
        seeds.append((name, json.dumps({
            "add_bos_token": bos is not None, "add_eos_token": False,
            "bos_token": {"content": bos, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
            if bos else None,
            "eos_token": eos, "pad_token": eos, "unk_token": None,
            "chat_template": read(os.path.join(tpl, name + ".jinja"))}, indent=2)))
    seeds.append(("template_list", json.dumps({"eos_token": "</s>", "chat_template": [
        {"name": "tool_use", "template": "{{ tools }}"},
        {"name": "default", "template": read(os.path.join(tpl, "mistral_instruct_v0_1.jinja"))}]})))
    return seeds


def chat_template_seeds():
    tpl = os.path.join(GOLDEN, "chat_templates")
    seeds = [(f.replace(".jinja", ""), read(os.path.join(tpl, f))) for f in sorted(os.listdir(tpl)) if f.endswith(".jinja")]
    seeds.append(("builtins", "{%- set ns = namespace(n=0) -%}{% for m in messages|reverse %}{% set ns.n = ns.n + 1 %}"
                              "{{ loop.index }}:{{ m.role|upper }}={{ m['content'][:5]|trim|tojson }}{% if not loop.last %},"
                              "{% endif %}{% endfor %}{{ ns.n }}{{ range(3)|list|join('-') }}{{ 'a,b'.split(',') }}"
                              "{% macro f(x, y=2) %}{{ x * y }}{% endmacro %}{{ f(3) }}{{ f('ab', y=3) }}"
                              "{{ {'k': [1, 2.5, none, true]}|tojson(indent=2) }}{{ 'x' if tools is none else tools|length }}"
                              "{% if messages[0].role == 'system' %}{{ raise_exception('no system') }}{% endif %}"))
    return seeds


def dataset_seeds():
    text = '{"text": "the cat sat on the mat"}\n{"text": "in a hat"}\n'
    alpaca = ('{"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}\n'
              '{"instruction": "Say hi.", "output": "hi"}\n')
    chat = ('{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, '
            '{"role": "assistant", "content": "Hello!"}]}\n'
            '{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}, '
            '{"role": "user", "content": "3+3?"}, {"role": "assistant", "content": "6"}]}\n')
    mixed = text + "\n\n" + '{"text": 5}\n{"messages": []}\n' + alpaca
    return [("text", text), ("alpaca", alpaca), ("chat", chat), ("mixed_bad", mixed)]


def gguf_bytes(metadata, tensors, alignment=32):
    """A GGUF v3 file. metadata: [(key, type, value)] with type a GGUF value type name, or
    ("array", element type, values); tensors: [(name, ne, ggml type, raw bytes)]."""
    scalar = {"u8": (0, "<B"), "i8": (1, "<b"), "u16": (2, "<H"), "i16": (3, "<h"), "u32": (4, "<I"),
              "i32": (5, "<i"), "f32": (6, "<f"), "bool": (7, "<?"), "u64": (10, "<Q"), "i64": (11, "<q"),
              "f64": (12, "<d")}

    def string(text):
        raw = text.encode("utf-8")
        return struct.pack("<Q", len(raw)) + raw

    def value(kind, v):
        if kind == "string":
            return string(v)
        return struct.pack(scalar[kind][1], v)

    def type_id(kind):
        return 8 if kind == "string" else scalar[kind][0]

    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, kind, v in metadata:
        out += string(key)
        if isinstance(kind, tuple):
            out += struct.pack("<IIQ", 9, type_id(kind[1]), len(v)) + b"".join(value(kind[1], e) for e in v)
        else:
            out += struct.pack("<I", type_id(kind)) + value(kind, v)
    data, offsets = b"", []
    for name, ne, ggml_type, raw in tensors:
        data += b"\0" * (-len(data) % alignment)
        offsets.append(len(data))
        data += raw
    for (name, ne, ggml_type, raw), offset in zip(tensors, offsets):
        out += string(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        out += struct.pack("<IQ", ggml_type, offset)
    out += b"\0" * (-len(out) % alignment)
    return out + data


def gguf_seeds():
    seeds = [("dequant", read(os.path.join(GOLDEN, "gguf", "dequant.gguf"), "rb"))]
    hidden, ff, vocab_tokens = 8, 16, ["<|endoftext|>", "H", "e", "l", "o", "!", "He", "ll", "Hell", "Hello"]
    merges = ["H e", "l l", "He ll", "Hell o"]

    def f32(*ne):
        count = 1
        for n in ne:
            count *= n
        return struct.pack("<%df" % count, *[(i % 7 - 3) * 0.125 for i in range(count)])

    metadata = [
        ("general.architecture", "string", "llama"), ("general.name", "string", "tiny"),
        ("general.alignment", "u32", 32), ("llama.context_length", "u32", 64), ("llama.embedding_length", "u32", hidden),
        ("llama.block_count", "u32", 1), ("llama.feed_forward_length", "u32", ff),
        ("llama.attention.head_count", "u32", 2), ("llama.attention.head_count_kv", "u32", 1),
        ("llama.rope.dimension_count", "u32", 4), ("llama.rope.freq_base", "f32", 10000.0),
        ("llama.attention.layer_norm_rms_epsilon", "f32", 1e-5), ("llama.vocab_size", "u32", len(vocab_tokens)),
        ("tokenizer.ggml.model", "string", "gpt2"), ("tokenizer.ggml.pre", "string", "smollm"),
        ("tokenizer.ggml.tokens", ("array", "string"), vocab_tokens),
        ("tokenizer.ggml.token_type", ("array", "i32"), [3] + [1] * (len(vocab_tokens) - 1)),
        ("tokenizer.ggml.merges", ("array", "string"), merges),
        ("tokenizer.ggml.bos_token_id", "u32", 0), ("tokenizer.ggml.eos_token_id", "u32", 0),
        ("tokenizer.ggml.add_bos_token", "bool", False),
        ("tokenizer.chat_template", "string", read(os.path.join(GOLDEN, "chat_templates", "smollm2_instruct.jinja"))),
    ]
    v = len(vocab_tokens)
    tensors = [("token_embd.weight", [hidden, v], 0, f32(hidden, v)), ("output_norm.weight", [hidden], 0, f32(hidden)),
               ("blk.0.attn_norm.weight", [hidden], 0, f32(hidden)), ("blk.0.ffn_norm.weight", [hidden], 0, f32(hidden)),
               ("blk.0.attn_q.weight", [hidden, hidden], 0, f32(hidden, hidden)),
               ("blk.0.attn_k.weight", [hidden, 4], 0, f32(hidden, 4)),
               ("blk.0.attn_v.weight", [hidden, 4], 0, f32(hidden, 4)),
               ("blk.0.attn_output.weight", [hidden, hidden], 1, f32(hidden, hidden)[: hidden * hidden * 2]),
               ("blk.0.ffn_gate.weight", [hidden, ff], 0, f32(hidden, ff)), ("blk.0.ffn_up.weight", [hidden, ff], 0, f32(hidden, ff)),
               ("blk.0.ffn_down.weight", [ff, hidden], 0, f32(ff, hidden))]
    seeds.append(("tiny_llama", gguf_bytes(metadata, tensors)))
    seeds.append(("metadata_only", gguf_bytes(metadata[:3], [])))
    return seeds


def main():
    write_seeds("safetensors", safetensors_seeds())
    write_seeds("safetensors_index", index_seeds())
    write_seeds("hf_config", config_seeds())
    write_seeds("bnb_quant_state", bnb_seeds())
    write_seeds("adapter_config", adapter_seeds())
    write_seeds("tokenizer_json", tokenizer_json_seeds())
    write_seeds("tokenizer_encode", tokenizer_encode_seeds())
    write_seeds("tokenizer_config", tokenizer_config_seeds())
    write_seeds("chat_template", chat_template_seeds())
    write_seeds("dataset_jsonl", dataset_seeds())
    write_seeds("gguf", gguf_seeds())


if __name__ == "__main__":
    main()
