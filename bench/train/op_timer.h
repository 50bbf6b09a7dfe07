// A Backend that forwards every op to another and times it on the GPU with CUDA events, per op
// name, for the training benchmark's breakdown. Events are recorded around each call on the
// legacy default stream (where the CUDA backend queues its work) and read once at the end, so
// timing adds no synchronisation to the step.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "nibble/backend/backend.h"

namespace nibble::bench {

class OpTimer : public Backend {
 public:
  explicit OpTimer(Backend& inner) : inner_(inner) {}
  ~OpTimer() override;

  // Milliseconds per op name over everything recorded since the last reset (synchronizes).
  std::map<std::string, double> milliseconds();
  void reset();

  Device device() const override { return inner_.device(); }
  std::string_view name() const override { return inner_.name(); }
  void synchronize() override { inner_.synchronize(); }

  void embedding_forward(Tensor& out, const Tensor& ids, const Tensor& table) override;
  void add_forward(Tensor& out, const Tensor& a, const Tensor& b) override;
  void cast(Tensor& out, const Tensor& in) override;
  void dropout(Tensor& out, const Tensor& in, float p, uint64_t seed, uint64_t stream) override;
  void rmsnorm_forward(Tensor& out, const Tensor& x, const Tensor& weight, float eps, Tensor* rstd) override;
  void add_rmsnorm_forward(Tensor& x, Tensor& out, const Tensor& delta, const Tensor& weight, float eps) override;
  void rmsnorm_backward(Tensor& dx, const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor* rstd,
                        float eps) override;
  void linear_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias) override;
  void linear_4bit_forward(Tensor& y, const Tensor& x, const QuantizedWeight& w, const Tensor* bias,
                           Tensor& workspace) override;
  void linear_backward(Tensor& dx, const Tensor& dy, const Tensor& w) override;
  void linear_4bit_backward(Tensor& dx, const Tensor& dy, const QuantizedWeight& w, Tensor& workspace) override;
  void gemm(Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, float alpha,
            float beta) override;
  void rope_forward(Tensor& q, Tensor& k, const Tensor& positions, const RopeTable& table) override;
  void rope_backward(Tensor& dq, Tensor& dk, const Tensor& positions, const RopeTable& table) override;
  void attention_forward(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v) override;
  void attention_cached_forward(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                                const Tensor& positions) override;
  void kv_cache_write(Tensor& k_cache, Tensor& v_cache, const Tensor& k, const Tensor& v,
                      const Tensor& positions) override;
  void attention_packed_forward(Tensor& out, Tensor* lse, const Tensor& q, const Tensor& k, const Tensor& v,
                                const Tensor& seq_ids) override;
  void attention_packed_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                                 const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                                 const Tensor& seq_ids) override;
  void swiglu_forward(Tensor& out, const Tensor& gate, const Tensor& up) override;
  void swiglu_backward(Tensor& dgate, Tensor& dup, const Tensor& dout, const Tensor& gate,
                       const Tensor& up) override;
  void cross_entropy(Tensor& losses, Tensor* dlogits, const Tensor& logits, const Tensor& labels,
                     float grad_scale) override;

 private:
  template <typename F>
  void timed(const char* op, F&& call);

  struct Span {
    std::string op;
    cudaEvent_t start, stop;
  };
  Backend& inner_;
  std::vector<Span> spans_;
};

}  // namespace nibble::bench
