#include "nibble/text/dataset_format.h"

#include <array>

#include "nibble/core/error.h"
#include "nibble/core/json_depth.h"

namespace nibble {

namespace {

using ojson = nlohmann::ordered_json;

// Roles a chat template is expected to know. Anything else is most likely a typo ("asistant",
// "human"), which a template would silently drop or render as a stray header.
constexpr std::array<const char*, 4> kRoles = {"system", "user", "assistant", "tool"};

// "a string", "an array": the JSON type of a value, for messages.
std::string a_type(const ojson& value) {
  const std::string name = value.type_name();
  const bool vowel = name[0] == 'a' || name[0] == 'e' || name[0] == 'i' || name[0] == 'o';
  return (vowel ? "an " : "a ") + name;
}

std::string keys_of(const ojson& object) {
  std::string keys;
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (!keys.empty()) keys += ", ";
    keys += '"' + it.key() + '"';
  }
  return keys.empty() ? "none" : keys;
}

// A required string field.
std::string string_field(const ojson& object, const char* key, const char* format,
                         const std::string& where, int64_t line_no) {
  auto it = object.find(key);
  if (it == object.end())
    fail("{}:{}: {} line lacks \"{}\"; expected a string field \"{}\" (keys found: {})", where,
         line_no, format, key, key, keys_of(object));
  if (!it->is_string())
    fail("{}:{}: \"{}\" is {}; expected a string", where, line_no, key, a_type(*it));
  return it->get<std::string>();
}

void check_messages(const ojson& messages, const std::string& where, int64_t line_no) {
  if (!messages.is_array())
    fail("{}:{}: \"messages\" is {}; expected an array of {{\"role\", \"content\"}} objects",
         where, line_no, a_type(messages));
  if (messages.empty())
    fail("{}:{}: \"messages\" is empty; expected at least one message", where, line_no);
  for (size_t i = 0; i < messages.size(); ++i) {
    const ojson& m = messages[i];
    if (!m.is_object())
      fail("{}:{}: messages[{}] is {}; expected an object with \"role\" and \"content\"", where,
           line_no, i, a_type(m));
    auto role = m.find("role");
    if (role == m.end() || !role->is_string())
      fail("{}:{}: messages[{}] has {}; expected a string \"role\"", where, line_no, i,
           role == m.end() ? std::string("no \"role\"") : a_type(*role) + " \"role\"");
    const std::string r = role->get<std::string>();
    bool known = false;
    for (const char* k : kRoles) known = known || r == k;
    if (!known)
      fail("{}:{}: messages[{}] has role \"{}\"; expected system, user, assistant or tool", where,
           line_no, i, r);
    auto content = m.find("content");
    if (content == m.end() || !content->is_string())
      fail("{}:{}: messages[{}] has {}; expected a string \"content\"", where, line_no, i,
           content == m.end() ? std::string("no \"content\"")
                              : a_type(*content) + " \"content\"");
  }
}

}  // namespace

const char* data_format_name(DataFormat format) {
  switch (format) {
    case DataFormat::detect: return "auto";
    case DataFormat::text: return "text";
    case DataFormat::alpaca: return "alpaca";
    case DataFormat::chat: return "chat";
  }
  return "?";
}

DataFormat parse_data_format(const std::string& name) {
  if (name == "auto" || name == "detect") return DataFormat::detect;
  if (name == "text" || name == "completion") return DataFormat::text;
  if (name == "alpaca") return DataFormat::alpaca;
  if (name == "chat" || name == "messages") return DataFormat::chat;
  fail("unknown dataset format \"{}\"; expected auto, text, alpaca or chat", name);
}

DataRecord parse_data_line(std::string_view line, DataFormat forced, const std::string& where,
                           int64_t line_no) {
  ojson object;
  try {
    object = ojson::parse(line.begin(), line.end(), json_depth_limit<ojson>(fmt::format("{}:{}", where, line_no)));
  } catch (const ojson::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    fail("{}:{}: not valid JSON ({}); expected one JSON object per line", where, line_no,
         e.what());
  }
  if (!object.is_object())
    fail("{}:{}: the line is {}; expected a JSON object", where, line_no,
         a_type(object));

  DataFormat format = forced;
  if (format == DataFormat::detect) {
    if (object.contains("messages")) {
      format = DataFormat::chat;
    } else if (object.contains("instruction")) {
      format = DataFormat::alpaca;
    } else if (object.contains("text")) {
      format = DataFormat::text;
    } else {
      fail("{}:{}: no known fields (keys found: {}); expected \"text\" (completion), "
           "\"instruction\" and \"output\" (alpaca), or \"messages\" (chat)",
           where, line_no, keys_of(object));
    }
  }

  DataRecord record;
  record.format = format;
  switch (format) {
    case DataFormat::text:
      record.text = string_field(object, "text", "a text", where, line_no);
      break;
    case DataFormat::alpaca: {
      record.instruction = string_field(object, "instruction", "an alpaca", where, line_no);
      record.output = string_field(object, "output", "an alpaca", where, line_no);
      auto input = object.find("input");
      if (input != object.end() && !input->is_null()) {
        if (!input->is_string())
          fail("{}:{}: \"input\" is {}; expected a string (or no \"input\")", where, line_no,
               a_type(*input));
        record.input = input->get<std::string>();
      }
      break;
    }
    case DataFormat::chat: {
      auto messages = object.find("messages");
      if (messages == object.end())
        fail("{}:{}: chat line lacks \"messages\" (keys found: {}); expected an array of "
             "{{\"role\", \"content\"}} objects",
             where, line_no, keys_of(object));
      check_messages(*messages, where, line_no);
      record.messages = *messages;
      break;
    }
    case DataFormat::detect:
      break;
  }
  return record;
}

std::string alpaca_prompt(const std::string& instruction, const std::string& input) {
  // The prompt text of the Stanford Alpaca data release (tatsu-lab/stanford_alpaca), which
  // alpaca-style fine-tunes and their users expect at inference time.
  if (input.empty())
    return "Below is an instruction that describes a task. Write a response that appropriately "
           "completes the request.\n\n### Instruction:\n" +
           instruction + "\n\n### Response:\n";
  return "Below is an instruction that describes a task, paired with an input that provides "
         "further context. Write a response that appropriately completes the request.\n\n"
         "### Instruction:\n" +
         instruction + "\n\n### Input:\n" + input + "\n\n### Response:\n";
}

}  // namespace nibble
