// Encodes ~N MB of text with one tokenizer and prints one JSON line: MB/s and tokens/s.
// The text is the golden corpus repeated in a fixed shuffled order (deterministic), split into
// the same pieces bench/peers/tokenizers_bench.py feeds HF tokenizers.
//
// Usage: bench_tokenizer TOKENIZER_DIR [MB=10] [CORPUS=tests/golden/tokenizers/corpus.jsonl]
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nibble/core/error.h"
#include "nibble/text/tokenizer.h"

namespace {

// Pieces of about 1 KB built from corpus strings in a fixed order, until `bytes` are reached.
// Same recipe as tokenizers_bench.py: a linear congruential order, joined with "\n".
std::vector<std::string> bench_pieces(const std::string& corpus_path, size_t bytes) {
  std::ifstream in(corpus_path);
  NIBBLE_CHECK(in.good(), "{}: cannot open corpus", corpus_path);
  std::string line;
  std::getline(in, line);  // header
  std::vector<std::string> corpus;
  while (std::getline(in, line)) {
    auto s = nlohmann::json::parse(line).get<std::string>();
    if (!s.empty()) corpus.push_back(s);
  }
  std::vector<std::string> pieces;
  std::string current;
  size_t total = 0;
  uint64_t state = 12345;
  while (total < bytes) {
    state = (state * 6364136223846793005ull + 1442695040888963407ull) % (1ull << 63);
    const std::string& s = corpus[(state >> 33) % corpus.size()];
    current += s;
    current += '\n';
    if (current.size() >= 1024) {
      total += current.size();
      pieces.push_back(std::move(current));
      current.clear();
    }
  }
  return pieces;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_tokenizer TOKENIZER_DIR [MB] [CORPUS]\n");
    return 2;
  }
  try {
    std::string dir = argv[1];
    double mb = argc > 2 ? std::stod(argv[2]) : 10.0;
    std::string corpus = argc > 3 ? argv[3] : std::string(NIBBLE_SOURCE_DIR_BENCH) +
                                                  "/tests/golden/tokenizers/corpus.jsonl";
    auto pieces = bench_pieces(corpus, static_cast<size_t>(mb * 1e6));
    nibble::Tokenizer tok = nibble::Tokenizer::load(dir);
    size_t bytes = 0;
    for (const auto& p : pieces) bytes += p.size();
    // One warm-up pass fills the piece cache as a long-running process would have it.
    size_t tokens = 0;
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      tokens = 0;
      for (const auto& p : pieces) tokens += tok.encode(p, false).size();
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rep > 0 && s < best) best = s;
      if (rep == 0) best = s;
    }
    std::printf("%s\n", fmt::format(R"({{"bench":"nibble_tokenizer_encode","tokenizer":"{}","bytes":{},)"
                                    R"("pieces":{},"tokens":{},"seconds":{:.4f},"mb_per_s":{:.2f},)"
                                    R"("tokens_per_s":{:.0f},"threads":1}})",
                                    dir, bytes, pieces.size(), tokens, best, bytes / best / 1e6,
                                    tokens / best)
                            .c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
    return 1;
  }
  return 0;
}
