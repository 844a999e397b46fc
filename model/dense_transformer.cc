// The pre-norm transformer LLaDA and Dream share (RMSNorm, RoPE, non-causal grouped-query
// attention, SwiGLU), written once; families differ in tensor names and biases only.
#include "model/dense_transformer.h"

#include <algorithm>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace sculpt {
namespace {

struct LayerWeights {
  DeviceBuffer attn_norm, q_proj, k_proj, v_proj, q_bias, k_bias, v_bias, attn_out;
  DeviceBuffer ff_norm, gate_proj, up_proj, down_proj;
};

// Activations of one forward, sized by Reserve; grown (never shrunk) when a batch has more rows
// than reserved.
struct Workspace {
  int64_t capacity_tokens = 0;
  int64_t capacity_logit_rows = 0;
  DeviceBuffer x, normed, q, k, v, attention, projected, gate, up;
  DeviceBuffer selected, logits;
};

class DenseTransformer final : public Transformer {
 public:
  DenseTransformer(const ModelConfig& config, TensorNames names, Backend& backend)
      : config_(config), names_(std::move(names)), backend_(backend) {}

  const ModelConfig& config() const override { return config_; }
  Backend& backend() override { return backend_; }

  absl::Status Load(const WeightLoader& load_tensor);
  void KeepWeightSource(std::shared_ptr<const void> source) { weight_source_ = std::move(source); }
  absl::Status Reserve(const WorkspaceLimits& limits) override;
  int64_t kv_cache_row_bytes() const override {
    return 2 * int64_t{config_.n_layers} * kv_width() * static_cast<int64_t>(sizeof(float));
  }
  absl::Status ReserveKvCache(int64_t rows) override;
  int64_t kv_cache_rows() const override { return kv_cache_rows_; }
  absl::StatusOr<TensorView> Forward(std::span<const SequenceInput> batch,
                                     const ForwardObserver* observer) override;

 private:
  absl::Status ReserveActivations(int64_t n_tokens, int64_t n_logit_rows);
  // Packs the batch's rows into the host vectors below: sequences without a cache first.
  absl::Status PackBatch(std::span<const SequenceInput> batch);
  int64_t kv_width() const { return int64_t{config_.n_kv_heads} * config_.head_dim(); }
  // Layer `layer`'s cached keys (which = 0) or values (which = 1), one row per arena row.
  TensorView KvCacheView(int layer, int which) const {
    const int64_t rows = kv_cache_rows_;
    return Activation(kv_cache_, 2 * int64_t{config_.n_layers} * rows, kv_width())
        .Rows((2 * int64_t{layer} + which) * rows, rows);
  }
  TensorView Weight(const DeviceBuffer& buffer, int64_t rows, int64_t cols) const {
    return buffer.view(backend_.weight_dtype(), rows, cols);
  }
  static TensorView Activation(const DeviceBuffer& buffer, int64_t rows, int64_t cols) {
    return buffer.view(DType::kF32, rows, cols);
  }

  ModelConfig config_;
  TensorNames names_;
  Backend& backend_;
  std::shared_ptr<const void> weight_source_;  // declared before the weights that borrow it
  DeviceBuffer wte_, ln_f_, lm_head_;
  std::vector<LayerWeights> layers_;
  Workspace workspace_;
  DeviceBuffer kv_cache_;  // [n_layers][keys, values][kv_cache_rows_, kv_width]
  int64_t kv_cache_rows_ = 0;
  // The packed batch's host-side description, rebuilt by each forward in reused storage. The
  // first `uncached_sequences_` sequences (`uncached_tokens_` rows) keep their keys to
  // themselves; the others read theirs from the arena (`cached_offsets_` rebased to their first
  // row, `cached_kv_rows_`), into which their fresh rows (`fresh_rows_`) are scattered
  // (`fresh_cache_rows_`) first.
  std::vector<int32_t> offsets_, first_positions_, tokens_, logit_rows_, packed_begin_;
  std::vector<int32_t> cached_offsets_, fresh_rows_, fresh_cache_rows_;
  std::vector<RowRange> cached_kv_rows_;
  int32_t uncached_sequences_ = 0;
  int64_t uncached_tokens_ = 0;
};

absl::Status DenseTransformer::Load(const WeightLoader& load_tensor) {
  const int64_t d = config_.d_model;
  const int64_t q_width = static_cast<int64_t>(config_.n_heads) * config_.head_dim();
  const int64_t kv_width = static_cast<int64_t>(config_.n_kv_heads) * config_.head_dim();
  const int64_t hidden = config_.mlp_hidden_size;
  const int64_t vocab = config_.embedding_size;
  const auto layer_name = [&](const std::string& pattern, int layer) {
    std::string name = pattern;
    name.replace(name.find("{i}"), 3, std::to_string(layer));
    return name;
  };

  constexpr WeightUse kGemm = WeightUse::kGemm;
  constexpr WeightUse kPlain = WeightUse::kPlain;
  SCULPT_ASSIGN_OR_RETURN(wte_, load_tensor(names_.embedding, {vocab, d}, kPlain));
  SCULPT_ASSIGN_OR_RETURN(ln_f_, load_tensor(names_.final_norm, {d}, kPlain));
  SCULPT_ASSIGN_OR_RETURN(
      lm_head_,
      load_tensor(config_.weight_tying ? names_.embedding : names_.lm_head, {vocab, d}, kGemm));
  layers_.resize(config_.n_layers);
  for (int i = 0; i < config_.n_layers; ++i) {
    LayerWeights& layer = layers_[i];
    const auto load = [&](const std::string& pattern, std::vector<int64_t> shape, WeightUse use) {
      return load_tensor(layer_name(pattern, i), shape, use);
    };
    SCULPT_ASSIGN_OR_RETURN(layer.attn_norm, load(names_.attn_norm, {d}, kPlain));
    SCULPT_ASSIGN_OR_RETURN(layer.q_proj, load(names_.q_proj + ".weight", {q_width, d}, kGemm));
    SCULPT_ASSIGN_OR_RETURN(layer.k_proj, load(names_.k_proj + ".weight", {kv_width, d}, kGemm));
    SCULPT_ASSIGN_OR_RETURN(layer.v_proj, load(names_.v_proj + ".weight", {kv_width, d}, kGemm));
    if (config_.include_qkv_bias) {
      SCULPT_ASSIGN_OR_RETURN(layer.q_bias, load(names_.q_proj + ".bias", {q_width}, kPlain));
      SCULPT_ASSIGN_OR_RETURN(layer.k_bias, load(names_.k_proj + ".bias", {kv_width}, kPlain));
      SCULPT_ASSIGN_OR_RETURN(layer.v_bias, load(names_.v_proj + ".bias", {kv_width}, kPlain));
    }
    SCULPT_ASSIGN_OR_RETURN(layer.attn_out, load(names_.attn_out, {d, q_width}, kGemm));
    SCULPT_ASSIGN_OR_RETURN(layer.ff_norm, load(names_.ff_norm, {d}, kPlain));
    SCULPT_ASSIGN_OR_RETURN(layer.gate_proj, load(names_.gate_proj, {hidden, d}, kGemm));
    SCULPT_ASSIGN_OR_RETURN(layer.up_proj, load(names_.up_proj, {hidden, d}, kGemm));
    SCULPT_ASSIGN_OR_RETURN(layer.down_proj, load(names_.down_proj, {d, hidden}, kGemm));
  }
  return absl::OkStatus();
}

absl::Status DenseTransformer::Reserve(const WorkspaceLimits& limits) {
  if (limits.tokens < 0 || limits.sequences < 0 || limits.logit_rows < 0) {
    return absl::InvalidArgumentError("workspace limits must not be negative");
  }
  SCULPT_RETURN_IF_ERROR(ReserveActivations(limits.tokens, limits.logit_rows));
  const auto sequences = static_cast<size_t>(limits.sequences);
  const auto tokens = static_cast<size_t>(limits.tokens);
  for (std::vector<int32_t>* per_sequence :
       {&first_positions_, &packed_begin_, &offsets_, &cached_offsets_}) {
    per_sequence->reserve(sequences + 1);
  }
  cached_kv_rows_.reserve(sequences);
  for (std::vector<int32_t>* per_token : {&tokens_, &fresh_rows_, &fresh_cache_rows_}) {
    per_token->reserve(tokens);
  }
  logit_rows_.reserve(static_cast<size_t>(limits.logit_rows));
  return backend_.Reserve({.limits = limits,
                           .n_heads = config_.n_heads,
                           .n_kv_heads = config_.n_kv_heads,
                           .head_dim = config_.head_dim(),
                           .vocab = config_.embedding_size,
                           .widest_gemm_k = std::max<int64_t>(
                               {config_.d_model, config_.mlp_hidden_size,
                                static_cast<int64_t>(config_.n_heads) * config_.head_dim()})});
}

absl::Status DenseTransformer::ReserveActivations(int64_t n_tokens, int64_t n_logit_rows) {
  Workspace& ws = workspace_;
  const auto floats = [](int64_t rows, int64_t cols) {
    return static_cast<size_t>(rows * cols) * sizeof(float);
  };
  if (n_tokens > ws.capacity_tokens) {
    const int64_t d = config_.d_model;
    const int64_t q_width = static_cast<int64_t>(config_.n_heads) * config_.head_dim();
    const int64_t kv_width = static_cast<int64_t>(config_.n_kv_heads) * config_.head_dim();
    const int64_t hidden = config_.mlp_hidden_size;
    SCULPT_ASSIGN_OR_RETURN(ws.x, backend_.Allocate(floats(n_tokens, d)));
    SCULPT_ASSIGN_OR_RETURN(ws.normed, backend_.Allocate(floats(n_tokens, d)));
    SCULPT_ASSIGN_OR_RETURN(ws.q, backend_.Allocate(floats(n_tokens, q_width)));
    SCULPT_ASSIGN_OR_RETURN(ws.k, backend_.Allocate(floats(n_tokens, kv_width)));
    SCULPT_ASSIGN_OR_RETURN(ws.v, backend_.Allocate(floats(n_tokens, kv_width)));
    SCULPT_ASSIGN_OR_RETURN(ws.attention, backend_.Allocate(floats(n_tokens, q_width)));
    SCULPT_ASSIGN_OR_RETURN(ws.projected, backend_.Allocate(floats(n_tokens, d)));
    SCULPT_ASSIGN_OR_RETURN(ws.gate, backend_.Allocate(floats(n_tokens, hidden)));
    SCULPT_ASSIGN_OR_RETURN(ws.up, backend_.Allocate(floats(n_tokens, hidden)));
    ws.capacity_tokens = n_tokens;
  }
  if (n_logit_rows > ws.capacity_logit_rows) {
    SCULPT_ASSIGN_OR_RETURN(ws.selected, backend_.Allocate(floats(n_logit_rows, config_.d_model)));
    SCULPT_ASSIGN_OR_RETURN(ws.logits,
                            backend_.Allocate(floats(n_logit_rows, config_.embedding_size)));
    ws.capacity_logit_rows = n_logit_rows;
  }
  return absl::OkStatus();
}

absl::Status DenseTransformer::ReserveKvCache(int64_t rows) {
  if (rows < 0 || rows > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(absl::StrCat("a KV cache of ", rows, " rows"));
  }
  if (rows == kv_cache_rows_) return absl::OkStatus();
  kv_cache_ = DeviceBuffer();  // the old arena goes before the new one is allocated
  kv_cache_rows_ = 0;
  if (rows == 0) return absl::OkStatus();
  SCULPT_ASSIGN_OR_RETURN(kv_cache_,
                          backend_.Allocate(static_cast<size_t>(rows * kv_cache_row_bytes())));
  kv_cache_rows_ = rows;
  return absl::OkStatus();
}

absl::Status DenseTransformer::PackBatch(std::span<const SequenceInput> batch) {
  offsets_.assign(1, 0);
  first_positions_.clear();
  tokens_.clear();
  logit_rows_.clear();
  packed_begin_.resize(batch.size());
  cached_offsets_.assign(1, 0);
  cached_kv_rows_.clear();
  fresh_rows_.clear();
  fresh_cache_rows_.clear();
  // The canvas rows a sequence forwards: a window, or all of it.
  const auto rows_of = [](const SequenceInput& sequence) {
    return sequence.cache == KvCacheUse::kWindow
               ? std::pair{sequence.window_begin, sequence.window_end}
               : std::pair{0, static_cast<int32_t>(sequence.tokens.size())};
  };
  for (const bool cached : {false, true}) {
    for (size_t s = 0; s < batch.size(); ++s) {
      const SequenceInput& sequence = batch[s];
      if ((sequence.cache != KvCacheUse::kNone) != cached) continue;
      const auto length = static_cast<int32_t>(sequence.tokens.size());
      const auto [first, last] = rows_of(sequence);
      if (cached) {
        const RowRange range = sequence.kv_rows;
        if (range.count != length || range.first < 0 ||
            int64_t{range.first} + range.count > kv_cache_rows_) {
          return absl::InvalidArgumentError(absl::StrCat(
              "a cached sequence of ", length, " tokens holds KV cache rows [", range.first, ", ",
              int64_t{range.first} + range.count, ") of an arena of ", kv_cache_rows_,
              ": it needs one row per token, inside the arena"));
        }
        if (first < 0 || first >= last || last > length) {
          return absl::InvalidArgumentError(absl::StrCat("the window [", first, ", ", last,
                                                         ") is not a non-empty part of a sequence "
                                                         "of length ",
                                                         length));
        }
      }
      const int32_t begin = offsets_.back();
      packed_begin_[s] = begin;
      tokens_.insert(tokens_.end(), sequence.tokens.begin() + first,
                     sequence.tokens.begin() + last);
      offsets_.push_back(begin + last - first);
      first_positions_.push_back(first);
      if (!cached) continue;
      cached_offsets_.push_back(offsets_.back() - static_cast<int32_t>(uncached_tokens_));
      cached_kv_rows_.push_back(sequence.kv_rows);
      for (int32_t position = first; position < last; ++position) {
        fresh_rows_.push_back(begin + position - first);
        fresh_cache_rows_.push_back(sequence.kv_rows.first + position);
      }
    }
    if (!cached) {
      uncached_sequences_ = static_cast<int32_t>(offsets_.size()) - 1;
      uncached_tokens_ = offsets_.back();
    }
  }
  for (size_t s = 0; s < batch.size(); ++s) {
    const auto [first, last] = rows_of(batch[s]);
    for (int32_t position : batch[s].logit_positions) {
      if (position < first || position >= last) {
        return absl::InvalidArgumentError(absl::StrCat("logit position ", position,
                                                       " is outside the rows [", first, ", ", last,
                                                       ") the sequence forwards"));
      }
      logit_rows_.push_back(packed_begin_[s] + position - first);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<TensorView> DenseTransformer::Forward(std::span<const SequenceInput> batch,
                                                     const ForwardObserver* observer) {
  SCULPT_RETURN_IF_ERROR(PackBatch(batch));
  const std::vector<int32_t>& tokens = tokens_;
  const std::vector<int32_t>& logit_rows = logit_rows_;
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t m = static_cast<int64_t>(logit_rows.size());
  SCULPT_RETURN_IF_ERROR(ReserveActivations(n, m));

  const int64_t d = config_.d_model;
  const int head_dim = config_.head_dim();
  const int64_t q_width = static_cast<int64_t>(config_.n_heads) * head_dim;
  const int64_t kv_width = static_cast<int64_t>(config_.n_kv_heads) * head_dim;
  const int64_t hidden = config_.mlp_hidden_size;
  const int64_t vocab = config_.embedding_size;
  const auto eps = static_cast<float>(config_.rms_norm_eps);
  const PackedLayout layout{offsets_, first_positions_};
  // Attention runs once over the sequences without a cache, once over those with one.
  const int64_t u = uncached_tokens_;
  const int64_t cached_tokens = n - u;
  const PackedLayout uncached_layout{
      std::span<const int32_t>(offsets_).first(static_cast<size_t>(uncached_sequences_) + 1)};
  const PackedLayout cached_layout{cached_offsets_};
  const bool any_cached = cached_layout.num_sequences() > 0;
  const Workspace& ws = workspace_;
  const TensorView x = Activation(ws.x, n, d);
  const TensorView normed = Activation(ws.normed, n, d);
  const TensorView q = Activation(ws.q, n, q_width);
  const TensorView k = Activation(ws.k, n, kv_width);
  const TensorView v = Activation(ws.v, n, kv_width);
  const TensorView attention = Activation(ws.attention, n, q_width);
  const TensorView projected = Activation(ws.projected, n, d);
  const TensorView gate = Activation(ws.gate, n, hidden);
  const TensorView up = Activation(ws.up, n, hidden);
  // Names are built only for an observer: a forward without one allocates nothing.
  const auto observe = [&](const char* name, const TensorView& tensor, int layer = -1) {
    if (observer == nullptr) return;
    (*observer)(layer < 0 ? std::string(name) : absl::StrCat("layers.", layer, ".", name), tensor);
  };

  SCULPT_RETURN_IF_ERROR(backend_.Embed({tokens, Weight(wte_, vocab, d), x}));
  observe("embed", x);
  // Every residual add is fused with the norm that reads its result (the next sub-layer's), but
  // the last one: the final norm runs only on the rows that need logits.
  if (config_.n_layers > 0) {
    SCULPT_RETURN_IF_ERROR(backend_.RmsNorm({x, Weight(layers_[0].attn_norm, 1, d), normed, eps}));
  }
  for (int i = 0; i < config_.n_layers; ++i) {
    const LayerWeights& layer = layers_[i];
    const auto bias = [&](const DeviceBuffer& buffer, int64_t width) {
      return buffer.data() == nullptr ? TensorView{} : Weight(buffer, 1, width);
    };
    observe("attn_norm", normed, i);
    SCULPT_RETURN_IF_ERROR(
        backend_.Gemm({normed, Weight(layer.q_proj, q_width, d), bias(layer.q_bias, q_width), q}));
    SCULPT_RETURN_IF_ERROR(backend_.Gemm(
        {normed, Weight(layer.k_proj, kv_width, d), bias(layer.k_bias, kv_width), k}));
    SCULPT_RETURN_IF_ERROR(backend_.Gemm(
        {normed, Weight(layer.v_proj, kv_width, d), bias(layer.v_bias, kv_width), v}));
    SCULPT_RETURN_IF_ERROR(backend_.Rope({q, layout, head_dim, config_.rope_theta}));
    SCULPT_RETURN_IF_ERROR(backend_.Rope({k, layout, head_dim, config_.rope_theta}));
    observe("q", q, i);
    observe("k", k, i);
    observe("v", v, i);
    if (uncached_layout.num_sequences() > 0 || !any_cached) {
      SCULPT_RETURN_IF_ERROR(
          backend_.Attention({q.Rows(0, u), k.Rows(0, u), v.Rows(0, u), attention.Rows(0, u),
                              uncached_layout, config_.n_heads, config_.n_kv_heads, head_dim}));
    }
    if (any_cached) {
      const TensorView cached_k = KvCacheView(i, 0);
      const TensorView cached_v = KvCacheView(i, 1);
      SCULPT_RETURN_IF_ERROR(backend_.GatherRows({fresh_rows_, k, cached_k, fresh_cache_rows_}));
      SCULPT_RETURN_IF_ERROR(backend_.GatherRows({fresh_rows_, v, cached_v, fresh_cache_rows_}));
      SCULPT_RETURN_IF_ERROR(backend_.Attention(
          {q.Rows(u, cached_tokens), cached_k, cached_v, attention.Rows(u, cached_tokens),
           cached_layout, config_.n_heads, config_.n_kv_heads, head_dim, cached_kv_rows_}));
    }
    observe("attn", attention, i);
    SCULPT_RETURN_IF_ERROR(
        backend_.Gemm({attention, Weight(layer.attn_out, d, q_width), {}, projected}));
    observe("attn_out", projected, i);
    SCULPT_RETURN_IF_ERROR(
        backend_.AddRmsNorm({x, projected, Weight(layer.ff_norm, 1, d), normed, eps}));
    observe("h_attn", x, i);
    observe("ff_norm", normed, i);
    SCULPT_RETURN_IF_ERROR(backend_.Gemm({normed, Weight(layer.gate_proj, hidden, d), {}, gate}));
    SCULPT_RETURN_IF_ERROR(backend_.Gemm({normed, Weight(layer.up_proj, hidden, d), {}, up}));
    SCULPT_RETURN_IF_ERROR(backend_.SwiGlu({gate, up, gate}));
    observe("ff_act", gate, i);
    SCULPT_RETURN_IF_ERROR(
        backend_.Gemm({gate, Weight(layer.down_proj, d, hidden), {}, projected}));
    if (i + 1 < config_.n_layers) {
      SCULPT_RETURN_IF_ERROR(
          backend_.AddRmsNorm({x, projected, Weight(layers_[i + 1].attn_norm, 1, d), normed, eps}));
    } else {
      SCULPT_RETURN_IF_ERROR(backend_.Add({x, projected, x}));
    }
    observe("out", x, i);
  }

  // The LM head is the largest GEMM over a real vocabulary: run it only where logits are needed.
  const TensorView selected = Activation(ws.selected, m, d);
  const TensorView logits = Activation(ws.logits, m, vocab);
  SCULPT_RETURN_IF_ERROR(backend_.GatherRows({logit_rows, x, selected}));
  SCULPT_RETURN_IF_ERROR(backend_.RmsNorm({selected, Weight(ln_f_, 1, d), selected, eps}));
  observe("ln_f", selected);
  SCULPT_RETURN_IF_ERROR(backend_.Gemm({selected, Weight(lm_head_, vocab, d), {}, logits}));
  observe("logits", logits);
  return logits;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Transformer>> LoadDenseTransformer(
    const ModelConfig& config, TensorNames names, std::shared_ptr<const Checkpoint> checkpoint,
    Backend& backend) {
  bool borrowed_any = false;
  const auto load = [&](const std::string& name, const std::vector<int64_t>& shape,
                        WeightUse use) -> absl::StatusOr<DeviceBuffer> {
    SCULPT_ASSIGN_OR_RETURN(const TensorRef* tensor, checkpoint->FindWithShape(name, shape));
    const int64_t count = tensor->num_elements();
    SCULPT_ASSIGN_OR_RETURN(
        DeviceBuffer buffer,
        use == WeightUse::kGemm
            ? backend.LoadGemmWeight(tensor->data, tensor->dtype, shape[0], count / shape[0])
            : backend.LoadWeights(tensor->data, tensor->dtype, static_cast<size_t>(count)));
    if (buffer.data() == tensor->data) {
      borrowed_any = true;
    } else {
      checkpoint->ReleasePages(*tensor);
    }
    return buffer;
  };
  auto model = std::make_unique<DenseTransformer>(config, std::move(names), backend);
  SCULPT_RETURN_IF_ERROR(model->Load(load));
  // The mapping stays open only while weights are read from it; copied weights let it go.
  if (borrowed_any) model->KeepWeightSource(std::move(checkpoint));
  return model;
}

absl::StatusOr<std::unique_ptr<Transformer>> BuildDenseTransformer(
    const ModelConfig& config, TensorNames names, const WeightLoader& load_tensor, Backend& backend,
    std::shared_ptr<const void> weight_source) {
  auto model = std::make_unique<DenseTransformer>(config, std::move(names), backend);
  model->KeepWeightSource(std::move(weight_source));
  SCULPT_RETURN_IF_ERROR(model->Load(load_tensor));
  return model;
}

}  // namespace sculpt
