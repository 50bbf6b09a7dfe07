#include "nibble/backend/cuda/flash_attention.cuh"

#include <cuda_bf16.h>
#include <mma.h>

#include <cstdint>

#include "nibble/backend/cuda/dependent_launch.cuh"
#include "nibble/core/cuda_check.h"
#include "nibble/core/error.h"

namespace nibble::cuda {

namespace {

using bf16 = __nv_bfloat16;
namespace wmma = nvcuda::wmma;

// Tiles of 64 queries by 64 keys; 4 warps, warp w owning rows 16 w .. 16 w + 15 of the block's
// own tile (queries in the forward and dq kernels, keys in the dk/dv kernel) all the way through,
// so between the block-wide tile loads a warp only waits for itself.
constexpr int kTile = 64;
constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kScoreLd = kTile + 4;  // floats; the pads move rows off the same banks
constexpr int kProbLd = kTile + 8;   // bf16

template <int DP>
struct Layout {
  static constexpr int kRowLd = DP + 8;  // bf16 row of a q/k/v/dout tile
  static constexpr int kAccLd = DP + 4;  // float row of an output tile
  static constexpr int kRowTile = kTile * kRowLd;        // bf16 elements
  static constexpr int kScoreTile = kTile * kScoreLd;    // floats
  static constexpr int kProbTile = kTile * kProbLd;      // bf16 elements
  static constexpr int kAccTile = kTile * kAccLd;        // floats
};

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major>;
using FragBRow = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major>;
using FragBCol = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major>;
using FragAcc = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// Rows row0 .. row0 + kTile - 1 of a [rows, stride] bf16 matrix (columns 0 .. D - 1 of each) into
// a [kTile, DP + 8] shared tile, zeros past the last row and past column D (zeros add nothing
// to the products). `vector`: rows are 16-byte aligned and D a multiple of 8.
template <int DP>
__device__ void load_rows(bf16* tile, const bf16* src, int64_t row0, int64_t rows, int64_t stride, int64_t D,
                          bool vector) {
  constexpr int kChunks = DP / 8;
  for (int i = threadIdx.x; i < kTile * kChunks; i += kThreads) {
    const int r = i / kChunks, c = (i % kChunks) * 8;
    const int64_t row = row0 + r;
    uint4 value = make_uint4(0, 0, 0, 0);
    if (row < rows && c < D) {
      const bf16* from = src + row * stride + c;
      if (vector) {
        value = *reinterpret_cast<const uint4*>(from);
      } else {
        bf16* parts = reinterpret_cast<bf16*>(&value);
        for (int e = 0; e < 8 && c + e < D; ++e) parts[e] = from[e];
      }
    }
    *reinterpret_cast<uint4*>(tile + r * Layout<DP>::kRowLd + c) = value;
  }
}

// x as hi + lo, both bf16: ~16 significant bits, so a product with a bf16 operand on the tensor
// cores (two MMAs) keeps the fp32 path's accuracy instead of rounding x to 8 bits.
__device__ __forceinline__ void split(float x, bf16* hi, bf16* lo) {
  const bf16 h = __float2bfloat16_rn(x);
  *hi = h;
  *lo = __float2bfloat16_rn(x - __bfloat162float(h));
}

// [16, 64] (this warp's rows of a score tile) = a[16, DP] @ b[64, DP]^T, into `scores` (row ld kScoreLd).
template <int DP>
__device__ void warp_scores(float* scores, const bf16* a, const bf16* b) {
  constexpr int ld = Layout<DP>::kRowLd;
  for (int n = 0; n < kTile / 16; ++n) {
    FragAcc acc;
    wmma::fill_fragment(acc, 0.0f);
#pragma unroll
    for (int kk = 0; kk < DP / 16; ++kk) {
      FragA fa;
      FragBCol fb;
      wmma::load_matrix_sync(fa, a + kk * 16, ld);
      wmma::load_matrix_sync(fb, b + n * 16 * ld + kk * 16, ld);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(scores + n * 16, acc, kScoreLd, wmma::mem_row_major);
  }
}

// acc[n] += (hi + lo)[16, 64] @ b[64, DP] columns 16 n .. 16 n + 15.
template <int DP>
__device__ void warp_accumulate(FragAcc (&acc)[DP / 16], const bf16* hi, const bf16* lo, const bf16* b) {
  constexpr int ld = Layout<DP>::kRowLd;
#pragma unroll
  for (int kk = 0; kk < kTile / 16; ++kk) {
    FragA fhi, flo;
    wmma::load_matrix_sync(fhi, hi + kk * 16, kProbLd);
    wmma::load_matrix_sync(flo, lo + kk * 16, kProbLd);
#pragma unroll
    for (int n = 0; n < DP / 16; ++n) {
      FragBRow fb;
      wmma::load_matrix_sync(fb, b + kk * 16 * ld + n * 16, ld);
      wmma::mma_sync(acc[n], fhi, fb, acc[n]);
      wmma::mma_sync(acc[n], flo, fb, acc[n]);
    }
  }
}

// The first token of t0's run of equal ids (0 without ids), the whole block scanning back
// kThreads tokens a step.
__device__ int64_t run_begin(const int32_t* seq_ids, int64_t t0, int* shared_stop) {
  if (seq_ids == nullptr) return 0;
  const int32_t id = seq_ids[t0];
  int64_t start = t0;
  for (;;) {
    if (threadIdx.x == 0) *shared_stop = kThreads;
    __syncthreads();
    const int64_t s = start - 1 - threadIdx.x;
    if (s < 0 || seq_ids[s] != id) atomicMin(shared_stop, static_cast<int>(threadIdx.x));
    __syncthreads();
    const int stop = *shared_stop;
    __syncthreads();  // shared_stop is reset next step
    if (stop < kThreads) return start - stop;
    start -= kThreads;
  }
}

// One past the last token of t0's run (T without ids), scanning forward.
__device__ int64_t run_end(const int32_t* seq_ids, int64_t t0, int64_t T, int* shared_stop) {
  if (seq_ids == nullptr) return T;
  const int32_t id = seq_ids[t0];
  int64_t start = t0 + 1;
  for (;;) {
    if (threadIdx.x == 0) *shared_stop = kThreads;
    __syncthreads();
    const int64_t s = start + threadIdx.x;
    if (s >= T || seq_ids[s] != id) atomicMin(shared_stop, static_cast<int>(threadIdx.x));
    __syncthreads();
    const int stop = *shared_stop;
    __syncthreads();
    if (stop < kThreads) return start + stop;
    start += kThreads;
  }
}

// Each query row's first visible key: row_begin[r] for t = q0 + r. Runs are maximal, so a row
// whose walk back reaches q0 with q0's id shares q0's begin.
__device__ void query_begins(int64_t* row_begin, const int32_t* seq_ids, int64_t q0, int64_t T, int* shared_stop) {
  const int64_t first = run_begin(seq_ids, q0, shared_stop);
  if (threadIdx.x < kTile) {
    const int64_t t = q0 + threadIdx.x;
    int64_t b = first;
    if (seq_ids != nullptr && t < T) {
      int64_t s = t;
      while (s > q0 && seq_ids[s - 1] == seq_ids[t]) --s;
      b = s > q0 || seq_ids[q0] != seq_ids[t] ? s : first;
    }
    row_begin[threadIdx.x] = b;
  }
}

// Forward, block (query tile, h): flash-attention-2. Per key tile the warp scores its 16 queries
// (tensor cores, fp32 accumulation), updates the running max m and sum l per row (earlier terms
// rescaled by exp(m_old - m_new)), and adds P @ V with P split into two bf16 terms. Query t sees
// keys [row_begin, t + S - T]; only key tiles from the tile's first begin to its last query's key
// are visited, so tiles above the diagonal and before the sequence are skipped.
template <int DP>
__global__ void __launch_bounds__(kThreads)
    flash_forward_kernel(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, const int32_t* seq_ids,
                         int64_t T, int64_t S, int64_t H, int64_t KVH, int64_t D, float scale, bool vector) {
  using L = Layout<DP>;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* q_s = reinterpret_cast<bf16*>(smem);
  bf16* k_s = q_s + L::kRowTile;
  bf16* v_s = k_s + L::kRowTile;
  float* s_f = reinterpret_cast<float*>(v_s + L::kRowTile);
  bf16* p_hi = reinterpret_cast<bf16*>(s_f + L::kScoreTile);
  bf16* p_lo = p_hi + L::kProbTile;
  float* o_f = reinterpret_cast<float*>(p_lo + L::kProbTile);
  __shared__ int64_t row_begin[kTile];
  __shared__ int stop;
  allow_dependents();
  dependency_wait();

  const int64_t q0 = int64_t(blockIdx.x) * kTile, h = blockIdx.y, kvh = h / (H / KVH), offset = S - T;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  query_begins(row_begin, seq_ids, q0, T, &stop);
  load_rows<DP>(q_s, q + h * D, q0, T, H * D, D, vector);
  for (int i = threadIdx.x; i < L::kAccTile; i += kThreads) o_f[i] = 0.0f;
  __syncthreads();

  const int r = 16 * warp + lane / 2, half = lane % 2;  // this lane's row and half of it
  const int64_t t = q0 + r, begin = row_begin[r];
  const int64_t last_key = (q0 + kTile - 1 < T ? q0 + kTile - 1 : T - 1) + offset;
  float m = -INFINITY, l = 0.0f;
  for (int64_t k0 = row_begin[0]; k0 <= last_key; k0 += kTile) {
    __syncthreads();  // the previous tile is no longer read
    load_rows<DP>(k_s, k + kvh * D, k0, S, KVH * D, D, vector);
    load_rows<DP>(v_s, v + kvh * D, k0, S, KVH * D, D, vector);
    __syncthreads();
    float* scores = s_f + 16 * warp * kScoreLd;
    warp_scores<DP>(scores, q_s + 16 * warp * L::kRowLd, k_s);
    __syncwarp();

    float x[kTile / 2], tile_max = -INFINITY;
#pragma unroll
    for (int c = 0; c < kTile / 2; ++c) {
      const int col = half * (kTile / 2) + c;
      const int64_t s = k0 + col;
      const bool visible = t < T && s >= begin && s <= t + offset;
      x[c] = visible ? s_f[r * kScoreLd + col] * scale : -INFINITY;
      tile_max = fmaxf(tile_max, x[c]);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    const float m_new = fmaxf(m, tile_max);
    const bool none = m_new == -INFINITY;  // no visible key yet: p = 0, nothing to rescale
    const float rescale = none ? 1.0f : expf(m - m_new);
    float sum = 0.0f;
#pragma unroll
    for (int c = 0; c < kTile / 2; ++c) {
      const int col = half * (kTile / 2) + c;
      const float p = none ? 0.0f : expf(x[c] - m_new);
      sum += p;
      split(p, &p_hi[r * kProbLd + col], &p_lo[r * kProbLd + col]);
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    l = l * rescale + sum;
    m = m_new;
    for (int c = half * (DP / 2); c < (half + 1) * (DP / 2); ++c) o_f[r * L::kAccLd + c] *= rescale;
    __syncwarp();

    FragAcc acc[DP / 16];
#pragma unroll
    for (int n = 0; n < DP / 16; ++n)
      wmma::load_matrix_sync(acc[n], o_f + 16 * warp * L::kAccLd + n * 16, L::kAccLd, wmma::mem_row_major);
    warp_accumulate<DP>(acc, p_hi + 16 * warp * kProbLd, p_lo + 16 * warp * kProbLd, v_s);
#pragma unroll
    for (int n = 0; n < DP / 16; ++n)
      wmma::store_matrix_sync(o_f + 16 * warp * L::kAccLd + n * 16, acc[n], L::kAccLd, wmma::mem_row_major);
    __syncwarp();
  }
  if (t < T) {
    for (int64_t c = half; c < D; c += 2) out[(t * H + h) * D + c] = __float2bfloat16_rn(o_f[r * L::kAccLd + c] / l);
    if (lse != nullptr && half == 0) lse[h * T + t] = m + logf(l);
  }
}

// delta[h, t] = dout[t, h] . out[t, h] in fp32: one warp per row.
__global__ void flash_delta_kernel(float* delta, const bf16* dout, const bf16* out, int64_t T, int64_t H, int64_t D) {
  const int64_t row = (int64_t(blockIdx.x) * kThreads + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= T * H) return;
  float sum = 0.0f;
  for (int64_t i = lane; i < D; i += 32)
    sum += __bfloat162float(dout[row * D + i]) * __bfloat162float(out[row * D + i]);
  for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (lane == 0) delta[(row % H) * T + row / H] = sum;
}

// Block (query tile, h): dq = scale * dS @ K over the visible key tiles, with P recomputed from
// lse and dS = P * (dout . v - delta); scores and dout . v on the tensor cores.
template <int DP>
__global__ void __launch_bounds__(kThreads)
    flash_dq_kernel(bf16* dq, const bf16* dout, const bf16* q, const bf16* k, const bf16* v, const float* lse,
                    const float* delta, const int32_t* seq_ids, int64_t T, int64_t H, int64_t KVH, int64_t D,
                    float scale, bool vector) {
  using L = Layout<DP>;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* q_s = reinterpret_cast<bf16*>(smem);
  bf16* do_s = q_s + L::kRowTile;
  bf16* k_s = do_s + L::kRowTile;
  bf16* v_s = k_s + L::kRowTile;
  float* s_f = reinterpret_cast<float*>(v_s + L::kRowTile);
  float* dp_f = s_f + L::kScoreTile;
  bf16* ds_hi = reinterpret_cast<bf16*>(dp_f + L::kScoreTile);
  bf16* ds_lo = ds_hi + L::kProbTile;
  __shared__ int64_t row_begin[kTile];
  __shared__ int stop;

  const int64_t q0 = int64_t(blockIdx.x) * kTile, h = blockIdx.y, kvh = h / (H / KVH);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  query_begins(row_begin, seq_ids, q0, T, &stop);
  load_rows<DP>(q_s, q + h * D, q0, T, H * D, D, vector);
  load_rows<DP>(do_s, dout + h * D, q0, T, H * D, D, vector);
  __syncthreads();

  const int r = 16 * warp + lane / 2, half = lane % 2;
  const int64_t t = q0 + r, begin = row_begin[r];
  const float row_lse = t < T ? lse[h * T + t] : 0.0f, row_delta = t < T ? delta[h * T + t] : 0.0f;
  const int64_t last_key = q0 + kTile - 1 < T ? q0 + kTile - 1 : T - 1;
  FragAcc acc[DP / 16];
#pragma unroll
  for (int n = 0; n < DP / 16; ++n) wmma::fill_fragment(acc[n], 0.0f);
  for (int64_t k0 = row_begin[0]; k0 <= last_key; k0 += kTile) {
    __syncthreads();
    load_rows<DP>(k_s, k + kvh * D, k0, T, KVH * D, D, vector);
    load_rows<DP>(v_s, v + kvh * D, k0, T, KVH * D, D, vector);
    __syncthreads();
    warp_scores<DP>(s_f + 16 * warp * kScoreLd, q_s + 16 * warp * L::kRowLd, k_s);
    warp_scores<DP>(dp_f + 16 * warp * kScoreLd, do_s + 16 * warp * L::kRowLd, v_s);
    __syncwarp();
#pragma unroll 4
    for (int c = 0; c < kTile / 2; ++c) {
      const int col = half * (kTile / 2) + c;
      const int64_t s = k0 + col;
      float ds = 0.0f;
      if (t < T && s >= begin && s <= t) {
        const float p = expf(s_f[r * kScoreLd + col] * scale - row_lse);
        ds = p * (dp_f[r * kScoreLd + col] - row_delta);
      }
      split(ds, &ds_hi[r * kProbLd + col], &ds_lo[r * kProbLd + col]);
    }
    __syncwarp();
    warp_accumulate<DP>(acc, ds_hi + 16 * warp * kProbLd, ds_lo + 16 * warp * kProbLd, k_s);
  }
  __syncthreads();  // k_s and v_s become the output tile
  float* out_f = reinterpret_cast<float*>(k_s);
#pragma unroll
  for (int n = 0; n < DP / 16; ++n)
    wmma::store_matrix_sync(out_f + 16 * warp * L::kAccLd + n * 16, acc[n], L::kAccLd, wmma::mem_row_major);
  __syncwarp();
  if (t < T)
    for (int64_t c = half; c < D; c += 2)
      dq[(t * H + h) * D + c] = __float2bfloat16_rn(out_f[r * L::kAccLd + c] * scale);
}

// Block (key tile, kvh): dk = scale * dS^T @ Q and dv = P^T @ dout over the query heads of the
// group and the query tiles from the key tile's first key to the end of its last key's run.
// Each key is owned by one block: no atomics, a deterministic sum.
template <int DP>
__global__ void __launch_bounds__(kThreads)
    flash_dkdv_kernel(bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                      const float* lse, const float* delta, const int32_t* seq_ids, int64_t T, int64_t H,
                      int64_t KVH, int64_t D, float scale, bool vector) {
  using L = Layout<DP>;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* k_s = reinterpret_cast<bf16*>(smem);
  bf16* v_s = k_s + L::kRowTile;
  bf16* q_s = v_s + L::kRowTile;
  bf16* do_s = q_s + L::kRowTile;
  float* s_f = reinterpret_cast<float*>(do_s + L::kRowTile);
  float* dp_f = s_f + L::kScoreTile;
  bf16* p_hi = reinterpret_cast<bf16*>(dp_f + L::kScoreTile);
  bf16* p_lo = p_hi + L::kProbTile;
  bf16* ds_hi = p_lo + L::kProbTile;
  bf16* ds_lo = ds_hi + L::kProbTile;
  __shared__ int64_t key_end[kTile];
  __shared__ float lse_s[kTile], delta_s[kTile];
  __shared__ int stop;

  const int64_t s0 = int64_t(blockIdx.x) * kTile, kvh = blockIdx.y, group = H / KVH;
  const int64_t last = s0 + kTile - 1 < T ? s0 + kTile - 1 : T - 1;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // One past each key's run; a key whose walk forward reaches the tile's last key shares its end.
  const int64_t last_end = run_end(seq_ids, last, T, &stop);
  if (threadIdx.x < kTile) {
    const int64_t s = s0 + threadIdx.x;
    int64_t e = last_end;
    if (seq_ids != nullptr && s < last) {
      int64_t u = s + 1;
      while (u <= last && seq_ids[u] == seq_ids[s]) ++u;
      e = u <= last || seq_ids[last] != seq_ids[s] ? u : last_end;
    }
    key_end[threadIdx.x] = e;
  }
  load_rows<DP>(k_s, k + kvh * D, s0, T, KVH * D, D, vector);
  load_rows<DP>(v_s, v + kvh * D, s0, T, KVH * D, D, vector);
  __syncthreads();

  const int r = 16 * warp + lane / 2, half = lane % 2;  // this lane's key row and half of it
  const int64_t s = s0 + r, end = key_end[r];
  FragAcc dk_acc[DP / 16], dv_acc[DP / 16];
#pragma unroll
  for (int n = 0; n < DP / 16; ++n) {
    wmma::fill_fragment(dk_acc[n], 0.0f);
    wmma::fill_fragment(dv_acc[n], 0.0f);
  }
  for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
    for (int64_t t0 = s0; t0 < last_end; t0 += kTile) {
      __syncthreads();
      load_rows<DP>(q_s, q + h * D, t0, T, H * D, D, vector);
      load_rows<DP>(do_s, dout + h * D, t0, T, H * D, D, vector);
      if (threadIdx.x < kTile) {
        const int64_t t = t0 + threadIdx.x;
        lse_s[threadIdx.x] = t < T ? lse[h * T + t] : 0.0f;
        delta_s[threadIdx.x] = t < T ? delta[h * T + t] : 0.0f;
      }
      __syncthreads();
      warp_scores<DP>(s_f + 16 * warp * kScoreLd, k_s + 16 * warp * L::kRowLd, q_s);
      warp_scores<DP>(dp_f + 16 * warp * kScoreLd, v_s + 16 * warp * L::kRowLd, do_s);
      __syncwarp();
#pragma unroll 4
      for (int c = 0; c < kTile / 2; ++c) {
        const int col = half * (kTile / 2) + c;
        const int64_t t = t0 + col;
        float p = 0.0f, ds = 0.0f;
        if (s <= last && t >= s && t < end) {
          p = expf(s_f[r * kScoreLd + col] * scale - lse_s[col]);
          ds = p * (dp_f[r * kScoreLd + col] - delta_s[col]);
        }
        split(p, &p_hi[r * kProbLd + col], &p_lo[r * kProbLd + col]);
        split(ds, &ds_hi[r * kProbLd + col], &ds_lo[r * kProbLd + col]);
      }
      __syncwarp();
      warp_accumulate<DP>(dv_acc, p_hi + 16 * warp * kProbLd, p_lo + 16 * warp * kProbLd, do_s);
      warp_accumulate<DP>(dk_acc, ds_hi + 16 * warp * kProbLd, ds_lo + 16 * warp * kProbLd, q_s);
    }
  }
  __syncthreads();  // q_s and do_s become the output tile
  float* out_f = reinterpret_cast<float*>(q_s);
  for (int pass = 0; pass < 2; ++pass) {
#pragma unroll
    for (int n = 0; n < DP / 16; ++n)
      wmma::store_matrix_sync(out_f + 16 * warp * L::kAccLd + n * 16, pass == 0 ? dk_acc[n] : dv_acc[n], L::kAccLd,
                              wmma::mem_row_major);
    __syncwarp();
    if (s <= last) {
      bf16* to = (pass == 0 ? dk : dv) + (s * KVH + kvh) * D;
      const float factor = pass == 0 ? scale : 1.0f;
      for (int64_t c = half; c < D; c += 2) to[c] = __float2bfloat16_rn(out_f[r * L::kAccLd + c] * factor);
    }
    __syncwarp();
  }
}

template <int DP>
constexpr size_t forward_smem() {
  using L = Layout<DP>;
  return 3 * L::kRowTile * sizeof(bf16) + L::kScoreTile * sizeof(float) + 2 * L::kProbTile * sizeof(bf16) +
         L::kAccTile * sizeof(float);
}
template <int DP>
constexpr size_t dq_smem() {
  using L = Layout<DP>;
  return 4 * L::kRowTile * sizeof(bf16) + 2 * L::kScoreTile * sizeof(float) + 2 * L::kProbTile * sizeof(bf16);
}
template <int DP>
constexpr size_t dkdv_smem() {
  using L = Layout<DP>;
  return 4 * L::kRowTile * sizeof(bf16) + 2 * L::kScoreTile * sizeof(float) + 4 * L::kProbTile * sizeof(bf16);
}
// The output tiles reuse two row tiles.
static_assert(2 * Layout<128>::kRowTile * sizeof(bf16) >= Layout<128>::kAccTile * sizeof(float), "output tile");
static_assert(2 * Layout<64>::kRowTile * sizeof(bf16) >= Layout<64>::kAccTile * sizeof(float), "output tile");

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Over 48 KiB of dynamic shared memory needs an opt-in, once per kernel (not a stream operation,
// so also fine while a graph is being captured).
template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  NIBBLE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

template <int DP>
void forward(void* out, float* lse, const void* q, const void* k, const void* v, const int32_t* seq_ids, int64_t T,
             int64_t S, int64_t H, int64_t KVH, int64_t D, bool vector, cudaStream_t stream) {
  const size_t smem = forward_smem<DP>();
  allow_smem(flash_forward_kernel<DP>, smem);
  const dim3 grid(static_cast<unsigned int>((T + kTile - 1) / kTile), static_cast<unsigned int>(H));
  launch_dependent(flash_forward_kernel<DP>, grid, dim3(kThreads), smem, stream, static_cast<bf16*>(out), lse,
                   static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v), seq_ids, T, S,
                   H, KVH, D, 1.0f / sqrtf(static_cast<float>(D)), vector);
}

template <int DP>
void backward(void* dq, void* dk, void* dv, float* delta, const void* dout, const void* q, const void* k,
              const void* v, const void* out, const float* lse, const int32_t* seq_ids, int64_t T, int64_t H,
              int64_t KVH, int64_t D, bool vector, cudaStream_t stream) {
  const float scale = 1.0f / sqrtf(static_cast<float>(D));
  const int64_t rows = T * H;
  flash_delta_kernel<<<static_cast<unsigned int>((rows * 32 + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      delta, static_cast<const bf16*>(dout), static_cast<const bf16*>(out), T, H, D);
  NIBBLE_CUDA_CHECK_LAUNCH();
  const unsigned int tiles = static_cast<unsigned int>((T + kTile - 1) / kTile);
  allow_smem(flash_dq_kernel<DP>, dq_smem<DP>());
  flash_dq_kernel<DP><<<dim3(tiles, static_cast<unsigned int>(H)), kThreads, dq_smem<DP>(), stream>>>(
      static_cast<bf16*>(dq), static_cast<const bf16*>(dout), static_cast<const bf16*>(q),
      static_cast<const bf16*>(k), static_cast<const bf16*>(v), lse, delta, seq_ids, T, H, KVH, D, scale, vector);
  NIBBLE_CUDA_CHECK_LAUNCH();
  allow_smem(flash_dkdv_kernel<DP>, dkdv_smem<DP>());
  flash_dkdv_kernel<DP><<<dim3(tiles, static_cast<unsigned int>(KVH)), kThreads, dkdv_smem<DP>(), stream>>>(
      static_cast<bf16*>(dk), static_cast<bf16*>(dv), static_cast<const bf16*>(dout), static_cast<const bf16*>(q),
      static_cast<const bf16*>(k), static_cast<const bf16*>(v), lse, delta, seq_ids, T, H, KVH, D, scale, vector);
  NIBBLE_CUDA_CHECK_LAUNCH();
}

}  // namespace

bool flash_attention_applies(DType dtype, int64_t D) {
  return dtype == DType::bf16 && D > 0 && D <= kFlashMaxHeadDim;
}

void flash_attention_forward_launch(void* out, float* lse, const void* q, const void* k, const void* v,
                                    const int32_t* seq_ids, int64_t T, int64_t S, int64_t H, int64_t KVH, int64_t D,
                                    cudaStream_t stream) {
  const bool vector = D % 8 == 0 && aligned16(q) && aligned16(k) && aligned16(v);
  if (D <= 64)
    forward<64>(out, lse, q, k, v, seq_ids, T, S, H, KVH, D, vector, stream);
  else
    forward<128>(out, lse, q, k, v, seq_ids, T, S, H, KVH, D, vector, stream);
}

void flash_attention_backward_launch(void* dq, void* dk, void* dv, float* delta, const void* dout, const void* q,
                                     const void* k, const void* v, const void* out, const float* lse,
                                     const int32_t* seq_ids, int64_t T, int64_t H, int64_t KVH, int64_t D,
                                     cudaStream_t stream) {
  const bool vector = D % 8 == 0 && aligned16(q) && aligned16(k) && aligned16(v) && aligned16(dout);
  if (D <= 64)
    backward<64>(dq, dk, dv, delta, dout, q, k, v, out, lse, seq_ids, T, H, KVH, D, vector, stream);
  else
    backward<128>(dq, dk, dv, delta, dout, q, k, v, out, lse, seq_ids, T, H, KVH, D, vector, stream);
}

}  // namespace nibble::cuda
