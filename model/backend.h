// The compute interface the model needs; cpu/ and cuda/ implement it and know nothing of
// requests. Every op takes one params struct of tensor views and returns a status.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/dtype.h"
#include "model/token_choice.h"

namespace sculpt {

class Backend;

// A row-major 2-D view of backend memory: [rows, cols]. Views never own memory.
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;

  int64_t num_elements() const { return rows * cols; }
  size_t byte_size() const { return static_cast<size_t>(num_elements()) * DTypeSize(dtype); }
  float* f32() const { return static_cast<float*>(data); }
  // Rows [first, first + count) of this view.
  TensorView Rows(int64_t first, int64_t count) const {
    return {static_cast<char*>(data) + static_cast<size_t>(first * cols) * DTypeSize(dtype), dtype,
            count, cols};
  }
};

// Owns one allocation of a backend; frees it on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Backend* backend, void* data, size_t bytes)
      : backend_(backend), data_(data), bytes_(bytes) {}
  DeviceBuffer(DeviceBuffer&& other) noexcept { *this = std::move(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  // Memory the buffer only points at (weights mmap'd from a checkpoint): never freed by it.
  static DeviceBuffer Borrowed(const void* data, size_t bytes) {
    return DeviceBuffer(nullptr, const_cast<void*>(data), bytes);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  TensorView view(DType dtype, int64_t rows, int64_t cols) const;

 private:
  Backend* backend_ = nullptr;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// The packed variable-length batch: sequence s owns token rows
// [sequence_offsets[s], sequence_offsets[s + 1]) (FlashAttention's cu_seqlens). Its first row
// sits at position first_positions[s] of its canvas (0 when empty): a step that recomputes
// only a window of a cached canvas packs the window's rows alone.
struct PackedLayout {
  std::span<const int32_t> sequence_offsets;  // [num_sequences + 1], host memory
  std::span<const int32_t> first_positions;   // [num_sequences] or empty, host memory
  int32_t position(int32_t sequence, int32_t row) const {
    return row - sequence_offsets[sequence] +
           (first_positions.empty() ? 0 : first_positions[sequence]);
  }
  int32_t num_sequences() const { return static_cast<int32_t>(sequence_offsets.size()) - 1; }
  int32_t num_tokens() const { return sequence_offsets.empty() ? 0 : sequence_offsets.back(); }
};

struct EmbedParams {
  std::span<const int32_t> token_ids;  // [n_tokens], host memory; each < table.rows
  TensorView table;                    // [vocab, d_model], read
  TensorView out;                      // [n_tokens, d_model], written
};

// out = x / sqrt(mean(x^2) + eps) * weight, per row.
struct RmsNormParams {
  TensorView x;       // [n, d], read
  TensorView weight;  // [1, d], read
  TensorView out;     // [n, d], written (may alias x)
  float eps = 1e-5f;
};

// x += residual, then out = RMSNorm(x) * weight: a sub-layer's residual add fused with the norm
// that follows it (one pass over the rows instead of two). Same arithmetic as Add then RmsNorm.
struct AddRmsNormParams {
  TensorView x;         // [n, d], read and written (x + residual)
  TensorView residual;  // [n, d], read
  TensorView weight;    // [1, d], read
  TensorView out;       // [n, d], written (must not alias x or residual)
  float eps = 1e-5f;
};

// out = x * weight^T (+ bias); the layout of torch.nn.Linear.
struct GemmParams {
  TensorView x;       // [m, k], read
  TensorView weight;  // [n, k], read
  TensorView bias;    // [1, n] or empty (data == nullptr), read
  TensorView out;     // [m, n], written
};

// NeoX-style (rotate-half) rotary embedding applied in place to every head of x; the angle
// of row r of sequence s is layout.position(s, r) * theta^(-2j/head_dim).
struct RopeParams {
  TensorView x;  // [n_tokens, n_heads * head_dim], read and written
  PackedLayout layout;
  int head_dim = 0;
  double theta = 10000.0;
};

// Non-causal attention confined to each sequence of the packed batch: every row attends to
// all rows of its own sequence and none of another's. Grouped-query: query head h reads kv
// head h / (n_heads / n_kv_heads).
// Rows [first, first + count) of a tensor.
struct RowRange {
  int32_t first = 0;
  int32_t count = 0;
};

// Sequence s's queries are rows `layout` gives it; its keys and values the same rows of k and v,
// or, with `kv_rows`, rows kv_rows[s] of k and v: then k and v may hold other rows too (a KV
// cache holding every sequence's keys, of which a step recomputes only some queries).
//
// Key j of a sequence sits at canvas position j with kv_rows (a cache holds a canvas from its
// first position), at layout.position of its row without. With causal_blocks[s] = B > 0 the
// sequence is block-causal (block diffusion): a query at position p sees only the keys at
// positions below (p / B + 1) * B, its own block and every earlier one, blocks aligned to
// position 0; with 0, or without causal_blocks, every key.
struct AttentionParams {
  TensorView q;    // [n_tokens, n_heads * head_dim], read
  TensorView k;    // [n_tokens or n_kv_rows, n_kv_heads * head_dim], read
  TensorView v;    // [like k], read
  TensorView out;  // [n_tokens, n_heads * head_dim], written
  PackedLayout layout;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  std::span<const RowRange> kv_rows;       // [num_sequences] or empty, host memory
  std::span<const int32_t> causal_blocks;  // [num_sequences] or empty, host memory; each >= 0
};

// out = silu(gate) * up, elementwise.
struct SwiGluParams {
  TensorView gate;  // [n, hidden], read
  TensorView up;    // [n, hidden], read
  TensorView out;   // [n, hidden], written (may alias gate)
};

// out = a + b, elementwise.
struct AddParams {
  TensorView a;    // [n, d], read
  TensorView b;    // [n, d], read
  TensorView out;  // [n, d], written (may alias a)
};

// out[i] = x[rows[i]]; with out_rows, out[out_rows[i]] = x[rows[i]] (a scatter: the fresh keys
// of a step's rows into their sequences' KV cache rows), the other rows of out left as they are.
struct GatherRowsParams {
  std::span<const int32_t> rows;      // [n_copied], host memory
  TensorView x;                       // [n, d], read
  TensorView out;                     // [n_copied, d], or [any, d] with out_rows; written
  std::span<const int32_t> out_rows;  // [n_copied] distinct rows of out, or empty; host memory
};

// One generation's share of a step's token choice: its rows of logits and its own settings.
// With unconditional rows, logits are first guided in fp32: uncond + (cfg_scale + 1) *
// (cond - uncond). Suppressed tokens get -inf logits. top_k/top_p filter as Dream does (removed
// logits become the lowest float).
struct TokenChoiceGroup {
  int64_t first_row = 0;          // rows [first_row, first_row + positions.size()) of the logits
  int64_t uncond_first_row = -1;  // its unconditional rows, as many; -1 without guidance
  double cfg_scale = 0.0;
  double temperature = 0.0;
  double top_p = 1.0;  // 1 = off
  int top_k = 0;       // 0 = off
  TokenChoiceStyle style = TokenChoiceStyle::kLLaDA;
  ConfidenceKind confidence = ConfidenceKind::kProbability;
  std::span<const int32_t> suppressed_tokens;  // host memory
  uint64_t seed = 0;
  uint32_t step = 0;
  std::span<const int32_t> positions;  // [n], host memory: canvas position of each row (RNG key)
  std::span<int32_t> tokens;           // [n], host memory, written
  std::span<double> confidences;       // [n], host memory, written
  // Log-probabilities (the API's `logprobs`), or -1 for none: the chosen token's and this many
  // alternatives' log-softmax of the guided logits, before suppression, temperature and filters
  // (the model's own distribution), in float64: l[t] - max - log(sum exp(l - max)). The
  // alternatives are the highest guided logits, ties to the lower id, NaNs skipped.
  int top_logprobs = -1;
  std::span<double> logprobs;    // [n], host memory, written when top_logprobs >= 0
  std::span<int32_t> top_ids;    // [n * top_logprobs], host memory, written
  std::span<double> top_values;  // [n * top_logprobs], host memory, written
};

// Picks a token and its confidence for every row of every group, keeping vocabulary-sized data
// on the backend: all of a step's generations in one call. A row's result depends only on its
// own logits and its group's settings.
struct ChooseTokensParams {
  TensorView logits;  // [rows, vocab], read (and may be overwritten)
  std::span<const TokenChoiceGroup> groups;
};

// What every backend's op needs of its params, checked once for all of them (Backend's op
// methods call it; a backend's twin functions may too): INVALID_ARGUMENT naming the first
// mismatch. Activations must be F32; weights are the backend's weight dtype, not checked here.
absl::Status ValidateOp(const EmbedParams& params);
absl::Status ValidateOp(const RmsNormParams& params);
absl::Status ValidateOp(const AddRmsNormParams& params);
absl::Status ValidateOp(const GemmParams& params);
absl::Status ValidateOp(const RopeParams& params);
absl::Status ValidateOp(const AttentionParams& params);
absl::Status ValidateOp(const SwiGluParams& params);
absl::Status ValidateOp(const AddParams& params);
absl::Status ValidateOp(const GatherRowsParams& params);
// Also: every group's spans agree and its rows lie inside the logits.
absl::Status ValidateOp(const ChooseTokensParams& params);

// The largest forward and token choice the step loop will ask of a model, known before it runs
// (the scheduler's budgets), so that activations and every op's scratch are sized once and the
// loop allocates nothing.
struct WorkspaceLimits {
  int64_t tokens = 0;      // summed over one forward's sequences
  int64_t sequences = 0;   // in one forward
  int64_t logit_rows = 0;  // rows of logits one forward returns, and one token choice reads
};

// What a backend sizes its scratch for (Backend::Reserve): the limits and the model's shapes.
struct ReserveParams {
  WorkspaceLimits limits;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int64_t vocab = 0;          // columns of the logits
  int64_t widest_gemm_k = 0;  // the largest reduction of the model's GEMMs (x's columns)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  virtual absl::StatusOr<DeviceBuffer> Allocate(size_t bytes) = 0;
  virtual void Free(void* data) = 0;
  // Bytes Allocate could still give in one piece (what a memory budget given as a fraction is a
  // fraction of): the host's available memory, or the largest free range of a device arena.
  virtual size_t AvailableMemory() const = 0;
  virtual absl::Status CopyToDevice(void* dst, const void* src, size_t bytes) = 0;
  virtual absl::Status CopyToHost(void* dst, const void* src, size_t bytes) = 0;
  // Converts `count` host elements of `src_dtype` into the backend's weight dtype at `dst`.
  virtual absl::Status UploadWeights(void* dst, const void* src, DType src_dtype, size_t count) = 0;
  // The dtype the backend stores weights in.
  virtual DType weight_dtype() const = 0;
  // Whether the ops can read host memory holding weights of `dtype` as they are, so a loader
  // may use a checkpoint's mmap'd tensors in place (DeviceBuffer::Borrowed) instead of copies.
  virtual bool ReadsHostWeights(DType dtype) const { return false; }

  // `count` weights of `src_dtype` in host memory (a checkpoint's tensor) as the ops read them:
  // borrowed in place where ReadsHostWeights allows, else converted into a new buffer.
  absl::StatusOr<DeviceBuffer> LoadWeights(const void* src, DType src_dtype, size_t count);
  // A GEMM weight [rows, cols] (GemmParams::weight). A backend may keep it in a layout of its
  // own that only its Gemm reads (the CPU packs it into its GEMM tiles); by default LoadWeights.
  virtual absl::StatusOr<DeviceBuffer> LoadGemmWeight(const void* src, DType src_dtype,
                                                      int64_t rows, int64_t cols) {
    return LoadWeights(src, src_dtype, static_cast<size_t>(rows * cols));
  }

  // Sizes the ops' scratch for calls within `params` (after the model's weights are loaded), so
  // that they then allocate nothing; calls beyond it still work, growing the scratch.
  virtual absl::Status Reserve(const ReserveParams& params) = 0;

  // The ops. Each first checks what every backend relies on (dtypes, shapes that agree, ids and
  // rows inside their tables: ValidateOp) and returns INVALID_ARGUMENT naming the mismatch, so
  // that no backend reads or writes outside its buffers and all refuse the same calls; then it
  // runs the backend's own implementation (Run*).
  absl::Status Embed(const EmbedParams& params);
  absl::Status RmsNorm(const RmsNormParams& params);
  absl::Status AddRmsNorm(const AddRmsNormParams& params);
  absl::Status Gemm(const GemmParams& params);
  absl::Status Rope(const RopeParams& params);
  absl::Status Attention(const AttentionParams& params);
  absl::Status SwiGlu(const SwiGluParams& params);
  absl::Status Add(const AddParams& params);
  absl::Status GatherRows(const GatherRowsParams& params);
  absl::Status ChooseTokens(const ChooseTokensParams& params);
  virtual absl::Status Synchronize() = 0;
  // Not OK once the device failed (a CUDA error leaves the context unusable): the server then
  // reports itself unhealthy instead of serving errors.
  virtual absl::Status health() const { return absl::OkStatus(); }

 protected:
  // The backend's implementations, called with validated params.
  virtual absl::Status RunEmbed(const EmbedParams& params) = 0;
  virtual absl::Status RunRmsNorm(const RmsNormParams& params) = 0;
  virtual absl::Status RunAddRmsNorm(const AddRmsNormParams& params) = 0;
  virtual absl::Status RunGemm(const GemmParams& params) = 0;
  virtual absl::Status RunRope(const RopeParams& params) = 0;
  virtual absl::Status RunAttention(const AttentionParams& params) = 0;
  virtual absl::Status RunSwiGlu(const SwiGluParams& params) = 0;
  virtual absl::Status RunAdd(const AddParams& params) = 0;
  virtual absl::Status RunGatherRows(const GatherRowsParams& params) = 0;
  virtual absl::Status RunChooseTokens(const ChooseTokensParams& params) = 0;
};

}  // namespace sculpt
