#include "nibble/backend/cuda/attention.cuh"

#include "nibble/backend/cuda/bad_index.h"
#include "nibble/backend/cuda/dependent_launch.cuh"
#include "nibble/backend/cuda/element.cuh"
#include "nibble/backend/cuda/flash_attention.cuh"
#include "nibble/core/cuda_check.h"

namespace nibble::cuda {

namespace {

constexpr int kThreads = 128;  // also the keys scored per step
constexpr int kWarps = kThreads / 32;
constexpr int kOutputsPerThread = kAttentionMaxHeadDim / kThreads;

// All threads of the block (Warps warps) take part; `scratch` holds one float per warp.
template <int Warps = kWarps>
__device__ float block_max(float x, float* scratch) {
  for (int offset = 16; offset > 0; offset /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
  __syncthreads();  // scratch may still be read from the previous reduction
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = x;
  __syncthreads();
  float result = scratch[0];
  for (int w = 1; w < Warps; ++w) result = fmaxf(result, scratch[w]);
  return result;
}

template <int Warps = kWarps>
__device__ float block_sum(float x, float* scratch) {
  for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  __syncthreads();
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = x;
  __syncthreads();
  float result = 0.0f;
  for (int w = 0; w < Warps; ++w) result += scratch[w];
  return result;
}

// The first key token t may see: 0 without sequence ids (one sequence, maybe a cache), else the
// start of the run of equal ids that ends at t. One thread walks back; the walk is no longer
// than the attention loop over the same keys that follows.
__device__ int64_t first_key(const int32_t* seq_ids, int64_t t, int64_t* shared) {
  if (seq_ids == nullptr) return 0;
  if (threadIdx.x == 0) {
    int64_t s = t;
    while (s > 0 && seq_ids[s - 1] == seq_ids[t]) --s;
    *shared = s;
  }
  __syncthreads();
  return *shared;
}

// Block (t, h). Query t sees keys [begin, S - T + t], or with positions [0, positions[t]] (a
// position outside [0, S) is recorded in *bad_index and the block writes nothing). Per step of
// kThreads keys: thread j scores key s0 + j, the block updates the running max m and sum l
// (online softmax: earlier terms rescaled by exp(m_old - m_new)), and thread i accumulates output
// dims i, i + kThreads, ... over the step's keys. lse (may be null) receives m + log(l) at [h, t].
template <typename T>
__global__ void attention_kernel(T* out, float* lse, const T* q, const T* k, const T* v, const int32_t* seq_ids,
                                 const int32_t* positions, unsigned long long* bad_index, int64_t T_, int64_t S,
                                 int64_t H, int64_t KVH, int64_t D, float scale) {
  __shared__ float q_row[kAttentionMaxHeadDim];
  __shared__ float p[kThreads];
  __shared__ float scratch[kWarps];
  __shared__ int64_t begin_shared;
  allow_dependents();
  dependency_wait();
  const int64_t t = blockIdx.x, h = blockIdx.y, kvh = h / (H / KVH);
  int64_t end = S - T_ + t + 1;
  if (positions != nullptr) {
    const int32_t position = positions[t];
    if (position < 0 || position >= S) {
      if (threadIdx.x == 0 && h == 0) atomicMin(bad_index, pack_bad_index(t, position));
      return;  // the whole block: t is the block's
    }
    end = position + 1;
  }
  const int64_t begin = first_key(seq_ids, t, &begin_shared);
  for (int64_t i = threadIdx.x; i < D; i += kThreads) q_row[i] = to_f32(q[(t * H + h) * D + i]);
  __syncthreads();

  float acc[kOutputsPerThread];
  for (int r = 0; r < kOutputsPerThread; ++r) acc[r] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  for (int64_t s0 = begin; s0 < end; s0 += kThreads) {
    const int64_t s = s0 + threadIdx.x;
    float score = -INFINITY;
    if (s < end) {
      const T* key = k + (s * KVH + kvh) * D;
      float dot = 0.0f;
      for (int64_t i = 0; i < D; ++i) dot += q_row[i] * to_f32(key[i]);
      score = dot * scale;
    }
    const float m_new = fmaxf(m, block_max(score, scratch));  // finite: key s0 is visible
    const float e = s < end ? expf(score - m_new) : 0.0f;
    const float rescale = expf(m - m_new);  // 0 on the first step (m = -inf)
    l = l * rescale + block_sum(e, scratch);
    p[threadIdx.x] = e;
    __syncthreads();
    const int64_t count = end - s0 < kThreads ? end - s0 : kThreads;
    for (int r = 0; r < kOutputsPerThread; ++r) {
      const int64_t i = threadIdx.x + r * kThreads;
      if (i >= D) break;
      float sum = acc[r] * rescale;
      for (int64_t j = 0; j < count; ++j) sum += p[j] * to_f32(v[((s0 + j) * KVH + kvh) * D + i]);
      acc[r] = sum;
    }
    m = m_new;
    __syncthreads();  // p is rewritten next step
  }
  for (int r = 0; r < kOutputsPerThread; ++r) {
    const int64_t i = threadIdx.x + r * kThreads;
    if (i < D) out[(t * H + h) * D + i] = from_f32<T>(acc[r] / l);
  }
  if (lse != nullptr && threadIdx.x == 0) lse[h * T_ + t] = m + logf(l);
}

// Attention over a KV cache with the queries' positions on the device (decoding: one query per
// head and up to a few thousand keys). Block (t, h) of kCachedThreads threads takes the keys in
// tiles of one key per thread: each thread scores its key with 16-byte loads of the key row (the
// D-term dot in order, as attention_kernel), the block does the online-softmax update, and then
// warp w accumulates the tile's value rows w, w + 8, ... with lane l on dims 4 l + 128 g (8-byte
// loads, coalesced across the warp); the warps' sums meet in shared memory at the end. Against
// attention_kernel, which walks the keys with one thread per output dim, this spreads the value
// pass over the block instead of making each thread wait for every key in turn.
constexpr int kCachedThreads = 256;
constexpr int kCachedWarps = kCachedThreads / 32;
constexpr int kCachedGroups = kAttentionMaxHeadDim / 128;  // 4-dim groups per lane

// The 4 elements at p as floats (p 4-element aligned).
template <typename T>
__device__ __forceinline__ void load4(const T* p, float (&x)[4]) {
  if constexpr (sizeof(T) == 4) {
    const float4 v = *reinterpret_cast<const float4*>(p);
    x[0] = v.x, x[1] = v.y, x[2] = v.z, x[3] = v.w;
  } else {
    const uint2 raw = *reinterpret_cast<const uint2*>(p);
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int c = 0; c < 4; ++c) x[c] = to_f32(e[c]);
  }
}

template <typename T>
__global__ void __launch_bounds__(kCachedThreads)
    attention_cached_kernel(T* out, const T* q, const T* k, const T* v, const int32_t* positions,
                            unsigned long long* bad_index, int64_t S, int64_t H, int64_t KVH, int64_t D, float scale) {
  constexpr int kVector = 16 / sizeof(T);  // elements per 16-byte load
  __shared__ float q_row[kAttentionMaxHeadDim];
  __shared__ float probs[kCachedThreads];
  __shared__ float partial[kCachedWarps][kAttentionMaxHeadDim];
  __shared__ float scratch[kCachedWarps];
  allow_dependents();
  dependency_wait();
  const int64_t t = blockIdx.x, h = blockIdx.y, kvh = h / (H / KVH);
  const int32_t position = positions[t];
  if (position < 0 || position >= S) {
    if (threadIdx.x == 0 && h == 0) atomicMin(bad_index, pack_bad_index(t, position));
    return;  // the whole block: t is the block's
  }
  const int64_t end = static_cast<int64_t>(position) + 1;
  for (int64_t i = threadIdx.x; i < D; i += kCachedThreads) q_row[i] = to_f32(q[(t * H + h) * D + i]);
  __syncthreads();

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t row_stride = KVH * D;
  const T* k_head = k + kvh * D;
  const T* v_head = v + kvh * D;
  float acc[kCachedGroups][4] = {};
  float m = -INFINITY, l = 0.0f;
  for (int64_t s0 = 0; s0 < end; s0 += kCachedThreads) {
    const int count = static_cast<int>(end - s0 < kCachedThreads ? end - s0 : kCachedThreads);
    float score = -INFINITY;
    if (threadIdx.x < count) {
      const T* key = k_head + (s0 + threadIdx.x) * row_stride;
      float dot = 0.0f;
#pragma unroll 4
      for (int64_t i = 0; i < D; i += kVector) {
        const uint4 raw = *reinterpret_cast<const uint4*>(key + i);
        const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
        for (int c = 0; c < kVector; ++c) dot += q_row[i + c] * to_f32(e[c]);
      }
      score = dot * scale;
    }
    const float m_new = fmaxf(m, block_max<kCachedWarps>(score, scratch));  // finite: key s0 is visible
    const float e = threadIdx.x < count ? expf(score - m_new) : 0.0f;
    const float rescale = expf(m - m_new);  // 0 on the first tile (m = -inf)
    l = l * rescale + block_sum<kCachedWarps>(e, scratch);
    probs[threadIdx.x] = e;
    __syncthreads();
#pragma unroll
    for (int g = 0; g < kCachedGroups; ++g)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[g][c] *= rescale;
#pragma unroll 4
    for (int j = warp; j < count; j += kCachedWarps) {
      const float p = probs[j];
      const T* value = v_head + (s0 + j) * row_stride;
#pragma unroll
      for (int g = 0; g < kCachedGroups; ++g) {
        const int64_t dim = 4 * lane + 128 * g;
        if (dim < D) {
          float x[4];
          load4(value + dim, x);
#pragma unroll
          for (int c = 0; c < 4; ++c) acc[g][c] += p * x[c];
        }
      }
    }
    m = m_new;
    __syncthreads();  // probs is rewritten by the next tile
  }
#pragma unroll
  for (int g = 0; g < kCachedGroups; ++g)
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int64_t dim = 4 * lane + 128 * g + c;
      if (dim < D) partial[warp][dim] = acc[g][c];
    }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < D; i += kCachedThreads) {
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kCachedWarps; ++w) sum += partial[w][i];
    out[(t * H + h) * D + i] = from_f32<T>(sum / l);
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Backward, flash-attention-2's recurrence without its tiling (correctness first): the
// probabilities are recomputed from lse, p = exp(q.k * scale - lse), and with
// delta = dout . out, ds = p * (dout . v - delta).

// Block (t, h): dq[t, h] = scale * sum over visible s of ds * k[s]; also stores delta [H, T]
// for the key-side kernel. Thread j handles key s0 + j of a step, thread i output dims i, ...
template <typename T>
__global__ void attention_dq_kernel(T* dq, float* delta_out, const T* dout, const T* q, const T* k, const T* v,
                                    const T* out, const float* lse, const int32_t* seq_ids, int64_t T_, int64_t H,
                                    int64_t KVH, int64_t D, float scale) {
  __shared__ float q_row[kAttentionMaxHeadDim];
  __shared__ float do_row[kAttentionMaxHeadDim];
  __shared__ float ds[kThreads];
  __shared__ float scratch[kWarps];
  __shared__ int64_t begin_shared;
  const int64_t t = blockIdx.x, h = blockIdx.y, kvh = h / (H / KVH), row = (t * H + h) * D;
  const int64_t begin = first_key(seq_ids, t, &begin_shared);
  float partial = 0.0f;
  for (int64_t i = threadIdx.x; i < D; i += kThreads) {
    q_row[i] = to_f32(q[row + i]);
    do_row[i] = to_f32(dout[row + i]);
    partial += do_row[i] * to_f32(out[row + i]);
  }
  const float delta = block_sum(partial, scratch);  // its __syncthreads also publishes the rows
  if (threadIdx.x == 0) delta_out[h * T_ + t] = delta;
  const float row_lse = lse[h * T_ + t];

  float acc[kOutputsPerThread];
  for (int r = 0; r < kOutputsPerThread; ++r) acc[r] = 0.0f;
  for (int64_t s0 = begin; s0 <= t; s0 += kThreads) {
    const int64_t s = s0 + threadIdx.x;
    float d_score = 0.0f;
    if (s <= t) {
      const T* key = k + (s * KVH + kvh) * D;
      const T* value = v + (s * KVH + kvh) * D;
      float qk = 0.0f, dp = 0.0f;
      for (int64_t i = 0; i < D; ++i) {
        qk += q_row[i] * to_f32(key[i]);
        dp += do_row[i] * to_f32(value[i]);
      }
      d_score = expf(qk * scale - row_lse) * (dp - delta);
    }
    ds[threadIdx.x] = d_score;
    __syncthreads();
    const int64_t count = t + 1 - s0 < kThreads ? t + 1 - s0 : kThreads;
    for (int r = 0; r < kOutputsPerThread; ++r) {
      const int64_t i = threadIdx.x + r * kThreads;
      if (i >= D) break;
      float sum = acc[r];
      for (int64_t j = 0; j < count; ++j) sum += ds[j] * to_f32(k[((s0 + j) * KVH + kvh) * D + i]);
      acc[r] = sum;
    }
    __syncthreads();  // ds is rewritten next step
  }
  for (int r = 0; r < kOutputsPerThread; ++r) {
    const int64_t i = threadIdx.x + r * kThreads;
    if (i < D) dq[row + i] = from_f32<T>(acc[r] * scale);
  }
}

// Block (s, kvh): dk[s] = scale * sum of ds * q[t] and dv[s] = sum of p * dout[t] over the query
// heads h of the group and the queries t >= s of s's sequence (which end where its run of ids
// ends). Each key is owned by one block: no atomics, a deterministic sum.
template <typename T>
__global__ void attention_dkdv_kernel(T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                                      const float* lse, const float* delta, const int32_t* seq_ids, int64_t T_,
                                      int64_t H, int64_t KVH, int64_t D, float scale) {
  __shared__ float k_row[kAttentionMaxHeadDim];
  __shared__ float v_row[kAttentionMaxHeadDim];
  __shared__ float p[kThreads];
  __shared__ float ds[kThreads];
  __shared__ int64_t end_shared;
  const int64_t s = blockIdx.x, kvh = blockIdx.y, group = H / KVH, row = (s * KVH + kvh) * D;
  if (threadIdx.x == 0) {
    int64_t e = s + 1;
    while (e < T_ && seq_ids[e] == seq_ids[s]) ++e;
    end_shared = e;
  }
  for (int64_t i = threadIdx.x; i < D; i += kThreads) {
    k_row[i] = to_f32(k[row + i]);
    v_row[i] = to_f32(v[row + i]);
  }
  __syncthreads();
  const int64_t end = end_shared;

  float dk_acc[kOutputsPerThread], dv_acc[kOutputsPerThread];
  for (int r = 0; r < kOutputsPerThread; ++r) dk_acc[r] = dv_acc[r] = 0.0f;
  for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
    for (int64_t t0 = s; t0 < end; t0 += kThreads) {
      const int64_t t = t0 + threadIdx.x;
      float prob = 0.0f, d_score = 0.0f;
      if (t < end) {
        const T* query = q + (t * H + h) * D;
        const T* grad = dout + (t * H + h) * D;
        float qk = 0.0f, dp = 0.0f;
        for (int64_t i = 0; i < D; ++i) {
          qk += to_f32(query[i]) * k_row[i];
          dp += to_f32(grad[i]) * v_row[i];
        }
        prob = expf(qk * scale - lse[h * T_ + t]);
        d_score = prob * (dp - delta[h * T_ + t]);
      }
      p[threadIdx.x] = prob;
      ds[threadIdx.x] = d_score;
      __syncthreads();
      const int64_t count = end - t0 < kThreads ? end - t0 : kThreads;
      for (int r = 0; r < kOutputsPerThread; ++r) {
        const int64_t i = threadIdx.x + r * kThreads;
        if (i >= D) break;
        float k_sum = dk_acc[r], v_sum = dv_acc[r];
        for (int64_t j = 0; j < count; ++j) {
          const int64_t at = ((t0 + j) * H + h) * D + i;
          k_sum += ds[j] * to_f32(q[at]);
          v_sum += p[j] * to_f32(dout[at]);
        }
        dk_acc[r] = k_sum;
        dv_acc[r] = v_sum;
      }
      __syncthreads();  // p and ds are rewritten next step
    }
  }
  for (int r = 0; r < kOutputsPerThread; ++r) {
    const int64_t i = threadIdx.x + r * kThreads;
    if (i < D) {
      dk[row + i] = from_f32<T>(dk_acc[r] * scale);
      dv[row + i] = from_f32<T>(dv_acc[r]);
    }
  }
}

}  // namespace

namespace {

void check_grid(const char* op, int64_t D, int64_t rows, int64_t heads) {
  NIBBLE_CHECK(D <= kAttentionMaxHeadDim, "{} on cuda: head dim {} is over the supported {}", op, D,
               kAttentionMaxHeadDim);
  NIBBLE_CHECK(rows <= 0x7fffffff && heads <= 65535, "{} on cuda: {} rows and {} heads exceed the grid", op, rows,
               heads);
}

}  // namespace

void attention_forward_launch(void* out, float* lse, const void* q, const void* k, const void* v,
                              const int32_t* seq_ids, int64_t T, int64_t S, int64_t H, int64_t KVH, int64_t D,
                              DType dtype, cudaStream_t stream) {
  attention_cached_forward_launch(out, lse, q, k, v, seq_ids, nullptr, nullptr, T, S, H, KVH, D, dtype, stream);
}

void attention_cached_forward_launch(void* out, float* lse, const void* q, const void* k, const void* v,
                                     const int32_t* seq_ids, const int32_t* positions, unsigned long long* bad_index,
                                     int64_t T, int64_t S, int64_t H, int64_t KVH, int64_t D, DType dtype,
                                     cudaStream_t stream) {
  const char* op = positions != nullptr  ? "attention_cached_forward"
                   : seq_ids != nullptr ? "attention_packed_forward"
                                        : "attention_forward";
  check_grid(op, D, T, H);
  if (T == 0 || H == 0) return;
  if (D == 0) {  // softmax over empty dot products: each row's lse is log(visible keys)
    NIBBLE_CHECK(lse == nullptr, "{} on cuda: head dim 0 with an lse output", op);
    return;
  }
  if (positions == nullptr && flash_attention_applies(dtype, D)) {
    flash_attention_forward_launch(out, lse, q, k, v, seq_ids, T, S, H, KVH, D, stream);
    return;
  }
  const float scale = 1.0f / sqrtf(static_cast<float>(D));
  const dim3 grid(static_cast<unsigned int>(T), static_cast<unsigned int>(H));
  // The key-tile kernel needs whole 16-byte vectors per key row (D a multiple of 8 for 16-bit
  // dtypes, of 4 for F32) and no lse or sequence ids (decoding does not ask for them).
  const bool key_tiles = positions != nullptr && lse == nullptr && seq_ids == nullptr &&
                         (D * static_cast<int64_t>(dtype_size(dtype))) % 16 == 0 && aligned16(k) && aligned16(v);
  dispatch_activation(dtype, op, [&](auto tag) {
    using E = decltype(tag);
    if (key_tiles) {
      launch_dependent(attention_cached_kernel<E>, grid, dim3(kCachedThreads), 0, stream, static_cast<E*>(out),
                       static_cast<const E*>(q), static_cast<const E*>(k), static_cast<const E*>(v), positions,
                       bad_index, S, H, KVH, D, scale);
      return;
    }
    launch_dependent(attention_kernel<E>, grid, dim3(kThreads), 0, stream, static_cast<E*>(out), lse,
                     static_cast<const E*>(q), static_cast<const E*>(k), static_cast<const E*>(v), seq_ids, positions,
                     bad_index, T, S, H, KVH, D, scale);
  });
}

namespace {

// One thread per element of a key row and a value row of one token.
template <typename T>
__global__ void kv_cache_write_kernel(T* k_cache, T* v_cache, const T* k, const T* v, const int32_t* positions,
                                      int64_t T_, int64_t row, int64_t P, unsigned long long* bad_index) {
  allow_dependents();
  dependency_wait();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < T_ * row; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i / row, c = i % row;
    const int32_t position = positions[t];
    if (position < 0 || position >= P) {
      if (c == 0) atomicMin(bad_index, pack_bad_index(t, position));
      continue;
    }
    k_cache[position * row + c] = k[i];
    v_cache[position * row + c] = v[i];
  }
}

}  // namespace

void kv_cache_write_launch(void* k_cache, void* v_cache, const void* k, const void* v, const int32_t* positions,
                           int64_t T, int64_t P, int64_t KVH, int64_t D, DType dtype, unsigned long long* bad_index,
                           cudaStream_t stream) {
  const int64_t row = KVH * D;
  if (T * row == 0) return;
  dispatch_activation(dtype, "kv_cache_write", [&](auto tag) {
    using E = decltype(tag);
    launch_dependent(kv_cache_write_kernel<E>, dim3(grid_for(T * row, kThreads)), dim3(kThreads), 0, stream,
                     static_cast<E*>(k_cache), static_cast<E*>(v_cache), static_cast<const E*>(k),
                     static_cast<const E*>(v), positions, T, row, P, bad_index);
  });
}

void attention_backward_launch(void* dq, void* dk, void* dv, float* delta, const void* dout, const void* q,
                               const void* k, const void* v, const void* out, const float* lse,
                               const int32_t* seq_ids, int64_t T, int64_t H, int64_t KVH, int64_t D, DType dtype,
                               cudaStream_t stream) {
  const char* op = "attention_packed_backward";
  check_grid(op, D, T, H);
  if (T == 0 || H == 0 || D == 0) return;
  if (flash_attention_applies(dtype, D)) {
    flash_attention_backward_launch(dq, dk, dv, delta, dout, q, k, v, out, lse, seq_ids, T, H, KVH, D, stream);
    return;
  }
  const float scale = 1.0f / sqrtf(static_cast<float>(D));
  dispatch_activation(dtype, op, [&](auto tag) {
    using E = decltype(tag);
    attention_dq_kernel<E><<<dim3(static_cast<unsigned int>(T), static_cast<unsigned int>(H)), kThreads, 0, stream>>>(
        static_cast<E*>(dq), delta, static_cast<const E*>(dout), static_cast<const E*>(q), static_cast<const E*>(k),
        static_cast<const E*>(v), static_cast<const E*>(out), lse, seq_ids, T, H, KVH, D, scale);
    NIBBLE_CUDA_CHECK_LAUNCH();
    attention_dkdv_kernel<E>
        <<<dim3(static_cast<unsigned int>(T), static_cast<unsigned int>(KVH)), kThreads, 0, stream>>>(
            static_cast<E*>(dk), static_cast<E*>(dv), static_cast<const E*>(dout), static_cast<const E*>(q),
            static_cast<const E*>(k), static_cast<const E*>(v), lse, delta, seq_ids, T, H, KVH, D, scale);
    NIBBLE_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace nibble::cuda
