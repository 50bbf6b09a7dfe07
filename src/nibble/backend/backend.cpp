#include "nibble/backend/backend.h"

namespace nibble {

#ifndef NIBBLE_WITH_CUDA
std::unique_ptr<Backend> make_cuda_backend() {
  fail("the CUDA backend is not in this build of nibble (nvcc was not found at build time); use --device cpu");
}
#endif

std::unique_ptr<Backend> make_backend(Device device) {
  return device == Device::cpu ? make_cpu_backend() : make_cuda_backend();
}

}  // namespace nibble
