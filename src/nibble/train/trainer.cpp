#include "nibble/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nibble/backend/backend.h"
#include "nibble/core/device.h"
#include "nibble/core/memory.h"
#include "nibble/io/hf_config.h"
#include "nibble/io/peft_adapter.h"
#include "nibble/io/safetensors.h"
#include "nibble/lora/lora_attach.h"
#include "nibble/lora/lora_peft.h"
#include "nibble/model/generate.h"
#include "nibble/model/llama.h"
#include "nibble/model/llama_training.h"
#include "nibble/model/memory_plan.h"
#include "nibble/optim/optimizer.h"
#include "nibble/text/chat_template.h"
#include "nibble/text/dataset.h"
#include "nibble/text/dataset_batch.h"
#include "nibble/text/tokenizer.h"
#include "nibble/train/checkpoint_dir.h"
#include "nibble/train/loss_plot.h"
#include "nibble/train/metrics_log.h"
#include "nibble/train/train_progress.h"
#include "nibble/train/train_state.h"
#include "nibble/train/train_step.h"

namespace nibble {

namespace fs = std::filesystem;

namespace {

constexpr const char* kOptimizerFile = "optimizer.safetensors";

Device resolve_device(const std::string& name) {
  if (name.empty()) return cuda_available() ? Device::cuda : Device::cpu;
  return parse_device(name);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

class Trainer {
 public:
  explicit Trainer(const TrainConfig& config) : config_(config) {
    validate_train_config(config_);
    const Device device = resolve_device(config.device);
    NIBBLE_CHECK(!train_max_gpu_memory(config_) || device == Device::cuda,
                 "max_gpu_memory {}: only a GPU run has GPU memory to limit", config_.max_gpu_memory);
    NIBBLE_CHECK(!train_max_gpu_memory(config_), "max_gpu_memory {}: not supported yet; run without it",
                 config_.max_gpu_memory);
    backend_ = make_backend(device);
    summary_.device = std::string(device_name(device));
    check_output_folder();
    load_model();
    load_data();
    init_adapter();
    plan_steps();
    if (config_.resume) resume();
  }

  TrainSummary run() {
    fs::create_directories(config_.out);
    if (step_ == 0) save_train_config(config_.out + "/training_args.json", config_);
    MetricsLog metrics = step_ > 0 ? MetricsLog::resume(metrics_path(), step_) : MetricsLog::create(metrics_path());
    TrainProgress progress(total_steps_, config_.logging_steps, step_);
    const auto start = std::chrono::steady_clock::now();
    if (eval_ && step_ == 0) {
      summary_.first_eval_loss = evaluate();
      metrics.write({{"step", 0}, {"epoch", 0.0}, {"eval_loss", *summary_.first_eval_loss}});
      progress.message(fmt::format("eval loss {:.4f} before training", *summary_.first_eval_loss));
    }
    double window_loss = 0.0, window_grad_norm = 0.0;
    int64_t window_steps = 0, window_tokens = 0;
    auto window_start = std::chrono::steady_clock::now();
    while (step_ < total_steps_) {
      std::vector<Batch> micro = next_micro_batches();
      if (micro.empty()) break;  // the data ran out before the planned steps (packing counts vary)
      const StepResult r = runner_->run(micro, step_, micro_step_);
      micro_step_ += micro.size();
      ++step_;
      summary_.tokens += r.tokens;
      tokens_seen_ += r.target_tokens;
      summary_.last_loss = r.loss;
      if (r.skipped) {
        ++summary_.skipped_steps;
        progress.message(r.skip_reason + "; step skipped (on_nonfinite = skip)");
        metrics.write({{"step", step_}, {"epoch", epoch()}, {"skipped", r.skip_reason}});
      } else {
        window_loss += r.loss;
        window_grad_norm += r.grad_norm;
        ++window_steps;
      }
      window_tokens += r.tokens;
      const double tokens_per_second = static_cast<double>(window_tokens) / std::max(seconds_since(window_start), 1e-9);
      progress.update({step_, r.loss, r.learning_rate, tokens_per_second, gpu_in_use(), gpu_peak()});
      if ((step_ % config_.logging_steps == 0 || step_ == total_steps_) && window_steps > 0) {
        // As the Trainer logs: the mean loss of the steps since the last line.
        last_logged_loss_ = window_loss / static_cast<double>(window_steps);
        nlohmann::ordered_json line = {{"step", step_},
                                       {"epoch", epoch()},
                                       {"loss", *last_logged_loss_},
                                       {"grad_norm", window_grad_norm / static_cast<double>(window_steps)},
                                       {"learning_rate", r.learning_rate},
                                       {"tokens_per_second", tokens_per_second}};
        if (gpu_peak() >= 0) {
          line["gpu_allocated_gib"] = static_cast<double>(gpu_in_use()) / 1073741824.0;
          line["gpu_peak_gib"] = static_cast<double>(gpu_peak()) / 1073741824.0;
        }
        metrics.write(line);
        window_loss = window_grad_norm = 0.0;
        window_steps = 0;
        window_tokens = 0;
        window_start = std::chrono::steady_clock::now();
      }
      if (eval_ && (step_ % eval_every_ == 0 || step_ == total_steps_)) {
        summary_.last_eval_loss = evaluate();
        metrics.write({{"step", step_}, {"epoch", epoch()}, {"eval_loss", *summary_.last_eval_loss}});
        progress.message(fmt::format("eval loss {:.4f} at step {}", *summary_.last_eval_loss, step_));
      }
      // Logged before saved: a run resumed from this checkpoint logs from the next step on.
      if (step_ % config_.save_steps == 0 && step_ < total_steps_) {
        const std::string path = save_checkpoint_now();
        progress.message("saved " + path);
      }
    }
    progress.finish();
    save_adapter(config_.out);
    write_loss_plot();
    summary_.steps = step_;
    summary_.seconds = seconds_since(start);
    summary_.peak_gpu_bytes = std::max<int64_t>(gpu_peak(), 0);
    return summary_;
  }

 private:
  std::string metrics_path() const { return config_.out + "/metrics.jsonl"; }

  double epoch() const {
    const DataPosition p = batches_->state();
    const int64_t in_epoch = std::max<int64_t>(train_->size(), 1);
    return static_cast<double>(p.epoch) + static_cast<double>(p.index) / static_cast<double>(in_epoch);
  }

  int64_t gpu_in_use() const {
    return backend_->device() == Device::cuda ? static_cast<int64_t>(device_memory_ledger().total_in_use()) : -1;
  }
  int64_t gpu_peak() const {
    return backend_->device() == Device::cuda ? static_cast<int64_t>(device_memory_ledger().peak_total()) : -1;
  }

  // A fresh run must not mix its checkpoints and logs with another run's.
  void check_output_folder() {
    if (config_.resume) return;
    NIBBLE_CHECK(list_checkpoints(config_.out).empty(),
                 "{}: holds checkpoints of an earlier run; pass --resume to continue it, or choose another --out",
                 config_.out);
  }

  void load_model() {
    LlamaLoadOptions load;
    load.compute_dtype = train_compute_dtype(config_);
    quant_ = train_quant_config(config_);
    // A bitsandbytes folder is 4-bit already (its own quant type wins); a 16-bit one is
    // quantized on load, as transformers does with a BitsAndBytesConfig, unless load_in_4bit is off.
    const ModelConfig model_config = load_model_config(config_.model);
    if (model_config.quantization) {
      quant_.type = model_config.quantization->quant_type;
      quant_.double_quant = model_config.quantization->double_quant;
    } else if (config_.load_in_4bit) {
      load.quantize = quant_;
    }
    model_ = std::make_unique<LlamaModel>(LlamaModel::load(config_.model, *backend_, load));
    tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(config_.model));
    check_tokenizer_fits(*tokenizer_, config_.model, model_->hyper(), config_.model);
  }

  void load_data() {
    chat_template_ = ChatTemplate::load_if_present(config_.model);
    const ChatTemplate* chat = chat_template_ ? &*chat_template_ : nullptr;
    const DatasetOptions options = train_dataset_options(config_);
    Dataset all = Dataset::load(config_.data, *tokenizer_, chat, options);
    if (config_.eval_split > 0) {
      Dataset::Split split = all.split(config_.eval_split, static_cast<uint64_t>(config_.seed));
      train_ = std::make_unique<Dataset>(std::move(split.train));
      eval_ = std::make_unique<Dataset>(std::move(split.eval));
    } else {
      train_ = std::make_unique<Dataset>(std::move(all));
      if (!config_.eval_data.empty())
        eval_ = std::make_unique<Dataset>(Dataset::load(config_.eval_data, *tokenizer_, chat, options));
    }
    NIBBLE_CHECK(train_->size() > 0, "{}: no training example left (every line was blank, bad or without a target)",
                 config_.data);
    eval_every_ = train_eval_steps(config_);
  }

  ModelShape model_shape() const { return model_shape_of(model_->hyper(), config_.model); }

  void init_adapter() {
    adapter_ = config_.init_adapter.empty()
                   ? lora_init(train_lora_config(config_), model_shape(), static_cast<uint64_t>(config_.seed))
                   : lora_load_peft(config_.init_adapter, model_shape());
    lora_attach(*model_, adapter_);
    TrainShape predicted;
    predicted.seq_len = config_.max_seq_length;
    predicted.batch = config_.per_device_train_batch_size;
    predicted.lora_rank = adapter_.config.r;
    predicted.lora_targets.clear();
    for (const LoraLinear& l : adapter_.linears) {
      if (l.target.layer == adapter_.linears.front().target.layer) predicted.lora_targets.push_back(l.target.name);
    }
    predicted.gradient_checkpointing = config_.gradient_checkpointing;
    predicted.optimizer = parse_adamw_variant(config_.optim);
    predicted.quant = quant_;
    predicted.compute_dtype = model_->compute_dtype();
    summary_.predicted_gpu_bytes = plan_memory(model_shape(), predicted).gpu_total;

    TrainingOptions options;
    options.loss_chunk_tokens = predicted.loss_chunk_tokens;  // the chunk the prediction assumes
    options.gradient_checkpointing = config_.gradient_checkpointing;
    options.dropout_seed = static_cast<uint64_t>(config_.seed);
    training_ = std::make_unique<LlamaTraining>(*model_, options);
    for (const LoraLinear& l : adapter_.linears) {
      LlamaLora& lora = *model_->find_linear(l.target.module)->lora;
      params_.push_back({peft_lora_tensor_name(l.target.module, false), lora.a, lora.grad_a});
      params_.push_back({peft_lora_tensor_name(l.target.module, true), lora.b, lora.grad_b});
    }
    optimizer_ = std::make_unique<AdamwOptimizer>(parse_adamw_variant(config_.optim), train_adamw_hyper(config_),
                                                  params_);
  }

  void plan_steps() {
    batches_ = std::make_unique<BatchIterator>(*train_, train_batch_options(config_));
    const int64_t ga = config_.gradient_accumulation_steps;
    const int64_t per_epoch = (batches_->batches_in_epoch(0) + ga - 1) / ga;
    total_steps_ = train_total_steps(config_, per_epoch);
    StepSchedule s;
    s.learning_rate = config_.learning_rate;
    s.schedule = parse_lr_schedule(config_.lr_scheduler_type);
    s.warmup_steps = train_warmup_steps(config_, total_steps_);
    s.total_steps = total_steps_;
    s.max_grad_norm = config_.max_grad_norm;
    s.on_nonfinite = parse_nonfinite_policy(config_.on_nonfinite);
    schedule_ = s;
    runner_ = std::make_unique<StepRunner>(*training_, *optimizer_, params_, s);
  }

  TrainState state() const {
    TrainState s;
    s.global_step = step_;
    s.epoch = epoch();
    s.data_position = batches_->state();
    s.seed = config_.seed;
    s.rng_offset = micro_step_;
    s.tokens_seen = tokens_seen_;
    s.lr_scheduler_type = config_.lr_scheduler_type;
    s.learning_rate = config_.learning_rate;
    s.warmup_steps = schedule_.warmup_steps;
    s.total_steps = total_steps_;
    s.last_loss = last_logged_loss_;
    s.last_eval_loss = summary_.last_eval_loss;
    s.fingerprint = make_run_fingerprint(config_);
    return s;
  }

  // Adapter, optimizer state and trainer_state.json (step, data position, dropout stream).
  std::string save_checkpoint_now() {
    lora_read_back(*model_, adapter_);
    const SavedCheckpoint saved = save_checkpoint(
        config_.out, step_,
        [&](CheckpointStaging& staging) {
          lora_save_peft(staging.dir(), adapter_);
          save_safetensors(staging.file(kOptimizerFile), optimizer_->state_tensors());
        },
        train_state_text(state()), config_.save_total_limit);
    return saved.checkpoint.path;
  }

  void resume() {
    const std::optional<CheckpointInfo> latest = latest_checkpoint(config_.out);
    NIBBLE_CHECK(latest.has_value(), "--resume: {} holds no complete checkpoint to continue from", config_.out);
    const std::string state_file = latest->path + "/" + kTrainerStateFile;
    const TrainState saved = read_train_state(state_file);
    check_resume_fingerprint(saved.fingerprint, make_run_fingerprint(config_), state_file);
    LoraAdapter adapter = lora_load_peft(latest->path, model_shape());
    NIBBLE_CHECK(adapter.linears.size() == adapter_.linears.size(),
                 "{}: the checkpoint's adapter has {} adapted projections, this run {}", latest->path,
                 adapter.linears.size(), adapter_.linears.size());
    for (size_t i = 0; i < adapter.linears.size(); ++i) {
      LlamaLora& lora = *model_->find_linear(adapter.linears[i].target.module)->lora;
      lora.a.copy_from(adapter.linears[i].a);
      lora.b.copy_from(adapter.linears[i].b);
    }
    const SafetensorsFile optimizer_file = SafetensorsFile::open(latest->path + "/" + kOptimizerFile);
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const std::string& name : optimizer_file.names()) tensors.emplace_back(name, optimizer_file.tensor(name));
    optimizer_->load_state_tensors(tensors);
    batches_->restore(saved.data_position);
    step_ = saved.global_step;
    micro_step_ = saved.rng_offset;
    tokens_seen_ = saved.tokens_seen;
    last_logged_loss_ = saved.last_loss;
    summary_.last_eval_loss = saved.last_eval_loss;
    fmt::print(stderr, "resuming from {} (step {} of {})\n", latest->path, step_, total_steps_);
  }

  // Up to gradient_accumulation_steps batches of one epoch (the last group of an epoch is short).
  std::vector<Batch> next_micro_batches() {
    std::vector<Batch> micro;
    int64_t epoch = -1;
    while (static_cast<int64_t>(micro.size()) < config_.gradient_accumulation_steps && !batches_->done()) {
      if (epoch >= 0 && batches_->state().epoch != epoch) break;
      Batch b;
      if (!batches_->next(b)) break;
      epoch = b.epoch;
      micro.push_back(std::move(b));
    }
    return micro;
  }

  // Mean token loss over the whole eval set, in file order, without dropout.
  double evaluate() {
    BatchOptions b = train_batch_options(config_);
    b.shuffle = false;
    b.epochs = 1;
    BatchIterator it(*eval_, b);
    double sum = 0.0;
    int64_t targets = 0;
    Batch batch;
    while (it.next(batch)) {
      const MicroBatchLoss l = training_->evaluate(batch);
      sum += l.loss_sum;
      targets += l.target_tokens;
    }
    return targets > 0 ? sum / static_cast<double>(targets) : 0.0;
  }

  void save_adapter(const std::string& dir) {
    lora_read_back(*model_, adapter_);
    lora_save_peft(dir, adapter_);
  }

  void write_loss_plot() {
    const std::vector<nlohmann::ordered_json> records = read_metrics_log(metrics_path());
    std::vector<PlotSeries> series = {metrics_series(records, "train loss", "step", "loss")};
    if (eval_) series.push_back(metrics_series(records, "eval loss", "step", "eval_loss"));
    PlotOptions options;
    options.title = "nibble train: " + fs::path(config_.model).filename().string();
    write_line_chart_png(config_.out + "/loss.png", series, options);
  }

  TrainConfig config_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::optional<ChatTemplate> chat_template_;
  std::unique_ptr<Dataset> train_, eval_;
  QuantConfig quant_;
  LoraAdapter adapter_;
  std::unique_ptr<LlamaTraining> training_;
  std::vector<OptimParam> params_;
  std::unique_ptr<AdamwOptimizer> optimizer_;
  std::unique_ptr<BatchIterator> batches_;
  std::unique_ptr<StepRunner> runner_;
  StepSchedule schedule_;
  int64_t total_steps_ = 0;
  int64_t eval_every_ = 1;
  int64_t step_ = 0;
  uint64_t micro_step_ = 0;
  int64_t tokens_seen_ = 0;
  std::optional<double> last_logged_loss_;
  TrainSummary summary_;
};

TrainSummary run_training(const TrainConfig& config) { return Trainer(config).run(); }

}  // namespace nibble
