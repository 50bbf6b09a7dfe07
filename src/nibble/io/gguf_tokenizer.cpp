#include "nibble/io/gguf_tokenizer.h"

#include <optional>
#include <unordered_set>
#include <vector>

#include "nibble/core/error.h"
#include "nibble/core/python_text.h"
#include "nibble/io/python_json.h"

namespace nibble {

namespace {

using Json = nlohmann::ordered_json;

// llama.cpp's token_type values (llama_token_type / gguf-py TokenType).
constexpr int64_t kTokenNormal = 1;
constexpr int64_t kTokenUnknown = 2;
constexpr int64_t kTokenControl = 3;
constexpr int64_t kTokenUserDefined = 4;

// The HF pre-tokenizer (and normalizer) each llama.cpp pre-tokenizer name stands for: the
// tokenizer.json of the models convert_hf_to_gguf.py gives that name.
struct PreTokenizerSpec {
  Json normalizer;
  Json pre_tokenizer;
  bool ignore_merges = false;
};

Json byte_level(bool use_regex) {
  return Json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

Json split_then_byte_level(const char* regex) {
  Json split = {{"type", "Split"},
                {"pattern", {{"Regex", regex}}},
                {"behavior", "Isolated"},
                {"invert", false}};
  return Json{{"type", "Sequence"}, {"pretokenizers", Json::array({split, byte_level(false)})}};
}

std::optional<PreTokenizerSpec> pre_tokenizer_for(const std::string& pre) {
  PreTokenizerSpec spec;
  if (pre == "gpt2") {
    spec.pre_tokenizer = byte_level(true);  // GPT-2's own regex, which ByteLevel applies
    return spec;
  }
  if (pre == "smollm" || pre == "starcoder") {
    // Every digit on its own, then GPT-2's regex.
    Json digits = {{"type", "Digits"}, {"individual_digits", true}};
    spec.pre_tokenizer = Json{{"type", "Sequence"}, {"pretokenizers", Json::array({digits, byte_level(true)})}};
    return spec;
  }
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") {
    spec.pre_tokenizer = split_then_byte_level(
        R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)");
    spec.ignore_merges = true;  // Llama 3's tokenizer.json sets it; llama.cpp does the same for this name
    return spec;
  }
  if (pre == "qwen2") {
    spec.normalizer = Json{{"type", "NFC"}};
    spec.pre_tokenizer = split_then_byte_level(
        R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)");
    return spec;
  }
  return std::nullopt;
}

// A special token id from tokenizer.ggml.<name>_token_id, checked against the vocab.
std::optional<int64_t> special_id(const GgufFile& file, const char* name, size_t vocab) {
  const std::string key = fmt::format("tokenizer.ggml.{}_token_id", name);
  if (!file.has(key)) return std::nullopt;
  int64_t id = file.integer(key);
  NIBBLE_CHECK(id >= 0 && static_cast<uint64_t>(id) < vocab, "{}: {} is {}; expected a token id below the vocab "
               "size {}", file.path(), key, id, vocab);
  return id;
}

bool optional_bool(const GgufFile& file, const std::string& key, bool fallback) {
  return file.has(key) ? file.boolean(key) : fallback;
}

// "a b" -> {"a", "b"}, split at the first space after the first byte, as llama.cpp reads merges
// (a token may itself be a space in vocabularies that are not byte-level).
std::pair<std::string, std::string> split_merge(const GgufFile& file, const std::string& merge, size_t index) {
  const size_t space = merge.find(' ', 1);
  NIBBLE_CHECK(space != std::string::npos && space + 1 < merge.size(), "{}: tokenizer.ggml.merges[{}] is \"{}\"; "
               "expected two tokens separated by a space", file.path(), index, merge);
  return {merge.substr(0, space), merge.substr(space + 1)};
}

std::string json_string(const std::string& text) {
  std::string out;
  append_python_json_string(out, text, /*ensure_ascii=*/false);
  return out;
}

std::string compact(const Json& value) { return python_json_dumps(value, -1, false); }

// The chat template: tokenizer.chat_template, plus named ones (tokenizer.chat_template.<name>),
// which tokenizer_config.json holds as a list of {name, template} with the plain one as "default".
Json chat_template(const GgufFile& file) {
  const std::string prefix = "tokenizer.chat_template.";
  Json named = Json::array();
  for (const std::string& key : file.keys())
    if (key.compare(0, prefix.size(), prefix) == 0)
      named.push_back(Json{{"name", key.substr(prefix.size())}, {"template", file.string(key)}});
  const bool has_default = file.has("tokenizer.chat_template");
  if (named.empty()) return has_default ? Json(file.string("tokenizer.chat_template")) : Json();
  Json list = Json::array();
  if (has_default) list.push_back(Json{{"name", "default"}, {"template", file.string("tokenizer.chat_template")}});
  for (auto& t : named) list.push_back(std::move(t));
  return list;
}

}  // namespace

HfTokenizerFiles gguf_to_hf_tokenizer(const GgufFile& file) {
  const std::string& path = file.path();
  const std::string model = file.string("tokenizer.ggml.model");
  NIBBLE_CHECK(model == "gpt2", "{}: tokenizer.ggml.model is \"{}\"; nibble can only rebuild \"gpt2\" (byte-level "
               "BPE) tokenizers{}", path, model,
               model == "llama" ? " (SentencePiece vocabularies are not supported yet)" : "");
  const std::string pre = file.has("tokenizer.ggml.pre") ? file.string("tokenizer.ggml.pre") : "default";
  std::optional<PreTokenizerSpec> spec = pre_tokenizer_for(pre);
  NIBBLE_CHECK(spec.has_value(), "{}: tokenizer.ggml.pre is \"{}\"; expected one of gpt2, smollm, starcoder, "
               "llama-bpe, llama3, llama-v3, qwen2 (the pre-tokenizers nibble can write as tokenizer.json)", path, pre);

  const std::vector<std::string> tokens = file.string_array("tokenizer.ggml.tokens");
  NIBBLE_CHECK(!tokens.empty(), "{}: tokenizer.ggml.tokens is empty; expected the vocabulary", path);
  std::vector<int64_t> types(tokens.size(), kTokenNormal);
  if (file.has("tokenizer.ggml.token_type")) {
    types = file.integer_array("tokenizer.ggml.token_type");
    NIBBLE_CHECK(types.size() == tokens.size(), "{}: tokenizer.ggml.token_type has {} entries; expected one per "
                 "token ({})", path, types.size(), tokens.size());
  }
  const std::vector<std::string> merges = file.string_array("tokenizer.ggml.merges");

  const size_t vocab = tokens.size();
  std::optional<int64_t> bos = special_id(file, "bos", vocab), eos = special_id(file, "eos", vocab),
                         unk = special_id(file, "unknown", vocab), pad = special_id(file, "padding", vocab);
  const bool add_bos = optional_bool(file, "tokenizer.ggml.add_bos_token", false);
  const bool add_eos = optional_bool(file, "tokenizer.ggml.add_eos_token", false);
  NIBBLE_CHECK(!add_bos || bos, "{}: tokenizer.ggml.add_bos_token is true but there is no bos_token_id", path);
  NIBBLE_CHECK(!add_eos || eos, "{}: tokenizer.ggml.add_eos_token is true but there is no eos_token_id", path);

  Json added = Json::array();
  for (size_t id = 0; id < vocab; ++id) {
    const int64_t type = types[id];
    if (type != kTokenControl && type != kTokenUserDefined && type != kTokenUnknown) continue;
    const bool special = type != kTokenUserDefined;
    added.push_back(Json{{"id", id}, {"content", tokens[id]}, {"single_word", false}, {"lstrip", false},
                         {"rstrip", false}, {"normalized", !special}, {"special", special}});
  }

  Json post_processor = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false},
                         {"use_regex", true}};
  if (add_bos || add_eos) {
    // HF's TemplateProcessing: BOS (and EOS) around every sequence.
    Json specials = Json::object();
    auto special = [&](int64_t id, int type_id) {
      specials[tokens[id]] =
          Json{{"id", tokens[id]}, {"ids", Json::array({id})}, {"tokens", Json::array({tokens[id]})}};
      return Json{{"SpecialToken", {{"id", tokens[id]}, {"type_id", type_id}}}};
    };
    auto sequence = [&](int type_id) {
      Json pieces = Json::array();
      if (add_bos) pieces.push_back(special(*bos, type_id));
      pieces.push_back(Json{{"Sequence", {{"id", type_id == 0 ? "A" : "B"}, {"type_id", type_id}}}});
      if (add_eos) pieces.push_back(special(*eos, type_id));
      return pieces;
    };
    Json single = sequence(0);
    Json pair = sequence(0);
    for (auto& piece : sequence(1)) pair.push_back(piece);
    Json templ = {{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", specials}};
    post_processor = Json{{"type", "Sequence"}, {"processors", Json::array({post_processor, templ})}};
  }
  Json decoder = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};

  // Merges: "a b" strings unless a token contains a space, then [a, b] pairs for all
  // (tokenizers >= 0.20 reads both; older versions only the strings).
  std::vector<std::pair<std::string, std::string>> pairs;
  pairs.reserve(merges.size());
  bool needs_pairs = false;
  for (size_t i = 0; i < merges.size(); ++i) {
    pairs.push_back(split_merge(file, merges[i], i));
    needs_pairs = needs_pairs || (pairs.back().first + pairs.back().second).find(' ') != std::string::npos;
  }

  // tokenizer.json, written by hand: a 50k-entry vocab is too large for an ordered JSON object.
  std::string out = "{\n";
  out += "  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n";
  out += "  \"added_tokens\": " + compact(added) + ",\n";
  out += "  \"normalizer\": " + compact(spec->normalizer) + ",\n";
  out += "  \"pre_tokenizer\": " + compact(spec->pre_tokenizer) + ",\n";
  out += "  \"post_processor\": " + compact(post_processor) + ",\n";
  out += "  \"decoder\": " + compact(decoder) + ",\n";
  out += "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n";
  out += "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n";
  out += "    \"fuse_unk\": false,\n    \"byte_fallback\": false,\n";
  out += fmt::format("    \"ignore_merges\": {},\n", spec->ignore_merges ? "true" : "false");
  out += "    \"vocab\": {";
  std::unordered_set<std::string> seen;
  bool first = true;
  for (size_t id = 0; id < vocab; ++id) {
    // A repeated token string keeps its first id, as a JSON object can map it only once.
    if (!seen.insert(tokens[id]).second) continue;
    try {
      out += first ? "\n      " : ",\n      ";
      out += json_string(tokens[id]) + ": " + std::to_string(id);
    } catch (const Error& e) {
      fail("{}: tokenizer.ggml.tokens[{}]: {}; expected UTF-8 text", path, id, e.what());
    }
    first = false;
  }
  out += "\n    },\n    \"merges\": [";
  for (size_t i = 0; i < pairs.size(); ++i) {
    out += i == 0 ? "\n      " : ",\n      ";
    try {
      if (needs_pairs)
        out += "[" + json_string(pairs[i].first) + ", " + json_string(pairs[i].second) + "]";
      else
        out += json_string(pairs[i].first + " " + pairs[i].second);
    } catch (const Error& e) {
      fail("{}: tokenizer.ggml.merges[{}]: {}; expected UTF-8 text", path, i, e.what());
    }
  }
  out += "\n    ]\n  }\n}\n";

  Json config = Json::object();
  config["add_bos_token"] = add_bos;
  config["add_eos_token"] = add_eos;
  if (bos) config["bos_token"] = tokens[*bos];
  if (eos) config["eos_token"] = tokens[*eos];
  if (unk) config["unk_token"] = tokens[*unk];
  if (pad) config["pad_token"] = tokens[*pad];
  Json templ = chat_template(file);
  if (!templ.is_null()) config["chat_template"] = templ;
  config["clean_up_tokenization_spaces"] = false;
  const std::string context_key = file.string("general.architecture") + ".context_length";
  if (file.has(context_key)) config["model_max_length"] = file.integer(context_key);
  config["tokenizer_class"] = "PreTrainedTokenizerFast";
  return HfTokenizerFiles{std::move(out), std::move(config)};
}

}  // namespace nibble
