// Element types of tensors in checkpoints and backends, and their conversions to fp32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace sculpt {

enum class DType { kF32, kF16, kBF16 };

constexpr size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
      return 2;
  }
  return 0;
}

constexpr std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
  }
  return "?";
}

inline float BF16ToFloat(uint16_t bits) {
  uint32_t widened = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &widened, sizeof(value));
  return value;
}

// IEEE 754 binary16 to binary32, including subnormals, infinities and NaN.
inline float F16ToFloat(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  uint32_t exponent = (bits >> 10) & 0x1fu;
  uint32_t mantissa = bits & 0x3ffu;
  uint32_t result;
  if (exponent == 0) {
    if (mantissa == 0) {
      result = sign;
    } else {
      exponent = 127 - 15 + 1;
      while ((mantissa & 0x400u) == 0) {
        mantissa <<= 1;
        --exponent;
      }
      mantissa &= 0x3ffu;
      result = sign | (exponent << 23) | (mantissa << 13);
    }
  } else if (exponent == 0x1f) {
    result = sign | 0x7f800000u | (mantissa << 13);
  } else {
    result = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  }
  float value;
  std::memcpy(&value, &result, sizeof(value));
  return value;
}

// Round-to-nearest-even, as PyTorch converts fp32 to bf16 (NaN stays a quiet NaN). Written as a
// select, not a branch, so loops over it vectorize.
inline uint16_t FloatToBF16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  const uint32_t quiet_nan = (bits >> 16) | 0x40u;
  return static_cast<uint16_t>((bits & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

// Converts `count` elements of `dtype` at `src` to fp32 at `dst`.
void ConvertToFloat(DType dtype, const void* src, size_t count, float* dst);

// Converts `count` elements of `dtype` at `src` to bf16 bits at `dst` (fp16 through fp32, both
// rounded to nearest even, as PyTorch's .to(torch.bfloat16)).
void ConvertToBF16(DType dtype, const void* src, size_t count, uint16_t* dst);

// Element `index` of a row of `dtype` (F32 or BF16) as fp32: small weights (norms, biases) read
// in whichever dtype the backend stores them.
inline float LoadAsFloat(DType dtype, const void* row, int64_t index) {
  return dtype == DType::kBF16 ? BF16ToFloat(static_cast<const uint16_t*>(row)[index])
                               : static_cast<const float*>(row)[index];
}

}  // namespace sculpt
