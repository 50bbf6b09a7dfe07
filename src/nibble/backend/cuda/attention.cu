#include "nibble/backend/cuda/attention.cuh"

#include "nibble/backend/cuda/element.cuh"
#include "nibble/core/cuda_check.h"

namespace nibble::cuda {

namespace {

constexpr int kThreads = 128;  // also the keys scored per step
constexpr int kWarps = kThreads / 32;
constexpr int kOutputsPerThread = kAttentionMaxHeadDim / kThreads;

// All threads of the block take part; `scratch` holds one float per warp.
__device__ float block_max(float x, float* scratch) {
  for (int offset = 16; offset > 0; offset /= 2) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
  __syncthreads();  // scratch may still be read from the previous reduction
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = x;
  __syncthreads();
  float result = scratch[0];
  for (int w = 1; w < kWarps; ++w) result = fmaxf(result, scratch[w]);
  return result;
}

__device__ float block_sum(float x, float* scratch) {
  for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
  __syncthreads();
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = x;
  __syncthreads();
  float result = 0.0f;
  for (int w = 0; w < kWarps; ++w) result += scratch[w];
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

// Block (t, h). Query t sees keys [begin, S - T + t]. Per step of kThreads keys: thread j
// scores key s0 + j, the block updates the running max m and sum l (online softmax: earlier
// terms rescaled by exp(m_old - m_new)), and thread i accumulates output dims i, i + kThreads,
// ... over the step's keys. lse (may be null) receives m + log(l) at [h, t].
template <typename T>
__global__ void attention_kernel(T* out, float* lse, const T* q, const T* k, const T* v, const int32_t* seq_ids,
                                 int64_t T_, int64_t S, int64_t H, int64_t KVH, int64_t D, float scale) {
  __shared__ float q_row[kAttentionMaxHeadDim];
  __shared__ float p[kThreads];
  __shared__ float scratch[kWarps];
  __shared__ int64_t begin_shared;
  const int64_t t = blockIdx.x, h = blockIdx.y, kvh = h / (H / KVH);
  const int64_t end = S - T_ + t + 1;
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
  const char* op = seq_ids != nullptr ? "attention_packed_forward" : "attention_forward";
  check_grid(op, D, T, H);
  if (T == 0 || H == 0) return;
  if (D == 0) {  // softmax over empty dot products: each row's lse is log(visible keys)
    NIBBLE_CHECK(lse == nullptr, "{} on cuda: head dim 0 with an lse output", op);
    return;
  }
  const float scale = 1.0f / sqrtf(static_cast<float>(D));
  const dim3 grid(static_cast<unsigned int>(T), static_cast<unsigned int>(H));
  dispatch_activation(dtype, op, [&](auto tag) {
    using E = decltype(tag);
    attention_kernel<E><<<grid, kThreads, 0, stream>>>(static_cast<E*>(out), lse, static_cast<const E*>(q),
                                                       static_cast<const E*>(k), static_cast<const E*>(v), seq_ids,
                                                       T, S, H, KVH, D, scale);
  });
  NIBBLE_CUDA_CHECK_LAUNCH();
}

void attention_backward_launch(void* dq, void* dk, void* dv, float* delta, const void* dout, const void* q,
                               const void* k, const void* v, const void* out, const float* lse,
                               const int32_t* seq_ids, int64_t T, int64_t H, int64_t KVH, int64_t D, DType dtype,
                               cudaStream_t stream) {
  const char* op = "attention_packed_backward";
  check_grid(op, D, T, H);
  if (T == 0 || H == 0 || D == 0) return;
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
