#include "server/device.h"

#include <spdlog/spdlog.h>

#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "cpu/cpu_backend.h"
#include "cpu/threads.h"
#include "model/safetensors.h"
#ifdef SCULPT_HAVE_CUDA
#include "cuda/cuda_backend.h"
#include "cuda/device_probe.cuh"
#endif

namespace sculpt {
namespace {

// The dtype weights are kept in; std::nullopt for "auto".
absl::StatusOr<std::optional<DType>> ParseDType(const std::string& dtype) {
  if (dtype == "auto") return std::nullopt;
  if (dtype == "bfloat16") return DType::kBF16;
  if (dtype == "float32") return DType::kF32;
  return absl::InvalidArgumentError(
      absl::StrCat("--dtype must be auto, bfloat16 or float32, got '", dtype, "'"));
}

absl::StatusOr<std::unique_ptr<Backend>> MakeCpuBackendFor(std::optional<DType> dtype,
                                                           bool int8_gemm_weights,
                                                           const std::string& model_dir) {
  if (!dtype.has_value()) {
    dtype = DType::kF32;
    if (!model_dir.empty()) {
      // A checkpoint that cannot be opened is reported by the loader, with its own message.
      absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(model_dir);
      if (checkpoint.ok() && (*checkpoint)->dominant_dtype() != DType::kF32) dtype = DType::kBF16;
    }
  }
  return MakeCpuBackend({.weight_dtype = *dtype, .int8_gemm_weights = int8_gemm_weights});
}

}  // namespace

bool BuiltWithCuda() {
#ifdef SCULPT_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const BackendChoice& choice) {
  SCULPT_ASSIGN_OR_RETURN(std::optional<DType> dtype, ParseDType(choice.dtype));
  if (choice.weights != "auto" && choice.weights != "int8") {
    return absl::InvalidArgumentError(
        absl::StrCat("--weights must be auto or int8, got '", choice.weights, "'"));
  }
  const bool int8 = choice.weights == "int8";
  const std::string& device = choice.device;
  if (device == "cpu") return MakeCpuBackendFor(dtype, int8, choice.model_dir);
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
    return MakeCpuBackendFor(dtype, int8, choice.model_dir);
  }
  if (int8) {
    return absl::InvalidArgumentError(
        "--weights int8 runs on the CPU backend only; add --device cpu or leave --weights auto");
  }
  return MakeCudaBackend({.device = index, .weight_dtype = dtype.value_or(DType::kBF16)});
#else
  if (device == "auto") {
    spdlog::info("this sculpt was built without CUDA: running on the CPU");
    return MakeCpuBackendFor(dtype, int8, choice.model_dir);
  }
  return absl::FailedPreconditionError(
      "this sculpt was built without CUDA (no nvcc at build time, or SCULPT_CUDA=OFF); "
      "run with --device cpu");
#endif
}

void AddBackendFlags(FlagSet& flags) {
  flags.Add("device", "DEV", "auto",
            "auto (a GPU if there is one, else the CPU), cpu, cuda or cuda:N");
  flags.Add("dtype", "T", "auto",
            "weights kept as: auto (CPU: the checkpoint's dtype, fp16 as bf16; GPU: bf16), "
            "bfloat16 or float32");
  flags.Add("weights", "W", "auto",
            "GEMM weights: auto (as --dtype) or int8 (quantized at load per output channel; "
            "CPU)");
}

BackendChoice BackendChoiceFromFlags(const FlagSet& flags, const std::string& model_dir) {
  return {.device = flags.GetString("device"),
          .dtype = flags.GetString("dtype"),
          .weights = flags.GetString("weights"),
          .model_dir = model_dir};
}

void AddThreadsFlag(FlagSet& flags) {
  flags.Add("threads", "N", "0", "CPU threads (0 = all cores)");
}

absl::Status ApplyThreadsFlag(const FlagSet& flags) {
  SCULPT_ASSIGN_OR_RETURN(int threads, flags.GetIntInRange("threads", 0, 4096));
  SetCpuThreads(threads);
  return absl::OkStatus();
}

}  // namespace sculpt
