// The pre-norm RoPE/SwiGLU transformer body shared by the LLaDA and Dream families.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/safetensors.h"
#include "model/transformer.h"

namespace sculpt {

// Checkpoint tensor names of one family; "{i}" stands for the layer index. Projections are
// names without the ".weight"/".bias" suffix where a bias may follow.
struct TensorNames {
  std::string embedding;
  std::string final_norm;
  std::string lm_head;  // unused with weight tying
  std::string attn_norm;
  std::string q_proj, k_proj, v_proj;
  std::string attn_out;
  std::string ff_norm;
  std::string gate_proj, up_proj, down_proj;
};

// What a weight is read by: a GEMM (Backend::LoadGemmWeight, possibly in a backend layout of its
// own) or another op (plain row-major).
enum class WeightUse { kGemm, kPlain };

// Returns the backend buffer holding tensor `name` of `shape` (row-major) in the backend's
// weight dtype.
using WeightLoader = std::function<absl::StatusOr<DeviceBuffer>(
    const std::string& name, const std::vector<int64_t>& shape, WeightUse use)>;

// From any source of weights (benchmarks make random ones on the device). `weight_source` is
// kept alive as long as the model: the memory of borrowed weights.
absl::StatusOr<std::unique_ptr<Transformer>> BuildDenseTransformer(
    const ModelConfig& config, TensorNames names, const WeightLoader& load_tensor, Backend& backend,
    std::shared_ptr<const void> weight_source = nullptr);

// Weights the backend can read in place (Backend::ReadsHostWeights) stay in the checkpoint's
// mapping, which the model then keeps open; the others are converted into backend buffers. A
// tied LM head is loaded twice, as the embedding table and as a GEMM weight.
absl::StatusOr<std::unique_ptr<Transformer>> LoadDenseTransformer(
    const ModelConfig& config, TensorNames names, std::shared_ptr<const Checkpoint> checkpoint,
    Backend& backend);

}  // namespace sculpt
