#include "nibble/backend/backend.h"

#include <utility>

namespace nibble {

#ifndef NIBBLE_WITH_CUDA
std::unique_ptr<Backend> make_cuda_backend() {
  fail("the CUDA backend is not in this build of nibble (nvcc was not found at build time); use --device cpu");
}
#endif

namespace {

// The portable recording: the ops themselves, called again at each replay.
class CallAgain final : public Backend::Recording {
 public:
  explicit CallAgain(std::function<void()> ops) : ops_(std::move(ops)) {}
  void run() const { ops_(); }

 private:
  std::function<void()> ops_;
};

}  // namespace

void Backend::add_rmsnorm_forward(Tensor& x, Tensor& out, const Tensor& delta, const Tensor& weight, float eps) {
  add_forward(x, x, delta);
  rmsnorm_forward(out, x, weight, eps);
}

std::unique_ptr<Backend::Recording> Backend::record(std::function<void()> ops) {
  NIBBLE_CHECK(ops != nullptr, "record: no ops to record");
  return std::make_unique<CallAgain>(std::move(ops));
}

void Backend::replay(Recording& recording) {
  auto* again = dynamic_cast<CallAgain*>(&recording);
  NIBBLE_CHECK(again != nullptr, "replay: the recording was made by another backend");
  again->run();
}

std::unique_ptr<Backend> make_backend(Device device) {
  return device == Device::cpu ? make_cpu_backend() : make_cuda_backend();
}

}  // namespace nibble
