// nibble eval: the loss and perplexity of a model (with an adapter, when given) over a JSONL file,
// one pass in file order.
//
// The loss is the mean cross-entropy per target token: summed over every target token of the
// file, divided by their number. Target tokens are those the same file would train on
// (text/dataset.h: every token of a text line, the response of an alpaca line, the assistant
// turns of a chat; all of them with --train-on-inputs), each predicted from the tokens of its own
// example before it. perplexity = exp(loss). transformers' Trainer.evaluate reports the same
// number when the whole file is one evaluation batch; with several it averages each batch's
// own token mean, so its figure moves with the batch size, and this one does not.
//
// Examples are packed into rows (attention never crosses examples), so --batch-size and
// --max-seq-length change only speed and memory, except that longer examples are truncated to
// --max-seq-length (counted in the report).
#include <cmath>
#include <memory>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "cli/progress.h"
#include "nibble/core/error.h"
#include "nibble/model/generate.h"
#include "nibble/model/llama_training.h"
#include "nibble/text/dataset.h"
#include "nibble/text/dataset_batch.h"
#include "nibble/text/tokenizer.h"

namespace nibble::cli {

namespace {

struct EvalOptions {
  ModelOptions model;
  std::string data_path;
  std::string format = "auto";
  int64_t max_seq_length = 2048;
  int64_t batch_size = 1;
  bool train_on_inputs = false;
  bool json = false;
};

struct EvalTotals {
  double loss_sum = 0.0;
  int64_t target_tokens = 0;
};

EvalTotals evaluate_dataset(LlamaModel& model, const Dataset& data, int64_t batch_size) {
  BatchOptions batching;
  batching.batch_size = batch_size;
  batching.packing = true;
  batching.shuffle = false;
  batching.epochs = 1;
  BatchIterator batches(data, batching);
  LlamaTraining runner(model, TrainingOptions{});
  ProgressBar progress("evaluating", batches.batches_in_epoch(0));
  EvalTotals totals;
  Batch batch;
  int64_t done = 0;
  while (batches.next(batch)) {
    progress.update(done, fmt::format("{} tokens", totals.target_tokens));
    const MicroBatchLoss loss = runner.evaluate(batch);
    totals.loss_sum += loss.loss_sum;
    totals.target_tokens += loss.target_tokens;
    ++done;
  }
  progress.finish();
  return totals;
}

void run_eval(const EvalOptions& o) {
  NIBBLE_CHECK(o.batch_size >= 1, "--batch-size {}: expected at least 1", o.batch_size);
  NIBBLE_CHECK(o.max_seq_length >= 2, "--max-seq-length {}: expected at least 2", o.max_seq_length);
  LoadedModel loaded = load_model(o.model);
  const Tokenizer tokenizer = Tokenizer::load(o.model.model_dir);
  check_tokenizer_fits(tokenizer, o.model.model_dir, loaded.model->hyper(), o.model.model_dir);
  const std::optional<ChatTemplate> chat = ChatTemplate::load_if_present(o.model.model_dir);

  DatasetOptions data_options;
  data_options.format = parse_data_format(o.format);
  data_options.max_seq_length = o.max_seq_length;
  data_options.train_on_inputs = o.train_on_inputs;
  const Dataset data = Dataset::load(o.data_path, tokenizer, chat ? &*chat : nullptr, data_options);
  const DatasetStats& stats = data.stats();
  NIBBLE_CHECK(data.size() > 0 && stats.target_tokens > 0, "{}: no example with a target token to evaluate ({} "
               "lines, {} without targets)", o.data_path, stats.lines, stats.examples_without_targets);

  const EvalTotals totals = evaluate_dataset(*loaded.model, data, o.batch_size);
  NIBBLE_CHECK(totals.target_tokens == stats.target_tokens, "{}: evaluated {} target tokens of the {} the data has",
               o.data_path, totals.target_tokens, stats.target_tokens);
  const double loss = totals.loss_sum / static_cast<double>(totals.target_tokens);
  const double perplexity = std::exp(loss);

  if (o.json) {
    nlohmann::ordered_json out = {
        {"loss", loss},
        {"perplexity", perplexity},
        {"loss_sum", totals.loss_sum},
        {"target_tokens", totals.target_tokens},
        {"tokens", stats.tokens},
        {"examples", data.size()},
        {"truncated_examples", stats.truncated_examples},
        {"truncated_tokens", stats.truncated_tokens},
        {"examples_without_targets", stats.examples_without_targets},
        {"format", data_format_name(data.format())},
        {"adapter", o.model.adapter_dir.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(o.model.adapter_dir)},
    };
    fmt::print("{}\n", out.dump(2));
    return;
  }
  fmt::print("{}: {} examples ({} format), {} tokens, {} of them targets\n", o.data_path, data.size(),
             data_format_name(data.format()), stats.tokens, totals.target_tokens);
  if (stats.truncated_examples > 0)
    fmt::print("  cut to --max-seq-length {}: {} of the examples ({} tokens dropped)\n", o.max_seq_length,
               stats.truncated_examples, stats.truncated_tokens);
  if (stats.examples_without_targets > 0)
    fmt::print("  left out, without a target token: {} of the examples\n", stats.examples_without_targets);
  fmt::print("loss {:.6f} (mean cross-entropy per target token)\n", loss);
  fmt::print("perplexity {:.4f}\n", perplexity);
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* sub = app.add_subcommand("eval", "Loss and perplexity of a model (and adapter) over a JSONL file");
  add_model_options(*sub, o->model);
  sub->add_option("--data", o->data_path, "JSONL file of text, alpaca (instruction/input/output) or chat (messages) lines")->required();
  sub->add_option("--format", o->format, "auto | text | alpaca | chat")->capture_default_str();
  sub->add_option("--max-seq-length", o->max_seq_length, "Examples longer than this are truncated")
      ->capture_default_str();
  sub->add_option("--batch-size", o->batch_size, "Rows of packed examples per forward pass")->capture_default_str();
  sub->add_flag("--train-on-inputs", o->train_on_inputs, "Count prompts and user turns as targets too");
  sub->add_flag("--json", o->json, "Print the result as JSON");
  sub->callback([o] { run_eval(*o); });
}

}  // namespace nibble::cli
