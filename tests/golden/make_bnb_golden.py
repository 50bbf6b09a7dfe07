#!/usr/bin/env python3
"""Golden data for quant/: real bitsandbytes 4-bit quantization on the GPU.

Run on a CUDA machine with torch + bitsandbytes (written against torch 2.11, bitsandbytes 0.50.2):
    python tests/golden/make_bnb_golden.py [OUT_DIR]      # default tests/golden/bnb/
Writes one small safetensors file per case (total well under 3 MB). Each holds:
    input                         the random input (F32/F16/BF16), flat
    packed                        bnb's packed codes, U8 [(n+1)//2]
    absmax                        F32 [blocks] (no DQ) or U8 [blocks] (DQ codes)
    nested_absmax, nested_quant_map, offset   (DQ only; offset F32 [1])
    dequant                       bnb's dequantize_4bit output (input dtype), flat
Metadata: script, bnb and torch versions, date, quant_type, blocksize, double_quant, n, dtype.
Only torch, numpy, safetensors and bitsandbytes are used.
"""
import datetime
import os
import sys

import numpy as np
import torch
import bitsandbytes
import bitsandbytes.functional as F
from safetensors.torch import save_file

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
# (n, blocksize): a full multiple, a partial last block, odd lengths.
SIZES = [(64 * 257, 64), (64 * 30 + 37, 64), (4097, 128), (256 * 9 + 1, 256), (4096 * 2 + 5, 4096), (5, 64)]


def make_input(n, dtype, seed, power_of_two_absmax):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g, dtype=torch.float32) * 0.02
    if power_of_two_absmax:
        # Scale each 64-block so that its absmax is a power of two: then CPU (IEEE reciprocal)
        # and GPU (rcp.approx) agree exactly.
        for start in range(0, n, 64):
            block = x[start:start + 64]
            exponent = int(torch.randint(-8, 2, (1,), generator=g))
            block.mul_(2.0 ** exponent / block.abs().max())
    return x.to(dtype)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "bnb")
    os.makedirs(out_dir, exist_ok=True)
    header = {
        "script": "tests/golden/make_bnb_golden.py",
        "bitsandbytes": bitsandbytes.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(0),
    }
    total = 0
    seed = 0
    for quant_type in ("nf4", "fp4"):
        for dtype_name, dtype in DTYPES.items():
            for n, blocksize in SIZES:
                for double_quant in (False, True):
                    for pow2 in (False, True):
                        if pow2 and (blocksize != 64 or double_quant):
                            continue  # the power-of-two scaling is per 64 elements; DQ adds nothing to it
                        seed += 1
                        x = make_input(n, dtype, seed, pow2).cuda()
                        packed, state = F.quantize_4bit(x, blocksize=blocksize, compress_statistics=double_quant,
                                                        quant_type=quant_type)
                        dequant = F.dequantize_4bit(packed, state, quant_type=quant_type)
                        tensors = {
                            "input": x.cpu().contiguous(),
                            "packed": packed.reshape(-1).cpu().contiguous(),
                            "absmax": state.absmax.cpu().contiguous(),
                            "dequant": dequant.reshape(-1).cpu().contiguous(),
                        }
                        if double_quant:
                            tensors["nested_absmax"] = state.state2.absmax.cpu().contiguous()
                            tensors["nested_quant_map"] = state.state2.code.cpu().contiguous()
                            tensors["offset"] = state.offset.reshape(1).float().cpu().contiguous()
                        metadata = dict(header)
                        metadata.update({"quant_type": quant_type, "blocksize": str(blocksize),
                                         "double_quant": str(double_quant).lower(), "n": str(n),
                                         "dtype": dtype_name, "power_of_two_absmax": str(pow2).lower()})
                        name = "{}_{}_n{}_b{}_{}{}.safetensors".format(quant_type, dtype_name, n, blocksize,
                                                                        "dq" if double_quant else "nodq",
                                                                        "_pow2" if pow2 else "")
                        path = os.path.join(out_dir, name)
                        save_file(tensors, path, metadata=metadata)
                        total += os.path.getsize(path)
    print("wrote {} files, {:.2f} MB, to {}".format(seed, total / 1e6, out_dir))


if __name__ == "__main__":
    main()
