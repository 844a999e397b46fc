// The CPU backend: weights in fp32 or bf16 (read in place from the mmap'd checkpoint when its
// dtype is the backend's), oneDNN GEMMs in fixed tiles, OpenMP loops. It is the reference every
// other backend is tested against.
#pragma once

#include <memory>

#include "common/dtype.h"
#include "model/backend.h"

namespace sculpt {

struct CpuBackendOptions {
  // kF32 (exact against fp32 references) or kBF16 (half the memory; GEMMs on AMX or
  // AVX512-BF16 where the CPU has them).
  DType weight_dtype = DType::kF32;
  // GEMM weights (projections, LM head) quantized to int8 at load, per output channel; the
  // other weights stay in weight_dtype (docs/cpu.md).
  bool int8_gemm_weights = false;
};

// INVALID_ARGUMENT for a weight dtype the CPU backend does not store.
absl::StatusOr<std::unique_ptr<Backend>> MakeCpuBackend(const CpuBackendOptions& options);
// fp32 weights.
std::unique_ptr<Backend> MakeCpuBackend();

}  // namespace sculpt
