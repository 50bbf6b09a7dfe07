// The CUDA backend: validates each call with the shared checks (op_checks.h), then launches on
// its own stream. The stream is a blocking one, so the synchronous copies of core/device.h
// (legacy default stream) see every op issued before them without an explicit synchronize.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "nibble/backend/backend.h"
#include "nibble/backend/cuda/attention.cuh"
#include "nibble/backend/cuda/bad_index.h"
#include "nibble/backend/cuda/cross_entropy.cuh"
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
      bad_index_ = static_cast<unsigned long long*>(cuda_allocate(sizeof(kNoBadIndexes), MemoryCategory::workspace));
      NIBBLE_CUDA_CHECK(cudaMemcpy(bad_index_, kNoBadIndexes, sizeof(kNoBadIndexes), cudaMemcpyHostToDevice));
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
  // Also where bad token ids and RoPE positions surface: the index kernels record them on the
  // device so that no op has to wait for the GPU (a wait per layer would stall decoding).
  void synchronize() override {
    NIBBLE_CUDA_CHECK(cudaStreamSynchronize(stream_));
    unsigned long long found[4];
    NIBBLE_CUDA_CHECK(cudaMemcpy(found, bad_index_, sizeof found, cudaMemcpyDeviceToHost));
    if (found[0] == cuda::kNoBadIndex && found[1] == cuda::kNoBadIndex && found[2] == cuda::kNoBadIndex &&
        found[3] == cuda::kNoBadIndex)
      return;
    NIBBLE_CUDA_CHECK(cudaMemcpy(bad_index_, kNoBadIndexes, sizeof(kNoBadIndexes), cudaMemcpyHostToDevice));
    if (found[0] != cuda::kNoBadIndex)
      fail("embedding_forward: token {} has id {}, expected an id in [0, {})", cuda::bad_index_token(found[0]),
           cuda::bad_index_value(found[0]), last_vocab_);
    if (found[1] != cuda::kNoBadIndex)
      fail("{}: token {} has position {}, expected a position in [0, {}) (the table's length)", last_rope_op_,
           cuda::bad_index_token(found[1]), cuda::bad_index_value(found[1]), last_rope_positions_);
    if (found[2] != cuda::kNoBadIndex)
      fail("cross_entropy: token {} has label {}, expected -100 (ignored) or a label in [0, {})",
           cuda::bad_index_token(found[2]), cuda::bad_index_value(found[2]), last_labels_);
    fail("{}: token {} has position {}, expected a position in [0, {}) (the cache's rows)", last_cache_op_,
         cuda::bad_index_token(found[3]), cuda::bad_index_value(found[3]), last_cache_rows_);
  }

  void embedding_forward(Tensor& out, const Tensor& ids, const Tensor& table) override {
    RowsDims d = check_embedding_forward(Device::cuda, out, ids, table);
    last_vocab_ = table.dim(0);
    cuda::embedding_forward_launch(out.data(), ids.data_as<int32_t>(), table.data(), d.T, d.C, table.dim(0),
                                   table.dtype(), bad_index_, stream_);
  }

  void add_forward(Tensor& out, const Tensor& a, const Tensor& b) override {
    int64_t n = check_elementwise("add_forward", Device::cuda, out, a, b);
    cuda::add_forward_launch(out.data(), a.data(), b.data(), n, a.dtype(), stream_);
  }

  void cast(Tensor& out, const Tensor& in) override {
    int64_t n = check_cast(Device::cuda, out, in);
    cuda::cast_launch(out.data(), out.dtype(), in.data(), in.dtype(), n, stream_);
  }

  void dropout(Tensor& out, const Tensor& in, float p, uint64_t seed, uint64_t stream) override {
    const int64_t n = check_dropout(Device::cuda, out, in, p);
    cuda::dropout_launch(out.data(), out.dtype(), in.data(), in.dtype(), n, p, 1.0f / (1.0f - p), seed, stream,
                         stream_);
  }

  void rmsnorm_forward(Tensor& out, const Tensor& x, const Tensor& weight, float eps, Tensor* rstd) override {
    RowsDims d = check_rmsnorm_forward(Device::cuda, out, x, weight, eps, rstd);
    cuda::rmsnorm_forward_launch(out.data(), rstd != nullptr ? rstd->data_as<float>() : nullptr, x.data(),
                                 weight.data(), eps, d.T, d.C, x.dtype(), stream_);
  }

  void add_rmsnorm_forward(Tensor& x, Tensor& out, const Tensor& delta, const Tensor& weight, float eps) override {
    check_elementwise("add_rmsnorm_forward", Device::cuda, x, x, delta);
    RowsDims d = check_rmsnorm_forward(Device::cuda, out, x, weight, eps);
    cuda::add_rmsnorm_forward_launch(x.data(), out.data(), delta.data(), weight.data(), eps, d.T, d.C, x.dtype(),
                                     stream_);
  }

  void rmsnorm_backward(Tensor& dx, const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor* rstd,
                        float eps) override {
    RowsDims d = check_rmsnorm_backward(Device::cuda, dx, dy, x, weight, rstd, eps);
    cuda::rmsnorm_backward_launch(dx.data(), dy.data(), x.data(), weight.data(),
                                  rstd != nullptr ? rstd->data_as<float>() : nullptr, eps, d.T, d.C, x.dtype(),
                                  stream_);
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

  void linear_backward(Tensor& dx, const Tensor& dy, const Tensor& w) override {
    LinearDims d = check_linear_backward(Device::cuda, dx, dy, w);
    cuda::linear_backward_launch(cublas_, dx.data(), dy.data(), w.data(), d.T, d.K, d.N, dy.dtype(), stream_);
  }

  void linear_4bit_backward(Tensor& dx, const Tensor& dy, const QuantizedWeight& w, Tensor& workspace) override {
    linear_4bit_backward_with(*this, stream_, dx, dy, w, workspace);
  }

  // cuBLAS multiplies a and b of one dtype into out of that dtype or F32; other mixes (bf16
  // activations times fp32 LoRA weights) widen a and b to F32 temporaries, exactly, and go
  // through an F32 result when out is 16-bit, so out is still rounded once.
  void gemm(Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, float alpha,
            float beta) override {
    GemmDims d = check_gemm(Device::cuda, out, a, trans_a, b, trans_b);
    if (cuda::gemm_dtypes_supported(out.dtype(), a.dtype(), b.dtype())) {
      cuda::gemm_launch(cublas_, out.data(), out.dtype(), a.data(), trans_a, b.data(), trans_b, a.dtype(), d.M, d.N,
                        d.K, alpha, beta, stream_);
      return;
    }
    const Tensor a32 = widened(a), b32 = widened(b);
    Tensor out32 = out.dtype() == DType::f32 ? out : Tensor::empty(out.shape(), DType::f32, Device::cuda);
    if (beta != 0.0f && out32.data() != out.data()) cast(out32, out);
    cuda::gemm_launch(cublas_, out32.data(), DType::f32, a32.data(), trans_a, b32.data(), trans_b, DType::f32, d.M,
                      d.N, d.K, alpha, beta, stream_);
    if (out32.data() != out.data()) cast(out, out32);
  }

  // A bad position is reported by the next synchronize(); q and k of that token are left as
  // they were.
  void rope_forward(Tensor& q, Tensor& k, const Tensor& positions, const RopeTable& table) override {
    RopeDims d = check_rope_forward(Device::cuda, q, k, positions, table);
    last_rope_positions_ = table.positions();
    last_rope_op_ = "rope_forward";
    cuda::rope_forward_launch(q.data(), k.data(), positions.data_as<int32_t>(), table.cos.data_as<float>(),
                              table.sin.data_as<float>(), d.T, d.H, d.KVH, d.D, table.positions(), q.dtype(),
                              bad_index_ + 1, stream_);
  }

  void rope_backward(Tensor& dq, Tensor& dk, const Tensor& positions, const RopeTable& table) override {
    RopeDims d = check_rope_backward(Device::cuda, dq, dk, positions, table);
    last_rope_positions_ = table.positions();
    last_rope_op_ = "rope_backward";
    cuda::rope_backward_launch(dq.data(), dk.data(), positions.data_as<int32_t>(), table.cos.data_as<float>(),
                               table.sin.data_as<float>(), d.T, d.H, d.KVH, d.D, table.positions(), dq.dtype(),
                               bad_index_ + 1, stream_);
  }

  void attention_forward(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v) override {
    AttentionDims d = check_attention_forward(Device::cuda, out, q, k, v);
    cuda::attention_forward_launch(out.data(), nullptr, q.data(), k.data(), v.data(), nullptr, d.T, d.S, d.H, d.KVH,
                                   d.D, q.dtype(), stream_);
  }

  // A bad position is reported by the next synchronize().
  void attention_cached_forward(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                                const Tensor& positions) override {
    AttentionDims d = check_attention_cached_forward(Device::cuda, out, q, k, v, positions);
    last_cache_op_ = "attention_cached_forward";
    last_cache_rows_ = d.S;
    cuda::attention_cached_forward_launch(out.data(), nullptr, q.data(), k.data(), v.data(), nullptr,
                                          positions.data_as<int32_t>(), bad_index_ + 3, d.T, d.S, d.H, d.KVH, d.D,
                                          q.dtype(), stream_);
  }

  // A bad position is reported by the next synchronize().
  void kv_cache_write(Tensor& k_cache, Tensor& v_cache, const Tensor& k, const Tensor& v,
                      const Tensor& positions) override {
    AttentionDims d = check_kv_cache_write(Device::cuda, k_cache, v_cache, k, v, positions);
    last_cache_op_ = "kv_cache_write";
    last_cache_rows_ = d.S;
    cuda::kv_cache_write_launch(k_cache.data(), v_cache.data(), k.data(), v.data(), positions.data_as<int32_t>(), d.T,
                                d.S, d.KVH, d.D, k.dtype(), bad_index_ + 3, stream_);
  }

  void attention_packed_forward(Tensor& out, Tensor* lse, const Tensor& q, const Tensor& k, const Tensor& v,
                                const Tensor& seq_ids) override {
    AttentionDims d = check_attention_packed_forward(Device::cuda, out, lse, q, k, v, seq_ids);
    cuda::attention_forward_launch(out.data(), lse != nullptr ? lse->data_as<float>() : nullptr, q.data(), k.data(),
                                   v.data(), seq_ids.data_as<int32_t>(), d.T, d.S, d.H, d.KVH, d.D, q.dtype(),
                                   stream_);
  }

  void attention_packed_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                                 const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                                 const Tensor& seq_ids) override {
    AttentionDims d = check_attention_packed_backward(Device::cuda, dq, dk, dv, dout, q, k, v, out, lse, seq_ids);
    // delta[h, t] = dout . out: written by the query-side kernel, read by the key-side one.
    Tensor delta = Tensor::empty({d.H, d.T}, DType::f32, Device::cuda);
    cuda::attention_backward_launch(dq.data(), dk.data(), dv.data(), delta.data_as<float>(), dout.data(), q.data(),
                                    k.data(), v.data(), out.data(), lse.data_as<float>(),
                                    seq_ids.data_as<int32_t>(), d.T, d.H, d.KVH, d.D, q.dtype(), stream_);
  }

  void swiglu_forward(Tensor& out, const Tensor& gate, const Tensor& up) override {
    int64_t n = check_elementwise("swiglu_forward", Device::cuda, out, gate, up);
    cuda::swiglu_forward_launch(out.data(), gate.data(), up.data(), n, gate.dtype(), stream_);
  }

  void swiglu_backward(Tensor& dgate, Tensor& dup, const Tensor& dout, const Tensor& gate,
                       const Tensor& up) override {
    int64_t n = check_swiglu_backward(Device::cuda, dgate, dup, dout, gate, up);
    cuda::swiglu_backward_launch(dgate.data(), dup.data(), dout.data(), gate.data(), up.data(), n, gate.dtype(),
                                 stream_);
  }

  // A bad label is reported by the next synchronize().
  void cross_entropy(Tensor& losses, Tensor* dlogits, const Tensor& logits, const Tensor& labels,
                     float grad_scale) override {
    RowsDims d = check_cross_entropy(Device::cuda, losses, dlogits, logits, labels);
    last_labels_ = d.C;
    cuda::cross_entropy_launch(losses.data_as<float>(), dlogits != nullptr ? dlogits->data() : nullptr,
                               dlogits != nullptr ? dlogits->dtype() : logits.dtype(), logits.data(), logits.dtype(),
                               labels.data_as<int32_t>(), d.T, d.C, grad_scale, bad_index_ + 2, stream_);
  }

  // Stream capture into a CUDA graph. Thread-local mode: a call that would synchronize or
  // allocate through cudaMalloc inside `ops` fails the capture instead of being recorded wrongly.
  std::unique_ptr<Recording> record(std::function<void()> ops) override {
    NIBBLE_CHECK(ops != nullptr, "record: no ops to record");
    NIBBLE_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    cudaGraph_t graph = nullptr;
    try {
      ops();
    } catch (...) {
      cudaStreamEndCapture(stream_, &graph);
      if (graph != nullptr) cudaGraphDestroy(graph);
      cudaGetLastError();  // the capture's error, if it was one, is not the caller's next error
      throw;
    }
    const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
    if (ended != cudaSuccess) {
      if (graph != nullptr) cudaGraphDestroy(graph);
      cudaGetLastError();
      NIBBLE_CUDA_CHECK(ended);
    }
    auto recording = std::make_unique<GraphRecording>();
    recording->graph = graph;
    NIBBLE_CUDA_CHECK(cudaGraphInstantiate(&recording->exec, graph, 0));
    return recording;
  }

  void replay(Recording& recording) override {
    auto* graph = dynamic_cast<GraphRecording*>(&recording);
    NIBBLE_CHECK(graph != nullptr, "replay: the recording was not made by the cuda backend");
    NIBBLE_CUDA_CHECK(cudaGraphLaunch(graph->exec, stream_));
  }

 private:
  struct GraphRecording final : Recording {
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    ~GraphRecording() override {
      if (exec != nullptr) cudaGraphExecDestroy(exec);
      if (graph != nullptr) cudaGraphDestroy(graph);
    }
  };

  // t itself when F32, else an F32 copy (exact: every activation dtype widens without rounding).
  Tensor widened(const Tensor& t) {
    if (t.dtype() == DType::f32) return t;
    Tensor copy = Tensor::empty(t.shape(), DType::f32, Device::cuda);
    cast(copy, t);
    return copy;
  }

  void release() {
    if (bad_index_ != nullptr) cuda_release(bad_index_, sizeof(kNoBadIndexes), MemoryCategory::workspace);
    if (cublas_ != nullptr) cublasDestroy(cublas_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    bad_index_ = nullptr;
    cublas_ = nullptr;
    stream_ = nullptr;
  }

  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  // [0] embedding ids, [1] RoPE positions, [2] cross-entropy labels, [3] KV cache positions
  // (bad_index.h); the limits of the latest calls name the expected range in the report.
  static constexpr unsigned long long kNoBadIndexes[4] = {cuda::kNoBadIndex, cuda::kNoBadIndex, cuda::kNoBadIndex,
                                                          cuda::kNoBadIndex};
  unsigned long long* bad_index_ = nullptr;
  int64_t last_vocab_ = 0;
  int64_t last_rope_positions_ = 0;
  const char* last_rope_op_ = "rope_forward";
  int64_t last_labels_ = 0;
  const char* last_cache_op_ = "kv_cache_write";
  int64_t last_cache_rows_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend() {
  NIBBLE_CHECK(cuda_available(), "the CUDA backend needs a visible GPU, and none was found; use --device cpu");
  return std::make_unique<CudaBackend>();
}

}  // namespace nibble
