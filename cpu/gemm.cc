// Dense projections through oneDNN in fixed tiles: out[m, n] = x[m, k] * weight[n, k]^T (+ bias).
#include "cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>

#include "absl/strings/str_cat.h"
#include "common/dtype.h"
#include "common/status.h"
#include "cpu/onednn_util.h"

namespace sculpt::cpu {
namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

std::string Name(DType dtype) { return std::string(DTypeName(dtype)); }

// Symmetric int8 of one row: scale = max |v| / 127 (1 for an all-zero row), q = round(v / scale).
float QuantizeRow(const float* values, int64_t n, int8_t* quantized) {
  float largest = 0.0f;
  for (int64_t i = 0; i < n; ++i) largest = std::max(largest, std::fabs(values[i]));
  const float scale = largest > 0.0f ? largest / 127.0f : 1.0f;
  const float inverse = 1.0f / scale;
  for (int64_t i = 0; i < n; ++i) {
    const float q = std::nearbyint(values[i] * inverse);
    quantized[i] = static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
  }
  return scale;
}

dnnl::memory::data_type OneDnnType(DType dtype) {
  return dtype == DType::kBF16 ? dnnl::memory::data_type::bf16 : dnnl::memory::data_type::f32;
}

// Bytes one packed tile takes in a packed weight: each tile starts on a cache line.
size_t PackedTileBytes(const dnnl::memory::desc& tile) { return (tile.get_size() + 63) / 64 * 64; }

// Tile rows of int8 tiles: their int32 sums are exact, so any row blocking gives the same bits.
constexpr int64_t kQuantizedTileRows = 32;

}  // namespace

// One primitive for tiles of one shape, with memory objects per thread so that running a tile
// only swaps data pointers (no allocation per tile).
struct GemmRunner::TileKernel {
  struct Bindings {
    dnnl::memory x, weight, out, scratchpad;
  };
  dnnl::matmul primitive;
  dnnl::memory::desc x_desc, weight_desc, out_desc, scratchpad_desc;
  std::string name;
  std::vector<Bindings> per_thread;

  void BindThreads(const dnnl::engine& engine, int threads) {
    if (per_thread.size() >= static_cast<size_t>(threads)) return;
    per_thread.resize(threads);
    for (Bindings& bindings : per_thread) {
      if (bindings.x) continue;
      bindings.x = dnnl::memory(x_desc, engine, DNNL_MEMORY_NONE);
      bindings.weight = dnnl::memory(weight_desc, engine, DNNL_MEMORY_NONE);
      bindings.out = dnnl::memory(out_desc, engine, DNNL_MEMORY_NONE);
      bindings.scratchpad = dnnl::memory(scratchpad_desc, engine, DNNL_MEMORY_NONE);
    }
  }
};

GemmRunner::GemmRunner() : engine_(std::make_unique<dnnl::engine>(dnnl::engine::kind::cpu, 0)) {}
GemmRunner::~GemmRunner() = default;

absl::StatusOr<GemmRunner::TileKernel*> GemmRunner::Kernel(Compute compute, int64_t rows,
                                                           int64_t cols, int64_t k, bool packed) {
  const KernelKey key{compute, rows, cols, k, packed};
  if (auto found = kernels_.find(key); found != kernels_.end()) return found->second.get();
  using dnnl::memory;
  const memory::data_type type = compute == Compute::kS8     ? memory::data_type::s8
                                 : compute == Compute::kBF16 ? memory::data_type::bf16
                                                             : memory::data_type::f32;
  const memory::data_type sums =
      compute == Compute::kS8 ? memory::data_type::s32 : memory::data_type::f32;
  auto kernel = std::make_unique<TileKernel>();
  try {
    kernel->x_desc = memory::desc({rows, k}, type, {k, 1});
    // A plain weight tile [cols, k] row-major is the [k, cols] operand with strides (1, k); a
    // packed one is in whichever layout oneDNN chose for it.
    const memory::desc weight_desc = packed ? memory::desc({k, cols}, type, memory::format_tag::any)
                                            : memory::desc({k, cols}, type, {1, k});
    // A dense output tile, copied out after: oneDNN 2.6 runs its fast brgemm kernels only when
    // the destination is dense (with the matrix's row stride it falls back to gemm:jit, 3x
    // slower at k = 4096).
    kernel->out_desc = memory::desc({rows, cols}, sums, {cols, 1});
    SingleThreadedScope single_threaded;
    dnnl::primitive_attr attributes;
    attributes.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const dnnl::matmul::primitive_desc descriptor(
        dnnl::matmul::desc(kernel->x_desc, weight_desc, kernel->out_desc), attributes, *engine_);
    kernel->name = descriptor.impl_info_str();
    kernel->weight_desc = descriptor.weights_desc();
    kernel->scratchpad_desc = descriptor.scratchpad_desc();
    kernel->primitive = dnnl::matmul(descriptor);
  } catch (const dnnl::error& error) {
    const char* names[] = {"F32", "BF16", "S8"};
    return absl::UnimplementedError(absl::StrCat("oneDNN has no ", names[static_cast<int>(compute)],
                                                 " matmul for tiles of ", rows, "x", cols, "x", k,
                                                 ": ", error.what()));
  }
  return kernels_.emplace(key, std::move(kernel)).first->second.get();
}

int64_t GemmRunner::TileRows(Compute compute) {
  if (compute == Compute::kS8) return kQuantizedTileRows;
  int64_t& rows = tile_rows_[static_cast<int>(compute)];
  if (rows == 0) {
    const absl::StatusOr<TileKernel*> kernel = Kernel(compute, 32, 64, 64, false);
    rows = kernel.ok() && (*kernel)->name.rfind("brg:", 0) == 0 ? 32 : 48;
  }
  return rows;
}

bool GemmRunner::HasExactInt8() {
  if (exact_int8_ < 0) {
    // The brgemm kernels (AVX512-VNNI, AMX) sum int8 products in int32; oneDNN's gemm:jit int8
    // path (AVX2, plain AVX-512) gave sums off by several percent in our tests.
    const absl::StatusOr<TileKernel*> kernel =
        Kernel(Compute::kS8, kQuantizedTileRows, 64, 64, true);
    exact_int8_ = kernel.ok() && (*kernel)->name.rfind("brg:", 0) == 0 ? 1 : 0;
  }
  return exact_int8_ == 1;
}

bool GemmRunner::HasNativeBf16() {
  if (native_bf16_ < 0) {
    // oneDNN's reference implementations are correct but orders of magnitude slower than
    // widening the weights to fp32 tile by tile.
    const absl::StatusOr<TileKernel*> kernel = Kernel(Compute::kBF16, 32, 64, 64, false);
    native_bf16_ = kernel.ok() && (*kernel)->name.rfind("ref", 0) != 0 ? 1 : 0;
  }
  return native_bf16_ == 1;
}

std::string GemmRunner::KernelName(DType weight_dtype, int64_t k, bool quantized) {
  const bool widen = !quantized && weight_dtype == DType::kBF16 && !HasNativeBf16();
  const Compute compute = quantized ? Compute::kS8
                          : widen   ? Compute::kF32
                                    : ComputeFor(weight_dtype);
  const absl::StatusOr<TileKernel*> kernel =
      Kernel(compute, TileRows(compute), TileColsFor(k, k), k, !widen);
  if (!kernel.ok()) return std::string(kernel.status().message());
  return widen ? absl::StrCat((*kernel)->name, " (bf16 weights widened to fp32 per tile)")
               : (*kernel)->name;
}

absl::StatusOr<size_t> GemmRunner::PackedBytes(const TensorView& weight, bool quantize) {
  const int64_t n = weight.rows, k = weight.cols;
  if (weight.dtype != DType::kF32 && weight.dtype != DType::kBF16) {
    return absl::InvalidArgumentError(
        absl::StrCat("gemm weights must be F32 or BF16, got ", Name(weight.dtype)));
  }
  if (quantize && weight.dtype != DType::kF32) {
    return absl::InvalidArgumentError("gemm: weights are quantized to int8 from F32");
  }
  if (quantize && !HasExactInt8()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "int8 weights need a CPU with AVX512-VNNI or AMX (oneDNN's int8 kernel here is ",
        KernelName(DType::kF32, 64, /*quantized=*/true), "); run without --weights int8"));
  }
  weight_shapes_.insert({n, k, weight.dtype, quantize});
  if (!quantize && weight.dtype == DType::kBF16 && !HasNativeBf16()) return 0;
  const Compute compute = quantize ? Compute::kS8 : ComputeFor(weight.dtype);
  const int64_t tile_cols = TileColsFor(n, k);
  const int64_t col_tiles = CeilDiv(n, tile_cols);
  size_t bytes = 0;
  for (int64_t tile = 0; tile < col_tiles; ++tile) {
    const int64_t cols = std::min(tile_cols, n - tile * tile_cols);
    absl::StatusOr<TileKernel*> kernel = Kernel(compute, TileRows(compute), cols, k, true);
    if (!kernel.ok()) return kernel.status();
    bytes += PackedTileBytes((*kernel)->weight_desc);
  }
  return bytes;
}

absl::Status GemmRunner::Pack(const TensorView& weight, void* destination, bool quantize) {
  const int64_t n = weight.rows, k = weight.cols;
  const int64_t tile_cols = TileColsFor(n, k);
  const int64_t col_tiles = CeilDiv(n, tile_cols);
  const Compute compute = quantize ? Compute::kS8 : ComputeFor(weight.dtype);
  PackedWeight packed{n, k, weight.dtype, {}, {}};
  // The plain source of the reorders: the weight itself, or its int8 rows.
  std::vector<int8_t> quantized;
  const char* plain_data = static_cast<const char*>(weight.data);
  size_t element = DTypeSize(weight.dtype);
  if (quantize) {
    quantized.resize(n * k);
    packed.scales.resize(n);
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < n; ++row) {
      packed.scales[row] = QuantizeRow(weight.f32() + row * k, k, quantized.data() + row * k);
    }
    plain_data = reinterpret_cast<const char*>(quantized.data());
    element = 1;
  }
  const dnnl::memory::data_type type =
      quantize ? dnnl::memory::data_type::s8 : OneDnnType(weight.dtype);
  size_t offset = 0;
  try {
    dnnl::stream stream(*engine_);
    for (int64_t tile = 0; tile < col_tiles; ++tile) {
      const int64_t cols = std::min(tile_cols, n - tile * tile_cols);
      absl::StatusOr<TileKernel*> kernel = Kernel(compute, TileRows(compute), cols, k, true);
      if (!kernel.ok()) return kernel.status();
      const dnnl::memory::desc plain_desc({k, cols}, type, {1, k});
      dnnl::memory plain(plain_desc, *engine_,
                         const_cast<char*>(plain_data) + tile * tile_cols * k * element);
      dnnl::memory tiled((*kernel)->weight_desc, *engine_,
                         static_cast<char*>(destination) + offset);
      dnnl::reorder(plain, tiled).execute(stream, plain, tiled);
      stream.wait();
      packed.tile_offsets.push_back(offset);
      offset += PackedTileBytes((*kernel)->weight_desc);
    }
  } catch (const dnnl::error& error) {
    return absl::InternalError(absl::StrCat("packing a ", n, "x", k, " weight: ", error.what()));
  }
  packed_[destination] = std::move(packed);
  return absl::OkStatus();
}

void GemmRunner::Forget(const void* destination) { packed_.erase(destination); }

absl::StatusOr<GemmRunner::Plan> GemmRunner::Prepare(int64_t m, int64_t n, int64_t k,
                                                     DType weight_dtype, bool quantized,
                                                     bool packed, int threads) {
  Plan plan;
  plan.quantized = quantized;
  plan.widen = !quantized && weight_dtype == DType::kBF16 && !HasNativeBf16();
  plan.compute = quantized ? Compute::kS8 : plan.widen ? Compute::kF32 : ComputeFor(weight_dtype);
  plan.tile_rows = TileRows(plan.compute);
  plan.tile_cols = TileColsFor(n, k);
  plan.row_tiles = CeilDiv(m, plan.tile_rows);
  plan.col_tiles = CeilDiv(n, plan.tile_cols);
  plan.tail_rows = m - (plan.row_tiles - 1) * plan.tile_rows;
  plan.tail_cols = n - (plan.col_tiles - 1) * plan.tile_cols;

  // Full-width tiles and the last, narrower one (which may be the only one).
  size_t scratchpad_bytes = 0;
  for (int edge = 0; edge < 2; ++edge) {
    const int64_t cols = edge == 0 && plan.col_tiles > 1 ? plan.tile_cols : plan.tail_cols;
    SCULPT_ASSIGN_OR_RETURN(plan.kernels[edge],
                            Kernel(plan.compute, plan.tile_rows, cols, k, packed));
    plan.kernels[edge]->BindThreads(*engine_, threads);
    scratchpad_bytes = std::max(scratchpad_bytes, plan.kernels[edge]->scratchpad_desc.get_size());
  }
  const auto grow = [](auto& buffer, int64_t elements) {
    if (buffer.size() < static_cast<size_t>(elements)) buffer.resize(elements);
  };
  while (streams_.size() < static_cast<size_t>(threads)) streams_.emplace_back(*engine_);
  if (scratchpads_.size() < static_cast<size_t>(threads)) scratchpads_.resize(threads);
  for (auto& scratchpad : scratchpads_) grow(scratchpad, static_cast<int64_t>(scratchpad_bytes));
  if (out_tiles_.size() < static_cast<size_t>(threads)) out_tiles_.resize(threads);
  if (sum_tiles_.size() < static_cast<size_t>(threads)) sum_tiles_.resize(threads);
  const int64_t tile_elements = plan.tile_rows * plan.tile_cols;
  for (int t = 0; t < threads; ++t) {
    if (quantized) {
      grow(sum_tiles_[t], tile_elements);
    } else {
      grow(out_tiles_[t], tile_elements);
    }
  }
  if (plan.widen) {
    if (widened_weights_.size() < static_cast<size_t>(threads)) widened_weights_.resize(threads);
    for (auto& tile : widened_weights_) grow(tile, plan.tile_cols * k);
  }
  const int64_t padded_rows = plan.row_tiles * plan.tile_rows;
  if (quantized) {
    grow(x_s8_, padded_rows * k);
    grow(x_scales_, padded_rows);
  } else if (plan.widen) {
    grow(x_f32_, padded_rows * k);
  } else if (weight_dtype == DType::kBF16) {
    grow(x_bf16_, padded_rows * k);
  } else {
    grow(x_f32_, plan.tile_rows * k);  // a partial last tile of rows
  }
  return plan;
}

absl::Status GemmRunner::Reserve(int64_t max_rows) {
  if (max_rows <= 0) return absl::OkStatus();
  const int threads = std::max(1, omp_get_max_threads());
  for (const auto& [n, k, dtype, quantized] : weight_shapes_) {
    const bool packed = quantized || dtype == DType::kF32 || HasNativeBf16();
    SCULPT_RETURN_IF_ERROR(Prepare(max_rows, n, k, dtype, quantized, packed, threads).status());
  }
  return absl::OkStatus();
}

absl::Status GemmRunner::Run(const GemmParams& params) {
  const int64_t m = params.x.rows;
  const int64_t k = params.x.cols;
  const int64_t n = params.weight.rows;
  const DType weight_dtype = params.weight.dtype;
  if (params.x.dtype != DType::kF32 || params.out.dtype != DType::kF32 ||
      (weight_dtype != DType::kF32 && weight_dtype != DType::kBF16)) {
    return absl::InvalidArgumentError(
        absl::StrCat("gemm: x and out must be F32 and the weight F32 or BF16, got x ",
                     Name(params.x.dtype), ", weight ", Name(weight_dtype)));
  }
  if (params.weight.cols != k || params.out.rows != m || params.out.cols != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("gemm: shapes do not agree: x ", m, "x", k, ", weight ", n, "x",
                     params.weight.cols, ", out ", params.out.rows, "x", params.out.cols));
  }
  const auto packed_entry = packed_.find(params.weight.data);
  const PackedWeight* packed = packed_entry == packed_.end() ? nullptr : &packed_entry->second;
  // int8 weights stand in for weights of whichever dtype the model's views say.
  if (packed != nullptr && (packed->rows != n || packed->cols != k ||
                            (packed->scales.empty() && packed->dtype != weight_dtype))) {
    return absl::InvalidArgumentError(
        absl::StrCat("gemm: the weight was packed as ", packed->rows, "x", packed->cols, " ",
                     Name(packed->dtype), " and is used as ", n, "x", k, " ", Name(weight_dtype)));
  }
  if (m == 0 || n == 0) return absl::OkStatus();

  const bool quantized = packed != nullptr && !packed->scales.empty();
  const int threads = std::max(1, omp_get_max_threads());
  SCULPT_ASSIGN_OR_RETURN(const Plan plan,
                          Prepare(m, n, k, weight_dtype, quantized, packed != nullptr, threads));
  const Compute compute = plan.compute;
  const bool widen = plan.widen;
  const int64_t tile_rows = plan.tile_rows;
  const int64_t tile_cols = plan.tile_cols;
  const int64_t row_tiles = plan.row_tiles;
  const int64_t col_tiles = plan.col_tiles;
  const int64_t tail_rows = plan.tail_rows;
  const int64_t tail_cols = plan.tail_cols;
  TileKernel* const* kernels = plan.kernels;

  // x as the tiles read it: rounded to bf16 in whole tiles of rows (bf16 bits, or their fp32
  // values for widened weights), or fp32 in place with only a partial last tile copied.
  const float* x = params.x.f32();
  const int64_t padded_rows = row_tiles * tile_rows;
  if (quantized) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t r = 0; r < padded_rows; ++r) {
      if (r < m) {
        x_scales_[r] = QuantizeRow(x + r * k, k, x_s8_.data() + r * k);
      } else {
        std::fill(x_s8_.data() + r * k, x_s8_.data() + (r + 1) * k, int8_t{0});
        x_scales_[r] = 0.0f;
      }
    }
  } else if (weight_dtype == DType::kBF16) {
    uint16_t* bits = x_bf16_.data();
    float* values = x_f32_.data();
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t r = 0; r < padded_rows; ++r) {
      const float* source = x + r * k;
      if (r >= m) {
        if (widen) std::fill(values + r * k, values + (r + 1) * k, 0.0f);
        if (!widen) std::fill(bits + r * k, bits + (r + 1) * k, uint16_t{0});
      } else if (widen) {
        for (int64_t j = 0; j < k; ++j) values[r * k + j] = BF16ToFloat(FloatToBF16(source[j]));
      } else {
        for (int64_t j = 0; j < k; ++j) bits[r * k + j] = FloatToBF16(source[j]);
      }
    }
  } else if (tail_rows < tile_rows) {
    std::memcpy(x_f32_.data(), x + (row_tiles - 1) * tile_rows * k, tail_rows * k * sizeof(float));
    std::fill(x_f32_.data() + tail_rows * k, x_f32_.data() + tile_rows * k, 0.0f);
  }

  const char* weight = static_cast<const char*>(params.weight.data);
  const size_t weight_element = DTypeSize(weight_dtype);
  float* out = params.out.f32();
  const TensorView& bias = params.bias;
  FirstTileError error;

#pragma omp parallel num_threads(threads)
  {
    const int thread = omp_get_thread_num();
    dnnl::stream& stream = streams_[thread];
    int64_t widened_tile = -1;
    // Column-tile-major, so a thread keeps one tile of weights in cache over the rows.
#pragma omp for schedule(static)
    for (int64_t item = 0; item < col_tiles * row_tiles; ++item) {
      if (error.failed()) continue;
      const int64_t col_tile = item / row_tiles;
      const int64_t row_tile = item % row_tiles;
      const int64_t first_col = col_tile * tile_cols;
      const bool last_col_tile = col_tile + 1 == col_tiles;
      const int64_t cols = last_col_tile ? tail_cols : tile_cols;
      const bool row_tail = row_tile + 1 == row_tiles && tail_rows < tile_rows;
      const int64_t rows = row_tail ? tail_rows : tile_rows;
      TileKernel& kernel = *kernels[last_col_tile ? 1 : 0];
      TileKernel::Bindings& bindings = kernel.per_thread[thread];

      const void* x_tile;
      if (compute == Compute::kS8) {
        x_tile = x_s8_.data() + row_tile * tile_rows * k;
      } else if (compute == Compute::kBF16) {
        x_tile = x_bf16_.data() + row_tile * tile_rows * k;
      } else if (widen) {
        x_tile = x_f32_.data() + row_tile * tile_rows * k;
      } else {
        x_tile = row_tail ? x_f32_.data() : x + row_tile * tile_rows * k;
      }
      const void* weight_tile = packed != nullptr ? weight + packed->tile_offsets[col_tile]
                                                  : weight + first_col * k * weight_element;
      if (widen) {
        float* widened = widened_weights_[thread].data();
        if (widened_tile != col_tile) {
          const auto* source = static_cast<const uint16_t*>(weight_tile);
          for (int64_t i = 0; i < cols * k; ++i) widened[i] = BF16ToFloat(source[i]);
          widened_tile = col_tile;
        }
        weight_tile = widened;
      }
      void* out_tile = quantized ? static_cast<void*>(sum_tiles_[thread].data())
                                 : static_cast<void*>(out_tiles_[thread].data());
      try {
        bindings.x.set_data_handle(const_cast<void*>(x_tile));
        bindings.weight.set_data_handle(const_cast<void*>(weight_tile));
        bindings.out.set_data_handle(out_tile);
        bindings.scratchpad.set_data_handle(scratchpads_[thread].data());
        ExecuteMatmul(kernel.primitive, stream, bindings.x, bindings.weight, bindings.out,
                      bindings.scratchpad);
      } catch (const dnnl::error& failure) {
        error.Record(failure);
        continue;
      }
      for (int64_t r = 0; r < rows; ++r) {
        float* target = out + (row_tile * tile_rows + r) * n + first_col;
        if (quantized) {
          const int32_t* sums = sum_tiles_[thread].data() + r * cols;
          const float x_scale = x_scales_[row_tile * tile_rows + r];
          const float* weight_scales = packed->scales.data() + first_col;
          for (int64_t j = 0; j < cols; ++j) {
            target[j] = static_cast<float>(sums[j]) * x_scale * weight_scales[j];
            if (bias.data != nullptr) {
              target[j] += LoadAsFloat(bias.dtype, bias.data, first_col + j);
            }
          }
          continue;
        }
        const float* source = out_tiles_[thread].data() + r * cols;
        if (bias.data == nullptr) {
          std::memcpy(target, source, cols * sizeof(float));
        } else {
          for (int64_t j = 0; j < cols; ++j) {
            target[j] = source[j] + LoadAsFloat(bias.dtype, bias.data, first_col + j);
          }
        }
      }
    }
  }
  return error.status("gemm");
}

}  // namespace sculpt::cpu
