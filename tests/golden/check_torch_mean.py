#!/usr/bin/env python3
"""Records of torch.mean on CUDA for the torch_cuda_mean_f32 emulation (src/nibble/quant/torch_mean.h).

bitsandbytes' Double Quantization offset is `absmax.mean()` of a float32 CUDA tensor, so nibble
replays ATen's reduction order on the host. This script runs torch.mean on the GPU over many
sizes and absmax-like inputs and writes inputs and results; the C++ tool compares them:
    python3 tests/golden/check_torch_mean.py /tmp/means.bin [SEED]
    build/tests/quant/check_torch_mean /tmp/means.bin
Needs only torch with CUDA (written against torch 2.11, H100). The file stays under 200 MB.

Inputs: absmax of 64-element blocks of N(0, 0.02) (values about 0.05 +- 0.01, all positive), as
bnb's 4-bit quantization produces; a few small sizes also get N(0, 1) values of both signs.
Sizes: 1..70 each, the thresholds of ATen's launch configuration, powers of two and neighbours,
the absmax counts of Llama weights, random sizes; a few records read from a misaligned pointer.

File (little-endian): b"NIBTMEAN", u32 version 1, i32 multiprocessor count, i32 max threads per
multiprocessor, u32 record count; per record: i64 n, i32 misalignment (floats), f32 x[n],
f32 torch result.
"""
import math
import random
import struct
import sys

import torch

MAX_BYTES = 200 * 1000 * 1000
BLOCK = 64


def llama_sizes():
    # nb = ceil(rows * cols / 64) for Llama weight shapes, plus the small case that found the bug.
    shapes = [(4096, 4096), (4096, 11008), (4096, 14336), (8192, 28672), (1024, 4096), (8192, 8192)]
    return [math.ceil(r * c / BLOCK) for r, c in shapes] + [31, 300, math.ceil(1957 / BLOCK)]


def threshold_sizes():
    # Strided path below 128, float4 path from 128; block width 512 from 2048; the CTA split from
    # n > 130560 (256 values per thread); the 528-CTA cap of 132 SMs past 16 * 528 * 512.
    out = []
    for edge in (127, 128, 2047, 2048, 7680, 130560):
        out += [edge - 1, edge, edge + 1, edge + 2, edge + 3]
    return out + [16 * 528 * 512, 16 * 528 * 512 + 1, 16 * 456 * 512 + 1, 4500000]


def all_sizes(rng):
    sizes = list(range(1, 71)) + llama_sizes() + threshold_sizes()
    for k in range(7, 22):
        sizes += [2 ** k - 1, 2 ** k, 2 ** k + 1] if k < 19 else [2 ** k]
    sizes += [int(math.exp(rng.uniform(math.log(71), math.log(300000)))) for _ in range(250)]
    sizes += [rng.randrange(300000, 4500001) for _ in range(2)]
    return sizes


def absmax_like(n, gen):
    x = torch.randn((n, BLOCK), generator=gen, device="cuda", dtype=torch.float32) * 0.02
    return x.abs().amax(dim=1).contiguous()


def mixed_sign(n, gen):
    return torch.randn(n, generator=gen, device="cuda", dtype=torch.float32)


def torch_mean(x, misalignment):
    if misalignment == 0:
        y = x.clone()
    else:
        buf = torch.empty(x.numel() + misalignment, device="cuda", dtype=torch.float32)
        buf[misalignment:] = x
        y = buf[misalignment:]
    assert y.data_ptr() % 16 == 4 * misalignment, "unexpected allocation alignment"
    return y.mean()


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: check_torch_mean.py OUT_FILE [SEED]")
    out_path = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) == 3 else 2024
    rng = random.Random(seed)

    cases = [(n, 0, absmax_like) for n in all_sizes(rng)]
    cases += [(n, 0, mixed_sign) for n in list(range(1, 71)) + [127, 128, 129, 300, 1000, 4099]]
    cases += [(n, m, absmax_like) for n in (128, 1000, 4099, 200003) for m in (1, 2, 3)]
    total = 24 + sum(16 + 4 * n for n, _, _ in cases)
    assert total < MAX_BYTES, f"{total} bytes is too large"

    props = torch.cuda.get_device_properties(0)
    sms = props.multi_processor_count
    threads = getattr(props, "max_threads_per_multi_processor", 2048)
    print(f"{props.name}: {sms} SMs, {threads} threads/SM; torch {torch.__version__}; "
          f"{len(cases)} records, {total / 1e6:.1f} MB")

    gen = torch.Generator(device="cuda")
    with open(out_path, "wb") as f:
        f.write(b"NIBTMEAN" + struct.pack("<IiiI", 1, sms, threads, len(cases)))
        for index, (n, misalignment, make) in enumerate(cases):
            gen.manual_seed(seed * 100003 + index)
            x = make(n, gen)
            mean = torch_mean(x, misalignment)
            f.write(struct.pack("<qi", n, misalignment))
            f.write(x.cpu().numpy().astype("<f4").tobytes())
            f.write(struct.pack("<f", mean.item()))
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
