// Device-side reads and writes of tensors stored as fp32, fp16 or bf16 (computed in fp32), and the
// switch that turns a runtime dtype into a template constant. Included by .cu files only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "common/dtype.h"

namespace sculpt::cuda {

template <DType kType>
__device__ __forceinline__ float LoadAsFloat(const void* data, int64_t index) {
  if constexpr (kType == DType::kF32) {
    return static_cast<const float*>(data)[index];
  } else if constexpr (kType == DType::kBF16) {
    return __bfloat162float(static_cast<const __nv_bfloat16*>(data)[index]);
  } else {
    return __half2float(static_cast<const __half*>(data)[index]);
  }
}

// Stores `value` rounded to nearest even into element `index` of a tensor of kType.
template <DType kType>
__device__ __forceinline__ void StoreFromFloat(void* data, int64_t index, float value) {
  if constexpr (kType == DType::kF32) {
    static_cast<float*>(data)[index] = value;
  } else if constexpr (kType == DType::kBF16) {
    static_cast<__nv_bfloat16*>(data)[index] = __float2bfloat16_rn(value);
  } else {
    static_cast<__half*>(data)[index] = __float2half_rn(value);
  }
}

template <DType kType>
using DTypeConstant = std::integral_constant<DType, kType>;

// Calls launch(DTypeConstant<dtype>{}), so a kernel can be instantiated per stored dtype.
template <typename Launch>
auto DispatchDType(DType dtype, Launch&& launch) {
  switch (dtype) {
    case DType::kF32:
      return launch(DTypeConstant<DType::kF32>{});
    case DType::kF16:
      return launch(DTypeConstant<DType::kF16>{});
    case DType::kBF16:
      return launch(DTypeConstant<DType::kBF16>{});
  }
  return launch(DTypeConstant<DType::kF32>{});
}

}  // namespace sculpt::cuda
