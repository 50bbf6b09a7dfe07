#!/usr/bin/env python3
"""Builds the tokenizer golden data for nibble's tokenizer tests.

Usage: make_tokenizer_golden.py OUT_DIR        (normally tests/golden/tokenizers)

It trains small BPE tokenizers with Hugging Face `tokenizers` on text this script generates,
in each pipeline style that LLaMA-family models use, writes them as
OUT_DIR/<name>/tokenizer.json (+ tokenizer_config.json), writes the test corpus
(OUT_DIR/corpus.jsonl) and, per tokenizer, OUT_DIR/<name>/golden.jsonl with what the library
answers for every corpus string. It also writes OUT_DIR/pre_tokenizers.jsonl and
OUT_DIR/normalizers.jsonl: single-stage outputs for cases the trained files do not reach.

Deterministic: fixed seeds, one thread. Re-running with the same library version must give the
same bytes; the first line of every JSONL names the script and the library version.
"""
import json
import os
import random
import sys
import unicodedata

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import tokenizers  # noqa: E402
from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models,  # noqa: E402
                        normalizers, pre_tokenizers, processors, trainers)

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SCRIPT = "tests/golden/make_tokenizer_golden.py"
# Saved with legacy "a b" merge strings; the others keep the newer ["a", "b"] pairs.
STRING_MERGES = {"llama3", "gpt2", "llama2", "metaspace_first"}

# Word pools for training and test text. Rare characters (Gothic, Linear B, rare CJK) are kept
# out of the training text so that the SentencePiece-style models need byte fallback for them.
WORDS = {
    "en": "the quick brown fox jumps over lazy dog model training tokenizer weights gradient "
          "adapter quantize memory batch token sequence learning rate schedule warmup epoch "
          "checkpoint resume evaluation perplexity loss merge rank alpha dropout hello world "
          "I you we they it's don't can't won't you'll we're they've I'm she'd".split(),
    "de": "Größe Straße über schön Mädchen Äpfel Übung weiß heißt Grüße Fußball".split(),
    "fr": "élève café naïve garçon façade déjà où très hôtel forêt".split(),
    "ru": "привет мир обучение модель токен память Москва Ёлка съесть".split(),
    "zh": "你好 世界 模型 训练 分词 量化 内存 中文 测试 数据".split(),
    "ja": "こんにちは 世界 トークン 日本語 カタカナ ひらがな 東京".split(),
    "ko": "안녕하세요 세계 토큰 한국어 서울".split(),
    "ar": "مرحبا عالم نموذج تدريب بيانات".split(),
    "hi": "नमस्ते दुनिया मॉडल प्रशिक्षण".split(),
    "el": "γειά σου κόσμε μοντέλο Ωμέγα".split(),
    "emoji": "😀 🚀 👍🏽 👨‍👩‍👧 🇩🇪 ❤️ ✨ 🤖".split(),
    "code": ["def", "f(x):", "return", "x+1;", "{", "}", "if", "(a==b)", "&&", "||", "i++",
             "std::vector<int>", "0x1F", "#include", "<stdio.h>", "//", "/*", "*/", "=>",
             "print('hi')", "$HOME", "~/x", "a_b_c", "CamelCase", "snake_case", "https://x.org/a?b=1"],
    "num": ["0", "1", "12", "123", "1234", "1234567", "3.14159", "1,000,000", "2024-01-31",
            "٣٤٥", "१२३", "½", "²", "Ⅻ", "１２３"],
}
RARE = ["𐌰𐌱𐌲", "𐀀𐀁", "龘", "齉", "𠀋", "ꙮ", "☃", "⸘", "ᚠᚢᚦ", "ꦲꦏ", "𝔘𝔫𝔦", "\u0378"]
SPACES = [" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n ", "\u00a0", "\u3000", "\u2009",
          "\u200b", "\t\t", "\r"]


def training_text(rng):
    # Pseudo-words from syllables give the trainer enough distinct pairs for a ~3k vocab.
    syllables = [c + v for c in "bcdfghklmnprstvwz" for v in "aeiou"] + \
                [c + v for c in "бвгдклмнпрст" for v in "аеиоу"]
    pseudo = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4)))
              for _ in range(3000)]
    pools = [w for k, v in WORDS.items() for w in v] * 20 + pseudo
    lines = []
    for _ in range(8000):
        n = rng.randint(3, 16)
        parts = []
        for _ in range(n):
            parts.append(rng.choice(pools))
            parts.append(rng.choice([" "] * 12 + ["\n", ", ", ". ", "  ", "\t"]))
        lines.append("".join(parts))
    return lines


def corpus_strings(rng, specials):
    fixed = [
        "", " ", "  ", "   leading", "trailing   ", "a  b   c    d", "\t", "\ttab\tsep\t",
        "\r\n", "line1\r\nline2\r\n", "\n\n\n", "\n", " \n", "x\n\n y", "1", "12", "123",
        "1234567", "3.14159 and 2.71828", "DON'T", "don't", "Don'T", "you'll", "YOU'LL",
        "we've WE'VE We'Ve", "it's IT'S", "I'd", "she'S", "'s", "''", "'''", "!!!???", "...",
        "https://example.com/path?q=1&r=2#frag", "def foo(x):\n    return x * 2\n",
        "int main() { return 0; }", "    indented code", "<0x41>", "<0x41><0x42>", "<0xZZ>",
        "<s>", "</s>", "<unk>", "<s> hello</s>", "hello<s>world", "<s><s>", "▁", "▁▁x", "_▁_",
        "Ġ", "ĠĠ", "café", "cafe\u0301", "e\u0301\u0301", "\u1e9b\u0323", "Å", "A\u030a",
        "\uac00", "\u1100\u1161\u11a8", "ﬁ", "①", "ｆｕｌｌ", "😀", "👨‍👩‍👧", "🇩🇪🇫🇷",
        "x😀y", " 😀 ", "你好世界", "你好 世界", "こんにちは世界", "Привет, мир!", "مرحبا بالعالم",
        "नमस्ते", "γειά σου", "\u00a0nbsp\u00a0", "ideographic\u3000space", "zero\u200bwidth",
        "\u0000nul", "\u007fdel", "\u0085nel", "\u2028ls\u2029ps", "\ufeffbom", "\ufffd",
        "a" * 300, "ab" * 500, "z" + "\u0301" * 40, "1" * 100, " " * 100, "\n" * 50,
        "Hello World", "HELLO WORLD", "hello world", " Hello", "Hello ", "  Hello  World  ",
        "nibble", "nibbles", " nibble ", "a nibble b", "xnibble", "nibble_x",
    ]
    for t in specials:
        fixed += [t, " " + t, t + " ", "a" + t + "b", t + "hello", t + " hello", "hello " + t,
                  t + t, t + "\n" + t, " " + t + "  x", t + "你好", t.upper(), t[:-1]]
    pools = [w for v in WORDS.values() for w in v]
    out = list(fixed)
    while len(out) < 2050:
        n = rng.randint(1, 11)
        parts = []
        for _ in range(n):
            r = rng.random()
            if r < 0.07:
                parts.append(rng.choice(RARE))
            elif r < 0.12 and specials:
                parts.append(rng.choice(specials))
            elif r < 0.16:
                parts.append(unicodedata.normalize("NFD", rng.choice(WORDS["de"] + WORDS["fr"])))
            else:
                parts.append(rng.choice(pools))
            parts.append(rng.choice(SPACES) if rng.random() < 0.3 else " ")
        s = "".join(parts)
        if rng.random() < 0.3:
            s = s.strip(" ")
        out.append(s)
    long_parts = [rng.choice(pools) for _ in range(600)]
    out.append(" ".join(long_parts))
    return out


def train(lines, normalizer, pre_tokenizer, vocab_size, specials, alphabet=None, limit=None,
          byte_fallback=False, unk=None):
    tok = Tokenizer(models.BPE(unk_token=unk, byte_fallback=byte_fallback, fuse_unk=unk is not None))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    kwargs = dict(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                  min_frequency=2)
    if alphabet is not None:
        kwargs["initial_alphabet"] = alphabet
    if limit is not None:
        kwargs["limit_alphabet"] = limit
    tok.train_from_iterator(lines, trainers.BpeTrainer(**kwargs))
    return tok


def edit_json(tok, fn):
    """Edits fields the Python API does not expose; string merges are applied when saving."""
    data = json.loads(tok.to_str())
    fn(data)
    return Tokenizer.from_str(json.dumps(data, ensure_ascii=False))


def as_string_merges(data):
    data["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m
                               for m in data["model"]["merges"]]


def byte_level_tokenizers(lines):
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    out = {}

    # (a) Llama 3: Split(regex, Isolated) + ByteLevel(use_regex=false), ignore_merges, BOS template.
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
                "<|end_header_id|>"]
    split = pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False)
    bl = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)
    tok = train(lines, None, pre_tokenizers.Sequence([split, bl]), 4000, specials, alphabet)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                                      special_tokens=[("<|begin_of_text|>", 0)])])
    tok.add_special_tokens([AddedToken("<|tool|>", lstrip=True, rstrip=True, special=True)])

    def llama3_edit(d):
        d["model"]["ignore_merges"] = True
    tok = edit_json(tok, llama3_edit)
    out["llama3"] = (tok, {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"})

    # (b) GPT-2: ByteLevel with its own regex; no BOS.
    tok = train(lines, None, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
                3000, ["<|endoftext|>"], alphabet)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_tokens([AddedToken(" nibble", normalized=True, special=False)])
    out["gpt2"] = (tok,
                   {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
                    "add_bos_token": False})

    # (c) Qwen2: NFC + single-digit Split regex + ByteLevel; merges as pairs; prefix "".
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    split = pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False)
    tok = train(lines, normalizers.NFC(), pre_tokenizers.Sequence([split, bl]), 3000, specials,
                alphabet)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_tokens([AddedToken("nibble", single_word=True, normalized=True, special=False)])

    def qwen_edit(d):
        d["model"]["continuing_subword_prefix"] = ""
        d["model"]["end_of_word_suffix"] = ""
    out["qwen2"] = (edit_json(tok, qwen_edit),
                    {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                     "add_bos_token": False})

    # (f) SmolLM2: Digits(individual) + ByteLevel(use_regex=true).
    pre = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False,
                                                            use_regex=True)])
    tok = train(lines, None, pre, 3000, specials, alphabet)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    out["smollm2"] = (tok, {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
                            "pad_token": "<|im_end|>"})
    return out


def sentencepiece_model(lines):
    """A byte-fallback BPE laid out like Llama 2's: <unk> <s> </s>, then <0x00>..<0xFF>."""
    meta = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trained = train(lines, None, meta, 3000, [], limit=200)
    data = json.loads(trained.to_str())
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for t, _ in sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1]):
        if t not in vocab:
            vocab[t] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" "))
              for m in data["model"]["merges"]]
    return vocab, merges


def sentencepiece_tokenizers(lines):
    vocab, merges = sentencepiece_model(lines)
    out = {}
    sp_decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                    decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    bos_template = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                 special_tokens=[("<s>", 1)])
    specials = [AddedToken(t, special=True, normalized=False) for t in ["<unk>", "<s>", "</s>"]]

    def base():
        tok = Tokenizer(models.BPE(vocab=dict(vocab), merges=list(merges), unk_token="<unk>",
                                   byte_fallback=True, fuse_unk=True))
        tok.add_special_tokens(specials)
        return tok

    # (d) Llama 2 legacy: Prepend + Replace normalizer, no pre-tokenizer.
    tok = base()
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = sp_decoder
    tok.post_processor = bos_template
    tok.add_special_tokens([AddedToken("<|im_end|>", rstrip=True, special=True, normalized=False)])
    out["llama2"] = (tok,
                     {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                      "add_bos_token": True, "add_eos_token": False, "legacy": True})

    # (e) Metaspace prepend_scheme=first, split=false (the non-legacy re-save).
    tok = base()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first",
                                                 split=False)
    tok.decoder = decoders.Sequence([decoders.Metaspace(replacement="▁", prepend_scheme="first"),
                                     decoders.ByteFallback(), decoders.Fuse()])
    tok.post_processor = bos_template
    out["metaspace_first"] = (tok,
                              {"bos_token": {"content": "<s>", "__type": "AddedToken"},
                               "eos_token": "</s>", "add_bos_token": True, "legacy": False})

    # (g) Metaspace prepend_scheme=always, split=true, and an EOS in the template.
    tok = base()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always",
                                                 split=True)
    tok.decoder = decoders.Sequence([decoders.Metaspace(replacement="▁", prepend_scheme="always"),
                                     decoders.ByteFallback(), decoders.Fuse()])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> $B </s>",
        special_tokens=[("<s>", 1), ("</s>", 2)])
    out["metaspace_always"] = (tok, {"bos_token": "<s>", "eos_token": "</s>",
                                     "add_bos_token": True, "add_eos_token": True})
    return out


def header(kind, extra=None):
    h = {"script": SCRIPT, "tokenizers": tokenizers.__version__, "kind": kind,
         "python_unicodedata": unicodedata.unidata_version}
    h.update(extra or {})
    return json.dumps(h, ensure_ascii=False)


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")


def stage_cases():
    """Single pre-tokenizer / normalizer outputs for options the trained files do not use."""
    texts = ["Hello  world, it's 2024!", "a-b--c---d", "  lead and trail  ", "x", "", "-",
             "--", "abc123def4567", "▁▁hello▁world", "hello world  again", "Ünïcödé 123 ٣٤",
             "tab\tnew\nline", "<s>x</s>", "caf\u00e9 cafe\u0301 \u1e9b\u0323 \uac00 \u1100\u1161"]
    pre = []
    for behavior in ["removed", "isolated", "merged_with_previous", "merged_with_next",
                     "contiguous"]:
        for invert in [False, True]:
            pre.append(pre_tokenizers.Split("-", behavior=behavior, invert=invert))
            pre.append(pre_tokenizers.Split(Regex(r"\s+|\d"), behavior=behavior, invert=invert))
    pre += [pre_tokenizers.Digits(individual_digits=False),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True),
            pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=False),
            pre_tokenizers.Metaspace(prepend_scheme="never", split=True),
            pre_tokenizers.Metaspace(prepend_scheme="always", split=False),
            pre_tokenizers.Metaspace(prepend_scheme="first", split=True)]
    pre_lines = [header("pre_tokenizers")]
    for p in pre:
        spec = json.loads(p.__getstate__())
        for t in texts:
            pieces = [s for s, _ in p.pre_tokenize_str(t)]
            pre_lines.append(json.dumps({"pre_tokenizer": spec, "text": t, "pieces": pieces},
                                        ensure_ascii=False))
    norms = [normalizers.NFC(), normalizers.NFD(), normalizers.Prepend("▁"),
             normalizers.Replace(" ", "▁"), normalizers.Replace(Regex(r"\s+"), " "),
             normalizers.Sequence([normalizers.NFD(), normalizers.Replace("e", "E")])]
    norm_texts = texts + ["\u0041\u030a\u0301", "\u0f73", "\u1100\u1161\u11a8\u11a8",
                          "\u00c5\u0327", "\ud55c\u11a8", "\u0958\u09dc", "\u2126 \u212b",
                          "o\u0308\u0304 \u01ea\u0304", "\u0345\u0313", "\U0001d15e\u0301"]
    norm_lines = [header("normalizers")]
    for n in norms:
        spec = json.loads(n.__getstate__())
        for t in norm_texts:
            norm_lines.append(json.dumps({"normalizer": spec, "text": t,
                                          "normalized": n.normalize_str(t)}, ensure_ascii=False))
    return pre_lines, norm_lines


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_tokenizer_golden.py OUT_DIR")
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(20261)
    lines = training_text(rng)
    toks = byte_level_tokenizers(lines)
    toks.update(sentencepiece_tokenizers(lines))
    all_specials = sorted({t.content for tok, _ in toks.values()
                           for t in tok.get_added_tokens_decoder().values()})
    corpus = corpus_strings(random.Random(7), all_specials)
    write_lines(os.path.join(out_dir, "corpus.jsonl"),
                [header("corpus", {"count": len(corpus)})] +
                [json.dumps(s, ensure_ascii=False) for s in corpus])
    for name, (tok, config) in sorted(toks.items()):
        folder = os.path.join(out_dir, name)
        os.makedirs(folder, exist_ok=True)
        data = json.loads(tok.to_str())
        if name in STRING_MERGES:
            as_string_merges(data)
        with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
        with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False, indent=1)
        out = [header("golden", {"tokenizer": name,
                                 "vocab_size": tok.get_vocab_size(with_added_tokens=True)})]
        for text in corpus:
            ids = tok.encode(text, add_special_tokens=True).ids
            plain = tok.encode(text, add_special_tokens=False).ids
            row = {"text": text, "ids": ids, "ids_plain": plain,
                                   "decoded": tok.decode(ids, skip_special_tokens=False)}
            skipped = tok.decode(ids, skip_special_tokens=True)
            if skipped != row["decoded"]:
                row["decoded_skip"] = skipped
            out.append(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
        write_lines(os.path.join(folder, "golden.jsonl"), out)
    pre_lines, norm_lines = stage_cases()
    write_lines(os.path.join(out_dir, "pre_tokenizers.jsonl"), pre_lines)
    write_lines(os.path.join(out_dir, "normalizers.jsonl"), norm_lines)


if __name__ == "__main__":
    main()
