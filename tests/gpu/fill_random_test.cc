// The benchmark's device-side random fill (it has no CPU twin: its host formula is the
// reference). The ops the model runs are compared with the CPU in tests/backend/.
#include "cuda/fill_random.cuh"

#include <gtest/gtest.h>

#include <vector>

#include "tests/gpu/device_array.h"

namespace sculpt {
namespace {

using testing::DeviceArray;

TEST(CudaFillRandomTest, FillRandomMatchesItsHostFormula) {
  SCULPT_SKIP_WITHOUT_GPU();
  const int64_t count = 100003;
  DeviceArray<float> out(count);
  ASSERT_TRUE(
      cuda::LaunchFillRandom({out.data(), DType::kF32, count, 42, 0.5f, 1.0f}, nullptr).ok());
  const std::vector<float> values = out.ToHost();
  double sum = 0.0;
  for (int64_t i = 0; i < count; ++i) {
    // nvcc may contract the final multiply-add into an FMA: one rounding apart at most.
    ASSERT_NEAR(values[i], cuda::RandomFillValue(42, i, 0.5f, 1.0f), 1e-6f) << i;
    sum += values[i];
  }
  EXPECT_NEAR(sum / count, 1.0, 0.01);  // the offset is the mean
}

}  // namespace
}  // namespace sculpt
