// A Llama-family decoder (Llama 2/3/3.x, SmolLM2, TinyLlama, Mistral, Qwen2) on a Backend, for
// inference. The forward pass is written out as the op sequence of HF's LlamaDecoderLayer:
//   x += o(attention(rope(q(rms(x))), rope(k(rms(x))), v(rms(x))))
//   x += down(silu(gate(rms(x))) * up(rms(x)))
// then the final norm and lm_head. Every linear goes through project(), which picks the 16-bit or
// the 4-bit path, then adds the projection's LoRA adapter when it has one (llama_lora.h).
// Training (forward with saved activations, and backward) is LlamaTraining (llama_training.h).
//
// Letters: T tokens of this call, S cached + new positions, C hidden, H heads, KVH kv heads,
// D head_dim, F intermediate, V vocab (as in backend.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nibble/backend/backend.h"
#include "nibble/model/kv_cache.h"
#include "nibble/model/llama_checkpoint.h"
#include "nibble/model/llama_lora.h"
#include "nibble/quant/quant_state.h"

namespace nibble {

struct LlamaLoadOptions {
  // Activation and 16-bit weight dtype. Default: the dtype the checkpoint stores its tensors in;
  // bf16 for a 4-bit model (QLoRA's bnb_4bit_compute_dtype).
  std::optional<DType> compute_dtype;
  // Quantize the decoder blocks' seven linears while loading (a 16-bit folder only), as
  // transformers does with a BitsAndBytesConfig; embeddings, norms, lm_head stay 16-bit.
  std::optional<QuantConfig> quantize;
};

// One projection: a weight in the compute dtype, or a 4-bit one, on the backend's device.
struct LlamaLinear {
  std::string name;  // "model.layers.0.self_attn.q_proj"
  int64_t out = 0;   // N
  int64_t in = 0;    // K
  Tensor weight;     // [N, K], compute dtype, when not 4-bit
  std::optional<QuantizedWeight> weight_4bit;  // [N, K]
  Tensor bias;       // [N] compute dtype, or undefined
  std::optional<LlamaLora> lora;  // an adapter, applied unmerged
  bool is_4bit() const { return weight_4bit.has_value(); }
};

struct LlamaBlock {
  Tensor input_norm;  // [C]
  LlamaLinear q, k, v, o;
  Tensor post_norm;   // [C]
  LlamaLinear gate, up, down;
};

class LlamaModel {
 public:
  // Reads DIR (read_llama_checkpoint checks every tensor), converts to the compute dtype,
  // quantizes if asked, and places everything on the backend's device. The backend must
  // outlive the model.
  static LlamaModel load(const std::string& dir, Backend& backend, const LlamaLoadOptions& options = {});

  // A model of `hyper`'s shape with random weights (uniform, standard deviation 0.02; norms 1),
  // no files: for benchmarks. The block linears are quantized on the backend's device when
  // `quantize` is set. Equal-shaped weights share one random draw (each quantized on its own),
  // which keeps setup fast and does not change the bytes a forward pass reads.
  static LlamaModel random(const LlamaHyper& hyper, Backend& backend, DType compute_dtype,
                           const std::optional<QuantConfig>& quantize, uint64_t seed);

  const LlamaHyper& hyper() const { return hyper_; }
  DType compute_dtype() const { return dtype_; }
  Backend& backend() { return *backend_; }
  bool has_4bit_weights() const;
  // Bytes of every weight on the device (4-bit codes and constants included), for reports.
  size_t weight_bytes() const;

  // An empty cache for sequences of up to max_seq positions, in the compute dtype.
  KvCache make_cache(int64_t max_seq);

  // Logits F32 [T, V] of tokens ids[T] at positions cache.length() .. + T - 1, after which
  // those positions are cached. With last_only, F32 [1, V] of the last token only (generation
  // needs no more, and lm_head is the largest GEMM of a small model).
  Tensor forward(const std::vector<int32_t>& ids, KvCache& cache, bool last_only = false);

  // Decode steps (one token, last_only) are recorded once per KV cache and replayed afterwards
  // (Backend::record): on a GPU one graph launch instead of a few hundred kernel launches, with
  // the same numbers. Models with LoRA adapters issue every op (an adapter's ops may allocate).
  // On by default; off issues every op of every step.
  void set_record_decode(bool enabled) { record_decode_ = enabled; }
  // Whether the last decode step was replayed from a recording (for reports and tests).
  bool decode_replayed() const { return decode_replayed_; }

  // Every projection of the model: y[T, N] = x[T, K] @ W[N, K]^T (+ bias[N]), 16-bit or 4-bit,
  // plus the adapter's output when the linear has one (no dropout: inference).
  void project(Tensor& y /* [T, N] */, const Tensor& x /* [T, K] */, const LlamaLinear& linear);
  // The base part alone: W x (+ bias).
  void project_base(Tensor& y /* [T, N] */, const Tensor& x /* [T, K] */, const LlamaLinear& linear);

  // A block projection by its HF module name ("model.layers.3.mlp.down_proj"), or null.
  LlamaLinear* find_linear(const std::string& module);
  // Every block projection, layer by layer in q, k, v, o, gate, up, down order.
  std::vector<LlamaLinear*> block_linears();
  // Removes every LoRA adapter.
  void clear_lora();

 private:
  friend class LlamaTraining;
  LlamaModel() = default;
  // Buffers of one forward call of T tokens, allocated once per T. Decode steps (T = 1) have
  // their own, which a recorded step keeps using.
  struct Scratch {
    int64_t T = -1;
    Tensor ids;        // I32 [T]
    Tensor positions;  // I32 [T], cache.length() + t
    Tensor x;          // [T, C] the residual stream
    Tensor normed;     // [T, C]
    Tensor q;          // [T, H * D]
    Tensor k, v;       // [T, KVH * D] the new keys and values, on their way into the cache
    Tensor attn;       // [T, H * D]
    Tensor proj;       // [T, C] o_proj and down_proj outputs
    Tensor gate, up;   // [T, F]
    Tensor last_normed;  // [1, C] the last token's final norm
    Tensor logits;       // [1, V] its logits in the compute dtype (F32: logits_f32 itself)
    Tensor logits_f32;   // [1, V]
  };
  // The decode step recorded for one KV cache (Backend::record), replayed at every token. It
  // reads the token id and position from decode_'s device buffers, so only those change.
  struct DecodeRecording {
    std::unique_ptr<Backend::Recording> recording;
    const LlamaModel* model = nullptr;    // what it was recorded for: this model (not a moved-from one),
    const void* cache_storage = nullptr;  // the cache's first key row,
    int64_t cache_capacity = 0;           // its rows,
    const void* rope_storage = nullptr;   // and the RoPE table
    int64_t plain_steps = 0;              // steps issued op by op for that cache so far
    bool failed = false;                  // recording failed once: issue op by op from now on
  };
  void finish_setup(int64_t workspace_elements);
  void prepare_scratch(Scratch& s, int64_t T);
  void ensure_rope_positions(int64_t positions);
  // Issues one forward pass over s's tokens: every op reads and writes s's buffers and the cache.
  void issue_forward(Scratch& s, KvCache& cache, int64_t T, bool last_only);
  void block_forward(Scratch& s, int64_t layer, KvCache& cache, int64_t T);
  void attention_forward(Scratch& s, int64_t layer, KvCache& cache, int64_t T);
  void mlp_forward(Scratch& s, int64_t layer);
  // A decode step through decode_recording_, recording it first when that is due; false when this
  // step must be issued op by op instead (the first step on a cache, adapters, a failed recording).
  bool replay_decode_step(KvCache& cache);

  LlamaHyper hyper_;
  DType dtype_ = DType::bf16;
  Backend* backend_ = nullptr;
  Tensor embed_;  // [V, C]
  std::vector<LlamaBlock> blocks_;
  Tensor norm_;   // [C]
  LlamaLinear lm_head_;  // [V, C]; shares embed_'s storage when tied
  RopeTable rope_table_;
  Tensor workspace_4bit_;  // max N*K of the 4-bit linears, compute dtype: their dequantized weight
  Scratch scratch_;
  Scratch decode_;
  DecodeRecording decode_recording_;
  bool record_decode_ = true;
  bool decode_replayed_ = false;
};

}  // namespace nibble
