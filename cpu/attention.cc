// Attention over a packed batch: each sequence attends to all of its own rows, or to the rows of
// k and v that kv_rows gives it (a KV cache), all of them or block-causally (causal_blocks). Work
// items are (sequence, head, block of query rows), each run on one thread: the scores of the block
// against every key tile, a softmax, and the weighted values accumulated tile by tile. Whole key
// tiles are read where they lie; only a sequence's last, partial tile is copied (zero-padded), so a
// cached window's step moves its keys once, through the products, instead of staging the whole
// cache first.
#include "cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "cpu/cpu_ops.h"
#include "cpu/onednn_util.h"
#include "cpu/vector_math.h"

namespace sculpt::cpu {
namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Where a key tile's keys and values are read from.
enum KeySource { kInPlace = 0, kStaged = 1 };

// The smallest of kQueryTiles that holds `rows` (<= kMaxQueryTile) rows.
int32_t QueryTileFor(int64_t rows) {
  int32_t tile = 0;
  while (kQueryTiles[tile] < rows) ++tile;
  return tile;
}

}  // namespace

// The tile products for one Shape: per query tile size, scores against in-place or staged keys
// and the weighted sum of in-place or staged values; with memory objects per thread.
struct AttentionRunner::Kernels {
  struct QueryTileKernels {
    // [tile, head_dim] x [head_dim, kKeyTile] / sqrt(head_dim), by KeySource.
    std::array<dnnl::matmul, 2> scores;
    // out [tile, head_dim] += [tile, kKeyTile] x [kKeyTile, head_dim], by KeySource.
    std::array<dnnl::matmul, 2> values;
    dnnl::memory::desc query_desc, score_desc, out_desc;
  };
  struct TileBindings {
    dnnl::memory queries, scores, out;
  };
  struct Bindings {
    std::array<TileBindings, kQueryTiles.size()> tiles;
    std::array<dnnl::memory, 2> keys, values;  // by KeySource
    dnnl::memory scratchpad;
  };
  std::array<QueryTileKernels, kQueryTiles.size()> tiles;
  std::array<dnnl::memory::desc, 2> key_desc, value_desc;  // by KeySource
  int64_t head_dim = 0;
  size_t scratchpad_bytes = 1;
  std::vector<Bindings> per_thread;
};

AttentionRunner::AttentionRunner()
    : engine_(std::make_unique<dnnl::engine>(dnnl::engine::kind::cpu, 0)) {}
AttentionRunner::~AttentionRunner() = default;

absl::StatusOr<AttentionRunner::Kernels*> AttentionRunner::KernelsFor(const Shape& shape) {
  if (auto found = kernels_.find(shape); found != kernels_.end()) return found->second.get();
  using dnnl::memory;
  const auto f32 = memory::data_type::f32;
  const int64_t hd = shape.head_dim;
  auto kernels = std::make_unique<Kernels>();
  kernels->head_dim = hd;
  try {
    // Keys [kKeyTile, hd] with rows `stride` apart are the [hd, kKeyTile] operand.
    kernels->key_desc[kInPlace] = memory::desc({hd, kKeyTile}, f32, {1, shape.key_stride});
    kernels->key_desc[kStaged] = memory::desc({hd, kKeyTile}, f32, {1, hd});
    kernels->value_desc[kInPlace] = memory::desc({kKeyTile, hd}, f32, {shape.key_stride, 1});
    kernels->value_desc[kStaged] = memory::desc({kKeyTile, hd}, f32, {hd, 1});
    SingleThreadedScope single_threaded;
    dnnl::primitive_attr scaled;
    scaled.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    scaled.set_output_scales(0, {1.0f / std::sqrt(static_cast<float>(hd))});
    dnnl::post_ops accumulate;
    accumulate.append_sum(1.0f);
    dnnl::primitive_attr accumulating;
    accumulating.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    accumulating.set_post_ops(accumulate);
    for (size_t t = 0; t < kQueryTiles.size(); ++t) {
      Kernels::QueryTileKernels& tile = kernels->tiles[t];
      const int64_t rows = kQueryTiles[t];
      tile.query_desc = memory::desc({rows, hd}, f32, {hd, 1});
      tile.score_desc = memory::desc({rows, kKeyTile}, f32, {kKeyTile, 1});
      tile.out_desc = memory::desc({rows, hd}, f32, {hd, 1});
      for (const KeySource source : {kInPlace, kStaged}) {
        const dnnl::matmul::primitive_desc scores(
            dnnl::matmul::desc(tile.query_desc, kernels->key_desc[source], tile.score_desc), scaled,
            *engine_);
        const dnnl::matmul::primitive_desc values(
            dnnl::matmul::desc(tile.score_desc, kernels->value_desc[source], tile.out_desc),
            accumulating, *engine_);
        kernels->scratchpad_bytes =
            std::max({kernels->scratchpad_bytes, scores.scratchpad_desc().get_size(),
                      values.scratchpad_desc().get_size()});
        tile.scores[source] = dnnl::matmul(scores);
        tile.values[source] = dnnl::matmul(values);
      }
    }
  } catch (const dnnl::error& error) {
    return absl::InternalError(
        absl::StrCat("oneDNN cannot make attention tiles for head_dim ", hd, ": ", error.what()));
  }
  return kernels_.emplace(shape, std::move(kernels)).first->second.get();
}

void AttentionRunner::Grow(Kernels& kernels, int64_t longest_padded, int threads) {
  const int64_t head_dim = kernels.head_dim;
  while (streams_.size() < static_cast<size_t>(threads)) streams_.emplace_back(*engine_);
  if (thread_buffers_.size() < static_cast<size_t>(threads)) thread_buffers_.resize(threads);
  const auto grow = [](auto& buffer, size_t elements) {
    if (buffer.size() < elements) buffer.resize(elements);
  };
  for (ThreadBuffers& buffers : thread_buffers_) {
    grow(buffers.queries, kMaxQueryTile * head_dim);
    grow(buffers.out, kMaxQueryTile * head_dim);
    grow(buffers.scores, kMaxQueryTile * longest_padded);
    grow(buffers.tail_keys, kKeyTile * head_dim);
    grow(buffers.tail_values, kKeyTile * head_dim);
    grow(buffers.inverse_sums, kMaxQueryTile);
    grow(buffers.scratchpad, kernels.scratchpad_bytes);
  }
  if (kernels.per_thread.size() >= static_cast<size_t>(threads)) return;
  const dnnl::memory::desc scratchpad_desc({static_cast<int64_t>(kernels.scratchpad_bytes)},
                                           dnnl::memory::data_type::u8, {1});
  const size_t first_new = kernels.per_thread.size();
  kernels.per_thread.resize(threads);
  for (size_t i = first_new; i < kernels.per_thread.size(); ++i) {
    Kernels::Bindings& bindings = kernels.per_thread[i];
    for (size_t t = 0; t < kQueryTiles.size(); ++t) {
      const Kernels::QueryTileKernels& tile = kernels.tiles[t];
      bindings.tiles[t].queries = dnnl::memory(tile.query_desc, *engine_, DNNL_MEMORY_NONE);
      bindings.tiles[t].scores = dnnl::memory(tile.score_desc, *engine_, DNNL_MEMORY_NONE);
      bindings.tiles[t].out = dnnl::memory(tile.out_desc, *engine_, DNNL_MEMORY_NONE);
    }
    for (const KeySource source : {kInPlace, kStaged}) {
      bindings.keys[source] = dnnl::memory(kernels.key_desc[source], *engine_, DNNL_MEMORY_NONE);
      bindings.values[source] =
          dnnl::memory(kernels.value_desc[source], *engine_, DNNL_MEMORY_NONE);
    }
    bindings.scratchpad = dnnl::memory(scratchpad_desc, *engine_, DNNL_MEMORY_NONE);
  }
}

absl::Status AttentionRunner::Reserve(int64_t max_tokens, int64_t max_sequences, int n_heads,
                                      int n_kv_heads, int head_dim) {
  if (max_tokens <= 0) return absl::OkStatus();
  const Shape shape{head_dim, int64_t{n_kv_heads} * head_dim};
  absl::StatusOr<Kernels*> kernels = KernelsFor(shape);
  if (!kernels.ok()) return kernels.status();
  const int64_t sequences = std::clamp<int64_t>(max_sequences, 1, max_tokens);
  Grow(**kernels, CeilDiv(max_tokens, kKeyTile) * kKeyTile, std::max(1, omp_get_max_threads()));
  items_.reserve((CeilDiv(max_tokens, kMaxQueryTile) + sequences) * n_heads);
  return absl::OkStatus();
}

absl::Status AttentionRunner::Run(const AttentionParams& params) {
  const int64_t head_dim = params.head_dim;
  const int group = params.n_heads / params.n_kv_heads;
  const int64_t q_stride = params.q.cols;
  const int64_t kv_stride = params.k.cols;
  const auto& offsets = params.layout.sequence_offsets;
  const int32_t num_sequences = params.layout.num_sequences();
  if (num_sequences <= 0 || params.layout.num_tokens() == 0) return absl::OkStatus();
  absl::StatusOr<Kernels*> kernels_or = KernelsFor({head_dim, kv_stride});
  if (!kernels_or.ok()) return kernels_or.status();
  Kernels& kernels = **kernels_or;
  const int threads = std::max(1, omp_get_max_threads());
  // Sequence s's keys: rows [key_begin(s), key_begin(s) + key_count(s)) of k and v; none without
  // queries.
  const auto key_begin = [&](int32_t s) -> int64_t {
    return params.kv_rows.empty() ? offsets[s] : params.kv_rows[s].first;
  };
  const auto key_count = [&](int32_t s) -> int64_t {
    if (offsets[s + 1] == offsets[s]) return 0;
    return params.kv_rows.empty() ? offsets[s + 1] - offsets[s] : params.kv_rows[s].count;
  };
  const auto first_position = [&](int32_t s) -> int64_t {
    return params.layout.first_positions.empty() ? 0 : params.layout.first_positions[s];
  };
  // How many of sequence s's keys its query row `row` (counted from the sequence's first) sees:
  // all, or, block-causal, those before the end of the query's block.
  const auto visible_keys = [&](int32_t s, int64_t row) -> int64_t {
    const int64_t count = key_count(s);
    const int64_t block = params.causal_blocks.empty() ? 0 : params.causal_blocks[s];
    if (block == 0) return count;
    const int64_t position = first_position(s) + row;
    const int64_t first_key_position = params.kv_rows.empty() ? first_position(s) : 0;
    return std::clamp<int64_t>((position / block + 1) * block - first_key_position, 0, count);
  };

  std::vector<WorkItem>& items = items_;
  items.clear();
  int64_t longest = 0;
  for (int32_t s = 0; s < num_sequences; ++s) {
    longest = std::max(longest, CeilDiv(key_count(s), kKeyTile) * kKeyTile);
    const auto length = static_cast<int32_t>(offsets[s + 1] - offsets[s]);
    for (int32_t first = 0; first < length; first += static_cast<int32_t>(kMaxQueryTile)) {
      const auto rows = static_cast<int32_t>(std::min<int64_t>(kMaxQueryTile, length - first));
      for (int head = 0; head < params.n_heads; ++head) {
        items.push_back({s, first, rows, QueryTileFor(rows), head});
      }
    }
  }
  Grow(kernels, longest, threads);

  const float* const k = params.k.f32();
  const float* const v = params.v.f32();
  FirstTileError error;
#pragma omp parallel num_threads(threads)
  {
    const int thread = omp_get_thread_num();
    const dnnl::stream& stream = streams_[thread];
    ThreadBuffers& buffers = thread_buffers_[thread];
    Kernels::Bindings& bindings = kernels.per_thread[thread];
#pragma omp for schedule(dynamic, 1)
    for (size_t i = 0; i < items.size(); ++i) {
      if (error.failed()) continue;
      const WorkItem& item = items[i];
      const Kernels::QueryTileKernels& tile = kernels.tiles[item.tile];
      Kernels::TileBindings& tile_bindings = bindings.tiles[item.tile];
      const int64_t tile_rows = kQueryTiles[item.tile];
      const int64_t begin = offsets[item.sequence];
      // The tile's last row sees the most keys; key tiles past them are not computed at all.
      const int64_t keys_count = visible_keys(item.sequence, item.first_row + item.rows - 1);
      const int64_t full_tiles = keys_count / kKeyTile;
      const int64_t last_keys = keys_count - full_tiles * kKeyTile;  // of a partial last tile
      const int64_t key_tiles = full_tiles + (last_keys > 0 ? 1 : 0);
      const int kv_head = item.head / group;
      const int64_t first_key = key_begin(item.sequence) * kv_stride + kv_head * head_dim;
      if (last_keys > 0) {
        // The partial tile, zero-padded: padded keys must be finite (their weight is 0).
        float* keys = buffers.tail_keys.data();
        float* values = buffers.tail_values.data();
        for (int64_t j = 0; j < kKeyTile; ++j) {
          if (j < last_keys) {
            const int64_t source = first_key + (full_tiles * kKeyTile + j) * kv_stride;
            std::memcpy(keys + j * head_dim, k + source, head_dim * sizeof(float));
            std::memcpy(values + j * head_dim, v + source, head_dim * sizeof(float));
          } else {
            std::fill(keys + j * head_dim, keys + (j + 1) * head_dim, 0.0f);
            std::fill(values + j * head_dim, values + (j + 1) * head_dim, 0.0f);
          }
        }
      }
      const auto key_tile = [&](int64_t t, const float* base, const std::vector<float>& tail) {
        return const_cast<float*>(t < full_tiles ? base + first_key + t * kKeyTile * kv_stride
                                                 : tail.data());
      };
      float* queries = buffers.queries.data();
      for (int64_t r = 0; r < tile_rows; ++r) {
        float* row = queries + r * head_dim;
        if (r < item.rows) {
          std::memcpy(
              row, params.q.f32() + (begin + item.first_row + r) * q_stride + item.head * head_dim,
              head_dim * sizeof(float));
        } else {
          std::fill(row, row + head_dim, 0.0f);
        }
      }
      // Scores tile after tile: key tile t holds [tile_rows, kKeyTile] at t * tile_rows *
      // kKeyTile.
      float* scores = buffers.scores.data();
      float* out = buffers.out.data();
      const int64_t tile_floats = tile_rows * kKeyTile;
      try {
        tile_bindings.queries.set_data_handle(queries);
        bindings.scratchpad.set_data_handle(buffers.scratchpad.data());
        for (int64_t t = 0; t < key_tiles; ++t) {
          const KeySource source = t < full_tiles ? kInPlace : kStaged;
          bindings.keys[source].set_data_handle(key_tile(t, k, buffers.tail_keys));
          tile_bindings.scores.set_data_handle(scores + t * tile_floats);
          ExecuteMatmul(tile.scores[source], stream, tile_bindings.queries, bindings.keys[source],
                        tile_bindings.scores, bindings.scratchpad);
        }
        // A softmax over each real row's real keys, in key order; padded keys get no weight and
        // padded rows (zero queries: zero scores, never read back) are left as they are. The
        // division by the sum waits for the output rows.
        for (int64_t r = 0; r < item.rows; ++r) {
          if (last_keys > 0) {
            float* row = scores + (key_tiles - 1) * tile_floats + r * kKeyTile;
            std::fill(row + last_keys, row + kKeyTile, -std::numeric_limits<float>::infinity());
          }
          // Block-causal: the keys past this row's block get no weight either.
          for (int64_t j = visible_keys(item.sequence, item.first_row + r); j < keys_count; ++j) {
            scores[j / kKeyTile * tile_floats + r * kKeyTile + j % kKeyTile] =
                -std::numeric_limits<float>::infinity();
          }
          float max_score = -std::numeric_limits<float>::infinity();
          for (int64_t t = 0; t < key_tiles; ++t) {
            const float* row = scores + t * tile_floats + r * kKeyTile;
            max_score = std::max(max_score, MaxOf(row, kKeyTile));
          }
          float total = 0.0f;
          for (int64_t t = 0; t < key_tiles; ++t) {
            total +=
                ExpShiftedInPlace(scores + t * tile_floats + r * kKeyTile, kKeyTile, max_score);
          }
          buffers.inverse_sums[r] = 1.0f / total;
        }
        std::fill(out, out + tile_rows * head_dim, 0.0f);
        tile_bindings.out.set_data_handle(out);
        for (int64_t t = 0; t < key_tiles; ++t) {
          const KeySource source = t < full_tiles ? kInPlace : kStaged;
          tile_bindings.scores.set_data_handle(scores + t * tile_floats);
          bindings.values[source].set_data_handle(key_tile(t, v, buffers.tail_values));
          ExecuteMatmul(tile.values[source], stream, tile_bindings.scores, bindings.values[source],
                        tile_bindings.out, bindings.scratchpad);
        }
      } catch (const dnnl::error& failure) {
        error.Record(failure);
        continue;
      }
      for (int64_t r = 0; r < item.rows; ++r) {
        float* row =
            params.out.f32() + (begin + item.first_row + r) * q_stride + item.head * head_dim;
        const float inverse = buffers.inverse_sums[r];
        for (int64_t j = 0; j < head_dim; ++j) row[j] = out[r * head_dim + j] * inverse;
      }
    }
  }
  return error.status("attention");
}

absl::Status Attention(const AttentionParams& params) {
  // For callers without a backend (the op tests); the backend owns a runner of its own.
  static std::mutex mutex;
  static AttentionRunner runner;
  std::lock_guard<std::mutex> lock(mutex);
  return runner.Run(params);
}

}  // namespace sculpt::cpu
