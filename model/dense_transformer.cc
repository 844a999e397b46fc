// The pre-norm transformer LLaDA and Dream share (RMSNorm, RoPE, non-causal grouped-query
// attention, SwiGLU), written once; families differ in tensor names and biases only.
#include "model/dense_transformer.h"

#include <algorithm>
#include <string>
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
  absl::StatusOr<TensorView> Forward(std::span<const SequenceInput> batch,
                                     const ForwardObserver* observer) override;

 private:
  absl::Status ReserveActivations(int64_t n_tokens, int64_t n_logit_rows);
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
  // The packed batch's host-side description, rebuilt by each forward in reused storage.
  std::vector<int32_t> offsets_, tokens_, logit_rows_;
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
  offsets_.reserve(static_cast<size_t>(limits.sequences) + 1);
  tokens_.reserve(static_cast<size_t>(limits.tokens));
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

absl::StatusOr<TensorView> DenseTransformer::Forward(std::span<const SequenceInput> batch,
                                                     const ForwardObserver* observer) {
  std::vector<int32_t>& offsets = offsets_;
  std::vector<int32_t>& tokens = tokens_;
  std::vector<int32_t>& logit_rows = logit_rows_;
  offsets.assign(1, 0);
  tokens.clear();
  logit_rows.clear();
  for (const SequenceInput& sequence : batch) {
    const int32_t begin = offsets.back();
    const auto length = static_cast<int32_t>(sequence.tokens.size());
    for (int32_t position : sequence.logit_positions) {
      if (position < 0 || position >= length) {
        return absl::InvalidArgumentError(
            absl::StrCat("logit position ", position, " is outside a sequence of length ", length));
      }
      logit_rows.push_back(begin + position);
    }
    tokens.insert(tokens.end(), sequence.tokens.begin(), sequence.tokens.end());
    offsets.push_back(begin + length);
  }
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
  const PackedLayout layout{offsets};
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
    SCULPT_RETURN_IF_ERROR(backend_.Attention(
        {q, k, v, attention, layout, config_.n_heads, config_.n_kv_heads, head_dim}));
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
