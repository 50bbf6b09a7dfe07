// The CUDA backend: validates each call with the shared checks (op_checks.h), then launches on
// its own stream. The stream is a blocking one, so the synchronous copies of core/device.h
// (legacy default stream) see every op issued before them without an explicit synchronize.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <climits>

#include "nibble/backend/backend.h"
#include "nibble/backend/cuda/attention.cuh"
#include "nibble/core/cuda_check.h"
#include "nibble/backend/cuda/elementwise.cuh"
#include "nibble/backend/cuda/gemv_4bit.cuh"
#include "nibble/backend/cuda/linear.cuh"
#include "nibble/backend/cuda/rmsnorm.cuh"
#include "nibble/backend/cuda/rope.cuh"
#include "nibble/backend/linear_4bit.h"
#include "nibble/backend/op_checks.h"
#include "nibble/core/cuda_check.h"

namespace nibble {

namespace {

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    NIBBLE_CUDA_CHECK(cudaStreamCreate(&stream_));
    try {
      NIBBLE_CUBLAS_CHECK(cublasCreate(&cublas_));
      NIBBLE_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
      bad_token_ = static_cast<int32_t*>(cuda_allocate(sizeof(int32_t), MemoryCategory::workspace));
    } catch (...) {
      release();
      throw;
    }
  }
  ~CudaBackend() override { release(); }
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  Device device() const override { return Device::cuda; }
  std::string_view name() const override { return "cuda"; }
  void synchronize() override { NIBBLE_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

  void embedding_forward(Tensor& out, const Tensor& ids, const Tensor& table) override {
    RowsDims d = check_embedding_forward(Device::cuda, out, ids, table);
    clear_bad_token();
    cuda::embedding_forward_launch(out.data(), ids.data_as<int32_t>(), table.data(), d.T, d.C, table.dim(0),
                                   table.dtype(), bad_token_, stream_);
    int32_t t = read_bad_token();
    if (t != INT32_MAX)
      fail("embedding_forward: token {} has id {}, expected an id in [0, {})", t, read_i32(ids, t), table.dim(0));
  }

  void add_forward(Tensor& out, const Tensor& a, const Tensor& b) override {
    int64_t n = check_elementwise("add_forward", Device::cuda, out, a, b);
    cuda::add_forward_launch(out.data(), a.data(), b.data(), n, a.dtype(), stream_);
  }

  void cast(Tensor& out, const Tensor& in) override {
    int64_t n = check_cast(Device::cuda, out, in);
    cuda::cast_launch(out.data(), out.dtype(), in.data(), in.dtype(), n, stream_);
  }

  void rmsnorm_forward(Tensor& out, const Tensor& x, const Tensor& weight, float eps) override {
    RowsDims d = check_rmsnorm_forward(Device::cuda, out, x, weight, eps);
    cuda::rmsnorm_forward_launch(out.data(), x.data(), weight.data(), eps, d.T, d.C, x.dtype(), stream_);
  }

  void linear_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias) override {
    LinearDims d = check_linear_forward(Device::cuda, y, x, w, bias);
    cuda::linear_forward_launch(cublas_, y.data(), x.data(), w.data(), bias ? bias->data() : nullptr, d.T, d.K, d.N,
                                x.dtype(), stream_);
  }

  void linear_4bit_forward(Tensor& y, const Tensor& x, const QuantizedWeight& w, const Tensor* bias,
                           Tensor& workspace) override {
    // Few tokens: the fused GEMV reads the packed weight once; more: dequantize + cuBLAS, whose
    // GEMM reuses each weight element across tokens.
    if (x.rank() == 2 && x.dim(0) <= cuda::kGemv4bitMaxTokens) {
      cuda::gemv_4bit_forward(y, x, w, bias, workspace, stream_);
      return;
    }
    linear_4bit_forward_with(*this, stream_, y, x, w, bias, workspace);
  }

  // On a bad position the error is thrown after the kernel ran: q and k are then unspecified.
  void rope_forward(Tensor& q, Tensor& k, const Tensor& positions, const RopeTable& table) override {
    RopeDims d = check_rope_forward(Device::cuda, q, k, positions, table);
    clear_bad_token();
    cuda::rope_forward_launch(q.data(), k.data(), positions.data_as<int32_t>(), table.cos.data_as<float>(),
                              table.sin.data_as<float>(), d.T, d.H, d.KVH, d.D, table.positions(), q.dtype(),
                              bad_token_, stream_);
    int32_t t = read_bad_token();
    if (t != INT32_MAX)
      fail("rope_forward: token {} has position {}, expected a position in [0, {}) (the table's length)", t,
           read_i32(positions, t), table.positions());
  }

  void attention_forward(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v) override {
    AttentionDims d = check_attention_forward(Device::cuda, out, q, k, v);
    cuda::attention_forward_launch(out.data(), q.data(), k.data(), v.data(), d.T, d.S, d.H, d.KVH, d.D, q.dtype(),
                                   stream_);
  }

  void swiglu_forward(Tensor& out, const Tensor& gate, const Tensor& up) override {
    int64_t n = check_elementwise("swiglu_forward", Device::cuda, out, gate, up);
    cuda::swiglu_forward_launch(out.data(), gate.data(), up.data(), n, gate.dtype(), stream_);
  }

 private:
  void release() {
    if (bad_token_ != nullptr) cuda_release(bad_token_, sizeof(int32_t), MemoryCategory::workspace);
    if (cublas_ != nullptr) cublasDestroy(cublas_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    bad_token_ = nullptr;
    cublas_ = nullptr;
    stream_ = nullptr;
  }

  // The index kernels report the first bad token through one device int; the sentinel is
  // INT32_MAX so atomicMin keeps the smallest offending token.
  void clear_bad_token() {
    const int32_t none = INT32_MAX;
    NIBBLE_CUDA_CHECK(cudaMemcpyAsync(bad_token_, &none, sizeof none, cudaMemcpyHostToDevice, stream_));
  }
  int32_t read_bad_token() {
    int32_t t = 0;
    NIBBLE_CUDA_CHECK(cudaMemcpyAsync(&t, bad_token_, sizeof t, cudaMemcpyDeviceToHost, stream_));
    synchronize();
    return t;
  }
  int32_t read_i32(const Tensor& t, int64_t i) {
    int32_t value = 0;
    NIBBLE_CUDA_CHECK(
        cudaMemcpy(&value, t.data_as<int32_t>() + i, sizeof value, cudaMemcpyDeviceToHost));
    return value;
  }

  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  int32_t* bad_token_ = nullptr;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend() {
  NIBBLE_CHECK(cuda_available(), "the CUDA backend needs a visible GPU, and none was found; use --device cpu");
  return std::make_unique<CudaBackend>();
}

}  // namespace nibble
