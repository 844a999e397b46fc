// Non-causal attention over a packed batch: each sequence attends to all of its own rows, or to
// the rows of k and v that kv_rows gives it (a KV cache). Work
// items are (sequence, head, block of query rows), each run on one thread: the scores of the
// block against every key tile, a softmax, and the weighted values accumulated tile by tile.
#include "cpu/attention.h"

#include <algorithm>
#include <atomic>
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

}  // namespace

// The two tile products for one head dimension, with memory objects per thread.
struct AttentionRunner::Kernels {
  struct Bindings {
    dnnl::memory queries, keys, scores, probabilities, values, out, scratchpad;
  };
  dnnl::matmul scores;  // [kQueryTile, head_dim] x [head_dim, kKeyTile] / sqrt(head_dim)
  dnnl::matmul values;  // out [kQueryTile, head_dim] += [kQueryTile, kKeyTile] x [kKeyTile, hd]
  dnnl::memory::desc query_desc, key_desc, score_desc, value_desc, out_desc;
  dnnl::memory::desc scores_scratchpad, values_scratchpad;
  std::vector<Bindings> per_thread;
};

AttentionRunner::AttentionRunner()
    : engine_(std::make_unique<dnnl::engine>(dnnl::engine::kind::cpu, 0)) {}
AttentionRunner::~AttentionRunner() = default;

absl::StatusOr<AttentionRunner::Kernels*> AttentionRunner::KernelsFor(int head_dim) {
  if (auto found = kernels_.find(head_dim); found != kernels_.end()) return found->second.get();
  using dnnl::memory;
  const auto f32 = memory::data_type::f32;
  const int64_t hd = head_dim;
  auto kernels = std::make_unique<Kernels>();
  try {
    kernels->query_desc = memory::desc({kQueryTile, hd}, f32, {hd, 1});
    // The staged keys [kKeyTile, hd] row-major are the [hd, kKeyTile] operand.
    kernels->key_desc = memory::desc({hd, kKeyTile}, f32, {1, hd});
    kernels->score_desc = memory::desc({kQueryTile, kKeyTile}, f32, {kKeyTile, 1});
    kernels->value_desc = memory::desc({kKeyTile, hd}, f32, {hd, 1});
    kernels->out_desc = memory::desc({kQueryTile, hd}, f32, {hd, 1});
    SingleThreadedScope single_threaded;
    dnnl::primitive_attr scaled;
    scaled.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    scaled.set_output_scales(0, {1.0f / std::sqrt(static_cast<float>(head_dim))});
    const dnnl::matmul::primitive_desc scores(
        dnnl::matmul::desc(kernels->query_desc, kernels->key_desc, kernels->score_desc), scaled,
        *engine_);
    dnnl::post_ops accumulate;
    accumulate.append_sum(1.0f);
    dnnl::primitive_attr accumulating;
    accumulating.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    accumulating.set_post_ops(accumulate);
    const dnnl::matmul::primitive_desc values(
        dnnl::matmul::desc(kernels->score_desc, kernels->value_desc, kernels->out_desc),
        accumulating, *engine_);
    kernels->scores_scratchpad = scores.scratchpad_desc();
    kernels->values_scratchpad = values.scratchpad_desc();
    kernels->scores = dnnl::matmul(scores);
    kernels->values = dnnl::matmul(values);
  } catch (const dnnl::error& error) {
    return absl::InternalError(absl::StrCat("oneDNN cannot make attention tiles for head_dim ",
                                            head_dim, ": ", error.what()));
  }
  return kernels_.emplace(head_dim, std::move(kernels)).first->second.get();
}

void AttentionRunner::Grow(Kernels& kernels, int64_t head_dim, int64_t staged_floats,
                           int64_t longest_padded, int threads) {
  if (keys_.size() < static_cast<size_t>(staged_floats)) {
    keys_.resize(staged_floats);
    values_.resize(staged_floats);
  }
  while (streams_.size() < static_cast<size_t>(threads)) streams_.emplace_back(*engine_);
  if (thread_buffers_.size() < static_cast<size_t>(threads)) thread_buffers_.resize(threads);
  const size_t scratchpad_bytes = std::max<size_t>(
      {1, kernels.scores_scratchpad.get_size(), kernels.values_scratchpad.get_size()});
  const auto grow = [](auto& buffer, size_t elements) {
    if (buffer.size() < elements) buffer.resize(elements);
  };
  for (ThreadBuffers& buffers : thread_buffers_) {
    grow(buffers.queries, kQueryTile * head_dim);
    grow(buffers.out, kQueryTile * head_dim);
    grow(buffers.scores, kQueryTile * longest_padded);
    grow(buffers.scratchpad, scratchpad_bytes);
  }
  if (kernels.per_thread.size() < static_cast<size_t>(threads)) {
    kernels.per_thread.resize(threads);
    for (Kernels::Bindings& bindings : kernels.per_thread) {
      if (bindings.queries) continue;
      bindings.queries = dnnl::memory(kernels.query_desc, *engine_, DNNL_MEMORY_NONE);
      bindings.keys = dnnl::memory(kernels.key_desc, *engine_, DNNL_MEMORY_NONE);
      bindings.scores = dnnl::memory(kernels.score_desc, *engine_, DNNL_MEMORY_NONE);
      bindings.probabilities = dnnl::memory(kernels.score_desc, *engine_, DNNL_MEMORY_NONE);
      bindings.values = dnnl::memory(kernels.value_desc, *engine_, DNNL_MEMORY_NONE);
      bindings.out = dnnl::memory(kernels.out_desc, *engine_, DNNL_MEMORY_NONE);
      bindings.scratchpad =
          dnnl::memory(dnnl::memory::desc({static_cast<int64_t>(scratchpad_bytes)},
                                          dnnl::memory::data_type::u8, {1}),
                       *engine_, DNNL_MEMORY_NONE);
    }
  }
}

absl::Status AttentionRunner::Reserve(int64_t max_tokens, int64_t max_sequences, int n_heads,
                                      int n_kv_heads, int head_dim) {
  if (max_tokens <= 0) return absl::OkStatus();
  absl::StatusOr<Kernels*> kernels = KernelsFor(head_dim);
  if (!kernels.ok()) return kernels.status();
  const int64_t sequences = std::clamp<int64_t>(max_sequences, 1, max_tokens);
  // Each sequence pads its keys by less than one tile.
  const int64_t staged_rows = max_tokens + sequences * (kKeyTile - 1);
  Grow(**kernels, head_dim, staged_rows * n_kv_heads * head_dim,
       CeilDiv(max_tokens, kKeyTile) * kKeyTile, std::max(1, omp_get_max_threads()));
  staged_.reserve(sequences + 1);
  items_.reserve((CeilDiv(max_tokens, kQueryTile) + sequences) * n_heads);
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
  absl::StatusOr<Kernels*> kernels_or = KernelsFor(params.head_dim);
  if (!kernels_or.ok()) return kernels_or.status();
  Kernels& kernels = **kernels_or;
  const int threads = std::max(1, omp_get_max_threads());
  // Sequence s's keys: rows [KeyBegin(s), KeyBegin(s) + KeyCount(s)) of k and v; none without
  // queries.
  const auto key_begin = [&](int32_t s) -> int64_t {
    return params.kv_rows.empty() ? offsets[s] : params.kv_rows[s].first;
  };
  const auto key_count = [&](int32_t s) -> int64_t {
    if (offsets[s + 1] == offsets[s]) return 0;
    return params.kv_rows.empty() ? offsets[s + 1] - offsets[s] : params.kv_rows[s].count;
  };

  // Keys and values per (sequence, kv head), each [padded length, head_dim], zero-padded.
  std::vector<int64_t>& staged = staged_;
  staged.assign(1, 0);
  int64_t longest = 0;
  for (int32_t s = 0; s < num_sequences; ++s) {
    const int64_t padded = CeilDiv(key_count(s), kKeyTile) * kKeyTile;
    longest = std::max(longest, padded);
    staged.push_back(staged.back() + padded * params.n_kv_heads * head_dim);
  }
  Grow(kernels, head_dim, staged.back(), longest, threads);
#pragma omp parallel for schedule(static) num_threads(threads) collapse(2)
  for (int32_t s = 0; s < num_sequences; ++s) {
    for (int kv_head = 0; kv_head < params.n_kv_heads; ++kv_head) {
      const int64_t length = key_count(s);
      const int64_t padded = CeilDiv(length, kKeyTile) * kKeyTile;
      float* keys = keys_.data() + staged[s] + kv_head * padded * head_dim;
      float* values = values_.data() + staged[s] + kv_head * padded * head_dim;
      for (int64_t j = 0; j < padded; ++j) {
        float* key = keys + j * head_dim;
        float* value = values + j * head_dim;
        if (j < length) {
          const int64_t source = (key_begin(s) + j) * kv_stride + kv_head * head_dim;
          std::memcpy(key, params.k.f32() + source, head_dim * sizeof(float));
          std::memcpy(value, params.v.f32() + source, head_dim * sizeof(float));
        } else {
          std::fill(key, key + head_dim, 0.0f);
          std::fill(value, value + head_dim, 0.0f);
        }
      }
    }
  }

  std::vector<WorkItem>& items = items_;
  items.clear();
  for (int32_t s = 0; s < num_sequences; ++s) {
    for (int32_t first = 0; first < offsets[s + 1] - offsets[s]; first += kQueryTile) {
      for (int head = 0; head < params.n_heads; ++head) items.push_back({s, first, head});
    }
  }

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
      const int64_t begin = offsets[item.sequence];
      const int64_t length = offsets[item.sequence + 1] - begin;
      const int64_t keys_count = key_count(item.sequence);
      const int64_t key_tiles = CeilDiv(keys_count, kKeyTile);
      const int64_t padded = key_tiles * kKeyTile;
      const int64_t rows = std::min<int64_t>(kQueryTile, length - item.first_row);
      const int kv_head = item.head / group;
      const float* keys = keys_.data() + staged[item.sequence] + kv_head * padded * head_dim;
      const float* values = values_.data() + staged[item.sequence] + kv_head * padded * head_dim;
      float* queries = buffers.queries.data();
      for (int64_t r = 0; r < kQueryTile; ++r) {
        float* row = queries + r * head_dim;
        if (r < rows) {
          std::memcpy(
              row, params.q.f32() + (begin + item.first_row + r) * q_stride + item.head * head_dim,
              head_dim * sizeof(float));
        } else {
          std::fill(row, row + head_dim, 0.0f);
        }
      }
      // Scores tile after tile: tile t holds [kQueryTile, kKeyTile] at t * kQueryTile * kKeyTile.
      float* scores = buffers.scores.data();
      float* out = buffers.out.data();
      try {
        bindings.queries.set_data_handle(queries);
        bindings.scratchpad.set_data_handle(buffers.scratchpad.data());
        for (int64_t t = 0; t < key_tiles; ++t) {
          bindings.keys.set_data_handle(const_cast<float*>(keys + t * kKeyTile * head_dim));
          bindings.scores.set_data_handle(scores + t * kQueryTile * kKeyTile);
          ExecuteMatmul(kernels.scores, stream, bindings.queries, bindings.keys, bindings.scores,
                        bindings.scratchpad);
        }
        // A softmax over each row's real keys, in key order; padded keys get no weight.
        const int64_t last_keys = keys_count - (key_tiles - 1) * kKeyTile;
        for (int64_t r = 0; r < kQueryTile; ++r) {
          float max_score = -std::numeric_limits<float>::infinity();
          for (int64_t t = 0; t < key_tiles; ++t) {
            float* row = scores + t * kQueryTile * kKeyTile + r * kKeyTile;
            const int64_t used = t + 1 == key_tiles ? last_keys : kKeyTile;
            std::fill(row + used, row + kKeyTile, -std::numeric_limits<float>::infinity());
            max_score = std::max(max_score, *std::max_element(row, row + used));
          }
          float total = 0.0f;
          for (int64_t t = 0; t < key_tiles; ++t) {
            total += ExpShiftedInPlace(scores + t * kQueryTile * kKeyTile + r * kKeyTile, kKeyTile,
                                       max_score);
          }
          const float inverse = 1.0f / total;
          for (int64_t t = 0; t < key_tiles; ++t) {
            float* row = scores + t * kQueryTile * kKeyTile + r * kKeyTile;
            for (int64_t j = 0; j < kKeyTile; ++j) row[j] *= inverse;
          }
        }
        std::fill(out, out + kQueryTile * head_dim, 0.0f);
        bindings.out.set_data_handle(out);
        for (int64_t t = 0; t < key_tiles; ++t) {
          bindings.probabilities.set_data_handle(scores + t * kQueryTile * kKeyTile);
          bindings.values.set_data_handle(const_cast<float*>(values + t * kKeyTile * head_dim));
          ExecuteMatmul(kernels.values, stream, bindings.probabilities, bindings.values,
                        bindings.out, bindings.scratchpad);
        }
      } catch (const dnnl::error& failure) {
        error.Record(failure);
        continue;
      }
      for (int64_t r = 0; r < rows; ++r) {
        std::memcpy(
            params.out.f32() + (begin + item.first_row + r) * q_stride + item.head * head_dim,
            out + r * head_dim, head_dim * sizeof(float));
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
