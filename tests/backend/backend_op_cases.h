// The table of backend op cases, shared by test_backend_cpu (every case on the CPU backend
// against a double-precision reference) and test_backend_cuda (the CUDA backend against the
// CPU backend). A case is data: input shapes and generators, output shapes, the op call, the
// reference, and a relative-error bound with the reason for it.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "nibble/backend/backend.h"

namespace nibble::test {

// How an input is drawn. Floats are never zero-filled: they are normal(mean, scale) draws
// rounded to the input's dtype, so the reference sees exactly what the backend sees.
struct InputSpec {
  enum class Kind { normal, index };
  Shape shape;
  DType dtype = DType::f32;
  Kind kind = Kind::normal;
  double mean = 0.0;
  double scale = 1.0;   // normal: standard deviation
  int64_t limit = 0;    // index: uniform in [0, limit)
};

struct OutputSpec {
  Shape shape;
  DType dtype;
};

using Tensors = std::vector<Tensor>;
using Values = std::vector<std::vector<double>>;  // one vector per output

struct OpCase {
  std::string name;
  std::vector<InputSpec> inputs;
  std::vector<OutputSpec> outputs;
  // Calls the op on `backend`; `in` and `out` are on its device, `out` sits between guard bytes.
  std::function<void(Backend& backend, Tensors& in, Tensors& out)> run;
  // The double-precision reference from the host inputs.
  std::function<Values(const Tensors& in)> reference;
  double bound = 0.0;  // on ||out - ref|| / ||ref||, per output
  std::string bound_origin;
};

const std::vector<OpCase>& backend_op_cases();

// Fresh inputs on the host; the seed is reported by the caller so a failure can be replayed.
Tensors make_inputs(const OpCase& op_case, std::mt19937_64& rng);

// Copies the inputs to the backend's device, allocates every output between poisoned guard bytes,
// runs the op, checks (with gtest) that the guards are untouched and every output element was
// written and is finite, and returns the outputs as doubles.
Values run_on_backend(const OpCase& op_case, Backend& backend, const Tensors& host_inputs);

// ||out - ref|| / ||ref||; expects ||ref|| > 0 (gtest failure otherwise).
double relative_error(const std::vector<double>& out, const std::vector<double>& ref);

// Bad calls every backend must refuse with nibble::Error naming the op.
void check_rejects_bad_arguments(Backend& backend);

}  // namespace nibble::test
