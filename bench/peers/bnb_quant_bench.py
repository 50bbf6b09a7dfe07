#!/usr/bin/env python3
"""The measurements of bench/quant/bench_dequant, through bitsandbytes (the peer).

  python bench/peers/bnb_quant_bench.py [JSONL_PATH]

1. NF4 + DQ (B=64) dequantize_4bit to bf16 of 4096x11008 and 8192x28672 weights, GB/s counting
   bytes read (packed, absmax codes, nested absmax) + written, next to a device-to-device copy of
   the output size (read + write) in the same run.
2. Time to quantize_4bit (NF4 + DQ, B=64, bf16 input) every linear weight of a Llama-2-7B shape.
Timing: torch.cuda events around each call, median of many runs, rotating buffer sets larger than
the L2 cache. Prints JSON lines (and appends them to JSONL_PATH when given).
"""
import json
import statistics
import sys

import torch
import bitsandbytes
import bitsandbytes.functional as F

RUNS = 50
SETS = 4


def median_ms(launch, runs):
    for i in range(3):
        launch(i)
    times = []
    for i in range(runs):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        launch(i)
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def main():
    lines = []
    device = torch.cuda.get_device_name(0)
    common = {"impl": "bitsandbytes", "bnb_version": bitsandbytes.__version__, "torch": torch.__version__,
              "device": device}
    for rows, cols in ((4096, 11008), (8192, 28672)):
        weight = (torch.randn(rows, cols, device="cuda", dtype=torch.float32) * 0.02).to(torch.bfloat16)
        sets = [F.quantize_4bit(weight, blocksize=64, compress_statistics=True, quant_type="nf4") for _ in range(SETS)]
        del weight
        outs = [torch.empty(rows, cols, device="cuda", dtype=torch.bfloat16) for _ in range(SETS)]
        packed, state = sets[0]
        read = packed.numel() * packed.element_size() + state.absmax.numel() + state.state2.absmax.numel() * 4
        written = rows * cols * 2

        def dequant(i):
            p, s = sets[i % SETS]
            F.dequantize_4bit(p, s, out=outs[i % SETS], quant_type="nf4")

        def copy(i):
            outs[(i + 1) % SETS].copy_(outs[i % SETS])

        dequant_ms = median_ms(dequant, RUNS)
        copy_ms = median_ms(copy, RUNS)
        dequant_gbs = (read + written) / (dequant_ms * 1e-3) / 1e9
        copy_gbs = 2 * written / (copy_ms * 1e-3) / 1e9
        lines.append(dict(common, bench="dequantize_4bit", quant_type="nf4", double_quant=True, blocksize=64,
                          out_dtype="bfloat16", shape=[rows, cols], median_ms=round(dequant_ms, 5),
                          bytes=read + written, gb_per_s=round(dequant_gbs, 2), memcpy_median_ms=round(copy_ms, 5),
                          memcpy_gb_per_s=round(copy_gbs, 2), fraction_of_memcpy=round(dequant_gbs / copy_gbs, 4)))
        del sets, outs
        torch.cuda.empty_cache()

    layer = [(4096, 4096)] * 4 + [(11008, 4096)] * 2 + [(4096, 11008)]
    square = (torch.randn(4096, 4096, device="cuda") * 0.02).to(torch.bfloat16)
    wide = (torch.randn(11008, 4096, device="cuda") * 0.02).to(torch.bfloat16)
    inputs = [square if shape == (4096, 4096) else wide for _ in range(32) for shape in layer]

    def quantize_all(_):
        for x in inputs:
            F.quantize_4bit(x, blocksize=64, compress_statistics=True, quant_type="nf4")

    quantize_ms = median_ms(quantize_all, 5)
    lines.append(dict(common, bench="quantize_llama2_7b_linears", quant_type="nf4", double_quant=True, blocksize=64,
                      in_dtype="bfloat16", tensors=len(inputs), params=sum(x.numel() for x in inputs),
                      median_ms=round(quantize_ms, 3)))
    text = "\n".join(json.dumps(line) for line in lines)
    print(text)
    if len(sys.argv) > 1:
        with open(sys.argv[1], "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
