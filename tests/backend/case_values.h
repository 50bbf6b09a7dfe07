// Helpers the op-case tables share: dtype epsilons, the value a dtype stores, tensors to and
// from doubles, and input specs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend_op_cases.h"

namespace nibble::test {

// Machine epsilon (spacing of values in [1, 2)); rounding to nearest moves a value by at most
// eps/2 of its size, and a rounding that falls the other way at a tie-near boundary by one ulp.
double eps_of(DType dtype);
inline const double kEpsF32 = 1.0 / (1 << 23);

std::string dtype_tag(DType dtype);  // "BF16", ...

// The value a tensor of `dtype` holds after storing x (via float, as every backend does).
double round_ref(DType dtype, double x);

// Every element as a double (a device tensor is copied to the host first).
std::vector<double> doubles(const Tensor& t);

// A host tensor of `dtype` holding `values` (rounded as round_ref does).
Tensor host_tensor(DType dtype, const Shape& shape, const std::vector<double>& values);

InputSpec normal(Shape shape, DType dtype, double scale = 1.0, double mean = 0.0);
InputSpec index(Shape shape, int64_t limit);

}  // namespace nibble::test
