// CPU ops against straightforward float64 formulas on awkward shapes. The CPU backend is the
// reference of every other backend, so it is itself checked against the maths.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <span>
#include <thread>
#include <vector>

#include "common/rng.h"
#include "cpu/cpu_backend.h"
#include "cpu/threads.h"
#include "cpu/vector_math.h"
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

// softmax(q kᵀ / sqrt(head_dim)) v in float64, sequence s's queries (rows offsets[s]..) against
// its keys, rows kv_rows[s] of k and v; with `visible`, query row i against the first visible[i]
// of them only.
std::vector<double> NaiveAttention(const std::vector<float>& q, const std::vector<float>& k,
                                   const std::vector<float>& v, const std::vector<int32_t>& offsets,
                                   const std::vector<RowRange>& kv_rows, int n_heads,
                                   int n_kv_heads, int head_dim,
                                   const std::vector<int32_t>& visible = {}) {
  std::vector<double> expected(static_cast<size_t>(offsets.back()) * n_heads * head_dim);
  for (size_t s = 0; s + 1 < offsets.size(); ++s) {
    for (int i = offsets[s]; i < offsets[s + 1]; ++i) {
      const int first = kv_rows[s].first;
      const int last = first + (visible.empty() ? kv_rows[s].count : visible[i]);
      for (int h = 0; h < n_heads; ++h) {
        const int kv = h / (n_heads / n_kv_heads);
        std::vector<double> weights;
        double max_score = -INFINITY;
        for (int j = first; j < last; ++j) {
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
          for (int j = first; j < last; ++j) {
            sum += weights[j - first] * v[(j * n_kv_heads + kv) * head_dim + c];
          }
          expected[(i * n_heads + h) * head_dim + c] = sum / total;
        }
      }
    }
  }
  return expected;
}

class CpuOpsTest : public ::testing::Test {
 protected:
  // Every sequence of `offsets` attending to its own rows, against the float64 formula.
  void ExpectOwnRowsAttentionIsExact(const std::vector<int32_t>& offsets, int n_heads,
                                     int n_kv_heads, int head_dim, uint32_t seed) {
    const int n = offsets.back();
    std::vector<float> q = RandomFloats(n * n_heads * head_dim, seed, 2.0f);
    std::vector<float> k = RandomFloats(n * n_kv_heads * head_dim, seed + 1, 2.0f);
    std::vector<float> v = RandomFloats(n * n_kv_heads * head_dim, seed + 2);
    std::vector<float> out(n * n_heads * head_dim);
    ASSERT_TRUE(
        backend_
            ->Attention({View(q, n, n_heads * head_dim), View(k, n, n_kv_heads * head_dim),
                         View(v, n, n_kv_heads * head_dim), View(out, n, n_heads * head_dim),
                         PackedLayout{offsets}, n_heads, n_kv_heads, head_dim})
            .ok());
    std::vector<RowRange> own_rows;
    for (size_t s = 0; s + 1 < offsets.size(); ++s) {
      own_rows.push_back({offsets[s], offsets[s + 1] - offsets[s]});
    }
    ExpectNear(out, NaiveAttention(q, k, v, offsets, own_rows, n_heads, n_kv_heads, head_dim),
               1e-5);
  }

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
  ExpectOwnRowsAttentionIsExact({0, 1, 8, 21}, 6, 2, 24, 1);  // lengths 1, 7, 13
}

// Queries that are a few rows of each sequence against its keys in a cache holding every
// sequence's rows in any order (what a KV-cached step runs): the float64 formula over exactly the
// given key rows; and a range equal to the sequence's own rows is bitwise the plain attention.
TEST_F(CpuOpsTest, AttentionReadsEachSequencesKeysFromItsCacheRows) {
  const int n_heads = 4, n_kv_heads = 2, head_dim = 40;
  const std::vector<int32_t> offsets = {0, 3, 3, 11};  // 3, 0 and 8 query rows
  const std::vector<RowRange> kv_rows = {{50, 70}, {0, 0}, {3, 45}};
  const int n = offsets.back(), cache_rows = 130;
  std::vector<float> q = RandomFloats(n * n_heads * head_dim, 1, 2.0f);
  std::vector<float> k = RandomFloats(cache_rows * n_kv_heads * head_dim, 2, 2.0f);
  std::vector<float> v = RandomFloats(cache_rows * n_kv_heads * head_dim, 3);
  std::vector<float> out(n * n_heads * head_dim);
  AttentionParams params{View(q, n, n_heads * head_dim),
                         View(k, cache_rows, n_kv_heads * head_dim),
                         View(v, cache_rows, n_kv_heads * head_dim),
                         View(out, n, n_heads * head_dim),
                         PackedLayout{offsets},
                         n_heads,
                         n_kv_heads,
                         head_dim,
                         kv_rows};
  ASSERT_TRUE(backend_->Attention(params).ok());

  const std::vector<double> expected =
      NaiveAttention(q, k, v, offsets, kv_rows, n_heads, n_kv_heads, head_dim);
  ExpectNear(out, expected, 1e-5);

  // The sequences' own rows as ranges: the same bits as without ranges.
  std::vector<float> own_k(k.begin(), k.begin() + n * n_kv_heads * head_dim);
  std::vector<float> own_v(v.begin(), v.begin() + n * n_kv_heads * head_dim);
  std::vector<float> plain(out.size()), ranged(out.size());
  AttentionParams own{View(q, n, n_heads * head_dim),
                      View(own_k, n, n_kv_heads * head_dim),
                      View(own_v, n, n_kv_heads * head_dim),
                      View(plain, n, n_heads * head_dim),
                      PackedLayout{offsets},
                      n_heads,
                      n_kv_heads,
                      head_dim};
  ASSERT_TRUE(backend_->Attention(own).ok());
  const std::vector<RowRange> own_rows = {{0, 3}, {3, 0}, {3, 8}};
  own.out = View(ranged, n, n_heads * head_dim);
  own.kv_rows = own_rows;
  ASSERT_TRUE(backend_->Attention(own).ok());
  EXPECT_EQ(0, std::memcmp(plain.data(), ranged.data(), plain.size() * sizeof(float)));
}

// Lengths across the tile edges (cpu/attention.h): key counts that fill whole 128-key tiles read
// in place, with and without a partial last tile, and query blocks that end in each query tile
// size (16, 32, 64) or span several; plain and from cache rows.
TEST_F(CpuOpsTest, AttentionIsExactAcrossQueryAndKeyTileEdges) {
  const int n_heads = 4, n_kv_heads = 2, head_dim = 32;
  // 1, 16, 128 and 256 rows.
  ExpectOwnRowsAttentionIsExact({0, 1, 17, 145, 401}, n_heads, n_kv_heads, head_dim, 11);
  const int n = 401;  // cache rows
  std::vector<float> k = RandomFloats(n * n_kv_heads * head_dim, 15, 2.0f);
  std::vector<float> v = RandomFloats(n * n_kv_heads * head_dim, 16);
  // Windows of 33, 32 and 70 query rows against 128, 300 and 257 cached keys.
  const std::vector<int32_t> window_offsets = {0, 33, 65, 135};
  const std::vector<RowRange> kv_rows = {{0, 128}, {100, 300}, {10, 257}};
  const int windows = window_offsets.back();
  std::vector<float> window_out(windows * n_heads * head_dim);
  std::vector<float> window_q = RandomFloats(windows * n_heads * head_dim, 14, 2.0f);
  ASSERT_TRUE(
      backend_
          ->Attention({View(window_q, windows, n_heads * head_dim),
                       View(k, n, n_kv_heads * head_dim), View(v, n, n_kv_heads * head_dim),
                       View(window_out, windows, n_heads * head_dim), PackedLayout{window_offsets},
                       n_heads, n_kv_heads, head_dim, kv_rows})
          .ok());
  ExpectNear(window_out,
             NaiveAttention(window_q, k, v, window_offsets, kv_rows, n_heads, n_kv_heads, head_dim),
             1e-5);
}

// Block-causal attention (block diffusion): a query at position p sees the keys at positions below
// (p / B + 1) * B. Key j of a cache range is at position j; without one, a sequence's own key rows
// are at the positions of their rows. Sequences mix block sizes, 0 (every key), first positions,
// and lengths across the key tiles (128) and query tiles.
TEST_F(CpuOpsTest, BlockCausalAttentionSeesOnlyItsBlockAndTheBlocksBefore) {
  const int n_heads = 4, n_kv_heads = 2, head_dim = 32;
  const auto visible_counts =
      [](const std::vector<int32_t>& offsets, const std::vector<int32_t>& first_positions,
         const std::vector<int32_t>& blocks, const std::vector<RowRange>& key_rows, bool cached) {
        std::vector<int32_t> visible;
        for (size_t s = 0; s + 1 < offsets.size(); ++s) {
          for (int i = offsets[s]; i < offsets[s + 1]; ++i) {
            const int position = first_positions[s] + i - offsets[s];
            const int key_base = cached ? 0 : first_positions[s];
            const int limit = blocks[s] == 0 ? key_rows[s].count
                                             : (position / blocks[s] + 1) * blocks[s] - key_base;
            visible.push_back(std::min(limit, key_rows[s].count));
          }
        }
        return visible;
      };
  {
    // Own rows: lengths 13, 1, 33 and 300 at first positions 0, 5, 3 and 0.
    const std::vector<int32_t> offsets = {0, 13, 14, 47, 347};
    const std::vector<int32_t> first_positions = {0, 5, 3, 0};
    const std::vector<int32_t> blocks = {4, 4, 8, 32};
    const int n = offsets.back();
    std::vector<float> q = RandomFloats(n * n_heads * head_dim, 21, 2.0f);
    std::vector<float> k = RandomFloats(n * n_kv_heads * head_dim, 22, 2.0f);
    std::vector<float> v = RandomFloats(n * n_kv_heads * head_dim, 23);
    std::vector<float> out(n * n_heads * head_dim);
    AttentionParams params{View(q, n, n_heads * head_dim),
                           View(k, n, n_kv_heads * head_dim),
                           View(v, n, n_kv_heads * head_dim),
                           View(out, n, n_heads * head_dim),
                           PackedLayout{offsets, first_positions},
                           n_heads,
                           n_kv_heads,
                           head_dim};
    params.causal_blocks = blocks;
    ASSERT_TRUE(backend_->Attention(params).ok());
    std::vector<RowRange> own_rows;
    for (size_t s = 0; s + 1 < offsets.size(); ++s) {
      own_rows.push_back({offsets[s], offsets[s + 1] - offsets[s]});
    }
    ExpectNear(out,
               NaiveAttention(q, k, v, offsets, own_rows, n_heads, n_kv_heads, head_dim,
                              visible_counts(offsets, first_positions, blocks, own_rows, false)),
               1e-5);
  }
  {
    // Windows of a cache: two blocks at positions [8, 16) of a 4-block canvas; a 300-row window
    // from 40 of 400 cached keys in blocks of 32; a window of a non-causal sequence (0).
    const std::vector<int32_t> offsets = {0, 8, 308, 313};
    const std::vector<int32_t> first_positions = {8, 40, 2};
    const std::vector<int32_t> blocks = {4, 32, 0};
    const std::vector<RowRange> kv_rows = {{500, 40}, {0, 400}, {420, 30}};
    const int n = offsets.back(), cache_rows = 540;
    std::vector<float> q = RandomFloats(n * n_heads * head_dim, 24, 2.0f);
    std::vector<float> k = RandomFloats(cache_rows * n_kv_heads * head_dim, 25, 2.0f);
    std::vector<float> v = RandomFloats(cache_rows * n_kv_heads * head_dim, 26);
    std::vector<float> out(n * n_heads * head_dim);
    AttentionParams params{View(q, n, n_heads * head_dim),
                           View(k, cache_rows, n_kv_heads * head_dim),
                           View(v, cache_rows, n_kv_heads * head_dim),
                           View(out, n, n_heads * head_dim),
                           PackedLayout{offsets, first_positions},
                           n_heads,
                           n_kv_heads,
                           head_dim,
                           kv_rows,
                           blocks};
    ASSERT_TRUE(backend_->Attention(params).ok());
    ExpectNear(out,
               NaiveAttention(q, k, v, offsets, kv_rows, n_heads, n_kv_heads, head_dim,
                              visible_counts(offsets, first_positions, blocks, kv_rows, true)),
               1e-5);

    // A block no query's block end falls inside: the same bits as non-causal attention.
    std::vector<float> plain(out.size()), wide(out.size());
    params.causal_blocks = {};
    params.out = View(plain, n, n_heads * head_dim);
    ASSERT_TRUE(backend_->Attention(params).ok());
    const std::vector<int32_t> wide_blocks = {64, 512, 0};
    params.causal_blocks = wide_blocks;
    params.out = View(wide, n, n_heads * head_dim);
    ASSERT_TRUE(backend_->Attention(params).ok());
    EXPECT_EQ(0, std::memcmp(plain.data(), wide.data(), plain.size() * sizeof(float)));
    EXPECT_NE(0, std::memcmp(plain.data(), out.data(), plain.size() * sizeof(float)));
  }
}

// OpenMP keeps its thread count per thread: the count set for the process must reach the
// thread that runs the ops (the server's engine thread is started after it is set).
TEST(CpuThreadsTest, TheCountReachesAThreadThatRunsAForward) {
  const int default_count = omp_get_max_threads();
  const int requested = default_count + 1;  // any count a new thread would not have by itself
  SetCpuThreads(requested);
  int before = 0, after = 0;
  std::thread engine([&] {
    before = omp_get_max_threads();
    std::unique_ptr<Backend> backend = MakeCpuBackend();
    std::vector<float> table(4 * 2, 1.0f), out(2);
    const std::vector<int32_t> ids = {3};
    ASSERT_TRUE(backend->Embed({ids, View(table, 4, 2), View(out, 1, 2)}).ok());
    after = omp_get_max_threads();
  });
  engine.join();
  SetCpuThreads(default_count);
  EXPECT_EQ(before, default_count);  // the thread started with OpenMP's default
  EXPECT_EQ(after, requested);
}

TEST(VectorMathTest, MaxOfFindsTheLargestAtAnyPositionAndLength) {
  for (const int64_t n : {1, 15, 16, 17, 100, 128}) {
    for (int64_t at = 0; at < n; ++at) {
      std::vector<float> x =
          RandomFloats(static_cast<size_t>(n), static_cast<uint32_t>(n * 1000 + at));
      x[at] = 5.0f + static_cast<float>(at);
      EXPECT_EQ(cpu::MaxOf(x.data(), n), x[at]) << "n " << n << ", largest at " << at;
    }
  }
}

TEST_F(CpuOpsTest, RopeRotatesHalvesByPositionWithinEachSequence) {
  const int head_dim = 10, n_heads = 3;
  const double theta = 500000.0;
  const std::vector<int32_t> offsets = {0, 5, 12};
  const int n = offsets.back();
  // Without first positions every sequence starts at 0; with them (windows of cached canvases)
  // deeper into its canvas.
  for (const std::vector<int32_t>& first_positions :
       {std::vector<int32_t>{}, std::vector<int32_t>{40, 3}}) {
    std::vector<float> x = RandomFloats(n * n_heads * head_dim, 4);
    const std::vector<float> original = x;
    ASSERT_TRUE(backend_
                    ->Rope({View(x, n, n_heads * head_dim), PackedLayout{offsets, first_positions},
                            head_dim, theta})
                    .ok());
    std::vector<double> expected(x.size());
    const int half = head_dim / 2;
    for (size_t s = 0; s + 1 < offsets.size(); ++s) {
      for (int row = offsets[s]; row < offsets[s + 1]; ++row) {
        const int position = row - offsets[s] + (first_positions.empty() ? 0 : first_positions[s]);
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
  // Rows 0-1 are the conditional logits, rows 2-3 the unconditional ones. Row 0 has a tie
  // between 3 and 7: the first wins.
  std::vector<float> logits = RandomFloats(4 * vocab, 11);
  logits[3] = logits[7] = 10.0f;
  const std::vector<float> original = logits;
  const float* cond = original.data();
  const float* uncond = original.data() + 2 * vocab;
  const std::vector<int32_t> positions = {4, 9};
  std::vector<int32_t> tokens(2);
  std::vector<double> confidences(2);
  const auto choose = [&](TokenChoiceGroup group) {
    group.positions = positions;
    group.tokens = tokens;
    group.confidences = confidences;
    logits = original;
    ASSERT_TRUE(backend_->ChooseTokens({View(logits, 4, vocab), {&group, 1}}).ok());
  };

  choose({});
  EXPECT_EQ(tokens[0], 3);
  double total = 0.0;
  for (int v = 0; v < vocab; ++v) total += std::exp(double(cond[v]) - 10.0);
  EXPECT_NEAR(confidences[0], 1.0 / total, 1e-12);

  choose({.uncond_first_row = 2, .cfg_scale = 2.0});
  std::vector<double> guided(vocab);
  int best = 0;
  for (int v = 0; v < vocab; ++v) {
    guided[v] = uncond[vocab + v] + 3.0f * (cond[vocab + v] - uncond[vocab + v]);
    if (guided[v] > guided[best]) best = v;
  }
  EXPECT_EQ(tokens[1], best);

  choose({.temperature = 0.8, .seed = 99, .step = 3});
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

// Log-probabilities against a long-double log-softmax of the guided row written here: the
// chosen token's and the alternatives (highest first, ties to the lower id), untouched by the
// temperature, filters and suppression that shape the choice; a vocabulary smaller than the
// list pads it with id -1.
TEST_F(CpuOpsTest, ChooseTokensLogprobsAreTheGuidedLogSoftmax) {
  const int vocab = 13;
  std::vector<float> original = RandomFloats(4 * vocab, 23);
  original[5] = original[9] = 6.0f;  // a tie at the top of row 0's conditional logits
  const float* cond = original.data();
  const float* uncond = original.data() + 2 * vocab;
  const std::vector<int32_t> positions = {2, 8};
  const std::vector<int32_t> suppressed = {5};
  for (const bool guided : {false, true}) {
    for (const int k : {0, 4, 20}) {
      std::vector<float> logits = original;
      std::vector<int32_t> tokens(2), top_ids(2 * k);
      std::vector<double> confidences(2), logprobs(2), top_values(2 * k);
      TokenChoiceGroup group{.uncond_first_row = guided ? 2 : -1,
                             .cfg_scale = guided ? 1.5 : 0.0,
                             .temperature = 0.7,
                             .top_p = 0.8,
                             .style = TokenChoiceStyle::kDream,
                             .suppressed_tokens = suppressed,
                             .seed = 4,
                             .positions = positions,
                             .tokens = tokens,
                             .confidences = confidences,
                             .top_logprobs = k,
                             .logprobs = logprobs,
                             .top_ids = top_ids,
                             .top_values = top_values};
      ASSERT_TRUE(backend_->ChooseTokens({View(logits, 4, vocab), {&group, 1}}).ok());
      for (int r = 0; r < 2; ++r) {
        std::vector<long double> row(vocab);
        for (int v = 0; v < vocab; ++v) {
          const float c = cond[r * vocab + v], u = uncond[r * vocab + v];
          row[v] = guided ? u + 2.5f * (c - u) : c;
        }
        long double total = 0.0L;
        const long double max = *std::max_element(row.begin(), row.end());
        for (long double l : row) total += std::exp(l - max);
        const auto logprob = [&](int v) {
          return static_cast<double>(row[v] - max - std::log(total));
        };
        EXPECT_NE(tokens[r], 5) << "a suppressed token was chosen";
        EXPECT_NEAR(logprobs[r], logprob(tokens[r]), 1e-12) << guided << " " << k << " " << r;
        std::vector<int> order(vocab);
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return row[a] > row[b]; });
        for (int i = 0; i < k; ++i) {
          if (i < vocab) {
            EXPECT_EQ(top_ids[r * k + i], order[i]) << guided << " " << k << " " << r << " " << i;
            EXPECT_NEAR(top_values[r * k + i], logprob(order[i]), 1e-12);
          } else {
            EXPECT_EQ(top_ids[r * k + i], -1);
            EXPECT_EQ(top_values[r * k + i], -INFINITY);
          }
        }
      }
    }
  }
}

// A step's generations share one call, each with its own settings: the results are those of
// each group chosen on its own.
TEST_F(CpuOpsTest, ChooseTokensForManyGroupsInOneCallEqualsOneCallPerGroup) {
  const int vocab = 97, rows = 9;
  const std::vector<float> original = RandomFloats(rows * vocab, 21, 3.0f);
  const std::vector<int32_t> positions = {0, 5, 6, 7, 8, 9, 30, 31, 32};
  const std::vector<int32_t> suppressed = {4, 50};
  // Settings per group: LLaDA greedy, LLaDA guided and sampled, Dream with top-k and margin.
  std::vector<TokenChoiceGroup> groups(3);
  groups[0] = {.first_row = 0};
  groups[1] = {.first_row = 2,
               .uncond_first_row = 4,
               .cfg_scale = 1.5,
               .temperature = 0.7,
               .seed = 5,
               .step = 2};
  groups[2] = {.first_row = 6,
               .temperature = 0.9,
               .top_k = 10,
               .style = TokenChoiceStyle::kDream,
               .confidence = ConfidenceKind::kMargin,
               .suppressed_tokens = suppressed,
               .seed = 8,
               .step = 1};
  const int counts[] = {2, 2, 3};
  // Outputs for the conditional rows only: 2 + 2 + 3.
  std::vector<int32_t> tokens(7, -1), alone_tokens(7, -1);
  std::vector<double> confidences(7), alone_confidences(7);
  int used = 0;
  for (int g = 0; g < 3; ++g) {
    groups[g].positions = std::span(positions).subspan(groups[g].first_row, counts[g]);
    groups[g].tokens = std::span(tokens).subspan(used, counts[g]);
    groups[g].confidences = std::span(confidences).subspan(used, counts[g]);
    used += counts[g];
  }
  std::vector<float> logits = original;
  ASSERT_TRUE(backend_->ChooseTokens({View(logits, rows, vocab), groups}).ok());
  used = 0;
  for (int g = 0; g < 3; ++g) {
    TokenChoiceGroup alone = groups[g];
    alone.tokens = std::span(alone_tokens).subspan(used, counts[g]);
    alone.confidences = std::span(alone_confidences).subspan(used, counts[g]);
    used += counts[g];
    logits = original;
    ASSERT_TRUE(backend_->ChooseTokens({View(logits, rows, vocab), {&alone, 1}}).ok());
  }
  EXPECT_EQ(tokens, alone_tokens);
  EXPECT_EQ(confidences, alone_confidences);
  EXPECT_EQ(std::count(tokens.begin(), tokens.end(), -1), 0);
}

TEST_F(CpuOpsTest, ChooseTokensRefusesGroupsOutsideTheLogits) {
  std::vector<float> logits(4 * 5);
  const std::vector<int32_t> positions = {1, 2};
  std::vector<int32_t> tokens(2);
  std::vector<double> confidences(2);
  for (const TokenChoiceGroup& group :
       {TokenChoiceGroup{.first_row = 3}, TokenChoiceGroup{.uncond_first_row = 3}}) {
    TokenChoiceGroup bad = group;
    bad.positions = positions;
    bad.tokens = tokens;
    bad.confidences = confidences;
    EXPECT_EQ(backend_->ChooseTokens({View(logits, 4, 5), {&bad, 1}}).code(),
              absl::StatusCode::kInvalidArgument);
  }
}

// Batch invariance of GEMMs and attention: tests/unit/batch_invariance_test.cc.

}  // namespace
}  // namespace sculpt
