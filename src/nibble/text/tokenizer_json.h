// Small helpers for reading tokenizer.json with errors that name the file and the field.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "nibble/core/error.h"
#include "nibble/text/tokenizer_regex.h"

namespace nibble::tokenizer_json {

// obj[key], which must exist; `what` names the object ("normalizer Replace").
inline const nlohmann::json& field(const nlohmann::json& obj, const char* key,
                                   const std::string& where, const std::string& what) {
  NIBBLE_CHECK(obj.is_object() && obj.contains(key), "{}: {} has no \"{}\" field (expected one)",
               where, what, key);
  return obj[key];
}

inline std::string string_field(const nlohmann::json& obj, const char* key,
                                const std::string& where, const std::string& what) {
  const nlohmann::json& v = field(obj, key, where, what);
  NIBBLE_CHECK(v.is_string(), "{}: {} field \"{}\" is {} (expected a string)", where, what, key,
               v.type_name());
  return v.get<std::string>();
}

// obj[key] as a bool/number/string with a default when absent or null.
template <typename T>
T optional_field(const nlohmann::json& obj, const char* key, T fallback, const std::string& where,
                 const std::string& what) {
  if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return fallback;
  try {
    return obj[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("{}: {} field \"{}\" has the wrong type ({})", where, what, key, obj[key].type_name());
  }
}

// The type tag of a pipeline stage object.
inline std::string type_of(const nlohmann::json& obj, const std::string& where,
                           const std::string& what) {
  NIBBLE_CHECK(obj.is_object(), "{}: {} is {} (expected an object)", where, what, obj.type_name());
  return string_field(obj, "type", where, what);
}

// A {"String": "..."} or {"Regex": "..."} pattern.
inline TokenizerRegex pattern(const nlohmann::json& obj, const std::string& where,
                              const std::string& what) {
  NIBBLE_CHECK(obj.is_object(), "{}: {} pattern is {} (expected {{\"String\"|\"Regex\": ...}})",
               where, what, obj.type_name());
  if (obj.contains("String")) return TokenizerRegex(string_field(obj, "String", where, what), true, where);
  if (obj.contains("Regex")) return TokenizerRegex(string_field(obj, "Regex", where, what), false, where);
  fail("{}: {} pattern has neither \"String\" nor \"Regex\"", where, what);
}

}  // namespace nibble::tokenizer_json
