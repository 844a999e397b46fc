// Packed variable-length batches: sequences forwarded together must give bitwise the same
// logits as forwarded alone, and generations stepped together the same tokens as alone.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "cpu/gemm.h"
#include "model/denoiser.h"
#include "tests/support/test_data.h"

namespace sculpt {
namespace {

std::vector<float> CopyLogits(const TensorView& logits) {
  return std::vector<float>(logits.f32(), logits.f32() + logits.num_elements());
}

std::vector<int32_t> AllPositions(size_t length) {
  std::vector<int32_t> positions(length);
  std::iota(positions.begin(), positions.end(), 0);
  return positions;
}

// (model, weights as the CPU backend keeps them: fp32, bf16 or int8 GEMM weights)
struct PackingCase {
  const char* model;
  CpuBackendOptions options;
  const char* name;
};

class PackingTest : public ::testing::TestWithParam<PackingCase> {};

TEST_P(PackingTest, PackedLogitsAreBitwiseThoseOfSeparateForwards) {
  if (GetParam().options.int8_gemm_weights && !cpu::GemmRunner().HasExactInt8()) {
    // Refused on this CPU (or under this ISA cap), with a message that says why.
    auto backend = MakeCpuBackend(GetParam().options);
    ASSERT_TRUE(backend.ok());
    auto refused = LoadTransformer(testing::TestModelDir(GetParam().model), **backend);
    ASSERT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
    return;
  }
  auto loaded = testing::LoadTestModel(GetParam().model, GetParam().options);
  ASSERT_NE(loaded.model, nullptr);
  const int32_t mask = loaded.model->config().mask_token_id;
  const std::vector<std::vector<int32_t>> inputs = {
      {3, 14, 15, 92, mask},
      {65, 35, 89, 79, 32, 38, mask, mask, 46, 26, 43, 38, 32, 79, 50, 28, mask},
      {mask, 1, 2, mask, 8, 28, 18, 28, 45, 90, mask},
  };
  // Logits at every position of the first two and at a subset of the third.
  const std::vector<std::vector<int32_t>> positions = {
      AllPositions(inputs[0].size()), AllPositions(inputs[1].size()), {0, 3, 10}};

  std::vector<float> separate;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const SequenceInput sequence{inputs[i], positions[i]};
    auto logits = loaded.model->Forward({&sequence, 1});
    ASSERT_TRUE(logits.ok()) << logits.status();
    const std::vector<float> copy = CopyLogits(*logits);
    separate.insert(separate.end(), copy.begin(), copy.end());
  }

  std::vector<SequenceInput> batch;
  for (size_t i = 0; i < inputs.size(); ++i) batch.push_back({inputs[i], positions[i]});
  auto packed = loaded.model->Forward(batch);
  ASSERT_TRUE(packed.ok()) << packed.status();
  ASSERT_EQ(static_cast<size_t>(packed->num_elements()), separate.size());
  EXPECT_EQ(std::memcmp(packed->data, separate.data(), separate.size() * sizeof(float)), 0);

  // Negative control: the same tokens as ONE sequence attend across the old boundaries, so
  // the logits must change; otherwise the comparison above could not detect leakage.
  std::vector<int32_t> joined;
  for (const auto& input : inputs) joined.insert(joined.end(), input.begin(), input.end());
  const std::vector<int32_t> first_positions = positions[0];
  const SequenceInput joined_sequence{joined, first_positions};
  auto leaked = loaded.model->Forward({&joined_sequence, 1});
  ASSERT_TRUE(leaked.ok());
  EXPECT_NE(std::memcmp(leaked->data, separate.data(), leaked->byte_size()), 0);
}

INSTANTIATE_TEST_SUITE_P(
    ModelsAndWeights, PackingTest,
    ::testing::Values(PackingCase{"tiny-llada", {}, "TinyLLaDAFp32"},
                      PackingCase{"tiny-llada-gqa", {}, "TinyLLaDAGqaFp32"},
                      PackingCase{"tiny-llada-gqa", {.weight_dtype = DType::kBF16}, "GqaBf16"},
                      PackingCase{"tiny-llada-bf16",
                                  {.weight_dtype = DType::kBF16, .int8_gemm_weights = true},
                                  "Bf16Int8"}),
    [](const ::testing::TestParamInfo<PackingCase>& param) {
      return std::string(param.param.name);
    });

struct Request {
  std::vector<int32_t> prompt;
  GenerationParams params;
};

std::vector<Request> MixedRequests() {
  std::vector<Request> requests(4);
  requests[0].prompt = {11, 22, 33, 44, 55, 66, 77};
  requests[0].params = {.gen_length = 16, .steps = 16, .block_length = 8};
  requests[1].prompt = {5, 6, 7};
  requests[1].params = {.gen_length = 24,
                        .steps = 12,
                        .block_length = 8,
                        .remasking = Remasking::kRandom,
                        .temperature = 0.9,
                        .seed = 42};
  requests[2].prompt = {100, 200, 300, 400, 500, 600, 700, 800, 900};
  requests[2].params = {.gen_length = 8, .steps = 8, .block_length = 8, .cfg_scale = 1.5};
  requests[3].prompt = {9, 8, 7, 6};
  requests[3].params = {
      .gen_length = 12, .steps = 6, .block_length = 4, .temperature = 0.7, .seed = 7};
  return requests;
}

TEST(BatchInvarianceTest, GenerationsSteppedTogetherEqualGenerationsAlone) {
  auto loaded = testing::LoadTestModel("tiny-llada");
  ASSERT_NE(loaded.model, nullptr);
  const std::vector<Request> requests = MixedRequests();

  std::vector<std::vector<int32_t>> alone;
  for (const Request& request : requests) {
    auto result = Generate(*loaded.model, request.prompt, request.params);
    ASSERT_TRUE(result.ok()) << result.status();
    alone.push_back(result->token_ids);
  }

  std::vector<Generation> generations;
  for (const Request& request : requests) {
    auto generation = Generation::Create(request.prompt, request.params, loaded.model->config());
    ASSERT_TRUE(generation.ok()) << generation.status();
    generations.push_back(std::move(*generation));
  }
  std::vector<Generation*> batch;
  for (Generation& generation : generations) batch.push_back(&generation);
  int shared_forwards = 0;
  bool any_unfinished = true;
  Denoiser denoiser(*loaded.model);
  while (any_unfinished) {
    auto forwarded = denoiser.Step(batch);
    ASSERT_TRUE(forwarded.ok()) << forwarded.status();
    ++shared_forwards;
    any_unfinished = false;
    for (const Generation& generation : generations) any_unfinished |= !generation.finished();
  }
  EXPECT_EQ(shared_forwards, 16);  // the longest request's steps, not the sum
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto generated = generations[i].answer();
    EXPECT_EQ(std::vector<int32_t>(generated.begin(), generated.end()), alone[i])
        << "request " << i;
  }

  // Negative control: the sampled request with another seed must change, or the comparison
  // above would pass even if randomness ignored the seed.
  Request reseeded = requests[1];
  reseeded.params.seed = 43;
  auto other = Generate(*loaded.model, reseeded.prompt, reseeded.params);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->token_ids, alone[1]);
}

}  // namespace
}  // namespace sculpt
