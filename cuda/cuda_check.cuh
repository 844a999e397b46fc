// CUDA and cuBLAS errors as absl statuses: the CUDA code returns an internal status marked as a
// device failure (common/status.h) instead of exiting, and the backend marks itself unhealthy on
// those only (STYLE.md). Host-only; safe to include from .cc.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace sculpt::cuda {

inline absl::Status CudaStatus(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return absl::OkStatus();
  return MarkDeviceFailure(absl::InternalError(
      absl::StrCat(what, ": ", cudaGetErrorName(error), " (", cudaGetErrorString(error), ")")));
}

inline absl::Status CublasStatus(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return MarkDeviceFailure(absl::InternalError(absl::StrCat(
      what, ": ", cublasGetStatusName(status), " (", cublasGetStatusString(status), ")")));
}

// After a <<<...>>> launch: a bad configuration is reported here, a fault in the kernel later by
// whichever call synchronizes.
inline absl::Status LaunchStatus(const char* kernel) {
  return CudaStatus(cudaGetLastError(), kernel);
}

}  // namespace sculpt::cuda

#define SCULPT_CUDA_RETURN_IF_ERROR(expr)                                             \
  do {                                                                                \
    if (absl::Status sculpt_cuda_status_ = ::sculpt::cuda::CudaStatus((expr), #expr); \
        !sculpt_cuda_status_.ok()) {                                                  \
      return sculpt_cuda_status_;                                                     \
    }                                                                                 \
  } while (false)

#define SCULPT_CUBLAS_RETURN_IF_ERROR(expr)                                               \
  do {                                                                                    \
    if (absl::Status sculpt_cublas_status_ = ::sculpt::cuda::CublasStatus((expr), #expr); \
        !sculpt_cublas_status_.ok()) {                                                    \
      return sculpt_cublas_status_;                                                       \
    }                                                                                     \
  } while (false)
