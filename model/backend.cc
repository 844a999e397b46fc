#include "model/backend.h"

#include <utility>

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

}  // namespace sculpt
