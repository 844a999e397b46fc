#include "model/backend.h"

#include <cstdint>
#include <utility>

#include "common/status.h"

namespace sculpt {

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr && backend_ != nullptr) backend_->Free(data_);
    backend_ = std::exchange(other.backend_, nullptr);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() {
  if (data_ != nullptr && backend_ != nullptr) backend_->Free(data_);
}

TensorView DeviceBuffer::view(DType dtype, int64_t rows, int64_t cols) const {
  return TensorView{data_, dtype, rows, cols};
}

absl::StatusOr<DeviceBuffer> Backend::LoadWeights(const void* src, DType src_dtype, size_t count) {
  const bool aligned = reinterpret_cast<uintptr_t>(src) % DTypeSize(src_dtype) == 0;
  if (aligned && ReadsHostWeights(src_dtype)) {
    return DeviceBuffer::Borrowed(src, count * DTypeSize(src_dtype));
  }
  SCULPT_ASSIGN_OR_RETURN(DeviceBuffer buffer, Allocate(count * DTypeSize(weight_dtype())));
  SCULPT_RETURN_IF_ERROR(UploadWeights(buffer.data(), src, src_dtype, count));
  return buffer;
}

}  // namespace sculpt
