#include "bench/train/op_timer.h"

#include "nibble/core/cuda_check.h"

namespace nibble::bench {

OpTimer::~OpTimer() { reset(); }

template <typename F>
void OpTimer::timed(const char* op, F&& call) {
  Span s{op, nullptr, nullptr};
  NIBBLE_CUDA_CHECK(cudaEventCreate(&s.start));
  NIBBLE_CUDA_CHECK(cudaEventCreate(&s.stop));
  NIBBLE_CUDA_CHECK(cudaEventRecord(s.start, 0));
  call();
  NIBBLE_CUDA_CHECK(cudaEventRecord(s.stop, 0));
  spans_.push_back(s);
}

std::map<std::string, double> OpTimer::milliseconds() {
  NIBBLE_CUDA_CHECK(cudaDeviceSynchronize());
  std::map<std::string, double> ms;
  for (const Span& s : spans_) {
    float t = 0;
    NIBBLE_CUDA_CHECK(cudaEventElapsedTime(&t, s.start, s.stop));
    ms[s.op] += t;
  }
  return ms;
}

void OpTimer::reset() {
  for (const Span& s : spans_) {
    cudaEventDestroy(s.start);
    cudaEventDestroy(s.stop);
  }
  spans_.clear();
}

void OpTimer::embedding_forward(Tensor& out, const Tensor& ids, const Tensor& table) {
  timed("embedding", [&] { inner_.embedding_forward(out, ids, table); });
}
void OpTimer::add_forward(Tensor& out, const Tensor& a, const Tensor& b) {
  timed("add", [&] { inner_.add_forward(out, a, b); });
}
void OpTimer::cast(Tensor& out, const Tensor& in) { timed("cast", [&] { inner_.cast(out, in); }); }
void OpTimer::dropout(Tensor& out, const Tensor& in, float p, uint64_t seed, uint64_t stream) {
  timed("dropout", [&] { inner_.dropout(out, in, p, seed, stream); });
}
void OpTimer::rmsnorm_forward(Tensor& out, const Tensor& x, const Tensor& weight, float eps, Tensor* rstd) {
  timed("rmsnorm", [&] { inner_.rmsnorm_forward(out, x, weight, eps, rstd); });
}
void OpTimer::add_rmsnorm_forward(Tensor& x, Tensor& out, const Tensor& delta, const Tensor& weight, float eps) {
  timed("add + rmsnorm", [&] { inner_.add_rmsnorm_forward(x, out, delta, weight, eps); });
}
void OpTimer::rmsnorm_backward(Tensor& dx, const Tensor& dy, const Tensor& x, const Tensor& weight,
                               const Tensor* rstd, float eps) {
  timed("rmsnorm_backward", [&] { inner_.rmsnorm_backward(dx, dy, x, weight, rstd, eps); });
}
void OpTimer::linear_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias) {
  timed("linear (16-bit)", [&] { inner_.linear_forward(y, x, w, bias); });
}
void OpTimer::linear_4bit_forward(Tensor& y, const Tensor& x, const QuantizedWeight& w, const Tensor* bias,
                                  Tensor& workspace) {
  timed("linear_4bit", [&] { inner_.linear_4bit_forward(y, x, w, bias, workspace); });
}
void OpTimer::linear_backward(Tensor& dx, const Tensor& dy, const Tensor& w) {
  timed("linear_backward (16-bit)", [&] { inner_.linear_backward(dx, dy, w); });
}
void OpTimer::linear_4bit_backward(Tensor& dx, const Tensor& dy, const QuantizedWeight& w, Tensor& workspace) {
  timed("linear_4bit_backward", [&] { inner_.linear_4bit_backward(dx, dy, w, workspace); });
}
void OpTimer::gemm(Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, float alpha,
                   float beta) {
  timed("lora gemm", [&] { inner_.gemm(out, a, trans_a, b, trans_b, alpha, beta); });
}
void OpTimer::rope_forward(Tensor& q, Tensor& k, const Tensor& positions, const RopeTable& table) {
  timed("rope", [&] { inner_.rope_forward(q, k, positions, table); });
}
void OpTimer::rope_backward(Tensor& dq, Tensor& dk, const Tensor& positions, const RopeTable& table) {
  timed("rope_backward", [&] { inner_.rope_backward(dq, dk, positions, table); });
}
void OpTimer::attention_forward(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v) {
  timed("attention (cached)", [&] { inner_.attention_forward(out, q, k, v); });
}
void OpTimer::attention_cached_forward(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                                       const Tensor& positions) {
  timed("attention (cached)", [&] { inner_.attention_cached_forward(out, q, k, v, positions); });
}
void OpTimer::kv_cache_write(Tensor& k_cache, Tensor& v_cache, const Tensor& k, const Tensor& v,
                             const Tensor& positions) {
  timed("kv cache write", [&] { inner_.kv_cache_write(k_cache, v_cache, k, v, positions); });
}
void OpTimer::attention_packed_forward(Tensor& out, Tensor* lse, const Tensor& q, const Tensor& k, const Tensor& v,
                                       const Tensor& seq_ids) {
  timed("attention", [&] { inner_.attention_packed_forward(out, lse, q, k, v, seq_ids); });
}
void OpTimer::attention_packed_backward(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                                        const Tensor& seq_ids) {
  timed("attention_backward", [&] { inner_.attention_packed_backward(dq, dk, dv, dout, q, k, v, out, lse, seq_ids); });
}
void OpTimer::swiglu_forward(Tensor& out, const Tensor& gate, const Tensor& up) {
  timed("swiglu", [&] { inner_.swiglu_forward(out, gate, up); });
}
void OpTimer::swiglu_backward(Tensor& dgate, Tensor& dup, const Tensor& dout, const Tensor& gate, const Tensor& up) {
  timed("swiglu_backward", [&] { inner_.swiglu_backward(dgate, dup, dout, gate, up); });
}
void OpTimer::cross_entropy(Tensor& losses, Tensor* dlogits, const Tensor& logits, const Tensor& labels,
                            float grad_scale) {
  timed("cross_entropy", [&] { inner_.cross_entropy(losses, dlogits, logits, labels, grad_scale); });
}

}  // namespace nibble::bench
