// CPU ops against straightforward float64 formulas on awkward shapes. The CPU backend is the
// reference of every other backend, so it is itself checked against the maths.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "common/rng.h"
#include "cpu/cpu_backend.h"
#include "tests/support/random_data.h"

namespace sculpt {
namespace {

using testing::RandomFloats;

TensorView View(std::vector<float>& values, int64_t rows, int64_t cols) {
  return TensorView{values.data(), DType::kF32, rows, cols};
}

void ExpectNear(const std::vector<float>& actual, const std::vector<double>& expected,
                double tolerance) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    ASSERT_NEAR(actual[i], expected[i], tolerance * std::max(1.0, std::fabs(expected[i])))
        << "at " << i;
  }
}

class CpuOpsTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> backend_ = MakeCpuBackend();
};

TEST_F(CpuOpsTest, FusedAddRmsNormIsExactlyAddThenRmsNorm) {
  const int64_t n = 5, d = 67;
  std::vector<float> x = RandomFloats(n * d, 11, 3.0f);
  const std::vector<float> residual_values = RandomFloats(n * d, 12);
  std::vector<float> residual = residual_values;
  std::vector<float> weight = RandomFloats(d, 13);
  std::vector<float> fused_x = x, fused_out(n * d), separate_out(n * d);
  ASSERT_TRUE(backend_->Add({View(x, n, d), View(residual, n, d), View(x, n, d)}).ok());
  ASSERT_TRUE(
      backend_->RmsNorm({View(x, n, d), View(weight, 1, d), View(separate_out, n, d), 1e-5f}).ok());
  ASSERT_TRUE(backend_
                  ->AddRmsNorm({View(fused_x, n, d), View(residual, n, d), View(weight, 1, d),
                                View(fused_out, n, d), 1e-5f})
                  .ok());
  EXPECT_EQ(fused_x, x);
  EXPECT_EQ(fused_out, separate_out);
  EXPECT_EQ(residual, residual_values);
  // And the maths: out = (x + r) / rms(x + r) * w, in float64.
  std::vector<double> expected(n * d);
  for (int64_t r = 0; r < n; ++r) {
    double sum_squares = 0;
    for (int64_t j = 0; j < d; ++j) sum_squares += double(x[r * d + j]) * x[r * d + j];
    const double inverse_rms = 1.0 / std::sqrt(sum_squares / double(d) + 1e-5);
    for (int64_t j = 0; j < d; ++j) expected[r * d + j] = x[r * d + j] * inverse_rms * weight[j];
  }
  ExpectNear(fused_out, expected, 1e-5);
}

TEST_F(CpuOpsTest, AttentionIsConfinedToEachSequenceWithGroupedHeads) {
  const int n_heads = 6, n_kv_heads = 2, head_dim = 24;
  const std::vector<int32_t> offsets = {0, 1, 8, 21};  // lengths 1, 7, 13
  const int n = offsets.back();
  std::vector<float> q = RandomFloats(n * n_heads * head_dim, 1, 2.0f);
  std::vector<float> k = RandomFloats(n * n_kv_heads * head_dim, 2, 2.0f);
  std::vector<float> v = RandomFloats(n * n_kv_heads * head_dim, 3);
  std::vector<float> out(n * n_heads * head_dim);
  ASSERT_TRUE(backend_
                  ->Attention({View(q, n, n_heads * head_dim), View(k, n, n_kv_heads * head_dim),
                               View(v, n, n_kv_heads * head_dim), View(out, n, n_heads * head_dim),
                               PackedLayout{offsets}, n_heads, n_kv_heads, head_dim})
                  .ok());

  std::vector<double> expected(out.size());
  for (size_t s = 0; s + 1 < offsets.size(); ++s) {
    for (int i = offsets[s]; i < offsets[s + 1]; ++i) {
      for (int h = 0; h < n_heads; ++h) {
        const int kv = h / (n_heads / n_kv_heads);
        std::vector<double> weights;
        double max_score = -INFINITY;
        for (int j = offsets[s]; j < offsets[s + 1]; ++j) {
          double score = 0.0;
          for (int c = 0; c < head_dim; ++c) {
            score += double(q[(i * n_heads + h) * head_dim + c]) *
                     k[(j * n_kv_heads + kv) * head_dim + c];
          }
          weights.push_back(score / std::sqrt(double(head_dim)));
          max_score = std::max(max_score, weights.back());
        }
        double total = 0.0;
        for (double& w : weights) total += (w = std::exp(w - max_score));
        for (int c = 0; c < head_dim; ++c) {
          double sum = 0.0;
          for (int j = offsets[s]; j < offsets[s + 1]; ++j) {
            sum += weights[j - offsets[s]] * v[(j * n_kv_heads + kv) * head_dim + c];
          }
          expected[(i * n_heads + h) * head_dim + c] = sum / total;
        }
      }
    }
  }
  ExpectNear(out, expected, 1e-5);
}

TEST_F(CpuOpsTest, RopeRotatesHalvesByPositionWithinEachSequence) {
  const int head_dim = 10, n_heads = 3;
  const double theta = 500000.0;
  const std::vector<int32_t> offsets = {0, 5, 12};
  const int n = offsets.back();
  std::vector<float> x = RandomFloats(n * n_heads * head_dim, 4);
  const std::vector<float> original = x;
  ASSERT_TRUE(
      backend_->Rope({View(x, n, n_heads * head_dim), PackedLayout{offsets}, head_dim, theta})
          .ok());
  std::vector<double> expected(x.size());
  const int half = head_dim / 2;
  for (size_t s = 0; s + 1 < offsets.size(); ++s) {
    for (int row = offsets[s]; row < offsets[s + 1]; ++row) {
      const int position = row - offsets[s];
      for (int h = 0; h < n_heads; ++h) {
        const float* in = original.data() + (row * n_heads + h) * head_dim;
        double* out = expected.data() + (row * n_heads + h) * head_dim;
        for (int j = 0; j < half; ++j) {
          const double angle = position * std::pow(theta, -2.0 * j / head_dim);
          out[j] = in[j] * std::cos(angle) - in[j + half] * std::sin(angle);
          out[j + half] = in[j + half] * std::cos(angle) + in[j] * std::sin(angle);
        }
      }
    }
  }
  ExpectNear(x, expected, 1e-5);
}

TEST_F(CpuOpsTest, RmsNormGemmSwiGluAdd) {
  const int m = 7, k = 13, n = 5;
  std::vector<float> x = RandomFloats(m * k, 5);
  std::vector<float> weight = RandomFloats(k, 6);
  std::vector<float> normed(m * k);
  ASSERT_TRUE(
      backend_->RmsNorm({View(x, m, k), View(weight, 1, k), View(normed, m, k), 1e-5f}).ok());
  std::vector<double> expected(m * k);
  for (int r = 0; r < m; ++r) {
    double sum = 0.0;
    for (int j = 0; j < k; ++j) sum += double(x[r * k + j]) * x[r * k + j];
    const double inverse = 1.0 / std::sqrt(sum / k + 1e-5);
    for (int j = 0; j < k; ++j) expected[r * k + j] = x[r * k + j] * inverse * weight[j];
  }
  ExpectNear(normed, expected, 1e-5);

  std::vector<float> w = RandomFloats(n * k, 7);
  std::vector<float> bias = RandomFloats(n, 8);
  std::vector<float> out(m * n);
  ASSERT_TRUE(
      backend_->Gemm({View(x, m, k), View(w, n, k), View(bias, 1, n), View(out, m, n)}).ok());
  std::vector<double> expected_gemm(m * n);
  for (int r = 0; r < m; ++r) {
    for (int c = 0; c < n; ++c) {
      double sum = bias[c];
      for (int j = 0; j < k; ++j) sum += double(x[r * k + j]) * w[c * k + j];
      expected_gemm[r * n + c] = sum;
    }
  }
  ExpectNear(out, expected_gemm, 1e-5);

  std::vector<float> gate = RandomFloats(m * n, 9), up = RandomFloats(m * n, 10), act(m * n);
  ASSERT_TRUE(backend_->SwiGlu({View(gate, m, n), View(up, m, n), View(act, m, n)}).ok());
  std::vector<double> expected_act(m * n);
  for (int i = 0; i < m * n; ++i)
    expected_act[i] = gate[i] / (1.0 + std::exp(-double(gate[i]))) * up[i];
  ExpectNear(act, expected_act, 1e-6);

  std::vector<float> sum(m * n);
  ASSERT_TRUE(backend_->Add({View(gate, m, n), View(up, m, n), View(sum, m, n)}).ok());
  for (int i = 0; i < m * n; ++i) EXPECT_EQ(sum[i], gate[i] + up[i]);
}

TEST_F(CpuOpsTest, ChooseTokensArgmaxConfidenceGuidanceAndGumbel) {
  const int vocab = 11;
  // Row 0 has a tie between 3 and 7: the first wins. Row 1 is guided.
  std::vector<float> cond = RandomFloats(2 * vocab, 11);
  cond[3] = cond[7] = 10.0f;
  std::vector<float> uncond = RandomFloats(2 * vocab, 12);
  const std::vector<int32_t> positions = {4, 9};
  std::vector<int32_t> tokens(2);
  std::vector<double> confidences(2);

  ChooseTokensParams params;
  params.logits = View(cond, 2, vocab);
  params.positions = positions;
  params.tokens = tokens;
  params.confidences = confidences;
  ASSERT_TRUE(backend_->ChooseTokens(params).ok());
  EXPECT_EQ(tokens[0], 3);
  double total = 0.0;
  for (int v = 0; v < vocab; ++v) total += std::exp(double(cond[v]) - 10.0);
  EXPECT_NEAR(confidences[0], 1.0 / total, 1e-12);

  params.uncond_logits = View(uncond, 2, vocab);
  params.cfg_scale = 2.0;
  ASSERT_TRUE(backend_->ChooseTokens(params).ok());
  std::vector<double> guided(vocab);
  int best = 0;
  for (int v = 0; v < vocab; ++v) {
    guided[v] = uncond[vocab + v] + 3.0f * (cond[vocab + v] - uncond[vocab + v]);
    if (guided[v] > guided[best]) best = v;
  }
  EXPECT_EQ(tokens[1], best);

  params.uncond_logits = {};
  params.cfg_scale = 0.0;
  params.temperature = 0.8;
  params.seed = 99;
  params.step = 3;
  ASSERT_TRUE(backend_->ChooseTokens(params).ok());
  for (int r = 0; r < 2; ++r) {
    int sampled = 0;
    double best_score = -INFINITY;
    for (int v = 0; v < vocab; ++v) {
      const double u = UniformOpen01(99, 3, positions[r], v, RngStream::kGumbel);
      const double score = std::exp(double(cond[r * vocab + v])) / std::pow(-std::log(u), 0.8);
      if (score > best_score) best_score = score, sampled = v;
    }
    EXPECT_EQ(tokens[r], sampled) << r;
  }
}

}  // namespace
}  // namespace sculpt

namespace sculpt {
namespace {

// Batch invariance rests on this: a row's GEMM result must not depend on how many rows share
// the call or where the row sits among them.
// Batch invariance of GEMMs and attention: tests/unit/batch_invariance_test.cc.

}  // namespace
}  // namespace sculpt

namespace sculpt {
namespace {

// Batch invariance rests on this: a row's GEMM result must not depend on how many rows share
// the call or where the row sits among them.
TEST_F(CpuOpsTest, GemmRowsAreBitwiseIndependentOfTheirBatch) {
  for (const auto& [k, n] : std::vector<std::pair<int, int>>{{96, 96},
                                                             {96, 48},
                                                             {96, 288},
                                                             {96, 200},
                                                             {200, 96},
                                                             {200, 997},
                                                             {768, 768},
                                                             {96, 1009}}) {
    const int m = 40;
    std::vector<float> x = RandomFloats(m * k, 20);
    std::vector<float> w = RandomFloats(n * k, 21);
    std::vector<float> full(m * n);
    ASSERT_TRUE(backend_->Gemm({View(x, m, k), View(w, n, k), {}, View(full, m, n)}).ok());
    for (int rows : {1, 2, 3, 4, 5, 7, 9, 12, 13, 16, 17, 25}) {
      for (int first : {0, 3, 11}) {
        std::vector<float> part(rows * n);
        TensorView slice{x.data() + first * k, DType::kF32, rows, k};
        ASSERT_TRUE(backend_->Gemm({slice, View(w, n, k), {}, View(part, rows, n)}).ok());
        EXPECT_EQ(std::memcmp(part.data(), full.data() + first * n, part.size() * sizeof(float)), 0)
            << "k=" << k << " n=" << n << " rows=" << rows << " first=" << first;
      }
    }
  }
}

}  // namespace
}  // namespace sculpt
