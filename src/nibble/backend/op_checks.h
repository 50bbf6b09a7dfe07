// Argument checks shared by every backend, so that a bad call fails the same way on the CPU and
// on the GPU. Each returns the op's dimensions (letters as in backend.h) once the tensors agree
// with them, and throws nibble::Error naming the op, the argument and what was expected.
#pragma once

#include <cstdint>

#include "nibble/backend/rope_table.h"
#include "nibble/core/tensor.h"

namespace nibble {

bool is_activation_dtype(DType dtype);  // F32, F16 or BF16

struct RowsDims {
  int64_t T, C;
};
struct LinearDims {
  int64_t T, K, N;
};
struct RopeDims {
  int64_t T, H, KVH, D;
};
struct AttentionDims {
  int64_t T, S, H, KVH, D;
};
struct GemmDims {
  int64_t M, N, K;
};

RowsDims check_embedding_forward(Device device, const Tensor& out, const Tensor& ids, const Tensor& table);
// add and swiglu: two inputs and an output of one shape and one activation dtype.
int64_t check_elementwise(const char* op, Device device, const Tensor& out, const Tensor& a, const Tensor& b);
int64_t check_cast(Device device, const Tensor& out, const Tensor& in);
// check_cast's rules plus p in [0, 1).
int64_t check_dropout(Device device, const Tensor& out, const Tensor& in, float p);
// rstd (may be null) is the optional F32 [T] output.
RowsDims check_rmsnorm_forward(Device device, const Tensor& out, const Tensor& x, const Tensor& weight, float eps,
                               const Tensor* rstd = nullptr);
RowsDims check_rmsnorm_backward(Device device, const Tensor& dx, const Tensor& dy, const Tensor& x,
                                const Tensor& weight, const Tensor* rstd, float eps);
LinearDims check_linear_forward(Device device, const Tensor& y, const Tensor& x, const Tensor& w,
                                const Tensor* bias);
// dx[T, K], dy[T, N], w[N, K] in one activation dtype.
LinearDims check_linear_backward(Device device, const Tensor& dx, const Tensor& dy, const Tensor& w);
// a [M, K] ([K, M] when trans_a), b [K, N] ([N, K] when trans_b), out [M, N], any activation dtypes.
GemmDims check_gemm(Device device, const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b);
RopeDims check_rope_backward(Device device, const Tensor& dq, const Tensor& dk, const Tensor& positions,
                             const RopeTable& table);
RopeDims check_rope_forward(Device device, const Tensor& q, const Tensor& k, const Tensor& positions,
                            const RopeTable& table);
AttentionDims check_attention_forward(Device device, const Tensor& out, const Tensor& q, const Tensor& k,
                                      const Tensor& v);
// k and v [P, KVH, D] are a whole cache (S = P in the result); positions I32 [T].
AttentionDims check_attention_cached_forward(Device device, const Tensor& out, const Tensor& q, const Tensor& k,
                                             const Tensor& v, const Tensor& positions);
// k_cache, v_cache [P, KVH, D]; k, v [T, KVH, D] of their dtype; positions I32 [T]. Returns T, P,
// KVH and D (H = KVH).
AttentionDims check_kv_cache_write(Device device, const Tensor& k_cache, const Tensor& v_cache, const Tensor& k,
                                   const Tensor& v, const Tensor& positions);
// S == T; seq_ids I32 [T]; lse (may be null) F32 [H, T].
AttentionDims check_attention_packed_forward(Device device, const Tensor& out, const Tensor* lse, const Tensor& q,
                                             const Tensor& k, const Tensor& v, const Tensor& seq_ids);
AttentionDims check_attention_packed_backward(Device device, const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                              const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                              const Tensor& out, const Tensor& lse, const Tensor& seq_ids);
// Five tensors of one shape and one activation dtype; returns their element count.
int64_t check_swiglu_backward(Device device, const Tensor& dgate, const Tensor& dup, const Tensor& dout,
                              const Tensor& gate, const Tensor& up);
// logits [T, V] (any activation dtype), labels I32 [T], losses F32 [T], dlogits (may be null)
// [T, V] in any activation dtype; returns T and V (as RowsDims{T, C = V}).
RowsDims check_cross_entropy(Device device, const Tensor& losses, const Tensor* dlogits, const Tensor& logits,
                             const Tensor& labels);

}  // namespace nibble
