#include "cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/range_allocator.h"
#include "common/status.h"
#include "cuda/add.cuh"
#include "cuda/attention.cuh"
#include "cuda/choose_tokens.cuh"
#include "cuda/convert.cuh"
#include "cuda/cuda_check.cuh"
#include "cuda/device_probe.cuh"
#include "cuda/embed.cuh"
#include "cuda/gather_rows.cuh"
#include "cuda/gemm.cuh"
#include "cuda/rms_norm.cuh"
#include "cuda/rope.cuh"
#include "cuda/swiglu.cuh"
#include "cuda/token_logprobs.cuh"

namespace sculpt {
namespace {

constexpr size_t kArenaAlignment = 256;
// Host data an op needs on the device (token ids, offsets, positions) goes through a pinned ring
// of this size; a step needs a few hundred KiB at most.
constexpr size_t kStagingBytes = size_t{16} << 20;
// cuBLAS's own scratch, carved from the arena so it never calls cudaMalloc (NVIDIA recommends
// 32 MiB on Hopper).
constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;

size_t RoundUp(size_t bytes, size_t alignment) {
  return (bytes + alignment - 1) / alignment * alignment;
}

struct StreamDestroy {
  void operator()(cudaStream_t stream) const { cudaStreamDestroy(stream); }
};
using StreamHandle = std::unique_ptr<std::remove_pointer_t<cudaStream_t>, StreamDestroy>;

struct CublasDestroy {
  void operator()(cublasHandle_t handle) const { cublasDestroy(handle); }
};
using CublasHandle = std::unique_ptr<std::remove_pointer_t<cublasHandle_t>, CublasDestroy>;

struct DeviceFree {
  void operator()(void* pointer) const { cudaFree(pointer); }
};
using DeviceMemory = std::unique_ptr<void, DeviceFree>;

struct PinnedFree {
  void operator()(void* pointer) const { cudaFreeHost(pointer); }
};
using PinnedMemory = std::unique_ptr<void, PinnedFree>;

class CudaBackend final : public Backend {
 public:
  CudaBackend(const CudaBackendOptions& options, std::string description)
      : device_(options.device),
        weight_dtype_(options.weight_dtype),
        description_(std::move(description)) {}

  ~CudaBackend() override {
    // Kernels may still read buffers that are about to go back to the arena.
    cudaSetDevice(device_);
    if (stream_) cudaStreamSynchronize(stream_.get());
  }

  absl::Status Init(size_t arena_bytes) {
    SCULPT_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    void* arena = nullptr;
    SCULPT_CUDA_RETURN_IF_ERROR(cudaMalloc(&arena, arena_bytes));
    arena_.reset(arena);
    allocator_ = std::make_unique<RangeAllocator>(arena_bytes, kArenaAlignment);
    cudaStream_t stream = nullptr;
    SCULPT_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    stream_.reset(stream);
    cublasHandle_t cublas = nullptr;
    SCULPT_CUBLAS_RETURN_IF_ERROR(cublasCreate(&cublas));
    cublas_.reset(cublas);
    SCULPT_CUBLAS_RETURN_IF_ERROR(cublasSetStream(cublas, stream));
    SCULPT_ASSIGN_OR_RETURN(cublas_workspace_, Allocate(kCublasWorkspaceBytes));
    SCULPT_CUBLAS_RETURN_IF_ERROR(
        cublasSetWorkspace(cublas, cublas_workspace_.data(), kCublasWorkspaceBytes));
    void* pinned = nullptr;
    SCULPT_CUDA_RETURN_IF_ERROR(cudaMallocHost(&pinned, kStagingBytes));
    pinned_.reset(pinned);
    SCULPT_ASSIGN_OR_RETURN(device_staging_, Allocate(kStagingBytes));
    return absl::OkStatus();
  }

  std::string name() const override { return description_; }

  absl::StatusOr<DeviceBuffer> Allocate(size_t bytes) override {
    std::lock_guard<std::mutex> lock(allocator_mutex_);
    const std::optional<size_t> offset = allocator_->Allocate(bytes);
    if (!offset) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the CUDA arena cannot hold ", bytes, " more bytes (", allocator_->bytes_in_use(), " of ",
          allocator_->capacity(), " in use; largest free range ", allocator_->largest_free_range(),
          "): lower max_num_batched_tokens or give the "
          "arena more of the device"));
    }
    return DeviceBuffer(this, static_cast<char*>(arena_.get()) + *offset, bytes);
  }

  size_t AvailableMemory() const override {
    std::lock_guard<std::mutex> lock(allocator_mutex_);
    return allocator_->largest_free_range();
  }

  void Free(void* data) override {
    std::lock_guard<std::mutex> lock(allocator_mutex_);
    allocator_->Free(
        static_cast<size_t>(static_cast<char*>(data) - static_cast<char*>(arena_.get())));
  }

  absl::Status CopyToDevice(void* dst, const void* src, size_t bytes) override {
    SCULPT_RETURN_IF_ERROR(Bind());
    return Check([&]() -> absl::Status {
      SCULPT_CUDA_RETURN_IF_ERROR(
          cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_.get()));
      return SynchronizeStream();
    }());
  }

  absl::Status CopyToHost(void* dst, const void* src, size_t bytes) override {
    SCULPT_RETURN_IF_ERROR(Bind());
    return Check([&]() -> absl::Status {
      SCULPT_CUDA_RETURN_IF_ERROR(
          cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_.get()));
      return SynchronizeStream();
    }());
  }

  absl::Status UploadWeights(void* dst, const void* src, DType src_dtype, size_t count) override {
    SCULPT_RETURN_IF_ERROR(Bind());
    return Check([&]() -> absl::Status {
      const size_t chunk = kStagingBytes / 2 / DTypeSize(src_dtype);
      for (size_t done = 0; done < count; done += chunk) {
        const size_t n = std::min(chunk, count - done);
        SCULPT_ASSIGN_OR_RETURN(void* staged,
                                Stage(static_cast<const char*>(src) + done * DTypeSize(src_dtype),
                                      n * DTypeSize(src_dtype)));
        SCULPT_RETURN_IF_ERROR(cuda::LaunchConvert(
            {staged, src_dtype, static_cast<char*>(dst) + done * DTypeSize(weight_dtype_),
             weight_dtype_, static_cast<int64_t>(n)},
            stream_.get()));
      }
      return SynchronizeStream();
    }());
  }

  DType weight_dtype() const override { return weight_dtype_; }

  absl::Status RunEmbed(const EmbedParams& params) override {
    SCULPT_RETURN_IF_ERROR(Bind());
    return Check([&]() -> absl::Status {
      SCULPT_ASSIGN_OR_RETURN(void* ids, StageSpan(params.token_ids));
      return cuda::LaunchEmbed(
          {static_cast<const int32_t*>(ids), static_cast<int64_t>(params.token_ids.size()),
           params.table.data, params.table.dtype, params.table.cols, params.out.f32()},
          stream_.get());
    }());
  }

  absl::Status RunRmsNorm(const RmsNormParams& params) override {
    SCULPT_RETURN_IF_ERROR(Bind());
    return Check(cuda::LaunchRmsNorm({params.x.f32(), params.weight.data, params.weight.dtype,
                                      params.out.f32(), params.x.rows, params.x.cols, params.eps},
                                     stream_.get()));
  }

  absl::Status RunAddRmsNorm(const AddRmsNormParams& params) override {
    SCULPT_RETURN_IF_ERROR(Bind());
    return Check(cuda::LaunchAddRmsNorm(
        {params.x.f32(), params.residual.f32(), params.weight.data, params.weight.dtype,
         params.out.f32(), params.x.rows, params.x.cols, params.eps},
        stream_.get()));
  }

  // Scratch comes from the arena (never cudaMalloc); reserving it up front keeps the step loop
  // from carving ranges as batches grow. The top_p/top_k sort scratch (rows x vocab keys, twice)
  // is left to the first filtering group: reserving it for every logit row would hold gigabytes
  // that most deployments never use.
  absl::Status Reserve(const ReserveParams& params) override {
    const WorkspaceLimits& limits = params.limits;
    SCULPT_RETURN_IF_ERROR(
        GrowScratch(gemm_scratch_, static_cast<size_t>(limits.tokens * params.widest_gemm_k) * 2));
    // Room for every row's results with the most log-probabilities a request may ask.
    const auto rows = static_cast<size_t>(limits.logit_rows);
    SCULPT_RETURN_IF_ERROR(
        GrowScratch(choose_results_, MakeChooseResultsLayout(rows, rows * kMaxTopLogprobs).end));
    layout_.host_offsets.reserve(static_cast<size_t>(limits.sequences) + 1);
    layout_.host_positions.reserve(static_cast<size_t>(limits.tokens));
    return absl::OkStatus();
  }

  absl::Status RunGemm(const GemmParams& params) override {
    SCULPT_RETURN_IF_ERROR(Bind());
    return Check([&]() -> absl::Status {
      void* scratch = nullptr;
      if (params.weight.dtype == DType::kBF16) {
        SCULPT_RETURN_IF_ERROR(
            GrowScratch(gemm_scratch_, static_cast<size_t>(params.x.num_elements()) * 2));
        scratch = gemm_scratch_.data();
      }
      SCULPT_RETURN_IF_ERROR(cuda::LaunchGemm(
          {params.x.f32(), params.weight.data, params.weight.dtype, params.out.f32(), params.x.rows,
           params.weight.rows, params.x.cols, scratch},
          cublas_.get(), stream_.get()));
      if (params.bias.data == nullptr) return absl::OkStatus();
      return cuda::LaunchAdd(
          {params.out.f32(), params.bias.data, params.bias.dtype,
           /*broadcast_b=*/true, params.out.f32(), params.out.rows, params.out.cols},
          stream_.get());
    }());
  }

  absl::Status RunRope(const RopeParams& params) override {
    SCULPT_RETURN_IF_ERROR(Bind());
    return Check([&]() -> absl::Status {
      SCULPT_ASSIGN_OR_RETURN(const StagedLayout* layout, StageLayout(params.layout));
      return cuda::LaunchRope(
          {params.x.f32(), layout->positions, params.x.rows, static_cast<int>(params.x.cols),
           params.head_dim, static_cast<float>(params.theta)},
          stream_.get());
    }());
  }

  absl::Status RunAttention(const AttentionParams& params) override {
    SCULPT_RETURN_IF_ERROR(Bind());
    return Check([&]() -> absl::Status {
      SCULPT_ASSIGN_OR_RETURN(const StagedLayout* layout, StageLayout(params.layout));
      cuda::AttentionKernelParams kernel{};
      kernel.q = params.q.f32();
      kernel.k = params.k.f32();
      kernel.v = params.v.f32();
      kernel.out = params.out.f32();
      kernel.sequence_offsets = layout->offsets;
      if (!params.kv_rows.empty()) {
        static_assert(sizeof(RowRange) == 2 * sizeof(int32_t));
        SCULPT_ASSIGN_OR_RETURN(void* kv_rows,
                                StageSpan(std::span<const int32_t>(
                                    reinterpret_cast<const int32_t*>(params.kv_rows.data()),
                                    2 * params.kv_rows.size())));
        kernel.kv_rows = static_cast<const int2*>(kv_rows);
      }
      if (std::any_of(params.causal_blocks.begin(), params.causal_blocks.end(),
                      [](int32_t block) { return block > 0; })) {
        SCULPT_ASSIGN_OR_RETURN(void* blocks, StageSpan(params.causal_blocks));
        kernel.causal_blocks = static_cast<const int32_t*>(blocks);
        kernel.positions = layout->positions;
      }
      kernel.num_sequences = params.layout.num_sequences();
      kernel.max_sequence_length = layout->max_sequence_length;
      kernel.n_heads = params.n_heads;
      kernel.n_kv_heads = params.n_kv_heads;
      kernel.head_dim = params.head_dim;
      kernel.softmax_scale = 1.0f / std::sqrt(static_cast<float>(params.head_dim));
      return cuda::LaunchAttention(kernel, stream_.get());
    }());
  }

  absl::Status RunSwiGlu(const SwiGluParams& params) override {
    SCULPT_RETURN_IF_ERROR(Bind());
    return Check(cuda::LaunchSwiGlu(
        {params.gate.f32(), params.up.f32(), params.out.f32(), params.gate.num_elements()},
        stream_.get()));
  }

  absl::Status RunAdd(const AddParams& params) override {
    SCULPT_RETURN_IF_ERROR(Bind());
    return Check(
        cuda::LaunchAdd({params.a.f32(), params.b.data, params.b.dtype,
                         /*broadcast_b=*/false, params.out.f32(), params.a.rows, params.a.cols},
                        stream_.get()));
  }

  absl::Status RunGatherRows(const GatherRowsParams& params) override {
    SCULPT_RETURN_IF_ERROR(Bind());
    return Check([&]() -> absl::Status {
      SCULPT_ASSIGN_OR_RETURN(void* rows, StageSpan(params.rows));
      const int32_t* out_rows = nullptr;
      if (!params.out_rows.empty()) {
        SCULPT_ASSIGN_OR_RETURN(void* staged, StageSpan(params.out_rows));
        out_rows = static_cast<const int32_t*>(staged);
      }
      return cuda::LaunchGatherRows(
          {params.x.f32(), static_cast<const int32_t*>(rows), params.out.f32(),
           static_cast<int64_t>(params.rows.size()), params.x.cols, out_rows},
          stream_.get());
    }());
  }

  absl::Status RunChooseTokens(const ChooseTokensParams& params) override;

  absl::Status Synchronize() override {
    SCULPT_RETURN_IF_ERROR(Bind());
    return Check(SynchronizeStream());
  }

  absl::Status health() const override {
    std::lock_guard<std::mutex> lock(health_mutex_);
    return health_;
  }

 private:
  // The host layout's offsets and per-row positions on the device; reused while the same
  // layout comes back (every layer of a forward) and the staging ring has not wrapped.
  struct StagedLayout {
    std::vector<int32_t> host_offsets, host_first_positions;
    std::vector<int32_t> host_positions;  // reused storage
    uint64_t staging_epoch = 0;
    const int32_t* offsets = nullptr;
    const int32_t* positions = nullptr;
    int max_sequence_length = 0;
  };

  // The engine thread is not the one that created the backend; CUDA's current device is per
  // thread.
  absl::Status Bind() {
    thread_local int bound_device = -1;
    if (bound_device == device_) return absl::OkStatus();
    SCULPT_RETURN_IF_ERROR(Check(cuda::CudaStatus(cudaSetDevice(device_), "cudaSetDevice")));
    bound_device = device_;
    return absl::OkStatus();
  }

  // A CUDA or cuBLAS failure (an internal status) leaves the device unusable: remember it.
  absl::Status Check(absl::Status status) {
    if (IsDeviceFailure(status)) {
      std::lock_guard<std::mutex> lock(health_mutex_);
      if (health_.ok()) {
        health_ =
            absl::UnavailableError(absl::StrCat("the CUDA device failed: ", status.message()));
      }
    }
    return status;
  }

  absl::Status SynchronizeStream() {
    SCULPT_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_.get()));
    staging_offset_ = 0;
    ++staging_epoch_;
    return absl::OkStatus();
  }

  // Copies host bytes to the device through the pinned ring; the device copy stays valid until
  // the ring wraps, which waits for the stream first.
  absl::StatusOr<void*> Stage(const void* host, size_t bytes) {
    const size_t rounded = RoundUp(std::max<size_t>(bytes, 1), kArenaAlignment);
    if (rounded > kStagingBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(bytes, " bytes of host data in one op exceed the staging ring"));
    }
    if (staging_offset_ + rounded > kStagingBytes) SCULPT_RETURN_IF_ERROR(SynchronizeStream());
    char* pinned = static_cast<char*>(pinned_.get()) + staging_offset_;
    char* device = static_cast<char*>(device_staging_.data()) + staging_offset_;
    std::memcpy(pinned, host, bytes);
    SCULPT_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(device, pinned, bytes, cudaMemcpyHostToDevice, stream_.get()));
    staging_offset_ += rounded;
    return device;
  }

  template <typename T>
  absl::StatusOr<void*> StageSpan(std::span<const T> values) {
    return Stage(values.data(), values.size_bytes());
  }

  absl::StatusOr<const StagedLayout*> StageLayout(const PackedLayout& layout) {
    const auto& offsets = layout.sequence_offsets;
    const auto& first_positions = layout.first_positions;
    if (layout_.offsets != nullptr && layout_.staging_epoch == staging_epoch_ &&
        std::equal(offsets.begin(), offsets.end(), layout_.host_offsets.begin(),
                   layout_.host_offsets.end()) &&
        std::equal(first_positions.begin(), first_positions.end(),
                   layout_.host_first_positions.begin(), layout_.host_first_positions.end())) {
      return &layout_;
    }
    std::vector<int32_t>& positions = layout_.host_positions;
    positions.resize(static_cast<size_t>(layout.num_tokens()));
    int max_length = 0;
    for (int32_t s = 0; s < layout.num_sequences(); ++s) {
      max_length = std::max(max_length, offsets[s + 1] - offsets[s]);
      for (int32_t row = offsets[s]; row < offsets[s + 1]; ++row) {
        positions[row] = layout.position(s, row);
      }
    }
    SCULPT_ASSIGN_OR_RETURN(void* device_offsets, StageSpan(offsets));
    SCULPT_ASSIGN_OR_RETURN(void* device_positions, StageSpan(std::span<const int32_t>(positions)));
    layout_.host_offsets.assign(offsets.begin(), offsets.end());
    layout_.host_first_positions.assign(first_positions.begin(), first_positions.end());
    layout_.staging_epoch = staging_epoch_;
    layout_.offsets = static_cast<const int32_t*>(device_offsets);
    layout_.positions = static_cast<const int32_t*>(device_positions);
    layout_.max_sequence_length = max_length;
    return &layout_;
  }

  // Byte offsets of a step's token-choice results in choose_results_.
  struct ChooseResultsLayout {
    size_t confidences = 0, logprobs = 0, top_ids = 0, top_values = 0, end = 0;
  };
  static ChooseResultsLayout MakeChooseResultsLayout(size_t rows, size_t listed) {
    ChooseResultsLayout layout;
    layout.confidences = RoundUp(rows * sizeof(int32_t), kArenaAlignment);
    layout.logprobs = layout.confidences + RoundUp(rows * sizeof(double), kArenaAlignment);
    layout.top_ids = layout.logprobs + RoundUp(rows * sizeof(double), kArenaAlignment);
    layout.top_values = layout.top_ids + RoundUp(listed * sizeof(int32_t), kArenaAlignment);
    layout.end = layout.top_values + listed * sizeof(double);
    return layout;
  }

  // Grows a scratch buffer (from the arena) to at least `bytes`.
  absl::Status GrowScratch(DeviceBuffer& buffer, size_t bytes) {
    if (buffer.bytes() >= bytes) return absl::OkStatus();
    buffer = DeviceBuffer();
    SCULPT_ASSIGN_OR_RETURN(buffer, Allocate(bytes));
    return absl::OkStatus();
  }

  const int device_;
  const DType weight_dtype_;
  const std::string description_;
  // Declared first, destroyed last: every DeviceBuffer below returns its range to it.
  DeviceMemory arena_;
  std::unique_ptr<RangeAllocator> allocator_;
  mutable std::mutex allocator_mutex_;
  StreamHandle stream_;
  CublasHandle cublas_;
  PinnedMemory pinned_;
  DeviceBuffer cublas_workspace_;
  DeviceBuffer device_staging_;
  size_t staging_offset_ = 0;
  uint64_t staging_epoch_ = 0;
  StagedLayout layout_;
  DeviceBuffer gemm_scratch_;
  DeviceBuffer choose_scratch_;
  DeviceBuffer choose_results_;
  DeviceBuffer logprob_rows_;  // a chunk of raw logit rows, kept from token choice's overwrite
  mutable std::mutex health_mutex_;
  absl::Status health_;
};

absl::Status CudaBackend::RunChooseTokens(const ChooseTokensParams& params) {
  SCULPT_RETURN_IF_ERROR(Bind());
  size_t total_rows = 0;
  size_t total_listed = 0;
  for (const TokenChoiceGroup& group : params.groups) {
    total_rows += group.positions.size();
    if (group.top_logprobs > 0) total_listed += group.positions.size() * group.top_logprobs;
  }
  if (total_rows == 0) return absl::OkStatus();
  return Check([&]() -> absl::Status {
    // Every group's results side by side on the device, copied back once the last is enqueued;
    // one synchronization for the whole step.
    const ChooseResultsLayout layout = MakeChooseResultsLayout(total_rows, total_listed);
    SCULPT_RETURN_IF_ERROR(GrowScratch(choose_results_, layout.end));
    char* results = static_cast<char*>(choose_results_.data());
    auto* tokens = reinterpret_cast<int32_t*>(results);
    auto* confidences = reinterpret_cast<double*>(results + layout.confidences);
    auto* logprobs = reinterpret_cast<double*>(results + layout.logprobs);
    auto* top_ids = reinterpret_cast<int32_t*>(results + layout.top_ids);
    auto* top_values = reinterpret_cast<double*>(results + layout.top_values);
    const int64_t vocab = params.logits.cols;
    // The filters' scratch and the log-probabilities' copy of the raw rows, reserved once for
    // the largest group: the groups reuse them one after the other on the stream, and reserving
    // again could free them under a running kernel.
    size_t scratch_bytes = 0;
    size_t logprob_chunk_rows = 0;
    for (const TokenChoiceGroup& group : params.groups) {
      if (group.top_p < 1.0 || group.top_k > 0) {
        scratch_bytes = std::max(
            scratch_bytes, cuda::ChooseTokensScratchBytes(static_cast<int>(group.positions.size()),
                                                          static_cast<int>(vocab)));
      }
      if (group.top_logprobs >= 0) {
        logprob_chunk_rows = std::max(logprob_chunk_rows, group.positions.size());
      }
    }
    // Token choice may overwrite its rows (guidance, temperature, suppression, filters), so a
    // group with log-probabilities is chosen in chunks whose raw rows are copied aside first.
    constexpr size_t kLogprobCopyBytes = size_t{64} << 20;
    const size_t row_bytes = static_cast<size_t>(vocab) * sizeof(float);
    logprob_chunk_rows =
        std::min(logprob_chunk_rows, std::max<size_t>(1, kLogprobCopyBytes / row_bytes));
    if (scratch_bytes > 0) SCULPT_RETURN_IF_ERROR(GrowScratch(choose_scratch_, scratch_bytes));
    if (logprob_chunk_rows > 0) {
      SCULPT_RETURN_IF_ERROR(GrowScratch(logprob_rows_, logprob_chunk_rows * row_bytes));
    }
    size_t done = 0;
    size_t listed = 0;
    for (const TokenChoiceGroup& group : params.groups) {
      const size_t n_rows = group.positions.size();
      if (n_rows == 0) continue;
      cuda::ChooseTokensKernelParams kernel;
      kernel.logits = params.logits.f32() + group.first_row * vocab;
      kernel.uncond_logits = group.uncond_first_row < 0
                                 ? nullptr
                                 : params.logits.f32() + group.uncond_first_row * vocab;
      kernel.vocab = static_cast<int32_t>(vocab);
      kernel.cfg_scale = group.cfg_scale;
      kernel.temperature = group.temperature;
      kernel.top_p = group.top_p;
      kernel.top_k = group.top_k;
      kernel.style = group.style;
      kernel.confidence = group.confidence;
      if (!group.suppressed_tokens.empty()) {
        SCULPT_ASSIGN_OR_RETURN(void* suppressed, StageSpan(group.suppressed_tokens));
        kernel.suppressed_tokens = static_cast<const int32_t*>(suppressed);
        kernel.n_suppressed = static_cast<int32_t>(group.suppressed_tokens.size());
      }
      kernel.seed = group.seed;
      kernel.step = group.step;
      SCULPT_ASSIGN_OR_RETURN(void* positions, StageSpan(group.positions));
      if (group.top_p < 1.0 || group.top_k > 0) {
        kernel.scratch = choose_scratch_.data();
        kernel.scratch_bytes = scratch_bytes;
      }
      const bool with_logprobs = group.top_logprobs >= 0;
      const size_t chunk = with_logprobs ? logprob_chunk_rows : n_rows;
      const int top_k = std::max(group.top_logprobs, 0);
      for (size_t first = 0; first < n_rows; first += chunk) {
        const size_t rows = std::min(chunk, n_rows - first);
        cuda::ChooseTokensKernelParams part = kernel;
        part.logits = kernel.logits + first * vocab;
        if (kernel.uncond_logits != nullptr)
          part.uncond_logits = kernel.uncond_logits + first * vocab;
        part.n_rows = static_cast<int32_t>(rows);
        part.positions = static_cast<const int32_t*>(positions) + first;
        part.tokens = tokens + done + first;
        part.confidences = confidences + done + first;
        if (with_logprobs) {
          SCULPT_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(logprob_rows_.data(), part.logits,
                                                      rows * row_bytes, cudaMemcpyDeviceToDevice,
                                                      stream_.get()));
        }
        SCULPT_RETURN_IF_ERROR(cuda::LaunchChooseTokens(part, stream_.get()));
        if (!with_logprobs) continue;
        cuda::TokenLogprobsKernelParams logprob;
        logprob.cond_logits = static_cast<const float*>(logprob_rows_.data());
        logprob.uncond_logits = part.uncond_logits;
        logprob.guidance = static_cast<float>(group.cfg_scale + 1.0);
        logprob.n_rows = part.n_rows;
        logprob.vocab = part.vocab;
        logprob.tokens = part.tokens;
        logprob.top_k = top_k;
        logprob.logprobs = logprobs + done + first;
        logprob.top_ids = top_ids + listed + first * top_k;
        logprob.top_values = top_values + listed + first * top_k;
        SCULPT_RETURN_IF_ERROR(cuda::LaunchTokenLogprobs(logprob, stream_.get()));
      }
      // Only the chosen tokens, their confidences and log-probabilities come back.
      const auto to_host = [&](void* host, const void* device, size_t bytes) {
        return cudaMemcpyAsync(host, device, bytes, cudaMemcpyDeviceToHost, stream_.get());
      };
      SCULPT_CUDA_RETURN_IF_ERROR(
          to_host(group.tokens.data(), tokens + done, n_rows * sizeof(int32_t)));
      SCULPT_CUDA_RETURN_IF_ERROR(
          to_host(group.confidences.data(), confidences + done, n_rows * sizeof(double)));
      if (with_logprobs) {
        SCULPT_CUDA_RETURN_IF_ERROR(
            to_host(group.logprobs.data(), logprobs + done, n_rows * sizeof(double)));
        if (top_k > 0) {
          SCULPT_CUDA_RETURN_IF_ERROR(
              to_host(group.top_ids.data(), top_ids + listed, n_rows * top_k * sizeof(int32_t)));
          SCULPT_CUDA_RETURN_IF_ERROR(to_host(group.top_values.data(), top_values + listed,
                                              n_rows * top_k * sizeof(double)));
        }
        listed += n_rows * top_k;
      }
      done += n_rows;
    }
    return SynchronizeStream();
  }());
}

}  // namespace

absl::StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(const CudaBackendOptions& options) {
  const int count = cuda::DeviceCount();
  if (options.device < 0 || options.device >= count) {
    return absl::FailedPreconditionError(
        absl::StrCat("no CUDA device ", options.device, ": this machine has ", count,
                     count == 0 ? " (no GPU, or no driver)" : "", "; run with --device cpu",
                     count > 0 ? absl::StrCat(" or cuda:N for N < ", count) : ""));
  }
  if (options.weight_dtype != DType::kBF16 && options.weight_dtype != DType::kF32) {
    return absl::InvalidArgumentError("the CUDA backend keeps weights in BF16 or F32");
  }
  SCULPT_ASSIGN_OR_RETURN(std::string device_name, cuda::DescribeDevice(options.device));
  size_t arena_bytes = options.arena_bytes;
  if (arena_bytes == 0) {
    SCULPT_CUDA_RETURN_IF_ERROR(cudaSetDevice(options.device));
    size_t free_bytes = 0;
    size_t total_bytes = 0;
    SCULPT_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&free_bytes, &total_bytes));
    arena_bytes = static_cast<size_t>(static_cast<double>(free_bytes) * options.arena_fraction);
  }
  auto backend = std::make_unique<CudaBackend>(
      options, absl::StrCat("cuda:", options.device, " (", device_name, ")"));
  SCULPT_RETURN_IF_ERROR(backend->Init(arena_bytes));
  return backend;
}

}  // namespace sculpt
