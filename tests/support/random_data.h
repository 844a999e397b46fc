// Seeded random test data shared by the op tests.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace sculpt::testing {

// `count` normal values of standard deviation `scale`, the same for the same seed everywhere.
inline std::vector<float> RandomFloats(size_t count, uint32_t seed, float scale = 1.0f) {
  std::mt19937 generator(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> values(count);
  for (float& value : values) value = normal(generator);
  return values;
}

}  // namespace sculpt::testing
