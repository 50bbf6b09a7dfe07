#include "nibble/text/bpe.h"

#include <mutex>
#include <queue>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nibble/core/error.h"
#include "nibble/text/tokenizer_json.h"
#include "nibble/text/unicode.h"

namespace nibble {

namespace tj = tokenizer_json;

std::unique_ptr<BpeModel> BpeModel::from_json(const nlohmann::json& model, const std::string& where) {
  std::string type = model.is_object() && model.contains("type") ? tj::type_of(model, where, "model")
                                                                   : std::string("BPE");
  NIBBLE_CHECK(type == "BPE",
               "{}: unsupported model type \"{}\" (expected \"BPE\"; WordPiece, Unigram and "
               "WordLevel tokenizers are not supported)",
               where, type);
  auto bpe = std::unique_ptr<BpeModel>(new BpeModel());
  const std::string what = "model BPE";
  NIBBLE_CHECK(tj::optional_field(model, "dropout", 0.0, where, what) == 0.0,
               "{}: model BPE dropout is set (expected null: dropout is for training only)", where);
  bpe->fuse_unk_ = tj::optional_field(model, "fuse_unk", false, where, what);
  bpe->byte_fallback_ = tj::optional_field(model, "byte_fallback", false, where, what);
  bpe->ignore_merges_ = tj::optional_field(model, "ignore_merges", false, where, what);
  bpe->continuing_subword_prefix_ =
      tj::optional_field(model, "continuing_subword_prefix", std::string(), where, what);
  bpe->end_of_word_suffix_ =
      tj::optional_field(model, "end_of_word_suffix", std::string(), where, what);

  const auto& vocab = tj::field(model, "vocab", where, what);
  NIBBLE_CHECK(vocab.is_object(), "{}: model.vocab is {} (expected an object token -> id)", where,
               vocab.type_name());
  bpe->vocab_.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    NIBBLE_CHECK(it.value().is_number_integer(), "{}: model.vocab[\"{}\"] is {} (expected an integer id)",
                 where, it.key(), it.value().type_name());
    int64_t id = it.value().get<int64_t>();
    NIBBLE_CHECK(id >= 0 && id < INT32_MAX, "{}: model.vocab[\"{}\"] = {} is out of range "
                 "(expected 0 <= id < 2^31-1)", where, it.key(), id);
    bpe->vocab_[it.key()] = static_cast<int32_t>(id);
  }
  bpe->id_to_token_.reserve(bpe->vocab_.size());
  for (const auto& [token, id] : bpe->vocab_) bpe->id_to_token_[id] = &token;

  std::string unk = tj::optional_field(model, "unk_token", std::string(), where, what);
  if (!unk.empty()) {
    int32_t id = bpe->token_to_id(unk);
    NIBBLE_CHECK(id >= 0, "{}: model.unk_token \"{}\" is not in model.vocab", where, unk);
    bpe->unk_id_ = id;
  }
  for (int b = 0; b < 256; ++b) bpe->byte_ids_[b] = bpe->token_to_id(fmt::format("<0x{:02X}>", b));

  const auto& merges = tj::field(model, "merges", where, what);
  NIBBLE_CHECK(merges.is_array(), "{}: model.merges is {} (expected an array)", where,
               merges.type_name());
  bpe->merges_.reserve(merges.size());
  size_t prefix_len = bpe->continuing_subword_prefix_.size();
  for (size_t i = 0; i < merges.size(); ++i) {
    const auto& m = merges[i];
    std::string a, b;
    if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      if (s.rfind("#version", 0) == 0) continue;
      size_t space = s.find(' ');
      NIBBLE_CHECK(space != std::string::npos && s.find(' ', space + 1) == std::string::npos,
                   "{}: model.merges[{}] = \"{}\" (expected two tokens separated by one space)",
                   where, i, s);
      a = s.substr(0, space);
      b = s.substr(space + 1);
    } else {
      NIBBLE_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(),
                   "{}: model.merges[{}] is {} (expected \"a b\" or [\"a\", \"b\"])", where, i,
                   m.dump());
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    }
    int32_t a_id = bpe->token_to_id(a), b_id = bpe->token_to_id(b);
    NIBBLE_CHECK(a_id >= 0, "{}: model.merges[{}] names \"{}\", which is not in model.vocab", where,
                 i, a);
    NIBBLE_CHECK(b_id >= 0, "{}: model.merges[{}] names \"{}\", which is not in model.vocab", where,
                 i, b);
    // With a continuing-subword prefix, the right part's prefix is dropped in the merged token.
    std::string merged = a + (prefix_len && b.compare(0, prefix_len, bpe->continuing_subword_prefix_) == 0
                                  ? b.substr(prefix_len)
                                  : b);
    int32_t new_id = bpe->token_to_id(merged);
    NIBBLE_CHECK(new_id >= 0, "{}: model.merges[{}] makes \"{}\", which is not in model.vocab", where,
                 i, merged);
    // Rank is the position in the list; a repeated pair keeps its last rank, as in HF.
    bpe->merges_[pair_key(a_id, b_id)] = Merge{static_cast<int32_t>(i), new_id};
  }
  return bpe;
}

int32_t BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(std::string(token));
  return it == vocab_.end() ? -1 : it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  auto it = id_to_token_.find(id);
  return it == id_to_token_.end() ? nullptr : it->second;
}

void BpeModel::tokenize(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  if (ignore_merges_) {
    int32_t id = token_to_id(piece);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  if (piece.size() > kCacheMaxPiece) {
    merge_word(piece, out);
    return;
  }
  std::string key(piece);
  {
    std::shared_lock<std::shared_mutex> lock(cache_mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  merge_word(piece, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  std::unique_lock<std::shared_mutex> lock(cache_mutex_);
  if (cache_.size() < kCacheCapacity) cache_.emplace(std::move(key), std::move(ids));
}

void BpeModel::merge_word(std::string_view piece, std::vector<int32_t>& out) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(piece.size());
  auto add = [&](int32_t id) {
    int32_t n = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, n - 1, -1, true});
    if (n > 0) symbols[n - 1].next = n;
  };

  // Pending unknown run: HF flushes it only before an in-vocab character or at the end (not
  // before byte-fallback bytes), and we keep that order.
  bool pending_unk = false;
  std::string s;
  for (size_t pos = 0; pos < piece.size();) {
    size_t start = pos;
    unicode::next_code_point(piece, pos);
    bool first = start == 0, last = pos == piece.size();
    s.assign(piece.substr(start, pos - start));
    if (!first && !continuing_subword_prefix_.empty()) s.insert(0, continuing_subword_prefix_);
    if (last && !end_of_word_suffix_.empty()) s += end_of_word_suffix_;
    int32_t id = token_to_id(s);
    if (id >= 0) {
      if (pending_unk) add(*unk_id_);
      pending_unk = false;
      add(id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : s) all = all && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all) {
        for (char c : s) add(byte_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk && !fuse_unk_) add(*unk_id_);
      pending_unk = true;
    }
  }
  if (pending_unk) add(*unk_id_);

  struct Candidate {
    int32_t rank, pos, new_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto push_pair = [&](int32_t pos) {
    int32_t next = symbols[pos].next;
    if (next < 0) return;
    auto it = merges_.find(pair_key(symbols[pos].id, symbols[next].id));
    if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.new_id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) push_pair(i);

  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    // Skip entries made stale by an earlier merge of either side.
    auto it = merges_.find(pair_key(left.id, right.id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }
  for (const auto& sym : symbols)
    if (sym.alive) out.push_back(sym.id);
}

}  // namespace nibble
