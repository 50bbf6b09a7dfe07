// The cuBLAS counterpart of core's NIBBLE_CUDA_CHECK: a failed call throws nibble::Error naming
// the statement, the status, the file and the line.
#pragma once

#include <cublas_v2.h>

#include "nibble/core/error.h"

#define NIBBLE_CUBLAS_CHECK(statement)                                                               \
  do {                                                                                               \
    cublasStatus_t nibble_status_ = (statement);                                                     \
    if (nibble_status_ != CUBLAS_STATUS_SUCCESS)                                                     \
      ::nibble::fail("cuBLAS error {} ({}) in `{}` at {}:{}", cublasGetStatusName(nibble_status_),   \
                     cublasGetStatusString(nibble_status_), #statement, __FILE__, __LINE__);         \
  } while (0)
