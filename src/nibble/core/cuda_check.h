// One check macro family for every CUDA runtime, cuBLAS(Lt) and cuDNN call: a failure throws
// nibble::Error naming the statement, the file and the line. Out-of-memory becomes
// nibble::OutOfMemoryError so the caller can turn it into advice.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "nibble/core/error.h"

namespace nibble {

[[noreturn]] inline void cuda_fail(cudaError_t status, const char* statement, const char* file,
                                   int line) {
  std::string message = fmt::format("CUDA error {} ({}) in `{}` at {}:{}", cudaGetErrorName(status),
                                    cudaGetErrorString(status), statement, file, line);
  if (status == cudaErrorMemoryAllocation) throw OutOfMemoryError(message);
  throw Error(message);
}

}  // namespace nibble

#define NIBBLE_CUDA_CHECK(statement)                                                    \
  do {                                                                                  \
    cudaError_t nibble_status_ = (statement);                                           \
    if (nibble_status_ != cudaSuccess)                                                  \
      ::nibble::cuda_fail(nibble_status_, #statement, __FILE__, __LINE__);              \
  } while (0)

#define NIBBLE_CUBLAS_CHECK(statement)                                                             \
  do {                                                                                             \
    cublasStatus_t nibble_status_ = (statement);                                                   \
    if (nibble_status_ != CUBLAS_STATUS_SUCCESS)                                                   \
      ::nibble::fail("cuBLAS error {} ({}) in `{}` at {}:{}", cublasGetStatusName(nibble_status_), \
                     cublasGetStatusString(nibble_status_), #statement, __FILE__, __LINE__);       \
  } while (0)

// After a kernel launch: launch-configuration errors surface here, not at the next call.
#define NIBBLE_CUDA_CHECK_LAUNCH() NIBBLE_CUDA_CHECK(cudaGetLastError())
