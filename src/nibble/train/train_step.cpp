#include "nibble/train/train_step.h"

#include <cmath>

#include "nibble/optim/grad_clip.h"

namespace nibble {

NonFinitePolicy parse_nonfinite_policy(const std::string& name) {
  if (name == "stop") return NonFinitePolicy::stop;
  if (name == "skip") return NonFinitePolicy::skip;
  fail("on_nonfinite '{}': expected stop or skip", name);
}

StepRunner::StepRunner(LlamaTraining& training, AdamwOptimizer& optimizer, std::vector<OptimParam> params,
                       const StepSchedule& schedule)
    : training_(training), optimizer_(optimizer), params_(std::move(params)), schedule_(schedule) {
  for (const OptimParam& p : params_) grads_.push_back(p.grad);
}

std::string StepRunner::first_nonfinite_gradient() const {
  for (const OptimParam& p : params_) {
    if (!std::isfinite(grad_norm({p.grad}))) return p.name;
  }
  return "";
}

StepResult StepRunner::run(const std::vector<Batch>& micro_batches, int64_t step, uint64_t first_micro_step) {
  NIBBLE_CHECK(!micro_batches.empty(), "step {}: no micro-batches", step + 1);
  StepResult result;
  for (const Batch& b : micro_batches) {
    result.target_tokens += b.target_tokens;
    result.tokens += b.rows * b.seq_length;
  }
  zero_grads(grads_);
  // A step whose batches hold no target at all (every label masked) still runs, with scale 1, so
  // its loss reads 0 and its gradients are 0 rather than 0/0.
  const float scale = 1.0f / static_cast<float>(std::max<int64_t>(result.target_tokens, 1));
  double loss_sum = 0.0;
  for (size_t i = 0; i < micro_batches.size(); ++i)
    loss_sum += training_.forward_backward(micro_batches[i], scale, first_micro_step + i).loss_sum;
  result.loss = loss_sum * scale;

  auto bad = [&](const std::string& what) {
    const std::string message = fmt::format("step {}: {} is not finite (NaN or Inf)", step + 1, what);
    if (schedule_.on_nonfinite == NonFinitePolicy::stop)
      throw NonFiniteError(message + "; stopped before the update, so no checkpoint holds it (on_nonfinite "
                           "= skip skips such steps instead)");
    result.skipped = true;
    result.skip_reason = message;
    return result;
  };
  if (!std::isfinite(result.loss)) return bad("the loss");
  result.grad_norm = schedule_.max_grad_norm > 0 ? clip_grad_norm(grads_, static_cast<float>(schedule_.max_grad_norm))
                                                 : grad_norm(grads_);
  if (!std::isfinite(result.grad_norm)) return bad("the gradient of " + first_nonfinite_gradient());
  result.learning_rate = lr_at_step(schedule_.schedule, schedule_.learning_rate, step, schedule_.warmup_steps,
                                    schedule_.total_steps);
  optimizer_.step(result.learning_rate);
  return result;
}

}  // namespace nibble
