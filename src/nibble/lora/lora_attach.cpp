#include "nibble/lora/lora_attach.h"

namespace nibble {

namespace {

LlamaLinear& projection(LlamaModel& model, const LoraLinear& l) {
  LlamaLinear* linear = model.find_linear(l.target.module);
  NIBBLE_CHECK(linear != nullptr, "adapter module {}: the model has no such projection", l.target.module);
  NIBBLE_CHECK(linear->out == l.target.out && linear->in == l.target.in,
               "adapter module {}: made for a [{}, {}] projection, the model's is [{}, {}]", l.target.module,
               l.target.out, l.target.in, linear->out, linear->in);
  return *linear;
}

}  // namespace

void lora_attach(LlamaModel& model, const LoraAdapter& adapter) {
  const Device device = model.backend().device();
  model.clear_lora();
  for (const LoraLinear& l : adapter.linears) {
    LlamaLinear& linear = projection(model, l);
    LlamaLora lora;
    lora.a = l.a.to(device, MemoryCategory::lora);
    lora.b = l.b.to(device, MemoryCategory::lora);
    lora.scaling = static_cast<float>(l.scaling);
    lora.dropout = static_cast<float>(adapter.config.lora_dropout);
    linear.lora = std::move(lora);
  }
}

void lora_read_back(LlamaModel& model, LoraAdapter& adapter) {
  for (LoraLinear& l : adapter.linears) {
    LlamaLinear& linear = projection(model, l);
    NIBBLE_CHECK(linear.lora.has_value(), "adapter module {}: the model's projection has no adapter attached",
                 l.target.module);
    l.a = linear.lora->a.to(Device::cpu);
    l.b = linear.lora->b.to(Device::cpu);
  }
}

}  // namespace nibble
