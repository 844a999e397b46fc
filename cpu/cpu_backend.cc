#include "cpu/cpu_backend.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "cpu/attention.h"
#include "cpu/cpu_ops.h"
#include "cpu/gemm.h"
#include "cpu/host_memory.h"
#include "cpu/threads.h"

namespace sculpt {
namespace {

constexpr size_t kAlignment = 64;

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const CpuBackendOptions& options)
      : weight_dtype_(options.weight_dtype), int8_gemm_weights_(options.int8_gemm_weights) {}

  std::string name() const override {
    return absl::StrCat("cpu (", weight_dtype_ == DType::kBF16 ? "bf16" : "fp32", " weights",
                        int8_gemm_weights_ ? ", int8 GEMM weights)" : ")");
  }

  absl::StatusOr<DeviceBuffer> Allocate(size_t bytes) override {
    const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    void* data = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
    if (data == nullptr) {
      return absl::ResourceExhaustedError(absl::StrCat("cannot allocate ", bytes, " bytes"));
    }
    return DeviceBuffer(this, data, bytes);
  }
  void Free(void* data) override {
    gemm_.Forget(data);
    std::free(data);
  }
  size_t AvailableMemory() const override { return HostAvailableMemory(); }

  absl::Status CopyToDevice(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
    return absl::OkStatus();
  }
  absl::Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
    return absl::OkStatus();
  }
  absl::Status UploadWeights(void* dst, const void* src, DType src_dtype, size_t count) override {
    if (weight_dtype_ == DType::kBF16) {
      ConvertToBF16(src_dtype, src, count, static_cast<uint16_t*>(dst));
    } else {
      ConvertToFloat(src_dtype, src, count, static_cast<float*>(dst));
    }
    return absl::OkStatus();
  }
  DType weight_dtype() const override { return weight_dtype_; }
  bool ReadsHostWeights(DType dtype) const override { return dtype == weight_dtype_; }

  // Packed into the GEMM's tiles (oneDNN's preferred layout for each): a copy, in the
  // checkpoint's dtype converted to the backend's.
  absl::StatusOr<DeviceBuffer> LoadGemmWeight(const void* src, DType src_dtype, int64_t rows,
                                              int64_t cols) override {
    const size_t count = static_cast<size_t>(rows * cols);
    // int8 weights are quantized from fp32 values.
    const DType plain_dtype = int8_gemm_weights_ ? DType::kF32 : weight_dtype_;
    std::vector<uint8_t> converted;
    const void* plain = src;
    const bool aligned = reinterpret_cast<uintptr_t>(src) % DTypeSize(src_dtype) == 0;
    if (src_dtype != plain_dtype || !aligned) {
      converted.resize(count * DTypeSize(plain_dtype));
      if (plain_dtype == DType::kF32) {
        ConvertToFloat(src_dtype, src, count, reinterpret_cast<float*>(converted.data()));
      } else {
        ConvertToBF16(src_dtype, src, count, reinterpret_cast<uint16_t*>(converted.data()));
      }
      plain = converted.data();
    }
    const TensorView weight{const_cast<void*>(plain), plain_dtype, rows, cols};
    SCULPT_ASSIGN_OR_RETURN(size_t packed_bytes, gemm_.PackedBytes(weight, int8_gemm_weights_));
    if (packed_bytes == 0) return LoadWeights(src, src_dtype, count);
    SCULPT_ASSIGN_OR_RETURN(DeviceBuffer buffer, Allocate(packed_bytes));
    SCULPT_RETURN_IF_ERROR(gemm_.Pack(weight, buffer.data(), int8_gemm_weights_));
    return buffer;
  }

  absl::Status Reserve(const ReserveParams& params) override {
    const WorkspaceLimits& limits = params.limits;
    SCULPT_RETURN_IF_ERROR(gemm_.Reserve(limits.tokens));
    SCULPT_RETURN_IF_ERROR(attention_.Reserve(limits.tokens, limits.sequences, params.n_heads,
                                              params.n_kv_heads, params.head_dim));
    token_choice_.Reserve(limits.logit_rows, params.vocab);
    return absl::OkStatus();
  }

  // Every forward starts with the embedding: the thread running it gets the process's count.
  absl::Status RunEmbed(const EmbedParams& params) override {
    ApplyCpuThreads();
    return cpu::Embed(params);
  }
  absl::Status RunRmsNorm(const RmsNormParams& params) override { return cpu::RmsNorm(params); }
  absl::Status RunAddRmsNorm(const AddRmsNormParams& params) override {
    return cpu::AddRmsNorm(params);
  }
  absl::Status RunGemm(const GemmParams& params) override { return gemm_.Run(params); }
  absl::Status RunRope(const RopeParams& params) override { return cpu::Rope(params); }
  absl::Status RunAttention(const AttentionParams& params) override {
    return attention_.Run(params);
  }
  absl::Status RunSwiGlu(const SwiGluParams& params) override { return cpu::SwiGlu(params); }
  absl::Status RunAdd(const AddParams& params) override { return cpu::Add(params); }
  absl::Status RunGatherRows(const GatherRowsParams& params) override {
    return cpu::GatherRows(params);
  }
  absl::Status RunChooseTokens(const ChooseTokensParams& params) override {
    ApplyCpuThreads();
    return cpu::ChooseTokens(params, token_choice_);
  }
  absl::Status Synchronize() override { return absl::OkStatus(); }

 private:
  const DType weight_dtype_;
  const bool int8_gemm_weights_;
  cpu::GemmRunner gemm_;
  cpu::AttentionRunner attention_;
  cpu::TokenChoiceScratch token_choice_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> MakeCpuBackend(const CpuBackendOptions& options) {
  if (options.weight_dtype != DType::kF32 && options.weight_dtype != DType::kBF16) {
    return absl::InvalidArgumentError(
        absl::StrCat("the CPU backend stores weights as F32 or BF16, not ",
                     std::string(DTypeName(options.weight_dtype))));
  }
  return std::unique_ptr<Backend>(std::make_unique<CpuBackend>(options));
}

std::unique_ptr<Backend> MakeCpuBackend() {
  return std::make_unique<CpuBackend>(CpuBackendOptions{});
}

}  // namespace sculpt
