// GGUF -> HF folder on tiny models the test writes: the weights (Q/K rows back in HF order), the
// config, the tokenizer (nibble's Tokenizer loads it and encodes to known ids), LlamaModel loads
// the folder, and every unsupported model is refused before anything is written.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "io_test_util.h"
#include "nibble/backend/backend.h"
#include "nibble/core/half.h"
#include "nibble/io/gguf.h"
#include "nibble/io/gguf_to_hf.h"
#include "nibble/io/hf_config.h"
#include "nibble/io/safetensors.h"
#include "nibble/model/generate.h"
#include "nibble/model/llama.h"
#include "nibble/text/chat_template.h"
#include "nibble/text/tokenizer.h"
#include "tests/support/gguf_writer.h"

namespace nibble {
namespace {

using test::expect_error;
using test::ScratchDir;
using testing::TinyLlamaGguf;

// Imports a tiny model written with `spec`; returns the weights it was made from.
testing::TinyLlamaWeights import_tiny(const ScratchDir& dir, const TinyLlamaGguf& spec = {}) {
  testing::TinyLlamaWeights weights = testing::write_tiny_llama_gguf(dir / "tiny.gguf", spec);
  std::filesystem::create_directories(dir / "hf");
  import_gguf(GgufFile::open(dir / "tiny.gguf"), dir / "hf");
  return weights;
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(std::ifstream(path)); }

int32_t byte_id(char c) { return 3 + static_cast<uint8_t>(c); }  // tiny_llama_tokens' layout

TEST(GgufImport, WeightsAreTheHfWeightsInBf16WithQAndKRowsUnpermuted) {
  ScratchDir dir;
  testing::TinyLlamaWeights weights = import_tiny(dir);
  SafetensorsFile st = SafetensorsFile::open(dir / "hf/model.safetensors");
  EXPECT_EQ(st.names().size(), weights.tensors.size());
  EXPECT_FALSE(st.contains("lm_head.weight"));  // tied
  for (const auto& [name, values] : weights.tensors) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(st.contains(name));
    Tensor t = st.tensor(name);
    ASSERT_EQ(t.dtype(), DType::bf16);
    ASSERT_EQ(static_cast<size_t>(t.numel()), values.size());
    int64_t differ = 0;
    for (size_t i = 0; i < values.size(); ++i) differ += t.data_as<bf16_t>()[i].bits != float_to_bf16(values[i]).bits;
    EXPECT_EQ(differ, 0);
  }
  EXPECT_EQ(st.shape("model.layers.1.self_attn.q_proj.weight"), (Shape{64, 64}));
  EXPECT_EQ(st.shape("model.layers.1.self_attn.k_proj.weight"), (Shape{32, 64}));
  EXPECT_EQ(st.shape("model.layers.0.mlp.down_proj.weight"), (Shape{64, 96}));
  EXPECT_EQ(st.shape("model.embed_tokens.weight"), (Shape{269, 64}));
}

TEST(GgufImport, UnpermuteInvertsConvertsPermutation) {
  // 3 heads of dimension 8 over 5 columns: the exact row order, and a round trip.
  const int64_t heads = 3, rows = 24, cols = 5;
  std::vector<float> hf(rows * cols);
  for (size_t i = 0; i < hf.size(); ++i) hf[i] = static_cast<float>(i);
  std::vector<float> stored = testing::permute_qk_like_convert(hf, heads, rows, cols);
  ASSERT_NE(stored, hf);
  Tensor t = Tensor::empty({rows, cols}, DType::f32);
  std::memcpy(t.data(), stored.data(), stored.size() * 4);
  Tensor back = gguf_unpermute_qk(t, heads);
  EXPECT_EQ(std::vector<float>(back.data_as<float>(), back.data_as<float>() + hf.size()), hf);
  // GGUF row 1 of head 0 is HF row D/2 = 4: Meta's interleaved order pairs rows i and i + D/2.
  EXPECT_EQ(stored[1 * cols], hf[4 * cols]);
  EXPECT_EQ(stored[(8 + 3) * cols], hf[(8 + 4 + 1) * cols]);
}

TEST(GgufImport, ConfigComesFromTheLlamaMetadata) {
  ScratchDir dir;
  import_tiny(dir);
  nlohmann::json c = read_json(dir / "hf/config.json");
  EXPECT_EQ(c["architectures"], nlohmann::json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(c["model_type"], "llama");
  EXPECT_EQ(c["hidden_size"], 64);
  EXPECT_EQ(c["intermediate_size"], 96);
  EXPECT_EQ(c["num_hidden_layers"], 2);
  EXPECT_EQ(c["num_attention_heads"], 4);
  EXPECT_EQ(c["num_key_value_heads"], 2);
  EXPECT_EQ(c["head_dim"], 16);
  EXPECT_EQ(c["vocab_size"], 269);
  EXPECT_EQ(c["max_position_embeddings"], 256);
  EXPECT_EQ(c["rms_norm_eps"].get<double>(), 1e-5);  // the f32 9.9999997e-06 spelled as the model's 1e-05
  EXPECT_EQ(c["rope_theta"].get<double>(), 100000.0);
  EXPECT_EQ(c["tie_word_embeddings"], true);
  EXPECT_EQ(c["torch_dtype"], "bfloat16");
  EXPECT_EQ(c["bos_token_id"], 1);
  EXPECT_EQ(c["eos_token_id"], 2);
  EXPECT_TRUE(c["rope_scaling"].is_null());
  ModelConfig parsed = load_model_config(dir / "hf");  // nibble's own reader accepts it
  EXPECT_EQ(parsed.head_dim, 16);
  EXPECT_TRUE(parsed.tie_word_embeddings);
  EXPECT_EQ(read_json(dir / "hf/generation_config.json")["eos_token_id"], 2);
}

TEST(GgufImport, UntiedModelGetsLmHead) {
  ScratchDir dir;
  TinyLlamaGguf spec;
  spec.tied = false;
  testing::TinyLlamaWeights weights = import_tiny(dir, spec);
  EXPECT_EQ(read_json(dir / "hf/config.json")["tie_word_embeddings"], false);
  SafetensorsFile st = SafetensorsFile::open(dir / "hf/model.safetensors");
  ASSERT_TRUE(st.contains("lm_head.weight"));
  EXPECT_EQ(st.tensor("lm_head.weight").data_as<bf16_t>()[7].bits,
            float_to_bf16(weights.get("lm_head.weight")[7]).bits);
}

TEST(GgufImport, TokenizerEncodesAsTheVocabularyAndPreTokenizerSay) {
  ScratchDir dir;
  import_tiny(dir);
  Tokenizer tok = Tokenizer::load(dir / "hf");
  EXPECT_EQ(tok.vocab_size(), 269u);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.pad_id(), 2);
  // Merges: "hello" and " world" are single tokens (ids 262 and 267).
  EXPECT_EQ(tok.encode("hello world"), (std::vector<int32_t>{262, 267}));
  // smollm's pre-tokenizer isolates digits, so the merge "1 2" never applies.
  EXPECT_EQ(tok.encode("12"), (std::vector<int32_t>{byte_id('1'), byte_id('2')}));
  // Control tokens are special added tokens; no BOS is added (add_bos_token false).
  const std::string chat = "<|im_start|>user\nhi<|im_end|>";
  const std::vector<int32_t> ids = {1, byte_id('u'), byte_id('s'), byte_id('e'), byte_id('r'), byte_id('\n'),
                                    byte_id('h'), byte_id('i'), 2};
  EXPECT_EQ(tok.encode(chat), ids);
  EXPECT_EQ(tok.decode(ids), chat);
  EXPECT_EQ(tok.decode(ids, /*skip_special_tokens=*/true), "user\nhi");
  EXPECT_TRUE(tok.is_special(1));
  EXPECT_FALSE(tok.is_special(262));

  nlohmann::json tc = read_json(dir / "hf/tokenizer_config.json");
  EXPECT_EQ(tc["bos_token"], "<|im_start|>");
  EXPECT_EQ(tc["eos_token"], "<|im_end|>");
  EXPECT_EQ(tc["add_bos_token"], false);
  ChatTemplate templ = ChatTemplate::load(dir / "hf");
  nlohmann::ordered_json messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", "hi"}}});
  EXPECT_EQ(templ.render(messages, /*add_generation_prompt=*/true),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(GgufImport, Gpt2PreTokenizerKeepsDigitsTogether) {
  ScratchDir dir;
  TinyLlamaGguf spec;
  spec.pre = "gpt2";
  import_tiny(dir, spec);
  Tokenizer tok = Tokenizer::load(dir / "hf");
  EXPECT_EQ(tok.encode("12"), (std::vector<int32_t>{268}));
  EXPECT_EQ(tok.encode("hello world"), (std::vector<int32_t>{262, 267}));
}

TEST(GgufImport, LlamaBpeWithBosAddsItAndIgnoresMergesForWholeTokens) {
  ScratchDir dir;
  TinyLlamaGguf spec;
  spec.pre = "llama-bpe";
  spec.add_bos = true;
  import_tiny(dir, spec);
  Tokenizer tok = Tokenizer::load(dir / "hf");
  EXPECT_EQ(tok.encode("hello world"), (std::vector<int32_t>{1, 262, 267}));
  EXPECT_EQ(tok.encode("12", /*add_special_tokens=*/false), (std::vector<int32_t>{268}));
  // The BOS is in tokenizer.json itself (TemplateProcessing), as transformers needs it.
  Tokenizer bare = Tokenizer::from_file(dir / "hf/tokenizer.json");
  EXPECT_EQ(bare.encode("hi"), (std::vector<int32_t>{1, byte_id('h'), byte_id('i')}));
}

TEST(GgufImport, LlamaModelLoadsTheFolderAndGenerates) {
  ScratchDir dir;
  import_tiny(dir);
  std::unique_ptr<Backend> backend = make_backend(Device::cpu);
  LlamaModel model = LlamaModel::load(dir / "hf", *backend);
  EXPECT_EQ(model.hyper().vocab, 269);
  EXPECT_EQ(model.hyper().kv_heads, 2);
  EXPECT_TRUE(model.hyper().tied_embeddings);
  KvCache cache = model.make_cache(16);
  Tensor logits = model.forward({1, 262, 267}, cache).to(Device::cpu);
  ASSERT_EQ(logits.shape(), (Shape{3, 269}));
  for (int64_t i = 0; i < logits.numel(); ++i) ASSERT_TRUE(std::isfinite(logits.data_as<float>()[i])) << i;
  KvCache gen_cache = model.make_cache(16);
  GenerateOptions options;
  options.max_new_tokens = 4;
  GenerateResult r = generate(model, gen_cache, {1, 262}, options);
  EXPECT_GE(r.tokens.size(), 1u);
}

TEST(GgufImport, UnsupportedModelsAreRefusedBeforeWriting) {
  struct Case {
    std::function<void(TinyLlamaGguf&)> change;
    std::vector<std::string> fragments;
  };
  const std::vector<Case> cases = {
      {[](TinyLlamaGguf& s) { s.architecture = "gpt2"; },
       {"tiny.gguf", "general.architecture is \"gpt2\"", "imports \"llama\""}},
      {[](TinyLlamaGguf& s) { s.tokenizer_model = "llama"; },
       {"tokenizer.ggml.model is \"llama\"", "SentencePiece"}},
      {[](TinyLlamaGguf& s) { s.tokenizer_model = "bert"; }, {"tokenizer.ggml.model is \"bert\""}},
      {[](TinyLlamaGguf& s) { s.pre = "deepseek-coder"; }, {"tokenizer.ggml.pre is \"deepseek-coder\"", "smollm"}},
      {[](TinyLlamaGguf& s) { s.skip_tensor = "blk.1.ffn_up.weight"; }, {"tensor 'blk.1.ffn_up.weight' is missing"}},
      {[](TinyLlamaGguf& s) { s.extra_tensor = "blk.0.attn_q.bias"; }, {"unexpected tensor 'blk.0.attn_q.bias'"}},
      {[](TinyLlamaGguf& s) { s.extra_tensor = "blk.2.attn_norm.weight"; },
       {"unexpected tensor 'blk.2.attn_norm.weight'"}},
      {[](TinyLlamaGguf& s) { s.extra_tensor = "rope_freqs.weight"; }, {"'rope_freqs.weight'", "not supported"}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    ScratchDir dir;
    TinyLlamaGguf spec;
    cases[i].change(spec);
    testing::write_tiny_llama_gguf(dir / "tiny.gguf", spec);
    std::filesystem::create_directories(dir / "hf");
    bool refused = false;
    try {
      import_gguf(GgufFile::open(dir / "tiny.gguf"), dir / "hf");
    } catch (const Error& e) {
      refused = true;
      for (const std::string& f : cases[i].fragments)
        EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what() << "\nmissing: " << f;
    }
    EXPECT_TRUE(refused);
    EXPECT_TRUE(std::filesystem::is_empty(dir / "hf")) << "nothing is written for a refused model";
  }
}

TEST(GgufImport, WrongShapesAndMetadataAreNamed) {
  ScratchDir dir;
  // A q weight whose shape disagrees with the head count.
  testing::GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u32("llama.block_count", 1);
  w.add_u32("llama.context_length", 64);
  w.add_u32("llama.embedding_length", 32);
  w.add_u32("llama.feed_forward_length", 32);
  w.add_u32("llama.attention.head_count", 2);
  w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-6f);
  w.add_f32_tensor("token_embd.weight", {32, 4}, std::vector<float>(128, 0.0f));
  w.add_f32_tensor("blk.0.attn_q.weight", {32, 16}, std::vector<float>(512, 0.0f));
  w.write(dir / "bad.gguf");
  GgufFile f = GgufFile::open(dir / "bad.gguf");
  expect_error([&] { import_gguf(f, dir.path()); }, {"bad.gguf", "tensor 'blk.0.attn_q.weight' has ne [32, 16]",
                                                     "expected [32, 32]"});
  testing::GgufWriter m;
  m.add_string("general.architecture", "llama");
  m.add_u32("llama.embedding_length", 32);
  GgufFile g = [&] {
    m.write(dir / "meta.gguf");
    return GgufFile::open(dir / "meta.gguf");
  }();
  expect_error([&] { gguf_to_hf_config(g); }, {"meta.gguf", "'llama.feed_forward_length' is missing"});
  testing::GgufWriter split;
  split.add_string("general.architecture", "llama");
  split.add_raw("split.no", testing::kGgufU16, std::string("\x01\x00", 2));
  split.add_raw("split.count", testing::kGgufU16, std::string("\x03\x00", 2));
  split.write(dir / "split.gguf");
  GgufFile h = GgufFile::open(dir / "split.gguf");
  expect_error([&] { gguf_to_hf_config(h); }, {"split.gguf: this is part 2 of a GGUF split into 3 files"});
}

TEST(GgufImport, TensorNames) {
  EXPECT_EQ(gguf_to_hf_tensor_name("blk.12.attn_output.weight"), "model.layers.12.self_attn.o_proj.weight");
  EXPECT_EQ(gguf_to_hf_tensor_name("blk.0.ffn_norm.weight"), "model.layers.0.post_attention_layernorm.weight");
  EXPECT_EQ(gguf_to_hf_tensor_name("output.weight"), "lm_head.weight");
  EXPECT_EQ(gguf_to_hf_tensor_name("blk.0.attn_q.bias"), std::nullopt);
  EXPECT_EQ(gguf_to_hf_tensor_name("blk.0.attn_qkv.weight"), std::nullopt);
}

}  // namespace
}  // namespace nibble
