// Finds CUDA devices and proves kernels and cuBLAS run on them; used by --device and gpu tests.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace sculpt::cuda {

// Number of usable CUDA devices; 0 (not an error) on a machine without a GPU or driver.
int DeviceCount();

// Describes device `index` ("NVIDIA H200, sm_90, 139 GiB").
absl::StatusOr<std::string> DescribeDevice(int index);

// Runs a tiny kernel and a cuBLAS SGEMM on device `index` and checks their results against
// the host: y = 2 * x + 1 elementwise, and C = A * B for 3x5x7 matrices.
absl::Status SelfTest(int index);

}  // namespace sculpt::cuda
