// Philox4x32-10 against the published known answers and the Python reference's draws.
#include "common/rng.h"

#include <gtest/gtest.h>

#include "tests/support/test_data.h"

namespace sculpt {
namespace {

TEST(RngTest, PhiloxMatchesKnownAnswers) {
  const nlohmann::json fixture = testing::LoadJsonFixture("tests/golden/data/rng.json");
  ASSERT_GE(fixture["philox_known_answers"].size(), 3u);
  for (const auto& answer : fixture["philox_known_answers"]) {
    const std::array<uint32_t, 4> counter = answer["counter"];
    const std::array<uint32_t, 2> key = answer["key"];
    const std::array<uint32_t, 4> expected = answer["output"];
    EXPECT_EQ(Philox4x32(counter, key), expected);
  }
  // The first Random123 known answer, spelled out so the fixture cannot drift with the code.
  EXPECT_EQ(Philox4x32({0, 0, 0, 0}, {0, 0}),
            (std::array<uint32_t, 4>{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
}

TEST(RngTest, UniformDrawsMatchThePythonReference) {
  const nlohmann::json fixture = testing::LoadJsonFixture("tests/golden/data/rng.json");
  ASSERT_GE(fixture["draws"].size(), 10u);
  for (const auto& draw : fixture["draws"]) {
    const double u =
        UniformOpen01(draw["seed"].get<uint64_t>(), draw["step"], draw["position"], draw["index"],
                      static_cast<RngStream>(draw["stream"].get<uint32_t>()));
    EXPECT_EQ(u, draw["u"].get<double>()) << draw.dump();
  }
}

TEST(RngTest, DrawsAreInTheOpenIntervalAndDependOnEveryKey) {
  const double base = UniformOpen01(1, 2, 3, 4, RngStream::kGumbel);
  EXPECT_GT(base, 0.0);
  EXPECT_LT(base, 1.0);
  EXPECT_NE(base, UniformOpen01(2, 2, 3, 4, RngStream::kGumbel));
  EXPECT_NE(base, UniformOpen01(1, 3, 3, 4, RngStream::kGumbel));
  EXPECT_NE(base, UniformOpen01(1, 2, 4, 4, RngStream::kGumbel));
  EXPECT_NE(base, UniformOpen01(1, 2, 3, 5, RngStream::kGumbel));
  EXPECT_NE(base, UniformOpen01(1, 2, 3, 4, RngStream::kRandomRemasking));
  EXPECT_NE(base, UniformOpen01(1ull << 32 | 1, 2, 3, 4, RngStream::kGumbel));
  EXPECT_EQ(base, UniformOpen01(1, 2, 3, 4, RngStream::kGumbel));
}

}  // namespace
}  // namespace sculpt
