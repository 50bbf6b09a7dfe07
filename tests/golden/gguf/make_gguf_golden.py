"""Makes tests/golden/gguf/dequant.gguf with gguf-py, llama.cpp's own Python GGUF package, as an
oracle independent of nibble's reader and dequantizers.

For every tensor type nibble imports, the file holds `<type>.raw`: two rows of 256 values as
random block bytes (scales made finite), and `<type>.expected`: gguf-py's dequantization of
them as F32. It also holds one metadata key of every value type, with the values
tests/io/test_gguf_golden.cpp expects.

    python -m venv /tmp/venv && /tmp/venv/bin/pip install gguf==0.19.0 numpy
    /tmp/venv/bin/python tests/golden/gguf/make_gguf_golden.py
"""
import os
import sys
from importlib.metadata import version

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

SEED = 20261125
ROWS, COLS = 2, 256

# Byte offsets of the fp16 scale fields inside one block of each type (ggml-common.h).
SCALE_FIELDS = {
    Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0],
    Q.Q2_K: [80, 82], Q.Q3_K: [108], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208],
}
TYPES = [Q.F32, Q.F16, Q.BF16, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0, Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K]


def raw_rows(qtype, rng):
    block_values, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    if qtype == Q.F32:
        return rng.standard_normal((ROWS, COLS)).astype(np.float32).view(np.uint8)
    if qtype == Q.F16:
        return rng.standard_normal((ROWS, COLS)).astype(np.float16).view(np.uint8)
    if qtype == Q.BF16:
        bits = rng.standard_normal((ROWS, COLS)).astype(np.float32).view(np.uint32) >> 16
        return bits.astype(np.uint16).view(np.uint8)
    blocks = rng.integers(0, 256, size=(ROWS * COLS // block_values, block_bytes), dtype=np.uint8)
    for at in SCALE_FIELDS[qtype]:
        scale = (rng.uniform(-0.05, 0.05, size=blocks.shape[0])).astype(np.float16)
        blocks[:, at:at + 2] = scale.view(np.uint8).reshape(-1, 2)
    return blocks.reshape(ROWS, -1)


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dequant.gguf")
    rng = np.random.default_rng(SEED)
    writer = gguf.GGUFWriter(out, "golden")
    writer.add_string("golden.script", "tests/golden/gguf/make_gguf_golden.py")
    writer.add_string("golden.gguf_py_version", version("gguf"))
    writer.add_string("golden.numpy_version", np.__version__)
    writer.add_uint32("golden.seed", SEED)
    # One key of every value type.
    writer.add_uint8("golden.u8", 200)
    writer.add_int8("golden.i8", -100)
    writer.add_uint16("golden.u16", 60000)
    writer.add_int16("golden.i16", -30000)
    writer.add_uint32("golden.u32", 4000000000)
    writer.add_int32("golden.i32", -2000000000)
    writer.add_float32("golden.f32", 0.125)
    writer.add_bool("golden.bool", True)
    writer.add_string("golden.string", "héllo ✓")
    writer.add_uint64("golden.u64", 2**63 - 1)
    writer.add_int64("golden.i64", -2**62)
    writer.add_float64("golden.f64", -2.5e-300)
    writer.add_array("golden.strings", ["a", "", "Ġb c"])
    writer.add_key_value("golden.i32s", [1, -2, 3], gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.INT32)
    writer.add_key_value("golden.f32s", [0.5, -1.0], gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.FLOAT32)
    for qtype in TYPES:
        raw = raw_rows(qtype, rng)
        expected = gguf.quants.dequantize(raw, qtype).astype(np.float32).reshape(ROWS, COLS)
        assert np.isfinite(expected).all(), qtype.name
        writer.add_tensor(f"{qtype.name}.raw", raw, raw_dtype=qtype)
        writer.add_tensor(f"{qtype.name}.expected", expected)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"wrote {out} ({os.path.getsize(out)} bytes) with gguf {version('gguf')}", file=sys.stderr)


if __name__ == "__main__":
    main()
