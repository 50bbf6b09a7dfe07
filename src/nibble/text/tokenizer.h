// A Hugging Face tokenizer.json BPE tokenizer: byte-level (GPT-2, Llama 3, Qwen2, SmolLM2) and
// SentencePiece-style (Llama 2, Mistral, TinyLlama). Ids match HF `tokenizers` exactly.
//
// Pipeline (as HF): split on added tokens -> normalizer -> split on normalized added tokens ->
// pre-tokenizer -> BPE per piece -> post-processor (BOS/EOS). Decode: ids -> token strings ->
// decoder chain. encode/decode are const and thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "nibble/text/bpe.h"
#include "nibble/text/normalizer.h"
#include "nibble/text/pre_tokenizer.h"
#include "nibble/text/tokenizer_added.h"
#include "nibble/text/tokenizer_decoder.h"
#include "nibble/text/tokenizer_post_processor.h"

namespace nibble {

class Tokenizer {
 public:
  // model_dir/tokenizer.json, plus model_dir/tokenizer_config.json when present (bos/eos/pad
  // tokens; add_bos_token/add_eos_token, which then decide the special tokens added).
  static Tokenizer load(const std::string& model_dir);
  static Tokenizer from_file(const std::string& tokenizer_json_path);
  // `where` names the source in error messages.
  static Tokenizer from_json_string(const std::string& json_text,
                                    const std::string& where = "tokenizer.json");

  // Applies tokenizer_config.json (or special_tokens_map.json) text; load() calls it.
  void apply_config(const std::string& config_json_text, const std::string& where);

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  // Added tokens first, then the model vocab. -1 / nullopt when absent.
  int32_t token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  // Distinct tokens in the model vocab and the added tokens together (HF get_vocab_size(True)).
  size_t vocab_size() const { return vocab_size_; }

  std::optional<int32_t> bos_id() const { return bos_id_; }
  std::optional<int32_t> eos_id() const { return eos_id_; }
  std::optional<int32_t> pad_id() const { return pad_id_; }
  bool is_special(int32_t id) const;

 private:
  Tokenizer() = default;
  void encode_text(const std::string& text, bool at_start, std::vector<int32_t>& ids) const;

  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<TokenDecoder> decoder_;
  SpecialTokenTemplate template_;
  std::vector<AddedToken> added_;
  std::unordered_map<std::string, int32_t> added_by_content_;
  std::unordered_map<int32_t, size_t> added_by_id_;  // index into added_
  std::unique_ptr<AddedTokenMatcher> raw_matcher_;         // normalized:false tokens
  std::unique_ptr<AddedTokenMatcher> normalized_matcher_;  // normalized:true tokens
  size_t vocab_size_ = 0;
  std::optional<int32_t> bos_id_, eos_id_, pad_id_;
};

}  // namespace nibble
