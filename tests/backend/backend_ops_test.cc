// Every Backend op on every backend this build has, against the CPU backend as reference, in the
// manner of llama.cpp's test-backend-ops: each op case below is written once, against the Backend
// interface only (so a backend's wrapper logic, such as the bias add after a GEMM or the upload
// that converts weights, is covered along with its kernels), and runs on every configuration in
// BackendConfigs(). A new op needs one case; a new backend one line in BackendConfigs().
//
// A configuration is compared with the CPU backend holding weights in the same dtype, on one
// thread. The CPU backend on three threads must match it bit for bit (its tiles do not depend on
// the thread count); another backend within the case's tolerance. Both must refuse the same
// invalid calls with INVALID_ARGUMENT (Backend validates every op's params once, ValidateOp).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cpu/cpu_backend.h"
#include "cpu/gemm.h"
#include "cpu/threads.h"
#include "model/backend.h"
#include "tests/support/random_data.h"
#include "tests/support/token_choice_cases.h"

#ifdef SCULPT_HAVE_CUDA
#include "cuda/cuda_backend.h"
#include "cuda/device_probe.cuh"
#endif

namespace sculpt {
namespace {

using testing::RandomFloats;

// How far a value may be from the reference's: of_scale times the largest |reference| of the
// output, plus relative times the element's own |reference|, plus absolute. All zero: bit for bit
// (NaN matches NaN).
struct Comparison {
  double of_scale = 0.0;
  double relative = 0.0;
  double absolute = 0.0;
  bool bitwise() const { return of_scale == 0.0 && relative == 0.0 && absolute == 0.0; }
};
constexpr Comparison kBitwise{};

// One output of a case, read back to the host.
struct Recorded {
  std::string name;
  std::vector<double> values;
  Comparison comparison;
};

// Empty when `actual` is within `comparison` of `expected`, else where and by how much not.
std::string Difference(const Recorded& expected, const std::vector<double>& actual,
                       const Comparison& comparison) {
  if (actual.size() != expected.values.size()) {
    return absl::StrCat(expected.name, ": ", actual.size(), " values, the reference has ",
                        expected.values.size());
  }
  double scale = 0.0;
  for (double value : expected.values) {
    if (std::isfinite(value)) scale = std::max(scale, std::fabs(value));
  }
  for (size_t i = 0; i < actual.size(); ++i) {
    const double want = expected.values[i];
    const double got = actual[i];
    bool same;
    if (std::isnan(want) || std::isnan(got)) {
      same = std::isnan(want) && std::isnan(got);
    } else if (comparison.bitwise() || !std::isfinite(want)) {
      same = got == want && std::signbit(got) == std::signbit(want);
    } else {
      const double allowed =
          comparison.of_scale * scale + comparison.relative * std::fabs(want) + comparison.absolute;
      same = std::fabs(got - want) <= allowed;
    }
    if (!same) {
      return absl::StrCat(expected.name, "[", i, "]: ", got, ", the reference ", want,
                          " (output scale ", scale, ")");
    }
  }
  return "";
}

// One run of a case on one backend: places its inputs in the backend's memory and reads its
// outputs back.
class OpRun {
 public:
  explicit OpRun(Backend& backend) : backend_(backend) {}

  Backend& backend() { return backend_; }
  DType weight_dtype() const { return backend_.weight_dtype(); }
  // Tolerances for results that depend on the weights' precision.
  Comparison ByWeights(Comparison f32, Comparison bf16) const {
    return weight_dtype() == DType::kBF16 ? bf16 : f32;
  }

  // F32 activations `offset` floats into their allocation (1 leaves every row unaligned).
  TensorView Input(const std::vector<float>& values, int64_t rows, int64_t cols, int offset = 0) {
    EXPECT_EQ(values.size(), static_cast<size_t>(rows * cols));
    const size_t bytes = (values.size() + offset) * sizeof(float);
    auto buffer = backend_.Allocate(std::max<size_t>(bytes, sizeof(float)));
    EXPECT_TRUE(buffer.ok()) << buffer.status();
    if (!buffer.ok()) return {};
    float* data = static_cast<float*>(buffer->data()) + offset;
    Ok(backend_.CopyToDevice(data, values.data(), values.size() * sizeof(float)), "upload");
    buffers_.push_back(std::move(*buffer));
    return TensorView{data, DType::kF32, rows, cols};
  }
  // Filled with NaN, so that an element the op does not write shows.
  TensorView Output(int64_t rows, int64_t cols, int offset = 0) {
    return Input(std::vector<float>(static_cast<size_t>(rows * cols),
                                    std::numeric_limits<float>::quiet_NaN()),
                 rows, cols, offset);
  }
  // Weights as a model's loader hands them over (fp32 values, converted to the backend's dtype).
  TensorView Weights(const std::vector<float>& values, int64_t rows, int64_t cols) {
    return Keep(backend_.LoadWeights(HostCopy(values), DType::kF32, values.size()), rows, cols);
  }
  TensorView GemmWeight(const std::vector<float>& values, int64_t rows, int64_t cols) {
    return Keep(backend_.LoadGemmWeight(HostCopy(values), DType::kF32, rows, cols), rows, cols);
  }

  // The op must succeed.
  void Ok(const absl::Status& status, const std::string& what) {
    EXPECT_TRUE(status.ok()) << backend_.name() << ", " << what << ": " << status;
  }
  // The op must refuse the call as invalid; both backends' refusals are recorded and compared.
  void Refused(const absl::Status& status, const std::string& what) {
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument)
        << backend_.name() << ", " << what << ": " << status;
    Record(absl::StrCat(what, " (status)"), {static_cast<double>(status.code())}, kBitwise);
  }

  void Read(const std::string& name, const TensorView& view, Comparison comparison) {
    Ok(backend_.Synchronize(), "synchronize");
    std::vector<float> host(static_cast<size_t>(view.num_elements()));
    Ok(backend_.CopyToHost(host.data(), view.data, host.size() * sizeof(float)), "download");
    Record(name, std::vector<double>(host.begin(), host.end()), comparison);
  }
  void Record(const std::string& name, std::vector<double> values, Comparison comparison) {
    results_.push_back({name, std::move(values), comparison});
  }
  const std::vector<Recorded>& results() const { return results_; }

 private:
  // Backends that read host weights in place borrow this copy; it lives as long as the run.
  const float* HostCopy(const std::vector<float>& values) {
    return host_weights_.emplace_back(values).data();
  }
  TensorView Keep(absl::StatusOr<DeviceBuffer> buffer, int64_t rows, int64_t cols) {
    EXPECT_TRUE(buffer.ok()) << buffer.status();
    if (!buffer.ok()) return {};
    const TensorView view = buffer->view(weight_dtype(), rows, cols);
    buffers_.push_back(std::move(*buffer));
    return view;
  }

  Backend& backend_;
  std::deque<std::vector<float>> host_weights_;
  std::vector<DeviceBuffer> buffers_;
  std::vector<Recorded> results_;
};

struct OpCase {
  std::string name;
  std::function<void(OpRun&)> run;
  // Whether the op reads weights; one that does not runs once per backend, not once per weight
  // dtype.
  bool reads_weights = true;
};

// ---- The cases ------------------------------------------------------------------------------

void EmbedCase(OpRun& run, int64_t d) {
  const int64_t vocab = 13;
  // Not rounded to bf16 beforehand: a bf16 backend's weight upload rounds them (to nearest even,
  // as torch does), and the rounding is part of what is compared. Row 5 holds a tie, an infinity,
  // a negative zero and the largest finite bf16.
  std::vector<float> table = RandomFloats(vocab * d, 1, 5.0f);
  const float specials[] = {1.0f + 1.0f / 256.0f, INFINITY, -0.0f, 3.38e38f};
  for (int64_t c = 0; c < std::min<int64_t>(d, 4); ++c) table[5 * d + c] = specials[c];
  const std::vector<int32_t> ids = {0, 12, 5, 5, 7};
  const TensorView out = run.Output(5, d);
  run.Ok(run.backend().Embed({ids, run.Weights(table, vocab, d), out}), "embed");
  run.Read("out", out, kBitwise);
  const std::vector<int32_t> outside = {3, 13};
  run.Refused(run.backend().Embed({outside, run.Weights(table, vocab, d), run.Output(2, d)}),
              "id outside the table");
}

void RmsNormCase(OpRun& run, int64_t cols) {
  const int64_t rows = 3;
  const TensorView x = run.Input(RandomFloats(rows * cols, 2, 3.0f), rows, cols);
  const TensorView weight = run.Weights(RandomFloats(cols, 3), 1, cols);
  const TensorView out = run.Output(rows, cols);
  run.Ok(run.backend().RmsNorm({x, weight, out, 1e-5f}), "rms_norm");
  // Only the order of the sum of squares may differ.
  run.Read("out", out, {.of_scale = 1e-5});
  run.Ok(run.backend().RmsNorm({x, weight, x, 1e-5f}), "rms_norm in place");
  run.Read("x", x, {.of_scale = 1e-5});
  run.Refused(run.backend().RmsNorm({x, run.Weights(RandomFloats(cols + 1, 3), 1, cols + 1),
                                     run.Output(rows, cols), 1e-5f}),
              "weight of another width");
}

void AddRmsNormCase(OpRun& run, int64_t cols) {
  const int64_t rows = 4;
  const TensorView x = run.Input(RandomFloats(rows * cols, 20, 2.0f), rows, cols);
  const TensorView residual = run.Input(RandomFloats(rows * cols, 21), rows, cols);
  const TensorView weight = run.Weights(RandomFloats(cols, 22), 1, cols);
  const TensorView out = run.Output(rows, cols);
  run.Ok(run.backend().AddRmsNorm({x, residual, weight, out, 1e-5f}), "add_rms_norm");
  run.Read("x", x, kBitwise);  // one rounding on every backend
  run.Read("out", out, {.of_scale = 1e-5});
  run.Refused(run.backend().AddRmsNorm({x, residual, weight, x, 1e-5f}), "out aliasing x");
}

void RopeCase(OpRun& run, int head_dim) {
  const int n_heads = 3;
  const int width = n_heads * head_dim;
  const std::vector<int32_t> offsets = {0, 1, 1, 8, 1031};
  const int64_t rows = offsets.back();
  const TensorView x = run.Input(RandomFloats(rows * width, 4), rows, width);
  run.Ok(run.backend().Rope({x, PackedLayout{offsets}, head_dim, 10000.0}), "rope");
  // cos/sin of angles up to ~1000 rad: a few ulp of the angle's magnitude.
  run.Read("x", x, {.of_scale = 1e-4});
  // Windows of cached canvases: each sequence's rows start deeper into its canvas.
  const std::vector<int32_t> first_positions = {0, 5, 1200, 31};
  const TensorView window = run.Input(RandomFloats(rows * width, 5), rows, width);
  run.Ok(run.backend().Rope({window, PackedLayout{offsets, first_positions}, head_dim, 10000.0}),
         "rope of windows");
  run.Read("window", window, {.of_scale = 1e-4});
}

void RopeRefusals(OpRun& run) {
  const std::vector<int32_t> offsets = {0, 2};
  const TensorView x = run.Input(RandomFloats(2 * 9, 4), 2, 9);
  run.Refused(run.backend().Rope({x, PackedLayout{offsets}, 3, 10000.0}), "odd head_dim");
  run.Refused(run.backend().Rope({x, PackedLayout{offsets}, 4, 10000.0}),
              "head_dim not dividing the width");
  const std::vector<int32_t> short_layout = {0, 1};
  const TensorView y = run.Input(RandomFloats(2 * 8, 4), 2, 8);
  run.Refused(run.backend().Rope({y, PackedLayout{short_layout}, 4, 10000.0}),
              "layout shorter than the tensor");
  const std::vector<int32_t> two_firsts = {0, 3}, negative_first = {-1};
  run.Refused(run.backend().Rope({y, PackedLayout{offsets, two_firsts}, 4, 10000.0}),
              "a first position for a sequence that is not there");
  run.Refused(run.backend().Rope({y, PackedLayout{offsets, negative_first}, 4, 10000.0}),
              "a negative first position");
}

void ElementwiseCase(OpRun& run) {
  const int64_t rows = 37;
  const int64_t cols = 101;
  const std::vector<float> gate_values = RandomFloats(rows * cols, 5, 4.0f);
  const std::vector<float> up_values = RandomFloats(rows * cols, 6);
  const TensorView gate = run.Input(gate_values, rows, cols);
  const TensorView up = run.Input(up_values, rows, cols);
  const TensorView swiglu = run.Output(rows, cols);
  run.Ok(run.backend().SwiGlu({gate, up, swiglu}), "swiglu");
  run.Read("swiglu", swiglu, {.of_scale = 1e-6});
  const TensorView sum = run.Output(rows, cols);
  run.Ok(run.backend().Add({gate, up, sum}), "add");
  run.Read("add", sum, kBitwise);
  run.Ok(run.backend().Add({up, gate, up}), "add in place");
  run.Read("add in place", up, kBitwise);
  run.Ok(run.backend().SwiGlu({gate, up, gate}), "swiglu in place");
  run.Read("swiglu in place", gate, {.of_scale = 1e-6});
  run.Refused(run.backend().Add({gate, run.Input(up_values, cols, rows), run.Output(rows, cols)}),
              "add of another shape");
}

void GatherRowsCase(OpRun& run) {
  const int64_t rows = 37;
  const int64_t cols = 101;
  const TensorView x = run.Input(RandomFloats(rows * cols, 5), rows, cols);
  const std::vector<int32_t> picked = {36, 0, 17, 17};
  const TensorView out = run.Output(4, cols);
  run.Ok(run.backend().GatherRows({picked, x, out}), "gather_rows");
  run.Read("out", out, kBitwise);
  const std::vector<int32_t> outside = {0, 37};
  run.Refused(run.backend().GatherRows({outside, x, run.Output(2, cols)}), "row outside x");
  // The scatter into a KV cache: the rows not written keep what they held.
  const TensorView cache = run.Input(RandomFloats(50 * cols, 6), 50, cols);
  const std::vector<int32_t> sources = {3, 4, 5, 36}, destinations = {49, 0, 20, 21};
  run.Ok(run.backend().GatherRows({sources, x, cache, destinations}), "scatter");
  run.Read("cache", cache, kBitwise);
  const std::vector<int32_t> two_sources = {0, 1}, past_the_cache = {0, 50};
  run.Refused(run.backend().GatherRows({two_sources, x, cache, past_the_cache}),
              "destination row outside out");
  run.Refused(run.backend().GatherRows({sources, x, cache, past_the_cache}),
              "fewer destinations than sources");
}

struct GemmShape {
  int64_t m, n, k;
};

void GemmCase(OpRun& run, GemmShape shape, bool with_bias) {
  const auto [m, n, k] = shape;
  const TensorView x = run.Input(RandomFloats(m * k, 9), m, k);
  const TensorView weight = run.GemmWeight(RandomFloats(n * k, 10, 0.05f), n, k);
  const TensorView bias = with_bias ? run.Weights(RandomFloats(n, 11), 1, n) : TensorView{};
  const TensorView out = run.Output(m, n);
  run.Ok(run.backend().Gemm({x, weight, bias, out}), "gemm");
  // fp32: full fp32 on every backend (no TF32), only the summation order differs. bf16: x
  // rounded to bf16 on every backend, fp32 accumulation.
  run.Read("out", out, run.ByWeights({.of_scale = 1e-5}, {.of_scale = 1e-4}));
}

void GemmRefusals(OpRun& run) {
  const TensorView x = run.Input(RandomFloats(3 * 8, 9), 3, 8);
  const TensorView weight = run.GemmWeight(RandomFloats(5 * 7, 10), 5, 7);
  run.Refused(run.backend().Gemm({x, weight, {}, run.Output(3, 5)}), "weight of another k");
  const TensorView good = run.GemmWeight(RandomFloats(5 * 8, 10), 5, 8);
  run.Refused(run.backend().Gemm({x, good, {}, run.Output(3, 4)}), "output of another n");
  run.Refused(
      run.backend().Gemm({x, good, run.Weights(RandomFloats(4, 11), 1, 4), run.Output(3, 5)}),
      "bias of another n");
}

struct Heads {
  int n_heads;
  int n_kv_heads;
  int head_dim;
};

// q and k drawn with standard deviation `qk_scale`, so logits have about qk_scale^2; with an
// `offset` of 1 float, no row is 16-byte aligned (a vectorised kernel must fall back).
void AttentionCase(OpRun& run, Heads heads, const std::vector<int32_t>& lengths,
                   float qk_scale = 1.0f, int offset = 0) {
  std::vector<int32_t> offsets = {0};
  for (int32_t length : lengths) offsets.push_back(offsets.back() + length);
  const int64_t n = offsets.back();
  const int q_width = heads.n_heads * heads.head_dim;
  const int kv_width = heads.n_kv_heads * heads.head_dim;
  const TensorView q = run.Input(RandomFloats(n * q_width, 1, qk_scale), n, q_width, offset);
  const TensorView k = run.Input(RandomFloats(n * kv_width, 2, qk_scale), n, kv_width, offset);
  const TensorView v = run.Input(RandomFloats(n * kv_width, 3), n, kv_width, offset);
  const TensorView out = run.Output(n, q_width, offset);
  AttentionParams params{
      q, k, v, out, PackedLayout{offsets}, heads.n_heads, heads.n_kv_heads, heads.head_dim};
  run.Ok(run.backend().Attention(params), "attention");
  // Both sides accumulate in fp32 in different orders (blocked GEMMs vs one chain per thread,
  // normalising before or after P V, exp vs exp2): a few ulps of the output's scale even over
  // 1500 keys or x900 logits; an indexing or masking mistake moves results by the scale itself.
  run.Read("out", out, {.of_scale = 2e-4});
}

// A KV-cached step: `query_lengths[s]` query rows of sequence s against its `kv_rows[s]` in a
// cache of `cache_rows` rows that holds every sequence's keys.
void CachedAttentionCase(OpRun& run, Heads heads, const std::vector<int32_t>& query_lengths,
                         const std::vector<RowRange>& kv_rows, int cache_rows) {
  std::vector<int32_t> offsets = {0};
  for (int32_t length : query_lengths) offsets.push_back(offsets.back() + length);
  const int64_t n = offsets.back();
  const int q_width = heads.n_heads * heads.head_dim;
  const int kv_width = heads.n_kv_heads * heads.head_dim;
  const TensorView q = run.Input(RandomFloats(n * q_width, 4), n, q_width);
  const TensorView k = run.Input(RandomFloats(cache_rows * kv_width, 5), cache_rows, kv_width);
  const TensorView v = run.Input(RandomFloats(cache_rows * kv_width, 6), cache_rows, kv_width);
  const TensorView out = run.Output(n, q_width);
  AttentionParams params{
      q,      k, v, out, PackedLayout{offsets}, heads.n_heads, heads.n_kv_heads, heads.head_dim,
      kv_rows};
  run.Ok(run.backend().Attention(params), "cached attention");
  run.Read("out", out, {.of_scale = 2e-4});
}

// Block-causal attention (AttentionParams::causal_blocks): sequences of `lengths` query rows from
// `first_positions`, each with its block size (0: every key); with `kv_rows`, against those rows
// of a cache of `cache_rows`, else against their own rows.
void BlockCausalAttentionCase(OpRun& run, Heads heads, const std::vector<int32_t>& lengths,
                              const std::vector<int32_t>& first_positions,
                              const std::vector<int32_t>& blocks,
                              const std::vector<RowRange>& kv_rows = {}, int cache_rows = 0) {
  std::vector<int32_t> offsets = {0};
  for (int32_t length : lengths) offsets.push_back(offsets.back() + length);
  const int64_t n = offsets.back();
  const int64_t keys = kv_rows.empty() ? n : cache_rows;
  const int q_width = heads.n_heads * heads.head_dim;
  const int kv_width = heads.n_kv_heads * heads.head_dim;
  const TensorView q = run.Input(RandomFloats(n * q_width, 7, 2.0f), n, q_width);
  const TensorView k = run.Input(RandomFloats(keys * kv_width, 8, 2.0f), keys, kv_width);
  const TensorView v = run.Input(RandomFloats(keys * kv_width, 9), keys, kv_width);
  const TensorView out = run.Output(n, q_width);
  const AttentionParams params{q,
                               k,
                               v,
                               out,
                               PackedLayout{offsets, first_positions},
                               heads.n_heads,
                               heads.n_kv_heads,
                               heads.head_dim,
                               kv_rows,
                               blocks};
  run.Ok(run.backend().Attention(params), "block-causal attention");
  run.Read("out", out, {.of_scale = 2e-4});
}

void AttentionRefusals(OpRun& run) {
  const std::vector<int32_t> offsets = {0, 4};
  const TensorView q = run.Input(RandomFloats(4 * 96, 1), 4, 96);
  const TensorView kv = run.Input(RandomFloats(4 * 64, 1), 4, 64);
  const TensorView out = run.Output(4, 96);
  run.Refused(run.backend().Attention({q, kv, kv, out, PackedLayout{offsets}, 3, 2, 32}),
              "n_heads not a multiple of n_kv_heads");
  run.Refused(run.backend().Attention({q, kv, kv, out, PackedLayout{offsets}, 3, 1, 0}),
              "head_dim 0");
  run.Refused(run.backend().Attention({q, q, q, out, PackedLayout{offsets}, 3, 2, 32}),
              "k of the wrong width");
  const std::vector<int32_t> decreasing = {0, 3, 2, 4};
  const TensorView one_head = run.Input(RandomFloats(4 * 32, 1), 4, 32);
  run.Refused(
      run.backend().Attention({q, one_head, one_head, out, PackedLayout{decreasing}, 3, 1, 32}),
      "decreasing offsets");
  const TensorView cache = run.Input(RandomFloats(10 * 64, 1), 10, 64);
  const std::vector<RowRange> outside = {{6, 5}};
  run.Refused(
      run.backend().Attention({q, cache, cache, out, PackedLayout{offsets}, 3, 2, 32, outside}),
      "keys past the cache");
  const std::vector<RowRange> empty = {{2, 0}};
  run.Refused(
      run.backend().Attention({q, cache, cache, out, PackedLayout{offsets}, 3, 2, 32, empty}),
      "queries without keys");
  const std::vector<RowRange> two = {{0, 4}, {4, 4}};
  run.Refused(run.backend().Attention({q, cache, cache, out, PackedLayout{offsets}, 3, 2, 32, two}),
              "a range per sequence");
  const std::vector<int32_t> negative_block = {-4};
  run.Refused(run.backend().Attention(
                  {q, kv, kv, out, PackedLayout{offsets}, 3, 1, 32, {}, negative_block}),
              "a negative causal block");
  const std::vector<int32_t> two_blocks = {4, 4};
  run.Refused(
      run.backend().Attention({q, kv, kv, out, PackedLayout{offsets}, 3, 1, 32, {}, two_blocks}),
      "a block size per sequence");
}

using testing::TokenChoiceCase;
using testing::TokenChoiceInputs;

// How far confidences may drift between backends (see the top of cuda/choose_tokens.cu): LLaDA's
// are float64 with another exp and summation order; Dream's float32 probabilities differ by a
// few ulps through expf, and its float64 neg-entropy sums those.
Comparison ConfidenceComparison(const TokenChoiceCase& c) {
  if (c.style == TokenChoiceStyle::kLLaDA) return {.relative = 1e-9, .absolute = 1e-300};
  switch (c.confidence) {
    case ConfidenceKind::kProbability:
      return {.relative = 1e-5, .absolute = 1e-30};
    case ConfidenceKind::kMargin:
      return {.absolute = 1e-5};  // a difference of two probabilities <= 1
    case ConfidenceKind::kNegEntropy:
      return {.relative = 1e-5, .absolute = 1e-5};
  }
  return kBitwise;
}

// The case's settings as a group whose rows start at row 0 (no unconditional rows yet).
TokenChoiceGroup GroupFor(const TokenChoiceCase& c, const TokenChoiceInputs& in,
                          std::span<int32_t> tokens, std::span<double> confidences) {
  TokenChoiceGroup group;
  group.cfg_scale = in.cfg_scale;
  group.temperature = c.temperature;
  group.top_p = c.top_p;
  group.top_k = c.top_k;
  group.style = c.style;
  group.confidence = c.confidence;
  if (c.suppress) group.suppressed_tokens = in.suppressed;
  group.seed = in.seed;
  group.step = in.step;
  group.positions = in.positions;
  group.tokens = tokens;
  group.confidences = confidences;
  return group;
}

// Log-probabilities ride along with the choice: the chosen token's and k alternatives', from
// the guided logits whatever temperature, filters and suppression do to the choice; the float64
// normalizer is summed in another order on each backend.
constexpr Comparison kLogprobComparison{.relative = 1e-12, .absolute = 1e-12};

// The case's rows in one tensor of logits: the conditional rows, then the unconditional ones.
// `top_logprobs` -1 asks for no log-probabilities.
void ChooseTokensCall(OpRun& run, const TokenChoiceCase& c, const TokenChoiceInputs& in,
                      const std::string& name, int top_logprobs = -1) {
  std::vector<float> logits = in.cond;
  if (c.guided) logits.insert(logits.end(), in.uncond.begin(), in.uncond.end());
  const int64_t rows = static_cast<int64_t>(logits.size()) / c.vocab;
  const TensorView view = run.Input(logits, rows, c.vocab);
  std::vector<int32_t> tokens(c.n_rows, -1);
  std::vector<double> confidences(c.n_rows, -1.0);
  std::vector<double> logprobs(c.n_rows, 1.0);
  std::vector<int32_t> top_ids(static_cast<size_t>(c.n_rows) * std::max(top_logprobs, 0), -2);
  std::vector<double> top_values(top_ids.size(), 1.0);
  TokenChoiceGroup group = GroupFor(c, in, tokens, confidences);
  if (c.guided) group.uncond_first_row = c.n_rows;
  if (top_logprobs >= 0) {
    group.top_logprobs = top_logprobs;
    group.logprobs = logprobs;
    group.top_ids = top_ids;
    group.top_values = top_values;
  }
  run.Ok(run.backend().ChooseTokens({view, {&group, 1}}), name);
  run.Record(name + " tokens", std::vector<double>(tokens.begin(), tokens.end()), kBitwise);
  run.Record(name + " confidences", confidences, ConfidenceComparison(c));
  if (top_logprobs < 0) return;
  run.Record(name + " logprobs", logprobs, kLogprobComparison);
  run.Record(name + " top ids", std::vector<double>(top_ids.begin(), top_ids.end()), kBitwise);
  run.Record(name + " top logprobs", top_values, kLogprobComparison);
}

void ChooseTokensEveryOption(OpRun& run, int n_rows, int vocab) {
  uint32_t seed = static_cast<uint32_t>(n_rows * 7919 + vocab);
  for (const TokenChoiceCase& c : testing::EveryOption(n_rows, vocab)) {
    ChooseTokensCall(run, c, testing::MakeInputs(c, seed++), c.Name());
  }
}

// LLaDA's real vocabulary and a Llama-sized one; guidance and suppression alternate so that each
// meets every filter.
void ChooseTokensLargeVocabulary(OpRun& run, int n_rows, int vocab) {
  uint32_t seed = 1000 + static_cast<uint32_t>(n_rows);
  int flags = 0;
  for (const TokenChoiceCase& option : testing::EveryOption(n_rows, vocab)) {
    if (option.guided || option.suppress) continue;
    if (option.style == TokenChoiceStyle::kLLaDA &&
        option.confidence != ConfidenceKind::kProbability) {
      continue;  // LLaDA's confidence is always the probability
    }
    TokenChoiceCase c = option;
    c.guided = (flags & 1) != 0;
    c.suppress = (flags & 2) != 0;
    ++flags;
    ChooseTokensCall(run, c, testing::MakeInputs(c, seed++), c.Name());
  }
}

void ChooseTokensExtremeLogits(OpRun& run) {
  uint32_t seed = 2000;
  for (const TokenChoiceCase& c : testing::EveryOption(7, 997)) {
    // +-1e4: exp overflows and underflows, and many tokens tie exactly at the top.
    ChooseTokensCall(run, c, testing::MakeInputs(c, seed++, /*extreme=*/true), c.Name());
    // All but token 500 suppressed, then every token: the lone token must win, and with none
    // left the choice is token 0 with a NaN probability.
    TokenChoiceCase lone = c;
    lone.suppress = true;
    TokenChoiceInputs in = testing::MakeInputs(lone, seed++);
    in.suppressed.clear();
    for (int v = 0; v < lone.vocab; ++v) {
      if (v != 500) in.suppressed.push_back(v);
    }
    ChooseTokensCall(run, lone, in, lone.Name() + " all but 500");
    in.suppressed.push_back(500);
    ChooseTokensCall(run, lone, in, lone.Name() + " all");
  }
}

// Several generations' groups in one call, each with other settings, their rows interleaved
// with other groups' unconditional rows: each row's choice is its own.
void ChooseTokensManyGroups(OpRun& run) {
  const int vocab = 997;
  // Every 17th option: each style, confidence, filter and guidance meets others in the call.
  const std::vector<TokenChoiceCase> options = testing::EveryOption(5, vocab);
  std::vector<TokenChoiceCase> cases;
  for (size_t i = 0; i < options.size(); i += 17) cases.push_back(options[i]);
  std::vector<TokenChoiceInputs> inputs;
  std::vector<float> logits;
  std::vector<TokenChoiceGroup> groups(cases.size());
  std::vector<std::vector<int32_t>> tokens(cases.size(), std::vector<int32_t>(5, -1));
  std::vector<std::vector<double>> confidences(cases.size(), std::vector<double>(5, -1.0));
  for (size_t g = 0; g < cases.size(); ++g)
    inputs.push_back(testing::MakeInputs(cases[g], static_cast<uint32_t>(50 + g)));
  for (size_t g = 0; g < cases.size(); ++g) {
    const TokenChoiceCase& c = cases[g];
    const TokenChoiceInputs& in = inputs[g];
    TokenChoiceGroup& group = groups[g];
    group = GroupFor(c, in, tokens[g], confidences[g]);
    group.seed = in.seed + g;
    if (c.guided) {
      group.uncond_first_row = static_cast<int64_t>(logits.size()) / vocab;
      logits.insert(logits.end(), in.uncond.begin(), in.uncond.end());
    }
    group.first_row = static_cast<int64_t>(logits.size()) / vocab;
    logits.insert(logits.end(), in.cond.begin(), in.cond.end());
  }
  const TensorView view = run.Input(logits, static_cast<int64_t>(logits.size()) / vocab, vocab);
  run.Ok(run.backend().ChooseTokens({view, groups}), "choose_tokens, many groups");
  for (size_t g = 0; g < cases.size(); ++g) {
    const std::string name = absl::StrCat("group ", g, " (", cases[g].Name(), ")");
    run.Record(name + " tokens", std::vector<double>(tokens[g].begin(), tokens[g].end()), kBitwise);
    run.Record(name + " confidences", confidences[g], ConfidenceComparison(cases[g]));
  }
}

// Every option with 0, 5 and 20 alternatives; a vocabulary smaller than 20 pads the list; ties
// at +-1e4.
void ChooseTokensLogprobs(OpRun& run) {
  uint32_t seed = 3000;
  int k_index = 0;
  for (const TokenChoiceCase& c : testing::EveryOption(9, 211)) {
    const int k = std::array{0, 5, 20}[k_index++ % 3];
    ChooseTokensCall(run, c, testing::MakeInputs(c, seed++),
                     absl::StrCat(c.Name(), " logprobs ", k), k);
  }
  for (const TokenChoiceCase& c : testing::EveryOption(3, 7)) {
    ChooseTokensCall(run, c, testing::MakeInputs(c, seed++, /*extreme=*/true),
                     c.Name() + " extreme logprobs 20", 20);
  }
}

// LLaDA's vocabulary, guided, with more rows than the device copies aside at once.
void ChooseTokensLargeVocabularyLogprobs(OpRun& run) {
  TokenChoiceCase large{.n_rows = 140, .vocab = 126464, .guided = true};
  ChooseTokensCall(run, large, testing::MakeInputs(large, 4000), large.Name() + " logprobs 5", 5);
}

void ChooseTokensRefusals(OpRun& run) {
  const int vocab = 10;
  const TensorView logits = run.Input(RandomFloats(2 * vocab, 1), 2, vocab);
  const std::vector<int32_t> positions = {1, 2, 3};
  std::vector<int32_t> tokens(3);
  std::vector<double> confidences(3);
  TokenChoiceGroup group;
  group.positions = positions;
  group.tokens = tokens;
  group.confidences = confidences;
  run.Refused(run.backend().ChooseTokens({logits, {&group, 1}}), "rows outside the logits");
  group.positions = std::span(positions).first(2);
  group.tokens = std::span(tokens).first(2);
  group.confidences = std::span(confidences).first(2);
  group.temperature = -1.0;
  run.Refused(run.backend().ChooseTokens({logits, {&group, 1}}), "negative temperature");
  group.temperature = 0.0;
  group.top_k = -1;
  run.Refused(run.backend().ChooseTokens({logits, {&group, 1}}), "negative top_k");
  group.top_k = 0;
  group.tokens = std::span(tokens).first(1);
  run.Refused(run.backend().ChooseTokens({logits, {&group, 1}}), "fewer tokens than positions");
  group.tokens = std::span(tokens).first(2);
  std::vector<double> logprobs(2);
  std::vector<int32_t> top_ids(2 * 21);
  std::vector<double> top_values(2 * 21);
  group.top_logprobs = 21;
  group.logprobs = logprobs;
  group.top_ids = top_ids;
  group.top_values = top_values;
  run.Refused(run.backend().ChooseTokens({logits, {&group, 1}}), "more than 20 alternatives");
  group.top_logprobs = 3;
  run.Refused(run.backend().ChooseTokens({logits, {&group, 1}}), "alternatives of another size");
}

std::string Label(int64_t value) { return absl::StrCat(value); }

std::vector<OpCase> OpCases() {
  std::vector<OpCase> cases;
  auto add = [&](std::string name, std::function<void(OpRun&)> run) {
    cases.push_back({std::move(name), std::move(run)});
  };
  // Ops on activations only.
  auto add_unweighted = [&](std::string name, std::function<void(OpRun&)> run) {
    cases.push_back({std::move(name), std::move(run), /*reads_weights=*/false});
  };
  for (int64_t d : {1, 96, 257}) add("Embed_d" + Label(d), [d](OpRun& r) { EmbedCase(r, d); });
  for (int64_t cols : {1, 7, 96, 4096, 5003}) {
    add("RmsNorm_" + Label(cols), [cols](OpRun& r) { RmsNormCase(r, cols); });
  }
  for (int64_t cols : {1, 96, 4096, 5003}) {
    add("AddRmsNorm_" + Label(cols), [cols](OpRun& r) { AddRmsNormCase(r, cols); });
  }
  for (int head_dim : {2, 24, 64, 128}) {
    add_unweighted("Rope_head" + Label(head_dim), [head_dim](OpRun& r) { RopeCase(r, head_dim); });
  }
  add_unweighted("Rope_refusals", RopeRefusals);
  add_unweighted("SwiGluAndAdd", ElementwiseCase);
  add_unweighted("GatherRows", GatherRowsCase);
  for (const GemmShape shape : {GemmShape{1, 1, 1}, GemmShape{1, 997, 96}, GemmShape{7, 288, 96},
                                GemmShape{131, 257, 509}, GemmShape{513, 1024, 4096}}) {
    const std::string name = absl::StrCat("Gemm_", shape.m, "x", shape.n, "x", shape.k);
    add(name, [shape](OpRun& r) { GemmCase(r, shape, false); });
    if (shape.k < 4096) add(name + "_bias", [shape](OpRun& r) { GemmCase(r, shape, true); });
  }
  add("Gemm_refusals", GemmRefusals);
  struct Shape {
    std::string name;
    Heads heads;
    std::vector<int32_t> lengths;
    float qk_scale = 1.0f;
    int offset = 0;
  };
  // The CUDA kernel's fast paths are head_dim 64 and 128 with 16-byte aligned rows; everything
  // else takes its generic path.
  const std::vector<Shape> shapes = {
      {"Dim64SingleToken", {4, 4, 64}, {1}},
      {"Dim128EmptyAndFive", {8, 4, 128}, {0, 5}},
      {"Dim24Gqa4Mixed", {8, 2, 24}, {7, 131, 1, 64}},
      {"Dim32Gqa8TwoLong", {8, 1, 32}, {257, 500}},
      {"Dim64Gqa2Mixed", {8, 4, 64}, {7, 131, 1, 64}},
      {"Dim128Gqa8TwoLong", {8, 1, 128}, {257, 500}},
      {"Dim80Gqa2Mixed", {4, 2, 80}, {7, 131, 1, 64}},
      {"Dim72Gqa8EmptyAndFive", {16, 2, 72}, {0, 5}},
      {"Dim7", {3, 1, 7}, {7, 131, 1, 64}},
      {"Dim1", {2, 1, 1}, {1, 33}},
      {"Dim256", {2, 1, 256}, {257, 33}},
      {"Dim128LongSequence", {4, 2, 128}, {1500}},
      {"Dim32LongSequence", {4, 4, 32}, {1499}},
      // Logits of a thousand or more: an exp without the running max overflows.
      {"Dim64ExtremeLogits", {4, 2, 64}, {257, 500}, 30.0f},
      {"Dim24ExtremeLogits", {4, 1, 24}, {7, 131, 1, 64}, 30.0f},
      {"Dim64Unaligned", {4, 2, 64}, {7, 131, 1, 64}, 1.0f, 1},
      {"Dim128Unaligned", {4, 1, 128}, {7, 131, 1, 64}, 1.0f, 1},
  };
  for (const Shape& shape : shapes) {
    add_unweighted("Attention_" + shape.name, [shape](OpRun& r) {
      AttentionCase(r, shape.heads, shape.lengths, shape.qk_scale, shape.offset);
    });
  }
  // Prefix-cache-like (block + suffix of a long canvas), dual-cache-like (a block of 32 of 1200
  // keys), an empty sequence, ranges out of order and overlapping, unaligned widths.
  add_unweighted("CachedAttention_Dim64Gqa4", [](OpRun& r) {
    CachedAttentionCase(r, {8, 2, 64}, {32, 0, 96, 1}, {{0, 160}, {0, 0}, {160, 1200}, {100, 61}},
                        1400);
  });
  add_unweighted("CachedAttention_Dim128Gqa8", [](OpRun& r) {
    CachedAttentionCase(r, {8, 1, 128}, {32, 32}, {{700, 300}, {0, 1000}}, 1000);
  });
  add_unweighted("CachedAttention_Dim24OneKey", [](OpRun& r) {
    CachedAttentionCase(r, {3, 1, 24}, {5, 17}, {{9, 1}, {3, 7}}, 10);
  });
  // Block diffusion: a prefill with its first block in blocks of 4 and 32 (query tiles of the
  // CUDA kernel that end inside a block), a non-causal sequence beside them; cached steps of one
  // and two blocks against 1000 keys, and a head_dim without a fast path.
  add_unweighted("BlockCausalAttention_Dim64Prefill", [](OpRun& r) {
    BlockCausalAttentionCase(r, {8, 2, 64}, {13, 300, 70, 1}, {0, 0, 5, 9}, {4, 32, 0, 4});
  });
  add_unweighted("BlockCausalAttention_Dim128CachedBlocks", [](OpRun& r) {
    BlockCausalAttentionCase(r, {8, 1, 128}, {4, 8, 32}, {36, 8, 960}, {4, 4, 32},
                             {{0, 40}, {100, 16}, {0, 1000}}, 1000);
  });
  add_unweighted("BlockCausalAttention_Dim24CachedAndOwn", [](OpRun& r) {
    BlockCausalAttentionCase(r, {3, 1, 24}, {5, 17}, {6, 0}, {8, 4}, {{9, 16}, {30, 17}}, 60);
  });
  add_unweighted("Attention_refusals", AttentionRefusals);
  for (auto [rows, vocab] : {std::pair{1, 1}, std::pair{7, 2}, std::pair{33, 997}}) {
    add_unweighted(absl::StrCat("ChooseTokens_EveryOption_", rows, "x", vocab),
                   [rows, vocab](OpRun& r) { ChooseTokensEveryOption(r, rows, vocab); });
  }
  for (auto [rows, vocab] : {std::pair{33, 32000}, std::pair{7, 126464}, std::pair{1, 126464}}) {
    add_unweighted(absl::StrCat("ChooseTokens_LargeVocabulary_", rows, "x", vocab),
                   [rows, vocab](OpRun& r) { ChooseTokensLargeVocabulary(r, rows, vocab); });
  }
  add_unweighted("ChooseTokens_ExtremeLogits", ChooseTokensExtremeLogits);
  add_unweighted("ChooseTokens_ManyGroupsInOneCall", ChooseTokensManyGroups);
  add_unweighted("ChooseTokens_Logprobs", ChooseTokensLogprobs);
  add_unweighted("ChooseTokens_LargeVocabulary_Logprobs_140x126464",
                 ChooseTokensLargeVocabularyLogprobs);
  add_unweighted("ChooseTokens_refusals", ChooseTokensRefusals);
  return cases;
}

// ---- The backends ---------------------------------------------------------------------------

struct BackendConfig {
  std::string name;
  DType weight_dtype = DType::kF32;
  bool int8_gemm_weights = false;
  int cpu_threads = 1;  // while a CPU configuration runs
  bool cuda = false;
  // Runs the cases that read no weights too (one configuration of each backend does).
  bool runs_unweighted = true;
  // Bit for bit equal to the reference: the same backend on other threads.
  bool exact() const { return !cuda; }
};

std::vector<BackendConfig> BackendConfigs() {
  std::vector<BackendConfig> configs = {
      {"cpu_f32_3threads", DType::kF32, false, 3},
      {"cpu_bf16_3threads", DType::kBF16, false, 3, false, false},
      {"cpu_int8_3threads", DType::kF32, true, 3, false, false},
  };
#ifdef SCULPT_HAVE_CUDA
  configs.push_back({"cuda_f32", DType::kF32, false, 1, true});
  configs.push_back({"cuda_bf16", DType::kBF16, false, 1, true, false});
#endif
  return configs;
}

void PrintTo(const BackendConfig& config, std::ostream* os) { *os << config.name; }

// Backends live for the whole test program, one per configuration, as a server's does.
Backend* GetBackend(const BackendConfig& config) {
  static std::map<std::string, std::unique_ptr<Backend>> backends;
  std::unique_ptr<Backend>& backend = backends[config.name];
  if (backend != nullptr) return backend.get();
  absl::StatusOr<std::unique_ptr<Backend>> made = absl::UnimplementedError("not built");
  if (!config.cuda) {
    made = MakeCpuBackend(
        {.weight_dtype = config.weight_dtype, .int8_gemm_weights = config.int8_gemm_weights});
  }
#ifdef SCULPT_HAVE_CUDA
  if (config.cuda) {
    made = MakeCudaBackend(
        {.device = 0, .weight_dtype = config.weight_dtype, .arena_bytes = size_t{1} << 30});
  }
#endif
  EXPECT_TRUE(made.ok()) << config.name << ": " << made.status();
  if (!made.ok()) return nullptr;
  backend = std::move(*made);
  return backend.get();
}

// Why a configuration cannot run on this machine; empty when it can.
std::string Unavailable(const BackendConfig& config) {
  if (config.int8_gemm_weights && !cpu::GemmRunner().HasExactInt8()) {
    return "this CPU has no int8 GEMM kernels with exact sums (AVX512-VNNI or AMX)";
  }
#ifdef SCULPT_HAVE_CUDA
  if (config.cuda && cuda::DeviceCount() == 0) return "no CUDA device on this machine";
#endif
  return "";
}

// The CPU backend with the configuration's weights, on one thread.
BackendConfig ReferenceFor(const BackendConfig& config) {
  return {absl::StrCat("reference_", std::string(DTypeName(config.weight_dtype)),
                       config.int8_gemm_weights ? "_int8" : ""),
          config.weight_dtype, config.int8_gemm_weights, 1};
}

std::vector<Recorded> RunCase(const BackendConfig& config, const OpCase& op_case) {
  Backend* backend = GetBackend(config);
  if (backend == nullptr) return {};
  if (!config.cuda) SetCpuThreads(config.cpu_threads);
  OpRun run(*backend);
  op_case.run(run);
  return run.results();
}

const std::vector<OpCase>& AllCases() {
  static const std::vector<OpCase> cases = OpCases();
  return cases;
}

// Every configuration with every case it runs.
std::vector<std::tuple<BackendConfig, size_t>> Instances() {
  std::vector<std::tuple<BackendConfig, size_t>> instances;
  for (const BackendConfig& config : BackendConfigs()) {
    for (size_t i = 0; i < AllCases().size(); ++i) {
      if (AllCases()[i].reads_weights || config.runs_unweighted) instances.emplace_back(config, i);
    }
  }
  return instances;
}

class OpParityTest : public ::testing::TestWithParam<std::tuple<BackendConfig, size_t>> {};

TEST_P(OpParityTest, MatchesTheReference) {
  const auto& [config, case_index] = GetParam();
  if (const std::string reason = Unavailable(config); !reason.empty()) GTEST_SKIP() << reason;
  const OpCase& op_case = AllCases()[case_index];
  const std::vector<Recorded> expected = RunCase(ReferenceFor(config), op_case);
  const std::vector<Recorded> actual = RunCase(config, op_case);
  ASSERT_FALSE(expected.empty()) << "the case records nothing";
  ASSERT_EQ(actual.size(), expected.size());
  int mismatches = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_EQ(actual[i].name, expected[i].name);
    const Comparison comparison = config.exact() ? kBitwise : expected[i].comparison;
    const std::string difference = Difference(expected[i], actual[i].values, comparison);
    if (!difference.empty() && ++mismatches <= 10)
      ADD_FAILURE() << config.name << ": " << difference;
  }
  EXPECT_EQ(mismatches, 0) << "outputs that differ from the reference";
}

INSTANTIATE_TEST_SUITE_P(
    EveryBackend, OpParityTest, ::testing::ValuesIn(Instances()),
    [](const ::testing::TestParamInfo<std::tuple<BackendConfig, size_t>>& param_info) {
      return std::get<0>(param_info.param).name + "_" +
             AllCases()[std::get<1>(param_info.param)].name;
    });

// The comparison itself: it must see a difference where there is one.
TEST(OpParityComparisonTest, SeesOneUlpBitwiseAndAnErrorBeyondTheTolerance) {
  const Recorded reference{"out", {1.0, -2.0, 0.0, NAN, INFINITY}, kBitwise};
  EXPECT_EQ(Difference(reference, reference.values, kBitwise), "");
  std::vector<double> ulp = reference.values;
  ulp[1] = std::nextafter(-2.0f, 0.0f);
  EXPECT_NE(Difference(reference, ulp, kBitwise), "");
  EXPECT_EQ(Difference(reference, ulp, {.of_scale = 1e-6}), "");
  std::vector<double> far = reference.values;
  far[0] = 1.01;
  EXPECT_NE(Difference(reference, far, {.of_scale = 1e-3}), "");
  std::vector<double> signed_zero = reference.values;
  signed_zero[2] = -0.0;
  EXPECT_NE(Difference(reference, signed_zero, kBitwise), "");
  std::vector<double> unwritten = reference.values;
  unwritten[0] = NAN;  // an output an op did not write stays NaN
  EXPECT_NE(Difference(reference, unwritten, {.of_scale = 1.0}), "");
  std::vector<double> finite = reference.values;
  finite[3] = 0.0;
  EXPECT_NE(Difference(reference, finite, {.of_scale = 1.0}), "");
  EXPECT_NE(Difference(reference, {1.0}, kBitwise), "");
}

}  // namespace
}  // namespace sculpt
