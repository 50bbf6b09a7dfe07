// The BPE model of tokenizer.json: vocab, ranked merges, and the merge loop that turns one
// pre-tokenized piece into ids, with HF's byte_fallback / unk / fuse_unk / ignore_merges rules.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace nibble {

class BpeModel {
 public:
  // Builds the model from tokenizer.json's "model" object. Errors (wrong type, a merge naming an
  // unknown token, a bad id) name `where`.
  static std::unique_ptr<BpeModel> from_json(const nlohmann::json& model, const std::string& where);

  // Appends the ids of one piece. Thread-safe: the piece cache is behind a shared mutex.
  void tokenize(std::string_view piece, std::vector<int32_t>& out) const;

  // -1 when absent.
  int32_t token_to_id(std::string_view token) const;
  // nullptr when the id is not in the vocab.
  const std::string* id_to_token(int32_t id) const;
  size_t vocab_size() const { return vocab_.size(); }
  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  // Initial symbols of a piece (characters, byte-fallback bytes, unk) then the merge loop.
  void merge_word(std::string_view piece, std::vector<int32_t>& out) const;

  std::unordered_map<std::string, int32_t> vocab_;
  // A map, not a table indexed by id: ids need not be dense, and a file with one token at id
  // 2^31-2 must not make us allocate 16 GB.
  std::unordered_map<int32_t, const std::string*> id_to_token_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::optional<int32_t> unk_id_;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  int32_t byte_ids_[256];  // ids of "<0xNN>" tokens, -1 when absent

  static constexpr size_t kCacheCapacity = 100000;
  static constexpr size_t kCacheMaxPiece = 256;
  mutable std::shared_mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace nibble
