// The CPU backend's dense projections through oneDNN, which picks its kernels by the CPU's
// features (AMX, AVX512-BF16, AVX-512, AVX2) at run time. Results are batch-invariant by
// construction: every GEMM is cut into tiles of one fixed shape per weight and CPU (TileRows x
// TileColsFor(k) x k, the row tail padded), and each tile is one single-threaded oneDNN call
// over the whole reduction, so a row's result never depends on the rows, the threads or the
// shape of the call it is part of.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/backend.h"

namespace dnnl {
struct engine;
struct stream;
}  // namespace dnnl

namespace sculpt::cpu {

// Output columns of one tile of an [n, k] weight, a function of the weight's shape only (never of
// the batch, so a row's result does not depend on its neighbours): wide enough at short
// reductions that a tile's work outweighs the cost of a call, narrow at long ones so a tile's
// weights stay in the core's cache, and narrow enough that a narrow weight still has at least
// kMinColTiles tiles: a few rows (a cached window's step) times a weight of one or three wide
// tiles would leave all but one or two threads waiting.
inline constexpr int64_t kMinColTiles = 8;
constexpr int64_t TileColsFor(int64_t n, int64_t k) {
  int64_t cols = k >= 2048 ? 64 : k >= 512 ? 128 : 256;
  while (cols > 64 && n < kMinColTiles * cols) cols /= 2;
  return cols;
}

class GemmRunner {
 public:
  GemmRunner();
  ~GemmRunner();
  GemmRunner(const GemmRunner&) = delete;
  GemmRunner& operator=(const GemmRunner&) = delete;

  // out[m, n] = x[m, k] * weight[n, k]^T (+ bias[n]); weight F32 or BF16 (then x is rounded
  // to bf16 as the GPU does and products accumulate in fp32, natively or, where the CPU has no
  // bf16 instructions, with the weights widened to fp32 tile by tile). The weight is either a
  // plain row-major matrix or one packed by Pack.
  absl::Status Run(const GemmParams& params);

  // Weights in the layout the tile kernels read fastest, tile after tile: PackedBytes(weight)
  // bytes at `destination`, which Run then recognises until Forget(destination). Plain weights
  // where packing gains nothing (bf16 widened on CPUs without bf16 kernels): 0 bytes.
  //
  // `quantize` (an F32 weight) packs int8 weights instead: symmetric per output channel (each
  // row of the weight scaled by max |w| / 127). Run then quantizes each row of x the same way
  // and multiplies int8 by int8 into int32 sums, which are exact, so the result cannot depend on
  // the kernel or the batch; out = sum * scale(x row) * scale(weight row).
  absl::StatusOr<size_t> PackedBytes(const TensorView& weight, bool quantize = false);
  // Whether this CPU has int8 kernels with exact int32 sums (AVX512-VNNI, AMX); without them
  // quantized packing is refused (FAILED_PRECONDITION naming the kernel).
  bool HasExactInt8();
  absl::Status Pack(const TensorView& weight, void* destination, bool quantize = false);
  void Forget(const void* destination);

  // Sizes the staging for GEMMs of up to `max_rows` rows with every weight shape PackedBytes has
  // seen, and binds their kernels to the threads, so that such GEMMs then allocate nothing.
  absl::Status Reserve(int64_t max_rows);

  // The oneDNN implementation that runs a tile of weights of `dtype` ("brg:avx512_core_amx",
  // "gemm:jit", ...), or why there is none.
  std::string KernelName(DType weight_dtype, int64_t k, bool quantized = false);

 private:
  struct TileKernel;
  // What a tile multiplies: fp32, bf16 (fp32 sums) or int8 (int32 sums).
  enum class Compute { kF32, kBF16, kS8 };
  // (compute, tile rows, tile columns, k, packed weights)
  using KernelKey = std::tuple<Compute, int64_t, int64_t, int64_t, bool>;
  struct PackedWeight {
    int64_t rows, cols;
    DType dtype;                       // of the weight as the model passes it
    std::vector<size_t> tile_offsets;  // bytes from the start, one per column tile
    std::vector<float> scales;         // int8 weights: one per output channel; else empty
  };
  static Compute ComputeFor(DType dtype) {
    return dtype == DType::kBF16 ? Compute::kBF16 : Compute::kF32;
  }

  // How one GEMM is cut into tiles, and the kernels of its full-width and last column tiles.
  struct Plan {
    Compute compute;
    bool quantized, widen;
    int64_t tile_rows, tile_cols, row_tiles, col_tiles, tail_rows, tail_cols;
    TileKernel* kernels[2];
  };
  // A weight shape the model multiplies by: what Reserve sizes for.
  using WeightShape = std::tuple<int64_t, int64_t, DType, bool>;  // (n, k, dtype, quantized)

  absl::StatusOr<TileKernel*> Kernel(Compute compute, int64_t rows, int64_t cols, int64_t k,
                                     bool packed);
  // The plan of an m x n x k GEMM, with its kernels bound to `threads` and the staging grown to
  // fit it.
  absl::StatusOr<Plan> Prepare(int64_t m, int64_t n, int64_t k, DType weight_dtype, bool quantized,
                               bool packed, int threads);
  // Rows of one tile for `compute`: a multiple of the kernel's row blocking, since a row in a
  // kernel's partial block is summed in another order than one in a full block. oneDNN's brgemm
  // kernels (AVX-512, AVX512-BF16, AMX) sum every row alike: 32, the logit rows of a typical
  // step. Its gemm:jit kernels (AVX2, and bf16 emulated on plain AVX-512) block rows by 6, which
  // tests/unit/batch_invariance_test.cc caught at 32: 48 there.
  int64_t TileRows(Compute compute);
  bool HasNativeBf16();

  std::unique_ptr<dnnl::engine> engine_;
  std::vector<dnnl::stream> streams_;  // one per thread
  std::map<KernelKey, std::unique_ptr<TileKernel>> kernels_;
  std::unordered_map<const void*, PackedWeight> packed_;
  std::set<WeightShape> weight_shapes_;
  int native_bf16_ = -1;              // unknown until the first bf16 GEMM
  int64_t tile_rows_[3] = {0, 0, 0};  // TileRows of each Compute, once known
  int exact_int8_ = -1;               // unknown until the first int8 weight
  // Grow-only staging (sized by Reserve): x rounded to bf16 (rows padded to whole tiles), fp32 x
  // where it cannot be read in place (the padded last tile, or all of it rounded to bf16 values for
  // widened weights), and per thread an output tile, oneDNN's scratchpad and a widened weight tile.
  std::vector<uint16_t> x_bf16_;
  std::vector<int8_t> x_s8_;
  std::vector<float> x_f32_, x_scales_;
  std::vector<std::vector<float>> out_tiles_;
  std::vector<std::vector<int32_t>> sum_tiles_;  // int8 tiles' int32 output
  std::vector<std::vector<uint8_t>> scratchpads_;
  std::vector<std::vector<float>> widened_weights_;
};

}  // namespace sculpt::cpu
