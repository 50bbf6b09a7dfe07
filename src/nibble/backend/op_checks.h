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

RowsDims check_embedding_forward(Device device, const Tensor& out, const Tensor& ids, const Tensor& table);
// add and swiglu: two inputs and an output of one shape and one activation dtype.
int64_t check_elementwise(const char* op, Device device, const Tensor& out, const Tensor& a, const Tensor& b);
int64_t check_cast(Device device, const Tensor& out, const Tensor& in);
RowsDims check_rmsnorm_forward(Device device, const Tensor& out, const Tensor& x, const Tensor& weight, float eps);
LinearDims check_linear_forward(Device device, const Tensor& y, const Tensor& x, const Tensor& w,
                                const Tensor* bias);
RopeDims check_rope_forward(Device device, const Tensor& q, const Tensor& k, const Tensor& positions,
                            const RopeTable& table);
AttentionDims check_attention_forward(Device device, const Tensor& out, const Tensor& q, const Tensor& k,
                                      const Tensor& v);

}  // namespace nibble
