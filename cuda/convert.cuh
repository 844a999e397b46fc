// Element type conversion on the device: weights arriving as fp32/fp16/bf16 become the backend's
// weight dtype, and fp32 activations become bf16 GEMM inputs. Rounding is to nearest even, as
// torch's .to(torch.bfloat16) does.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "common/dtype.h"

namespace sculpt::cuda {

struct ConvertKernelParams {
  const void* src = nullptr;  // [count] of src_dtype, device, read
  DType src_dtype = DType::kF32;
  void* dst = nullptr;  // [count] of dst_dtype, device, written (must not overlap src)
  DType dst_dtype = DType::kBF16;
  int64_t count = 0;
};

absl::Status LaunchConvert(const ConvertKernelParams& params, cudaStream_t stream);

}  // namespace sculpt::cuda
