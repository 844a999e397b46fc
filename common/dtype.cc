#include "common/dtype.h"

namespace sculpt {
namespace {

// Checkpoint data need not be 2-byte aligned; memcpy keeps the load defined.
uint16_t LoadHalf(const void* base, size_t index) {
  uint16_t bits;
  std::memcpy(&bits, static_cast<const char*>(base) + index * 2, sizeof(bits));
  return bits;
}

}  // namespace

void ConvertToFloat(DType dtype, const void* src, size_t count, float* dst) {
  switch (dtype) {
    case DType::kF32:
      std::memcpy(dst, src, count * sizeof(float));
      return;
    case DType::kF16: {
      for (size_t i = 0; i < count; ++i) dst[i] = F16ToFloat(LoadHalf(src, i));
      return;
    }
    case DType::kBF16: {
      for (size_t i = 0; i < count; ++i) dst[i] = BF16ToFloat(LoadHalf(src, i));
      return;
    }
  }
}

void ConvertToBF16(DType dtype, const void* src, size_t count, uint16_t* dst) {
  switch (dtype) {
    case DType::kBF16:
      std::memcpy(dst, src, count * 2);
      return;
    case DType::kF16: {
      for (size_t i = 0; i < count; ++i) dst[i] = FloatToBF16(F16ToFloat(LoadHalf(src, i)));
      return;
    }
    case DType::kF32: {
      for (size_t i = 0; i < count; ++i) {
        float value;
        std::memcpy(&value, static_cast<const char*>(src) + i * 4, sizeof(value));
        dst[i] = FloatToBF16(value);
      }
      return;
    }
  }
}

}  // namespace sculpt
