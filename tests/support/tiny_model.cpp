#include "tests/support/tiny_model.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "nibble/core/half.h"
#include "nibble/core/tensor.h"
#include "nibble/io/safetensors.h"

namespace nibble::testing {

namespace fs = std::filesystem;

namespace {

Tensor random_tensor(const Shape& shape, DType dtype, std::mt19937_64& rng, float stddev, float mean = 0.0f) {
  Tensor t = Tensor::empty(shape, dtype);
  std::normal_distribution<float> normal(mean, stddev);
  for (int64_t i = 0; i < t.numel(); ++i) {
    float v = normal(rng);
    switch (dtype) {
      case DType::f32: t.data_as<float>()[i] = v; break;
      case DType::bf16: t.data_as<bf16_t>()[i] = float_to_bf16(v); break;
      case DType::f16: t.data_as<fp16_t>()[i] = float_to_fp16(v); break;
      default: NIBBLE_ASSERT(false);
    }
  }
  return t;
}

}  // namespace

void write_tiny_llama(const std::string& dir, const TinyModelSpec& s) {
  fs::create_directories(dir);
  std::mt19937_64 rng(s.seed);
  const int64_t head_dim = s.hidden / s.heads;
  std::vector<std::pair<std::string, Tensor>> tensors;
  auto add = [&](const std::string& name, const Shape& shape, float mean = 0.0f, float stddev = -1.0f) {
    tensors.emplace_back(name, random_tensor(shape, s.dtype, rng, stddev < 0 ? s.stddev : stddev, mean));
  };
  add("model.embed_tokens.weight", {s.vocab, s.hidden});
  for (int64_t i = 0; i < s.layers; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    add(p + "input_layernorm.weight", {s.hidden}, 1.0f, 0.1f);
    add(p + "self_attn.q_proj.weight", {s.heads * head_dim, s.hidden});
    add(p + "self_attn.k_proj.weight", {s.kv_heads * head_dim, s.hidden});
    add(p + "self_attn.v_proj.weight", {s.kv_heads * head_dim, s.hidden});
    add(p + "self_attn.o_proj.weight", {s.hidden, s.heads * head_dim});
    add(p + "post_attention_layernorm.weight", {s.hidden}, 1.0f, 0.1f);
    add(p + "mlp.gate_proj.weight", {s.intermediate, s.hidden});
    add(p + "mlp.up_proj.weight", {s.intermediate, s.hidden});
    add(p + "mlp.down_proj.weight", {s.hidden, s.intermediate});
  }
  add("model.norm.weight", {s.hidden}, 1.0f, 0.1f);
  if (!s.tied) add("lm_head.weight", {s.vocab, s.hidden});
  save_safetensors(dir + "/model.safetensors", tensors);

  nlohmann::ordered_json config = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", s.hidden},
      {"intermediate_size", s.intermediate},
      {"num_hidden_layers", s.layers},
      {"num_attention_heads", s.heads},
      {"num_key_value_heads", s.kv_heads},
      {"head_dim", head_dim},
      {"vocab_size", s.vocab},
      {"max_position_embeddings", 256},
      {"rms_norm_eps", 1e-5},
      {"hidden_act", "silu"},
      {"rope_theta", 10000.0},
      {"tie_word_embeddings", s.tied},
      {"bos_token_id", 1},
      {"eos_token_id", 2},
      {"torch_dtype", std::string(dtype_torch_name(s.dtype))},
  };
  std::ofstream(dir + "/config.json") << config.dump(2) << "\n";
}

void write_tiny_tokenizer(const std::string& dir) {
  const std::string golden = std::string(NIBBLE_SOURCE_DIR) + "/tests/golden";
  fs::copy_file(golden + "/tokenizers/smollm2/tokenizer.json", dir + "/tokenizer.json",
                fs::copy_options::overwrite_existing);
  std::ifstream template_file(golden + "/chat_templates/smollm2_instruct.jinja");
  const std::string chat_template((std::istreambuf_iterator<char>(template_file)), std::istreambuf_iterator<char>());
  NIBBLE_CHECK(!chat_template.empty(), "tests/golden/chat_templates/smollm2_instruct.jinja is missing");
  const nlohmann::json config = {{"bos_token", "<|im_start|>"},
                                 {"eos_token", "<|im_end|>"},
                                 {"pad_token", "<|im_end|>"},
                                 {"chat_template", chat_template}};
  std::ofstream(dir + "/tokenizer_config.json") << config.dump(1) << "\n";
}

TempDir::TempDir(const std::string& prefix) {
  std::string pattern = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  NIBBLE_CHECK(mkdtemp(buffer.data()) != nullptr, "cannot create a temporary folder from {}", pattern);
  path_ = buffer.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

}  // namespace nibble::testing
