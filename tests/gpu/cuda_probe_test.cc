// Proves the CUDA toolchain end to end: a kernel and a cuBLAS GEMM run and give right values.
// Skips (visibly) on machines without a GPU, such as CI.
#include <gtest/gtest.h>

#include "cuda/device_probe.cuh"

namespace sculpt {
namespace {

TEST(CudaProbeTest, KernelAndCublasRunOnEveryDevice) {
  const int devices = cuda::DeviceCount();
  if (devices == 0) GTEST_SKIP() << "no CUDA device on this machine";
  for (int index = 0; index < devices; ++index) {
    auto description = cuda::DescribeDevice(index);
    ASSERT_TRUE(description.ok()) << description.status();
    std::cout << "device " << index << ": " << *description << "\n";
    const absl::Status status = cuda::SelfTest(index);
    EXPECT_TRUE(status.ok()) << status;
  }
}

}  // namespace
}  // namespace sculpt
