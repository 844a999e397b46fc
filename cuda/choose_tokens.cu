// The LM-head epilogue on the device, the twin of cpu/choose_tokens.cc: guidance, suppression,
// Dream's temperature/top_p/top_k, then LLaDA's float64 or Dream's float32 softmax choice.
//
// One CTA per row. PrepareRowsKernel guides, tempers and suppresses the row in place (and copies
// it for the sort); when top_p or top_k filters, cub's segmented radix sort orders each row
// descending; ChooseRowsKernel filters the row in place and picks the token and confidence with
// block reductions.
//
// Where the result equals the CPU's bit for bit, and where it cannot:
// - Guidance, temperature and suppression use the CPU's float32 operations without contraction
//   into FMAs (__fmul_rn etc.): identical logits.
// - Argmax and Gumbel-max reduce with a total order (higher score, then lower index), so the
//   block reduction picks the token of the CPU's sequential "strictly greater" loop.
// - The float32 sums whose order is observable (top_p's total and running sum, Dream's softmax
//   denominator) are added by one thread in the CPU's order: a float32 sum of 1e5 terms moves
//   at the 1e-5 level (up to the mass of every term below half an ulp) with the order. The
//   price is a chain of up to 3 * vocab dependent adds per row (~0.3 ms each for 126464 on an
//   H100-class GPU), paid by all rows at once since each row has its own CTA.
// - expf here is CUDA's (<= 2 ulp), the CPU's glibc's (<= 0.5 ulp); exp, log and pow in float64
//   differ by an ulp or two as well. So Dream's probabilities agree to ~1e-6 relative, LLaDA's
//   Gumbel scores to ~1e-15, and a token can differ only on a near-tie at that level (and a
//   top_p cut only where the running sum lands that close to top_p).
// - float64 sums (LLaDA's softmax denominator, Dream's neg-entropy) are block reductions: their
//   order differs from the CPU's, ~1e-15 relative.
// - An all -inf row gives token 0 and a NaN confidence, as on the CPU. NaN logits keep the
//   first-element rules of the CPU's loops, but the CPU's sort and nth_element are unspecified
//   with NaNs, so such rows match only without top_p/top_k.
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>

#include "absl/strings/str_cat.h"
#include "common/philox.h"
#include "common/rng.h"
#include "cuda/choose_tokens.cuh"
#include "cuda/cuda_check.cuh"

namespace sculpt::cuda {
namespace {

constexpr int kBlock = 256;        // threads per row
constexpr int kTile = 8 * kBlock;  // terms staged in shared memory per step of a sequential sum
constexpr size_t kScratchAlign = 256;
constexpr size_t kSortTempBytes = 4096;  // cub asks ~256 B for a segmented DoubleBuffer sort
constexpr float kRemoved = -FLT_MAX;     // torch.finfo(float32).min, as on the CPU
constexpr uint32_t kGumbelStream = static_cast<uint32_t>(RngStream::kGumbel);
constexpr uint32_t kDreamStream = static_cast<uint32_t>(RngStream::kDreamSample);

size_t AlignUp(size_t bytes) { return (bytes + kScratchAlign - 1) / kScratchAlign * kScratchAlign; }

// Byte offsets into the scratch buffer, counted from its first 256-byte aligned address.
struct ScratchLayout {
  size_t offsets = 0;    // int32 [n_rows + 1]: row r is the sort's segment [r, r + 1) * vocab
  size_t keys = 0;       // float [n_rows, vocab]: the prepared rows, one of the sort's buffers
  size_t keys_alt = 0;   // float [n_rows, vocab]: the sort's other buffer
  size_t sort_temp = 0;  // cub's temporary storage, kSortTempBytes
  size_t end = 0;
};

ScratchLayout MakeScratchLayout(int n_rows, int vocab) {
  const size_t rows = n_rows > 0 ? static_cast<size_t>(n_rows) : 0;
  const size_t elements = rows * (vocab > 0 ? static_cast<size_t>(vocab) : 0);
  ScratchLayout layout;
  layout.keys = AlignUp((rows + 1) * sizeof(int32_t));
  layout.keys_alt = layout.keys + AlignUp(elements * sizeof(float));
  layout.sort_temp = layout.keys_alt + AlignUp(elements * sizeof(float));
  layout.end = layout.sort_temp + kSortTempBytes;
  return layout;
}

struct PrepareArgs {
  float* logits;               // [n_rows, vocab], read; written when write_logits
  const float* uncond_logits;  // [n_rows, vocab] or nullptr, read
  float* keys;                 // [n_rows, vocab] or nullptr, written: a copy for the sort
  int32_t* segment_offsets;    // [n_rows + 1] or nullptr, written
  const int32_t* suppressed_tokens;
  int32_t n_suppressed;
  int32_t n_rows;
  int32_t vocab;
  float guidance;     // cfg_scale + 1, rounded to float as the CPU does
  float temperature;  // Dream's divisor when divide
  bool divide;
  bool write_logits;
};

// uncond + guidance * (cond - uncond), / temperature, suppressed = -inf; the CPU suppresses before
// dividing, which is the same since -inf / t = -inf.
__global__ void __launch_bounds__(kBlock) PrepareRowsKernel(const PrepareArgs args) {
  const int64_t row = blockIdx.x;
  const int vocab = args.vocab;
  float* logits = args.logits + row * vocab;
  const float* uncond = args.uncond_logits == nullptr ? nullptr : args.uncond_logits + row * vocab;
  float* keys = args.keys == nullptr ? nullptr : args.keys + row * vocab;
  if (args.segment_offsets != nullptr && threadIdx.x == 0) {
    args.segment_offsets[row] = static_cast<int32_t>(row * vocab);  // n_rows * vocab fits int32
    if (row == 0) args.segment_offsets[args.n_rows] = args.n_rows * vocab;
  }
  for (int v = threadIdx.x; v < vocab; v += kBlock) {
    float logit = logits[v];
    if (uncond != nullptr) {
      const float u = uncond[v];
      logit = __fadd_rn(u, __fmul_rn(args.guidance, __fsub_rn(logit, u)));
    }
    if (args.divide) logit = __fdiv_rn(logit, args.temperature);
    if (args.write_logits) logits[v] = logit;
    if (keys != nullptr) keys[v] = logit;
  }
  __syncthreads();  // a suppressed entry may have been written by another thread
  for (int i = threadIdx.x; i < args.n_suppressed; i += kBlock) {
    const int32_t token = args.suppressed_tokens[i];
    if (token < 0 || token >= vocab) continue;
    if (args.write_logits) logits[token] = -INFINITY;
    if (keys != nullptr) keys[token] = -INFINITY;
  }
}

struct ChooseArgs {
  float* logits;        // [n_rows, vocab], read; filtered entries are written
  const float* sorted;  // [n_rows, vocab], each row descending; nullptr when nothing filters
  int32_t vocab;
  bool dream;
  ConfidenceKind confidence;
  double temperature;
  bool top_p_on;
  float top_p;
  int32_t top_k;  // in (0, vocab), or 0 = off
  uint64_t seed;
  uint32_t step;
  const int32_t* positions;
  int32_t* tokens;
  double* confidences;
};

// fmaxf skips NaN, as std::max(max, x) with a non-NaN running max does.
struct MaxSkippingNaN {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

struct Sum {
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};

// A token and its score (index -1: none). Higher score wins, then the lower index: a total order
// on the non-NaN scores, so any reduction order gives the first maximum, as the CPU's loops do.
struct Candidate {
  double score;
  int32_t index;
};

struct BetterCandidate {
  __device__ Candidate operator()(const Candidate& a, const Candidate& b) const {
    if (a.index < 0) return b;
    if (b.index < 0) return a;
    if (a.score != b.score) return a.score > b.score ? a : b;
    return a.index < b.index ? a : b;
  }
};

// The two largest probabilities counted with multiplicity, -1 where missing (the CPU's start).
struct TopTwo {
  float first;
  float second;
};

struct MergeTopTwo {
  __device__ TopTwo operator()(const TopTwo& a, const TopTwo& b) const {
    return {fmaxf(a.first, b.first), fmaxf(fminf(a.first, b.first), fmaxf(a.second, b.second))};
  }
};

// Every thread of the block gets op over all threads' values.
template <typename T, typename Op>
__device__ T BlockAllReduce(T value, Op op) {
  using Reduce = cub::BlockReduce<T, kBlock>;
  __shared__ typename Reduce::TempStorage storage;
  __shared__ T result;
  const T reduced = Reduce(storage).Reduce(value, op);
  if (threadIdx.x == 0) result = reduced;
  __syncthreads();
  const T out = result;
  __syncthreads();  // the next call may overwrite storage and result
  return out;
}

// term(0) + term(1) + ... + term(n - 1) in float32, added strictly in that order as the CPU's
// loops add: the block evaluates a tile of terms in parallel, then thread 0 adds the tile. Every
// thread gets the sum.
template <typename Term>
__device__ float SequentialSum(int n, float* tile, Term term) {
  __shared__ float result;
  float total = 0.0f;
  for (int start = 0; start < n; start += kTile) {
    const int count = min(kTile, n - start);
    for (int i = threadIdx.x; i < count; i += kBlock) tile[i] = term(start + i);
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int i = 0; i < count; ++i) total += tile[i];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) result = total;
  __syncthreads();
  const float out = result;
  __syncthreads();
  return out;
}

// Dream's top_p then top_k on one row, in place, removing exactly the entries the CPU removes.
// top_p keeps the first `kept` entries of the stable descending order, where the sequential
// running sum first exceeds top_p (never when the total is NaN: nothing is removed then, as on
// the CPU). As a set: the logits above the threshold sorted[kept - 1], plus the first `quota`
// tokens (by index) equal to it. top_k's k-th largest value after top_p follows from the sorted
// row and `kept`: the kept finite values, then vocab - kept removed ones, then kept -infs.
__device__ void FilterRow(const ChooseArgs& args, const float* sorted, float* logits, float* tile) {
  __shared__ int kept_shared;
  __shared__ bool crossed_shared;
  __shared__ float threshold_shared;
  __shared__ int quota_shared;
  __shared__ float kth_shared;
  const int vocab = args.vocab;
  int kept = vocab;
  if (args.top_p_on) {
    const float max_logit = sorted[0];
    const float total =
        SequentialSum(vocab, tile, [&](int i) { return expf(sorted[i] - max_logit); });
    if (threadIdx.x == 0) {
      kept_shared = vocab;
      crossed_shared = false;
    }
    float cumulative = 0.0f;  // thread 0's
    for (int start = 0; start < vocab; start += kTile) {
      const int count = min(kTile, vocab - start);
      for (int i = threadIdx.x; i < count; i += kBlock) {
        tile[i] = __fdiv_rn(expf(sorted[start + i] - max_logit), total);
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        // Probabilities are >= 0 once the total is a number, so the sum stays above top_p.
        for (int i = 0; i < count; ++i) {
          cumulative += tile[i];
          if (cumulative > args.top_p) {
            kept_shared = start + i + 1;
            crossed_shared = true;
            break;
          }
        }
      }
      __syncthreads();
      if (crossed_shared) break;
    }
    kept = kept_shared;
  }
  const bool cut = kept < vocab;
  const bool top_k_on = args.top_k > 0;
  if (!cut && !top_k_on) return;

  if (threadIdx.x == 0) {
    float threshold = 0.0f;
    int quota = 0;
    if (cut) {
      threshold = sorted[kept - 1];
      int lo = 0, hi = kept - 1;  // the first sorted entry not above the threshold
      while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (sorted[mid] > threshold) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      quota = kept - lo;
    }
    float kth = -INFINITY;
    if (top_k_on) {
      int lo = 0, hi = kept;  // the kept entries above -inf
      while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (sorted[mid] > -INFINITY) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      const int k = args.top_k;
      kth = k <= lo ? sorted[k - 1] : (k <= lo + (vocab - kept) ? kRemoved : -INFINITY);
    }
    threshold_shared = threshold;
    quota_shared = quota;
    kth_shared = kth;
  }
  __syncthreads();
  const float threshold = threshold_shared;
  const int quota = quota_shared;
  const float kth = kth_shared;

  using Scan = cub::BlockScan<int, kBlock>;
  __shared__ typename Scan::TempStorage scan_storage;
  int ties_before = 0;  // tokens equal to the threshold at lower indices than this tile
  for (int start = 0; start < vocab; start += kBlock) {
    const int v = start + threadIdx.x;
    const float logit = v < vocab ? logits[v] : 0.0f;
    const bool tie = cut && v < vocab && logit == threshold;
    int tie_rank = 0, ties_in_tile = 0;
    Scan(scan_storage).ExclusiveSum(tie ? 1 : 0, tie_rank, ties_in_tile);
    if (v < vocab) {
      bool removed = cut && !(logit > threshold || (tie && ties_before + tie_rank < quota));
      if (top_k_on && (removed ? kRemoved : logit) < kth) removed = true;
      if (removed) logits[v] = kRemoved;
    }
    ties_before += ties_in_tile;
    __syncthreads();  // scan_storage is reused by the next tile
  }
  __syncthreads();  // every thread reads the filtered row next
}

// LLaDA: argmax at temperature 0, else the float64 Gumbel-max of exp(l) / (-log u)^t; the
// confidence is the float64 softmax probability of the token.
__device__ void ChooseLLaDA(const ChooseArgs& args, const float* logits, uint32_t position,
                            int64_t row) {
  const int vocab = args.vocab;
  const bool sample = args.temperature != 0.0;
  float thread_max = -INFINITY;
  Candidate best{0.0, -1};
  bool first_is_nan = false;  // the CPU's loop keeps token 0 when its score is NaN
  for (int v = threadIdx.x; v < vocab; v += kBlock) {
    const float logit = logits[v];
    thread_max = fmaxf(thread_max, logit);
    double score = logit;
    if (sample) {
      const double u = PhiloxUniformOpen01(args.seed, args.step, position, static_cast<uint32_t>(v),
                                           kGumbelStream);
      score = exp(static_cast<double>(logit)) / pow(-log(u), args.temperature);
    }
    if (v == 0) first_is_nan = isnan(score);
    if (!isnan(score) && (best.index < 0 || score > best.score)) best = {score, v};
  }
  const double max_logit = BlockAllReduce(thread_max, MaxSkippingNaN());
  best = BlockAllReduce(best, BetterCandidate());
  double thread_sum = 0.0;
  for (int v = threadIdx.x; v < vocab; v += kBlock) {
    thread_sum += exp(static_cast<double>(logits[v]) - max_logit);
  }
  const double denominator = BlockAllReduce(thread_sum, Sum());
  if (threadIdx.x == 0) {
    const int32_t token = first_is_nan || best.index < 0 ? 0 : best.index;
    args.tokens[row] = token;
    args.confidences[row] = exp(static_cast<double>(logits[token]) - max_logit) / denominator;
  }
}

// Dream: float32 softmax, then argmax at temperature 0 or the Gumbel-max of log p (a categorical
// draw) otherwise; the confidence is p, the top-1 minus top-2 margin, or sum p log(p + 1e-10).
__device__ void ChooseDream(const ChooseArgs& args, const float* logits, uint32_t position,
                            int64_t row, float* tile) {
  const int vocab = args.vocab;
  float thread_max = -INFINITY;
  for (int v = threadIdx.x; v < vocab; v += kBlock) thread_max = fmaxf(thread_max, logits[v]);
  float max_logit = BlockAllReduce(thread_max, MaxSkippingNaN());
  if (isnan(logits[0])) max_logit = NAN;  // std::max_element keeps a NaN that comes first
  const float total =
      SequentialSum(vocab, tile, [&](int v) { return expf(logits[v] - max_logit); });

  const bool sample = args.temperature != 0.0;
  const bool margin = args.confidence == ConfidenceKind::kMargin;
  const bool entropy = args.confidence == ConfidenceKind::kNegEntropy;
  Candidate best{0.0, -1};
  bool first_is_nan = false;  // the CPU's argmax loop keeps token 0 when p[0] is NaN
  TopTwo top_two{-1.0f, -1.0f};
  double thread_entropy = 0.0;
  for (int v = threadIdx.x; v < vocab; v += kBlock) {
    const float p = __fdiv_rn(expf(logits[v] - max_logit), total);
    if (!sample) {
      if (v == 0) first_is_nan = isnan(p);
      if (!isnan(p) && (best.index < 0 || p > best.score)) best = {p, v};
    } else if (p > 0.0f) {
      const double u = PhiloxUniformOpen01(args.seed, args.step, position, static_cast<uint32_t>(v),
                                           kDreamStream);
      const double score = log(static_cast<double>(p)) - log(-log(u));
      if (best.index < 0 || score > best.score) best = {score, v};
    }
    if (margin) {
      if (p > top_two.first) {
        top_two.second = top_two.first;
        top_two.first = p;
      } else if (p > top_two.second) {
        top_two.second = p;
      }
    }
    if (entropy) {
      const double p64 = p;
      thread_entropy = __dadd_rn(thread_entropy, __dmul_rn(p64, log(p64 + 1e-10)));
    }
  }
  best = BlockAllReduce(best, BetterCandidate());
  if (margin) top_two = BlockAllReduce(top_two, MergeTopTwo());
  if (entropy) thread_entropy = BlockAllReduce(thread_entropy, Sum());
  if (threadIdx.x == 0) {
    const int32_t token = first_is_nan || best.index < 0 ? 0 : best.index;
    args.tokens[row] = token;
    double confidence = thread_entropy;
    if (margin) confidence = __fsub_rn(top_two.first, top_two.second);
    if (!margin && !entropy) confidence = __fdiv_rn(expf(logits[token] - max_logit), total);
    args.confidences[row] = confidence;
  }
}

__global__ void __launch_bounds__(kBlock) ChooseRowsKernel(const ChooseArgs args) {
  __shared__ float tile[kTile];
  const int64_t row = blockIdx.x;
  float* logits = args.logits + row * args.vocab;
  const uint32_t position = static_cast<uint32_t>(args.positions[row]);
  if (args.sorted != nullptr) FilterRow(args, args.sorted + row * args.vocab, logits, tile);
  if (args.dream) {
    ChooseDream(args, logits, position, row, tile);
  } else {
    ChooseLLaDA(args, logits, position, row);
  }
}

absl::Status Validate(const ChooseTokensKernelParams& params) {
  if (params.n_rows < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("choose_tokens: n_rows must be >= 0, got ", params.n_rows));
  }
  if (params.vocab < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("choose_tokens: vocab must be >= 1, got ", params.vocab));
  }
  if (params.n_rows > 0 && (params.logits == nullptr || params.positions == nullptr ||
                            params.tokens == nullptr || params.confidences == nullptr)) {
    return absl::InvalidArgumentError(
        "choose_tokens: logits, positions, tokens and confidences must be device pointers");
  }
  if (params.style != TokenChoiceStyle::kLLaDA && params.style != TokenChoiceStyle::kDream) {
    return absl::InvalidArgumentError(absl::StrCat(
        "choose_tokens: style must be kLLaDA or kDream, got ", static_cast<int>(params.style)));
  }
  if (params.confidence != ConfidenceKind::kProbability &&
      params.confidence != ConfidenceKind::kMargin &&
      params.confidence != ConfidenceKind::kNegEntropy) {
    return absl::InvalidArgumentError(
        absl::StrCat("choose_tokens: confidence must be a ConfidenceKind value (0, 1, 2), got ",
                     static_cast<int>(params.confidence)));
  }
  if (!std::isfinite(params.temperature) || params.temperature < 0.0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "choose_tokens: temperature must be finite and >= 0, got ", params.temperature));
  }
  if (std::isnan(params.top_p)) {
    return absl::InvalidArgumentError("choose_tokens: top_p is NaN; use 1 for no top_p filter");
  }
  if (params.top_k < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("choose_tokens: top_k must be >= 0 (0 = off), got ", params.top_k));
  }
  if (params.n_suppressed < 0 || (params.n_suppressed > 0 && params.suppressed_tokens == nullptr)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "choose_tokens: n_suppressed must be >= 0 with a device array of that many ids, got ",
        params.n_suppressed));
  }
  return absl::OkStatus();
}

}  // namespace

size_t ChooseTokensScratchBytes(int n_rows, int vocab) {
  return MakeScratchLayout(n_rows, vocab).end + kScratchAlign;  // slack to align the base
}

absl::Status LaunchChooseTokens(const ChooseTokensKernelParams& params, cudaStream_t stream) {
  if (absl::Status status = Validate(params); !status.ok()) return status;
  if (params.n_rows == 0) return absl::OkStatus();
  const int n_rows = params.n_rows;
  const int vocab = params.vocab;
  const bool dream = params.style == TokenChoiceStyle::kDream;
  const bool top_p_on = params.top_p < 1.0;
  const bool top_k_on = params.top_k > 0 && params.top_k < vocab;
  const bool filter = top_p_on || top_k_on;
  const bool divide = dream && params.temperature > 0.0;
  const bool write_logits = params.uncond_logits != nullptr || divide || params.n_suppressed > 0;

  float* keys = nullptr;
  float* keys_alt = nullptr;
  int32_t* offsets = nullptr;
  void* sort_temp = nullptr;
  if (filter) {
    if (static_cast<int64_t>(n_rows) * vocab > INT_MAX) {
      return absl::InvalidArgumentError(absl::StrCat(
          "choose_tokens: n_rows * vocab = ", static_cast<int64_t>(n_rows) * vocab,
          " exceeds 2^31 - 1, the most cub's segmented sort takes for top_p/top_k; launch the "
          "rows in chunks"));
    }
    const size_t needed = ChooseTokensScratchBytes(n_rows, vocab);
    if (params.scratch == nullptr || params.scratch_bytes < needed) {
      return absl::InvalidArgumentError(
          absl::StrCat("choose_tokens: top_p/top_k need scratch of ChooseTokensScratchBytes(",
                       n_rows, ", ", vocab, ") = ", needed, " bytes, got ", params.scratch_bytes));
    }
    const uintptr_t base = reinterpret_cast<uintptr_t>(params.scratch);
    char* scratch =
        reinterpret_cast<char*>((base + kScratchAlign - 1) / kScratchAlign * kScratchAlign);
    const ScratchLayout layout = MakeScratchLayout(n_rows, vocab);
    offsets = reinterpret_cast<int32_t*>(scratch + layout.offsets);
    keys = reinterpret_cast<float*>(scratch + layout.keys);
    keys_alt = reinterpret_cast<float*>(scratch + layout.keys_alt);
    sort_temp = scratch + layout.sort_temp;
  }

  if (write_logits || filter) {
    PrepareArgs prepare;
    prepare.logits = params.logits;
    prepare.uncond_logits = params.uncond_logits;
    prepare.keys = keys;
    prepare.segment_offsets = offsets;
    prepare.suppressed_tokens = params.suppressed_tokens;
    prepare.n_suppressed = params.n_suppressed;
    prepare.n_rows = n_rows;
    prepare.vocab = vocab;
    prepare.guidance = static_cast<float>(params.cfg_scale + 1.0);
    prepare.temperature = static_cast<float>(params.temperature);
    prepare.divide = divide;
    prepare.write_logits = write_logits;
    PrepareRowsKernel<<<n_rows, kBlock, 0, stream>>>(prepare);
    if (absl::Status status = LaunchStatus("choose_tokens"); !status.ok()) return status;
  }

  const float* sorted = nullptr;
  if (filter) {
    // Keys only: the filters need the sorted values, not which token holds each (ties are
    // resolved by index in FilterRow), so neither stability nor -0 vs +0 order matters.
    cub::DoubleBuffer<float> buffers(keys, keys_alt);
    size_t temp_bytes = 0;
    SCULPT_CUDA_RETURN_IF_ERROR(cub::DeviceSegmentedRadixSort::SortKeysDescending(
        nullptr, temp_bytes, buffers, n_rows * vocab, n_rows, offsets, offsets + 1, 0, 32, stream));
    if (temp_bytes > kSortTempBytes) {
      return absl::InternalError(absl::StrCat("choose_tokens: cub's sort asks ", temp_bytes,
                                              " bytes of temporary storage, more than the ",
                                              kSortTempBytes, " reserved in the scratch"));
    }
    SCULPT_CUDA_RETURN_IF_ERROR(cub::DeviceSegmentedRadixSort::SortKeysDescending(
        sort_temp, temp_bytes, buffers, n_rows * vocab, n_rows, offsets, offsets + 1, 0, 32,
        stream));
    sorted = buffers.Current();
  }

  ChooseArgs choose;
  choose.logits = params.logits;
  choose.sorted = sorted;
  choose.vocab = vocab;
  choose.dream = dream;
  choose.confidence = params.confidence;
  choose.temperature = params.temperature;
  choose.top_p_on = top_p_on;
  choose.top_p = static_cast<float>(params.top_p);
  choose.top_k = top_k_on ? params.top_k : 0;
  choose.seed = params.seed;
  choose.step = params.step;
  choose.positions = params.positions;
  choose.tokens = params.tokens;
  choose.confidences = params.confidences;
  ChooseRowsKernel<<<n_rows, kBlock, 0, stream>>>(choose);
  return LaunchStatus("choose_tokens");
}

}  // namespace sculpt::cuda
