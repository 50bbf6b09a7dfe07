// The table of training-op cases (backward ops, packed attention, the LoRA GEMM,
// cross-entropy), in the OpCase form of backend_op_cases.h so both runners reuse its harness:
// fresh non-zero inputs, guard bytes, a double-precision reference and a stated bound.
#pragma once

#include <vector>

#include "backend_op_cases.h"

namespace nibble::test {

const std::vector<OpCase>& backend_backward_cases();

// Sequence ids for packed attention: runs of the given lengths, ids 0, 1, 2, ...
Tensor packed_ids(const std::vector<int64_t>& lengths, Device device);

// Checks, on `backend`, that packed attention (forward, lse, backward) over several sequences
// equals running each sequence alone (bit for bit on the CPU; within `bound` on a GPU).
void check_packed_equals_separate(Backend& backend, DType dtype, double bound);

// Bad training-op calls every backend must refuse with nibble::Error naming the op.
void check_backward_rejects_bad_arguments(Backend& backend);

}  // namespace nibble::test
