// Fused 4-bit GEMV (gemv_4bit.cuh). Decoding is memory-bound: every token reads every weight
// once, N*K/2 bytes, so the goal is the copy bandwidth. Two kernels:
//
// - gemv_4bit_mma_kernel (BF16/F16 activations, K % 32 == 0, 16-byte aligned pointers): a block
//   owns 16 weight rows; per step each lane loads 2 x 16 packed bytes (64 codes) of two rows,
//   rebuilds their absmax once per quantization block, dequantizes into the activation dtype and
//   feeds m16n8k16 tensor-core MMAs with the tokens as the 8 columns (T <= 8, unused columns
//   zero). The MMA does the products and the fp32 sums, so what is left per weight element is the
//   dequantization: per packed byte one 64-bit read of a pair table (both elements' unscaled
//   values, see kPairCopies), two scale products and one packing conversion. That is what the
//   kernel spends its instructions on, and an SM must take ~20 elements a clock at full
//   bandwidth: issue rate and latency, not DRAM, set its speed (bench/RESULTS.md has the
//   measurements: 6.5 instructions an element in the first version, 4.4 here).
//   Memory side: 32 warps an SM (64 registers), each with a step of loads in flight, with an L2
//   prefetch hint of 256 bytes; the tokens' activations are staged once per block in shared
//   memory after the wait on the previous kernel, so no step waits on an L2 round trip for x. The
//   weight loads of the first step are issued before that wait (dependent_launch.cuh): they read
//   nothing an earlier op writes, so under a dependent launch they overlap the previous kernel's
//   tail, and at K = 4096 they are the warp's whole share of the weight.
//   Its products are exact (bf16 x bf16 and f16 x f16 fit in fp32) and it accumulates in fp32.
// - gemv_4bit_generic_kernel (any dtype, K, alignment): one warp per row, one element per lane
//   per step, plain fp32 FMAs. F32 activations need it (an MMA would round them to TF32) and so
//   do odd shapes, where rows do not start on a byte or a quantization block; it reads the
//   16-entry table from shared memory (16 consecutive words in 16 distinct banks: conflict-free).
//
// Both kernels round each weight to the activation dtype before the product, as the dequantize
// + GEMM path does.
#include "nibble/backend/cuda/gemv_4bit.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <climits>
#include <type_traits>

#include "nibble/backend/cuda/dependent_launch.cuh"
#include "nibble/backend/cuda/element.cuh"
#include "nibble/backend/linear_4bit.h"
#include "nibble/core/cuda_check.h"
#include "nibble/quant/formats.h"

namespace nibble::cuda {

namespace {

constexpr int kThreads = 512;  // 16 warps; two blocks fill an SM's 32 warps at <= 64 registers
constexpr int kWarps = kThreads / 32;
constexpr int kTileRows = 16;    // MMA M: weight rows per block of the MMA kernel
constexpr int kTileTokens = 8;   // MMA N: tokens (columns), T <= 8
constexpr int kChunk = 32;       // elements per 16-byte load
constexpr int kLaneChunks = 2;   // adjacent chunks of one row per lane and step: 64 elements
constexpr int kStepChunks = 4 * kLaneChunks;  // chunks of one row per warp step (4 lanes of an MMA group)
// Steps per warp whose loads are in flight (a register ring). 2 (with 256-thread blocks) took 122
// registers, 16 warps an SM, and measured 3-5 % slower at the decode shapes (10 % faster at
// 8192 x 28672, where each warp walks 14 steps); 1 keeps 32 warps an SM to hide latency with.
constexpr int kDepth = 1;
// Staged x: 8 elements (16 bytes) of padding after every 64, so that the 4 lanes of a token,
// which read 64-element pairs of chunks 144 bytes apart, hit distinct banks (unpadded, 128 bytes
// apart, they all hit the same 4 banks), and 32 more after each row (64 bytes: token rows land on
// other banks).
constexpr int kXGroupPad = 8;
constexpr int kXRowPad = 32;
__host__ __device__ constexpr int64_t staged_x_stride(int64_t K) {
  return K + (K + 2 * kChunk - 1) / (2 * kChunk) * kXGroupPad + kXRowPad;
}
// Staged x beyond this many bytes (T * staged_x_stride(K) elements) is read from global memory.
constexpr int kMaxStagedXBytes = 96 * 1024;
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
// Neither depends on an earlier op (the nested map is part of the weight).
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

// 16 packed bytes that are read once: not kept in L1, and the L2 fetches the surrounding 256
// bytes (the same row's next steps, which other warps of the block load next). Volatile so that
// the compiler keeps the prologue's loads ahead of the dependency wait.
__device__ __forceinline__ uint4 load_codes(const uint8_t* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// Byte b of x, zero-extended: one byte permute, kept as one (for bytes 0 and 3 the compiler would
// otherwise fold the mask or shift into the address arithmetic as two extra instructions).
template <int b>
__device__ __forceinline__ uint32_t byte_of(uint32_t x) {
  uint32_t v;
  asm("prmt.b32 %0, %1, 0, %2;" : "=r"(v) : "r"(x), "n"(0x4440 + b));
  return v;
}

// The pair table: for every packed byte v, (table[v >> 4], table[v & 15]), the unscaled values
// of its two elements, in kPairCopies copies side by side: entry v of copy c sits at 8 (v *
// kPairCopies + c) bytes. Lane l reads copy l % kPairCopies, so the 16 lanes of a 64-bit shared
// load hit 16 distinct bank pairs whatever their bytes are (no conflicts, no broadcast needed),
// and one load dequantizes two elements (a 16-entry table needs a load and an offset per element).
constexpr int kPairCopies = 16;
constexpr int kPairEntries = 256 * kPairCopies;

// Elements 2b and 2b + 1 of a packed word (byte b: high nibble first), unscaled. `lane_pairs` is
// the shared address of this lane's copy of entry 0.
template <int b>
__device__ __forceinline__ float2 pair_at(uint32_t lane_pairs, uint32_t word) {
  float2 v;
  asm("ld.shared.v2.f32 {%0, %1}, [%2];"
      : "=f"(v.x), "=f"(v.y)
      : "r"(lane_pairs + byte_of<b>(word) * (8u * kPairCopies)));
  return v;
}

// The MMA operand word of byte b: (element 2b, element 2b + 1), each scaled and rounded once.
template <typename E, int b>
__device__ __forceinline__ uint32_t dequant_pair(uint32_t lane_pairs, uint32_t word, float s) {
  const float2 v = pair_at<b>(lane_pairs, word);
  return pack2<E>(__fmul_rn(v.x, s), __fmul_rn(v.y, s));
}

// One warp step's loads for one lane: 2 x 32 codes of rows g and g + 8 and what their scales are
// rebuilt from. The codes arrive as-is; the scales are finished when the step is consumed (the
// nested map lives in shared memory, filled after the first loads went out).
struct StepLoads {
  uint4 codes[2][kLaneChunks];
  uint32_t scale_bits[2][kLaneChunks];  // with DQ the absmax code, else the absmax's float bits
  float nested[2][kLaneChunks];         // with DQ the nested absmax
};

// Fragment layout of mma.m16n8k16 (PTX ISA), lane = 4 g + q: A registers 0..3 hold (row g, cols
// 2q, 2q+1), (row g+8, same), (row g, cols 2q+8, 2q+9), (row g+8, same); B registers 0..1 hold
// (rows 2q, 2q+1; col g), (rows 2q+8, 2q+9; col g); D holds (row g, cols 2q, 2q+1), (row g+8,
// same). A dot product does not care which k goes to which MMA column as long as A and B agree,
// so lane q takes whole 32-element chunks of k and MMA j of a chunk gives the lane's four slots
// the elements 4j .. 4j+3: the A halves and the B words then come straight from 16-byte loads
// without any exchange between lanes.
//
// Grid: one block per 16 rows; its warps take the steps (256 consecutive k: lane q the chunks 2q
// and 2q + 1, 64 elements, one quantization block when B >= 64) of those rows in turn (warp w:
// steps w, w + 16, ...) and meet in shared memory at the end. x [T, K] is staged in shared memory
// (`staged`, padded: staged_x_stride) when it fits, else read from global. Element offsets are
// 32-bit (the launcher checks N * K < 2^31): the per-step address arithmetic is part of the issue
// budget too, and so is the scale, built once for both chunks when they share a block.
template <typename E>
__global__ void __launch_bounds__(kThreads, 2)  // <= 64 registers: 32 warps an SM to hide latency
    gemv_4bit_mma_kernel(Dequant4bitArgs w, Tables tables, int N, int K, int T, bool staged,
                         E* __restrict__ y /* [T, N] */, const E* __restrict__ x /* [T, K] */,
                         const E* __restrict__ bias /* [N] or null */) {
  extern __shared__ uint4 staged_x[];  // [T, staged_x_stride(K)] of E when staged
  __shared__ uint4 zero_x[4];          // the B column of a lane without a token, or of a chunk past K
  __shared__ float lut[16];
  __shared__ float map[kDynamicMapSize];
  __shared__ float2 pairs[kPairEntries];
  __shared__ float partial[kWarps][kTileRows][kTileTokens];

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int g = lane / 4, q = lane % 4;
  const int shift = __ffs(static_cast<int>(w.blocksize)) - 1;
  const int nested_shift = __ffs(static_cast<int>(w.nested_blocksize)) - 1;
  const int chunks = K / kChunk;
  const int steps = (chunks + kStepChunks - 1) / kStepChunks;
  // Every warp runs the same number of steps (a warp's last one may be empty), so the loop holds
  // no divergent branch.
  const int warp_steps = (steps + kWarps - 1) / kWarps;
  // A lane's two chunks (elements 64m .. 64m + 63 of a row) lie in one quantization block.
  const bool one_scale = w.blocksize >= 2 * kChunk && K % (2 * kChunk) == 0;
  // A row past N (the last tile) reads row N - 1 and a chunk past K (K/32 not a multiple of 8, or
  // a warp's empty last step) the last chunk: valid codes, finite weights, whose products are
  // dropped (x is zero for such chunks, and such rows are never stored). No load is predicated.
  const uint32_t tile = blockIdx.x * kTileRows;
  const uint32_t row_element[2] = {min(tile + g, static_cast<uint32_t>(N - 1)) * K,
                                   min(tile + g + 8, static_cast<uint32_t>(N - 1)) * K};

  auto load_scale = [&](uint32_t element, uint32_t& bits, float& nested) {
    const uint32_t block = element >> shift;
    if (w.double_quant) {
      bits = __ldg(w.absmax_codes + block);
      nested = __ldg(w.nested_absmax + (block >> nested_shift));
    } else {
      bits = __float_as_uint(__ldg(w.absmax + block));
      nested = 0.0f;
    }
  };
  auto load_step = [&](StepLoads& s, int i) {
    const int first = (warp + i * kWarps) * kStepChunks + kLaneChunks * q;
#pragma unroll
    for (int c = 0; c < kLaneChunks; ++c) {
      const uint32_t chunk = min(first + c, chunks - 1);
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const uint32_t element = row_element[r] + chunk * kChunk;  // 32-aligned: inside one block
        s.codes[r][c] = load_codes(w.packed + element / 2);
        if (c == 0 || !one_scale) {
          load_scale(element, s.scale_bits[r][c], s.nested[r][c]);
        } else {
          s.scale_bits[r][c] = s.scale_bits[r][0];
          s.nested[r][c] = s.nested[r][0];
        }
      }
    }
  };

  StepLoads ring[kDepth];
#pragma unroll
  for (int d = 0; d < kDepth; ++d) load_step(ring[d], d);
  load_tables(w, tables, lut, map);
  if (threadIdx.x < 4) zero_x[threadIdx.x] = make_uint4(0, 0, 0, 0);
  __syncthreads();
  for (int i = threadIdx.x; i < kPairEntries; i += kThreads) {
    const int v = i / kPairCopies;
    pairs[i] = make_float2(lut[v >> 4], lut[v & 15]);
  }
  const uint32_t lane_pairs = static_cast<uint32_t>(__cvta_generic_to_shared(pairs + lane % kPairCopies));
  allow_dependents();
  dependency_wait();  // x is an earlier op's output; y may be read by one
  const int x_stride = static_cast<int>(staged_x_stride(K));
  if (staged) {
    const int row_vectors = K / 8;  // uint4 of 8 elements per row of x
    for (int i = threadIdx.x; i < T * row_vectors; i += kThreads) {
      const int t = i / row_vectors, v = i % row_vectors;
      staged_x[(t * x_stride) / 8 + v + v / 8] = __ldg(reinterpret_cast<const uint4*>(x + t * K) + v);
    }
  }
  __syncthreads();

  const bool token_ok = g < T;  // this lane's B column is token g
  const E* x_row = staged ? reinterpret_cast<const E*>(staged_x) + g * x_stride : x + g * K;
  const int x_pad = staged ? kXGroupPad : 0;  // elements after every 64 in x_row
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};

  auto scale_of = [&](uint32_t bits, float nested) {
    return w.double_quant ? __fadd_rn(__fmul_rn(map[bits], nested), w.offset) : __uint_as_float(bits);
  };
  auto consume = [&](const StepLoads& s, int i) {
    const int first = (warp + i * kWarps) * kStepChunks + kLaneChunks * q;
    float scale[2][kLaneChunks];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      scale[r][0] = scale_of(s.scale_bits[r][0], s.nested[r][0]);
#pragma unroll
      for (int c = 1; c < kLaneChunks; ++c)
        scale[r][c] = one_scale ? scale[r][0] : scale_of(s.scale_bits[r][c], s.nested[r][c]);
    }
#pragma unroll
    for (int c = 0; c < kLaneChunks; ++c) {
      // This lane's B column: 32 elements of token g (16 words of two).
      const int chunk = first + c;
      const uint4* xs =
          token_ok && chunk < chunks ? reinterpret_cast<const uint4*>(x_row + chunk * kChunk + chunk / 2 * x_pad)
                                     : zero_x;
      uint32_t xw[16];
#pragma unroll
      for (int v = 0; v < 4; ++v) {
        const uint4 p = xs[v];
        xw[4 * v + 0] = p.x;
        xw[4 * v + 1] = p.y;
        xw[4 * v + 2] = p.z;
        xw[4 * v + 3] = p.w;
      }
      const uint32_t words[2][4] = {{s.codes[0][c].x, s.codes[0][c].y, s.codes[0][c].z, s.codes[0][c].w},
                                    {s.codes[1][c].x, s.codes[1][c].y, s.codes[1][c].z, s.codes[1][c].w}};
#pragma unroll
      for (int word = 0; word < 4; ++word) {
        // Elements 8 word + 2b, 8 word + 2b + 1 are byte b's high and low nibbles; MMA 2 word
        // takes bytes 0, 1 (elements 8 word .. + 3), MMA 2 word + 1 bytes 2, 3.
        uint32_t a[4];
        a[0] = dequant_pair<E, 0>(lane_pairs, words[0][word], scale[0][c]);
        a[1] = dequant_pair<E, 0>(lane_pairs, words[1][word], scale[1][c]);
        a[2] = dequant_pair<E, 1>(lane_pairs, words[0][word], scale[0][c]);
        a[3] = dequant_pair<E, 1>(lane_pairs, words[1][word], scale[1][c]);
        mma_16x8x16<E>(acc, a, xw[4 * word], xw[4 * word + 1]);
        a[0] = dequant_pair<E, 2>(lane_pairs, words[0][word], scale[0][c]);
        a[1] = dequant_pair<E, 2>(lane_pairs, words[1][word], scale[1][c]);
        a[2] = dequant_pair<E, 3>(lane_pairs, words[0][word], scale[0][c]);
        a[3] = dequant_pair<E, 3>(lane_pairs, words[1][word], scale[1][c]);
        mma_16x8x16<E>(acc, a, xw[4 * word + 2], xw[4 * word + 3]);
      }
    }
  };

  // The ring: step i sits in slot i % kDepth; once consumed, the slot loads step i + kDepth.
  for (int base = 0; base < warp_steps; base += kDepth) {
#pragma unroll
    for (int d = 0; d < kDepth; ++d) {
      if (base + d < warp_steps) {  // the same for every warp
        consume(ring[d], base + d);
        if (base + d + kDepth < warp_steps) load_step(ring[d], base + d + kDepth);
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
    const int n = static_cast<int>(tile) + r;
    if (n < N && t < T) {
      float sum = 0.0f;
#pragma unroll
      for (int v = 0; v < kWarps; ++v) sum += partial[v][r][t];
      if (bias != nullptr) sum += to_f32(bias[n]);
      y[static_cast<int64_t>(t) * N + n] = from_f32<E>(sum);
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
  allow_dependents();
  dependency_wait();
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

// Lets the MMA kernel take kMaxStagedXBytes of dynamic shared memory (once per process and type).
template <typename E>
void allow_staged_x() {
  static const bool done = [] {
    NIBBLE_CUDA_CHECK(cudaFuncSetAttribute(gemv_4bit_mma_kernel<E>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           kMaxStagedXBytes));
    return true;
  }();
  (void)done;
}

}  // namespace

void gemv_4bit_forward_launch(void* y, const void* x, const Dequant4bitArgs& w, int64_t N, int64_t K,
                              const void* bias, int64_t T, DType dtype, cudaStream_t stream) {
  NIBBLE_CHECK(T >= 0 && T <= kGemv4bitMaxTokens, "gemv_4bit on cuda: T = {}, expected at most {} tokens", T,
               kGemv4bitMaxTokens);
  NIBBLE_CHECK((N + kWarps - 1) / kWarps <= INT_MAX, "gemv_4bit on cuda: N = {} rows exceed the grid", N);
  if (T == 0 || N == 0) return;
  const Tables tables = tables_of(w.type);
  // The MMA kernel's 16-byte loads need every row and chunk of 32 codes on a 16-byte boundary;
  // its element offsets are 32-bit.
  const bool mma = dtype != DType::f32 && K > 0 && K % kChunk == 0 && N * K < (int64_t{1} << 31) && aligned16(w.packed) &&
                   aligned16(x);
  dispatch_activation(dtype, "gemv_4bit", [&](auto tag) {
    using E = decltype(tag);
    E* out = static_cast<E*>(y);
    const E* in = static_cast<const E*>(x);
    const E* b = static_cast<const E*>(bias);
    if constexpr (!std::is_same_v<E, float>) {
      if (mma) {
        const int64_t staged_bytes = T * staged_x_stride(K) * static_cast<int64_t>(sizeof(E));
        const bool staged = staged_bytes <= kMaxStagedXBytes;
        allow_staged_x<E>();
        const int64_t blocks = (N + kTileRows - 1) / kTileRows;
        launch_dependent(gemv_4bit_mma_kernel<E>, dim3(static_cast<unsigned>(blocks)), dim3(kThreads),
                         staged ? static_cast<size_t>(staged_bytes) : 0, stream, w, tables, static_cast<int>(N),
                         static_cast<int>(K), static_cast<int>(T), staged, out, in, b);
        return;
      }
    }
    const int64_t blocks = (N + kWarps - 1) / kWarps;
    launch_dependent(gemv_4bit_generic_kernel<E>, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, stream, w,
                     tables, N, K, static_cast<int>(T), out, in, b);
  });
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
