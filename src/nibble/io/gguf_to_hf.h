// A GGUF model as a Hugging Face folder (research/formats.md section 7.3): config.json from the
// llama.* metadata, the weights dequantized to bf16 under HF's names with the Q/K rows put back
// in HF's order, and the tokenizer rebuilt (gguf_tokenizer.h).
//
// Supported: general.architecture "llama" (Llama 1/2/3 without rope_freqs, Mistral, SmolLM2,
// TinyLlama: everything convert_hf_to_gguf.py writes as llama), every tensor type of
// gguf_dequant.h. Anything else is a nibble::Error naming the file, the key or tensor, and what
// was expected, raised before any file is written.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "nibble/core/tensor.h"
#include "nibble/io/gguf.h"

namespace nibble {

// config.json for the file's llama.* metadata, as transformers writes a LlamaConfig (torch_dtype
// bfloat16; tie_word_embeddings when output.weight is absent; bos/eos ids from tokenizer.ggml.*).
nlohmann::ordered_json gguf_to_hf_config(const GgufFile& file);

// The HF name of a llama GGUF tensor ("blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight",
// "token_embd.weight" -> "model.embed_tokens.weight", "output.weight" -> "lm_head.weight"), or
// nullopt for a name that is not one.
std::optional<std::string> gguf_to_hf_tensor_name(const std::string& gguf_name);

// convert_hf_to_gguf.py stores llama's q_proj and k_proj rows with each head's two rotary halves
// interleaved (GGUF row h*D + 2i + s holds HF row h*D + s*D/2 + i, for i < D/2 and s in {0, 1}).
// This undoes it: `weight` is F32 [heads * D, in] in GGUF row order; the result is in HF order.
Tensor gguf_unpermute_qk(const Tensor& weight /* [heads * D, in] */, int64_t heads);

struct GgufImportSummary {
  std::string architecture;  // general.architecture
  std::string name;          // general.name, empty when absent
  int64_t tensors = 0;       // written to model.safetensors
  int64_t parameters = 0;
  bool tied_embeddings = false;
  std::map<std::string, int64_t> source_types;  // GGUF tensor type -> count: {"Q4_1": 210, ...}
};

// done of total tensors converted; `tensor` is the GGUF name being converted next.
using GgufImportProgress = std::function<void(int64_t done, int64_t total, const std::string& tensor)>;

// Writes into `dir` (an existing folder): config.json, generation_config.json,
// model.safetensors (bf16), tokenizer.json and tokenizer_config.json, each atomically. All
// metadata, tokenizer keys and tensor names and shapes are checked before the first file is
// written. Holds every converted tensor in memory until model.safetensors is written (2 bytes a
// parameter).
GgufImportSummary import_gguf(const GgufFile& file, const std::string& dir, const GgufImportProgress& progress = {});

}  // namespace nibble
