// A GGUF writer for tests only: builds files byte by byte, so tests can make well-formed files
// of every tensor type with known values, and malformed ones (wrong counts, offsets past the
// end, overlapping tensors) that no real writer would produce. Little-endian, as the format.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace nibble::testing {

// GGUF value type ids (the spec's gguf_type).
enum GgufTypeId : uint32_t {
  kGgufU8 = 0, kGgufI8 = 1, kGgufU16 = 2, kGgufI16 = 3, kGgufU32 = 4, kGgufI32 = 5, kGgufF32 = 6,
  kGgufBool = 7, kGgufString = 8, kGgufArray = 9, kGgufU64 = 10, kGgufI64 = 11, kGgufF64 = 12,
};

// ggml tensor type ids used by the tests.
enum GgmlTypeId : uint32_t {
  kGgmlF32 = 0, kGgmlF16 = 1, kGgmlQ4_0 = 2, kGgmlQ4_1 = 3, kGgmlQ5_0 = 6, kGgmlQ5_1 = 7, kGgmlQ8_0 = 8,
  kGgmlQ2_K = 10, kGgmlQ3_K = 11, kGgmlQ4_K = 12, kGgmlQ5_K = 13, kGgmlQ6_K = 14, kGgmlBF16 = 30,
};

// Little-endian encodings.
std::string le_u32(uint32_t v);
std::string le_u64(uint64_t v);
std::string gguf_string(const std::string& s);  // u64 length + bytes

class GgufWriter {
 public:
  uint32_t version = 3;
  uint64_t alignment = 32;  // used for the layout; add general.alignment yourself to change it in the file
  std::optional<uint64_t> tensor_count_override;  // written instead of the real count
  std::optional<uint64_t> kv_count_override;

  // A key/value with its type id and encoded payload (for arrays: element type, count, elements).
  void add_raw(const std::string& key, uint32_t type, const std::string& payload);
  void add_string(const std::string& key, const std::string& value);
  void add_u32(const std::string& key, uint32_t value);
  void add_i32(const std::string& key, int32_t value);
  void add_u64(const std::string& key, uint64_t value);
  void add_f32(const std::string& key, float value);
  void add_bool(const std::string& key, bool value);
  void add_strings(const std::string& key, const std::vector<std::string>& values);
  void add_i32s(const std::string& key, const std::vector<int32_t>& values);
  void add_f32s(const std::string& key, const std::vector<float>& values);

  // A tensor: `ne` in GGUF order (fastest first), a ggml type id, its bytes. Without an offset it
  // goes after the previous tensor, at the next multiple of the alignment (so set `alignment`
  // before adding tensors). A tensor whose bytes would end past 16 MiB gets no bytes in the file,
  // for tests of offsets past the end.
  void add_tensor(const std::string& name, const std::vector<uint64_t>& ne, uint32_t type, const std::string& data,
                  std::optional<uint64_t> offset = std::nullopt);
  // F32 data of a row-major tensor whose HF shape is the reverse of `ne`.
  void add_f32_tensor(const std::string& name, const std::vector<uint64_t>& ne, const std::vector<float>& values);

  // The whole file.
  std::string bytes() const;
  void write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    std::string data;
    uint64_t offset;
  };
  std::vector<std::pair<std::string, std::string>> kvs_;  // key, type id + payload
  std::vector<Tensor> tensors_;
  uint64_t next_offset_ = 0;
};

// A tiny llama model as GGUF, with a byte-level BPE vocabulary, for import tests.
struct TinyLlamaGguf {
  int64_t hidden = 64;        // C
  int64_t intermediate = 96;  // F
  int64_t layers = 2;
  int64_t heads = 4;
  int64_t kv_heads = 2;
  bool tied = true;           // no output.weight
  uint64_t seed = 7;
  std::string pre = "smollm";  // tokenizer.ggml.pre
  bool add_bos = false;        // tokenizer.ggml.add_bos_token
  std::string architecture = "llama";
  std::string tokenizer_model = "gpt2";
  std::string skip_tensor;   // a GGUF tensor name to leave out
  std::string extra_tensor;  // a GGUF tensor name to add, F32 [hidden]
};

// The vocabulary of tiny_llama_gguf: 3 control tokens (<|endoftext|>, <|im_start|>,
// <|im_end|>), the 256 byte-level characters in byte order (id 3 + byte), then the merged
// tokens of tiny_llama_merges() in order.
std::vector<std::string> tiny_llama_tokens();
std::vector<std::string> tiny_llama_merges();
// GPT-2's byte-to-character table (bytes_to_unicode): the UTF-8 character for each byte.
std::string gpt2_byte_char(uint8_t byte);

// The HF weights of tiny_llama_gguf: row-major F32 by HF name (q_proj and k_proj in HF row
// order; the file holds them permuted as convert_hf_to_gguf.py does).
struct TinyLlamaWeights {
  std::vector<std::pair<std::string, std::vector<float>>> tensors;
  const std::vector<float>& get(const std::string& hf_name) const;
};

// Writes the model (all tensors F32) to `path`, with llama.* and tokenizer.ggml.* metadata
// (SmolLM2-like: bos <|im_start|>, eos <|im_end|>, a ChatML chat template). Returns the weights.
TinyLlamaWeights write_tiny_llama_gguf(const std::string& path, const TinyLlamaGguf& spec = {});

// convert_hf_to_gguf.py's permutation of llama q/k rows: HF [heads * D, in] row-major to GGUF
// row order (row h*D + 2i + s of the result is HF row h*D + s*D/2 + i).
std::vector<float> permute_qk_like_convert(const std::vector<float>& hf, int64_t heads, int64_t rows, int64_t cols);

}  // namespace nibble::testing
