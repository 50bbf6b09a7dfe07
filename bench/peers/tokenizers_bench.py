#!/usr/bin/env python3
"""HF tokenizers on the same text bench/text/bench_tokenizer encodes; prints JSON lines.

Usage: tokenizers_bench.py TOKENIZER_DIR [MB=10] [CORPUS=tests/golden/tokenizers/corpus.jsonl]

Two lines: single-thread `encode` over the same ~1 KB pieces, and `encode_batch` (which uses
all cores unless RAYON_NUM_THREADS says otherwise).
"""
import json
import os
import sys
import time

from tokenizers import Tokenizer
import tokenizers


def bench_pieces(corpus_path, size):
    """The recipe of bench_tokenizer.cpp: corpus strings in an LCG order, ~1 KB pieces."""
    with open(corpus_path, encoding="utf-8") as f:
        f.readline()
        corpus = [s for s in (json.loads(line) for line in f) if s]
    pieces, current, total, state = [], "", 0, 12345
    while total < size:
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 63)
        current += corpus[(state >> 33) % len(corpus)] + "\n"
        if len(current.encode("utf-8")) >= 1024:
            total += len(current.encode("utf-8"))
            pieces.append(current)
            current = ""
    return pieces


def report(name, folder, nbytes, npieces, ntokens, seconds, threads):
    print(json.dumps({"bench": name, "tokenizer": folder, "tokenizers": tokenizers.__version__,
                      "bytes": nbytes, "pieces": npieces, "tokens": ntokens,
                      "seconds": round(seconds, 4), "mb_per_s": round(nbytes / seconds / 1e6, 2),
                      "tokens_per_s": round(ntokens / seconds), "threads": threads}))


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: tokenizers_bench.py TOKENIZER_DIR [MB] [CORPUS]")
    folder = sys.argv[1]
    mb = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    corpus = sys.argv[3] if len(sys.argv) > 3 else os.path.join(
        root, "tests/golden/tokenizers/corpus.jsonl")
    pieces = bench_pieces(corpus, int(mb * 1e6))
    nbytes = sum(len(p.encode("utf-8")) for p in pieces)
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))

    best, ntokens = None, 0
    for _ in range(3):
        t0 = time.perf_counter()
        ntokens = sum(len(tok.encode(p, add_special_tokens=False).ids) for p in pieces)
        s = time.perf_counter() - t0
        best = s if best is None else min(best, s)
    report("hf_tokenizers_encode", folder, nbytes, len(pieces), ntokens, best, 1)

    best = None
    for _ in range(3):
        t0 = time.perf_counter()
        ntokens = sum(len(e.ids) for e in tok.encode_batch(pieces, add_special_tokens=False))
        s = time.perf_counter() - t0
        best = s if best is None else min(best, s)
    report("hf_tokenizers_encode_batch", folder, nbytes, len(pieces), ntokens, best,
           os.environ.get("RAYON_NUM_THREADS", os.cpu_count()))


if __name__ == "__main__":
    main()
