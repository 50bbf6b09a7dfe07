#include "tests/support/gguf_writer.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>

namespace nibble::testing {

std::string le_u32(uint32_t v) {
  std::string out(4, '\0');
  std::memcpy(out.data(), &v, 4);
  return out;
}

std::string le_u64(uint64_t v) {
  std::string out(8, '\0');
  std::memcpy(out.data(), &v, 8);
  return out;
}

std::string gguf_string(const std::string& s) { return le_u64(s.size()) + s; }

void GgufWriter::add_raw(const std::string& key, uint32_t type, const std::string& payload) {
  kvs_.emplace_back(key, le_u32(type) + payload);
}

void GgufWriter::add_string(const std::string& key, const std::string& value) {
  add_raw(key, kGgufString, gguf_string(value));
}
void GgufWriter::add_u32(const std::string& key, uint32_t value) { add_raw(key, kGgufU32, le_u32(value)); }
void GgufWriter::add_i32(const std::string& key, int32_t value) {
  add_raw(key, kGgufI32, le_u32(static_cast<uint32_t>(value)));
}
void GgufWriter::add_u64(const std::string& key, uint64_t value) { add_raw(key, kGgufU64, le_u64(value)); }
void GgufWriter::add_f32(const std::string& key, float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  add_raw(key, kGgufF32, le_u32(bits));
}
void GgufWriter::add_bool(const std::string& key, bool value) {
  add_raw(key, kGgufBool, std::string(1, value ? 1 : 0));
}

void GgufWriter::add_strings(const std::string& key, const std::vector<std::string>& values) {
  std::string payload = le_u32(kGgufString) + le_u64(values.size());
  for (const auto& v : values) payload += gguf_string(v);
  add_raw(key, kGgufArray, payload);
}

void GgufWriter::add_i32s(const std::string& key, const std::vector<int32_t>& values) {
  std::string payload = le_u32(kGgufI32) + le_u64(values.size());
  for (int32_t v : values) payload += le_u32(static_cast<uint32_t>(v));
  add_raw(key, kGgufArray, payload);
}

void GgufWriter::add_f32s(const std::string& key, const std::vector<float>& values) {
  std::string payload = le_u32(kGgufF32) + le_u64(values.size());
  for (float v : values) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    payload += le_u32(bits);
  }
  add_raw(key, kGgufArray, payload);
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<uint64_t>& ne, uint32_t type,
                            const std::string& data, std::optional<uint64_t> offset) {
  uint64_t at = offset ? *offset : (next_offset_ + alignment - 1) / alignment * alignment;
  tensors_.push_back(Tensor{name, ne, type, data, at});
  if (!offset) next_offset_ = at + data.size();
}

void GgufWriter::add_f32_tensor(const std::string& name, const std::vector<uint64_t>& ne,
                                const std::vector<float>& values) {
  std::string data(values.size() * 4, '\0');
  std::memcpy(data.data(), values.data(), data.size());
  add_tensor(name, ne, kGgmlF32, data);
}

std::string GgufWriter::bytes() const {
  std::string out = "GGUF" + le_u32(version);
  out += le_u64(tensor_count_override ? *tensor_count_override : tensors_.size());
  out += le_u64(kv_count_override ? *kv_count_override : kvs_.size());
  for (const auto& [key, value] : kvs_) out += gguf_string(key) + value;
  for (const Tensor& t : tensors_) {
    out += gguf_string(t.name) + le_u32(static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) out += le_u64(d);
    out += le_u32(t.type) + le_u64(t.offset);
  }
  out.append((alignment - out.size() % alignment) % alignment, '\0');
  std::string data;
  constexpr uint64_t kMaxDataBytes = uint64_t{1} << 24;
  for (const Tensor& t : tensors_) {
    if (t.offset > kMaxDataBytes || t.data.size() > kMaxDataBytes - t.offset) continue;
    if (data.size() < t.offset + t.data.size()) data.resize(t.offset + t.data.size(), '\0');
    std::memcpy(data.data() + t.offset, t.data.data(), t.data.size());
  }
  return out + data;
}

void GgufWriter::write(const std::string& path) const {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  const std::string b = bytes();
  out.write(b.data(), static_cast<std::streamsize>(b.size()));
  if (!out.good()) throw std::runtime_error("cannot write " + path);
}

std::string gpt2_byte_char(uint8_t byte) {
  // Printable Latin-1 bytes stand for themselves; the others, in byte order, for U+0100 onward.
  auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
  int code = byte;
  if (!printable(byte)) {
    int n = 0;
    for (int b = 0; b < byte; ++b) n += printable(b) ? 0 : 1;
    code = 256 + n;
  }
  std::string out;
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
  return out;
}

std::vector<std::string> tiny_llama_merges() {
  const std::string space = gpt2_byte_char(' ');
  return {"h e",       "l l",           "he ll", "hell o", space + " w", "o r", space + "w or", space + "wor l",
          space + "worl d", "1 2"};
}

std::vector<std::string> tiny_llama_tokens() {
  std::vector<std::string> tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  for (int b = 0; b < 256; ++b) tokens.push_back(gpt2_byte_char(static_cast<uint8_t>(b)));
  for (const std::string& m : tiny_llama_merges()) {
    const size_t space = m.find(' ');
    tokens.push_back(m.substr(0, space) + m.substr(space + 1));
  }
  return tokens;
}

const std::vector<float>& TinyLlamaWeights::get(const std::string& hf_name) const {
  for (const auto& [name, values] : tensors)
    if (name == hf_name) return values;
  throw std::runtime_error("no tensor " + hf_name);
}

std::vector<float> permute_qk_like_convert(const std::vector<float>& hf, int64_t heads, int64_t rows, int64_t cols) {
  // reshape(heads, 2, D/2, cols).swapaxes(1, 2): element [h][i][s] of the result is [h][s][i].
  const int64_t head_dim = rows / heads, half = head_dim / 2;
  std::vector<float> out(hf.size());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t s = 0; s < 2; ++s)
        for (int64_t c = 0; c < cols; ++c)
          out[(h * head_dim + i * 2 + s) * cols + c] = hf[(h * head_dim + s * half + i) * cols + c];
  return out;
}

TinyLlamaWeights write_tiny_llama_gguf(const std::string& path, const TinyLlamaGguf& s) {
  const std::vector<std::string> tokens = tiny_llama_tokens();
  const int64_t vocab = static_cast<int64_t>(tokens.size());
  const int64_t head_dim = s.hidden / s.heads;
  GgufWriter w;
  w.add_string("general.architecture", s.architecture);
  w.add_string("general.name", "tiny test llama");
  w.add_u32("llama.block_count", static_cast<uint32_t>(s.layers));
  w.add_u32("llama.context_length", 256);
  w.add_u32("llama.embedding_length", static_cast<uint32_t>(s.hidden));
  w.add_u32("llama.feed_forward_length", static_cast<uint32_t>(s.intermediate));
  w.add_u32("llama.attention.head_count", static_cast<uint32_t>(s.heads));
  w.add_u32("llama.attention.head_count_kv", static_cast<uint32_t>(s.kv_heads));
  w.add_f32("llama.rope.freq_base", 100000.0f);
  w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.add_u32("llama.vocab_size", static_cast<uint32_t>(vocab));
  w.add_u32("llama.rope.dimension_count", static_cast<uint32_t>(head_dim));
  w.add_string("tokenizer.ggml.model", s.tokenizer_model);
  w.add_string("tokenizer.ggml.pre", s.pre);
  w.add_strings("tokenizer.ggml.tokens", tokens);
  std::vector<int32_t> types(tokens.size(), 1);
  types[0] = types[1] = types[2] = 3;
  w.add_i32s("tokenizer.ggml.token_type", types);
  w.add_strings("tokenizer.ggml.merges", tiny_llama_merges());
  w.add_u32("tokenizer.ggml.bos_token_id", 1);
  w.add_u32("tokenizer.ggml.eos_token_id", 2);
  w.add_u32("tokenizer.ggml.unknown_token_id", 0);
  w.add_u32("tokenizer.ggml.padding_token_id", 2);
  w.add_bool("tokenizer.ggml.add_bos_token", s.add_bos);
  w.add_string("tokenizer.chat_template",
               "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
               "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
               "{% endif %}");

  std::mt19937_64 rng(s.seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  TinyLlamaWeights weights;
  // Adds a weight of HF shape [rows, cols] (ne [cols, rows]); `permute_heads` > 0 stores it as
  // convert_hf_to_gguf.py stores q/k.
  auto add = [&](const std::string& gguf, const std::string& hf, int64_t rows, int64_t cols, float mean = 0.0f,
                 int64_t permute_heads = 0) {
    std::vector<float> values(static_cast<size_t>(rows * cols));
    for (float& v : values) v = mean + normal(rng);
    weights.tensors.emplace_back(hf, values);
    const std::vector<float> stored =
        permute_heads > 0 ? permute_qk_like_convert(values, permute_heads, rows, cols) : values;
    const uint64_t r = static_cast<uint64_t>(rows), c = static_cast<uint64_t>(cols);
    std::vector<uint64_t> ne = cols == 1 ? std::vector<uint64_t>{r} : std::vector<uint64_t>{c, r};
    if (gguf != s.skip_tensor) w.add_f32_tensor(gguf, ne, stored);
  };
  add("token_embd.weight", "model.embed_tokens.weight", vocab, s.hidden);
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".", l = "model.layers." + std::to_string(i) + ".";
    add(b + "attn_norm.weight", l + "input_layernorm.weight", s.hidden, 1, 1.0f);
    add(b + "attn_q.weight", l + "self_attn.q_proj.weight", s.heads * head_dim, s.hidden, 0.0f, s.heads);
    add(b + "attn_k.weight", l + "self_attn.k_proj.weight", s.kv_heads * head_dim, s.hidden, 0.0f, s.kv_heads);
    add(b + "attn_v.weight", l + "self_attn.v_proj.weight", s.kv_heads * head_dim, s.hidden);
    add(b + "attn_output.weight", l + "self_attn.o_proj.weight", s.hidden, s.heads * head_dim);
    add(b + "ffn_norm.weight", l + "post_attention_layernorm.weight", s.hidden, 1, 1.0f);
    add(b + "ffn_gate.weight", l + "mlp.gate_proj.weight", s.intermediate, s.hidden);
    add(b + "ffn_up.weight", l + "mlp.up_proj.weight", s.intermediate, s.hidden);
    add(b + "ffn_down.weight", l + "mlp.down_proj.weight", s.hidden, s.intermediate);
  }
  add("output_norm.weight", "model.norm.weight", s.hidden, 1, 1.0f);
  if (!s.tied) add("output.weight", "lm_head.weight", vocab, s.hidden);
  if (!s.extra_tensor.empty()) add(s.extra_tensor, s.extra_tensor, s.hidden, 1);
  w.write(path);
  return weights;
}

}  // namespace nibble::testing
