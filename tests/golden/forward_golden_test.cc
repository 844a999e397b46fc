// The CPU forward against the independent PyTorch reference (tools/gen_golden.py), tensor by
// tensor in forward order, so a failure names the first intermediate that diverges.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "model/safetensors.h"
#include "tests/support/test_data.h"

namespace sculpt {
namespace {

constexpr double kRelativeTolerance = 1e-4;

struct Captured {
  std::vector<std::string> order;
  std::map<std::string, std::vector<float>> tensors;
};

// max |actual - expected| / max |expected|: the error relative to the tensor's own scale.
double RelativeError(const std::vector<float>& actual, const TensorRef& expected) {
  std::vector<float> reference(expected.num_elements());
  ConvertToFloat(expected.dtype, expected.data, reference.size(), reference.data());
  double max_difference = 0.0;
  double max_magnitude = 0.0;
  for (size_t i = 0; i < reference.size(); ++i) {
    max_difference = std::max(max_difference, std::fabs(double(actual[i]) - double(reference[i])));
    max_magnitude = std::max(max_magnitude, std::fabs(double(reference[i])));
  }
  return max_difference / std::max(max_magnitude, 1e-30);
}

class ForwardGoldenTest : public ::testing::TestWithParam<int> {};

TEST_P(ForwardGoldenTest, EveryIntermediateMatchesTheReference) {
  const nlohmann::json fixture = testing::LoadJsonFixture("tests/golden/data/forward.json");
  const nlohmann::json& test_case = fixture["cases"][GetParam()];
  const std::string model_name = test_case["model"];
  SCOPED_TRACE(model_name);
  auto loaded = testing::LoadTestModel(model_name);
  ASSERT_NE(loaded.model, nullptr);
  auto reference = SafetensorsFile::Open(
      testing::SourcePath("tests/golden/data/" + test_case["activations"].get<std::string>()));
  ASSERT_TRUE(reference.ok()) << reference.status();

  const std::vector<int32_t> input = test_case["input_ids"];
  std::vector<int32_t> all_positions(input.size());
  std::iota(all_positions.begin(), all_positions.end(), 0);
  Captured captured;
  const ForwardObserver observer = [&](const std::string& name, const TensorView& tensor) {
    std::vector<float>& copy = captured.tensors[name];
    copy.resize(tensor.num_elements());
    ASSERT_TRUE(loaded.backend->CopyToHost(copy.data(), tensor.data, tensor.byte_size()).ok());
    captured.order.push_back(name);
  };
  const SequenceInput sequence{input, all_positions};
  auto logits = loaded.model->Forward({&sequence, 1}, &observer);
  ASSERT_TRUE(logits.ok()) << logits.status();

  const auto& expected = (*reference)->tensors();
  EXPECT_EQ(captured.order.size(), expected.size()) << "observed and reference tensor sets differ";
  for (const std::string& name : captured.order) {
    auto it = expected.find(name);
    ASSERT_NE(it, expected.end()) << "the reference has no tensor " << name;
    ASSERT_EQ(static_cast<int64_t>(captured.tensors[name].size()), it->second.num_elements())
        << name;
    const double error = RelativeError(captured.tensors[name], it->second);
    ASSERT_LE(error, kRelativeTolerance) << "first divergence at " << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ForwardGoldenTest, ::testing::Values(0, 1, 2));

TEST(ForwardGoldenTest, Bf16CheckpointEqualsItsFp32Rounding) {
  // The bf16 model stores tiny-llada's weights rounded to bf16, so its logits must differ from
  // tiny-llada's by the rounding only: close, but not identical.
  auto fp32 = testing::LoadTestModel("tiny-llada");
  auto bf16 = testing::LoadTestModel("tiny-llada-bf16");
  ASSERT_NE(fp32.model, nullptr);
  ASSERT_NE(bf16.model, nullptr);
  const std::vector<int32_t> input = {5, 17, 996, 996, 42, 996, 7};
  const std::vector<int32_t> positions = {2, 3, 5};
  const SequenceInput sequence{input, positions};
  auto a = fp32.model->Forward({&sequence, 1});
  ASSERT_TRUE(a.ok());
  const std::vector<float> fp32_logits(a->f32(), a->f32() + a->num_elements());
  auto b = bf16.model->Forward({&sequence, 1});
  ASSERT_TRUE(b.ok());
  double max_difference = 0.0, max_magnitude = 0.0;
  for (int64_t i = 0; i < b->num_elements(); ++i) {
    max_difference = std::max(max_difference, std::fabs(double(b->f32()[i]) - fp32_logits[i]));
    max_magnitude = std::max(max_magnitude, std::fabs(double(fp32_logits[i])));
  }
  EXPECT_GT(max_difference, 0.0);
  EXPECT_LT(max_difference / max_magnitude, 0.05);
}

}  // namespace
}  // namespace sculpt
