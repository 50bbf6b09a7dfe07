#include "nibble/text/tokenizer.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "nibble/core/error.h"
#include "nibble/core/json_depth.h"
#include "nibble/text/tokenizer_json.h"
#include "nibble/text/unicode.h"

namespace nibble {

namespace tj = tokenizer_json;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  NIBBLE_CHECK(in.good(), "{}: cannot open file (expected a readable tokenizer file)", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool file_exists(const std::string& path) { return std::ifstream(path).good(); }

nlohmann::json parse_json(const std::string& text, const std::string& where) {
  try {
    return nlohmann::json::parse(text, json_depth_limit<nlohmann::json>(where));
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for 1e999
    fail("{}: bad JSON ({}); expected a tokenizer JSON object", where, e.what());
  }
}

// A special token in tokenizer_config.json: a string, an AddedToken object, or null.
std::optional<std::string> config_token(const nlohmann::json& config, const char* key,
                                        const std::string& where) {
  if (!config.contains(key) || config[key].is_null()) return std::nullopt;
  const auto& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object()) return tj::string_field(v, "content", where, key);
  fail("{}: \"{}\" is {} (expected a string, an AddedToken object or null)", where, key,
       v.type_name());
}

}  // namespace

Tokenizer Tokenizer::from_file(const std::string& path) {
  return from_json_string(read_file(path), path);
}

Tokenizer Tokenizer::load(const std::string& model_dir) {
  Tokenizer tok = from_file(model_dir + "/tokenizer.json");
  for (const char* name : {"special_tokens_map.json", "tokenizer_config.json"}) {
    std::string path = model_dir + "/" + name;
    if (file_exists(path)) tok.apply_config(read_file(path), path);
  }
  return tok;
}

Tokenizer Tokenizer::from_json_string(const std::string& json_text, const std::string& where) {
  nlohmann::json root = parse_json(json_text, where);
  NIBBLE_CHECK(root.is_object(), "{}: top level is {} (expected an object)", where, root.type_name());
  NIBBLE_CHECK(root.contains("model") && !root["model"].is_null(),
               "{}: no \"model\" (expected a BPE model object)", where);
  Tokenizer tok;
  tok.model_ = BpeModel::from_json(root["model"], where);
  tok.normalizer_ = normalizer_from_json(root.value("normalizer", nlohmann::json()), where);
  tok.pre_tokenizer_ = pre_tokenizer_from_json(root.value("pre_tokenizer", nlohmann::json()), where);
  tok.decoder_ = decoder_from_json(root.value("decoder", nlohmann::json()), where);
  tok.template_ = post_processor_from_json(root.value("post_processor", nlohmann::json()), where);

  if (root.contains("added_tokens") && !root["added_tokens"].is_null()) {
    const auto& list = root["added_tokens"];
    NIBBLE_CHECK(list.is_array(), "{}: \"added_tokens\" is {} (expected an array)", where,
                 list.type_name());
    for (size_t i = 0; i < list.size(); ++i) {
      const auto& t = list[i];
      std::string what = fmt::format("added_tokens[{}]", i);
      AddedToken a;
      const auto& id = tj::field(t, "id", where, what);
      NIBBLE_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < INT32_MAX,
                   "{}: {} id {} is out of range (expected 0 <= id < 2^31-1)", where, what, id.dump());
      a.id = id.get<int32_t>();
      a.content = tj::string_field(t, "content", where, what);
      NIBBLE_CHECK(!a.content.empty(), "{}: {} has empty content", where, what);
      a.single_word = tj::optional_field(t, "single_word", false, where, what);
      a.lstrip = tj::optional_field(t, "lstrip", false, where, what);
      a.rstrip = tj::optional_field(t, "rstrip", false, where, what);
      a.special = tj::optional_field(t, "special", false, where, what);
      a.normalized = tj::optional_field(t, "normalized", !a.special, where, what);
      tok.added_by_content_[a.content] = a.id;
      tok.added_by_id_[a.id] = tok.added_.size();
      tok.added_.push_back(std::move(a));
    }
  }
  // Matchers hold pointers into added_, which no longer changes.
  std::vector<std::string> raw_patterns, norm_patterns;
  std::vector<const AddedToken*> raw_tokens, norm_tokens;
  for (const auto& a : tok.added_) {
    if (a.normalized) {
      norm_patterns.push_back(tok.normalizer_ ? tok.normalizer_->normalize(a.content) : a.content);
      norm_tokens.push_back(&a);
    } else {
      raw_patterns.push_back(a.content);
      raw_tokens.push_back(&a);
    }
  }
  tok.raw_matcher_ = std::make_unique<AddedTokenMatcher>();
  tok.raw_matcher_->build(std::move(raw_patterns), std::move(raw_tokens));
  tok.normalized_matcher_ = std::make_unique<AddedTokenMatcher>();
  tok.normalized_matcher_->build(std::move(norm_patterns), std::move(norm_tokens));

  tok.vocab_size_ = tok.model_->vocab_size();
  for (const auto& [content, id] : tok.added_by_content_)
    if (tok.model_->token_to_id(content) < 0) ++tok.vocab_size_;
  for (int32_t id : tok.template_.prefix)
    NIBBLE_CHECK(tok.id_to_token(id).has_value(), "{}: post_processor id {} is out of range (not "
                 "in the vocab or added tokens)", where, id);
  for (int32_t id : tok.template_.suffix)
    NIBBLE_CHECK(tok.id_to_token(id).has_value(), "{}: post_processor id {} is out of range (not "
                 "in the vocab or added tokens)", where, id);
  return tok;
}

void Tokenizer::apply_config(const std::string& config_json_text, const std::string& where) {
  nlohmann::json config = parse_json(config_json_text, where);
  NIBBLE_CHECK(config.is_object(), "{}: top level is {} (expected an object)", where,
               config.type_name());
  auto resolve = [&](const char* key, std::optional<int32_t>& slot) {
    if (!config.contains(key)) return;
    std::optional<std::string> token = config_token(config, key, where);
    if (!token) {
      slot.reset();
      return;
    }
    int32_t id = token_to_id(*token);
    NIBBLE_CHECK(id >= 0, "{}: {} \"{}\" is not a token of the tokenizer", where, key, *token);
    slot = id;
  };
  resolve("bos_token", bos_id_);
  resolve("eos_token", eos_id_);
  resolve("pad_token", pad_id_);
  // transformers rebuilds the template from these flags when the config sets them.
  bool has_bos = config.contains("add_bos_token"), has_eos = config.contains("add_eos_token");
  if (has_bos || has_eos) {
    bool add_bos = tj::optional_field(config, "add_bos_token", false, where, "tokenizer_config");
    bool add_eos = tj::optional_field(config, "add_eos_token", false, where, "tokenizer_config");
    NIBBLE_CHECK(!add_bos || bos_id_, "{}: add_bos_token is true but there is no bos_token", where);
    NIBBLE_CHECK(!add_eos || eos_id_, "{}: add_eos_token is true but there is no eos_token", where);
    template_.prefix.clear();
    template_.suffix.clear();
    if (add_bos) template_.prefix.push_back(*bos_id_);
    if (add_eos) template_.suffix.push_back(*eos_id_);
  }
}

void Tokenizer::encode_text(const std::string& text, bool at_start, std::vector<int32_t>& ids) const {
  std::vector<PreToken> pieces;
  PreToken whole{text, at_start};
  if (pre_tokenizer_)
    pre_tokenizer_->split(whole, pieces);
  else if (!text.empty())
    pieces.push_back(std::move(whole));
  for (const auto& p : pieces) model_->tokenize(p.text, ids);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  if (!unicode::is_valid_utf8(text)) fail("Tokenizer::encode: text is not valid UTF-8");
  std::vector<int32_t> ids;
  if (add_special_tokens) ids = template_.prefix;
  std::vector<TextSegment> raw;
  raw_matcher_->split(std::string(text), true, raw);
  std::vector<TextSegment> segments;
  for (auto& seg : raw) {
    if (seg.token_id >= 0) {
      ids.push_back(seg.token_id);
      continue;
    }
    std::string normalized = normalizer_ ? normalizer_->normalize(seg.text) : std::move(seg.text);
    segments.clear();
    normalized_matcher_->split(normalized, seg.at_start, segments);
    for (const auto& s : segments) {
      if (s.token_id >= 0)
        ids.push_back(s.token_id);
      else
        encode_text(s.text, s.at_start, ids);
    }
  }
  if (add_special_tokens) ids.insert(ids.end(), template_.suffix.begin(), template_.suffix.end());
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    auto added = added_by_id_.find(id);
    if (added != added_by_id_.end()) {
      if (!(skip_special_tokens && added_[added->second].special))
        tokens.push_back(added_[added->second].content);
      continue;
    }
    // Unknown ids are skipped, as HF does.
    if (const std::string* t = model_->id_to_token(id)) tokens.push_back(*t);
  }
  if (decoder_) return decoder_->decode(std::move(tokens));
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
  return out;
}

int32_t Tokenizer::token_to_id(std::string_view token) const {
  auto it = added_by_content_.find(std::string(token));
  if (it != added_by_content_.end()) return it->second;
  return model_->token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  auto it = added_by_id_.find(id);
  if (it != added_by_id_.end()) return added_[it->second].content;
  if (const std::string* t = model_->id_to_token(id)) return *t;
  return std::nullopt;
}

bool Tokenizer::is_special(int32_t id) const {
  auto it = added_by_id_.find(id);
  return it != added_by_id_.end() && added_[it->second].special;
}

}  // namespace nibble
