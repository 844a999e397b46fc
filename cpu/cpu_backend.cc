#include "cpu/cpu_backend.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "cpu/cpu_ops.h"
#include "cpu/gemm.h"

namespace sculpt {
namespace {

constexpr size_t kAlignment = 64;

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(DType weight_dtype) : weight_dtype_(weight_dtype) {}

  std::string name() const override {
    return absl::StrCat("cpu (", weight_dtype_ == DType::kBF16 ? "bf16" : "fp32", " weights)");
  }

  absl::StatusOr<DeviceBuffer> Allocate(size_t bytes) override {
    const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    void* data = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
    if (data == nullptr) {
      return absl::ResourceExhaustedError(absl::StrCat("cannot allocate ", bytes, " bytes"));
    }
    return DeviceBuffer(this, data, bytes);
  }
  void Free(void* data) override { std::free(data); }

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

  absl::Status Embed(const EmbedParams& params) override { return cpu::Embed(params); }
  absl::Status RmsNorm(const RmsNormParams& params) override { return cpu::RmsNorm(params); }
  absl::Status AddRmsNorm(const AddRmsNormParams& params) override {
    return cpu::AddRmsNorm(params);
  }
  absl::Status Gemm(const GemmParams& params) override { return gemm_.Run(params); }
  absl::Status Rope(const RopeParams& params) override { return cpu::Rope(params); }
  absl::Status Attention(const AttentionParams& params) override { return cpu::Attention(params); }
  absl::Status SwiGlu(const SwiGluParams& params) override { return cpu::SwiGlu(params); }
  absl::Status Add(const AddParams& params) override { return cpu::Add(params); }
  absl::Status GatherRows(const GatherRowsParams& params) override {
    return cpu::GatherRows(params);
  }
  absl::Status ChooseTokens(const ChooseTokensParams& params) override {
    return cpu::ChooseTokens(params);
  }
  absl::Status Synchronize() override { return absl::OkStatus(); }

 private:
  const DType weight_dtype_;
  cpu::GemmRunner gemm_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> MakeCpuBackend(const CpuBackendOptions& options) {
  if (options.weight_dtype != DType::kF32 && options.weight_dtype != DType::kBF16) {
    return absl::InvalidArgumentError(
        absl::StrCat("the CPU backend stores weights as F32 or BF16, not ",
                     std::string(DTypeName(options.weight_dtype))));
  }
  return std::unique_ptr<Backend>(std::make_unique<CpuBackend>(options.weight_dtype));
}

std::unique_ptr<Backend> MakeCpuBackend() { return std::make_unique<CpuBackend>(DType::kF32); }

}  // namespace sculpt
