#include "model/backend.h"

#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
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

absl::Status ValidateTokenChoice(const ChooseTokensParams& params) {
  if (params.logits.dtype != DType::kF32) {
    return absl::InvalidArgumentError("choose_tokens: logits must be F32");
  }
  for (const TokenChoiceGroup& group : params.groups) {
    const auto rows = static_cast<int64_t>(group.positions.size());
    if (group.tokens.size() != group.positions.size() ||
        group.confidences.size() != group.positions.size()) {
      return absl::InvalidArgumentError(
          "choose_tokens: positions, tokens and confidences need one entry per row");
    }
    const bool inside =
        group.first_row >= 0 && group.first_row + rows <= params.logits.rows &&
        (group.uncond_first_row < 0 || group.uncond_first_row + rows <= params.logits.rows);
    if (!inside) {
      return absl::InvalidArgumentError(
          absl::StrCat("choose_tokens: a group's rows [", group.first_row, ", ",
                       group.first_row + rows, ") (unconditional from ", group.uncond_first_row,
                       ") lie outside the ", params.logits.rows, " rows of logits"));
    }
  }
  return absl::OkStatus();
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
