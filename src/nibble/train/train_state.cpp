#include "nibble/train/train_state.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "nibble/core/error.h"
#include "nibble/io/python_json.h"

namespace nibble {

using Json = nlohmann::ordered_json;
namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "nibble trainer_state";
constexpr int64_t kVersion = 1;

class Fnv1a64 {
 public:
  void add(const void* data, size_t size) {
    const unsigned char* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < size; ++i) {
      hash_ ^= p[i];
      hash_ *= 0x100000001b3ull;
    }
  }
  void add(const std::string& s) {
    add(s.data(), s.size());
    add("\0", 1);  // so ("ab", "c") and ("a", "bc") differ
  }
  std::string hex() const { return fmt::format("{:016x}", hash_); }

 private:
  uint64_t hash_ = 0xcbf29ce484222325ull;
};

// Adds up to `limit` bytes of `path` (all of it when limit < 0); returns the file's size.
uint64_t hash_file(Fnv1a64& hash, const std::string& path, int64_t limit = -1) {
  std::ifstream in(path, std::ios::binary);
  NIBBLE_CHECK(in.good(), "cannot read {} to fingerprint it", path);
  std::vector<char> buffer(1 << 20);
  int64_t left = limit;
  while (in && left != 0) {
    const std::streamsize want =
        left < 0 ? static_cast<std::streamsize>(buffer.size()) : std::min<std::streamsize>(buffer.size(), left);
    in.read(buffer.data(), want);
    hash.add(buffer.data(), static_cast<size_t>(in.gcount()));
    if (left > 0) left -= in.gcount();
  }
  NIBBLE_CHECK(!in.bad(), "reading {} to fingerprint it failed", path);
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  NIBBLE_CHECK(!ec, "cannot size {}: {}", path, ec.message());
  return size;
}

// Reads json[key] (which must exist) with the checks and messages every field shares.
class StateReader {
 public:
  StateReader(const Json& json, const std::string& file, std::string prefix = "")
      : json_(json), file_(file), prefix_(std::move(prefix)) {}

  const Json& at(const char* key) const {
    if (!json_.is_object() || !json_.contains(key)) fail("{}: missing \"{}{}\"", file_, prefix_, key);
    return json_.at(key);
  }
  [[noreturn]] void bad(const char* key, const char* expected) const {
    fail("{}: \"{}{}\" is {}; expected {}", file_, prefix_, key, at(key).dump(), expected);
  }
  int64_t integer(const char* key) const {
    const Json& v = at(key);
    if (!v.is_number_integer()) bad(key, "an integer");
    return v.get<int64_t>();
  }
  uint64_t unsigned_integer(const char* key) const {
    const Json& v = at(key);
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0)) bad(key, "an integer >= 0");
    return v.get<uint64_t>();
  }
  double number(const char* key) const {
    const Json& v = at(key);
    if (!v.is_number()) bad(key, "a number");
    return v.get<double>();
  }
  std::optional<double> number_or_null(const char* key) const {
    if (at(key).is_null()) return std::nullopt;
    return number(key);
  }
  std::string text(const char* key) const {
    const Json& v = at(key);
    if (!v.is_string()) bad(key, "a string");
    return v.get<std::string>();
  }
  StateReader object(const char* key) const {
    if (!at(key).is_object()) bad(key, "an object");
    return StateReader(at(key), file_, prefix_ + key + ".");
  }
  const Json& json() const { return json_; }

 private:
  const Json& json_;
  const std::string& file_;
  std::string prefix_;
};

Json optional_number(const std::optional<double>& v) {
  return v && std::isfinite(*v) ? Json(*v) : Json();
}

}  // namespace

std::string file_digest(const std::string& path) {
  Fnv1a64 hash;
  const uint64_t size = hash_file(hash, path);
  return fmt::format("{}:{}", size, hash.hex());
}

std::string model_digest(const std::string& model_dir) {
  NIBBLE_CHECK(fs::is_directory(model_dir), "model folder {} does not exist", model_dir);
  Fnv1a64 hash;
  const std::string config = (fs::path(model_dir) / "config.json").string();
  if (fs::exists(config)) hash_file(hash, config);
  std::vector<std::string> shards;
  for (const auto& entry : fs::directory_iterator(model_dir))
    if (entry.path().extension() == ".safetensors") shards.push_back(entry.path().filename().string());
  std::sort(shards.begin(), shards.end());
  for (const std::string& name : shards) {
    const std::string path = (fs::path(model_dir) / name).string();
    // The header names every tensor with its dtype, shape and offsets; weights that differ
    // without changing it would have to be edited in place, which nobody does by accident.
    uint64_t header_length = 0;
    std::ifstream in(path, std::ios::binary);
    in.read(reinterpret_cast<char*>(&header_length), 8);
    NIBBLE_CHECK(in.gcount() == 8, "{}: too short for a safetensors header", path);
    hash.add(name);
    const uint64_t size = hash_file(hash, path, static_cast<int64_t>(std::min<uint64_t>(header_length, 1u << 30) + 8));
    hash.add(std::to_string(size));
  }
  return hash.hex();
}

RunFingerprint make_run_fingerprint(const TrainConfig& config) {
  RunFingerprint f;
  f.fields.emplace_back("model_files", model_digest(config.model));
  f.fields.emplace_back("data_file", file_digest(config.data));
  const Json values = train_config_to_json(config);
  visit_train_options([&](const TrainOptionInfo& info, auto) {
    if (info.shapes_run) f.fields.emplace_back(info.name, values.at(info.name));
  });
  return f;
}

void check_resume_fingerprint(const RunFingerprint& saved, const RunFingerprint& current,
                              const std::string& state_file) {
  auto find = [](const RunFingerprint& f, const std::string& name) -> const Json* {
    for (const auto& [key, value] : f.fields)
      if (key == name) return &value;
    return nullptr;
  };
  auto describe = [](const Json* v) { return v ? v->dump() : std::string("(absent)"); };
  std::vector<std::string> names;
  for (const auto& field : current.fields) names.push_back(field.first);
  for (const auto& field : saved.fields)
    if (!find(current, field.first)) names.push_back(field.first);
  for (const std::string& name : names) {
    const Json* before = find(saved, name);
    const Json* now = find(current, name);
    if (before && now && before->dump() == now->dump()) continue;
    const char* what = name == "model_files"  ? " (the model's config.json or weights)"
                       : name == "data_file" ? " (the training data's size or bytes)"
                                             : "";
    fail("cannot resume from {}: {}{} was {} in the interrupted run and is {} now; resume with the same value, "
         "or train into a new --out",
         state_file, name, what, describe(before), describe(now));
  }
}

Json train_state_to_json(const TrainState& s) {
  Json fingerprint = Json::object();
  for (const auto& [name, value] : s.fingerprint.fields) fingerprint[name] = value;
  return Json{
      {"format", kFormat},
      {"version", kVersion},
      {"global_step", s.global_step},
      {"epoch", s.epoch},
      {"data_position", Json{{"epoch", s.data_position.epoch}, {"index", s.data_position.index}}},
      {"seed", s.seed},
      {"rng_offset", s.rng_offset},
      {"tokens_seen", s.tokens_seen},
      {"lr_scheduler", Json{{"type", s.lr_scheduler_type},
                            {"learning_rate", s.learning_rate},
                            {"warmup_steps", s.warmup_steps},
                            {"total_steps", s.total_steps}}},
      {"last_loss", optional_number(s.last_loss)},
      {"last_eval_loss", optional_number(s.last_eval_loss)},
      {"fingerprint", fingerprint},
  };
}

TrainState train_state_from_json(const Json& json, const std::string& file) {
  NIBBLE_CHECK(json.is_object(), "{}: expected a JSON object", file);
  StateReader r(json, file);
  NIBBLE_CHECK(r.text("format") == kFormat, "{}: \"format\" is {}; expected \"{}\"", file, r.at("format").dump(),
               kFormat);
  NIBBLE_CHECK(r.integer("version") == kVersion, "{}: version {} is not one this nibble reads (expected {})", file,
               r.integer("version"), kVersion);
  TrainState s;
  s.global_step = r.integer("global_step");
  s.epoch = r.number("epoch");
  const StateReader position = r.object("data_position");
  s.data_position.epoch = position.integer("epoch");
  s.data_position.index = position.integer("index");
  s.seed = r.integer("seed");
  s.rng_offset = r.unsigned_integer("rng_offset");
  s.tokens_seen = r.integer("tokens_seen");
  const StateReader scheduler = r.object("lr_scheduler");
  s.lr_scheduler_type = scheduler.text("type");
  s.learning_rate = scheduler.number("learning_rate");
  s.warmup_steps = scheduler.integer("warmup_steps");
  s.total_steps = scheduler.integer("total_steps");
  s.last_loss = r.number_or_null("last_loss");
  s.last_eval_loss = r.number_or_null("last_eval_loss");
  if (!r.at("fingerprint").is_object()) r.bad("fingerprint", "an object");
  for (auto it = r.at("fingerprint").begin(); it != r.at("fingerprint").end(); ++it)
    s.fingerprint.fields.emplace_back(it.key(), it.value());
  NIBBLE_CHECK(s.global_step >= 0 && s.data_position.epoch >= 0 && s.data_position.index >= 0 &&
                   s.tokens_seen >= 0 && s.total_steps >= 0 && s.warmup_steps >= 0,
               "{}: negative step, position or count", file);
  return s;
}

std::string train_state_text(const TrainState& state) {
  return python_json_dumps(train_state_to_json(state), 2) + "\n";
}

TrainState read_train_state(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  NIBBLE_CHECK(in.good(), "cannot read {}", file);
  std::stringstream text;
  text << in.rdbuf();
  Json json;
  try {
    json = Json::parse(text.str());
  } catch (const nlohmann::json::parse_error& e) {
    fail("{}: not valid JSON: {}", file, e.what());
  }
  return train_state_from_json(json, file);
}

}  // namespace nibble
