#include "server/device.h"

#include <spdlog/spdlog.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cpu/cpu_backend.h"
#ifdef SCULPT_HAVE_CUDA
#include "cuda/cuda_backend.h"
#include "cuda/device_probe.cuh"
#endif

namespace sculpt {

bool BuiltWithCuda() {
#ifdef SCULPT_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

absl::StatusOr<std::unique_ptr<Backend>> MakeBackendForDevice(const std::string& device) {
  if (device == "cpu") return MakeCpuBackend();
  int index = 0;  // "cuda" and "auto" mean GPU 0
  const bool valid =
      device == "auto" || device == "cuda" ||
      (device.rfind("cuda:", 0) == 0 && absl::SimpleAtoi(device.substr(5), &index) && index >= 0);
  if (!valid) {
    return absl::InvalidArgumentError(
        absl::StrCat("--device must be auto, cpu, cuda or cuda:N, got '", device, "'"));
  }
#ifdef SCULPT_HAVE_CUDA
  if (device == "auto" && cuda::DeviceCount() == 0) {
    spdlog::info("no CUDA device found: running on the CPU");
    return MakeCpuBackend();
  }
  return MakeCudaBackend({.device = index});
#else
  if (device == "auto") {
    spdlog::info("this sculpt was built without CUDA: running on the CPU");
    return MakeCpuBackend();
  }
  return absl::FailedPreconditionError(
      "this sculpt was built without CUDA (no nvcc at build time, or SCULPT_CUDA=OFF); "
      "run with --device cpu");
#endif
}

}  // namespace sculpt
