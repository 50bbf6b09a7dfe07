#include "nibble/text/tokenizer_post_processor.h"

#include <nlohmann/json.hpp>

#include "nibble/core/error.h"
#include "nibble/text/tokenizer_json.h"

namespace nibble {

namespace tj = tokenizer_json;

namespace {

void append_template(const nlohmann::json& spec, const std::string& where, SpecialTokenTemplate& out) {
  const std::string what = "post_processor TemplateProcessing";
  const auto& single = tj::field(spec, "single", where, what);
  const auto& specials = tj::field(spec, "special_tokens", where, what);
  NIBBLE_CHECK(single.is_array(), "{}: {} \"single\" is not an array", where, what);
  // Prefix and suffix are relative to $A; with several post-processors they nest.
  std::vector<int32_t> before, after;
  bool seen_sequence = false;
  for (const auto& piece : single) {
    if (piece.contains("Sequence")) {
      std::string id = tj::string_field(piece["Sequence"], "id", where, what + " Sequence");
      NIBBLE_CHECK(id == "A", "{}: {} single template uses ${} (expected only $A)", where, what, id);
      seen_sequence = true;
      continue;
    }
    NIBBLE_CHECK(piece.contains("SpecialToken"),
                 "{}: {} template piece {} (expected SpecialToken or Sequence)", where, what,
                 piece.dump());
    std::string name = tj::string_field(piece["SpecialToken"], "id", where, what + " SpecialToken");
    NIBBLE_CHECK(specials.contains(name), "{}: {} uses special token \"{}\" missing from "
                 "\"special_tokens\"", where, what, name);
    const auto& ids = tj::field(specials[name], "ids", where, what + " special_tokens");
    NIBBLE_CHECK(ids.is_array(), "{}: {} special_tokens[\"{}\"].ids is not an array", where, what, name);
    for (const auto& id : ids) {
      NIBBLE_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < INT32_MAX,
                   "{}: {} special_tokens[\"{}\"] id {} is out of range (expected 0 <= id < 2^31-1)",
                   where, what, name, id.dump());
      (seen_sequence ? after : before).push_back(id.get<int32_t>());
    }
  }
  NIBBLE_CHECK(seen_sequence, "{}: {} single template has no $A", where, what);
  out.prefix.insert(out.prefix.end(), before.begin(), before.end());
  out.suffix.insert(out.suffix.begin(), after.begin(), after.end());
}

// BertProcessing / RobertaProcessing: [cls] $A [sep], each given as [token, id].
void append_cls_sep(const nlohmann::json& spec, const std::string& where, const std::string& what,
                    SpecialTokenTemplate& out) {
  auto id_of = [&](const char* key) {
    const auto& pair = tj::field(spec, key, where, what);
    NIBBLE_CHECK(pair.is_array() && pair.size() == 2 && pair[1].is_number_integer(),
                 "{}: {} \"{}\" is {} (expected [token, id])", where, what, key, pair.dump());
    return pair[1].get<int32_t>();
  };
  out.prefix.push_back(id_of("cls"));
  out.suffix.insert(out.suffix.begin(), id_of("sep"));
}

void append_processor(const nlohmann::json& spec, const std::string& where, SpecialTokenTemplate& out) {
  if (spec.is_null()) return;
  std::string type = tj::type_of(spec, where, "post_processor");
  if (type == "TemplateProcessing") {
    append_template(spec, where, out);
  } else if (type == "ByteLevel") {
    // Only adjusts offsets, which nibble does not track.
  } else if (type == "Sequence") {
    const auto& list = tj::field(spec, "processors", where, "post_processor Sequence");
    NIBBLE_CHECK(list.is_array(), "{}: post_processor Sequence \"processors\" is not an array", where);
    for (const auto& p : list) append_processor(p, where, out);
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    append_cls_sep(spec, where, "post_processor " + type, out);
  } else {
    fail("{}: unsupported post_processor type \"{}\" (expected TemplateProcessing, ByteLevel, "
         "Sequence, BertProcessing or RobertaProcessing)",
         where, type);
  }
}

}  // namespace

SpecialTokenTemplate post_processor_from_json(const nlohmann::json& spec, const std::string& where) {
  SpecialTokenTemplate out;
  append_processor(spec, where, out);
  return out;
}

}  // namespace nibble
