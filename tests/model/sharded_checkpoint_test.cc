// A checkpoint split into shards behind model.safetensors.index.json loads into exactly the
// model of the single file: same forward, bit for bit.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "model/safetensors.h"
#include "tests/support/safetensors_writer.h"
#include "tests/support/test_data.h"

namespace sculpt {
namespace {

// Writes `source_model` into `dir` as `num_shards` shard files plus the index.
void WriteSharded(const std::string& source_model, const std::string& dir, int num_shards) {
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(source_model + "/config.json", dir + "/config.json",
                             std::filesystem::copy_options::overwrite_existing);
  auto source = SafetensorsFile::Open(source_model + "/model.safetensors");
  ASSERT_TRUE(source.ok()) << source.status();
  std::vector<testing::SafetensorsWriter> shards(num_shards);
  nlohmann::json weight_map = nlohmann::json::object();
  int next = 0;
  for (const auto& [name, tensor] : (*source)->tensors()) {
    const int shard = next++ % num_shards;
    shards[shard].Add(name, std::string(DTypeName(tensor.dtype)), tensor.shape,
                      std::string(static_cast<const char*>(tensor.data), tensor.byte_size));
    weight_map[name] = "model-0000" + std::to_string(shard + 1) + "-of-0000" +
                       std::to_string(num_shards) + ".safetensors";
  }
  for (int shard = 0; shard < num_shards; ++shard) {
    const std::string file = "model-0000" + std::to_string(shard + 1) + "-of-0000" +
                             std::to_string(num_shards) + ".safetensors";
    std::ofstream(dir + "/" + file, std::ios::binary) << shards[shard].Serialize();
  }
  std::ofstream(dir + "/model.safetensors.index.json")
      << nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump(2);
}

TEST(ShardedCheckpointTest, ShardsLoadTheSameModelAsOneFile) {
  for (const char* name : {"tiny-llada", "tiny-llada-bf16"}) {
    SCOPED_TRACE(name);
    const std::string dir = ::testing::TempDir() + "/sculpt_sharded_" + name;
    std::filesystem::remove_all(dir);
    WriteSharded(testing::TestModelDir(name), dir, 3);
    ASSERT_FALSE(std::filesystem::exists(dir + "/model.safetensors"));

    auto single = testing::LoadTestModel(name);
    auto backend = MakeCpuBackend();
    auto sharded = LoadTransformer(dir, *backend);
    ASSERT_TRUE(sharded.ok()) << sharded.status();
    ASSERT_NE(single.model, nullptr);

    const std::vector<int32_t> input = {12, 996, 40, 996, 996, 7, 300};
    std::vector<int32_t> positions(input.size());
    std::iota(positions.begin(), positions.end(), 0);
    const SequenceInput sequence{input, positions};
    auto expected = single.model->Forward({&sequence, 1});
    ASSERT_TRUE(expected.ok());
    const std::vector<float> expected_logits(expected->f32(),
                                             expected->f32() + expected->num_elements());
    auto actual = (*sharded)->Forward({&sequence, 1});
    ASSERT_TRUE(actual.ok());
    ASSERT_EQ(actual->num_elements(), static_cast<int64_t>(expected_logits.size()));
    EXPECT_EQ(std::memcmp(actual->data, expected_logits.data(), actual->byte_size()), 0);

    // A shard that goes missing is named in the error.
    std::filesystem::remove(dir + "/model-00002-of-00003.safetensors");
    auto broken = LoadTransformer(dir, *backend);
    ASSERT_FALSE(broken.ok());
    EXPECT_NE(broken.status().message().find("model-00002-of-00003.safetensors"), std::string::npos)
        << broken.status();
  }
}

}  // namespace
}  // namespace sculpt
