// cuda::LaunchChooseTokens's own contract: a row's choice does not depend on the batch (with a
// negative control), and invalid kernel params are refused. Its choices against the CPU's, on
// every option and awkward shapes, are in tests/backend/backend_ops_test.cc.
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
#include "tests/gpu/device_array.h"
#include "tests/support/token_choice_cases.h"

namespace sculpt {
namespace {

using testing::MakeInputs;
using Case = testing::TokenChoiceCase;
using Inputs = testing::TokenChoiceInputs;
using Outputs = testing::TokenChoiceOutputs;

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
