#include "nibble/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <cmath>
#include <memory>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "nibble/backend/backend.h"
#include "nibble/core/device.h"
#include "nibble/core/memory.h"
#include "nibble/io/hf_config.h"
#include "nibble/lora/lora_attach.h"
#include "nibble/lora/lora_peft.h"
#include "nibble/model/llama.h"
#include "nibble/model/llama_training.h"
#include "nibble/model/memory_plan.h"
#include "nibble/optim/optimizer.h"
#include "nibble/text/chat_template.h"
#include "nibble/text/dataset.h"
#include "nibble/text/dataset_batch.h"
#include "nibble/text/tokenizer.h"
#include "nibble/train/train_step.h"

namespace nibble {

namespace {

Device resolve_device(const std::string& name) {
  if (name.empty()) return cuda_available() ? Device::cuda : Device::cpu;
  return parse_device(name);
}

DType compute_dtype_of(const std::string& name) {
  if (name == "bfloat16" || name == "bf16") return DType::bf16;
  if (name == "float16" || name == "fp16") return DType::f16;
  if (name == "float32" || name == "fp32") return DType::f32;
  fail("bnb_4bit_compute_dtype '{}': expected bfloat16, float16 or float32", name);
}

LoraConfig lora_config_of(const TrainConfig& c) {
  LoraConfig l;
  l.r = c.r;
  l.lora_alpha = c.lora_alpha;
  l.lora_dropout = c.lora_dropout;
  l.target_modules = c.target_modules;
  l.use_rslora = c.use_rslora;
  l.base_model_name_or_path = c.model;
  return l;
}

DatasetOptions dataset_options_of(const TrainConfig& c) {
  DatasetOptions d;
  d.format = parse_data_format(c.dataset_format);
  d.max_seq_length = c.max_seq_length;
  d.train_on_inputs = c.train_on_inputs;
  d.skip_bad_lines = c.skip_bad_lines;
  return d;
}

// Optimizer steps of one epoch: its micro-batches in accumulation groups, the last group short
// (transformers' num_update_steps_per_epoch).
int64_t steps_in_epoch(const BatchIterator& batches, int64_t epoch, int64_t accumulation) {
  return (batches.batches_in_epoch(epoch) + accumulation - 1) / accumulation;
}

// Whether the model folder carries a chat template (chat data needs one; other data does not).
bool has_chat_template(const std::string& dir) {
  if (std::filesystem::exists(dir + "/chat_template.jinja")) return true;
  std::ifstream in(dir + "/tokenizer_config.json");
  if (!in) return false;
  const nlohmann::json config = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return config.is_object() && config.contains("chat_template");
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

class Trainer {
 public:
  explicit Trainer(const TrainConfig& config) : config_(config) {
    const Device device = resolve_device(config.device);
    backend_ = make_backend(device);
    summary_.device = std::string(device_name(device));
    load_model();
    load_data();
    init_adapter();
    plan_steps();
  }

  TrainSummary run() {
    const auto start = std::chrono::steady_clock::now();
    if (eval_ && step_ == 0) summary_.first_eval_loss = evaluate();
    while (step_ < total_steps_) {
      std::vector<Batch> micro = next_micro_batches();
      if (micro.empty()) break;  // the data ran out before the planned steps (packing counts vary)
      const StepResult r = runner_->run(micro, step_, micro_step_);
      micro_step_ += micro.size();
      ++step_;
      summary_.tokens += r.tokens;
      summary_.last_loss = r.loss;
      if (r.skipped) ++summary_.skipped_steps;
      if (eval_ && step_ % eval_every_ == 0) summary_.last_eval_loss = evaluate();
    }
    if (eval_ && (!summary_.last_eval_loss || step_ % eval_every_ != 0)) summary_.last_eval_loss = evaluate();
    save_adapter(config_.out);
    summary_.steps = step_;
    summary_.seconds = seconds_since(start);
    if (backend_->device() == Device::cuda) summary_.peak_gpu_bytes = static_cast<int64_t>(device_memory_ledger().peak_total());
    return summary_;
  }

 private:
  void load_model() {
    LlamaLoadOptions load;
    load.compute_dtype = compute_dtype_of(config_.bnb_4bit_compute_dtype);
    quant_ = QuantConfig{parse_quant_type(config_.bnb_4bit_quant_type), 64, config_.bnb_4bit_use_double_quant};
    // A bitsandbytes folder is 4-bit already (its own quant type wins); a 16-bit one is
    // quantized on load, as transformers does with a BitsAndBytesConfig.
    const ModelConfig model_config = load_model_config(config_.model);
    if (model_config.quantization) {
      quant_.type = model_config.quantization->quant_type;
      quant_.double_quant = model_config.quantization->double_quant;
    } else {
      load.quantize = quant_;
    }
    model_ = std::make_unique<LlamaModel>(LlamaModel::load(config_.model, *backend_, load));
    tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(config_.model));
  }

  void load_data() {
    if (has_chat_template(config_.model))
      chat_template_ = std::make_unique<ChatTemplate>(ChatTemplate::load(config_.model));
    const DatasetOptions options = dataset_options_of(config_);
    Dataset all = Dataset::load(config_.data, *tokenizer_, chat_template_.get(), options);
    NIBBLE_CHECK(config_.eval_data.empty() || config_.eval_split == 0.0,
                 "give eval_data or eval_split, not both");
    if (config_.eval_split > 0) {
      Dataset::Split split = all.split(config_.eval_split, static_cast<uint64_t>(config_.seed));
      train_ = std::make_unique<Dataset>(std::move(split.train));
      eval_ = std::make_unique<Dataset>(std::move(split.eval));
    } else {
      train_ = std::make_unique<Dataset>(std::move(all));
      if (!config_.eval_data.empty())
        eval_ = std::make_unique<Dataset>(Dataset::load(config_.eval_data, *tokenizer_, chat_template_.get(), options));
    }
    NIBBLE_CHECK(train_->size() > 0, "{}: no training example left (every line was blank, bad or without a target)",
                 config_.data);
    eval_every_ = config_.eval_steps > 0 ? config_.eval_steps : std::max<int64_t>(config_.logging_steps, 1);
  }

  void init_adapter() {
    adapter_ = lora_init(lora_config_of(config_), model_shape_of(model_->hyper(), config_.model),
                         static_cast<uint64_t>(config_.seed));
    lora_attach(*model_, adapter_);
    TrainingOptions options;
    options.gradient_checkpointing = config_.gradient_checkpointing;
    options.dropout_seed = static_cast<uint64_t>(config_.seed);
    training_ = std::make_unique<LlamaTraining>(*model_, options);
    for (const LoraLinear& l : adapter_.linears) {
      LlamaLora& lora = *model_->find_linear(l.target.module)->lora;
      params_.push_back({peft_lora_tensor_name(l.target.module, false), lora.a, lora.grad_a});
      params_.push_back({peft_lora_tensor_name(l.target.module, true), lora.b, lora.grad_b});
    }
    AdamwHyper hyper;
    hyper.beta1 = config_.adam_beta1;
    hyper.beta2 = config_.adam_beta2;
    hyper.eps = config_.adam_epsilon;
    hyper.weight_decay = config_.weight_decay;
    optimizer_ = std::make_unique<AdamwOptimizer>(parse_adamw_variant(config_.optim), hyper, params_);
  }

  void plan_steps() {
    BatchOptions b;
    b.batch_size = config_.per_device_train_batch_size;
    b.packing = config_.packing;
    b.seed = static_cast<uint64_t>(config_.seed);
    b.epochs = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(config_.num_train_epochs)));
    batches_ = std::make_unique<BatchIterator>(*train_, b);
    const int64_t ga = config_.gradient_accumulation_steps;
    if (config_.max_steps > 0) {
      total_steps_ = config_.max_steps;
    } else {
      const int64_t whole = static_cast<int64_t>(std::floor(config_.num_train_epochs));
      for (int64_t e = 0; e < whole; ++e) total_steps_ += steps_in_epoch(*batches_, e, ga);
      const double fraction = config_.num_train_epochs - static_cast<double>(whole);
      if (fraction > 0)
        total_steps_ += static_cast<int64_t>(std::ceil(fraction * static_cast<double>(steps_in_epoch(*batches_, whole, ga))));
    }
    NIBBLE_CHECK(total_steps_ > 0, "no optimizer step to take (num_train_epochs {}, max_steps {})",
                 config_.num_train_epochs, config_.max_steps);
    StepSchedule s;
    s.learning_rate = config_.learning_rate;
    s.schedule = parse_lr_schedule(config_.lr_scheduler_type);
    s.warmup_steps = config_.warmup_steps > 0 ? config_.warmup_steps : warmup_steps_for(config_.warmup_ratio, total_steps_);
    s.total_steps = total_steps_;
    s.max_grad_norm = config_.max_grad_norm;
    s.on_nonfinite = parse_nonfinite_policy(config_.on_nonfinite);
    runner_ = std::make_unique<StepRunner>(*training_, *optimizer_, params_, s);
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
    BatchOptions b;
    b.batch_size = config_.per_device_train_batch_size;
    b.packing = config_.packing;
    b.shuffle = false;
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

  TrainConfig config_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<ChatTemplate> chat_template_;
  std::unique_ptr<Dataset> train_, eval_;
  QuantConfig quant_;
  LoraAdapter adapter_;
  std::unique_ptr<LlamaTraining> training_;
  std::vector<OptimParam> params_;
  std::unique_ptr<AdamwOptimizer> optimizer_;
  std::unique_ptr<BatchIterator> batches_;
  std::unique_ptr<StepRunner> runner_;
  int64_t total_steps_ = 0;
  int64_t eval_every_ = 1;
  int64_t step_ = 0;
  uint64_t micro_step_ = 0;
  TrainSummary summary_;
};

TrainSummary run_training(const TrainConfig& config) { return Trainer(config).run(); }

}  // namespace nibble
