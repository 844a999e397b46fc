#include "model/backend.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
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

namespace {

std::string Shape(const TensorView& view) {
  return absl::StrCat("[", view.rows, ", ", view.cols, "]");
}

absl::Status RequireF32(const char* op, const char* name, const TensorView& view) {
  if (view.dtype == DType::kF32) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(op, ": ", name, " must be F32, got ", std::string(DTypeName(view.dtype))));
}

absl::Status RequireShape(const char* op, const char* name, const TensorView& view, int64_t rows,
                          int64_t cols) {
  if (view.rows == rows && view.cols == cols && (view.data != nullptr || rows * cols == 0)) {
    return absl::OkStatus();
  }
  if (view.data == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": ", name, " has no memory"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(op, ": ", name, " is ", Shape(view), ", expected [", rows, ", ", cols, "]"));
}

// An input and an output of the same shape, both F32.
absl::Status RequireSameF32(const char* op, const char* in_name, const TensorView& in,
                            const char* out_name, const TensorView& out) {
  SCULPT_RETURN_IF_ERROR(RequireF32(op, in_name, in));
  SCULPT_RETURN_IF_ERROR(RequireF32(op, out_name, out));
  SCULPT_RETURN_IF_ERROR(RequireShape(op, in_name, in, in.rows, in.cols));
  return RequireShape(op, out_name, out, in.rows, in.cols);
}

// Every index in [0, limit).
absl::Status RequireIndices(const char* op, const char* what, std::span<const int32_t> indices,
                            int64_t limit) {
  for (int32_t index : indices) {
    if (index < 0 || index >= limit) {
      return absl::InvalidArgumentError(
          absl::StrCat(op, ": ", what, " ", index, " is outside [0, ", limit, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status RequireNormWeight(const char* op, const TensorView& weight, int64_t d) {
  return RequireShape(op, "weight", weight, 1, d);
}

absl::Status RequireLayout(const char* op, const PackedLayout& layout, int64_t rows) {
  const auto& offsets = layout.sequence_offsets;
  if (offsets.empty() || offsets.front() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": sequence offsets must start at 0 (one more entry than sequences)"));
  }
  for (size_t s = 1; s < offsets.size(); ++s) {
    if (offsets[s] < offsets[s - 1]) {
      return absl::InvalidArgumentError(absl::StrCat(op, ": sequence offsets must not decrease (",
                                                     offsets[s - 1], " then ", offsets[s], ")"));
    }
  }
  if (layout.num_tokens() != rows) {
    return absl::InvalidArgumentError(absl::StrCat(op, ": the layout holds ", layout.num_tokens(),
                                                   " tokens, the tensor ", rows, " rows"));
  }
  if (!layout.first_positions.empty()) {
    if (std::ssize(layout.first_positions) != layout.num_sequences()) {
      return absl::InvalidArgumentError(absl::StrCat(op, ": first_positions has ",
                                                     layout.first_positions.size(), " entries for ",
                                                     layout.num_sequences(), " sequences"));
    }
    for (int32_t position : layout.first_positions) {
      if (position < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(op, ": a sequence's first position is ", position, ", below 0"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateOp(const EmbedParams& params) {
  SCULPT_RETURN_IF_ERROR(RequireF32("embed", "out", params.out));
  SCULPT_RETURN_IF_ERROR(RequireShape("embed", "out", params.out,
                                      static_cast<int64_t>(params.token_ids.size()),
                                      params.table.cols));
  return RequireIndices("embed", "token id", params.token_ids, params.table.rows);
}

absl::Status ValidateOp(const RmsNormParams& params) {
  SCULPT_RETURN_IF_ERROR(RequireSameF32("rms_norm", "x", params.x, "out", params.out));
  return RequireNormWeight("rms_norm", params.weight, params.x.cols);
}

absl::Status ValidateOp(const AddRmsNormParams& params) {
  SCULPT_RETURN_IF_ERROR(RequireSameF32("add_rms_norm", "x", params.x, "out", params.out));
  SCULPT_RETURN_IF_ERROR(
      RequireSameF32("add_rms_norm", "x", params.x, "residual", params.residual));
  if (params.out.data != nullptr &&
      (params.out.data == params.x.data || params.out.data == params.residual.data)) {
    return absl::InvalidArgumentError("add_rms_norm: out must not alias x or residual");
  }
  return RequireNormWeight("add_rms_norm", params.weight, params.x.cols);
}

absl::Status ValidateOp(const GemmParams& params) {
  SCULPT_RETURN_IF_ERROR(RequireF32("gemm", "x", params.x));
  SCULPT_RETURN_IF_ERROR(RequireF32("gemm", "out", params.out));
  SCULPT_RETURN_IF_ERROR(RequireShape("gemm", "x", params.x, params.x.rows, params.x.cols));
  SCULPT_RETURN_IF_ERROR(
      RequireShape("gemm", "weight", params.weight, params.weight.rows, params.x.cols));
  SCULPT_RETURN_IF_ERROR(
      RequireShape("gemm", "out", params.out, params.x.rows, params.weight.rows));
  if (params.bias.data == nullptr) return absl::OkStatus();
  return RequireShape("gemm", "bias", params.bias, 1, params.weight.rows);
}

absl::Status ValidateOp(const RopeParams& params) {
  SCULPT_RETURN_IF_ERROR(RequireSameF32("rope", "x", params.x, "x", params.x));
  if (params.head_dim <= 0 || params.head_dim % 2 != 0 || params.x.cols % params.head_dim != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("rope: head_dim must be even, positive and divide the row width ",
                     params.x.cols, ", got ", params.head_dim));
  }
  return RequireLayout("rope", params.layout, params.x.rows);
}

absl::Status ValidateOp(const AttentionParams& params) {
  if (params.n_heads <= 0 || params.n_kv_heads <= 0 || params.head_dim <= 0 ||
      params.n_heads % params.n_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "attention: n_heads (", params.n_heads, ") must be a positive multiple of ", "n_kv_heads (",
        params.n_kv_heads, ") and head_dim (", params.head_dim, ") positive"));
  }
  const int64_t rows = params.q.rows;
  const int64_t kv_rows = params.kv_rows.empty() ? rows : params.k.rows;
  const int64_t q_width = int64_t{params.n_heads} * params.head_dim;
  const int64_t kv_width = int64_t{params.n_kv_heads} * params.head_dim;
  for (const auto& [name, view, height, width] :
       {std::tuple{"q", &params.q, rows, q_width}, std::tuple{"k", &params.k, kv_rows, kv_width},
        std::tuple{"v", &params.v, kv_rows, kv_width},
        std::tuple{"out", &params.out, rows, q_width}}) {
    SCULPT_RETURN_IF_ERROR(RequireF32("attention", name, *view));
    SCULPT_RETURN_IF_ERROR(RequireShape("attention", name, *view, height, width));
  }
  SCULPT_RETURN_IF_ERROR(RequireLayout("attention", params.layout, rows));
  const int32_t sequences = params.layout.num_sequences();
  if (!params.causal_blocks.empty()) {
    if (std::ssize(params.causal_blocks) != sequences) {
      return absl::InvalidArgumentError(absl::StrCat("attention: causal_blocks has ",
                                                     params.causal_blocks.size(),
                                                     " block sizes for ", sequences, " sequences"));
    }
    for (int32_t s = 0; s < sequences; ++s) {
      if (params.causal_blocks[s] < 0) {
        return absl::InvalidArgumentError(absl::StrCat("attention: sequence ", s,
                                                       "'s causal block size must be >= 0, got ",
                                                       params.causal_blocks[s]));
      }
    }
  }
  if (params.kv_rows.empty()) return absl::OkStatus();
  if (std::ssize(params.kv_rows) != sequences) {
    return absl::InvalidArgumentError(absl::StrCat("attention: kv_rows has ", params.kv_rows.size(),
                                                   " ranges for ", sequences, " sequences"));
  }
  for (int32_t s = 0; s < sequences; ++s) {
    const RowRange& range = params.kv_rows[s];
    const bool has_queries =
        params.layout.sequence_offsets[s + 1] > params.layout.sequence_offsets[s];
    if (range.first < 0 || range.count < (has_queries ? 1 : 0) ||
        int64_t{range.first} + range.count > kv_rows) {
      return absl::InvalidArgumentError(
          absl::StrCat("attention: sequence ", s, "'s keys, rows [", range.first, ", ",
                       int64_t{range.first} + range.count, "), must be inside k's ", kv_rows,
                       " rows and not empty when it has queries"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateOp(const SwiGluParams& params) {
  SCULPT_RETURN_IF_ERROR(RequireSameF32("swiglu", "gate", params.gate, "up", params.up));
  return RequireSameF32("swiglu", "gate", params.gate, "out", params.out);
}

absl::Status ValidateOp(const AddParams& params) {
  SCULPT_RETURN_IF_ERROR(RequireSameF32("add", "a", params.a, "b", params.b));
  return RequireSameF32("add", "a", params.a, "out", params.out);
}

absl::Status ValidateOp(const GatherRowsParams& params) {
  SCULPT_RETURN_IF_ERROR(RequireF32("gather_rows", "x", params.x));
  SCULPT_RETURN_IF_ERROR(RequireF32("gather_rows", "out", params.out));
  if (params.out_rows.empty()) {
    SCULPT_RETURN_IF_ERROR(RequireShape("gather_rows", "out", params.out,
                                        static_cast<int64_t>(params.rows.size()), params.x.cols));
  } else {
    SCULPT_RETURN_IF_ERROR(
        RequireShape("gather_rows", "out", params.out, params.out.rows, params.x.cols));
    if (params.out_rows.size() != params.rows.size()) {
      return absl::InvalidArgumentError(absl::StrCat("gather_rows: ", params.out_rows.size(),
                                                     " destination rows for ", params.rows.size(),
                                                     " source rows"));
    }
    SCULPT_RETURN_IF_ERROR(
        RequireIndices("gather_rows", "destination row", params.out_rows, params.out.rows));
  }
  return RequireIndices("gather_rows", "row", params.rows, params.x.rows);
}

absl::Status ValidateOp(const ChooseTokensParams& params) {
  SCULPT_RETURN_IF_ERROR(RequireF32("choose_tokens", "logits", params.logits));
  if (params.logits.cols < 1 && !params.groups.empty()) {
    return absl::InvalidArgumentError("choose_tokens: the logits have no columns");
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
    if (group.top_logprobs >= 0) {
      const auto listed = static_cast<size_t>(rows) * static_cast<size_t>(group.top_logprobs);
      if (group.top_logprobs > kMaxTopLogprobs || group.logprobs.size() != group.positions.size() ||
          group.top_ids.size() != listed || group.top_values.size() != listed) {
        return absl::InvalidArgumentError(absl::StrCat(
            "choose_tokens: top_logprobs ", group.top_logprobs, " (at most ", kMaxTopLogprobs,
            ") needs logprobs of one entry per row and top_ids, top_values of top_logprobs "
            "per row"));
      }
    }
    if (group.style != TokenChoiceStyle::kLLaDA && group.style != TokenChoiceStyle::kDream) {
      return absl::InvalidArgumentError(
          absl::StrCat("choose_tokens: unknown style ", static_cast<int>(group.style)));
    }
    if (group.confidence != ConfidenceKind::kProbability &&
        group.confidence != ConfidenceKind::kMargin &&
        group.confidence != ConfidenceKind::kNegEntropy) {
      return absl::InvalidArgumentError(absl::StrCat("choose_tokens: unknown confidence kind ",
                                                     static_cast<int>(group.confidence)));
    }
    if (!std::isfinite(group.temperature) || group.temperature < 0.0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "choose_tokens: temperature must be finite and >= 0, got ", group.temperature));
    }
    if (std::isnan(group.top_p) || group.top_p <= 0.0) {
      return absl::InvalidArgumentError(
          absl::StrCat("choose_tokens: top_p must be in (0, 1] (1 = off), got ", group.top_p));
    }
    if (group.top_k < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("choose_tokens: top_k must be >= 0 (0 = off), got ", group.top_k));
    }
    if (group.uncond_first_row >= 0 && !std::isfinite(group.cfg_scale)) {
      return absl::InvalidArgumentError(
          absl::StrCat("choose_tokens: cfg_scale must be finite, got ", group.cfg_scale));
    }
  }
  return absl::OkStatus();
}

#define SCULPT_BACKEND_OP(Op)                          \
  absl::Status Backend::Op(const Op##Params& params) { \
    SCULPT_RETURN_IF_ERROR(ValidateOp(params));        \
    return Run##Op(params);                            \
  }
SCULPT_BACKEND_OP(Embed)
SCULPT_BACKEND_OP(RmsNorm)
SCULPT_BACKEND_OP(AddRmsNorm)
SCULPT_BACKEND_OP(Gemm)
SCULPT_BACKEND_OP(Rope)
SCULPT_BACKEND_OP(Attention)
SCULPT_BACKEND_OP(SwiGlu)
SCULPT_BACKEND_OP(Add)
SCULPT_BACKEND_OP(GatherRows)
SCULPT_BACKEND_OP(ChooseTokens)
#undef SCULPT_BACKEND_OP

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
