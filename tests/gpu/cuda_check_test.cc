// Only CUDA and cuBLAS errors mark a status as the device's failure, so a host-side check that
// fails (a size, a shape) never reports a healthy GPU as dead. Runs without a GPU: the error
// names are looked up on the host.
#include "cuda/cuda_check.cuh"

#include <gtest/gtest.h>

namespace sculpt {
namespace {

TEST(CudaCheckTest, OnlyDeviceErrorsAreDeviceFailures) {
  const absl::Status cuda = cuda::CudaStatus(cudaErrorIllegalAddress, "a kernel");
  EXPECT_EQ(cuda.code(), absl::StatusCode::kInternal);
  EXPECT_TRUE(IsDeviceFailure(cuda)) << cuda;
  EXPECT_NE(cuda.message().find("cudaErrorIllegalAddress"), std::string::npos) << cuda;

  const absl::Status cublas = cuda::CublasStatus(CUBLAS_STATUS_EXECUTION_FAILED, "a gemm");
  EXPECT_TRUE(IsDeviceFailure(cublas)) << cublas;

  EXPECT_TRUE(cuda::CudaStatus(cudaSuccess, "fine").ok());
  // A host-side check's internal error is not the device's.
  EXPECT_FALSE(IsDeviceFailure(absl::InternalError("choose_tokens: the sort needs more scratch")));
  EXPECT_FALSE(IsDeviceFailure(absl::OkStatus()));
}

}  // namespace
}  // namespace sculpt
