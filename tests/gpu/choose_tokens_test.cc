// cuda::LaunchChooseTokens against its CPU twin cpu::ChooseTokens with fixed seeds on awkward
// shapes, every style, confidence, temperature and filter; batch invariance with a negative
// control. The Gumbel paths at temperature > 0 also prove the device's Philox draws.
#include "cuda/choose_tokens.cuh"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/rng.h"
#include "cpu/cpu_ops.h"
#include "tests/gpu/device_array.h"

namespace sculpt {
namespace {

struct Case {
  int n_rows = 1;
  int vocab = 1;
  TokenChoiceStyle style = TokenChoiceStyle::kLLaDA;
  ConfidenceKind confidence = ConfidenceKind::kProbability;
  double temperature = 0.0;
  double top_p = 1.0;
  int top_k = 0;
  bool guided = false;
  bool suppress = false;

  std::string Name() const {
    return absl::StrCat(n_rows, "x", vocab, style == TokenChoiceStyle::kDream ? " dream" : " llada",
                        " confidence=", static_cast<int>(confidence), " t=", temperature,
                        " top_p=", top_p, " top_k=", top_k, guided ? " cfg" : "",
                        suppress ? " suppressed" : "");
  }
};

struct Inputs {
  std::vector<float> cond;    // [n_rows, vocab]
  std::vector<float> uncond;  // [n_rows, vocab]
  std::vector<int32_t> positions;
  std::vector<int32_t> suppressed;
  double cfg_scale = 1.5;
  uint64_t seed = 0x5eed5eed1234ull;
  uint32_t step = 7;
};

struct Outputs {
  std::vector<int32_t> tokens;
  std::vector<double> confidences;
};

// kFlat: N(0, 2) everywhere. kPeaked: up to 8 tokens get 20 + N(0, 1.5) on top, so nearly all
// the mass sits in a few tokens and top_p's cut falls between them, not among 1e5 tiny ones.
// kExtreme: +-1e4 only, so probabilities are exactly 0 or 1/k and ties are exact.
enum class RowKind { kFlat, kPeaked, kExtreme };

void FillRow(RowKind kind, std::mt19937& generator, float* cond, float* uncond, int vocab) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> token(0, vocab - 1);
  for (int v = 0; v < vocab; ++v) {
    if (kind == RowKind::kExtreme) {
      cond[v] = generator() % 2 ? 1e4f : -1e4f;
      uncond[v] = generator() % 2 ? 1e4f : -1e4f;
    } else {
      cond[v] = 2.0f * normal(generator);
      uncond[v] = cond[v] + 0.5f * normal(generator);
    }
  }
  if (kind != RowKind::kPeaked) return;
  for (int i = 0; i < std::min(vocab, 8); ++i) {
    const int v = token(generator);
    cond[v] += 20.0f + 1.5f * normal(generator);
    uncond[v] = cond[v] + 0.5f * normal(generator);
  }
}

// The row the CPU's choice starts from: guided, suppressed and tempered in float32, as
// cpu/choose_tokens.cc does it.
std::vector<float> PreparedRow(const Case& c, const Inputs& in, int r) {
  const int vocab = c.vocab;
  const float guidance = static_cast<float>(in.cfg_scale + 1.0);
  std::vector<float> row(in.cond.begin() + r * vocab, in.cond.begin() + (r + 1) * vocab);
  if (c.guided) {
    for (int v = 0; v < vocab; ++v) {
      const float u = in.uncond[r * vocab + v];
      row[v] = u + guidance * (row[v] - u);
    }
  }
  if (c.suppress) {
    for (int32_t token : in.suppressed) {
      if (token >= 0 && token < vocab) row[token] = -INFINITY;
    }
  }
  if (c.style == TokenChoiceStyle::kDream && c.temperature > 0.0) {
    for (float& logit : row) logit /= static_cast<float>(c.temperature);
  }
  return row;
}

// Whether every discrete decision on the row is far from a near-tie, where CUDA's expf, exp and
// log (an ulp or two from glibc's) could tip it: top_p's cumulative sum crossing top_p, Dream's
// argmax of float32 probabilities, and Dream's Gumbel-max over log p. Exact ties are fine: both
// sides then compute identical values and take the lowest index. LLaDA's decisions are float
// comparisons or float64 scores and need no margin.
bool IsDecisive(const Case& c, const Inputs& in, int r) {
  const std::vector<float> row = PreparedRow(c, in, r);
  const int vocab = c.vocab;
  std::vector<int> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return row[a] > row[b]; });
  const double max_logit = row[order[0]];
  if (max_logit == -INFINITY) return true;  // all suppressed: nothing to decide
  if (c.top_p < 1.0) {
    // float64 here, float32 on both backends: they differ by far less than the margin, since
    // the peaked rows keep the mass that float32 sums lose below 1e-3.
    constexpr double kMargin = 0.01;
    double total = 0.0;
    for (float logit : row) total += std::exp(logit - max_logit);
    double cumulative = 0.0;
    for (int v : order) {
      const double before = cumulative;
      cumulative += std::exp(row[v] - max_logit) / total;
      if (cumulative > c.top_p) {
        if (cumulative - c.top_p < kMargin || c.top_p - before < kMargin) return false;
        break;
      }
    }
  }
  if (c.style == TokenChoiceStyle::kDream && c.temperature == 0.0) {
    for (int i = 1; i < vocab; ++i) {
      if (row[order[i]] == row[order[0]]) continue;
      if (max_logit - row[order[i]] < 1e-3) return false;
      break;
    }
  }
  if (c.style == TokenChoiceStyle::kDream && c.temperature > 0.0) {
    // The kept tokens are a prefix of `order`; the winner of every prefix must win clearly.
    const auto position = static_cast<uint32_t>(in.positions[r]);
    double best = -INFINITY, second = -INFINITY;
    for (int i = 0; i < vocab && row[order[i]] > -INFINITY; ++i) {
      const int v = order[i];
      const double u = UniformOpen01(in.seed, in.step, position, v, RngStream::kDreamSample);
      const double score = row[v] - std::log(-std::log(u));
      if (score > best) {
        second = best;
        best = score;
      } else if (score > second) {
        second = score;
      }
      if (i > 0 && best - second < 1e-4) return false;
    }
  }
  return true;
}

// Fixed-seed inputs for `c`; a row that would be a near-tie (IsDecisive) is drawn again.
Inputs MakeInputs(const Case& c, uint32_t seed, bool extreme = false) {
  Inputs in;
  const int vocab = c.vocab;
  in.cond.resize(static_cast<size_t>(c.n_rows) * vocab);
  in.uncond.resize(in.cond.size());
  for (int r = 0; r < c.n_rows; ++r) in.positions.push_back(3 * r + 1);
  in.suppressed = {2, vocab - 1, vocab + 5, -1};  // out-of-vocab ids are ignored
  std::mt19937 generator(seed);
  for (int r = 0; r < c.n_rows; ++r) {
    RowKind kind = r % 2 ? RowKind::kPeaked : RowKind::kFlat;
    if (c.top_p < 1.0) kind = RowKind::kPeaked;
    if (extreme) kind = RowKind::kExtreme;
    int attempts = 0;
    do {
      FillRow(kind, generator, &in.cond[r * vocab], &in.uncond[r * vocab], vocab);
      if (extreme) break;
      EXPECT_LT(++attempts, 100) << "no decisive row for " << c.Name();
    } while (!IsDecisive(c, in, r) && attempts < 100);
  }
  return in;
}

Outputs RunCpu(const Case& c, const Inputs& in) {
  std::vector<float> logits = in.cond;  // the op may overwrite it
  std::vector<float> uncond = in.uncond;
  Outputs out{std::vector<int32_t>(c.n_rows), std::vector<double>(c.n_rows)};
  // The conditional rows, then the unconditional ones, in one tensor of logits.
  logits.insert(logits.end(), uncond.begin(), uncond.end());
  TokenChoiceGroup params;
  if (c.guided) params.uncond_first_row = c.n_rows;
  params.cfg_scale = in.cfg_scale;
  params.temperature = c.temperature;
  params.top_p = c.top_p;
  params.top_k = c.top_k;
  params.style = c.style;
  params.confidence = c.confidence;
  if (c.suppress) params.suppressed_tokens = in.suppressed;
  params.seed = in.seed;
  params.step = in.step;
  params.positions = in.positions;
  params.tokens = out.tokens;
  params.confidences = out.confidences;
  const int64_t rows = static_cast<int64_t>(logits.size()) / c.vocab;
  cpu::TokenChoiceScratch scratch;
  const absl::Status status = cpu::ChooseTokens(
      {TensorView{logits.data(), DType::kF32, rows, c.vocab}, {&params, 1}}, scratch);
  EXPECT_TRUE(status.ok()) << status;
  return out;
}

Outputs RunGpu(const Case& c, const Inputs& in) {
  testing::DeviceArray<float> logits(in.cond);
  testing::DeviceArray<float> uncond(c.guided ? in.uncond : std::vector<float>{});
  testing::DeviceArray<int32_t> suppressed(c.suppress ? in.suppressed : std::vector<int32_t>{});
  testing::DeviceArray<int32_t> positions(in.positions);
  testing::DeviceArray<int32_t> tokens(c.n_rows);
  testing::DeviceArray<double> confidences(c.n_rows);
  testing::DeviceArray<uint8_t> scratch(cuda::ChooseTokensScratchBytes(c.n_rows, c.vocab));
  cuda::ChooseTokensKernelParams params;
  params.logits = logits.data();
  params.uncond_logits = c.guided ? uncond.data() : nullptr;
  params.n_rows = c.n_rows;
  params.vocab = c.vocab;
  params.cfg_scale = in.cfg_scale;
  params.temperature = c.temperature;
  params.top_p = c.top_p;
  params.top_k = c.top_k;
  params.style = c.style;
  params.confidence = c.confidence;
  params.suppressed_tokens = suppressed.data();
  params.n_suppressed = c.suppress ? static_cast<int32_t>(in.suppressed.size()) : 0;
  params.seed = in.seed;
  params.step = in.step;
  params.positions = positions.data();
  params.tokens = tokens.data();
  params.confidences = confidences.data();
  params.scratch = scratch.data();
  params.scratch_bytes = scratch.size();
  const absl::Status status = cuda::LaunchChooseTokens(params, nullptr);
  EXPECT_TRUE(status.ok()) << status;
  return {tokens.ToHost(), confidences.ToHost()};
}

// How far the confidences may drift (see the top of cuda/choose_tokens.cu): LLaDA's are float64
// with another exp and summation order; Dream's float32 probabilities differ by a few ulps
// through expf, and its float64 neg-entropy sums those.
double Tolerance(const Case& c, double expected) {
  if (c.style == TokenChoiceStyle::kLLaDA) return 1e-9 * std::fabs(expected) + 1e-300;
  switch (c.confidence) {
    case ConfidenceKind::kProbability:
      return 1e-5 * std::fabs(expected) + 1e-30;
    case ConfidenceKind::kMargin:
      return 1e-5;  // a difference of two probabilities <= 1
    case ConfidenceKind::kNegEntropy:
      return 1e-5 * (1.0 + std::fabs(expected));
  }
  return 0.0;
}

void ExpectSameChoices(const Case& c, const Outputs& gpu, const Outputs& cpu) {
  ASSERT_EQ(gpu.tokens.size(), cpu.tokens.size());
  for (int r = 0; r < c.n_rows; ++r) {
    EXPECT_EQ(gpu.tokens[r], cpu.tokens[r]) << c.Name() << ", row " << r;
    if (std::isnan(cpu.confidences[r])) {
      EXPECT_TRUE(std::isnan(gpu.confidences[r])) << c.Name() << ", row " << r;
      continue;
    }
    EXPECT_NEAR(gpu.confidences[r], cpu.confidences[r], Tolerance(c, cpu.confidences[r]))
        << c.Name() << ", row " << r;
  }
}

// Every style x confidence x temperature x top_p x top_k x guidance x suppression.
std::vector<Case> EveryOption(int n_rows, int vocab) {
  std::vector<Case> cases;
  for (TokenChoiceStyle style : {TokenChoiceStyle::kLLaDA, TokenChoiceStyle::kDream}) {
    for (ConfidenceKind confidence :
         {ConfidenceKind::kProbability, ConfidenceKind::kMargin, ConfidenceKind::kNegEntropy}) {
      for (double temperature : {0.0, 0.7}) {
        for (double top_p : {1.0, 0.9}) {
          for (int top_k : {0, 50}) {
            for (int flags = 0; flags < 4; ++flags) {
              cases.push_back(Case{n_rows, vocab, style, confidence, temperature, top_p, top_k,
                                   (flags & 1) != 0, (flags & 2) != 0});
            }
          }
        }
      }
    }
  }
  return cases;
}

TEST(ChooseTokensTest, MatchesTheCpuOnEveryOptionForSmallVocabularies) {
  SCULPT_SKIP_WITHOUT_GPU();
  uint32_t seed = 1;
  for (auto [n_rows, vocab] : {std::pair{1, 1}, std::pair{7, 2}, std::pair{33, 997}}) {
    for (const Case& c : EveryOption(n_rows, vocab)) {
      const Inputs in = MakeInputs(c, seed++);
      ExpectSameChoices(c, RunGpu(c, in), RunCpu(c, in));
    }
  }
}

TEST(ChooseTokensTest, MatchesTheCpuOnLargeVocabularies) {
  SCULPT_SKIP_WITHOUT_GPU();
  uint32_t seed = 1000;
  // LLaDA's real vocabulary and a Llama-sized one; guidance and suppression alternate so each is
  // met with every filter.
  for (auto [n_rows, vocab] : {std::pair{33, 32000}, std::pair{7, 126464}, std::pair{1, 126464}}) {
    int flags = 0;
    for (const Case& option : EveryOption(n_rows, vocab)) {
      if (option.guided || option.suppress) continue;
      if (option.style == TokenChoiceStyle::kLLaDA &&
          option.confidence != ConfidenceKind::kProbability) {
        continue;  // LLaDA's confidence is always the probability
      }
      Case c = option;
      c.guided = (flags & 1) != 0;
      c.suppress = (flags & 2) != 0;
      ++flags;
      const Inputs in = MakeInputs(c, seed++);
      ExpectSameChoices(c, RunGpu(c, in), RunCpu(c, in));
    }
  }
}

TEST(ChooseTokensTest, MatchesTheCpuOnExtremeLogits) {
  SCULPT_SKIP_WITHOUT_GPU();
  uint32_t seed = 2000;
  for (const Case& c : EveryOption(7, 997)) {
    // +-1e4: exp overflows and underflows, and many tokens tie exactly at the top.
    const Inputs in = MakeInputs(c, seed++, /*extreme=*/true);
    ExpectSameChoices(c, RunGpu(c, in), RunCpu(c, in));

    // All but token 500 suppressed: it must win with probability 1.
    Case lone = c;
    lone.suppress = true;
    Inputs lone_in = MakeInputs(lone, seed++);
    lone_in.suppressed.clear();
    for (int v = 0; v < lone.vocab; ++v) {
      if (v != 500) lone_in.suppressed.push_back(v);
    }
    const Outputs lone_gpu = RunGpu(lone, lone_in);
    ExpectSameChoices(lone, lone_gpu, RunCpu(lone, lone_in));
    for (int r = 0; r < lone.n_rows; ++r) EXPECT_EQ(lone_gpu.tokens[r], 500) << lone.Name();

    // Everything suppressed: token 0 and a NaN probability, as on the CPU.
    lone_in.suppressed.push_back(500);
    ExpectSameChoices(lone, RunGpu(lone, lone_in), RunCpu(lone, lone_in));
  }
}

TEST(ChooseTokensTest, ARowsChoiceDoesNotDependOnTheBatch) {
  SCULPT_SKIP_WITHOUT_GPU();
  for (TokenChoiceStyle style : {TokenChoiceStyle::kLLaDA, TokenChoiceStyle::kDream}) {
    const Case batch{33, 997, style, ConfidenceKind::kNegEntropy, 0.7, 0.9, 50, true, true};
    const Inputs in = MakeInputs(batch, 3000);
    const Outputs together = RunGpu(batch, in);
    const Outputs again = RunGpu(batch, in);
    EXPECT_EQ(together.tokens, again.tokens);
    EXPECT_EQ(together.confidences, again.confidences);

    Case single = batch;
    single.n_rows = 1;
    int moved = 0;  // negative control: another RNG key must change some choices
    for (int r = 0; r < batch.n_rows; ++r) {
      Inputs row = in;
      row.cond.assign(in.cond.begin() + r * batch.vocab, in.cond.begin() + (r + 1) * batch.vocab);
      row.uncond.assign(in.uncond.begin() + r * batch.vocab,
                        in.uncond.begin() + (r + 1) * batch.vocab);
      row.positions = {in.positions[r]};
      const Outputs alone = RunGpu(single, row);
      EXPECT_EQ(alone.tokens[0], together.tokens[r]) << single.Name() << ", row " << r;
      EXPECT_EQ(alone.confidences[0], together.confidences[r]) << single.Name() << ", row " << r;

      row.positions = {in.positions[r] + 1000};
      if (RunGpu(single, row).tokens[0] != together.tokens[r]) ++moved;
    }
    EXPECT_GT(moved, 0) << "the comparison above could not see a change of RNG key";
  }
}

TEST(ChooseTokensTest, RejectsInvalidParams) {
  SCULPT_SKIP_WITHOUT_GPU();
  const Case c{2, 10, TokenChoiceStyle::kDream, ConfidenceKind::kMargin, 0.7, 0.9, 0};
  const Inputs in = MakeInputs(c, 4000);
  testing::DeviceArray<float> logits(in.cond);
  testing::DeviceArray<int32_t> positions(in.positions);
  testing::DeviceArray<int32_t> tokens(2);
  testing::DeviceArray<double> confidences(2);
  cuda::ChooseTokensKernelParams valid;
  valid.logits = logits.data();
  valid.n_rows = c.n_rows;
  valid.vocab = c.vocab;
  valid.temperature = c.temperature;
  valid.style = TokenChoiceStyle::kDream;
  valid.positions = positions.data();
  valid.tokens = tokens.data();
  valid.confidences = confidences.data();
  ASSERT_TRUE(cuda::LaunchChooseTokens(valid, nullptr).ok());

  auto expect_invalid = [&](cuda::ChooseTokensKernelParams params, const char* what) {
    EXPECT_EQ(cuda::LaunchChooseTokens(params, nullptr).code(), absl::StatusCode::kInvalidArgument)
        << what;
  };
  cuda::ChooseTokensKernelParams params = valid;
  params.n_rows = -1;
  expect_invalid(params, "n_rows < 0");
  params = valid;
  params.vocab = 0;
  expect_invalid(params, "vocab 0");
  params = valid;
  params.style = static_cast<TokenChoiceStyle>(7);
  expect_invalid(params, "unknown style");
  params = valid;
  params.confidence = static_cast<ConfidenceKind>(3);
  expect_invalid(params, "unknown confidence");
  params = valid;
  params.temperature = -1.0;
  expect_invalid(params, "negative temperature");
  params = valid;
  params.top_k = -1;
  expect_invalid(params, "negative top_k");
  params = valid;
  params.n_suppressed = 2;
  expect_invalid(params, "suppressed count without ids");
  params = valid;
  params.positions = nullptr;
  expect_invalid(params, "no positions");
  params = valid;
  params.top_p = c.top_p;  // filtering needs the scratch
  expect_invalid(params, "top_p without scratch");
  testing::DeviceArray<uint8_t> small(cuda::ChooseTokensScratchBytes(c.n_rows, c.vocab) - 1);
  params.scratch = small.data();
  params.scratch_bytes = small.size();
  expect_invalid(params, "scratch one byte short");
}

}  // namespace
}  // namespace sculpt
