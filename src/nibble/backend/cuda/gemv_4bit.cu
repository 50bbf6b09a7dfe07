// Fused 4-bit GEMV (gemv_4bit.cuh). Decoding is memory-bound: every token reads every weight
// once, N*K/2 bytes, so the goal is the copy bandwidth. Two kernels:
//
// - gemv_4bit_mma_kernel (BF16/F16 activations, K % 32 == 0, 16-byte aligned pointers): a block
//   owns 16 weight rows; each lane loads 16 packed bytes (32 codes, one quantization block since
//   B >= 32) of two rows per step with streaming 16-byte loads, rebuilds that block's absmax once,
//   dequantizes into the activation dtype and feeds an m16n8k16 tensor-core MMA with the tokens
//   as its 8 columns (T <= 8, unused columns zero). The MMA replaces per-element unpacking of x
//   and per-element FMAs, which would otherwise leave the kernel short of issue slots (about 7
//   instructions per weight element against a budget near 4 at full bandwidth). Its products
//   are exact (bf16 x bf16 and f16 x f16 fit in fp32) and it accumulates in fp32.
// - gemv_4bit_generic_kernel (any dtype, K, alignment): one warp per row, one element per lane
//   per step, plain fp32 FMAs. F32 activations need it (an MMA would round them to TF32) and so
//   do odd shapes, where rows do not start on a byte or a quantization block.
//
// Both kernels round each weight to the activation dtype before the product, as the
// dequantize + GEMM path does, and read the 16-entry table from shared memory: 16 consecutive
// words sit in 16 distinct banks, so any pattern of codes is conflict-free.
#include "nibble/backend/cuda/gemv_4bit.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <climits>
#include <type_traits>

#include "nibble/backend/cuda/element.cuh"
#include "nibble/backend/linear_4bit.h"
#include "nibble/core/cuda_check.h"
#include "nibble/quant/formats.h"

namespace nibble::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kTileRows = 16;    // MMA M: weight rows per block of the MMA kernel
constexpr int kTileTokens = 8;   // MMA N: tokens (columns), T <= 8
constexpr int kChunk = 32;       // elements per 16-byte load
constexpr int kStepChunks = 4;   // chunks of one row per warp step (the 4 lanes of an MMA group)
constexpr int kUnroll = 2;       // warp steps with their loads in flight before the first use
static_assert(kThreads == kDynamicMapSize, "one thread loads one entry of the nested map");
static_assert(kTileTokens == kGemv4bitMaxTokens, "the MMA's 8 columns hold every token");

struct Tables {
  float values[16];  // what each code dequantizes to before scaling (FP4: -0.0 at code 8)
};

Tables tables_of(QuantType type) {
  Tables t{};
  for (int c = 0; c < 16; ++c) t.values[c] = bits_float(type == QuantType::nf4 ? nf4_code_bits(c) : fp4_dequant_bits(c));
  return t;
}

// The absmax of quantization block `block`; with DQ fl(fl(map[q] * nested) + offset), two
// roundings as bitsandbytes (bnb-format.md 2.4), so __fmul_rn/__fadd_rn keep it from an FMA.
__device__ __forceinline__ float block_scale(const Dequant4bitArgs& w, const float* map, int64_t block,
                                             int nested_shift) {
  if (w.double_quant)
    return __fadd_rn(__fmul_rn(map[__ldg(w.absmax_codes + block)], __ldg(w.nested_absmax + (block >> nested_shift))),
                     w.offset);
  return __ldg(w.absmax + block);
}

// Shared-memory tables every thread of a block reads; call before the first __syncthreads().
__device__ __forceinline__ void load_tables(const Dequant4bitArgs& w, const Tables& tables, float* lut, float* map) {
  // Constant indices keep the by-value parameter out of local memory.
#pragma unroll
  for (int c = 0; c < 16; ++c)
    if (threadIdx.x == c) lut[c] = tables.values[c];
  if (w.double_quant)
    for (int i = threadIdx.x; i < kDynamicMapSize; i += blockDim.x) map[i] = w.nested_code[i];
}

// Two dequantized weights in one 32-bit MMA operand register: `first` in the low half (the lower
// k), each rounded once to nearest even, as dequantize_4bit stores them.
template <typename E>
__device__ __forceinline__ uint32_t pack2(float first, float second);
template <>
__device__ __forceinline__ uint32_t pack2<bf16_t>(float first, float second) {
  __nv_bfloat162 h = __floats2bfloat162_rn(first, second);
  return *reinterpret_cast<uint32_t*>(&h);
}
template <>
__device__ __forceinline__ uint32_t pack2<fp16_t>(float first, float second) {
  __half2 h = __floats2half2_rn(first, second);
  return *reinterpret_cast<uint32_t*>(&h);
}

// d[16, 8] += a[16, 16] b[16, 8] with fp32 accumulators.
template <typename E>
__device__ __forceinline__ void mma_16x8x16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma_16x8x16<bf16_t>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma_16x8x16<fp16_t>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Fragment layout of mma.m16n8k16 (PTX ISA), lane = 4 g + q: A registers 0..3 hold (row g, cols
// 2q, 2q+1), (row g+8, same), (row g, cols 2q+8, 2q+9), (row g+8, same); B registers 0..1 hold
// (rows 2q, 2q+1; col g), (rows 2q+8, 2q+9; col g); D holds (row g, cols 2q, 2q+1), (row g+8,
// same). A dot product does not care which k goes to which MMA column as long as A and B agree,
// so lane q takes a whole 32-element chunk of k and MMA j of that chunk gives the lane's four
// slots the elements 4j .. 4j+3: the A halves and the B words then come straight from 16-byte
// loads without any exchange between lanes.
//
// Grid: one block per 16 rows; its warps take the steps (128 consecutive k: 4 chunks) of those
// rows in turn and meet in shared memory at the end.
template <typename E>
__global__ void __launch_bounds__(kThreads) gemv_4bit_mma_kernel(Dequant4bitArgs w, Tables tables, int64_t N,
                                                                 int64_t K, int T, E* __restrict__ y /* [T, N] */,
                                                                 const E* __restrict__ x /* [T, K] */,
                                                                 const E* __restrict__ bias /* [N] or null */) {
  __shared__ float lut[16];
  __shared__ float map[kDynamicMapSize];
  __shared__ float partial[kWarps][kTileRows][kTileTokens];
  load_tables(w, tables, lut, map);
  __syncthreads();

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int g = lane / 4, q = lane % 4;
  const int shift = __ffsll(w.blocksize) - 1;
  const int nested_shift = __ffsll(w.nested_blocksize) - 1;
  const int64_t row[2] = {static_cast<int64_t>(blockIdx.x) * kTileRows + g,
                          static_cast<int64_t>(blockIdx.x) * kTileRows + g + 8};
  const bool row_ok[2] = {row[0] < N, row[1] < N};
  const bool token_ok = g < T;  // this lane's B column is token g
  const int64_t chunks = K / kChunk;
  const int64_t steps = (chunks + kStepChunks - 1) / kStepChunks;

  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int64_t first = warp; first < steps; first += kWarps * kUnroll) {
    // Loads first: packed codes of both rows and their block scales for kUnroll steps. A chunk
    // past K (K/32 not a multiple of 4) gets code 0 with scale 0 and x = 0: a finite zero term.
    uint4 packed[kUnroll][2];
    float scale[kUnroll][2];
    int64_t chunk[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      chunk[u] = (first + u * kWarps) * kStepChunks + q;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        packed[u][r] = make_uint4(0, 0, 0, 0);
        scale[u][r] = 0.0f;
        if (chunk[u] < chunks && row_ok[r]) {
          const int64_t element = row[r] * K + chunk[u] * kChunk;  // 32-aligned: inside one block
          packed[u][r] = __ldcs(reinterpret_cast<const uint4*>(w.packed + element / 2));
          scale[u][r] = block_scale(w, map, element >> shift, nested_shift);
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      // This lane's B column: 32 elements of token g (16 words of two), L1-resident after the
      // first blocks since every block reads all of x.
      uint32_t xw[16];
      const bool x_ok = token_ok && chunk[u] < chunks;
      const uint4* xs = reinterpret_cast<const uint4*>(x + g * K + chunk[u] * kChunk);
#pragma unroll
      for (int v = 0; v < 4; ++v) {
        const uint4 p = x_ok ? __ldg(xs + v) : make_uint4(0, 0, 0, 0);
        xw[4 * v + 0] = p.x;
        xw[4 * v + 1] = p.y;
        xw[4 * v + 2] = p.z;
        xw[4 * v + 3] = p.w;
      }
      const uint32_t words[2][4] = {{packed[u][0].x, packed[u][0].y, packed[u][0].z, packed[u][0].w},
                                    {packed[u][1].x, packed[u][1].y, packed[u][1].z, packed[u][1].w}};
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        // Elements 4j, 4j+1 are byte 2j (first in the high nibble), 4j+2, 4j+3 byte 2j+1.
        const int bit = (j % 2) * 16;
        uint32_t a[4];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const uint32_t word = words[r][j / 2];
          const float s = scale[u][r];
          a[r] = pack2<E>(__fmul_rn(lut[(word >> (bit + 4)) & 0xfu], s), __fmul_rn(lut[(word >> bit) & 0xfu], s));
          a[r + 2] = pack2<E>(__fmul_rn(lut[(word >> (bit + 12)) & 0xfu], s),
                              __fmul_rn(lut[(word >> (bit + 8)) & 0xfu], s));
        }
        mma_16x8x16<E>(acc, a, xw[2 * j], xw[2 * j + 1]);
      }
    }
  }

  partial[warp][g][2 * q] = acc[0];
  partial[warp][g][2 * q + 1] = acc[1];
  partial[warp][g + 8][2 * q] = acc[2];
  partial[warp][g + 8][2 * q + 1] = acc[3];
  __syncthreads();
  if (threadIdx.x < kTileRows * kTileTokens) {
    const int r = threadIdx.x / kTileTokens, t = threadIdx.x % kTileTokens;
    const int64_t n = static_cast<int64_t>(blockIdx.x) * kTileRows + r;
    if (n < N && t < T) {
      float sum = 0.0f;
#pragma unroll
      for (int v = 0; v < kWarps; ++v) sum += partial[v][r][t];
      if (bias != nullptr) sum += to_f32(bias[n]);
      y[t * N + n] = from_f32<E>(sum);
    }
  }
}

// One warp per row, lane-strided over k; everything per element, including the block scale.
template <typename E>
__global__ void __launch_bounds__(kThreads) gemv_4bit_generic_kernel(Dequant4bitArgs w, Tables tables, int64_t N,
                                                                     int64_t K, int T, E* __restrict__ y /* [T, N] */,
                                                                     const E* __restrict__ x /* [T, K] */,
                                                                     const E* __restrict__ bias /* [N] or null */) {
  __shared__ float lut[16];
  __shared__ float map[kDynamicMapSize];
  load_tables(w, tables, lut, map);
  __syncthreads();
  const int lane = threadIdx.x % 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (n >= N) return;
  const int shift = __ffsll(w.blocksize) - 1;
  const int nested_shift = __ffsll(w.nested_blocksize) - 1;
  float acc[kGemv4bitMaxTokens] = {};
  for (int64_t k = lane; k < K; k += 32) {
    const int64_t element = n * K + k;
    const uint32_t code = unpack_nibble(w.packed[element / 2], element);
    const float weight = round_as<E>(__fmul_rn(lut[code], block_scale(w, map, element >> shift, nested_shift)));
#pragma unroll
    for (int t = 0; t < kGemv4bitMaxTokens; ++t)
      if (t < T) acc[t] = fmaf(to_f32(x[t * K + k]), weight, acc[t]);
  }
#pragma unroll
  for (int t = 0; t < kGemv4bitMaxTokens; ++t) {
    float sum = acc[t];
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (lane == 0 && t < T) y[t * N + n] = from_f32<E>(bias != nullptr ? sum + to_f32(bias[n]) : sum);
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void gemv_4bit_forward_launch(void* y, const void* x, const Dequant4bitArgs& w, int64_t N, int64_t K,
                              const void* bias, int64_t T, DType dtype, cudaStream_t stream) {
  NIBBLE_CHECK(T >= 0 && T <= kGemv4bitMaxTokens, "gemv_4bit on cuda: T = {}, expected at most {} tokens", T,
               kGemv4bitMaxTokens);
  NIBBLE_CHECK((N + kWarps - 1) / kWarps <= INT_MAX, "gemv_4bit on cuda: N = {} rows exceed the grid", N);
  if (T == 0 || N == 0) return;
  const Tables tables = tables_of(w.type);
  // The MMA kernel's 16-byte loads need every row and chunk of 32 codes on a 16-byte boundary.
  const bool mma = dtype != DType::f32 && K % kChunk == 0 && aligned16(w.packed) && aligned16(x);
  dispatch_activation(dtype, "gemv_4bit", [&](auto tag) {
    using E = decltype(tag);
    E* out = static_cast<E*>(y);
    const E* in = static_cast<const E*>(x);
    const E* b = static_cast<const E*>(bias);
    if constexpr (!std::is_same_v<E, float>) {
      if (mma) {
        const int64_t blocks = (N + kTileRows - 1) / kTileRows;
        gemv_4bit_mma_kernel<E><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(w, tables, N, K,
                                                                                       static_cast<int>(T), out, in, b);
        return;
      }
    }
    const int64_t blocks = (N + kWarps - 1) / kWarps;
    gemv_4bit_generic_kernel<E><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(w, tables, N, K,
                                                                                       static_cast<int>(T), out, in, b);
  });
  NIBBLE_CUDA_CHECK_LAUNCH();
}

void gemv_4bit_forward(Tensor& y, const Tensor& x, const QuantizedWeight& w, const Tensor* bias,
                       const Tensor& workspace, cudaStream_t stream) {
  const LinearDims d = check_linear_4bit_forward(Device::cuda, y, x, w, bias, workspace);
  NIBBLE_CHECK(d.T <= kGemv4bitMaxTokens, "linear_4bit_forward (gemv) on cuda: x is {}, expected at most {} tokens",
               x.describe(), kGemv4bitMaxTokens);
  const Dequant4bitArgs a = dequant_4bit_args(w);
  gemv_4bit_forward_launch(y.data(), x.data(), a, d.N, d.K, bias != nullptr ? bias->data() : nullptr, d.T, x.dtype(),
                           stream);
}

}  // namespace nibble::cuda
