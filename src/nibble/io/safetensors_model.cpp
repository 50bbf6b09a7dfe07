// A model folder: model.safetensors, or shards listed by model.safetensors.index.json.
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "nibble/core/error.h"
#include "nibble/core/json_depth.h"
#include "nibble/io/safetensors.h"

namespace nibble {

namespace {

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

nlohmann::ordered_json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  NIBBLE_CHECK(in.good(), "{}: cannot open", path);
  std::stringstream text;
  text << in.rdbuf();
  try {
    return nlohmann::ordered_json::parse(text.str(), json_depth_limit<nlohmann::ordered_json>(path));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON ({})", path, e.what());
  }
}

}  // namespace

SafetensorsModel SafetensorsModel::open(const std::string& dir) {
  SafetensorsModel model;
  model.dir_ = dir;
  std::string index_path = dir + "/model.safetensors.index.json";
  std::string single_path = dir + "/model.safetensors";

  if (!file_exists(index_path)) {
    NIBBLE_CHECK(file_exists(single_path), "{}: no model.safetensors or model.safetensors.index.json; expected a "
                 "Hugging Face model folder", dir);
    model.files_.push_back(SafetensorsFile::open(single_path));
    for (const auto& name : model.files_[0].names()) {
      model.names_.push_back(name);
      model.shard_of_[name] = 0;
    }
    return model;
  }

  nlohmann::ordered_json index = read_json_file(index_path);
  NIBBLE_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
               "{}: no \"weight_map\" object; expected {{\"weight_map\": {{tensor name: shard file}}}}", index_path);
  std::map<std::string, size_t> shard_index;
  std::vector<std::vector<std::string>> names_per_shard;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    NIBBLE_CHECK(shard.is_string(), "{}: weight_map['{}'] is {}; expected a shard file name", index_path, name,
                 shard.dump());
    const std::string& file = shard.get_ref<const std::string&>();
    // Shards live in the folder itself; a path elsewhere is a broken or hostile index.
    NIBBLE_CHECK(!file.empty() && file.find('/') == std::string::npos && file != "." && file != "..",
                 "{}: weight_map['{}'] is \"{}\"; expected a file name inside {}", index_path, name, file, dir);
    auto [it, added] = shard_index.emplace(file, model.files_.size());
    if (added) {
      try {
        model.files_.push_back(SafetensorsFile::open(dir + "/" + file));
      } catch (...) {
        rethrow_with_context(fmt::format("{} names shard {}", index_path, file));
      }
      names_per_shard.emplace_back();
    }
    const SafetensorsFile& shard_file = model.files_[it->second];
    NIBBLE_CHECK(shard_file.contains(name), "{}: weight_map maps tensor '{}' to {}, which has no such tensor",
                 index_path, name, file);
    model.shard_of_[name] = it->second;
  }
  NIBBLE_CHECK(!model.files_.empty(), "{}: weight_map is empty; expected at least one tensor", index_path);
  for (size_t i = 0; i < model.files_.size(); ++i)
    for (const auto& name : model.files_[i].names()) {
      auto it = model.shard_of_.find(name);
      if (it != model.shard_of_.end() && it->second == i) model.names_.push_back(name);
    }
  return model;
}

const SafetensorsFile& SafetensorsModel::file_of(const std::string& name) const {
  auto it = shard_of_.find(name);
  NIBBLE_CHECK(it != shard_of_.end(), "{}: tensor '{}' not found in the model's {} tensors", dir_, name,
               names_.size());
  return files_[it->second];
}

Tensor SafetensorsModel::tensor(const std::string& name) const { return file_of(name).tensor(name); }
const Shape& SafetensorsModel::shape(const std::string& name) const { return file_of(name).shape(name); }
const std::string& SafetensorsModel::dtype_name(const std::string& name) const {
  return file_of(name).dtype_name(name);
}

}  // namespace nibble
