// The CUDA backend: model/backend.h on one NVIDIA GPU. Weights in bf16 (or fp32 for parity
// tests), fp32 activations, cuBLAS GEMMs, our kernels for everything else, one stream. Every
// buffer comes from one device arena reserved at creation, so serving never calls cudaMalloc.
#pragma once

#include <cstddef>
#include <memory>

#include "absl/status/statusor.h"
#include "common/dtype.h"
#include "model/backend.h"

namespace sculpt {

struct CudaBackendOptions {
  int device = 0;
  // kBF16 (serving) or kF32 (bit-for-bit comparisons with the CPU backend).
  DType weight_dtype = DType::kBF16;
  // The arena every buffer comes from; 0 = this fraction of the device's free memory.
  size_t arena_bytes = 0;
  double arena_fraction = 0.9;
};

// Fails (with a message that says why) when the device is missing or cannot be initialised.
absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(const CudaBackendOptions& options);

}  // namespace sculpt
