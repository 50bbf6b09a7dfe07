// nibble generate: text from a model folder (16-bit or bitsandbytes 4-bit), streamed as it comes.
// --prompt continues a text; --chat is a conversation through the model's chat template, one
// user line at a time from stdin, until /exit or end of input. --adapter applies a LoRA adapter
// (PEFT's or nibble's) unmerged, as PEFT does.
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "nibble/core/error.h"
#include "nibble/model/generate.h"
#include "nibble/model/llama.h"
#include "nibble/text/chat_template.h"
#include "nibble/text/tokenizer.h"

namespace nibble::cli {

namespace {

struct GenerateCommandOptions {
  ModelOptions model;
  std::string prompt;
  bool chat = false;
  std::string system;
  int64_t max_new_tokens = 256;
  float temperature = 0.0f;
  int64_t top_k = 0;
  float top_p = 1.0f;
  float repetition_penalty = 1.0f;
  uint64_t seed = 0;
  std::vector<std::string> stop;
  int64_t max_seq = 4096;
  bool stats = false;
};

void print_text(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

void print_stats(const GenerateResult& r) {
  const double decode_tokens = static_cast<double>(r.tokens.size() > 0 ? r.tokens.size() - 1 : 0);
  fmt::print(stderr, "[{} prompt tokens in {:.2f} s; {} new tokens, {:.1f} tokens/s]\n", r.prompt_tokens,
             r.prefill_seconds, r.tokens.size(), r.decode_seconds > 0 ? decode_tokens / r.decode_seconds : 0.0);
}

class Generator {
 public:
  explicit Generator(const GenerateCommandOptions& o) : options_(o) {
    NIBBLE_CHECK(o.chat != !o.prompt.empty(), "give exactly one of --prompt \"...\" or --chat");
    loaded_ = load_model(o.model);
    model_ = loaded_.model.get();
    tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(o.model.model_dir));
    check_tokenizer_fits(*tokenizer_, o.model.model_dir, model_->hyper(), o.model.model_dir);

    gen_.max_new_tokens = o.max_new_tokens;
    gen_.sampling = SamplingOptions{o.temperature, o.top_k, o.top_p, o.repetition_penalty, o.seed};
    check_sampling_options(gen_.sampling);
    gen_.stop_strings = o.stop;
    gen_.eos_ids = model_->hyper().eos_ids;
    if (tokenizer_->eos_id()) gen_.eos_ids.push_back(*tokenizer_->eos_id());
    callbacks_.decode = tokenizer_decoder(*tokenizer_);
    callbacks_.on_text = print_text;
  }

  void run_prompt() {
    std::vector<int32_t> ids = tokenizer_->encode(options_.prompt, /*add_special_tokens=*/true);
    KvCache cache = model_->make_cache(static_cast<int64_t>(ids.size()) + options_.max_new_tokens);
    GenerateResult r = generate(*model_, cache, ids, gen_, callbacks_);
    print_text("\n");
    if (options_.stats) print_stats(r);
  }

  // Each turn renders the whole conversation and runs it from an empty cache: simple, and exact
  // whatever the template does to earlier turns.
  void run_chat() {
    ChatTemplate chat = ChatTemplate::load(options_.model.model_dir);
    int64_t max_seq = options_.max_seq;
    if (model_->hyper().sliding_window) max_seq = std::min(max_seq, *model_->hyper().sliding_window);
    KvCache cache = model_->make_cache(max_seq);
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    if (!options_.system.empty()) messages.push_back({{"role", "system"}, {"content", options_.system}});
    std::string line;
    while (true) {
      std::fputs("> ", stderr);
      if (!std::getline(std::cin, line) || line == "/exit") break;
      if (line.empty()) continue;
      messages.push_back({{"role", "user"}, {"content", line}});
      std::string text = chat.render(messages, /*add_generation_prompt=*/true);
      std::vector<int32_t> ids = tokenizer_->encode(text, /*add_special_tokens=*/false);
      GenerateOptions turn = gen_;
      turn.max_new_tokens = std::min<int64_t>(gen_.max_new_tokens, max_seq - static_cast<int64_t>(ids.size()));
      NIBBLE_CHECK(turn.max_new_tokens > 0, "the conversation is {} tokens, which fills --max-seq {}; start a new "
                   "chat or raise --max-seq", ids.size(), max_seq);
      cache.reset();
      GenerateResult r = generate(*model_, cache, ids, turn, callbacks_);
      print_text("\n");
      if (options_.stats) print_stats(r);
      messages.push_back({{"role", "assistant"}, {"content", r.text}});
    }
  }

 private:
  const GenerateCommandOptions& options_;
  LoadedModel loaded_;
  LlamaModel* model_ = nullptr;  // loaded_'s
  std::unique_ptr<Tokenizer> tokenizer_;
  GenerateOptions gen_;
  GenerateCallbacks callbacks_;
};

}  // namespace

void add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateCommandOptions>();
  CLI::App* sub = app.add_subcommand("generate", "Generate text from a model, streamed (--prompt or --chat)");
  add_model_options(*sub, o->model);
  sub->add_option("--prompt", o->prompt, "Text to continue");
  sub->add_flag("--chat", o->chat, "Chat through the model's chat template, reading user lines from stdin");
  sub->add_option("--system", o->system, "System message for --chat");
  sub->add_option("--max-new-tokens", o->max_new_tokens, "Most tokens to generate")->capture_default_str();
  sub->add_option("--temperature", o->temperature, "0 = greedy; else sample from softmax(logits / T)")
      ->capture_default_str();
  sub->add_option("--top-k", o->top_k, "Sample among the k most likely tokens (0 = off)")->capture_default_str();
  sub->add_option("--top-p", o->top_p, "Sample among the most likely tokens of total probability p (1 = off)")
      ->capture_default_str();
  sub->add_option("--repetition-penalty", o->repetition_penalty, "HF's repetition penalty (1 = off)")
      ->capture_default_str();
  sub->add_option("--seed", o->seed, "Seed of the sampling generator")->capture_default_str();
  sub->add_option("--stop", o->stop, "Stop where the text contains this string (repeatable)");
  sub->add_option("--max-seq", o->max_seq, "KV cache positions for --chat")->capture_default_str();
  sub->add_flag("--stats", o->stats, "Print token counts and speed to stderr after each answer");
  sub->callback([o] {
    Generator generator(*o);
    if (o->chat) generator.run_chat();
    else generator.run_prompt();
  });
}

}  // namespace nibble::cli
